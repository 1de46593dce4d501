//! Shell-style wildcard matching for the names settings and grants list
//! (role ARNs, principals, rule ids): `*` matches any run of characters,
//! `?` one; the whole text must match, case-sensitively.

/// True when `text` matches `pattern` whole (`*` any run, `?` one
/// character). Iterative, with one backtrack point (the last `*`), so time
/// is bounded by the product of the two lengths.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match (p.get(pi), t.get(ti)) {
            (Some('*'), _) => {
                star = Some((pi, ti));
                pi += 1;
            }
            (Some(&c), Some(&x)) if c == '?' || c == x => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == '*')
}

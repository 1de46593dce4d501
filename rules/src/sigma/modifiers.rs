//! Sigma value modifiers (`field|contains|all`) and the value transforms they
//! call for: wildcard patterns, `expand` placeholders, `wide`/`utf16*`
//! encodings, `base64`, `base64offset` and `windash`.

use std::collections::BTreeMap;

/// How a value is compared with the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Plain value: the whole field, with `*`/`?` wildcards.
    Equals,
    /// `contains`.
    Contains,
    /// `startswith`.
    StartsWith,
    /// `endswith`.
    EndsWith,
    /// `re`, with its `i`, `m`, `s` flags.
    Re {
        /// Case-insensitive.
        i: bool,
        /// `^`/`$` match at line ends.
        m: bool,
        /// `.` matches a newline.
        s: bool,
    },
    /// `cidr`.
    Cidr,
    /// `exists`.
    Exists,
    /// `gt`, `gte`, `lt`, `lte`: the SQL operator.
    Cmp(&'static str),
}

/// A byte encoding applied before `base64`/`base64offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-16 little-endian (`wide`, `utf16le`).
    Utf16Le,
    /// UTF-16 big-endian (`utf16be`).
    Utf16Be,
    /// UTF-16 little-endian with a byte-order mark (`utf16`).
    Utf16Bom,
}

/// A transform of the value, applied in the order written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Re-encode the text's bytes.
    Encode(Encoding),
    /// `base64`.
    Base64,
    /// `base64offset`: the three encodings at byte offsets 0, 1 and 2.
    Base64Offset,
    /// `windash`: `-`, `/`, en dash, em dash and horizontal bar stand for each other.
    Windash,
}

/// The parsed modifier chain of one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mods {
    /// The comparison.
    pub matching: Match,
    /// `all`: a value list is ANDed instead of ORed.
    pub all: bool,
    /// `cased`: case-sensitive.
    pub cased: bool,
    /// `fieldref`: the value names another field.
    pub fieldref: bool,
    /// `expand`: `%name%` placeholders are replaced from the configuration.
    pub expand: bool,
    /// Value transforms, in order.
    pub transforms: Vec<Transform>,
}

/// Parses the modifier names after the field (`["contains", "all"]`).
pub fn parse(names: &[&str]) -> Result<Mods, String> {
    let mut mods = Mods {
        matching: Match::Equals,
        all: false,
        cased: false,
        fieldref: false,
        expand: false,
        transforms: Vec::new(),
    };
    let set = |m: &mut Mods, new: Match, name: &str| {
        if m.matching != Match::Equals {
            return Err(format!(
                "modifier `{name}` cannot be combined with another comparison modifier"
            ));
        }
        m.matching = new;
        Ok(())
    };
    for &name in names {
        match name {
            "contains" => set(&mut mods, Match::Contains, name)?,
            "startswith" => set(&mut mods, Match::StartsWith, name)?,
            "endswith" => set(&mut mods, Match::EndsWith, name)?,
            "re" => set(
                &mut mods,
                Match::Re {
                    i: false,
                    m: false,
                    s: false,
                },
                name,
            )?,
            "i" | "ignorecase" | "m" | "multiline" | "s" | "dotall" => match &mut mods.matching {
                Match::Re { i, m, s } => match name {
                    "i" | "ignorecase" => *i = true,
                    "m" | "multiline" => *m = true,
                    _ => *s = true,
                },
                _ => return Err(format!("modifier `{name}` is only valid after `re`")),
            },
            "cidr" => set(&mut mods, Match::Cidr, name)?,
            "exists" => set(&mut mods, Match::Exists, name)?,
            "gt" => set(&mut mods, Match::Cmp(">"), name)?,
            "gte" => set(&mut mods, Match::Cmp(">="), name)?,
            "lt" => set(&mut mods, Match::Cmp("<"), name)?,
            "lte" => set(&mut mods, Match::Cmp("<="), name)?,
            "all" => mods.all = true,
            "cased" => mods.cased = true,
            "fieldref" => mods.fieldref = true,
            "expand" => mods.expand = true,
            "base64" => mods.transforms.push(Transform::Base64),
            "base64offset" => mods.transforms.push(Transform::Base64Offset),
            "windash" => mods.transforms.push(Transform::Windash),
            "wide" | "utf16le" => mods.transforms.push(Transform::Encode(Encoding::Utf16Le)),
            "utf16be" => mods.transforms.push(Transform::Encode(Encoding::Utf16Be)),
            "utf16" => mods.transforms.push(Transform::Encode(Encoding::Utf16Bom)),
            "minute" | "hour" | "day" | "week" | "month" | "year" => {
                return Err(format!(
                    "modifier `{name}` (a part of a timestamp) is not supported"
                ));
            }
            "" => return Err("an empty modifier (`||`)".into()),
            other => return Err(format!("modifier `{other}` is not supported")),
        }
    }
    check(&mods)?;
    Ok(mods)
}

fn check(m: &Mods) -> Result<(), String> {
    let plain_string = matches!(
        m.matching,
        Match::Equals | Match::Contains | Match::StartsWith | Match::EndsWith
    );
    if !m.transforms.is_empty() && !plain_string {
        return Err(
            "value transforms (base64, base64offset, windash, wide/utf16) \
                    only combine with plain, contains, startswith and endswith matching"
                .into(),
        );
    }
    if m.fieldref && (!plain_string || !m.transforms.is_empty() || m.expand) {
        return Err(
            "`fieldref` only combines with contains, startswith, endswith, all and cased".into(),
        );
    }
    // An encoding changes bytes, which only base64 can carry into text.
    let mut pending_encoding = false;
    for t in &m.transforms {
        match t {
            Transform::Encode(_) => pending_encoding = true,
            Transform::Base64 | Transform::Base64Offset => pending_encoding = false,
            Transform::Windash => {}
        }
    }
    if pending_encoding {
        return Err(
            "`wide`/`utf16*` must be followed by `base64` or `base64offset`: the event \
             model's text columns are UTF-8"
                .into(),
        );
    }
    Ok(())
}

/// One element of a value pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A literal character.
    Lit(char),
    /// `*`: any run of characters.
    Many,
    /// `?`: exactly one character.
    One,
    /// A `windash` position: any of `-`, `/`, `–`, `—`, `―`.
    Dash,
}

/// The characters `windash` treats as interchangeable.
pub const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

/// Reads a Sigma string: `*` and `?` are wildcards, `\*`, `\?` and `\\` are
/// the literal characters, and any other backslash is literal.
pub fn pattern(text: &str) -> Vec<Part> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push(Part::Many),
            '?' => out.push(Part::One),
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    chars.next();
                    out.push(Part::Lit(n));
                }
                _ => out.push(Part::Lit('\\')),
            },
            c => out.push(Part::Lit(c)),
        }
    }
    out
}

/// The literal text of a pattern without wildcards, else `None`.
pub fn literal(p: &[Part]) -> Option<String> {
    p.iter()
        .map(|x| match x {
            Part::Lit(c) => Some(*c),
            _ => None,
        })
        .collect()
}

/// Replaces `%name%` placeholders with every combination of their values.
pub fn expand(
    text: &str,
    placeholders: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, String> {
    let mut results = vec![String::new()];
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(len) = after.find('%') else { break };
        let name = &after[..len];
        let values = placeholders.get(name).ok_or_else(|| {
            if placeholders.is_empty() {
                format!(
                    "`expand` needs placeholder values, and none are configured (placeholder %{name}%)"
                )
            } else {
                format!("placeholder %{name}% has no values in the configuration")
            }
        })?;
        if values.is_empty() {
            return Err(format!(
                "placeholder %{name}% has an empty value list in the configuration"
            ));
        }
        let prefix = &rest[..start];
        let mut next = Vec::with_capacity(results.len() * values.len());
        for r in &results {
            for v in values {
                next.push(format!("{r}{prefix}{v}"));
            }
        }
        if next.len() > 4096 {
            return Err("`expand` gives more than 4096 values".into());
        }
        results = next;
        rest = &after[len + 1..];
    }
    for r in &mut results {
        r.push_str(rest);
    }
    Ok(results)
}

/// Applies the transforms to one pattern, giving its alternatives (ORed).
pub fn transform(p: Vec<Part>, transforms: &[Transform]) -> Result<Vec<Vec<Part>>, String> {
    let mut encoding: Option<Encoding> = None;
    let mut alts = vec![p];
    for t in transforms {
        match t {
            Transform::Encode(e) => encoding = Some(*e),
            Transform::Base64 | Transform::Base64Offset => {
                let mut next = Vec::new();
                for alt in &alts {
                    let text = literal(alt).ok_or(
                        "base64 and base64offset values cannot hold wildcards or windash positions",
                    )?;
                    let bytes = encode(&text, encoding.take());
                    if *t == Transform::Base64 {
                        next.push(lits(&base64(&bytes)));
                    } else {
                        next.extend(base64_offsets(&bytes).iter().map(|s| lits(s)));
                    }
                }
                alts = next;
            }
            Transform::Windash => {
                for alt in &mut alts {
                    for part in alt.iter_mut() {
                        if matches!(part, Part::Lit(c) if DASHES.contains(c)) {
                            *part = Part::Dash;
                        }
                    }
                }
            }
        }
    }
    Ok(alts)
}

fn lits(s: &str) -> Vec<Part> {
    s.chars().map(Part::Lit).collect()
}

fn encode(text: &str, encoding: Option<Encoding>) -> Vec<u8> {
    match encoding {
        None => text.as_bytes().to_vec(),
        Some(Encoding::Utf16Le) => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        Some(Encoding::Utf16Be) => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        Some(Encoding::Utf16Bom) => [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect(),
    }
}

/// Standard base64 with `=` padding.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        // A short last group is padded with zero bits.
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(base64_digit(n >> (18 - 6 * i)));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The base64 digit (`A`-`Z`, `a`-`z`, `0`-`9`, `+`, `/`) of the low 6 bits
/// of `bits`.
fn base64_digit(bits: u32) -> char {
    // Below 64, so the cast is lossless and every arm stays in ASCII.
    let v = (bits & 63) as u8;
    char::from(match v {
        0..=25 => b'A' + v,
        26..=51 => b'a' + (v - 26),
        52..=61 => b'0' + (v - 52),
        62 => b'+',
        _ => b'/',
    })
}

/// The three base64 forms of `bytes` as it appears inside a longer encoded
/// text, starting at byte offset 0, 1 or 2 of a 3-byte group: the characters
/// that depend on the unknown neighbouring bytes are cut off both ends.
pub fn base64_offsets(bytes: &[u8]) -> Vec<String> {
    // (offset, characters cut at the start): the first 0, 2 or 3 characters
    // also encode the unknown bytes before.
    [(0usize, 0usize), (1, 2), (2, 3)]
        .into_iter()
        .map(|(shift, start)| {
            let mut padded = vec![b' '; shift];
            padded.extend_from_slice(bytes);
            let encoded = base64(&padded);
            // Characters cut at the end: those that also encode the unknown
            // bytes after, by how the text ends within its 3-byte group.
            let cut_end = match (bytes.len() + shift) % 3 {
                0 => 0,
                1 => 3,
                _ => 2,
            };
            let end = encoded.len().saturating_sub(cut_end).max(start);
            encoded[start..end].to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn base64_offsets_are_the_three_shifts() {
        // "http://" at offsets 0, 1, 2 of a base64 stream.
        assert_eq!(
            base64_offsets(b"http://"),
            ["aHR0cDovL", "h0dHA6Ly", "odHRwOi8v"]
        );
    }

    #[test]
    fn patterns_honour_escapes() {
        assert_eq!(
            pattern(r"a*b?\*\?\\\x"),
            [
                Part::Lit('a'),
                Part::Many,
                Part::Lit('b'),
                Part::One,
                Part::Lit('*'),
                Part::Lit('?'),
                Part::Lit('\\'),
                Part::Lit('\\'),
                Part::Lit('x'),
            ]
        );
    }

    #[test]
    fn modifier_chains_are_checked() {
        assert!(parse(&["contains", "all"]).is_ok());
        assert!(parse(&["re", "i", "m"]).is_ok());
        assert!(parse(&["i"]).is_err());
        assert!(parse(&["contains", "startswith"]).is_err());
        assert!(parse(&["wide"]).is_err());
        assert!(parse(&["wide", "base64offset", "contains"]).is_ok());
        assert!(parse(&["nope"]).unwrap_err().contains("nope"));
    }

    #[test]
    fn expand_takes_every_combination() {
        let mut p = BTreeMap::new();
        p.insert("a".to_string(), vec!["1".to_string(), "2".to_string()]);
        assert_eq!(
            expand("x%a%y%a%", &p).unwrap(),
            ["x1y1", "x1y2", "x2y1", "x2y2"]
        );
        assert!(expand("%b%", &p).is_err());
        assert!(
            expand("%b%", &BTreeMap::new())
                .unwrap_err()
                .contains("none are configured")
        );
        assert_eq!(expand("100%", &p).unwrap(), ["100%"]);
    }
}

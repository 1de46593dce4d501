//! The Sigma `condition`: a boolean expression over search identifiers.
//!
//! Grammar (lowest precedence first; keywords are case-insensitive):
//!
//! ```text
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | primary
//! primary := "(" or ")" | quant "of" ("them" | pattern) | identifier
//! quant   := "all" | a positive number
//! ```
//!
//! `pattern` is an identifier that may hold `*` wildcards. A `|` pipe
//! (aggregations such as `| count() > 5`) and the old `near` operator are
//! refused.

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// One search identifier.
    Id(String),
    /// Negation.
    Not(Box<Cond>),
    /// Conjunction.
    And(Vec<Cond>),
    /// Disjunction.
    Or(Vec<Cond>),
    /// `1 of x*`, `all of them`, `2 of sel_*`.
    Of {
        /// How many must match.
        quant: Quant,
        /// `None` for `them`, else the identifier pattern.
        pattern: Option<String>,
    },
}

/// The quantifier of an `of` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    /// `all of`.
    All,
    /// `N of`: at least N.
    AtLeast(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Tok::Open);
            }
            ')' => {
                chars.next();
                out.push(Tok::Close);
            }
            '|' => {
                return Err(format!(
                    "the condition uses a `|` pipe (aggregation {:?}), which is not supported: \
                     trailhound rules match single events",
                    text[i..].trim()
                ));
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '*' | '-' | '.' | '?') => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_alphanumeric() || matches!(c, '_' | '*' | '-' | '.' | '?') {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(word));
            }
            other => {
                return Err(format!(
                    "the condition has an unexpected character {other:?} at byte {i}"
                ));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn is_kw(tok: Option<&Tok>, kw: &str) -> bool {
    matches!(tok, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self, depth: usize) -> Result<Cond, String> {
        if depth > 64 {
            return Err("the condition is nested too deeply".into());
        }
        let mut items = vec![self.and(depth)?];
        while is_kw(self.peek(), "or") {
            self.pos += 1;
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Cond, String> {
        let mut items = vec![self.not(depth)?];
        while is_kw(self.peek(), "and") {
            self.pos += 1;
            items.push(self.not(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::And(items)
        })
    }

    fn not(&mut self, depth: usize) -> Result<Cond, String> {
        if is_kw(self.peek(), "not") {
            self.pos += 1;
            return Ok(Cond::Not(Box::new(self.not(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Cond, String> {
        match self.next() {
            Some(Tok::Open) => {
                let inner = self.or(depth + 1)?;
                match self.next() {
                    Some(Tok::Close) => Ok(inner),
                    _ => Err("the condition has a `(` without its `)`".into()),
                }
            }
            Some(Tok::Close) => Err("the condition has an unexpected `)`".into()),
            Some(Tok::Word(w)) => {
                let lower = w.to_ascii_lowercase();
                if is_kw(self.peek(), "of") {
                    let quant = if lower == "all" {
                        Quant::All
                    } else {
                        match w.parse::<usize>() {
                            Ok(n) if n > 0 => Quant::AtLeast(n),
                            _ => {
                                return Err(format!(
                                    "`{w} of`: the quantifier must be `all` or a positive number"
                                ));
                            }
                        }
                    };
                    self.pos += 1;
                    return match self.next() {
                        Some(Tok::Word(t)) if t.eq_ignore_ascii_case("them") => Ok(Cond::Of {
                            quant,
                            pattern: None,
                        }),
                        Some(Tok::Word(p)) if !is_reserved(&p) => Ok(Cond::Of {
                            quant,
                            pattern: Some(p),
                        }),
                        _ => Err(format!(
                            "`{w} of` must be followed by `them` or an identifier pattern"
                        )),
                    };
                }
                match lower.as_str() {
                    "near" => Err("the `near` operator is not supported".into()),
                    _ if is_reserved(&w) => Err(format!("the condition has a misplaced `{w}`")),
                    _ => Ok(Cond::Id(w)),
                }
            }
            None => Err("the condition ends where an identifier was expected".into()),
        }
    }
}

fn is_reserved(w: &str) -> bool {
    ["and", "or", "not", "of", "them", "all"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

/// Parses one condition string.
pub fn parse(text: &str) -> Result<Cond, String> {
    let toks = tokenize(text)?;
    if toks.is_empty() {
        return Err("the condition is empty".into());
    }
    let mut p = Parser { toks, pos: 0 };
    let cond = p.or(0)?;
    if p.pos < p.toks.len() {
        return Err(format!(
            "the condition {text:?} has unexpected text after a complete expression"
        ));
    }
    Ok(cond)
}

/// True when a search identifier matches an `of` pattern (`*` is any run of
/// characters, `?` one character).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| n.get(i..).is_some_and(|n| go(rest, n))),
            Some(('?', rest)) => n.split_first().is_some_and(|(_, n)| go(rest, n)),
            Some((c, rest)) => n.split_first().is_some_and(|(h, n)| h == c && go(rest, n)),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Cond {
        Cond::Id(s.into())
    }

    #[test]
    fn precedence_is_not_and_or() {
        assert_eq!(
            parse("a or not b and c").unwrap(),
            Cond::Or(vec![
                id("a"),
                Cond::And(vec![Cond::Not(Box::new(id("b"))), id("c")])
            ])
        );
        assert_eq!(
            parse("(a or b) and 1 of sel_* and not all of them").unwrap(),
            Cond::And(vec![
                Cond::Or(vec![id("a"), id("b")]),
                Cond::Of {
                    quant: Quant::AtLeast(1),
                    pattern: Some("sel_*".into())
                },
                Cond::Not(Box::new(Cond::Of {
                    quant: Quant::All,
                    pattern: None
                })),
            ])
        );
    }

    #[test]
    fn bad_conditions_are_refused() {
        assert!(parse("sel | count() > 5").unwrap_err().contains("pipe"));
        assert!(parse("(a or b").is_err());
        assert!(parse("a b").is_err());
        assert!(parse("a and").is_err());
        assert!(parse("0 of x*").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn patterns_glob() {
        assert!(pattern_matches("sel*", "selection"));
        assert!(pattern_matches("*", "x"));
        assert!(!pattern_matches("filter_*", "filter"));
        assert!(pattern_matches("f?lter", "filter"));
    }
}

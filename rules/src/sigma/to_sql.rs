//! A Sigma `detection` section into one SQL boolean expression over the
//! event model, for the rule compiler.
//!
//! Every literal goes through [`quote`] (single quotes doubled); field names
//! only ever become known column names or quoted JSON keys. Every field test
//! is wrapped so that it is TRUE or FALSE, never NULL: a missing field does
//! not match, and `not selection` then matches it, as Sigma says.
//!
//! String values are case-insensitive (`ILIKE`, or a `(?i)` regex) unless the
//! `cased` modifier is given; `*` and `?` become `%` and `_`, and a literal
//! `%`, `_` or `\` is escaped with a backslash (DataFusion's `LIKE` escape).

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::condition::{self, Cond, Quant};
use super::fields::{KEYWORD_COLUMNS, Kind, Target, map_field};
use super::modifiers::{self, DASHES, Match, Mods, Part};

/// A SQL string literal: single quotes doubled.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Converts a detection section. `placeholders` feeds the `expand` modifier.
pub fn detection_sql(
    detection: &Mapping,
    placeholders: &BTreeMap<String, Vec<String>>,
) -> Result<String, String> {
    let mut conditions: Vec<String> = Vec::new();
    let mut identifiers: Vec<(String, String)> = Vec::new();
    for (key, value) in detection {
        let Some(name) = key.as_str() else {
            return Err(format!(
                "the detection has a key that is not a string: {key:?}"
            ));
        };
        match name {
            "condition" => match value {
                Value::String(s) => conditions.push(s.clone()),
                Value::Sequence(items) => {
                    for item in items {
                        let s = item
                            .as_str()
                            .ok_or("every `condition` in a list must be a string")?;
                        conditions.push(s.to_string());
                    }
                }
                _ => return Err("`condition` must be a string or a list of strings".into()),
            },
            "timeframe" => {
                return Err(
                    "`timeframe` (an aggregation over time) is not supported: trailhound \
                     rules match single events"
                        .into(),
                );
            }
            _ => {
                let sql = search_identifier(value, placeholders)
                    .map_err(|e| format!("search identifier `{name}`: {e}"))?;
                identifiers.push((name.to_string(), sql));
            }
        }
    }
    if conditions.is_empty() {
        return Err("the detection has no `condition`".into());
    }
    if identifiers.is_empty() {
        return Err("the detection has no search identifiers".into());
    }
    let mut parts = Vec::new();
    for text in &conditions {
        let cond = condition::parse(text).map_err(|e| format!("condition {text:?}: {e}"))?;
        parts.push(cond_sql(&cond, &identifiers).map_err(|e| format!("condition {text:?}: {e}"))?);
    }
    Ok(join(parts, "OR"))
}

fn join(mut parts: Vec<String>, op: &str) -> String {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    let sep = format!(" {op} ");
    format!("({})", parts.join(&sep))
}

fn cond_sql(cond: &Cond, ids: &[(String, String)]) -> Result<String, String> {
    Ok(match cond {
        Cond::Id(name) => ids
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, sql)| sql.clone())
            .ok_or_else(|| format!("search identifier `{name}` is not defined"))?,
        Cond::Not(inner) => format!("(NOT {})", cond_sql(inner, ids)?),
        Cond::And(items) => join(
            items
                .iter()
                .map(|c| cond_sql(c, ids))
                .collect::<Result<_, _>>()?,
            "AND",
        ),
        Cond::Or(items) => join(
            items
                .iter()
                .map(|c| cond_sql(c, ids))
                .collect::<Result<_, _>>()?,
            "OR",
        ),
        Cond::Of { quant, pattern } => {
            let chosen: Vec<&String> = ids
                .iter()
                .filter(|(n, _)| match pattern {
                    None => !n.starts_with('_'),
                    Some(p) => condition::pattern_matches(p, n),
                })
                .map(|(_, sql)| sql)
                .collect();
            let what = pattern.as_deref().unwrap_or("them");
            if chosen.is_empty() {
                return Err(format!("`of {what}` matches no search identifier"));
            }
            match quant {
                Quant::All => join(chosen.into_iter().cloned().collect(), "AND"),
                Quant::AtLeast(1) => join(chosen.into_iter().cloned().collect(), "OR"),
                Quant::AtLeast(n) => {
                    if *n > chosen.len() {
                        return Err(format!(
                            "`{n} of {what}` asks for more than the {} matching search identifiers",
                            chosen.len()
                        ));
                    }
                    let terms: Vec<String> = chosen
                        .iter()
                        .map(|s| format!("CASE WHEN {s} THEN 1 ELSE 0 END"))
                        .collect();
                    format!("(({}) >= {n})", terms.join(" + "))
                }
            }
        }
    })
}

/// One search identifier: a map (fields ANDed), a list of maps (ORed), or
/// keywords (a value or a list of values without a field).
fn search_identifier(
    value: &Value,
    placeholders: &BTreeMap<String, Vec<String>>,
) -> Result<String, String> {
    match value {
        Value::Mapping(map) => map_sql(map, placeholders),
        Value::Sequence(items) => {
            if items.is_empty() {
                return Err("the list is empty".into());
            }
            let mut parts = Vec::new();
            let mut keywords = Vec::new();
            for item in items {
                match item {
                    Value::Mapping(map) => parts.push(map_sql(map, placeholders)?),
                    Value::Sequence(_) => return Err("a list nested in a list".into()),
                    Value::Tagged(_) => return Err("a tagged YAML value".into()),
                    scalar => keywords.push(scalar.clone()),
                }
            }
            if !keywords.is_empty() {
                parts.push(field_sql("", &keywords, placeholders)?);
            }
            Ok(join(parts, "OR"))
        }
        Value::Tagged(_) => Err("a tagged YAML value".into()),
        scalar => field_sql("", std::slice::from_ref(scalar), placeholders),
    }
}

fn map_sql(map: &Mapping, placeholders: &BTreeMap<String, Vec<String>>) -> Result<String, String> {
    if map.is_empty() {
        return Err("the map is empty".into());
    }
    let mut parts = Vec::new();
    for (key, value) in map {
        let key = match key {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err(format!("a field name that is not a string: {other:?}")),
        };
        let values: Vec<Value> = match value {
            Value::Sequence(items) => items.clone(),
            Value::Mapping(_) => return Err(format!("field `{key}`: a map as value")),
            other => vec![other.clone()],
        };
        parts.push(
            field_sql(&key, &values, placeholders).map_err(|e| format!("field `{key}`: {e}"))?,
        );
    }
    Ok(join(parts, "AND"))
}

/// A field with its modifiers (`name|contains|all`) and its values.
fn field_sql(
    key: &str,
    values: &[Value],
    placeholders: &BTreeMap<String, Vec<String>>,
) -> Result<String, String> {
    let mut names = key.split('|');
    let field = names.next().unwrap_or_default();
    let mod_names: Vec<&str> = names.collect();
    let mods = modifiers::parse(&mod_names)?;
    let target = map_field(field)?;
    if values.is_empty() {
        return Err("the value list is empty".into());
    }
    let mut parts = Vec::new();
    for value in values {
        parts.push(value_sql(&target, &mods, value, placeholders)?);
    }
    Ok(join(parts, if mods.all { "AND" } else { "OR" }))
}

/// Never NULL: a missing value is no match.
fn sure(expr: String) -> String {
    format!("COALESCE({expr}, FALSE)")
}

/// The field as text: the column, the JSON value, or a boolean as `true`/`false`.
fn text_sql(target: &Target) -> Vec<String> {
    match target {
        Target::Column {
            name,
            kind: Kind::Text,
            ..
        } => vec![name.to_string()],
        Target::Column {
            name,
            kind: Kind::Bool,
            ..
        } => vec![format!("CAST({name} AS VARCHAR)")],
        Target::Json { column, path } => vec![json_text(column, path)],
        Target::Keywords => KEYWORD_COLUMNS.iter().map(|c| c.to_string()).collect(),
    }
}

fn json_text(column: &str, path: &[String]) -> String {
    if path.is_empty() {
        return column.to_string();
    }
    let keys: Vec<String> = path.iter().map(|k| quote(k)).collect();
    format!("json_as_text({column}, {})", keys.join(", "))
}

fn absent_sql(target: &Target) -> Result<String, String> {
    Ok(match target {
        Target::Column {
            absent: Some(a), ..
        } => format!("({a})"),
        Target::Column { name, .. } => format!("({name} IS NULL)"),
        Target::Json { column, path } => format!("({} IS NULL)", json_text(column, path)),
        Target::Keywords => return Err("a null keyword".into()),
    })
}

fn exists_sql(target: &Target) -> Result<String, String> {
    Ok(match target {
        Target::Json { column, path } if !path.is_empty() => {
            let keys: Vec<String> = path.iter().map(|k| quote(k)).collect();
            sure(format!("json_contains({column}, {})", keys.join(", ")))
        }
        Target::Keywords => return Err("`exists` needs a field".into()),
        _ => format!("(NOT {})", absent_sql(target)?),
    })
}

fn value_sql(
    target: &Target,
    mods: &Mods,
    value: &Value,
    placeholders: &BTreeMap<String, Vec<String>>,
) -> Result<String, String> {
    if let Value::Null = value {
        if mods.matching != Match::Equals || !mods.transforms.is_empty() || mods.fieldref {
            return Err("a null value with modifiers".into());
        }
        return absent_sql(target);
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err("a value that is not a string, number, boolean or null".into()),
    };
    match mods.matching {
        Match::Exists => {
            let want = match value {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return Err("`exists` takes true or false".into()),
            };
            let e = exists_sql(target)?;
            return Ok(if want { e } else { format!("(NOT {e})") });
        }
        Match::Cmp(op) => {
            let n: f64 = text
                .trim()
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| format!("`{op}` comparison with {text:?}, which is not a number"))?;
            let parts: Vec<String> = number_sql(target)?
                .into_iter()
                .map(|e| sure(format!("{e} {op} {}", float(n))))
                .collect();
            return Ok(join(parts, "OR"));
        }
        Match::Cidr => {
            super::cidr::parse_net(&text).map_err(|e| format!("`cidr` value {text:?}: {e}"))?;
            let parts: Vec<String> = text_sql(target)
                .into_iter()
                .map(|e| sure(format!("{}({e}, {})", super::cidr::UDF_NAME, quote(&text))))
                .collect();
            return Ok(join(parts, "OR"));
        }
        Match::Re { i, m, s } => {
            let flags: String = [(i, 'i'), (m, 'm'), (s, 's')]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, c)| *c)
                .collect();
            let pattern = if flags.is_empty() {
                text.clone()
            } else {
                format!("(?{flags}){text}")
            };
            let parts: Vec<String> = text_sql(target)
                .into_iter()
                .map(|e| sure(format!("regexp_like({e}, {})", quote(&pattern))))
                .collect();
            return Ok(join(parts, "OR"));
        }
        Match::Equals | Match::Contains | Match::StartsWith | Match::EndsWith => {}
    }
    if mods.fieldref {
        return fieldref_sql(target, mods, &text);
    }
    // A boolean column compared with a plain true/false.
    if let Target::Column {
        name,
        kind: Kind::Bool,
        ..
    } = target
        && mods.matching == Match::Equals
        && mods.transforms.is_empty()
        && (text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false"))
    {
        return Ok(sure(format!("{name} = {}", text.to_ascii_lowercase())));
    }
    let texts = if mods.expand {
        modifiers::expand(&text, placeholders)?
    } else {
        vec![text.clone()]
    };
    let mut alternatives = Vec::new();
    for t in &texts {
        alternatives.extend(modifiers::transform(
            modifiers::pattern(t),
            &mods.transforms,
        )?);
    }
    let keyword = matches!(target, Target::Keywords);
    let mut parts = Vec::new();
    for column in text_sql(target) {
        for alt in &alternatives {
            let mut p = Vec::with_capacity(alt.len() + 2);
            let (lead, trail) = match mods.matching {
                Match::Contains => (true, true),
                Match::StartsWith => (false, true),
                Match::EndsWith => (true, false),
                // A keyword is found anywhere in the record's text.
                _ => (keyword, keyword),
            };
            if lead {
                p.push(Part::Many);
            }
            p.extend_from_slice(alt);
            if trail {
                p.push(Part::Many);
            }
            parts.push(sure(pattern_sql(&column, &p, mods.cased)));
        }
    }
    // A number also matches a JSON number written differently (`1.0`, `1e0`).
    if let (Value::Number(n), Target::Json { .. }) = (value, target)
        && mods.matching == Match::Equals
        && mods.transforms.is_empty()
        && let Some(f) = n.as_f64()
    {
        for e in number_sql(target)? {
            parts.push(sure(format!("{e} = {}", float(f))));
        }
    }
    Ok(join(parts, "OR"))
}

fn float(n: f64) -> String {
    let s = format!("{n:?}");
    if s.contains(['.', 'e', 'E']) {
        format!("CAST({s} AS DOUBLE)")
    } else {
        format!("CAST({s}.0 AS DOUBLE)")
    }
}

fn number_sql(target: &Target) -> Result<Vec<String>, String> {
    match target {
        Target::Keywords => Err("a numeric comparison needs a field".into()),
        Target::Column {
            kind: Kind::Bool, ..
        } => Err("a numeric comparison on a boolean field".into()),
        t => Ok(text_sql(t)
            .into_iter()
            .map(|e| format!("TRY_CAST({e} AS DOUBLE)"))
            .collect()),
    }
}

fn fieldref_sql(target: &Target, mods: &Mods, other: &str) -> Result<String, String> {
    let other_target = map_field(other).map_err(|e| format!("`fieldref` to {other:?}: {e}"))?;
    if matches!(other_target, Target::Keywords) || matches!(target, Target::Keywords) {
        return Err("`fieldref` needs two fields".into());
    }
    let (a, b) = (
        text_sql(target).remove(0),
        text_sql(&other_target).remove(0),
    );
    let (a, b) = if mods.cased {
        (a, b)
    } else {
        (format!("lower({a})"), format!("lower({b})"))
    };
    Ok(sure(match mods.matching {
        Match::Contains => format!("strpos({a}, {b}) > 0"),
        Match::StartsWith => format!("starts_with({a}, {b})"),
        Match::EndsWith => format!("ends_with({a}, {b})"),
        _ => format!("{a} = {b}"),
    }))
}

/// One pattern against one text expression.
fn pattern_sql(column: &str, p: &[Part], cased: bool) -> String {
    if p.contains(&Part::Dash) {
        return format!("regexp_like({column}, {})", quote(&regex_of(p, cased)));
    }
    if cased && let Some(lit) = modifiers::literal(p) {
        return format!("{column} = {}", quote(&lit));
    }
    let mut like = String::with_capacity(p.len() + 4);
    for part in p {
        match part {
            Part::Lit(c @ ('%' | '_' | '\\')) => {
                like.push('\\');
                like.push(*c);
            }
            Part::Lit(c) => like.push(*c),
            Part::Many => like.push('%'),
            Part::One => like.push('_'),
            Part::Dash => {}
        }
    }
    let op = if cased { "LIKE" } else { "ILIKE" };
    format!("{column} {op} {}", quote(&like))
}

fn regex_of(p: &[Part], cased: bool) -> String {
    let mut re = String::from(if cased { "(?s)^" } else { "(?is)^" });
    for part in p {
        match part {
            Part::Lit(c) => {
                if c.is_alphanumeric() || *c == ' ' {
                    re.push(*c);
                } else if c.is_ascii_punctuation() {
                    re.push('\\');
                    re.push(*c);
                } else {
                    re.push_str(&format!("\\x{{{:X}}}", u32::from(*c)));
                }
            }
            Part::Many => re.push_str(".*"),
            Part::One => re.push('.'),
            Part::Dash => {
                re.push('[');
                for d in DASHES {
                    match d {
                        '-' | '/' => {
                            re.push('\\');
                            re.push(d);
                        }
                        _ => re.push(d),
                    }
                }
                re.push(']');
            }
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote("it's"), "'it''s'");
    }

    #[test]
    fn like_patterns_escape_their_own_wildcards() {
        let p = modifiers::pattern(r"50%_a*\*\\");
        assert_eq!(pattern_sql("c", &p, false), r"c ILIKE '50\%\_a%*\\'");
        assert_eq!(pattern_sql("c", &modifiers::pattern("x"), true), "c = 'x'");
    }
}

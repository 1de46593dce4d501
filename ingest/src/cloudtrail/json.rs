//! Small JSON helpers for reading CloudTrail leniently and without copying:
//! lenient scalars, lenient nested objects, and copying raw JSON text with
//! insignificant whitespace dropped.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A scalar read leniently: strings are borrowed from the input when they
/// hold no escapes, numbers and booleans become their text, and null,
/// objects and arrays read as absent. Never fails on a well-formed value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub(crate) Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    /// The text, unless absent or empty.
    pub(crate) fn get(&self) -> Option<&str> {
        self.0.as_deref().filter(|s| !s.is_empty())
    }

    /// The text, unless absent or empty, keeping the borrow.
    pub(crate) fn take(self) -> Option<Cow<'a, str>> {
        self.0.filter(|s| !s.is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor(PhantomData))
    }
}

struct TextVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v))))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Borrowed(if v { "true" } else { "false" }))))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v.to_string()))))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v.to_string()))))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v.to_string()))))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Text::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
}

/// A nested object read leniently, in the same pass as its parent: `None`
/// when it is absent, null, or not an object, instead of failing the record
/// around it. (An object whose own fields clash, such as a duplicated key,
/// still fails its parent.)
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Lenient<T>(pub(crate) Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(PhantomData))
    }
}

/// Reads a map as `T` in the same pass; any other value is skipped.
struct LenientVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|t| Lenient(Some(t)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Lenient::deserialize(d)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }
}

/// Parses a raw value into `T`, or `None` if it does not fit.
pub(crate) fn parse_lenient<'a, T: Deserialize<'a>>(raw: &'a str) -> Option<T> {
    serde_json::from_str(raw).ok()
}

/// A top-level field's raw value, read as a scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scalar<'a> {
    /// `null`.
    Null,
    /// A string (unescaped), or a number or boolean as written.
    Text(Cow<'a, str>),
    /// An object or array.
    Complex,
}

/// Reads a raw value as a scalar. A string without escapes is borrowed
/// straight from the input, without a second parse.
pub(crate) fn scalar(s: &str) -> Scalar<'_> {
    match s.as_bytes().first() {
        Some(b'"') => {
            let inner = s.get(1..s.len().saturating_sub(1)).unwrap_or("");
            if inner.bytes().any(|b| b == b'\\') {
                match serde_json::from_str::<String>(s) {
                    Ok(v) => Scalar::Text(Cow::Owned(v)),
                    Err(_) => Scalar::Complex,
                }
            } else {
                Scalar::Text(Cow::Borrowed(inner))
            }
        }
        Some(b'n') | None => Scalar::Null,
        Some(b'{' | b'[') => Scalar::Complex,
        Some(_) => Scalar::Text(Cow::Borrowed(s)),
    }
}

/// What kind of JSON value a text holds, in words, for dead letters.
pub(crate) fn kind_of(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(_) => "a number",
        None => "empty",
    }
}

/// Appends valid JSON `raw` to `out`, dropping whitespace outside strings, so
/// that pretty-printed input yields the same compact text as compact input.
pub(crate) fn push_compact(out: &mut String, raw: &str) {
    // Jumps from quote to quote with memchr instead of looking at every
    // byte: string contents, the bulk of the text, are skipped in SIMD
    // strides, and only the short stretches between strings are scanned
    // for whitespace. Runs without whitespace are copied whole.
    let bytes = raw.as_bytes();
    // Whitespace is the only JSON text at or below a space, so text with no
    // such byte (compact JSON with no space in its strings, most of
    // CloudTrail) is copied as it is.
    if !has_byte_below(bytes, b' ' + 1) {
        out.push_str(raw);
        return;
    }
    out.reserve(bytes.len());
    let mut start = 0;
    let mut at = 0;
    while at < bytes.len() {
        let rest = bytes.get(at..).unwrap_or_default();
        let quote = memchr::memchr(b'"', rest).map_or(bytes.len(), |q| at + q);
        let between = bytes.get(at..quote).unwrap_or_default();
        for (offset, b) in between.iter().enumerate() {
            if matches!(*b, b' ' | b'\n' | b'\r' | b'\t') {
                let i = at + offset;
                out.push_str(raw.get(start..i).unwrap_or(""));
                start = i + 1;
            }
        }
        // Inside the string: on to its closing quote, stepping over escapes.
        at = quote.saturating_add(1);
        let mut closed = false;
        while let Some(found) = bytes
            .get(at..)
            .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
        {
            let i = at + found;
            at = i + if bytes.get(i) == Some(&b'\\') { 2 } else { 1 };
            if bytes.get(i) == Some(&b'"') {
                closed = true;
                break;
            }
        }
        if !closed {
            // No more strings (or one left open): nothing more to drop.
            break;
        }
    }
    out.push_str(raw.get(start..).unwrap_or(""));
}

/// Whether any byte is below `limit` (at most 0x80), eight bytes at a time:
/// a byte `b` of a word `x` is below `n` exactly when `x - n·LOW` borrows
/// into its high bit while `b`'s own high bit is clear. The text is read to
/// its end without stopping (it is read whole anyway when it has none, the
/// common case), which keeps the loop branch-free.
pub(crate) fn has_byte_below(bytes: &[u8], limit: u8) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut seen = 0u64;
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().unwrap_or([0xff; 8]));
        seen |= x.wrapping_sub(LOW * u64::from(limit)) & !x;
    }
    seen & HIGH != 0 || words.remainder().iter().any(|&b| b < limit)
}

/// Appends `key` as a JSON string.
pub(crate) fn push_key(out: &mut String, key: &str) {
    if key.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        match serde_json::to_string(key) {
            Ok(quoted) => out.push_str(&quoted),
            Err(_) => out.push_str("\"\""),
        }
    } else {
        out.push('"');
        out.push_str(key);
        out.push('"');
    }
}

/// A whole number from its text: an integer, or a float rounded (CloudTrail
/// writes byte counts as `1234`, `1234.0` or `"1234"`).
pub(crate) fn parse_count(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let f = s.parse::<f64>().ok()?;
    if f.is_finite() && f.abs() < 9.0e18 {
        Some(f.round() as i64)
    } else {
        None
    }
}

/// `true`/`false` in any case.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(raw: &str) -> String {
        let mut out = String::new();
        push_compact(&mut out, raw);
        out
    }

    #[test]
    fn scalars_are_borrowed_unless_escaped() {
        assert_eq!(scalar(r#""abc""#), Scalar::Text(Cow::Borrowed("abc")));
        assert_eq!(scalar(r#""a\"b""#), Scalar::Text(Cow::Owned("a\"b".into())));
        assert_eq!(scalar("12"), Scalar::Text(Cow::Borrowed("12")));
        assert_eq!(scalar("null"), Scalar::Null);
        assert_eq!(scalar("[1]"), Scalar::Complex);
    }

    #[test]
    fn compacting_keeps_string_whitespace() {
        assert_eq!(
            compact("{ \"a b\" : [ 1, \"x \\\" y\" ] }\n"),
            r#"{"a b":[1,"x \" y"]}"#
        );
    }

    /// The byte-at-a-time definition the fast version must agree with.
    fn compact_byte_by_byte(raw: &str) -> String {
        let mut out = String::new();
        let (mut in_string, mut escaped) = (false, false);
        for c in raw.chars() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
            } else if matches!(c, ' ' | '\n' | '\r' | '\t') {
                continue;
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn compacting_agrees_with_the_byte_by_byte_definition() {
        let pieces = [
            " ", "\n", "\t", "\r", "\"", "\\", "\\\"", "a", "é", "{", "}", "[", "]", ",", ":", "1",
            "\u{3000}", "x y",
        ];
        // Every sequence of up to four pieces, valid JSON or not (an
        // unterminated string, a trailing backslash).
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for prefix in &inputs {
                for p in pieces {
                    next.push(format!("{prefix}{p}"));
                }
            }
            inputs.extend(next);
            inputs.dedup();
        }
        inputs.push(r#"{ "policy" : "{\"Version\": \"2012-10-17\"}" , "n" : [ 1 , 2 ] }"#.into());
        for raw in &inputs {
            assert_eq!(compact(raw), compact_byte_by_byte(raw), "{raw:?}");
        }
    }

    #[test]
    fn counts_accept_floats_and_strings() {
        assert_eq!(parse_count("12"), Some(12));
        assert_eq!(parse_count("12.0"), Some(12));
        assert_eq!(parse_count("1e3"), Some(1000));
        assert_eq!(parse_count("x"), None);
        assert_eq!(parse_count("1e300"), None);
    }

    #[test]
    fn lenient_text_takes_any_value() {
        #[derive(serde::Deserialize)]
        struct S<'a> {
            #[serde(borrow)]
            a: Text<'a>,
            #[serde(borrow)]
            b: Text<'a>,
            #[serde(borrow)]
            c: Text<'a>,
        }
        let s: S<'_> = serde_json::from_str(r#"{"a":"x","b":{"y":[1]},"c":false}"#).unwrap();
        assert_eq!(s.a.get(), Some("x"));
        assert_eq!(s.b.get(), None);
        assert_eq!(s.c.get(), Some("false"));
    }
}

//! The fast first reading of a record: one JSON object split into its
//! top-level entries, every value checked against the JSON grammar and kept
//! as its raw text, nothing built.
//!
//! It does what serde_json does when it reads a record into raw values
//! ([`super::record::read_object`]) with about 40 % fewer instructions:
//! strings, the bulk of CloudTrail, are crossed eight bytes at a time, then
//! with `memchr`, from quote to quote, and the check for control characters
//! (never allowed raw inside a JSON string) is made once for the whole text,
//! eight bytes at a time, instead of in every string. BENCHMARKS.md says
//! what else was tried.
//!
//! It only ever says yes to a text serde_json also accepts, with the same
//! entries; anything unusual it declines (`None`) rather than judges, and
//! the caller reads the text with serde_json, which streams `Records` lists
//! and words the error. Declined: any control character in the text (so
//! pretty-printed records, whose newlines are whitespace, take the serde
//! path), keys holding escapes, nesting deeper than [`MAX_DEPTH`].

use super::json::has_byte_below;

/// Containers deeper than this are declined (serde_json reads them), so the
/// recursion here stays shallow whatever the input.
pub(crate) const MAX_DEPTH: usize = 64;

/// Splits `text`, one JSON object with optional whitespace around it, into
/// its entries: `(key, raw value)` in input order, keys as written (they
/// hold no escapes), values as their exact text. `None` when the text is not
/// such an object or is declined (see the module page).
pub(crate) fn object_entries<'a>(
    text: &'a str,
    mut each: impl FnMut(&'a str, &'a str) -> Option<()>,
) -> Option<()> {
    let bytes = text.as_bytes();
    if has_control_bytes(bytes) {
        return None;
    }
    let mut s = Scanner { bytes, at: 0 };
    s.space();
    s.expect(b'{')?;
    s.space();
    if s.peek() == Some(b'}') {
        s.at += 1;
    } else {
        loop {
            s.expect(b'"')?;
            let key_start = s.at;
            if s.string()? {
                return None;
            }
            let key = text.get(key_start..s.at - 1)?;
            s.space();
            s.expect(b':')?;
            s.space();
            let value_start = s.at;
            s.value(1)?;
            each(key, text.get(value_start..s.at)?)?;
            s.space();
            match s.next()? {
                b',' => s.space(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.space();
    (s.at == bytes.len()).then_some(())
}

/// Whether any byte is a control character (below 0x20).
fn has_control_bytes(bytes: &[u8]) -> bool {
    has_byte_below(bytes, 0x20)
}

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Bits set in the bytes of `word` equal to `byte` (the lowest set one is
/// exact, which is all [`Scanner::special`] reads).
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (LOW * u64::from(byte));
    x.wrapping_sub(LOW) & !x & HIGH
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// Skips spaces (the only whitespace a text without control bytes has).
    fn space(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    /// From just after an opening quote to just after the closing one.
    /// Returns whether the string held an escape.
    fn string(&mut self) -> Option<bool> {
        let mut escaped = false;
        loop {
            self.at = self.special()?;
            if self.next()? == b'"' {
                return Some(escaped);
            }
            escaped = true;
            match self.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    let hex = self.bytes.get(self.at..self.at + 4)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.at += 4;
                }
                _ => return None,
            }
        }
    }

    /// Where the next `"` or `\\` is: eight bytes at a time over the first
    /// 16 (most strings in a record are short, and a call to memchr costs
    /// more than they do), then memchr's vector search.
    fn special(&self) -> Option<usize> {
        let mut at = self.at;
        for _ in 0..2 {
            let Some(chunk) = self.bytes.get(at..at + 8) else {
                break;
            };
            let word = u64::from_le_bytes(chunk.try_into().ok()?);
            let hits = bytes_equal(word, b'"') | bytes_equal(word, b'\\');
            if hits != 0 {
                return Some(at + (hits.trailing_zeros() / 8) as usize);
            }
            at += 8;
        }
        let rest = self.bytes.get(at..)?;
        Some(at + memchr::memchr2(b'"', b'\\', rest)?)
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        self.at - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// One value, whatever it is, at nesting `depth` (the top object is 1).
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string().map(|_| ())
            }
            b'{' => self.container(depth, b'}', true),
            b'[' => self.container(depth, b']', false),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object (`keyed`) or an array, from its opening byte.
    fn container(&mut self, depth: usize, close: u8, keyed: bool) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.space();
        if self.peek() == Some(close) {
            self.at += 1;
            return Some(());
        }
        loop {
            if keyed {
                self.expect(b'"')?;
                self.string()?;
                self.space();
                self.expect(b':')?;
                self.space();
            }
            self.value(depth + 1)?;
            self.space();
            match self.next()? {
                b',' => self.space(),
                b if b == close => return Some(()),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Option<Vec<(&str, &str)>> {
        let mut out = Vec::new();
        object_entries(text, |k, v| {
            out.push((k, v));
            Some(())
        })?;
        Some(out)
    }

    #[test]
    fn entries_are_keys_and_raw_values_in_order() {
        assert_eq!(
            entries(r#" {"a" : [1, {"b": "x\"y"}], "c":-0.5e+3,"d":true , "e":null} "#),
            Some(vec![
                ("a", r#"[1, {"b": "x\"y"}]"#),
                ("c", "-0.5e+3"),
                ("d", "true"),
                ("e", "null")
            ])
        );
        assert_eq!(entries("{}"), Some(vec![]));
    }

    #[test]
    fn control_bytes_are_found_wherever_they_are() {
        assert!(!has_control_bytes(b""));
        assert!(!has_control_bytes(&[b' '; 100]));
        assert!(!has_control_bytes(&(0x20..=0xff).collect::<Vec<u8>>()));
        for len in 1..40 {
            for at in 0..len {
                for bad in [0x00, 0x01, 0x0a, 0x1f] {
                    let mut text = vec![0xa0; len];
                    text[at] = bad;
                    assert!(has_control_bytes(&text), "{len} {at} {bad}");
                }
            }
        }
    }

    #[test]
    fn the_next_quote_or_backslash_is_found_at_every_offset() {
        for len in 0..80 {
            for (i, special) in [(len, b'"'), (len, b'\\')] {
                let mut text = vec![b'a'; len + 5];
                text[i] = special;
                // A byte that differs from the target only in its high bit,
                // next to it, must not be taken for it.
                if i > 0 {
                    text[i - 1] = special | 0x80;
                }
                let s = Scanner {
                    bytes: &text,
                    at: 0,
                };
                assert_eq!(s.special(), Some(i), "{len} {special}");
            }
        }
        let s = Scanner {
            bytes: b"abcdefghijklmnopqrstuvwxyz0123456789",
            at: 0,
        };
        assert_eq!(s.special(), None);
    }

    #[test]
    fn what_is_not_json_or_is_unusual_is_declined() {
        for text in [
            "",
            "[]",
            "{",
            "{} {}",
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":"\q"}"#,
            r#"{"a":"\u00G0"}"#,
            r#"{"k\"ey":1}"#,
            "{\"a\":\"line\nbreak\"}",
            "{\n\"a\":1}",
        ] {
            assert_eq!(entries(text), None, "{text:?}");
        }
        let deep = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(entries(&deep), None);
        let shallow = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH - 2),
            "]".repeat(MAX_DEPTH - 2)
        );
        assert!(entries(&shallow).is_some());
    }
}

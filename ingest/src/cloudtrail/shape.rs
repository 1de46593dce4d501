//! Byte-level helpers for telling CloudTrail input shapes apart: the BOM,
//! lines, whether an input is line-oriented, and repairing bytes that are not
//! UTF-8 so that the records around them can still be read.

/// The UTF-8 byte-order mark some Windows tools write.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading UTF-8 byte-order mark.
pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// `bytes` without a BOM and without ASCII whitespace (`\r` included) at
/// either end.
pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    strip_bom(bytes.trim_ascii_start()).trim_ascii()
}

/// The lines of `bytes` with their 1-based numbers, each trimmed (so CRLF,
/// a BOM and blank lines need no special care).
pub(crate) fn lines(bytes: &[u8]) -> Lines<'_> {
    Lines {
        rest: Some(bytes),
        number: 0,
    }
}

/// Iterator behind [`lines`].
pub(crate) struct Lines<'a> {
    rest: Option<&'a [u8]>,
    number: u64,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest?;
        self.number += 1;
        match find_newline(rest) {
            Some(i) => {
                self.rest = rest.get(i + 1..);
                Some((self.number, trim(rest.get(..i).unwrap_or(&[]))))
            }
            None => {
                self.rest = None;
                Some((self.number, trim(rest)))
            }
        }
    }
}

/// The index of the first `\n` (memchr: 32 bytes at a time with AVX2).
fn find_newline(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}

/// True when the input is best read line by line: its first non-blank line
/// is a whole JSON object or array on its own (`{...}` or `[...]`). Then
/// one bad line costs only that line. Pretty-printed documents, whose first
/// line is `{`, `[` or `{"Records": [`, are read as documents instead.
pub(crate) fn is_line_oriented(bytes: &[u8]) -> bool {
    match lines(bytes).map(|(_, l)| l).find(|l| !l.is_empty()) {
        Some(line) => {
            let line = strip_trailing_comma(line);
            (line.starts_with(b"{") && line.ends_with(b"}"))
                || (line.len() > 1 && line.starts_with(b"[") && line.ends_with(b"]"))
        }
        None => false,
    }
}

/// A blank line, or a short line of list punctuation (`[`, `]`, `],`), as
/// found around the records of a list printed one record per line.
pub(crate) fn is_punctuation(line: &[u8]) -> bool {
    line.len() <= 2 && line.iter().all(|b| matches!(b, b'[' | b']' | b','))
}

/// A record line with the comma that separated it from the next record in a
/// list printed one record per line removed.
pub(crate) fn strip_trailing_comma(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b",") {
        Some(l) => l.trim_ascii_end(),
        None => line,
    }
}

/// Whether `bytes` mentions a `"Records"` key, so may be a whole
/// `{"Records":[...]}` file rather than one (oversized or damaged) record.
pub(crate) fn has_records_key(bytes: &[u8]) -> bool {
    const KEY: &[u8] = b"\"Records\"";
    bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'R')
        .any(|(i, _)| i > 0 && bytes.get(i - 1..i - 1 + KEY.len()) == Some(KEY))
}

/// An input whose bytes were not all UTF-8, with every such byte replaced by
/// `?` (same length, so offsets still match the original).
pub(crate) struct Repaired {
    /// The repaired text.
    pub(crate) text: String,
    /// Offsets of the replaced bytes, ascending.
    pub(crate) bad: Vec<usize>,
}

/// Replaces each byte that is not part of valid UTF-8 by `?`.
pub(crate) fn repair_utf8(bytes: &[u8]) -> Repaired {
    let mut text = String::with_capacity(bytes.len());
    let mut bad = Vec::new();
    let mut rest = bytes;
    let mut offset = 0;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                text.push_str(s);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                let skip = e.error_len().unwrap_or(rest.len() - good).max(1);
                if let Some(Ok(s)) = rest.get(..good).map(std::str::from_utf8) {
                    text.push_str(s);
                }
                for k in 0..skip {
                    bad.push(offset + good + k);
                    text.push('?');
                }
                offset += good + skip;
                rest = rest.get(good + skip..).unwrap_or(&[]);
            }
        }
    }
    Repaired { text, bad }
}

/// Where the bytes that were not UTF-8 sit in a repaired text, to tell which
/// records they fall in.
pub(crate) struct BadBytes<'o> {
    base: usize,
    len: usize,
    bad: &'o [usize],
    original: &'o [u8],
}

impl<'o> BadBytes<'o> {
    /// For `repaired`, made from `original`.
    pub(crate) fn new(repaired: &'o Repaired, original: &'o [u8]) -> Self {
        Self {
            base: repaired.text.as_ptr() as usize,
            len: repaired.text.len(),
            bad: &repaired.bad,
            original,
        }
    }

    /// When `part` (a slice of the repaired text) holds a replaced byte, the
    /// original bytes of `part`.
    pub(crate) fn within(&self, part: &str) -> Option<&'o [u8]> {
        let start = (part.as_ptr() as usize).checked_sub(self.base)?;
        let end = start.checked_add(part.len())?;
        if end > self.len {
            return None;
        }
        let first = self.bad.partition_point(|&o| o < start);
        let hit = self.bad.get(first).is_some_and(|&o| o < end);
        hit.then(|| self.original.get(start..end).unwrap_or(&[]))
    }

    /// The offset, inside `part`, of its first replaced byte.
    pub(crate) fn first_in(&self, part: &str) -> Option<usize> {
        let start = (part.as_ptr() as usize).checked_sub(self.base)?;
        let first = self.bad.partition_point(|&o| o < start);
        self.bad.get(first).map(|&o| o - start)
    }
}

/// The byte offset of a serde_json error position (1-based line, column) in
/// `text`, clamped to the text and moved back to a character boundary.
pub(crate) fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match find_newline(text.as_bytes().get(start..).unwrap_or(&[])) {
            Some(i) => start += i + 1,
            None => break,
        }
    }
    let mut at = start
        .saturating_add(column.saturating_sub(1))
        .min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A little of `text` before and after `at`, for dead-letter excerpts.
pub(crate) fn around(text: &str, at: usize) -> &str {
    let mut start = at.saturating_sub(160).min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    text.get(start..).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_trimmed() {
        let input = b"\xEF\xBB\xBF{\"a\":1}\r\n\r\n  {\"b\":2}  \n{\"c\":3}";
        let got: Vec<_> = lines(input).collect();
        assert_eq!(
            got,
            vec![
                (1, &b"{\"a\":1}"[..]),
                (2, &b""[..]),
                (3, &b"{\"b\":2}"[..]),
                (4, &b"{\"c\":3}"[..]),
            ]
        );
    }

    #[test]
    fn newline_search_matches_a_plain_scan() {
        for len in 0..40 {
            for nl in 0..=len {
                let mut v = vec![b'x'; len];
                if nl < len {
                    v[nl] = b'\n';
                }
                let expected = v.iter().position(|&b| b == b'\n');
                assert_eq!(find_newline(&v), expected, "len {len} nl {nl}");
            }
        }
    }

    #[test]
    fn line_orientation_follows_the_first_line() {
        assert!(is_line_oriented(b"{\"a\":1}\n{\"b\":2}\n"));
        assert!(is_line_oriented(b"\n\n{\"Records\":[]}"));
        assert!(!is_line_oriented(b"{\n \"Records\": [\n ]\n}"));
        assert!(!is_line_oriented(b"[\n{\"a\":1}\n]"));
        assert!(!is_line_oriented(b""));
    }

    #[test]
    fn records_key_is_found_anywhere() {
        assert!(has_records_key(b"{\"x\":1,\"Records\":[]}"));
        assert!(!has_records_key(b"{\"Record\":[]} Records"));
    }

    #[test]
    fn repair_keeps_offsets() {
        let r = repair_utf8(b"ab\xffc\xe2\x82");
        assert_eq!(r.text, "ab?c??");
        assert_eq!(r.bad, vec![2, 4, 5]);
        let bad = BadBytes::new(&r, b"ab\xffc\xe2\x82");
        assert_eq!(bad.within(&r.text[0..2]), None);
        assert_eq!(bad.within(&r.text[1..4]), Some(&b"b\xffc"[..]));
        assert_eq!(bad.first_in(&r.text[1..4]), Some(1));
    }

    #[test]
    fn offsets_from_line_and_column() {
        let t = "ab\ncdef\ng";
        assert_eq!(offset_of(t, 2, 3), 5);
        assert_eq!(offset_of(t, 9, 9), t.len());
    }
}

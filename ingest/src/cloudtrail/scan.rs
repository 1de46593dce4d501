//! The fast first reading of a record: one JSON object split into its
//! top-level entries, every value checked against the JSON grammar and kept
//! as its raw text, nothing built.
//!
//! It does what serde_json does when it reads a record into raw values
//! ([`super::record::read_object`]) with under half the instructions.
//! Strings, the bulk of CloudTrail, are crossed without looking at their
//! bytes one by one: before the scan, one pass over the whole text, 64 bytes
//! at a time with SSE2 (part of every x86-64 CPU), marks in a bitmap where
//! each `"` and `\` is and checks that no byte is a control character
//! (never allowed raw inside a JSON string, and declined outside them). A
//! string then ends at the next marked bit. BENCHMARKS.md says what else
//! was tried.
//!
//! It only ever says yes to a text serde_json also accepts, with the same
//! entries; anything unusual it declines (`None`) rather than judges, and
//! the caller reads the text with serde_json, which streams `Records` lists
//! and words the error. Declined: any control character in the text (so
//! pretty-printed records, whose newlines are whitespace, take the serde
//! path), keys holding escapes, nesting deeper than [`MAX_DEPTH`].

/// Containers deeper than this are declined (serde_json reads them), so the
/// recursion here stays shallow whatever the input.
pub(crate) const MAX_DEPTH: usize = 64;

/// Splits `text`, one JSON object with optional whitespace around it, into
/// its entries: `(key, raw value, plain)` in input order, keys as written
/// (they hold no escapes), values as their exact text, `plain` when the
/// value is a string holding no escape. `None` when the text is not
/// such an object or is declined (see the module page); otherwise whether
/// the text is compact: no whitespace outside its strings, so that every
/// value is already the compact JSON text of itself.
pub(crate) fn object_entries<'a>(
    text: &'a str,
    mut each: impl FnMut(&'a str, &'a str, bool) -> Option<()>,
) -> Option<bool> {
    scan(text, |s| {
        s.expect(b'{')?;
        s.space();
        if s.peek() == Some(b'}') {
            s.at += 1;
            return Some(());
        }
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
            let plain = if s.peek() == Some(b'"') {
                s.at += 1;
                !s.string()?
            } else {
                s.value(1)?;
                false
            };
            each(key, text.get(value_start..s.at)?, plain)?;
            s.space();
            match s.next()? {
                b',' => s.space(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    })
}

/// Splits `text`, one JSON array with optional whitespace around it, into
/// its elements' exact texts, in order; `None` when the text is not such an
/// array or is declined, as [`object_entries`] declines.
pub(crate) fn array_elements<'a>(
    text: &'a str,
    mut each: impl FnMut(&'a str) -> Option<()>,
) -> Option<()> {
    scan(text, |s| {
        s.expect(b'[')?;
        s.space();
        if s.peek() == Some(b']') {
            s.at += 1;
            return Some(());
        }
        loop {
            let start = s.at;
            s.value(1)?;
            each(text.get(start..s.at)?)?;
            s.space();
            match s.next()? {
                b',' => s.space(),
                b']' => return Some(()),
                _ => return None,
            }
        }
    })
    .map(drop)
}

/// Marks `text` ([`mark_specials`]) and runs `top` on a scanner at its
/// first byte that is not a space; `Some` when `top` reads one value and
/// only spaces follow it, holding whether no space was met at all.
fn scan(text: &str, top: impl FnOnce(&mut Scanner<'_>) -> Option<()>) -> Option<bool> {
    let bytes = text.as_bytes();
    // Texts of up to 4 KiB (nearly every record) keep their bitmap on the
    // stack.
    let mut small = [0u64; 64];
    let mut large = Vec::new();
    let words = bytes.len().div_ceil(64);
    let marks = match small.get_mut(..words) {
        Some(marks) => marks,
        None => {
            large.resize(words, 0);
            &mut large[..]
        }
    };
    if !mark_specials(bytes, marks) {
        return None;
    }
    let mut s = Scanner {
        bytes,
        marks,
        at: 0,
        spaced: false,
    };
    s.space();
    top(&mut s)?;
    s.space();
    (s.at == bytes.len()).then_some(!s.spaced)
}

/// Sets bit `i % 64` of `marks[i / 64]` for every byte `i` of `bytes` that
/// is `"` or `\\` (and clears the others); `marks` holds one word per 64
/// bytes. Returns `false` when a byte is a control character (below 0x20).
fn mark_specials(bytes: &[u8], marks: &mut [u64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU running this has AVX2, as just checked, which is
        // all `avx2::mark_specials` needs.
        return unsafe { avx2::mark_specials(bytes, marks) };
    }
    mark_with(bytes, marks, mark_block)
}

/// [`mark_specials`] with `block` marking each 64 bytes.
#[inline(always)]
fn mark_with(bytes: &[u8], marks: &mut [u64], block: impl Fn(&[u8; 64]) -> (u64, bool)) -> bool {
    let mut blocks = bytes.chunks_exact(64);
    let mut control = false;
    let mut words = marks.iter_mut();
    for (chunk, word) in (&mut blocks).zip(&mut words) {
        let Ok(chunk) = <&[u8; 64]>::try_from(chunk) else {
            return false;
        };
        let (bits, has_control) = block(chunk);
        *word = bits;
        control |= has_control;
    }
    let rest = blocks.remainder();
    if let (Some(word), false) = (words.next(), rest.is_empty()) {
        // Padded with spaces: neither marked nor control characters.
        let mut padded = [b' '; 64];
        if let Some(head) = padded.get_mut(..rest.len()) {
            head.copy_from_slice(rest);
        }
        let (bits, has_control) = block(&padded);
        *word = bits;
        control |= has_control;
    }
    !control
}

/// The marks of one 64-byte block, and whether it holds a control byte.
#[cfg(target_arch = "x86_64")]
fn mark_block(block: &[u8; 64]) -> (u64, bool) {
    // SAFETY: SSE2 is part of the x86-64 baseline, so every CPU this code
    // is compiled for has it; `sse2::mark_block` only needs that.
    unsafe { sse2::mark_block(block) }
}

/// The marks of one 64-byte block, and whether it holds a control byte.
#[cfg(not(target_arch = "x86_64"))]
fn mark_block(block: &[u8; 64]) -> (u64, bool) {
    let mut bits = 0u64;
    let mut control = false;
    for (i, &b) in block.iter().enumerate() {
        bits |= u64::from(b == b'"' || b == b'\\') << i;
        control |= b < 0x20;
    }
    (bits, control)
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };

    /// 16 bytes into a register, from two little-endian words (compiled to
    /// one unaligned load).
    #[target_feature(enable = "sse2")]
    fn load(bytes: &[u8; 16]) -> __m128i {
        let [a, b, c, d, e, f, g, h, rest @ ..] = *bytes;
        let low = i64::from_le_bytes([a, b, c, d, e, f, g, h]);
        let high = i64::from_le_bytes(rest);
        _mm_set_epi64x(high, low)
    }

    /// See the portable version above: the same, 16 bytes per comparison.
    #[target_feature(enable = "sse2")]
    pub(super) fn mark_block(block: &[u8; 64]) -> (u64, bool) {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let below_space = _mm_set1_epi8(0x1f);
        let mut bits = 0u64;
        let mut control = 0i32;
        for (i, part) in block.chunks_exact(16).enumerate() {
            let Ok(part) = <&[u8; 16]>::try_from(part) else {
                continue;
            };
            let v = load(part);
            let special = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
            bits |= u64::from(_mm_movemask_epi8(special) as u16) << (16 * i);
            // A byte is at most 0x1f when the unsigned minimum with 0x1f is
            // the byte itself.
            control |= _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, below_space), v));
        }
        (bits, control != 0)
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    /// Where `"` and `\\` are ([`mark_specials`]).
    marks: &'a [u64],
    at: usize,
    /// A space was skipped somewhere (outside strings).
    spaced: bool,
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
            self.spaced = true;
        }
    }

    /// From just after an opening quote to just after the closing one.
    /// Returns whether the string held an escape.
    #[inline(always)]
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

    /// Where the next `"` or `\\` is, from the bitmap.
    #[inline(always)]
    fn special(&self) -> Option<usize> {
        let mut word = self.at / 64;
        let bits = self.marks.get(word)? >> (self.at % 64);
        if bits != 0 {
            return Some(self.at + bits.trailing_zeros() as usize);
        }
        loop {
            word += 1;
            let bits = *self.marks.get(word)?;
            if bits != 0 {
                return Some(word * 64 + bits.trailing_zeros() as usize);
            }
        }
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

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_min_epu8, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set_epi64x, _mm256_set1_epi8,
    };

    /// [`super::mark_specials`] 32 bytes per comparison, for CPUs with AVX2
    /// (most x86-64 servers since 2013).
    #[target_feature(enable = "avx2")]
    pub(super) fn mark_specials(bytes: &[u8], marks: &mut [u64]) -> bool {
        super::mark_with(bytes, marks, |block| mark_block(block))
    }

    /// 32 bytes into a register, from four little-endian words (compiled
    /// to one unaligned load).
    #[target_feature(enable = "avx2")]
    fn load(bytes: &[u8; 32]) -> __m256i {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            if let Some(part) = bytes.get(i * 8..i * 8 + 8) {
                w.copy_from_slice(part);
            }
            i64::from_le_bytes(w)
        };
        _mm256_set_epi64x(word(3), word(2), word(1), word(0))
    }

    #[target_feature(enable = "avx2")]
    fn mark_block(block: &[u8; 64]) -> (u64, bool) {
        let quote = _mm256_set1_epi8(b'"' as i8);
        let backslash = _mm256_set1_epi8(b'\\' as i8);
        let below_space = _mm256_set1_epi8(0x1f);
        let mut bits = 0u64;
        let mut control = 0i32;
        for (i, part) in block.chunks_exact(32).enumerate() {
            let Ok(part) = <&[u8; 32]>::try_from(part) else {
                continue;
            };
            let v = load(part);
            let special =
                _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash));
            bits |= u64::from(_mm256_movemask_epi8(special) as u32) << (32 * i);
            control |= _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(v, below_space), v));
        }
        (bits, control != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Option<Vec<(&str, &str)>> {
        let mut out = Vec::new();
        object_entries(text, |k, v, _| {
            out.push((k, v));
            Some(())
        })?;
        Some(out)
    }

    /// The keys whose values the scan calls plain strings.
    fn plain_keys(text: &str) -> Option<Vec<&str>> {
        let mut out = Vec::new();
        object_entries(text, |k, _, plain| {
            if plain {
                out.push(k);
            }
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
    fn a_text_is_compact_when_no_space_is_outside_its_strings() {
        let compact = |text| object_entries(text, |_, _, _| Some(()));
        assert_eq!(compact(r#"{"a":[1,{"b":"x y"}],"c":" "}"#), Some(true));
        assert_eq!(compact("{}"), Some(true));
        for spaced in [
            r#"{"a":[1, 2]}"#,
            r#"{"a":{"b" :1}}"#,
            r#"{"a":{"b": 1}}"#,
            r#"{"a":[ ]}"#,
            r#"{"a":1 }"#,
            r#" {"a":1}"#,
            r#"{"a":1} "#,
            r#"{ "a":1}"#,
        ] {
            assert_eq!(compact(spaced), Some(false), "{spaced}");
        }
    }

    #[test]
    fn only_strings_without_escapes_are_plain() {
        assert_eq!(
            plain_keys(
                r#"{"a":"x","b":"x\"y","c":"\u0041","d":["x"],"e":{"f":"x"},"g":"","h":1,"i":null}"#
            ),
            Some(vec!["a", "g"])
        );
    }

    /// The marks of `bytes` and whether it is free of control bytes.
    /// Also checks that the path not taken on this CPU (SSE2 when it has
    /// AVX2) marks the same.
    fn marked(bytes: &[u8]) -> (Vec<u64>, bool) {
        let mut marks = vec![u64::MAX; bytes.len().div_ceil(64)];
        let clean = mark_specials(bytes, &mut marks);
        let mut baseline = vec![u64::MAX; bytes.len().div_ceil(64)];
        let baseline_clean = mark_with(bytes, &mut baseline, mark_block);
        assert_eq!((&marks, clean), (&baseline, baseline_clean));
        (marks, clean)
    }

    #[test]
    fn control_bytes_are_found_wherever_they_are() {
        assert!(marked(b"").1);
        assert!(marked(&[b' '; 100]).1);
        assert!(marked(&(0x20..=0xff).collect::<Vec<u8>>()).1);
        for len in 1..140 {
            for at in 0..len {
                for bad in [0x00, 0x01, 0x0a, 0x1f] {
                    let mut text = vec![0xa0; len];
                    text[at] = bad;
                    assert!(!marked(&text).1, "{len} {at} {bad}");
                }
            }
        }
    }

    #[test]
    fn every_quote_and_backslash_is_marked_and_nothing_else() {
        let text: Vec<u8> = (0..1000u32)
            .map(|i| match i % 7 {
                0 => b'"',
                3 if i % 2 == 0 => b'\\',
                // Bytes that differ from the marked ones only in their high
                // bit must not be taken for them.
                4 => b'"' | 0x80,
                5 => b'\\' | 0x80,
                _ => (0x20 + i % 0x60) as u8,
            })
            .collect();
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 1000] {
            let bytes = &text[..len];
            let (marks, clean) = marked(bytes);
            assert!(clean);
            for (i, b) in bytes.iter().enumerate() {
                let bit = marks[i / 64] >> (i % 64) & 1 == 1;
                assert_eq!(bit, *b == b'"' || *b == b'\\', "{len} {i}");
            }
            if len % 64 != 0 {
                assert_eq!(marks[len / 64] >> (len % 64), 0, "padding marked");
            }
        }
    }

    #[test]
    fn the_next_quote_or_backslash_is_found_at_every_offset() {
        for len in 0..200 {
            for (i, special) in [(len, b'"'), (len, b'\\')] {
                let mut text = vec![b'a'; len + 5];
                text[i] = special;
                let (marks, _) = marked(&text);
                for from in [0, i / 2, i] {
                    let s = Scanner {
                        bytes: &text,
                        marks: &marks,
                        at: from,
                        spaced: false,
                    };
                    assert_eq!(s.special(), Some(i), "{len} {special} {from}");
                }
            }
        }
        let text = b"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789";
        let (marks, _) = marked(text);
        let s = Scanner {
            bytes: text,
            marks: &marks,
            at: 0,
            spaced: false,
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

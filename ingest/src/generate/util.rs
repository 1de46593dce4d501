//! Small deterministic helpers shared by the generator: derived ids, time
//! formatting and allocation-free JSON writing into a byte buffer.

use rand::Rng;
use rand::rngs::SmallRng;

/// One second in microseconds.
pub(crate) const SECOND: i64 = 1_000_000;
/// One minute in microseconds.
pub(crate) const MINUTE: i64 = 60 * SECOND;
/// One hour in microseconds.
pub(crate) const HOUR: i64 = 60 * MINUTE;
/// One day in microseconds.
pub(crate) const DAY: i64 = 24 * HOUR;

/// The splitmix64 finaliser: a cheap, well-mixed hash of one word.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash of several words, for ids that must not depend on draw order.
pub(crate) fn hash(parts: &[u64]) -> u64 {
    let mut h = 0x5bd1_e995_u64;
    for p in parts {
        h = mix(h ^ mix(*p));
    }
    h
}

/// A seeded generator for one purpose, independent of every other stream.
pub(crate) fn stream(seed: u64, purpose: u64) -> SmallRng {
    use rand::SeedableRng;
    SmallRng::seed_from_u64(hash(&[seed, purpose]))
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The lowercase hex digit of the low four bits of `n`.
fn hex_digit(n: u8) -> u8 {
    match n & 15 {
        d @ 0..=9 => b'0' + d,
        d => b'a' + d - 10,
    }
}

/// Appends a version-4 UUID built from two words.
pub(crate) fn push_uuid_from(buf: &mut Vec<u8>, a: u64, b: u64) {
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let bytes = [a.to_be_bytes(), b.to_be_bytes()];
    let mut i = 0;
    for half in bytes {
        for byte in half {
            if matches!(i, 4 | 6 | 8 | 10) {
                buf.push(b'-');
            }
            buf.push(hex_digit(byte >> 4));
            buf.push(hex_digit(byte));
            i += 1;
        }
    }
}

/// Appends a random version-4 UUID.
pub(crate) fn push_uuid(buf: &mut Vec<u8>, rng: &mut SmallRng) {
    let (a, b) = (rng.r#gen::<u64>(), rng.r#gen::<u64>());
    push_uuid_from(buf, a, b);
}

/// A random version-4 UUID as a string.
pub(crate) fn uuid(rng: &mut SmallRng) -> String {
    let mut v = Vec::with_capacity(36);
    push_uuid(&mut v, rng);
    String::from_utf8(v).unwrap_or_default()
}

/// A version-4 UUID derived from a hash, as a string.
pub(crate) fn uuid_from(h: u64) -> String {
    let mut v = Vec::with_capacity(36);
    push_uuid_from(&mut v, h, mix(h));
    String::from_utf8(v).unwrap_or_default()
}

fn push_from_alphabet(buf: &mut Vec<u8>, alphabet: &[u8], n: usize, mut h: u64) {
    let len = alphabet.len() as u64;
    for i in 0..n {
        if i % 8 == 0 {
            h = mix(h.wrapping_add(i as u64));
        }
        let idx = (h % len) as usize;
        h /= len;
        if let Some(c) = alphabet.get(idx) {
            buf.push(*c);
        }
    }
}

/// Appends `n` lower-case hex digits derived from `h`.
pub(crate) fn push_hex(buf: &mut Vec<u8>, n: usize, h: u64) {
    push_from_alphabet(buf, HEX_LOWER, n, h);
}

/// Appends `n` upper-case hex digits derived from `h`.
pub(crate) fn push_hex_upper(buf: &mut Vec<u8>, n: usize, h: u64) {
    push_from_alphabet(buf, HEX_UPPER, n, h);
}

/// Appends `n` base64 characters derived from `h`.
pub(crate) fn push_b64(buf: &mut Vec<u8>, n: usize, h: u64) {
    push_from_alphabet(buf, BASE64, n, h);
}

/// `n` lower-case hex digits derived from `h`, as a string.
pub(crate) fn hex(n: usize, h: u64) -> String {
    let mut v = Vec::with_capacity(n);
    push_hex(&mut v, n, h);
    String::from_utf8(v).unwrap_or_default()
}

/// `n` letters and digits derived from `h`, as a string.
pub(crate) fn alnum(n: usize, h: u64) -> String {
    let mut v = Vec::with_capacity(n);
    push_from_alphabet(&mut v, ALNUM, n, h);
    String::from_utf8(v).unwrap_or_default()
}

/// An AWS-style identifier: a four-letter prefix (`AKIA`, `ASIA`, `AIDA`,
/// `AROA`) and sixteen base32 characters derived from `h`.
pub(crate) fn push_aws_id(buf: &mut Vec<u8>, prefix: &str, h: u64) {
    buf.extend_from_slice(prefix.as_bytes());
    push_from_alphabet(buf, BASE32, 16, h);
}

/// [`push_aws_id`] as a string.
pub(crate) fn aws_id(prefix: &str, h: u64) -> String {
    let mut v = Vec::with_capacity(20);
    push_aws_id(&mut v, prefix, h);
    String::from_utf8(v).unwrap_or_default()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day of week, 0 = Monday, for a time in microseconds.
pub(crate) fn weekday(micros: i64) -> u32 {
    (micros.div_euclid(DAY) + 3).rem_euclid(7) as u32
}

fn push_2(buf: &mut Vec<u8>, n: u32) {
    buf.push(b'0' + (n / 10 % 10) as u8);
    buf.push(b'0' + (n % 10) as u8);
}

/// Appends an unsigned integer in decimal.
pub(crate) fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        if let Some(slot) = tmp.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.extend_from_slice(tmp.get(i..).unwrap_or(&[]));
}

/// Appends a signed integer in decimal.
pub(crate) fn push_i64(buf: &mut Vec<u8>, n: i64) {
    if n < 0 {
        buf.push(b'-');
    }
    push_u64(buf, n.unsigned_abs());
}

/// Appends `YYYY-MM-DDTHH:MM:SS` plus `frac` fractional digits (0, 3 or 6)
/// and `Z`, for a time in microseconds UTC.
pub(crate) fn push_time(buf: &mut Vec<u8>, micros: i64, frac: u32) {
    let secs = micros.div_euclid(SECOND);
    let sub = micros.rem_euclid(SECOND) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    push_u64(buf, y.max(0) as u64);
    buf.push(b'-');
    push_2(buf, mo);
    buf.push(b'-');
    push_2(buf, d);
    buf.push(b'T');
    push_2(buf, sod / 3600);
    buf.push(b':');
    push_2(buf, sod / 60 % 60);
    buf.push(b':');
    push_2(buf, sod % 60);
    if frac > 0 {
        buf.push(b'.');
        let mut div = 100_000;
        for _ in 0..frac.min(6) {
            buf.push(b'0' + (sub / div % 10) as u8);
            div /= 10;
        }
    }
    buf.push(b'Z');
}

/// RFC 3339 text for a time in microseconds, with `frac` fractional digits.
pub(crate) fn rfc3339(micros: i64, frac: u32) -> String {
    let mut v = Vec::with_capacity(27);
    push_time(&mut v, micros, frac);
    String::from_utf8(v).unwrap_or_default()
}

/// The `Nov 2, 2026, 9:13:45 AM` style some AWS services use in responses.
pub(crate) fn push_aws_date(buf: &mut Vec<u8>, micros: i64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = micros.div_euclid(SECOND);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    let month = MONTHS
        .get(mo.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    let (h, ampm) = match sod / 3600 {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    buf.extend_from_slice(month.as_bytes());
    buf.push(b' ');
    push_u64(buf, u64::from(d));
    buf.extend_from_slice(b", ");
    push_u64(buf, y.max(0) as u64);
    buf.extend_from_slice(b", ");
    push_u64(buf, u64::from(h));
    buf.push(b':');
    push_2(buf, sod / 60 % 60);
    buf.push(b':');
    push_2(buf, sod % 60);
    buf.push(b' ');
    buf.extend_from_slice(ampm.as_bytes());
}

/// Appends `s` as a JSON string, quotes included.
pub(crate) fn push_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    push_escaped(buf, s);
    buf.push(b'"');
}

/// Appends `s` escaped for the inside of a JSON string.
pub(crate) fn push_escaped(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(bytes.get(start..i).unwrap_or(&[]));
        if esc.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(hex_digit(b >> 4));
            buf.push(hex_digit(b));
        } else {
            buf.extend_from_slice(esc);
        }
        start = i + 1;
    }
    buf.extend_from_slice(bytes.get(start..).unwrap_or(&[]));
}

/// Appends `"key":` (the key must need no escaping).
pub(crate) fn push_key(buf: &mut Vec<u8>, key: &str) {
    buf.push(b'"');
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\":");
}

/// Appends `"key":"value"` with the value escaped.
pub(crate) fn push_kv(buf: &mut Vec<u8>, key: &str, value: &str) {
    push_key(buf, key);
    push_str(buf, value);
}

/// Picks one element of a slice uniformly (the default value when it is empty).
pub(crate) fn pick<T: Copy + Default>(rng: &mut SmallRng, items: &[T]) -> T {
    if items.is_empty() {
        return T::default();
    }
    items
        .get(rng.gen_range(0..items.len()))
        .copied()
        .unwrap_or_default()
}

/// A roughly normal draw (sum of uniforms), mean 0, standard deviation 1.
pub(crate) fn normalish(rng: &mut SmallRng) -> f64 {
    let s: f64 = (0..6).map(|_| rng.r#gen::<f64>()).sum();
    (s - 3.0) * std::f64::consts::SQRT_2
}

/// An exponential draw with the given mean.
pub(crate) fn exp(rng: &mut SmallRng, mean: f64) -> f64 {
    let u: f64 = rng.gen_range(1e-9..1.0);
    -u.ln() * mean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_dates() {
        let t = 1_793_611_234_567_890; // 2026-11-02T09:20:34.567890Z
        assert_eq!(rfc3339(t, 0), "2026-11-02T09:20:34Z");
        assert_eq!(rfc3339(t, 3), "2026-11-02T09:20:34.567Z");
        assert_eq!(rfc3339(t, 6), "2026-11-02T09:20:34.567890Z");
        let mut b = Vec::new();
        push_aws_date(&mut b, t);
        assert_eq!(b, b"Nov 2, 2026, 9:20:34 AM");
        assert_eq!(weekday(t), 0);
    }

    #[test]
    fn escapes_json() {
        let mut b = Vec::new();
        push_str(&mut b, "a\"b\\c\nd\u{1}");
        assert_eq!(b, br#""a\"b\\c\nd\u0001""#);
    }

    #[test]
    fn builds_ids() {
        let u = uuid_from(42);
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes().get(14), Some(&b'4'));
        assert_eq!(aws_id("AKIA", 1).len(), 20);
    }
}

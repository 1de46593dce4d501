//! From an input (file, stdin, bytes) to parsed events: decompression with
//! limits, format recognition, and dispatch to the right parser.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::emit::{Emit, ParseContext, Position};
use crate::format::{Format, sniff};
use crate::{cloudtrail, session};

/// Errors reading inputs. Parse problems inside an input are dead letters, not errors.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A path given on the command line does not exist or cannot be read.
    /// Retrying helps only if the file appears or its permissions change.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A glob pattern is malformed. Retrying does not help.
    #[error("bad glob pattern {pattern:?}: {reason}")]
    Glob {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// What became of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSummary {
    /// The format it was read as.
    pub format: Format,
    /// True when the input was recognised and deliberately skipped (digest files, generator labels).
    pub skipped: bool,
}

pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decompresses `raw` when it is gzip, within the context's limits.
///
/// A truncated or corrupt stream yields the bytes that could be recovered and
/// a dead letter saying where it broke; a stream over the size or ratio limit
/// yields nothing and a dead letter.
pub fn decompress<'a>(
    raw: &'a [u8],
    ctx: &ParseContext,
    out: &mut dyn Emit,
) -> std::borrow::Cow<'a, [u8]> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return std::borrow::Cow::Borrowed(raw);
    }
    let limits = ctx.limits;
    let ratio_cap = (raw.len() as u64)
        .saturating_mul(limits.max_decompression_ratio)
        .max(1024 * 1024);
    let cap = limits.max_input_bytes.min(ratio_cap);
    let mut decoded = Vec::new();
    let mut reader = MultiGzDecoder::new(raw).take(cap.saturating_add(1));
    match reader.read_to_end(&mut decoded) {
        Ok(_) if decoded.len() as u64 > cap => {
            let why = if cap == ratio_cap && cap < limits.max_input_bytes {
                format!(
                    "gzip input expands more than {}x its compressed size of {} bytes; refused as a likely decompression bomb",
                    limits.max_decompression_ratio,
                    raw.len()
                )
            } else {
                format!(
                    "gzip input expands past the {}-byte input limit",
                    limits.max_input_bytes
                )
            };
            out.dead_letter(ctx.dead_letter(Position::Whole, "decompressed_too_large", why, b""));
            std::borrow::Cow::Owned(Vec::new())
        }
        Ok(_) => std::borrow::Cow::Owned(decoded),
        Err(e) => {
            out.dead_letter(ctx.dead_letter(
                Position::Byte(decoded.len() as u64),
                "bad_gzip",
                format!(
                    "gzip stream is corrupt or truncated after {} decompressed bytes ({e}); the records before that point are still read",
                    decoded.len()
                ),
                b"",
            ));
            std::borrow::Cow::Owned(decoded)
        }
    }
}

/// Parses one whole input: decompresses it, recognises its format and hands
/// it to the right parser. Never fails: problems become dead letters.
pub fn parse_input(raw: &[u8], ctx: &ParseContext, out: &mut dyn Emit) -> InputSummary {
    let bytes = decompress(raw, ctx, out);
    let format = sniff(&ctx.origin, &bytes);
    let mut skipped = false;
    match format {
        Format::CloudTrail => cloudtrail::parse(&bytes, ctx, out),
        Format::CloudTrailDigest | Format::GeneratorLabels => skipped = true,
        Format::Asciinema => session::asciinema::parse(&bytes, ctx, out),
        Format::Teleport => session::teleport::parse(&bytes, ctx, out),
        Format::Cowrie => session::cowrie::parse(&bytes, ctx, out),
        Format::SessionJsonl => session::jsonl::parse(&bytes, ctx, out),
        Format::GrantJsonl => crate::grants::jsonl::parse(&bytes, ctx, out),
        Format::Unknown => {
            if !bytes.iter().all(u8::is_ascii_whitespace) {
                out.dead_letter(ctx.dead_letter(
                    Position::Whole,
                    "unknown_format",
                    "not CloudTrail JSON, an asciinema cast, Teleport, Cowrie, trailhound session JSON lines or grants JSON lines",
                    &bytes,
                ));
            }
        }
    }
    InputSummary { format, skipped }
}

/// Reads a file whole, refusing files over the input limit.
pub fn read_file(path: &Path, ctx: &ParseContext) -> Result<Vec<u8>, InputError> {
    let io = |source| InputError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(ctx.limits.max_input_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(bytes)
}

/// Expands command-line arguments into the files to read, in a stable order:
/// a file stays itself, a folder is walked recursively (hidden entries
/// skipped), anything else is treated as a glob pattern.
pub fn expand_paths(args: &[String]) -> Result<Vec<PathBuf>, InputError> {
    let mut files = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        if path.is_file() {
            files.push(path.to_path_buf());
        } else if path.is_dir() {
            walk(path, &mut files).map_err(|source| InputError::Io {
                path: arg.clone(),
                source,
            })?;
        } else {
            let matches = glob::glob(arg).map_err(|e| InputError::Glob {
                pattern: arg.clone(),
                reason: e.to_string(),
            })?;
            let before = files.len();
            for m in matches.flatten() {
                if m.is_dir() {
                    walk(&m, &mut files).map_err(|source| InputError::Io {
                        path: m.display().to_string(),
                        source,
                    })?;
                } else {
                    files.push(m);
                }
            }
            if files.len() == before {
                return Err(InputError::Io {
                    path: arg.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such file, folder or matching glob",
                    ),
                });
            }
        }
    }
    order_by_time_in_name(&mut files);
    Ok(files)
}

/// Puts files in the order their names say they were written: the UTC
/// timestamp of CloudTrail object names (`..._20261102T1005Z_...`), else a
/// date in the path (`2026-11-02`, `2026/11/02`, `20261102`). Files whose
/// names carry no time keep their relative order and come first. Replaying
/// in this order feeds baselines and correlations in (roughly) event-time
/// order across accounts, regions and sources, instead of account by
/// account. Files whose names say nothing (asciinema casts named by session
/// id) are placed by the time in their first line. The sort is stable, so
/// files of one time keep path order.
pub fn order_by_time_in_name(files: &mut [PathBuf]) {
    files.sort_by_cached_key(|p| match time_in_name(&p.to_string_lossy()) {
        0 => time_in_head(p),
        t => t,
    });
}

/// For a file whose name carries no time: the time its first line says,
/// as `YYYYMMDDHHMM`, from an asciinema header's `"timestamp": <unix
/// seconds>` or an RFC 3339 `time` / `eventTime` / `@timestamp` field in
/// the first 4 KiB (gunzipped when gzip); 0 when none.
fn time_in_head(path: &Path) -> u64 {
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    let mut head = Vec::with_capacity(4096);
    let mut magic = [0u8; 2];
    let gz = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == [0x1f, 0x8b];
    let read = if gz {
        MultiGzDecoder::new(file).take(4096).read_to_end(&mut head)
    } else {
        file.take(4096).read_to_end(&mut head)
    };
    if read.is_err() && head.is_empty() {
        return 0;
    }
    let text = String::from_utf8_lossy(&head);
    if let Some(at) = text.find("\"timestamp\":") {
        let digits: String = text[at + 12..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Some(t) = digits
            .parse::<i64>()
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        {
            return t.format("%Y%m%d%H%M").to_string().parse().unwrap_or(0);
        }
    }
    for key in ["\"eventTime\":\"", "\"time\":\"", "\"@timestamp\":\""] {
        if let Some(at) = text.find(key)
            && let Some(rest) = text.get(at + key.len()..)
            && let Some(t) = rest.get(..16)
        {
            let digits: String = t.chars().filter(char::is_ascii_digit).collect();
            if digits.len() == 12
                && let Ok(v) = digits.parse::<u64>()
            {
                return v;
            }
        }
    }
    0
}

/// The time a file name says, as `YYYYMMDDHHMM` (0 when none).
fn time_in_name(path: &str) -> u64 {
    let bytes = path.as_bytes();
    let digits = |at: usize, n: usize| -> Option<u64> {
        let s = bytes.get(at..at + n)?;
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| s.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0')))
    };
    let plausible = |y: u64, m: u64, d: u64| {
        (1990..=2200).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
    };
    // CloudTrail: 8 digits, 'T', 4 digits, 'Z'.
    for i in 0..bytes.len() {
        if let (Some(date), Some(b'T'), Some(hm), Some(b'Z')) = (
            digits(i, 8),
            bytes.get(i + 8),
            digits(i + 9, 4),
            bytes.get(i + 13),
        ) && plausible(date / 10_000, date / 100 % 100, date % 100)
        {
            return date * 10_000 + hm;
        }
    }
    // A date: YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD (the last one found wins,
    // so a day folder beats a year in a parent folder name).
    let mut found = 0;
    for i in 0..bytes.len() {
        let (Some(y), sep) = (digits(i, 4), bytes.get(i + 4).copied()) else {
            continue;
        };
        let (m, d) = match sep {
            Some(b'-') | Some(b'/') => (
                digits(i + 5, 2),
                (bytes.get(i + 7) == sep.as_ref())
                    .then(|| digits(i + 8, 2))
                    .flatten(),
            ),
            _ => (digits(i + 4, 2), digits(i + 6, 2)),
        };
        if let (Some(m), Some(d)) = (m, d)
            && plausible(y, m, d)
        {
            found = (y * 10_000 + m * 100 + d) * 10_000;
        }
    }
    found
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, files)?;
        } else if is_data_file(&p) {
            files.push(p);
        }
    }
    Ok(())
}

/// Files in a walked folder that are obviously not logs (READMEs, licences)
/// are left out; named explicitly, any file is read.
fn is_data_file(p: &Path) -> bool {
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    !(name.ends_with(".md")
        || name.ends_with(".txt")
        || name.starts_with("license")
        || name.starts_with("readme")
        || name.ends_with(".yml")
        || name.ends_with(".yaml"))
}

#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn files_are_ordered_by_the_time_their_names_say() {
        let mut files: Vec<PathBuf> = [
            "org/AWSLogs/222/CloudTrail/us-east-1/2026/11/02/222_CloudTrail_us-east-1_20261102T1005Z_a.json.gz",
            "org/AWSLogs/111/CloudTrail/eu-west-1/2026/11/03/111_CloudTrail_eu-west-1_20261103T0005Z_b.json.gz",
            "org/AWSLogs/111/CloudTrail/us-east-1/2026/11/02/111_CloudTrail_us-east-1_20261102T0905Z_c.json.gz",
            "org/sessions/gateway/sessions-2026-11-03.jsonl",
            "org/sessions/cowrie/cowrie.json.2026-11-02",
            "org/labels.json",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        order_by_time_in_name(&mut files);
        let names: Vec<String> = files
            .iter()
            .map(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            names,
            [
                "labels.json",
                "cowrie.json.2026-11-02",
                "111_CloudTrail_us-east-1_20261102T0905Z_c.json.gz",
                "222_CloudTrail_us-east-1_20261102T1005Z_a.json.gz",
                "sessions-2026-11-03.jsonl",
                "111_CloudTrail_eu-west-1_20261103T0005Z_b.json.gz",
            ]
        );
    }
}

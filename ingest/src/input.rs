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

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

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
        Format::Unknown => {
            if !bytes.iter().all(u8::is_ascii_whitespace) {
                out.dead_letter(ctx.dead_letter(
                    Position::Whole,
                    "unknown_format",
                    "not CloudTrail JSON, an asciinema cast, Teleport, Cowrie or trailhound session JSON lines",
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
    Ok(files)
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

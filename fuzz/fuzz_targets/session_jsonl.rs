//! trailhound session JSON lines (keystroke assembly and redaction
//! included); see `trailhound_fuzz::session_jsonl`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound_fuzz::session_jsonl(data));

//! Rule files (our YAML, or Sigma when it has `detection`) through the
//! loader, the compiler and the linter; see `trailhound_fuzz::rule_yaml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound_fuzz::rule_yaml(data));

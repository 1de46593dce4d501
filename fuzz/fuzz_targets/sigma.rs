//! Sigma rules converted to SQL and compiled; see
//! `trailhound_fuzz::sigma_rule`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound_fuzz::sigma_rule(data));

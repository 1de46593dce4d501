//! asciinema v2 and v3 casts; see `trailhound_fuzz::asciinema`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound_fuzz::asciinema(data));

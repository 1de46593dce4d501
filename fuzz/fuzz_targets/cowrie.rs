//! Cowrie JSON logs; see `trailhound_fuzz::one_per_line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    trailhound_fuzz::one_per_line(trailhound_ingest::Format::Cowrie, data)
});

//! CloudTrail inputs of every shape (Records files, JSON arrays, JSON
//! lines, single records, gzip) through `parse_input`; see
//! `trailhound_fuzz::cloudtrail` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound_fuzz::cloudtrail(data));

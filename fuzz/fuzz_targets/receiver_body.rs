//! Request bodies of the gateway receiver (`POST /v1/sessions`), read by
//! `trailhound_receive::read_body`; see `trailhound_fuzz::receiver_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound_fuzz::receiver_body(data));

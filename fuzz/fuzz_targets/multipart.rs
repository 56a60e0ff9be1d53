#![no_main]
//! See `gateway_core::fuzzing::multipart` for the input format and invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_core::fuzzing::multipart(data));

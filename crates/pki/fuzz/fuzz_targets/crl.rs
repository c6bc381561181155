//! Fuzz target: the crl parser must return an error, never panic, on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qaqpa_pki::fuzzing::crl(data);
});

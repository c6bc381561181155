//! Fuzz target: the cms parser must return an error, never panic, on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qaqpa_pki::fuzzing::cms(data);
});

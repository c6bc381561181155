//! Fuzzes the safe XML reader: any input must parse or fail with an error, never panic,
//! and never exceed the limits it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qaqpa_soap::xml::{parse_bytes, XmlLimits};

fuzz_target!(|data: &[u8]| {
    let limits = XmlLimits { max_bytes: 1 << 16, max_depth: 64, max_attributes: 32, max_nodes: 10_000 };
    if let Ok(doc) = parse_bytes(data, &limits) {
        assert!(doc.descendants().count() <= 10_001);
    }
});

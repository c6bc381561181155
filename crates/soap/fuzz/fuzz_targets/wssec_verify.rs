//! Fuzzes the WS-Security and enveloped verifiers with arbitrary documents: they must return an
//! error (nothing here is signed by a trusted key), never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qaqpa_soap::{verify_envelope, verify_enveloped, PinnedCertificates, VerifyOptions, XmlLimits};

fuzz_target!(|data: &[u8]| {
    let trust = PinnedCertificates::new(Vec::new());
    let opts = VerifyOptions {
        limits: XmlLimits { max_bytes: 1 << 16, max_depth: 64, max_attributes: 32, max_nodes: 10_000 },
        ..VerifyOptions::default()
    };
    assert!(verify_envelope(data, &trust, &opts).is_err());
    assert!(verify_enveloped(data, &trust, &opts).is_err());
});

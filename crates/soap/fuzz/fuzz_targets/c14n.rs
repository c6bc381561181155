//! Fuzzes canonicalization: every method over the document and every element must not panic,
//! and canonical output must itself parse and be a fixed point of the same method.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qaqpa_soap::c14n::{C14nMethod, Canonicalizer};
use qaqpa_soap::xml::{parse, parse_bytes, XmlLimits};

fuzz_target!(|data: &[u8]| {
    let limits = XmlLimits { max_bytes: 1 << 14, max_depth: 32, max_attributes: 16, max_nodes: 2_000 };
    let Ok(doc) = parse_bytes(data, &limits) else { return };
    for method in [
        C14nMethod::Inclusive,
        C14nMethod::InclusiveWithComments,
        C14nMethod::Exclusive,
        C14nMethod::ExclusiveWithComments,
    ] {
        let c = Canonicalizer::new(method).with_inclusive_prefixes(["#default", "a"]);
        let out = c.document(&doc);
        let text = std::str::from_utf8(&out).expect("canonical XML is UTF-8");
        let again = parse(text, &XmlLimits::default()).expect("canonical XML parses");
        assert_eq!(c.document(&again), out, "c14n is not idempotent for {method:?}");
        for element in doc.descendants().filter(|n| n.is_element()).take(50) {
            let _ = c.subtree(element);
        }
    }
});

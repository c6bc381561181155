//! Document-subset canonicalization checked against libxml2's own node-set c14n, as xmlsec1
//! runs it for `#id` references (`--store-references` prints the exact pre-digest bytes).
//! This covers what lxml cannot show: inclusive c14n 1.0 copying the `xml:*` attributes of
//! ancestors onto the apex of a subtree.

use qaqpa_soap::c14n::{C14nMethod, Canonicalizer};
use qaqpa_soap::xml::{parse, XmlLimits};
use std::process::Command;

const DOC: &str = r##"<doc xmlns="urn:d" xml:lang="kk" xml:space="preserve" xml:base="http://e.kz/" xmlns:p="urn:p"><p:item Id="a" xml:lang="ru"><inner>t<!-- c --></inner><deep Id="b"><x xml:lang="en" Id="c">y</x></deep></p:item><p:other Id="d" xmlns:q="urn:q" q:at="1">z</p:other><Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo><CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/><SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>REFS</SignedInfo><SignatureValue/></Signature></doc>"##;

#[test]
fn inclusive_and_exclusive_subsets_match_xmlsec1_pre_digest_bytes() {
    let ids = ["a", "b", "c", "d"];
    let methods = [
        C14nMethod::Inclusive,
        C14nMethod::InclusiveWithComments,
        C14nMethod::Exclusive,
    ];
    let mut refs = String::new();
    for id in ids {
        for m in methods {
            refs.push_str(&format!(
                r##"<Reference URI="#{id}"><Transforms><Transform Algorithm="{}"/></Transforms><DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue/></Reference>"##,
                m.uri()
            ));
        }
    }
    let text = DOC.replace("REFS", &refs);
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, file) = (dir.path().join("key.pem"), dir.path().join("doc.xml"));
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .expect("openssl must be installed");
    assert!(out.status.success(), "openssl genpkey failed");
    std::fs::write(&file, &text).expect("write");
    let out = Command::new("xmlsec1")
        .args([
            "--sign",
            "--store-references",
            "--id-attr:Id",
            "item",
            "--id-attr:Id",
            "deep",
        ])
        .args([
            "--id-attr:Id",
            "x",
            "--id-attr:Id",
            "other",
            "--privkey-pem",
        ])
        .arg(&key)
        .arg(&file)
        .output()
        .expect("xmlsec1 must be installed (Debian package xmlsec1)");
    assert!(
        out.status.success(),
        "xmlsec1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let buffers: Vec<&str> = report
        .split("== PreDigest data - start buffer:\n")
        .skip(1)
        .map(|s| {
            s.split("\n== PreDigest data - end buffer")
                .next()
                .unwrap_or("")
        })
        .collect();
    // One buffer per reference, in document order.
    assert!(
        buffers.len() >= ids.len() * methods.len(),
        "xmlsec1 printed {} buffers",
        buffers.len()
    );

    let doc = parse(&text, &XmlLimits::default()).expect("parses");
    let mut i = 0;
    for id in ids {
        let element = doc
            .descendants()
            .find(|n| n.attribute("Id") == Some(id))
            .expect("element with Id");
        for m in methods {
            // A bare-name reference removes comments whatever the method says.
            let ours = Canonicalizer::new(m.without_comments()).subtree(element);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                buffers[i],
                "#{id} with {m:?} differs from libxml2 (xmlsec1)"
            );
            i += 1;
        }
    }
}

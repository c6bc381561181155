//! Test support: schema validation with libxml2's `xmllint` against the public ШЭП XSDs (read at
//! run time from ../shared/specs/shep, never copied) and against the project's own wsdl/shep.
//! A missing tool or missing public file fails the test with a message saying what to install.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use qaqpa_shep::envelope::body_payload;
use qaqpa_shep::xml::{parse, serialize_element, XmlLimits};

/// The public copies of the ШЭП WSDL/XSD.
pub fn public_wsdl_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs/shep/wsdl");
    assert!(
        dir.join("SyncChannel/v10/Types/ISyncChannel.xsd").is_file(),
        "the public ШЭП XSDs are missing: expected them under {} (shared/specs/shep beside the \
         project root). These tests validate our envelopes against them.",
        dir.display()
    );
    dir.canonicalize().unwrap_or(dir)
}

/// The project's own WSDL/XSD.
pub fn own_wsdl_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wsdl/shep")
}

/// Driver schemas (written at run time into a temp dir) that make libxml2 load the public files
/// whole: the public files split one namespace over several documents that import each other,
/// and libxml2 loads one document per imported namespace. The drivers include every document of
/// a namespace and import the namespaces first, so the public AsyncChannel files' imports of a
/// non-existent `SyncChannel/v10/Types/…` path are skipped (the namespace is already loaded).
pub struct PublicSchemas {
    _dir: tempfile::TempDir,
    pub sync: PathBuf,
    pub async_channel: PathBuf,
    pub async_client: PathBuf,
}

fn include_all(target_ns: &str, files: &[PathBuf]) -> String {
    let mut s = format!(
        "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" targetNamespace=\"{target_ns}\">\n"
    );
    for f in files {
        s.push_str(&format!(
            "<xs:include schemaLocation=\"file://{}\"/>\n",
            f.display()
        ));
    }
    s.push_str("</xs:schema>\n");
    s
}

fn xsd_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "xsd")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    v.sort();
    v
}

impl PublicSchemas {
    pub fn new() -> Self {
        let public = public_wsdl_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write driver");
            p
        };
        let common = xsd_files(&public.join("common/v10/Types"), "");
        write(
            "common.xsd",
            include_all("http://bip.bee.kz/common/v10/Types", &common),
        );
        let itypes = xsd_files(&public.join("AsyncChannel/v10/Types"), "Async");
        write(
            "itypes.xsd",
            include_all("http://bip.bee.kz/AsyncChannel/v10/ITypes", &itypes),
        );
        let types = public.join("SyncChannel/v10/Types");
        let sync = write(
            "sync.xsd",
            format!(
                "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" targetNamespace=\"http://bip.bee.kz/SyncChannel/v10/Types\">\n\
                 <xs:import namespace=\"http://bip.bee.kz/common/v10/Types\" schemaLocation=\"common.xsd\"/>\n\
                 <xs:include schemaLocation=\"file://{}\"/>\n<xs:include schemaLocation=\"file://{}\"/>\n<xs:include schemaLocation=\"file://{}\"/>\n\
                 </xs:schema>\n",
                types.join("SyncMessageInfo.xsd").display(),
                types.join("SyncMessageInfoResponse.xsd").display(),
                types.join("ISyncChannel.xsd").display()
            ),
        );
        let driver = |ns: &str, file: &str| {
            format!(
                "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" targetNamespace=\"{ns}\">\n\
                 <xs:import namespace=\"http://bip.bee.kz/common/v10/Types\" schemaLocation=\"common.xsd\"/>\n\
                 <xs:import namespace=\"http://bip.bee.kz/AsyncChannel/v10/ITypes\" schemaLocation=\"itypes.xsd\"/>\n\
                 <xs:include schemaLocation=\"file://{}\"/>\n</xs:schema>\n",
                public.join("AsyncChannel/v10/Types").join(file).display()
            )
        };
        let async_channel = write(
            "async.xsd",
            driver(
                "http://bip.bee.kz/AsyncChannel/v10/Types",
                "IAsyncChannel.xsd",
            ),
        );
        let async_client = write(
            "async-client.xsd",
            driver(
                "http://bip.bee.kz/AsyncChannel/v10/Types/Client",
                "IAsyncChannelClient.xsd",
            ),
        );
        Self {
            _dir: dir,
            sync,
            async_channel,
            async_client,
        }
    }
}

/// Our own schema files.
pub struct OwnSchemas {
    pub sync: PathBuf,
    pub async_channel: PathBuf,
    pub async_client: PathBuf,
}

pub fn own_schemas() -> OwnSchemas {
    let d = own_wsdl_dir();
    OwnSchemas {
        sync: d.join("SyncChannel/SyncChannel.xsd"),
        async_channel: d.join("AsyncChannel/AsyncChannel.xsd"),
        async_client: d.join("AsyncChannel/AsyncChannelClient.xsd"),
    }
}

/// Validates `xml` against `schema` with `xmllint --schema`; Err carries xmllint's complaints.
pub fn xmllint_validate(schema: &Path, xml: &str) -> Result<(), String> {
    let mut child = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(schema)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("xmllint is needed to validate against the XSDs (Debian package libxml2-utils): {e}")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(xml.as_bytes())
        .expect("write to xmllint");
    let out = child.wait_with_output().expect("xmllint runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("failed to compile"),
        "schema {} did not compile: {stderr}",
        schema.display()
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(stderr
            .lines()
            .filter(|l| !l.contains("Skipping import"))
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// The operation element inside an envelope's Body, standalone and namespace-complete.
pub fn payload_of(envelope: &str) -> String {
    let doc = parse(envelope, &XmlLimits::default()).expect("envelope parses");
    let payload = body_payload(&doc).expect("envelope has a payload");
    serialize_element(payload)
}

/// Asserts the envelope's payload validates against both schemas.
pub fn assert_valid(envelope: &str, public: &Path, own: &Path) {
    let payload = payload_of(envelope);
    if let Err(e) = xmllint_validate(public, &payload) {
        panic!("payload fails the public XSD:\n{e}\n---\n{payload}");
    }
    if let Err(e) = xmllint_validate(own, &payload) {
        panic!("payload fails the project's XSD:\n{e}\n---\n{payload}");
    }
}

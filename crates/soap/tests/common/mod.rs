//! Test fixtures shared by the integration tests: RSA keys and certificates made by OpenSSL
//! at test time, a SendMessage-like envelope, and helpers to run xmlsec1.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An RSA-2048 key (PKCS#8 PEM) and its self-signed certificate, made by `openssl req`.
pub struct RsaFixture {
    pub dir: tempfile::TempDir,
    pub key_pem: String,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
}

impl RsaFixture {
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
    pub fn signer(&self) -> qaqpa_soap::RsaSigner {
        qaqpa_soap::RsaSigner::from_pem(&self.key_pem, &self.cert_pem).expect("fixture key loads")
    }
    pub fn trust(&self) -> qaqpa_soap::PinnedCertificates {
        qaqpa_soap::PinnedCertificates::new(vec![self.cert_der.clone()])
    }
}

/// Makes a fresh RSA key and certificate with `openssl req` (fails clearly without openssl).
pub fn rsa_fixture(common_name: &str) -> RsaFixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-set_serial",
        ])
        .arg(format!(
            "{}",
            100_000 + u32::from(common_name.len() as u8) * 7919
        ))
        .arg("-subj")
        .arg(format!("/C=KZ/O=Qaqpa Test/CN={common_name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_pem = std::fs::read_to_string(&key).expect("key written");
    let cert_pem = std::fs::read_to_string(&cert).expect("cert written");
    let cert_der = qaqpa_soap::cert::pem_to_der(&cert_pem, "CERTIFICATE").expect("cert PEM");
    RsaFixture {
        dir,
        key_pem,
        cert_pem,
        cert_der,
    }
}

/// A ШЭП SyncChannel SendMessage-like envelope carrying `data_len` bytes of escaped XML.
pub fn send_message_envelope(data_len: usize) -> String {
    let payload: String = "&lt;x&gt;Қазақстан&lt;/x&gt;"
        .chars()
        .cycle()
        .take(data_len)
        .collect();
    let payload = payload.trim_end_matches(|c| c != ';').to_string();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
  <soapenv:Header/>
  <soapenv:Body>
    <ns2:SendMessage xmlns:ns2="http://bip.bee.kz/SyncChannel/v10/Types">
      <request>
        <requestInfo>
          <messageId>5f0a9d3c-1b2e-4c6f-9a10-2d3e4f5a6b7c</messageId>
          <serviceId>GbdulInfoByBin_v2</serviceId>
          <messageDate>2026-11-23T18:00:00.000+05:00</messageDate>
          <sender><senderId>qaqpa</senderId><password>secret</password></sender>
        </requestInfo>
        <requestData>
          <data xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" xsi:type="xs:string">{payload}</data>
        </requestData>
      </request>
    </ns2:SendMessage>
  </soapenv:Body>
</soapenv:Envelope>
"#
    )
}

/// Runs `xmlsec1 ARGS FILE` and returns its output (fails clearly when xmlsec1 is absent).
pub fn xmlsec1(args: &[&str], file: &Path) -> Output {
    Command::new("xmlsec1")
        .args(args)
        .arg(file)
        .output()
        .expect("xmlsec1 must be installed (Debian package xmlsec1)")
}

/// The xmlsec1 flags that register the Id attributes of Body, Timestamp and tokens.
pub const XMLSEC_ID_ATTRS: [&str; 6] = [
    "--id-attr:Id",
    "http://schemas.xmlsoap.org/soap/envelope/:Body",
    "--id-attr:Id",
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd:Timestamp",
    "--id-attr:Id",
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd:BinarySecurityToken",
];

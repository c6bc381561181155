//! OCSP and time stamps over the network, against local responders: `openssl ocsp` as an OCSP
//! responder and `openssl ts -reply` behind a tiny loopback HTTP shim; CAdES-T and embedded
//! OCSP in CMS; the real NCA time-stamp token.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use qaqpa_pki::cms::{self, SignOptions, SignedData};
use qaqpa_pki::network::{fetch_ocsp, fetch_timestamp, timestamp_cms, OcspCache};
use qaqpa_pki::validate::StatusSource;
use qaqpa_pki::{
    verify_cms, CertStatus, Certificate, HttpFetcher, Keystore, SignatureAlgorithm, TimeStampToken,
    TrustStore, UtcTime, Validator, VerifyOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn serial_of(cert: &Path) -> String {
    openssl_ok(&["x509", "-in", &path_str(cert), "-noout", "-serial"])
        .trim()
        .trim_start_matches("serial=")
        .to_string()
}

struct OcspSetup {
    _responder: Child,
    url: String,
    ca: Certificate,
    good: Certificate,
    revoked: Certificate,
}

fn start_openssl_ocsp(dir: &Path, requests: usize) -> OcspSetup {
    let (ca, _, _, _) = openssl_rsa_pki(dir);
    let (_, good) = openssl_issue(
        dir,
        "good",
        "/CN=Good Signer",
        "keyUsage=critical,digitalSignature,nonRepudiation\n",
    );
    let (_, revoked) = openssl_issue(
        dir,
        "revoked",
        "/CN=Revoked Signer",
        "keyUsage=critical,digitalSignature,nonRepudiation\n",
    );
    let (rkey, rcert) = openssl_issue(
        dir,
        "responder",
        "/CN=OCSP Responder",
        "extendedKeyUsage=OCSPSigning\n",
    );
    let index = format!(
        "V\t351231235959Z\t\t{}\tunknown\t/CN=Good Signer\nR\t351231235959Z\t260101000000Z\t{}\tunknown\t/CN=Revoked Signer\n",
        serial_of(&good),
        serial_of(&revoked)
    );
    std::fs::write(dir.join("index.txt"), index).expect("index");
    let port = free_port();
    let child = Command::new("openssl")
        .args([
            "ocsp",
            "-index",
            &path_str(&dir.join("index.txt")),
            "-port",
            &port.to_string(),
            "-rsigner",
            &path_str(&rcert),
            "-rkey",
            &path_str(&rkey),
            "-CA",
            &path_str(&ca),
            "-nrequest",
            &requests.to_string(),
            "-ndays",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("`openssl ocsp` is required for this test (Debian package openssl)");
    let mut responder = Child(child);
    // The responder prints "ACCEPT [::]:PORT" once it listens (a probe connection would hang it).
    let stdout = responder.0.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("read");
    assert!(
        line.starts_with("ACCEPT"),
        "openssl ocsp did not start: {line}"
    );
    let load = |p: &Path| Certificate::from_der_or_pem(&read(p)).expect("cert");
    OcspSetup {
        _responder: responder,
        url: format!("http://127.0.0.1:{port}/"),
        ca: load(&ca),
        good: load(&good),
        revoked: load(&revoked),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_ocsp_responder_answers_our_requests_and_we_check_them() {
    let dir = scratch("ocsp");
    let s = start_openssl_ocsp(&dir, 3);
    let f = HttpFetcher::default();
    let now = UtcTime::now();
    let good = fetch_ocsp(&f, &s.url, &s.good, &s.ca, now)
        .await
        .expect("good answer");
    let revoked = fetch_ocsp(&f, &s.url, &s.revoked, &s.ca, now)
        .await
        .expect("revoked answer");
    let mut v = Validator::new({
        let mut t = TrustStore::new();
        t.add_anchor(s.ca.clone());
        t
    });
    v.add_ocsp_response(good.clone());
    v.add_ocsp_response(revoked.clone());
    assert!(matches!(
        v.status(&s.good, &s.ca, now),
        CertStatus::Good {
            source: StatusSource::Ocsp { .. }
        }
    ));
    match v.status(&s.revoked, &s.ca, now) {
        CertStatus::Revoked { at, .. } => assert_eq!(at.to_rfc3339(), "2026-01-01T00:00:00Z"),
        other => panic!("revoked certificate judged {other}"),
    }
    // A cached answer is reused while fresh: the cache serves it without the network.
    let cache = OcspCache::new();
    let first = cache
        .get_or_fetch(&f, &s.url, &s.good, &s.ca, now)
        .await
        .expect("fetch");
    let dead = "http://127.0.0.1:9/"; // nothing listens: only the cache can answer
    let again = cache
        .get_or_fetch(&f, dead, &s.good, &s.ca, now)
        .await
        .expect("cached");
    assert_eq!(first.der(), again.der());
    // Judged a week later the answer is stale and the cache goes to the (dead) network.
    let later = UtcTime(now.0 + 7 * 86_400);
    assert!(cache
        .get_or_fetch(&f, dead, &s.good, &s.ca, later)
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_silent_services_time_out_with_a_clear_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let f = HttpFetcher {
        timeout: std::time::Duration::from_millis(300),
        ..HttpFetcher::default()
    };
    let err = qaqpa_pki::Fetcher::get(&f, &format!("http://127.0.0.1:{port}/x.crl"))
        .await
        .expect_err("silent");
    assert!(err.to_string().contains("no answer within"), "{err}");
    drop(listener);
    assert!(qaqpa_pki::Fetcher::get(&f, "https://example.invalid/")
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observed_fetch_tells_what_went_out_and_what_came_back_even_when_it_fails() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A responder that reads the request and answers 404 with a five-byte body.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        // Head and the 11-byte body.
        while !req.ends_with(b"ocsp-query!") {
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "request cut short");
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!")
            .await
            .expect("write");
    });
    let f = HttpFetcher::default();
    let seen = qaqpa_pki::FetchObserver::default();
    let err = qaqpa_pki::Fetcher::post_observed(
        &f,
        &format!("http://127.0.0.1:{port}/ocsp"),
        "application/ocsp-request",
        b"ocsp-query!".to_vec(),
        &seen,
    )
    .await
    .expect_err("a 404 is an error");
    assert!(err.to_string().contains("404"), "{err}");
    assert_eq!(
        (seen.sent(), seen.status(), seen.received()),
        (Some(11), Some(404), Some(5))
    );
    server.await.expect("server");

    // Nobody listening: nothing went out, nothing came back.
    let seen = qaqpa_pki::FetchObserver::default();
    let refused =
        qaqpa_pki::Fetcher::get_observed(&f, &format!("http://127.0.0.1:{port}/a.crl"), &seen)
            .await;
    assert!(refused.is_err());
    assert_eq!(
        (seen.sent(), seen.status(), seen.received()),
        (None, None, None)
    );

    // A silent responder: the GET went out (an empty body), no answer came.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let f = HttpFetcher {
        timeout: std::time::Duration::from_millis(300),
        ..HttpFetcher::default()
    };
    let seen = qaqpa_pki::FetchObserver::default();
    let silent =
        qaqpa_pki::Fetcher::get_observed(&f, &format!("http://127.0.0.1:{port}/a.crl"), &seen)
            .await;
    assert!(silent.is_err());
    assert_eq!(
        (seen.sent(), seen.status(), seen.received()),
        (Some(0), None, None)
    );
    drop(listener);
}

/// A loopback HTTP server that answers each POSTed time-stamp query with `openssl ts -reply`.
async fn start_tsa_shim(dir: &Path, requests: usize) -> (String, Certificate) {
    let (ca, _, _, _) = openssl_rsa_pki(dir);
    let (tkey, tcert) = openssl_issue(
        dir,
        "tsa",
        "/CN=Test TSA",
        "extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\n",
    );
    let d = path_str(dir);
    std::fs::write(dir.join("tsaserial"), "01\n").expect("serial");
    std::fs::write(
        dir.join("tsa.cnf"),
        format!(
            "[ tsa ]\ndefault_tsa = t\n[ t ]\nserial = {d}/tsaserial\nsigner_cert = {}\ncerts = {}\nsigner_key = {}\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\nother_policies = 1.2.398.3.3.2.6.4, 1.2.398.3.3.2.6.1\ndigests = sha1, sha256, sha512\naccuracy = secs:1\ness_cert_id_alg = sha256\n",
            path_str(&tcert),
            path_str(&ca),
            path_str(&tkey)
        ),
    )
    .expect("cnf");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dir = dir.to_path_buf();
    tokio::spawn(async move {
        for n in 0..requests {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let body = loop {
                let Ok(k) = s.read(&mut chunk).await else {
                    return;
                };
                if k == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..k]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break buf[end + 4..end + 4 + len].to_vec();
                    }
                }
            };
            let q = dir.join(format!("q{n}.tsq"));
            let r = dir.join(format!("r{n}.tsr"));
            std::fs::write(&q, &body).expect("query");
            let out = Command::new("openssl")
                .args([
                    "ts",
                    "-reply",
                    "-config",
                    &path_str(&dir.join("tsa.cnf")),
                    "-queryfile",
                    &path_str(&q),
                    "-out",
                    &path_str(&r),
                ])
                .output()
                .expect("`openssl ts` is required for this test (Debian package openssl)");
            let resp = if out.status.success() {
                std::fs::read(&r).unwrap_or_default()
            } else {
                Vec::new()
            };
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\nContent-Length: {}\r\n\r\n", resp.len());
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&resp).await;
        }
    });
    (
        format!("http://127.0.0.1:{port}/tsp"),
        Certificate::from_der_or_pem(&read(&ca)).expect("ca"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_tsa_answers_our_requests_and_cades_t_verifies() {
    let dir = scratch("tsa");
    let (url, tsa_ca) = start_tsa_shim(&dir, 3).await;
    let f = HttpFetcher::default();
    // NCA's GOST 2015 policy is requested and granted.
    let t = fetch_timestamp(
        &f,
        &url,
        b"some data",
        SignatureAlgorithm::RsaSha256,
        Some("1.2.398.3.3.2.6.4"),
    )
    .await
    .expect("token");
    assert_eq!(t.info().policy, "1.2.398.3.3.2.6.4");
    assert!(t.verify_imprint(b"other data").is_err());
    // OpenSSL checks the token too.
    let tok = dir.join("t.der");
    std::fs::write(&tok, t.der()).expect("write");
    std::fs::write(dir.join("data.bin"), b"some data").expect("write");
    openssl_ok(&[
        "ts",
        "-verify",
        "-token_in",
        "-in",
        &path_str(&tok),
        "-data",
        &path_str(&dir.join("data.bin")),
        "-CAfile",
        &path_str(&dir.join("ca.pem")),
    ]);
    // CAdES-T over an RSA CMS of a signer from the same CA, then the full report.
    let (_, _, _, p12) = openssl_rsa_pki(&dir.join("signer").tap_create());
    let ks = Keystore::from_pkcs12(&read(&p12), "pw").expect("open");
    let cms_der = cms::sign(b"letter", &ks, &SignOptions::default()).expect("sign");
    let stamped = timestamp_cms(&f, &url, &cms_der).await.expect("CAdES-T");
    let sd = SignedData::parse(&stamped).expect("parse");
    assert_eq!(sd.signers[0].timestamp_tokens().len(), 1);
    let mut trust = TrustStore::new();
    trust.add_anchor(tsa_ca);
    trust.add_anchor(ks.chain()[0].clone());
    let mut v = Validator::new(trust);
    v.allow_unknown_status = true;
    let report = verify_cms(&stamped, None, &v, &VerifyOptions::default()).expect("report");
    assert!(report.is_valid(), "{report}");
    assert!(report.signers[0].tsa_time.is_some());
    // A flipped byte in the signature breaks both the signature and the stamp's imprint.
    let sig = &sd.signers[0].signature;
    let pos = stamped
        .windows(sig.len())
        .position(|w| w == sig.as_slice())
        .expect("sig");
    let mut bad = stamped.clone();
    bad[pos + 5] ^= 1;
    let report = verify_cms(&bad, None, &v, &VerifyOptions::default()).expect("report");
    assert!(!report.is_valid());
    assert!(
        report.signers[0]
            .problems
            .iter()
            .any(|p| p.contains("time stamp")),
        "{report}"
    );
}

trait TapCreate {
    fn tap_create(self) -> Self;
}

impl TapCreate for std::path::PathBuf {
    fn tap_create(self) -> Self {
        std::fs::create_dir_all(&self).expect("mkdir");
        self
    }
}

#[test]
fn the_real_nca_time_stamp_token_verifies() {
    let token =
        TimeStampToken::from_der(&read(&nca("ncanode-java/tsp/tsp_token.bin"))).expect("token");
    assert_eq!(token.info().policy, "1.2.398.3.3.2.6.1");
    assert_eq!(token.gen_time().to_rfc3339(), "2022-09-18T13:20:14Z");
    let tsa = token
        .verify_signature(&[])
        .expect("GOST 2004 TSA signature verifies");
    let ca =
        Certificate::from_der_or_pem(&read(&nca("ncanode-java/ca/nca_gost_test.crt"))).expect("ca");
    tsa.verify_issued_by(&ca)
        .expect("TSA certificate issued by the GOST 2004 CA");
    let from_resp = TimeStampToken::from_response(&read(&nca("ncanode-java/tsp/tsp_response.bin")))
        .expect("response");
    from_resp
        .verify_signature(&[])
        .expect("token inside the response verifies");
    // A flipped byte in TSTInfo breaks it.
    let der = token.der().to_vec();
    let serial = token.info().serial.clone();
    let pos = der
        .windows(serial.len())
        .position(|w| w == serial.as_slice())
        .expect("serial");
    let mut bad = der.clone();
    bad[pos] ^= 1;
    let t2 = TimeStampToken::from_der(&bad).expect("parses");
    assert!(t2.verify_signature(&[]).is_err());
}

#[test]
fn an_embedded_ocsp_response_is_used_offline() {
    let dir = scratch("embedded-ocsp");
    let s = start_openssl_ocsp(&dir, 1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    let now = UtcTime::now();
    let resp = rt
        .block_on(fetch_ocsp(
            &HttpFetcher::default(),
            &s.url,
            &s.revoked,
            &s.ca,
            now,
        ))
        .expect("answer");
    // Sign with the revoked certificate's key, embed the OCSP answer, verify with no network.
    let key =
        qaqpa_pki::PrivateKey::from_pem(&String::from_utf8_lossy(&read(&dir.join("revoked.key"))))
            .expect("key");
    let ks = Keystore::from_parts(key, s.revoked.clone(), vec![s.ca.clone()]).expect("ks");
    let signed = cms::sign(b"doc", &ks, &SignOptions::default()).expect("sign");
    let with_ocsp = cms::embed_ocsp_response(&signed, resp.der()).expect("embed");
    let mut trust = TrustStore::new();
    trust.add_anchor(s.ca.clone());
    let report = verify_cms(
        &with_ocsp,
        None,
        &Validator::new(trust.clone()),
        &VerifyOptions {
            at: Some(now),
            expectation: None,
        },
    )
    .expect("report");
    assert!(
        matches!(report.signers[0].status, Some(CertStatus::Revoked { .. })),
        "{report}"
    );
    assert!(!report.is_valid());
    // Without the embedded answer the status is unknown.
    let report = verify_cms(
        &signed,
        None,
        &Validator::new(trust),
        &VerifyOptions {
            at: Some(now),
            expectation: None,
        },
    )
    .expect("report");
    assert!(
        matches!(report.signers[0].status, Some(CertStatus::Unknown { .. })),
        "{report}"
    );
}

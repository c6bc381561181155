//! The test PKI's loopback services, asked the way a validator asks NCA's: revoked keystores are
//! found revoked by its OCSP responder and by its CRL downloaded from the URL in the certificate;
//! its TSA time-stamps a CMS (CAdES-T) that then verifies with the TSA's time.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use qaqpa_pki::cms::{self, SignOptions};
use qaqpa_pki::network::{timestamp_cms, RevocationSource};
use qaqpa_pki::testpki::{KeyKind, TEST_PASSWORD};
use qaqpa_pki::testpki_server::TestPkiServer;
use qaqpa_pki::validate::StatusSource;
use qaqpa_pki::{
    verify_cms, CertStatus, HttpFetcher, KeyPurpose, Keystore, UtcTime, Validator, VerifyOptions,
};

fn keystore(dir: &std::path::Path, name: &str) -> Keystore {
    let bytes = std::fs::read(dir.join(name)).expect("keystore file");
    Keystore::from_pkcs12(&bytes, TEST_PASSWORD).expect("opens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_keystores_are_found_revoked_by_the_loopback_ocsp_responder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestPkiServer::start(dir.path(), "127.0.0.1:0")
        .await
        .expect("starts");
    let trust = server.pki().lock().expect("pki").trust_store();
    let source = RevocationSource::new(Arc::new(HttpFetcher::default()));
    let now = UtcTime::now();
    for family in ["rsa", "gost"] {
        for (state, revoked) in [("valid", false), ("revoked", true)] {
            let ks = keystore(dir.path(), &format!("{family}_head_{state}.p12"));
            let mut v = Validator::new(trust.clone());
            let notes = source
                .gather_for(&mut v, ks.certificate(), ks.chain(), now)
                .await;
            assert!(notes.is_empty(), "{family} {state}: {notes:?}");
            let r = v.validate(ks.certificate(), ks.chain(), now, KeyPurpose::Signing);
            match (&r.status, revoked) {
                (
                    CertStatus::Good {
                        source: StatusSource::Ocsp { .. },
                    },
                    false,
                ) => {}
                (
                    CertStatus::Revoked {
                        source: StatusSource::Ocsp { .. },
                        ..
                    },
                    true,
                ) => {}
                other => panic!("{family} {state}: unexpected {other:?}"),
            }
        }
    }
    assert_eq!(server.counts().ocsp.load(Ordering::Relaxed), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_ocsp_answer_the_crl_from_the_certificate_is_downloaded_and_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestPkiServer::start(dir.path(), "127.0.0.1:0")
        .await
        .expect("starts");
    let trust = server.pki().lock().expect("pki").trust_store();
    // An OCSP URL where nothing answers: the source must fall back to the CDP's CRL.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/ocsp", dead.local_addr().expect("addr"));
    drop(dead);
    let source =
        RevocationSource::new(Arc::new(HttpFetcher::default())).with_ocsp_url(Some(dead_url));
    let now = UtcTime::now();
    let revoked = keystore(dir.path(), "gost_employee_signright_revoked.p12");
    let mut v = Validator::new(trust.clone());
    let notes = source
        .gather_for(&mut v, revoked.certificate(), revoked.chain(), now)
        .await;
    assert!(notes.iter().any(|n| n.contains("OCSP")), "{notes:?}");
    let r = v.validate(
        revoked.certificate(),
        revoked.chain(),
        now,
        KeyPurpose::Signing,
    );
    assert!(
        matches!(
            r.status,
            CertStatus::Revoked {
                source: StatusSource::Crl { .. },
                ..
            }
        ),
        "{:?}",
        r.status
    );
    // The CRL is cached until its nextUpdate: a second certificate of the same CA needs no download.
    let good = keystore(dir.path(), "gost_employee_signright_valid.p12");
    let mut v = Validator::new(trust);
    source
        .gather_for(&mut v, good.certificate(), good.chain(), now)
        .await;
    let r = v.validate(good.certificate(), good.chain(), now, KeyPurpose::Signing);
    assert!(
        matches!(
            r.status,
            CertStatus::Good {
                source: StatusSource::Crl { .. }
            }
        ),
        "{:?}",
        r.status
    );
    assert_eq!(server.counts().crl.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loopback_tsa_time_stamps_a_cms_that_then_verifies_with_the_tsa_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestPkiServer::start(dir.path(), "127.0.0.1:0")
        .await
        .expect("starts");
    let trust = server.pki().lock().expect("pki").trust_store();
    let fetcher = HttpFetcher::default();
    for kind in [KeyKind::Rsa, KeyKind::Gost2015] {
        let ks = keystore(dir.path(), &format!("{}_head_valid.p12", kind.name()));
        let signed = cms::sign(b"letter", &ks, &SignOptions::default()).expect("signs");
        let stamped = timestamp_cms(&fetcher, &server.tsa_url(kind), &signed)
            .await
            .expect("time-stamped");
        let mut v = Validator::new(trust.clone());
        RevocationSource::new(Arc::new(HttpFetcher::default()))
            .gather_for_cms(&mut v, &stamped, UtcTime::now())
            .await
            .expect("gathers");
        let report = verify_cms(&stamped, None, &v, &VerifyOptions::default()).expect("parses");
        assert!(report.is_valid(), "{kind:?}: {report}");
        assert!(
            report.signers[0].tsa_time.is_some(),
            "{kind:?}: no TSA time"
        );
    }
    assert_eq!(server.counts().tsa.load(Ordering::Relaxed), 2);
}

//! `qaqpa pki …` commands: inspect, sign-cms, verify, testca. Passwords come only from
//! environment variables and are never printed; exit code 0 only when the asked thing is valid.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cms::{self, SignOptions, SignedData};
use crate::crl::Crl;
use crate::error::PkiError;
use crate::network::{self, HttpFetcher};
use crate::ocsp::OcspResponse;
use crate::pkcs12::Keystore;
use crate::report::{verify_cms, VerifyOptions};
use crate::time::UtcTime;
use crate::tsp::TimeStampToken;
use crate::validate::{TrustStore, Validator};
use crate::Certificate;

/// The `pki` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PkiCommand {
    /// Show a certificate, CRL, CMS, OCSP response, time-stamp token or .p12 keystore.
    Inspect {
        file: PathBuf,
        /// Environment variable holding the keystore password (for .p12).
        #[arg(long)]
        password_env: Option<String>,
    },
    /// Sign a file as CMS (CAdES-BES, or CAdES-T with --tsa).
    SignCms {
        #[arg(long)]
        key: PathBuf,
        /// Environment variable holding the keystore password.
        #[arg(long)]
        password_env: String,
        /// Leave the content out of the CMS.
        #[arg(long)]
        detached: bool,
        /// Time-stamp authority URL (http://…).
        #[arg(long)]
        tsa: Option<String>,
        input: PathBuf,
        output: PathBuf,
    },
    /// Verify a CMS: signatures, chain, validity, revocation. Exit 0 only when valid.
    Verify {
        file: PathBuf,
        /// The signed content, for a detached CMS.
        #[arg(long)]
        content: Option<PathBuf>,
        /// Directory of trusted root (and intermediate) certificates.
        #[arg(long)]
        trust: Option<PathBuf>,
        /// Judge at this instant (RFC 3339) instead of the time stamp or now.
        #[arg(long)]
        at: Option<String>,
        /// CRL files to use (Base and Delta).
        #[arg(long)]
        crl: Vec<PathBuf>,
        /// OCSP responder URL (overrides the certificate's).
        #[arg(long)]
        ocsp: Option<String>,
        /// Use only the CRLs and OCSP responses given or embedded; no network.
        #[arg(long)]
        offline: bool,
    },
    /// Generate a test PKI like NCA's into DIR.
    Testca {
        dir: PathBuf,
        /// Also serve its OCSP responders, TSAs and CRLs on this address (e.g. 127.0.0.1:8480)
        /// until interrupted; the certificates then name this address.
        #[arg(long, value_name = "ADDR")]
        serve: Option<String>,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|e| PkiError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

fn password(var: &str) -> Result<String, PkiError> {
    std::env::var(var).map_err(|_| {
        PkiError::Key(format!(
            "environment variable {var} with the password is not set"
        ))
    })
}

/// Runs one command; prints to stdout/stderr and returns the exit code.
pub fn run(cmd: PkiCommand) -> ExitCode {
    match execute(cmd) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, PkiError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PkiError::Network(format!("cannot start the async runtime: {e}")))
}

/// Runs one command: `Ok(true)` when valid/done, `Ok(false)` when the thing checked is not valid.
pub fn execute(cmd: PkiCommand) -> Result<bool, PkiError> {
    match cmd {
        PkiCommand::Inspect { file, password_env } => {
            println!("{}", inspect(&read(&file)?, password_env.as_deref())?);
            Ok(true)
        }
        PkiCommand::SignCms {
            key,
            password_env,
            detached,
            tsa,
            input,
            output,
        } => {
            let ks = Keystore::from_pkcs12(&read(&key)?, &password(&password_env)?)?;
            let content = read(&input)?;
            let opts = SignOptions {
                detached,
                include_chain: true,
                signing_time: None,
            };
            let mut der = cms::sign(&content, &ks, &opts)?;
            if let Some(url) = tsa {
                der = runtime()?.block_on(network::timestamp_cms(
                    &HttpFetcher::default(),
                    &url,
                    &der,
                ))?;
            }
            std::fs::write(&output, &der).map_err(|e| PkiError::Io {
                path: output.display().to_string(),
                source: e,
            })?;
            println!(
                "signed by {} ({}) -> {}",
                ks.certificate().subject(),
                ks.signing_key().signature_algorithm().name(),
                output.display()
            );
            Ok(true)
        }
        PkiCommand::Verify {
            file,
            content,
            trust,
            at,
            crl,
            ocsp,
            offline,
        } => {
            let der = read(&file)?;
            let content = content.map(|c| read(&c)).transpose()?;
            let trust_dir = trust.ok_or_else(|| {
                PkiError::Validation("give --trust DIR with the trusted root certificates".into())
            })?;
            let mut v = Validator::new(TrustStore::from_dir(&trust_dir)?);
            for c in &crl {
                v.add_crl(Crl::from_der_or_pem(&read(c)?)?);
            }
            let at = at.map(|a| UtcTime::parse_rfc3339(&a)).transpose()?;
            if !offline {
                gather_revocation(
                    &mut v,
                    &der,
                    ocsp.as_deref(),
                    at.unwrap_or_else(UtcTime::now),
                )?;
            }
            let report = verify_cms(
                &der,
                content.as_deref(),
                &v,
                &VerifyOptions {
                    at,
                    expectation: None,
                },
            )?;
            print!("{report}");
            Ok(report.is_valid())
        }
        PkiCommand::Testca { dir, serve } => {
            let rt = runtime()?;
            let server = match &serve {
                Some(addr) => {
                    Some(rt.block_on(crate::testpki_server::TestPkiServer::start(&dir, addr))?)
                }
                None => {
                    crate::testpki::TestPki::generate(&dir)?;
                    None
                }
            };
            println!(
                "test PKI written to {} (keystore password {}):",
                dir.display(),
                crate::testpki::TEST_PASSWORD
            );
            let mut names: Vec<_> = std::fs::read_dir(&dir)
                .map_err(|e| PkiError::Io {
                    path: dir.display().to_string(),
                    source: e,
                })?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect();
            names.sort();
            for n in names {
                println!("  {n}");
            }
            if let Some(server) = server {
                let base = server.base_url();
                println!("serving until interrupted (Ctrl-C):");
                for kind in [
                    crate::testpki::KeyKind::Rsa,
                    crate::testpki::KeyKind::Gost2015,
                ] {
                    let n = kind.name();
                    println!("  OCSP {}", server.ocsp_url(kind));
                    println!("  TSA  {}", server.tsa_url(kind));
                    println!("  CRL  {base}/crl/qaqpa_{n}_test.crl");
                }
                rt.block_on(async {
                    let _ = tokio::signal::ctrl_c().await;
                });
            }
            Ok(true)
        }
    }
}

/// Fetches OCSP answers (falling back to CRLs) for every signer of `cms`.
fn gather_revocation(
    v: &mut Validator,
    cms_der: &[u8],
    ocsp_url: Option<&str>,
    now: UtcTime,
) -> Result<(), PkiError> {
    let source = network::RevocationSource::new(std::sync::Arc::new(HttpFetcher::default()))
        .with_ocsp_url(ocsp_url.map(str::to_string));
    for note in runtime()?.block_on(source.gather_for_cms(v, cms_der, now))? {
        eprintln!("{note}");
    }
    Ok(())
}

/// Describes whatever `data` is.
pub fn inspect(data: &[u8], password_env: Option<&str>) -> Result<String, PkiError> {
    if crate::pkcs12::looks_like_pkcs12(data) {
        let var = password_env.ok_or_else(|| {
            PkiError::Key("this is a PKCS#12 keystore: give --password-env VAR".into())
        })?;
        let ks = Keystore::from_pkcs12(data, &password(var)?)?;
        let mut out = format!(
            "PKCS#12 keystore, key {}\n",
            ks.signing_key().signature_algorithm().name()
        );
        out.push_str(&ks.certificate().describe());
        for c in ks.chain() {
            out.push_str(&format!("Chain:      {}\n", c.subject()));
        }
        return Ok(out);
    }
    if let Ok(c) = Certificate::from_der_or_pem(data) {
        return Ok(format!("Certificate\n{}", c.describe()));
    }
    if let Ok(c) = Crl::from_der_or_pem(data) {
        return Ok(c.describe());
    }
    if let Ok(t) = TimeStampToken::from_der(data).or_else(|_| TimeStampToken::from_response(data)) {
        return Ok(t.describe());
    }
    if let Ok(sd) = SignedData::parse(data) {
        let mut out = format!(
            "CMS SignedData: {} signer(s), content {}\n",
            sd.signers.len(),
            match &sd.content {
                Some(c) => format!("attached ({} bytes)", c.len()),
                None => "detached".to_string(),
            }
        );
        for c in sd.check_signatures(None, &[]) {
            out.push_str(&format!("Signer #{}:\n", c.index + 1));
            if let Some(cert) = &c.certificate {
                out.push_str(&cert.describe());
            }
            if let Some(t) = c.signing_time {
                out.push_str(&format!("Signing time: {t}\n"));
            }
            out.push_str(&format!(
                "Signature: {}\n",
                match &c.signature {
                    Ok(()) => "valid (chain and revocation not checked; use verify)".to_string(),
                    Err(e) => format!("NOT valid: {e}"),
                }
            ));
        }
        return Ok(out);
    }
    if let Ok(r) = OcspResponse::from_der(data) {
        return Ok(r.describe());
    }
    Err(PkiError::Malformed(
        "not a certificate, CRL, CMS, OCSP response, time-stamp token or PKCS#12 keystore".into(),
    ))
}

//! `qaqpa soap …`: sign, verify and canonicalize from the command line (feature `cli`).
//!
//! The gateway's binary mounts [`SoapCommand`] as a subcommand and calls [`run`]. This module
//! never prints key material and never exits 0 from `verify` unless every signature verified.

use crate::c14n::{C14nMethod, Canonicalizer};
use crate::dsig::{CertificateTrust, PinnedCertificates, RsaSigner, XmlSigner};
use crate::wssec::{KeyInfoForm, WsSecurityOptions};
use crate::xml::{parse_bytes, XmlLimits};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// The `soap` subcommands.
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum SoapCommand {
    /// Sign the Body of a SOAP envelope with WS-Security (exclusive c14n, RSA-SHA256).
    Sign {
        /// The signing key: an NCA-style PKCS#12 keystore (`.p12`/`.pfx`, GOST or RSA, password
        /// from `--password-env`), or an unencrypted PEM PKCS#8 RSA key with `--cert`.
        #[arg(long)]
        key: PathBuf,
        /// The signer's certificate (PEM), required with a PEM key.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Name of the environment variable holding the keystore password (.p12 only; the
        /// password itself never appears on the command line).
        #[arg(long)]
        password_env: Option<String>,
        /// How KeyInfo names the certificate.
        #[arg(long, value_enum, default_value_t = KeyInfoArg::KeyIdentifier)]
        key_info: KeyInfoArg,
        /// Add and sign a wsu:Timestamp valid for this many seconds.
        #[arg(long)]
        timestamp_ttl: Option<u64>,
        /// The envelope to sign.
        input: PathBuf,
        /// Where to write the signed envelope.
        output: PathBuf,
    },
    /// Verify a WS-Security envelope or an enveloped XML-DSig document; exit 0 only if valid.
    Verify {
        /// The document to verify.
        input: PathBuf,
        /// Directory of trusted certificates (PEM or DER). Without it the signatures are
        /// checked but the signer's certificate is not, and the exit status is 3.
        #[arg(long)]
        trust: Option<PathBuf>,
    },
    /// Write the canonical form of a document to standard output.
    C14n {
        /// Exclusive c14n (default: inclusive c14n 1.0).
        #[arg(long)]
        exclusive: bool,
        /// Keep comments.
        #[arg(long)]
        with_comments: bool,
        /// InclusiveNamespaces PrefixList for exclusive c14n (space-separated).
        #[arg(long)]
        inclusive_prefixes: Option<String>,
        /// The document.
        input: PathBuf,
    },
}

/// KeyInfo forms on the command line.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyInfoArg {
    /// wsse:KeyIdentifier with the base64 certificate.
    KeyIdentifier,
    /// ds:X509IssuerSerial.
    IssuerSerial,
    /// wsse:BinarySecurityToken and a reference to it.
    BinarySecurityToken,
}

/// Trusts any certificate (used only to report signature validity without a trust store).
struct AnyCertificate;

impl CertificateTrust for AnyCertificate {
    fn check(&self, _: &[u8], _: SystemTime) -> Result<(), String> {
        Ok(())
    }
}

/// Runs a subcommand; messages go to stderr, data to stdout or the output file.
pub fn run(cmd: SoapCommand) -> ExitCode {
    match execute(cmd) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("qaqpa soap: {message}");
            ExitCode::from(1)
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn execute(cmd: SoapCommand) -> Result<ExitCode, String> {
    match cmd {
        SoapCommand::Sign {
            key,
            cert,
            password_env,
            key_info,
            timestamp_ttl,
            input,
            output,
        } => {
            let key_bytes = read(&key)?;
            let is_p12 = key
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"));
            let signer: Box<dyn XmlSigner> = if is_p12 {
                let var =
                    password_env.ok_or("--password-env VAR is required with a .p12 keystore")?;
                let password = std::env::var(&var).map_err(|_| {
                    format!("environment variable {var} (the keystore password) is not set")
                })?;
                crate::trust::signer_from_pkcs12(&key_bytes, &password)
                    .map_err(|e| e.to_string())?
            } else {
                let key_pem =
                    String::from_utf8(key_bytes).map_err(|_| "the key file is not PEM text")?;
                if key_pem.contains("ENCRYPTED PRIVATE KEY") {
                    return Err("encrypted PEM keys are not supported; use a .p12 keystore".into());
                }
                let cert = cert.ok_or("--cert is required with a PEM key")?;
                let cert_pem = String::from_utf8(read(&cert)?)
                    .map_err(|_| "the certificate is not PEM text")?;
                Box::new(RsaSigner::from_pem(&key_pem, &cert_pem).map_err(|e| e.to_string())?)
            };
            let opts = WsSecurityOptions {
                key_info: match key_info {
                    KeyInfoArg::KeyIdentifier => KeyInfoForm::KeyIdentifier,
                    KeyInfoArg::IssuerSerial => KeyInfoForm::IssuerSerial,
                    KeyInfoArg::BinarySecurityToken => KeyInfoForm::BinarySecurityToken,
                },
                timestamp_ttl: timestamp_ttl.map(Duration::from_secs),
                limits: XmlLimits::default(),
            };
            let signed = crate::wssec::sign_envelope(&read(&input)?, signer.as_ref(), &opts)
                .map_err(|e| e.to_string())?;
            std::fs::write(&output, signed)
                .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        SoapCommand::Verify { input, trust } => {
            let xml = read(&input)?;
            let pinned =
                match &trust {
                    Some(dir) => Some(PinnedCertificates::from_dir(dir).map_err(|e| {
                        format!("cannot read trust directory {}: {e}", dir.display())
                    })?),
                    None => None,
                };
            let trust_ref: &dyn CertificateTrust = match &pinned {
                Some(p) => p,
                None => &AnyCertificate,
            };
            let opts = crate::dsig::VerifyOptions {
                known_certificates: pinned
                    .as_ref()
                    .map(|p| p.certificates().to_vec())
                    .unwrap_or_default(),
                ..Default::default()
            };
            let is_envelope = {
                let doc = parse_bytes(&xml, &opts.limits)
                    .map_err(|e| format!("{}: {e}", input.display()))?;
                doc.root_element().tag_name().name() == "Envelope"
                    && matches!(
                        doc.root_element().tag_name().namespace(),
                        Some(crate::wssec::SOAP11_NS | crate::wssec::SOAP12_NS)
                    )
            };
            let signers = if is_envelope {
                crate::wssec::verify_envelope(&xml, trust_ref, &opts).map(|v| v.signers)
            } else {
                crate::dsig::verify_enveloped(&xml, trust_ref, &opts).map(|v| v.signers)
            };
            match signers {
                Ok(signers) => {
                    for der in &signers {
                        let subject = crate::cert::CertificateInfo::from_der(der)
                            .map(|c| c.subject)
                            .unwrap_or_else(|_| "?".into());
                        println!("valid signature by {subject}");
                    }
                    if trust.is_none() {
                        eprintln!("qaqpa soap: signatures are valid but no --trust was given: the signer's certificate was NOT checked");
                        return Ok(ExitCode::from(3));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("qaqpa soap: INVALID: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        SoapCommand::C14n {
            exclusive,
            with_comments,
            inclusive_prefixes,
            input,
        } => {
            let xml = read(&input)?;
            let doc = parse_bytes(&xml, &XmlLimits::default())
                .map_err(|e| format!("{}: {e}", input.display()))?;
            let method = match (exclusive, with_comments) {
                (false, false) => C14nMethod::Inclusive,
                (false, true) => C14nMethod::InclusiveWithComments,
                (true, false) => C14nMethod::Exclusive,
                (true, true) => C14nMethod::ExclusiveWithComments,
            };
            let prefixes: Vec<String> = inclusive_prefixes
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            let out = Canonicalizer::new(method)
                .with_inclusive_prefixes(prefixes)
                .document(&doc);
            use std::io::Write;
            std::io::stdout()
                .write_all(&out)
                .map_err(|e| format!("cannot write output: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        soap: SoapCommand,
    }

    #[test]
    fn command_line_parses_as_documented() {
        let cli = Cli::try_parse_from([
            "qaqpa",
            "sign",
            "--key",
            "k.pem",
            "--cert",
            "c.pem",
            "--password-env",
            "PW",
            "in.xml",
            "out.xml",
        ])
        .expect("parses");
        assert!(matches!(
            cli.soap,
            SoapCommand::Sign {
                key_info: KeyInfoArg::KeyIdentifier,
                ..
            }
        ));
        let cli =
            Cli::try_parse_from(["qaqpa", "c14n", "--exclusive", "--with-comments", "in.xml"])
                .expect("parses");
        assert!(matches!(
            cli.soap,
            SoapCommand::C14n {
                exclusive: true,
                with_comments: true,
                ..
            }
        ));
        let cli =
            Cli::try_parse_from(["qaqpa", "verify", "in.xml", "--trust", "dir"]).expect("parses");
        assert!(matches!(
            cli.soap,
            SoapCommand::Verify { trust: Some(_), .. }
        ));
    }

    #[test]
    fn p12_without_password_variable_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let key = dir.path().join("k.p12");
        std::fs::write(&key, b"x").expect("write");
        let result = execute(SoapCommand::Sign {
            key,
            cert: None,
            password_env: None,
            key_info: KeyInfoArg::KeyIdentifier,
            timestamp_ttl: None,
            input: dir.path().join("in.xml"),
            output: dir.path().join("out.xml"),
        });
        assert!(result.is_err_and(|e| e.contains("--password-env")));
    }
}

//! `/v1/pki/*`: signature checks for the EDMS. `cms/verify` judges a CMS (attached or detached)
//! completely — signatures, time stamps, chain to the configured NCA roots, validity, revocation
//! by OCSP or CRL, and optional expectations on the signer — and answers a report per signer.
//! `x509/info` describes a certificate (IIN, BIN, organisation, role, validity in Astana time)
//! and, on request, its status. Nothing sent here is stored: certificates carry personal data.
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use base64::Engine as _;
use qaqpa_pki::validate::StatusSource;
use qaqpa_pki::{
    Bin, CertStatus, Certificate, Iin, KeyPurpose, Role, SignerExpectation, SignerReport,
    SubjectInfo, UtcTime, VerifyOptions,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::body::{check_depth, parse_json};
use crate::auth::{Caller, CausedBy, Role as ApiRole};
use crate::problem::Problem;
use crate::state::AppState;

/// Largest CMS or certificate accepted (base64-decoded).
const MAX_OBJECT: usize = 64 * 1024 * 1024;

/// What to verify.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CmsVerifyRequest {
    /// The CMS SignedData, base64 (DER) or PEM text.
    pub cms: String,
    /// The signed content, base64, when the CMS is detached.
    #[serde(default)]
    pub content: Option<String>,
    /// Judge at this instant (RFC 3339); default: the time stamp's time, else now.
    #[serde(default)]
    pub at: Option<String>,
    /// Requirements every signer must meet.
    #[serde(default)]
    pub expect: Option<Expectation>,
}

/// Who must have signed: e.g. the first head or an employee with signing right of a BIN.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    #[serde(default)]
    pub iin: Option<String>,
    #[serde(default)]
    pub bin: Option<String>,
    /// Any one of these roles will do: individual, organisation, first_head, signing_right,
    /// financial_signing_right, hr, employee, information_system.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The verdict on a whole CMS.
#[derive(Debug, Serialize, ToSchema)]
pub struct CmsVerifyReport {
    /// True when there is at least one signer and every signer is valid.
    pub valid: bool,
    pub signers: Vec<SignerView>,
    /// Revocation services that could not be asked (their absence may make a status unknown).
    pub notes: Vec<String>,
}

/// One signer's verdict.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignerView {
    pub index: usize,
    pub valid: bool,
    pub subject: Option<SubjectView>,
    pub certificate: Option<CertificateView>,
    pub algorithm: Option<String>,
    /// signingTime from the signed attributes (RFC 3339, UTC).
    pub signing_time: Option<String>,
    /// The TSA's time when a valid signature time stamp is attached.
    pub tsa_time: Option<String>,
    /// The instant the certificate was judged at.
    pub checked_at: String,
    pub status: Option<StatusView>,
    /// Everything wrong; empty when valid.
    pub problems: Vec<String>,
}

/// Who a certificate names.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectView {
    pub iin: Option<String>,
    pub bin: Option<String>,
    pub common_name: Option<String>,
    pub surname: Option<String>,
    pub given_name: Option<String>,
    pub organisation: Option<String>,
    pub country: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<String>,
    /// The most specific role in words ("first head", "employee with signing right"…).
    pub role: Option<String>,
}

/// A certificate's identity and validity.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    pub serial: String,
    pub issuer: String,
    pub subject_dn: String,
    pub not_before: String,
    pub not_after: String,
    /// The validity period in Astana time (UTC+5), as NCA shows it.
    pub not_before_astana: String,
    pub not_after_astana: String,
    pub algorithm: Option<String>,
    pub key_usage: Vec<String>,
    pub extended_key_usage: Vec<String>,
    pub policies: Vec<String>,
    pub ocsp_urls: Vec<String>,
    pub crl_urls: Vec<String>,
}

/// Revocation status and where the answer came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    /// good, revoked or unknown.
    pub state: String,
    pub revoked_at: Option<String>,
    /// "OCSP response produced …", "Base CRL of …", or why unknown.
    pub source: String,
}

/// A certificate to describe.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct X509InfoRequest {
    /// The certificate, base64 (DER) or PEM text.
    pub certificate: String,
    /// Also judge it now: chain, validity, revocation.
    #[serde(default)]
    pub validate: bool,
}

/// What a certificate says, and optionally whether it is valid now.
#[derive(Debug, Serialize, ToSchema)]
pub struct X509Info {
    pub subject: SubjectView,
    pub certificate: CertificateView,
    /// Present when validation was asked for.
    pub validation: Option<X509Validation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct X509Validation {
    pub valid: bool,
    pub status: StatusView,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

fn subject_view(info: &SubjectInfo) -> SubjectView {
    SubjectView {
        iin: info.iin.as_ref().map(|i| i.as_str().to_string()),
        bin: info.bin.as_ref().map(|b| b.as_str().to_string()),
        common_name: info.common_name.clone(),
        surname: info.surname.clone(),
        given_name: info.given_name.clone(),
        organisation: info.organisation.clone(),
        country: info.country.clone(),
        email: info.email.clone(),
        roles: info.roles.iter().map(|r| r.code().to_string()).collect(),
        role: info.main_role().map(|r| r.describe().to_string()),
    }
}

fn certificate_view(c: &Certificate) -> CertificateView {
    let ext = c.extensions();
    CertificateView {
        serial: c.serial_hex(),
        issuer: c.issuer().to_string(),
        subject_dn: c.subject().to_string(),
        not_before: c.not_before().to_rfc3339(),
        not_after: c.not_after().to_rfc3339(),
        not_before_astana: c.not_before().to_astana(),
        not_after_astana: c.not_after().to_astana(),
        algorithm: c
            .key_signature_algorithm()
            .ok()
            .map(|a| a.name().to_string()),
        key_usage: ext
            .key_usage
            .map(|k| k.names().into_iter().map(str::to_string).collect())
            .unwrap_or_default(),
        extended_key_usage: ext.extended_key_usage.clone(),
        policies: ext.policies.clone(),
        ocsp_urls: ext.ocsp_urls.clone(),
        crl_urls: ext
            .crl_distribution_points
            .iter()
            .chain(&ext.freshest_crl)
            .cloned()
            .collect(),
    }
}

fn status_view(s: &CertStatus) -> StatusView {
    let source = |src: &StatusSource| src.to_string();
    match s {
        CertStatus::Good { source: src } => StatusView {
            state: "good".into(),
            revoked_at: None,
            source: source(src),
        },
        CertStatus::Revoked { at, source: src } => StatusView {
            state: "revoked".into(),
            revoked_at: Some(at.to_rfc3339()),
            source: source(src),
        },
        CertStatus::Unknown { reason } => StatusView {
            state: "unknown".into(),
            revoked_at: None,
            source: reason.clone(),
        },
    }
}

fn signer_view(r: &SignerReport) -> SignerView {
    SignerView {
        index: r.index,
        valid: r.is_valid(),
        subject: r.subject.as_ref().map(subject_view),
        certificate: r.certificate.as_ref().map(certificate_view),
        algorithm: r.algorithm.map(|a| a.name().to_string()),
        signing_time: r.signing_time.map(UtcTime::to_rfc3339),
        tsa_time: r.tsa_time.map(UtcTime::to_rfc3339),
        checked_at: r.checked_at.to_rfc3339(),
        status: r.status.as_ref().map(status_view),
        problems: r.problems.clone(),
    }
}

/// Base64 (standard, whitespace allowed) or PEM text, decoded; `pointer` names the field.
fn decode_object(text: &str, pointer: &str) -> Result<Vec<u8>, Problem> {
    let trimmed = text.trim();
    let bytes = if trimmed.starts_with("-----BEGIN") {
        trimmed.as_bytes().to_vec()
    } else {
        let compact: String = trimmed.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| Problem::invalid(pointer, format!("not base64: {e}")))?
    };
    if bytes.is_empty() {
        return Err(Problem::invalid(pointer, "is empty"));
    }
    if bytes.len() > MAX_OBJECT {
        return Err(Problem::invalid(
            pointer,
            format!("is over {MAX_OBJECT} bytes"),
        ));
    }
    Ok(bytes)
}

/// PEM-armoured CMS (`-----BEGIN CMS-----` or PKCS7) to DER.
fn cms_der(bytes: Vec<u8>) -> Result<Vec<u8>, Problem> {
    if !bytes.starts_with(b"-----BEGIN") {
        return Ok(bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| Problem::invalid("/cms", format!("PEM body is not base64: {e}")))
}

fn expectation(e: &Expectation) -> Result<SignerExpectation, Problem> {
    let iin = e
        .iin
        .as_deref()
        .map(Iin::new)
        .transpose()
        .map_err(|err| Problem::invalid("/expect/iin", err.to_string()))?;
    let bin = e
        .bin
        .as_deref()
        .map(Bin::new)
        .transpose()
        .map_err(|err| Problem::invalid("/expect/bin", err.to_string()))?;
    let roles_any = e
        .roles
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Role::from_code(r).ok_or_else(|| {
                Problem::invalid(
                    format!("/expect/roles/{i}"),
                    format!(
                        "unknown role '{r}' (known: {})",
                        Role::ALL.map(|r| r.code()).join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SignerExpectation {
        iin,
        bin,
        roles_any,
    })
}

/// Verify a CMS signature completely.
#[utoipa::path(post, operation_id = "pki_cms_verify", path = "/v1/pki/cms/verify", tag = "pki",
    request_body = CmsVerifyRequest,
    responses((status = 200, description = "The report (valid or not)", body = CmsVerifyReport),
        (status = 422, description = "Not a CMS, bad base64, unknown role…", body = Problem)),
    security(("api_key" = [])))]
pub async fn cms_verify(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<CmsVerifyReport>, Problem> {
    caller.require(
        &[
            ApiRole::Client,
            ApiRole::Operator,
            ApiRole::Admin,
            ApiRole::Auditor,
        ],
        "verify signatures",
    )?;
    check_depth(&body, state.cfg.api.max_json_depth)?;
    let req: CmsVerifyRequest = parse_json(&body)?;
    let cms = cms_der(decode_object(&req.cms, "/cms")?)?;
    let content = req
        .content
        .as_deref()
        .map(|c| decode_object(c, "/content"))
        .transpose()?;
    let at = req
        .at
        .as_deref()
        .map(UtcTime::parse_rfc3339)
        .transpose()
        .map_err(|e| Problem::invalid("/at", e.to_string()))?;
    let expectation = req.expect.as_ref().map(expectation).transpose()?;
    let opts = VerifyOptions { at, expectation };
    // The OCSP questions asked on the way and the verdicts share one transaction.
    let transaction = qaqpa_core::MessageId::new().to_string();
    let (report, notes) = crate::pki_exchanges::within(
        crate::pki_exchanges::ExchangeScope::of(crate::audit::API, &transaction, &caller),
        state.pki.verify_cms(&cms, content.as_deref(), &opts),
    )
    .await
    .map_err(|e| Problem::invalid("/cms", e.to_string()))?;
    tracing::info!(client = %caller.client, signers = report.signers.len(),
        valid = report.is_valid(), "CMS verified");
    for s in &report.signers {
        let signer = s
            .subject
            .as_ref()
            .map(|i| {
                format!(
                    "{} IIN {} BIN {}",
                    i.common_name.as_deref().unwrap_or("?"),
                    i.iin.as_ref().map(|x| x.as_str()).unwrap_or("-"),
                    i.bin.as_ref().map(|x| x.as_str()).unwrap_or("-"),
                )
            })
            .unwrap_or_else(|| "unknown signer".into());
        let reason = (!s.problems.is_empty()).then(|| s.problems.join("; "));
        state.audit.record(
            qaqpa_audit::AuditEvent::signature(
                crate::audit::API,
                s.is_valid(),
                Some(&signer),
                reason.as_deref(),
                None,
            )
            .by(&caller)
            .transaction(transaction.clone()),
        );
    }
    Ok(Json(CmsVerifyReport {
        valid: report.is_valid(),
        signers: report.signers.iter().map(signer_view).collect(),
        notes,
    }))
}

/// Describe a certificate (and optionally judge it now).
#[utoipa::path(post, operation_id = "pki_x509_info", path = "/v1/pki/x509/info", tag = "pki",
    request_body = X509InfoRequest,
    responses((status = 200, description = "What the certificate says", body = X509Info),
        (status = 422, description = "Not a certificate", body = Problem)),
    security(("api_key" = [])))]
pub async fn x509_info(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<X509Info>, Problem> {
    caller.require(
        &[
            ApiRole::Client,
            ApiRole::Operator,
            ApiRole::Admin,
            ApiRole::Auditor,
        ],
        "inspect certificates",
    )?;
    check_depth(&body, state.cfg.api.max_json_depth)?;
    let req: X509InfoRequest = parse_json(&body)?;
    let bytes = decode_object(&req.certificate, "/certificate")?;
    let cert = Certificate::from_der_or_pem(&bytes)
        .map_err(|e| Problem::invalid("/certificate", e.to_string()))?;
    let validation = if req.validate {
        let now = UtcTime::now();
        let transaction = qaqpa_core::MessageId::new().to_string();
        let (v, notes) = crate::pki_exchanges::within(
            crate::pki_exchanges::ExchangeScope::of(crate::audit::API, &transaction, &caller),
            state.pki.validator_for_cert(&cert, now),
        )
        .await;
        let r = v.validate(&cert, &[], now, KeyPurpose::Any);
        Some(X509Validation {
            valid: r.is_valid(),
            status: status_view(&r.status),
            problems: r.problems.clone(),
            notes,
        })
    } else {
        None
    };
    Ok(Json(X509Info {
        subject: subject_view(&cert.subject_info()),
        certificate: certificate_view(&cert),
        validation,
    }))
}

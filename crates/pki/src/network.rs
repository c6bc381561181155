//! Fetching revocation data and time stamps: a `Fetcher` trait (so tests use local responders),
//! a small HTTP/1.1 client for NCA's plain-http services with timeouts and size limits, and the
//! OCSP and TSP clients that check nonces and signatures before returning anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cert::Certificate;
use crate::error::PkiError;
use crate::keys::SignatureAlgorithm;
use crate::ocsp::{self, OcspResponse};
use crate::time::UtcTime;
use crate::tsp::{self, TimeStampToken};

/// Network access for OCSP, TSP and CRL downloads.
#[async_trait]
pub trait Fetcher: Send + Sync {
    async fn get(&self, url: &str) -> Result<Vec<u8>, PkiError>;
    async fn post(&self, url: &str, content_type: &str, body: Vec<u8>)
        -> Result<Vec<u8>, PkiError>;

    /// [`Fetcher::get`], noting in `seen` what went on the wire and came back as it happens.
    /// A fetcher that cannot tell leaves `seen` empty (the default).
    async fn get_observed(&self, url: &str, seen: &FetchObserver) -> Result<Vec<u8>, PkiError> {
        let _ = seen;
        self.get(url).await
    }

    /// [`Fetcher::post`], noting in `seen` what went on the wire and came back.
    async fn post_observed(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        seen: &FetchObserver,
    ) -> Result<Vec<u8>, PkiError> {
        let _ = seen;
        self.post(url, content_type, body).await
    }
}

/// What one fetch put on the wire and read back, noted while it runs, so that a fetch dropped
/// half-way (its caller's deadline) still tells what it had sent. Bodies only: the request
/// body once it was written (a GET's is empty: 0), the answer's status once its head was read,
/// and the bytes of its body read by then.
#[derive(Debug, Default)]
pub struct FetchObserver {
    sent: AtomicU64,
    sent_known: AtomicBool,
    status: AtomicU16,
    received: AtomicU64,
    received_known: AtomicBool,
}

impl FetchObserver {
    /// The request body's bytes, once written; `None` while nothing went out.
    pub fn sent(&self) -> Option<u64> {
        self.sent_known
            .load(Ordering::Acquire)
            .then(|| self.sent.load(Ordering::Relaxed))
    }

    /// The answer's HTTP status, once its head was read.
    pub fn status(&self) -> Option<u16> {
        Some(self.status.load(Ordering::Acquire)).filter(|&s| s != 0)
    }

    /// The answer body's bytes read so far, once its head was read.
    pub fn received(&self) -> Option<u64> {
        self.received_known
            .load(Ordering::Acquire)
            .then(|| self.received.load(Ordering::Relaxed))
    }

    fn note_sent(&self, bytes: u64) {
        self.sent.store(bytes, Ordering::Relaxed);
        self.sent_known.store(true, Ordering::Release);
    }

    fn note_answer(&self, status: u16, body_bytes: u64) {
        self.received.store(body_bytes, Ordering::Relaxed);
        self.received_known.store(true, Ordering::Release);
        self.status.store(status, Ordering::Release);
    }
}

/// Plain `http://` over TCP with a whole-exchange timeout and a response size cap.
#[derive(Clone, Debug)]
pub struct HttpFetcher {
    pub timeout: Duration,
    pub max_response: usize,
}

impl Default for HttpFetcher {
    fn default() -> Self {
        HttpFetcher {
            timeout: Duration::from_secs(15),
            max_response: 256 * 1024 * 1024,
        }
    }
}

fn split_url(url: &str) -> Result<(String, String), PkiError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| PkiError::Network(format!("only http:// URLs are supported: {url}")))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    Ok((hostport, path.to_string()))
}

fn net(url: &str, e: impl std::fmt::Display) -> PkiError {
    PkiError::Network(format!("{url}: {e}"))
}

impl HttpFetcher {
    async fn exchange(
        &self,
        url: &str,
        method: &str,
        content_type: Option<&str>,
        body: &[u8],
        seen: &FetchObserver,
    ) -> Result<Vec<u8>, PkiError> {
        let (hostport, path) = split_url(url)?;
        let host = hostport
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&hostport)
            .to_string();
        let fut = async {
            let mut s = tokio::net::TcpStream::connect(&hostport)
                .await
                .map_err(|e| net(url, e))?;
            let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: qaqpa-pki\r\n");
            if let Some(ct) = content_type {
                req.push_str(&format!(
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n",
                    body.len()
                ));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes()).await.map_err(|e| net(url, e))?;
            s.write_all(body).await.map_err(|e| net(url, e))?;
            seen.note_sent(body.len() as u64);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 16384];
            loop {
                let n = s.read(&mut chunk).await.map_err(|e| net(url, e))?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    seen.note_answer(status_code(&buf[..end]), (buf.len() - end - 4) as u64);
                }
                if buf.len() > self.max_response {
                    return Err(net(url, "response too large"));
                }
                if response_complete(&buf) {
                    break;
                }
            }
            parse_http_response(url, &buf)
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| net(url, format!("no answer within {:?}", self.timeout)))?
    }
}

/// The status code of a response head (0 when it has none).
fn status_code(head: &[u8]) -> u16 {
    let line = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
    String::from_utf8_lossy(line)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// True when the headers are in and a Content-Length body has fully arrived (some servers keep
/// the connection open despite `Connection: close`).
fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .is_some_and(|len| buf.len() >= end + 4 + len)
}

fn parse_http_response(url: &str, buf: &[u8]) -> Result<Vec<u8>, PkiError> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| net(url, "malformed HTTP response"))?;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let body = &buf[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if !(200..300).contains(&code) {
        return Err(net(url, format!("HTTP status '{status_line}'")));
    }
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| net(url, "bad chunk"))?;
            let size_txt = String::from_utf8_lossy(&rest[..nl]).to_string();
            let size = usize::from_str_radix(size_txt.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| net(url, "bad chunk size"))?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            let chunk = rest
                .get(..size)
                .ok_or_else(|| net(url, "truncated chunk"))?;
            out.extend_from_slice(chunk);
            rest = rest.get(size + 2..).unwrap_or(&[]);
        }
        return Ok(out);
    }
    if let Some(len) = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        return body
            .get(..len)
            .map(|b| b.to_vec())
            .ok_or_else(|| net(url, "truncated body"));
    }
    Ok(body.to_vec())
}

#[async_trait]
impl Fetcher for HttpFetcher {
    async fn get(&self, url: &str) -> Result<Vec<u8>, PkiError> {
        self.get_observed(url, &FetchObserver::default()).await
    }
    async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, PkiError> {
        self.post_observed(url, content_type, body, &FetchObserver::default())
            .await
    }
    async fn get_observed(&self, url: &str, seen: &FetchObserver) -> Result<Vec<u8>, PkiError> {
        self.exchange(url, "GET", None, &[], seen).await
    }
    async fn post_observed(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        seen: &FetchObserver,
    ) -> Result<Vec<u8>, PkiError> {
        self.exchange(url, "POST", Some(content_type), &body, seen)
            .await
    }
}

/// Asks `url` about `cert`: SHA-256 CertID and a nonce; the answer's nonce, signature and
/// freshness at `now` are checked before it is returned.
pub async fn fetch_ocsp(
    fetcher: &dyn Fetcher,
    url: &str,
    cert: &Certificate,
    issuer: &Certificate,
    now: UtcTime,
) -> Result<OcspResponse, PkiError> {
    let (req, nonce) = ocsp::build_request(cert, issuer)?;
    let body = fetcher.post(url, "application/ocsp-request", req).await?;
    let resp = OcspResponse::from_der(&body)?;
    match resp.nonce() {
        Some(n) if n == nonce.as_slice() => {}
        Some(_) => {
            return Err(PkiError::Validation(
                "OCSP nonce does not match the request".into(),
            ))
        }
        None => {
            return Err(PkiError::Validation(
                "OCSP response without the requested nonce".into(),
            ))
        }
    }
    if resp.status_for(cert, issuer, now)?.is_none() {
        return Err(PkiError::Validation(
            "OCSP response does not answer for the certificate".into(),
        ));
    }
    Ok(resp)
}

/// OCSP answers cached per certificate until their freshness limit.
#[derive(Debug, Default)]
pub struct OcspCache {
    entries: Mutex<HashMap<Vec<u8>, OcspResponse>>,
}

impl OcspCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cached answer still fresh at `now`, or a new one from `url` (then cached).
    pub async fn get_or_fetch(
        &self,
        fetcher: &dyn Fetcher,
        url: &str,
        cert: &Certificate,
        issuer: &Certificate,
        now: UtcTime,
    ) -> Result<OcspResponse, PkiError> {
        let key = ocsp::cert_id(cert, issuer)?;
        let cached = self.entries.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some(r) = cached {
            if r.status_for(cert, issuer, now).is_ok() {
                return Ok(r);
            }
        }
        let r = fetch_ocsp(fetcher, url, cert, issuer, now).await?;
        if let Ok(mut m) = self.entries.lock() {
            m.insert(key, r.clone());
        }
        Ok(r)
    }
}

/// Gets a time-stamp token over `data` from `url`, with NCA's policy for `alg`; the nonce,
/// imprint and the TSA's signature are checked.
pub async fn fetch_timestamp(
    fetcher: &dyn Fetcher,
    url: &str,
    data: &[u8],
    alg: SignatureAlgorithm,
    policy: Option<&str>,
) -> Result<TimeStampToken, PkiError> {
    let policy = policy.or(tsp::policy_for(alg));
    let (req, nonce) = tsp::build_request(tsp::digest_for(alg), data, policy)?;
    let body = fetcher
        .post(url, "application/timestamp-query", req)
        .await?;
    let token = TimeStampToken::from_response(&body)?;
    if token.info().nonce.as_deref() != Some(nonce.as_slice()) {
        return Err(PkiError::Validation(
            "time-stamp nonce does not match the request".into(),
        ));
    }
    token.verify_imprint(data)?;
    token.verify_signature(&[])?;
    Ok(token)
}

/// CAdES-T: time-stamps every signer of `cms` that has no time stamp yet.
pub async fn timestamp_cms(
    fetcher: &dyn Fetcher,
    url: &str,
    cms: &[u8],
) -> Result<Vec<u8>, PkiError> {
    let mut out = cms.to_vec();
    let sd = crate::cms::SignedData::parse(cms)?;
    for (i, si) in sd.signers.iter().enumerate() {
        if !si.timestamp_tokens().is_empty() {
            continue;
        }
        let alg = SignatureAlgorithm::from_oid(&si.signature_oid)?;
        let token = fetch_timestamp(fetcher, url, &si.signature, alg, None).await?;
        out = crate::cms::add_timestamp(&out, i, token.der())?;
    }
    Ok(out)
}

/// Downloads each CRL (and delta) named by `cert` into `cache`, keeping good cached copies when
/// a download is empty, invalid or stale. Returns the problems met (none when all went well).
pub async fn refresh_crls(
    fetcher: &dyn Fetcher,
    cache: &mut crate::validate::CrlCache,
    cert: &Certificate,
    issuer: &Certificate,
    now: UtcTime,
) -> Vec<String> {
    let mut problems = Vec::new();
    let urls: Vec<String> = cert
        .extensions()
        .crl_distribution_points
        .iter()
        .chain(&cert.extensions().freshest_crl)
        .filter(|u| u.starts_with("http://"))
        .cloned()
        .collect();
    for url in urls {
        if cache.is_fresh(&url, now) {
            continue;
        }
        match fetcher.get(&url).await {
            Ok(bytes) => {
                if let Err(e) = cache.offer(&url, bytes, issuer, now) {
                    problems.push(e.to_string());
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    problems
}

/// Revocation answers for the certificates a verification will judge: OCSP first (cached until
/// its freshness limit), else the Base and Delta CRLs the certificate names (cached until their
/// nextUpdate; a bad download never replaces a good copy). One per process, shared.
pub struct RevocationSource {
    fetcher: std::sync::Arc<dyn Fetcher>,
    ocsp: OcspCache,
    crls: tokio::sync::Mutex<crate::validate::CrlCache>,
    ocsp_url: Option<String>,
}

impl RevocationSource {
    pub fn new(fetcher: std::sync::Arc<dyn Fetcher>) -> Self {
        RevocationSource {
            fetcher,
            ocsp: OcspCache::new(),
            crls: tokio::sync::Mutex::new(crate::validate::CrlCache::new()),
            ocsp_url: None,
        }
    }

    /// Asks this responder instead of the one each certificate names.
    pub fn with_ocsp_url(mut self, url: Option<String>) -> Self {
        self.ocsp_url = url;
        self
    }

    /// Adds to `v` an answer about `cert` (its issuer found through `v`'s trust store and
    /// `extra`). Returns what went wrong on the way, in words; the validator then reports the
    /// status as unknown if nothing answered.
    pub async fn gather_for(
        &self,
        v: &mut crate::validate::Validator,
        cert: &Certificate,
        extra: &[Certificate],
        now: UtcTime,
    ) -> Vec<String> {
        let chain = v
            .validate(cert, extra, now, crate::validate::KeyPurpose::Any)
            .chain;
        let Some(issuer) = chain.get(1).cloned() else {
            return vec![format!(
                "no issuer found for {}; revocation not checked",
                cert.subject()
            )];
        };
        let mut notes = Vec::new();
        let url = self
            .ocsp_url
            .clone()
            .or_else(|| cert.extensions().ocsp_urls.first().cloned());
        if let Some(url) = url {
            match self
                .ocsp
                .get_or_fetch(self.fetcher.as_ref(), &url, cert, &issuer, now)
                .await
            {
                Ok(r) => {
                    v.add_ocsp_response(r);
                    return notes;
                }
                Err(e) => notes.push(format!("OCSP {url}: {e}; trying CRLs")),
            }
        }
        let mut cache = self.crls.lock().await;
        notes.extend(refresh_crls(self.fetcher.as_ref(), &mut cache, cert, &issuer, now).await);
        for c in cache.all() {
            v.add_crl(c.clone());
        }
        notes
    }

    /// [`RevocationSource::gather_for`] every signer of a CMS (its embedded certificates help
    /// build the chains).
    pub async fn gather_for_cms(
        &self,
        v: &mut crate::validate::Validator,
        cms: &[u8],
        now: UtcTime,
    ) -> Result<Vec<String>, PkiError> {
        let sd = crate::cms::SignedData::parse(cms)?;
        let mut notes = Vec::new();
        for check in sd.check_signatures(None, &[]) {
            if let Some(cert) = check.certificate {
                notes.extend(self.gather_for(v, &cert, &sd.certificates, now).await);
            }
        }
        // The TSAs' certificates are judged too (at the tokens' own times).
        for si in &sd.signers {
            for der in si.timestamp_tokens() {
                let Ok(token) = TimeStampToken::from_der(&der) else {
                    continue;
                };
                if let Ok(tsa) = token.verify_signature(&[]) {
                    let extra = token.certificates().to_vec();
                    notes.extend(self.gather_for(v, &tsa, &extra, token.gen_time()).await);
                }
            }
        }
        Ok(notes)
    }
}

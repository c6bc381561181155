//! The test PKI's network services on loopback, over plain HTTP/1.1 as NCA serves its own:
//! an OCSP responder (`POST /ocsp/{rsa|gost}`), a TSA (`POST /tsa/{rsa|gost}`) and a CRL
//! publisher (`GET /crl/qaqpa_{rsa|gost}_test.crl`) for both CA families. The certificates the
//! test PKI issues name these URLs, so a validator finds them exactly as it finds NCA's.
//! For the sandbox and the tests; it is deliberately small: one request per connection,
//! bounded headers and bodies, a timeout per connection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::PkiError;
use crate::testpki::{KeyKind, TestPki};
use crate::time::UtcTime;

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests answered, by service (for tests that must show a service was really asked).
#[derive(Debug, Default)]
pub struct ServedCounts {
    pub ocsp: AtomicU64,
    pub tsa: AtomicU64,
    pub crl: AtomicU64,
}

/// A running test PKI with its services listening on loopback.
pub struct TestPkiServer {
    addr: SocketAddr,
    pki: Arc<Mutex<TestPki>>,
    counts: Arc<ServedCounts>,
    task: tokio::task::JoinHandle<()>,
}

impl TestPkiServer {
    /// Binds `listen` (e.g. `127.0.0.1:0`), generates a test PKI in `dir` whose certificates
    /// point at the bound address, and starts serving it.
    pub async fn start(dir: &Path, listen: &str) -> Result<TestPkiServer, PkiError> {
        let listener = TcpListener::bind(listen).await.map_err(|e| PkiError::Io {
            path: listen.to_string(),
            source: e,
        })?;
        let addr = listener.local_addr().map_err(|e| PkiError::Io {
            path: listen.to_string(),
            source: e,
        })?;
        let pki = TestPki::generate_with_base_url(dir, &format!("http://{addr}"))?;
        Ok(Self::serve(listener, pki))
    }

    /// Serves an already generated test PKI on `listener` (its URLs must name this address).
    pub fn serve(listener: TcpListener, pki: TestPki) -> TestPkiServer {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let pki = Arc::new(Mutex::new(pki));
        let counts = Arc::new(ServedCounts::default());
        let task = tokio::spawn(accept_loop(listener, pki.clone(), counts.clone()));
        TestPkiServer {
            addr,
            pki,
            counts,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the prefix of every URL in the issued certificates.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The TSA of one CA family.
    pub fn tsa_url(&self, kind: KeyKind) -> String {
        format!("{}/tsa/{}", self.base_url(), kind.name())
    }

    /// The OCSP responder of one CA family.
    pub fn ocsp_url(&self, kind: KeyKind) -> String {
        format!("{}/ocsp/{}", self.base_url(), kind.name())
    }

    /// The test PKI itself (to issue or revoke certificates while serving).
    pub fn pki(&self) -> Arc<Mutex<TestPki>> {
        self.pki.clone()
    }

    pub fn counts(&self) -> &ServedCounts {
        &self.counts
    }

    /// Stops listening.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for TestPkiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, pki: Arc<Mutex<TestPki>>, counts: Arc<ServedCounts>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let pki = pki.clone();
        let counts = counts.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, handle(stream, &pki, &counts)).await;
        });
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

async fn read_request(stream: &mut TcpStream) -> Result<Request, (u16, String)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err((431, "request headers too large".into()));
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| (400, e.to_string()))?;
        if n == 0 {
            return Err((400, "connection closed before the headers ended".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>())
        .transpose()
        .map_err(|_| (400, "bad Content-Length".to_string()))?
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err((413, format!("body over {MAX_BODY} bytes")));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| (400, e.to_string()))?;
        if n == 0 {
            return Err((400, "connection closed before the body ended".into()));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Request { method, path, body })
}

fn kind_of(name: &str) -> Option<KeyKind> {
    match name {
        "rsa" => Some(KeyKind::Rsa),
        "gost" => Some(KeyKind::Gost2015),
        _ => None,
    }
}

/// Routes one request to the CA it names; `Err` is (HTTP status, reason).
fn answer(
    req: &Request,
    pki: &Mutex<TestPki>,
    counts: &ServedCounts,
) -> Result<(&'static str, Vec<u8>), (u16, String)> {
    let now = UtcTime::now();
    let pki = pki
        .lock()
        .map_err(|_| (500, "test PKI state poisoned".to_string()))?;
    let failed = |e: PkiError| (400, e.to_string());
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        ("POST", ["ocsp", family]) => {
            let kind = kind_of(family).ok_or((404, format!("no CA family '{family}'")))?;
            counts.ocsp.fetch_add(1, Ordering::Relaxed);
            let der = pki.ca(kind).ocsp_respond(&req.body, now).map_err(failed)?;
            Ok(("application/ocsp-response", der))
        }
        ("POST", ["tsa", family]) => {
            let kind = kind_of(family).ok_or((404, format!("no CA family '{family}'")))?;
            counts.tsa.fetch_add(1, Ordering::Relaxed);
            let der = pki.ca(kind).tsa_respond(&req.body, now).map_err(failed)?;
            Ok(("application/timestamp-reply", der))
        }
        ("GET", ["crl", file]) => {
            let family = file
                .strip_prefix("qaqpa_")
                .and_then(|f| f.strip_suffix("_test.crl"))
                .ok_or((404, format!("no CRL '{file}'")))?;
            let kind = kind_of(family).ok_or((404, format!("no CA family '{family}'")))?;
            counts.crl.fetch_add(1, Ordering::Relaxed);
            let der = pki.ca(kind).crl(now, 7).map_err(failed)?;
            Ok(("application/pkix-crl", der))
        }
        _ => Err((404, format!("nothing at {} {}", req.method, req.path))),
    }
}

async fn handle(mut stream: TcpStream, pki: &Mutex<TestPki>, counts: &ServedCounts) {
    let (status, content_type, body) = match read_request(&mut stream).await {
        Ok(req) => match answer(&req, pki, counts) {
            Ok((ct, body)) => (200, ct, body),
            Err((s, why)) => (s, "text/plain", why.into_bytes()),
        },
        Err((s, why)) => (s, "text/plain", why.into_bytes()),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Bad Request",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

//! The requests the gateway's certificate checks make to other systems — OCSP questions, CRL
//! and CA certificate downloads (NCA's services, or whatever a certificate's AIA and CDP name) —
//! journalled as outbound `EXCHANGE` events like every other request to another system.
//!
//! [`JournallingFetcher`] wraps the fetcher that the revocation source and the adapters' CMS
//! checks use. Each request it makes becomes an event with the service asked (`OCSP`, or `GET`
//! for a download), the host as target, when it left and when the answer was read, the bodies'
//! sizes and the result. The request that caused it is told by [`within`]: a message's
//! admission, a push, a `/v1/pki` check. The event then carries that request's transaction id,
//! source and account, so a message's path shows the OCSP questions asked about its signatures.
//! A fetch outside any scope is journalled under the gateway's name and a transaction of its
//! own; one dropped before it ended (its caller's deadline) is journalled as abandoned, with
//! what it had sent. The result is the answer's HTTP status where one came, else why none did,
//! never the URL itself (it may carry credentials or a token): the host stands in for it.
//! Answers served from the revocation cache are not requests and are not journalled.
use std::future::Future;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use qaqpa_audit::{AuditEvent, Auditor, Direction, Exchange, ExchangeResult};
use qaqpa_pki::{FetchObserver, Fetcher, PkiError};
use time::OffsetDateTime;

/// Who caused the requests made inside [`within`].
#[derive(Clone, Debug)]
pub struct ExchangeScope {
    /// The journal's source name of the part that caused them (`qaqpa-api`, `qaqpa-push`).
    pub source: &'static str,
    pub transaction: String,
    /// The API key id of the caller, when there is one.
    pub account: Option<String>,
    pub client_ip: Option<std::net::IpAddr>,
    /// The message the requests are about, when there is one.
    pub message_id: Option<String>,
}

impl ExchangeScope {
    /// Requests made for `caller` by `source`, in `transaction`.
    pub fn of(source: &'static str, transaction: &str, caller: &crate::auth::Caller) -> Self {
        Self {
            source,
            transaction: transaction.to_owned(),
            account: Some(caller.key_id.clone()),
            client_ip: caller.ip,
            message_id: None,
        }
    }

    /// The same, about message `id`.
    pub fn about(mut self, id: &str) -> Self {
        self.message_id = Some(id.to_owned());
        self
    }
}

tokio::task_local! {
    static SCOPE: ExchangeScope;
}

/// Runs `fut` with the requests it makes journalled under `scope`.
pub async fn within<F: Future>(scope: ExchangeScope, fut: F) -> F::Output {
    SCOPE.scope(scope, fut).await
}

/// A [`Fetcher`] that journals each request it makes through `inner` (see the module comment),
/// once the journal is [attached](JournallingFetcher::attach): it is made before the auditor,
/// so that configuration errors are found before the journal is opened.
pub struct JournallingFetcher {
    inner: Arc<dyn Fetcher>,
    audit: OnceLock<Auditor>,
}

impl JournallingFetcher {
    pub fn new(inner: Arc<dyn Fetcher>) -> Self {
        Self {
            inner,
            audit: OnceLock::new(),
        }
    }

    /// Journals into `audit` from now on.
    pub fn attach(&self, audit: Auditor) {
        let _ = self.audit.set(audit);
    }

    /// The record of one fetch, taken before it starts; journalled when it ends or is dropped.
    fn begin<'a>(&'a self, url: &'a str, service: &'static str) -> FetchRecord<'a> {
        FetchRecord {
            fetcher: self,
            url,
            service,
            scope: SCOPE.try_with(Clone::clone).ok(),
            request_out: OffsetDateTime::now_utc(),
            seen: FetchObserver::default(),
            done: false,
        }
    }
}

/// One fetch being made ([`JournallingFetcher::begin`]).
struct FetchRecord<'a> {
    fetcher: &'a JournallingFetcher,
    url: &'a str,
    service: &'static str,
    scope: Option<ExchangeScope>,
    request_out: OffsetDateTime,
    seen: FetchObserver,
    done: bool,
}

impl FetchRecord<'_> {
    /// Journals the fetch: `outcome` is `None` when it was abandoned (dropped before it ended).
    fn journal(&mut self, outcome: Option<Result<(), &PkiError>>) {
        self.done = true;
        let ended = OffsetDateTime::now_utc();
        let Some(audit) = self.fetcher.audit.get() else {
            tracing::warn!(target = %host_of(self.url), "a revocation fetch before the audit journal was open is not journalled");
            return;
        };
        let scope = self.scope.take().unwrap_or_else(|| ExchangeScope {
            source: crate::audit::GATEWAY,
            transaction: qaqpa_core::MessageId::new().to_string(),
            account: None,
            client_ip: None,
            message_id: None,
        });
        // The answer's status where one came (an error status too); otherwise why none did,
        // the URL (which may carry credentials or a token) replaced by its host.
        let status = self.seen.status();
        let result = match (status, outcome) {
            (Some(status), _) => ExchangeResult::Http(status),
            (None, Some(Err(e))) => {
                ExchangeResult::Transport(e.to_string().replace(self.url, &host_of(self.url)))
            }
            (None, Some(Ok(()))) => ExchangeResult::Transport("answered without a status".into()),
            (None, None) => ExchangeResult::Transport(
                "abandoned before an answer (the caller's deadline passed)".into(),
            ),
        };
        let mut event = AuditEvent::exchange(
            scope.source,
            Exchange {
                direction: Direction::Outbound,
                target: host_of(self.url),
                service_id: Some(self.service.to_owned()),
                message_id: scope.message_id,
                request_out: Some(self.request_out),
                response_in: status.map(|_| ended),
                request_in: None,
                response_out: None,
                request_bytes: self.seen.sent(),
                response_bytes: self.seen.received(),
                result,
            },
        )
        .operation(self.request_out, ended)
        .transaction(scope.transaction)
        .client_ip(scope.client_ip);
        if let Some(account) = scope.account {
            event = event.account(account);
        }
        audit.record(event);
    }
}

impl Drop for FetchRecord<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.journal(None);
        }
    }
}

#[async_trait]
impl Fetcher for JournallingFetcher {
    async fn get(&self, url: &str) -> Result<Vec<u8>, PkiError> {
        let mut record = self.begin(url, "GET");
        let answer = self.inner.get_observed(url, &record.seen).await;
        record.journal(Some(answer.as_ref().map(|_| ())));
        answer
    }

    async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, PkiError> {
        let service = match content_type {
            "application/ocsp-request" => "OCSP",
            "application/timestamp-query" => "TSP",
            _ => "POST",
        };
        let mut record = self.begin(url, service);
        let answer = self
            .inner
            .post_observed(url, content_type, body, &record.seen)
            .await;
        record.journal(Some(answer.as_ref().map(|_| ())));
        answer
    }
}

/// `host[:port]` of an `http(s)://` URL (the whole text when it is not one): the target named
/// in the journal, never the path or query.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    // No user information in the journal.
    host.rsplit_once('@').map_or(host, |(_, h)| h).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fetcher journalling into a fresh journal in `dir`.
    fn journalled(
        dir: &std::path::Path,
    ) -> (
        JournallingFetcher,
        Auditor,
        Arc<dyn qaqpa_audit::AuditStore>,
    ) {
        let store: Arc<dyn qaqpa_audit::AuditStore> =
            Arc::new(qaqpa_audit::SqliteAuditStore::open(dir).expect("journal"));
        let config = qaqpa_audit::AuditConfig {
            spool_dir: dir.join("spool"),
            ..Default::default()
        };
        let audit = Auditor::new(&config, Some(store.clone())).expect("auditor");
        let fetcher = JournallingFetcher::new(Arc::new(qaqpa_pki::HttpFetcher {
            timeout: std::time::Duration::from_secs(5),
            ..Default::default()
        }));
        fetcher.attach(audit.clone());
        (fetcher, audit, store)
    }

    async fn exchanges(
        audit: &Auditor,
        store: &Arc<dyn qaqpa_audit::AuditStore>,
    ) -> Vec<qaqpa_audit::StoredRecord> {
        assert!(audit.flush().await.stored);
        store.tail(10).await.expect("tail")
    }

    #[tokio::test]
    async fn a_failed_fetch_is_journalled_without_the_urls_credentials_or_query() {
        let dir = tempfile::tempdir().expect("dir");
        let (fetcher, audit, store) = journalled(dir.path());
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let url = format!("http://user:s3cret@127.0.0.1:{port}/a.crl?token=abc");
        assert!(fetcher.get(&url).await.is_err());
        let records = exchanges(&audit, &store).await;
        assert_eq!(records.len(), 1, "{records:#?}");
        let qaqpa_audit::EventKind::Exchange(x) = &records[0].event.kind else {
            panic!("{records:#?}")
        };
        assert_eq!(x.target, format!("127.0.0.1:{port}"));
        assert_eq!(x.service_id.as_deref(), Some("GET"));
        assert_eq!(
            (x.request_bytes, x.response_bytes, x.response_in),
            (None, None, None),
            "no connection: nothing went out"
        );
        let text = format!("{records:?}");
        assert!(
            matches!(&x.result, ExchangeResult::Transport(r) if r.contains(&format!("127.0.0.1:{port}"))),
            "{x:?}"
        );
        for secret in ["s3cret", "token=abc", "user:"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[tokio::test]
    async fn a_fetch_dropped_at_its_callers_deadline_is_journalled_as_abandoned_in_its_scope() {
        let dir = tempfile::tempdir().expect("dir");
        let (fetcher, audit, store) = journalled(dir.path());
        // A responder that takes the request and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/ocsp", silent.local_addr().expect("addr"));
        let scope = ExchangeScope {
            source: crate::audit::PUSH,
            transaction: "the-push".into(),
            account: None,
            client_ip: None,
            message_id: Some("letter-1".into()),
        };
        let cut = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            within(
                scope,
                fetcher.post(&url, "application/ocsp-request", vec![7; 120]),
            ),
        )
        .await;
        assert!(cut.is_err(), "the caller's deadline cut it");
        let records = exchanges(&audit, &store).await;
        assert_eq!(records.len(), 1, "{records:#?}");
        let event = &records[0].event;
        assert_eq!(event.transaction_id.as_deref(), Some("the-push"));
        let qaqpa_audit::EventKind::Exchange(x) = &event.kind else {
            panic!("{records:#?}")
        };
        assert_eq!(x.service_id.as_deref(), Some("OCSP"));
        assert_eq!(x.message_id.as_deref(), Some("letter-1"));
        assert_eq!(x.request_bytes, Some(120), "it had gone out");
        assert_eq!((x.response_bytes, x.response_in), (None, None));
        assert!(
            matches!(&x.result, ExchangeResult::Transport(r) if r.starts_with("abandoned")),
            "{x:?}"
        );
        drop(silent);
    }

    #[test]
    fn the_target_is_the_host_and_port_without_path_query_or_credentials() {
        assert_eq!(host_of("http://ocsp.pki.gov.kz/"), "ocsp.pki.gov.kz");
        assert_eq!(host_of("http://127.0.0.1:8123/ocsp?x=1"), "127.0.0.1:8123");
        assert_eq!(
            host_of("http://user:secret@crl.example:80/a.crl"),
            "crl.example:80"
        );
        assert_eq!(host_of("ocsp.example"), "ocsp.example");
    }
}

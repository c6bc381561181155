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
//! own. Answers served from the revocation cache are not requests and are not journalled.
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use qaqpa_audit::{AuditEvent, Auditor, Direction, Exchange, ExchangeResult};
use qaqpa_pki::{Fetcher, PkiError};
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

/// A [`Fetcher`] that journals each request it makes through `inner` (see the module comment).
pub struct JournallingFetcher {
    inner: Arc<dyn Fetcher>,
    audit: Auditor,
}

impl JournallingFetcher {
    pub fn new(inner: Arc<dyn Fetcher>, audit: Auditor) -> Self {
        Self { inner, audit }
    }

    fn journal(
        &self,
        url: &str,
        service: &str,
        request_out: OffsetDateTime,
        sent: u64,
        answer: Result<u64, &PkiError>,
    ) {
        let ended = OffsetDateTime::now_utc();
        let scope = SCOPE.try_with(Clone::clone).ok();
        let (source, transaction, account, client_ip, message_id) = match scope {
            Some(s) => (
                s.source,
                s.transaction,
                s.account,
                s.client_ip,
                s.message_id,
            ),
            None => (
                crate::audit::GATEWAY,
                qaqpa_core::MessageId::new().to_string(),
                None,
                None,
                None,
            ),
        };
        let (response_in, received, result) = match answer {
            Ok(n) => (Some(ended), Some(n), ExchangeResult::Http(200)),
            Err(e) => (None, None, ExchangeResult::Transport(e.to_string())),
        };
        let mut event = AuditEvent::exchange(
            source,
            Exchange {
                direction: Direction::Outbound,
                target: host_of(url),
                service_id: Some(service.to_owned()),
                message_id,
                request_out: Some(request_out),
                response_in,
                request_in: None,
                response_out: None,
                request_bytes: Some(sent),
                response_bytes: received,
                result,
            },
        )
        .operation(request_out, ended)
        .transaction(transaction)
        .client_ip(client_ip);
        if let Some(account) = account {
            event = event.account(account);
        }
        self.audit.record(event);
    }
}

#[async_trait]
impl Fetcher for JournallingFetcher {
    async fn get(&self, url: &str) -> Result<Vec<u8>, PkiError> {
        let started = OffsetDateTime::now_utc();
        let answer = self.inner.get(url).await;
        self.journal(
            url,
            "GET",
            started,
            0,
            answer.as_ref().map(|b| b.len() as u64),
        );
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
        let sent = body.len() as u64;
        let started = OffsetDateTime::now_utc();
        let answer = self.inner.post(url, content_type, body).await;
        self.journal(
            url,
            service,
            started,
            sent,
            answer.as_ref().map(|b| b.len() as u64),
        );
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

//! API keys and roles. A key is `qk_<key id>.<secret>`; only the SHA-256 of the whole token is
//! stored. The key id is public (it appears in lists and logs); the secret never appears in a log,
//! an error or the store.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use qaqpa_core::ClientId;
use qaqpa_store::{ApiKeyRecord, Store};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::Problem;
use crate::state::AppState;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An EDMS: submits and reads its own messages and inbox.
    Client,
    /// Watches every message, retries dead letters, reads metrics.
    Operator,
    /// Everything an operator may, plus administration.
    Admin,
    /// Reads messages and (later) the audit journal; changes nothing.
    Auditor,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client" => Some(Self::Client),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            "auditor" => Some(Self::Auditor),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Operator => "operator",
            Self::Admin => "admin",
            Self::Auditor => "auditor",
        }
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: String,
    pub client: ClientId,
    pub role: Role,
    /// The address this request came from, when known: every event it causes carries it.
    pub ip: Option<std::net::IpAddr>,
}

/// An audit event caused by a caller's request.
pub trait CausedBy {
    /// The event with the caller's account (its key id) and the request's client IP.
    fn by(self, caller: &Caller) -> Self;
}

impl CausedBy for qaqpa_audit::AuditEvent {
    fn by(self, caller: &Caller) -> Self {
        self.account(caller.key_id.clone()).client_ip(caller.ip)
    }
}

impl Caller {
    /// The client whose data this caller is limited to (`None` = may see every client's).
    pub fn scope(&self) -> Option<&ClientId> {
        match self.role {
            Role::Client => Some(&self.client),
            _ => None,
        }
    }

    pub fn require(&self, allowed: &[Role], action: &str) -> Result<(), Problem> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "role '{}' may not {action}",
                self.role.as_str()
            )))
        }
    }
}

/// A newly made key: the token is shown once and never stored.
pub struct NewKey {
    pub token: String,
    pub record: ApiKeyRecord,
}

/// Makes a new key for `client` with `role`.
pub fn generate_key(client: &str, role: Role, label: &str) -> NewKey {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    let mut rng = rand::rng();
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let key_id = hex::encode(id);
    let token = format!(
        "qk_{key_id}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let record = ApiKeyRecord {
        key_id,
        secret_hash: token_hash(&token),
        client: ClientId(client.to_string()),
        role: role.as_str().to_string(),
        label: label.to_string(),
        created_at: time::OffsetDateTime::now_utc(),
        revoked_at: None,
    };
    NewKey { token, record }
}

/// Hex SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn key_id_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("qk_")?;
    let (id, secret) = rest.split_once('.')?;
    if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty() {
        Some(id)
    } else {
        None
    }
}

/// Verifies tokens against the store, remembering good ones for a short while so the hot path
/// does not read the store on every request.
pub struct KeyVerifier {
    store: Arc<dyn Store>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Caller, Instant)>>,
    /// One store look-up at a time: when many connections start (or a cached key expires) at
    /// once, the first looks the key up and the others find it cached, instead of each reading
    /// the store on a blocking thread of its own (which cost threads, connections and memory).
    lookups: tokio::sync::Mutex<()>,
}

impl KeyVerifier {
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            cache: Mutex::new(HashMap::new()),
            lookups: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, hash: &str) -> Option<Caller> {
        let cache = self.cache.lock().ok()?;
        let (caller, at) = cache.get(hash)?;
        (at.elapsed() < self.ttl).then(|| caller.clone())
    }

    /// The caller a token belongs to; the error says what is wrong without echoing the token.
    pub async fn verify(&self, token: &str) -> Result<Caller, Problem> {
        self.verify_fresh(token).await.map(|(caller, _)| caller)
    }

    /// As [`KeyVerifier::verify`], also telling whether the key was checked against the store
    /// now (`true`) or found in the cache of recent verifications.
    pub async fn verify_fresh(&self, token: &str) -> Result<(Caller, bool), Problem> {
        let hash = token_hash(token);
        if let Some(caller) = self.cached(&hash) {
            return Ok((caller, false));
        }
        let _one_at_a_time = self.lookups.lock().await;
        if let Some(caller) = self.cached(&hash) {
            return Ok((caller, false));
        }
        let key_id = key_id_of(token).ok_or_else(|| {
            Problem::unauthorized("the API key is malformed (expected qk_<id>.<secret>)")
        })?;
        let record = self
            .store
            .find_api_key(key_id)
            .await?
            .ok_or_else(|| Problem::unauthorized("unknown API key"))?;
        if !bool::from(record.secret_hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(Problem::unauthorized("unknown API key"));
        }
        if record.revoked_at.is_some() {
            return Err(Problem::unauthorized(format!(
                "API key {} has been revoked",
                record.key_id
            )));
        }
        let role = Role::parse(&record.role)
            .ok_or_else(|| Problem::internal(format!("key {} has an unknown role", key_id)))?;
        let caller = Caller {
            key_id: record.key_id,
            client: record.client,
            role,
            ip: None,
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(hash, (caller.clone(), Instant::now()));
        }
        Ok((caller, true))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let ip = crate::audit::client_ip(&parts.extensions);
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("missing Authorization: Bearer <API key>"))
            .and_then(|value| {
                value
                    .to_str()
                    .map_err(|_| Problem::unauthorized("the Authorization header is not ASCII"))
            })
            .and_then(|text| {
                text.strip_prefix("Bearer ").map(str::trim).ok_or_else(|| {
                    Problem::unauthorized("expected Authorization: Bearer <API key>")
                })
            });
        let verified = match token {
            Ok(token) => state
                .keys
                .verify_fresh(token)
                .await
                .map_err(|p| (p, key_id_of(token).map(str::to_string))),
            Err(p) => Err((p, None)),
        };
        let caller = match verified {
            Ok((mut caller, fresh)) => {
                // The cached caller is the key's; the address is this request's.
                caller.ip = ip;
                if fresh {
                    state.audit.record(
                        qaqpa_audit::AuditEvent::auth_ok(crate::audit::API, &caller.key_id)
                            .by(&caller),
                    );
                }
                caller
            }
            Err((problem, key_id)) => {
                // The key id is public; the secret never reaches the journal.
                state.audit.record(
                    qaqpa_audit::AuditEvent::auth_fail(
                        crate::audit::API,
                        key_id.as_deref(),
                        &problem.detail,
                    )
                    .client_ip(ip),
                );
                return Err(problem);
            }
        };
        if let Err(wait) = state.rate.check(&caller.key_id) {
            state.audit.record(
                qaqpa_audit::AuditEvent::refused(
                    crate::audit::API,
                    qaqpa_audit::RefusalReason::RateLimited,
                    &format!("{} {}", parts.method, parts.uri.path()),
                    None,
                )
                .by(&caller),
            );
            return Err(Problem::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("API key {} is over its request rate", caller.key_id),
            )
            .retry(wait.as_secs().max(1)));
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash_consistently() {
        let k = generate_key("edms-1", Role::Client, "test");
        assert_eq!(key_id_of(&k.token), Some(k.record.key_id.as_str()));
        assert_eq!(token_hash(&k.token), k.record.secret_hash);
        assert!(!k.record.secret_hash.contains(&k.token));
        let other = generate_key("edms-1", Role::Client, "test");
        assert_ne!(k.token, other.token);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_uses_of_a_key_read_the_store_once() {
        let dir = tempfile::tempdir().expect("dir");
        let store: Arc<dyn Store> = Arc::new(
            qaqpa_store::sqlite::SqliteStore::open(dir.path(), Default::default()).expect("store"),
        );
        let key = generate_key("edms-1", Role::Client, "test");
        store
            .create_api_key(key.record.clone())
            .await
            .expect("key stored");
        let verifier = Arc::new(KeyVerifier::new(store, Duration::from_secs(60)));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (v, token) = (verifier.clone(), key.token.clone());
                tokio::spawn(async move { v.verify_fresh(&token).await })
            })
            .collect();
        let mut fresh = 0;
        for t in tasks {
            let (caller, was_fresh) = t.await.expect("task").expect("verified");
            assert_eq!(caller.key_id, key.record.key_id);
            fresh += usize::from(was_fresh);
        }
        // One look-up in the store (and so one AUTH_OK in the journal); the rest were cached.
        assert_eq!(fresh, 1);
        assert!(verifier
            .verify_fresh("qk_0123456789abcdef.nope")
            .await
            .is_err());
    }

    #[test]
    fn malformed_tokens_have_no_key_id() {
        for t in [
            "",
            "qk_",
            "qk_abc.def",
            "Bearer x",
            "qk_0123456789abcdef.",
            "qk_0123456789abcdeg.x",
        ] {
            assert!(key_id_of(t).is_none(), "{t}");
        }
    }
}

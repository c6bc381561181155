//! What every request handler and background task shares.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qaqpa_resilience::RateLimiter;
use qaqpa_store::{BlobStore, Store};
use tokio::sync::Notify;

use crate::adapters::Registry;
use crate::auth::KeyVerifier;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::routes::RoutesFile;
use crate::webhooks::WebhookSigner;

/// Shared state of one gateway process.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub routes: Arc<RoutesFile>,
    pub adapters: Arc<Registry>,
    pub keys: Arc<KeyVerifier>,
    pub rate: Arc<KeyRates>,
    pub metrics: Arc<Metrics>,
    /// Woken when a message is accepted, so the engine does not wait for its next poll.
    pub engine_wake: Arc<Notify>,
    /// Woken when a webhook event is queued.
    pub webhook_wake: Arc<Notify>,
    pub webhook_signer: Arc<WebhookSigner>,
    /// The audit journal and SIEM feed.
    pub audit: qaqpa_audit::Auditor,
    /// Trust anchors and revocation data for signature checks.
    pub pki: Arc<crate::pki::PkiService>,
    /// The certificates the gateway relies on as loaded at start-up, each with what it is for;
    /// their expiry is checked at start and daily.
    pub certificates: Arc<[(String, qaqpa_pki::Certificate)]>,
}

/// A token bucket per API key.
pub struct KeyRates {
    rate: f64,
    burst: u32,
    buckets: Mutex<HashMap<String, Arc<RateLimiter>>>,
}

impl KeyRates {
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Ok when the key may make one more request now; otherwise how long until it may.
    pub fn check(&self, key_id: &str) -> Result<(), Duration> {
        let limiter = {
            let Ok(mut map) = self.buckets.lock() else {
                return Ok(());
            };
            if let Some(l) = map.get(key_id) {
                l.clone()
            } else {
                match RateLimiter::per_second(self.rate, self.burst) {
                    Ok(l) => {
                        let l = Arc::new(l);
                        map.insert(key_id.to_string(), l.clone());
                        l
                    }
                    // A zero or negative configured rate means "no limit".
                    Err(_) => return Ok(()),
                }
            }
        };
        limiter.try_acquire()
    }
}

//! Per-target limits: a concurrency limit, an optional rate limit and a circuit breaker, bundled
//! as one [`Target`] per target name and kept in a [`Targets`] registry, so every delivery to
//! the same target (from any worker) shares them.
//!
//! Acquiring never sends anything; it must never hold a concurrency slot for a request the
//! breaker refuses, and never spends a rate token on one.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::breaker::{BreakerConfig, BreakerOpen, BreakerState, CircuitBreaker, Permit};
use crate::clock::{Clock, TokioClock};
use crate::rate::{RateLimiter, RateLimiterError};

/// A target's limits as a route spells them (`[routes.limits]`). Every key is optional.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetLimitsConfig {
    /// Deliveries in flight at once (default 16).
    pub concurrency: usize,
    /// Requests per second; omit for no rate limit. Exclusive with `rate_per_hour`.
    pub rate_per_second: Option<f64>,
    /// Requests per hour (Enbek: 2,000); omit for no rate limit. Exclusive with
    /// `rate_per_second`.
    pub rate_per_hour: Option<f64>,
    /// Requests allowed at once after an idle spell (default: one second's worth, at least 1).
    pub burst: Option<u32>,
    /// Consecutive failures that open the circuit breaker (default 5).
    pub breaker_failures: u32,
    /// First cool-down of an open breaker, in milliseconds (default 30,000).
    pub breaker_cooldown_ms: u64,
    /// Longest cool-down after repeated failed probes, in milliseconds (default 600,000).
    pub breaker_max_cooldown_ms: u64,
}

impl Default for TargetLimitsConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            rate_per_second: None,
            rate_per_hour: None,
            burst: None,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
            breaker_max_cooldown_ms: 600_000,
        }
    }
}

/// A limits configuration that cannot work; the message names the key.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LimitsConfigError {
    #[error("concurrency: must be at least 1")]
    ZeroConcurrency,
    #[error("rate_per_second and rate_per_hour: set at most one")]
    TwoRates,
    #[error("{key}: {source}")]
    Rate {
        key: &'static str,
        source: RateLimiterError,
    },
    #[error("breaker_failures: must be at least 1")]
    ZeroBreakerFailures,
    #[error("breaker_max_cooldown_ms: must not be below breaker_cooldown_ms")]
    CooldownOrder,
}

impl TargetLimitsConfig {
    /// Checks the configuration (call at start-up / `check-config`).
    pub fn validate(&self) -> Result<(), LimitsConfigError> {
        self.build(Arc::new(TokioClock)).map(|_| ())
    }

    /// The rate in requests per second and the config key it came from, if limited.
    fn rate(&self) -> Result<Option<(f64, &'static str)>, LimitsConfigError> {
        match (self.rate_per_second, self.rate_per_hour) {
            (Some(_), Some(_)) => Err(LimitsConfigError::TwoRates),
            (Some(r), None) => Ok(Some((r, "rate_per_second"))),
            (None, Some(r)) => Ok(Some((r / 3600.0, "rate_per_hour"))),
            (None, None) => Ok(None),
        }
    }

    fn build(&self, clock: Arc<dyn Clock>) -> Result<Parts, LimitsConfigError> {
        if self.concurrency == 0 {
            return Err(LimitsConfigError::ZeroConcurrency);
        }
        if self.breaker_failures == 0 {
            return Err(LimitsConfigError::ZeroBreakerFailures);
        }
        if self.breaker_max_cooldown_ms < self.breaker_cooldown_ms {
            return Err(LimitsConfigError::CooldownOrder);
        }
        let rate = match self.rate()? {
            None => None,
            Some((per_second, key)) => {
                let burst = match self.burst {
                    Some(b) => b,
                    // One second's worth (saturating float-to-int cast), at least one.
                    None if per_second.is_finite() => (per_second.ceil() as u32).max(1),
                    None => 1,
                };
                let limiter = RateLimiter::with_clock(per_second, burst, clock.clone()).map_err(
                    |source| {
                        let key = if source == RateLimiterError::ZeroBurst {
                            "burst"
                        } else {
                            key
                        };
                        LimitsConfigError::Rate { key, source }
                    },
                )?;
                Some(limiter)
            }
        };
        let breaker = CircuitBreaker::with_clock(
            BreakerConfig {
                failures: self.breaker_failures,
                cooldown: Duration::from_millis(self.breaker_cooldown_ms),
                max_cooldown: Duration::from_millis(self.breaker_max_cooldown_ms),
            },
            clock,
        );
        Ok(Parts { rate, breaker })
    }
}

struct Parts {
    rate: Option<RateLimiter>,
    breaker: CircuitBreaker,
}

/// One target's shared limits.
#[derive(Debug)]
pub struct Target {
    name: String,
    concurrency: usize,
    slots: Arc<Semaphore>,
    rate: Option<RateLimiter>,
    breaker: CircuitBreaker,
}

impl Target {
    /// A target's limits on tokio's clock.
    pub fn new(
        name: impl Into<String>,
        config: &TargetLimitsConfig,
    ) -> Result<Self, LimitsConfigError> {
        Self::with_clock(name, config, Arc::new(TokioClock))
    }

    /// A target's limits on the given clock (see [`RateLimiter::with_clock`] about `acquire`).
    pub fn with_clock(
        name: impl Into<String>,
        config: &TargetLimitsConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LimitsConfigError> {
        let Parts { rate, breaker } = config.build(clock)?;
        Ok(Self {
            name: name.into(),
            concurrency: config.concurrency,
            slots: Arc::new(Semaphore::new(config.concurrency)),
            rate,
            breaker,
        })
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for a concurrency slot, then asks the breaker (refusing at once, slot released,
    /// when it is open), then waits for a rate token. The returned permit holds the slot until
    /// it is resolved or dropped.
    pub async fn acquire(&self) -> Result<TargetPermit, BreakerOpen> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BreakerOpen {
                // The semaphore is never closed; answer as an open breaker if it ever is.
                retry_after: self.breaker.config().cooldown,
            })?;
        let breaker = self.breaker.try_acquire()?;
        if let Some(rate) = &self.rate {
            rate.acquire().await;
        }
        Ok(TargetPermit {
            _slot: slot,
            breaker,
        })
    }

    /// The breaker's state, for metrics.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The breaker itself.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Deliveries in flight now, for metrics.
    pub fn in_flight(&self) -> usize {
        self.concurrency - self.slots.available_permits()
    }

    /// The configured concurrency limit.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// Leave to make one delivery attempt to a target. Resolve it with [`TargetPermit::success`]
/// (the target answered, even with a business error) or [`TargetPermit::failure`] (transport
/// error, timeout, 5xx…); dropping it frees the slot and reports nothing to the breaker.
#[derive(Debug)]
#[must_use = "report the outcome with success() or failure()"]
pub struct TargetPermit {
    _slot: OwnedSemaphorePermit,
    breaker: Permit,
}

impl TargetPermit {
    /// True when this attempt is the breaker's half-open probe.
    pub fn is_probe(&self) -> bool {
        self.breaker.is_probe()
    }

    /// The target handled the attempt.
    pub fn success(self) {
        self.breaker.success();
    }

    /// The target looked unhealthy.
    pub fn failure(self) {
        self.breaker.failure();
    }
}

/// The registry of targets, keyed by name. Thread-safe; share it with an `Arc`.
pub struct Targets {
    clock: Arc<dyn Clock>,
    map: Mutex<HashMap<String, Arc<Target>>>,
}

impl std::fmt::Debug for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Targets")
            .field("names", &self.names())
            .finish()
    }
}

impl Default for Targets {
    fn default() -> Self {
        Self::new()
    }
}

impl Targets {
    /// An empty registry on tokio's clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(TokioClock))
    }

    /// An empty registry whose targets read time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The target called `name`, created from `config` on first use. Later calls return the
    /// same target whatever config they pass (limits are fixed for the life of the registry;
    /// build a new registry on reload).
    pub fn get_or_create(
        &self,
        name: &str,
        config: &TargetLimitsConfig,
    ) -> Result<Arc<Target>, LimitsConfigError> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(target) = map.get(name) {
            return Ok(target.clone());
        }
        let target = Arc::new(Target::with_clock(name, config, self.clock.clone())?);
        map.insert(name.to_owned(), target.clone());
        Ok(target)
    }

    /// The target called `name`, if created.
    pub fn get(&self, name: &str) -> Option<Arc<Target>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every target, sorted by name (for metrics).
    pub fn all(&self) -> Vec<Arc<Target>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = map.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Every target's name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.all().iter().map(|t| t.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// Polls `fut` once: `Some` if it completed without waiting.
    async fn ready_now<F: std::future::Future>(fut: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::ZERO, fut).await.ok()
    }

    fn config(json: &str) -> TargetLimitsConfig {
        serde_json::from_str(json).expect("valid config")
    }

    #[test]
    fn config_defaults_are_sane_and_unknown_keys_are_named() {
        let c = config("{}");
        assert_eq!(c, TargetLimitsConfig::default());
        assert_eq!(c.concurrency, 16);
        assert!(c.validate().is_ok());
        let err =
            serde_json::from_str::<TargetLimitsConfig>(r#"{"concurency": 4}"#).expect_err("typo");
        assert!(
            err.to_string().contains("unknown field `concurency`"),
            "{err}"
        );
    }

    #[test]
    fn contradictory_or_empty_limits_are_refused_naming_the_key() {
        let two = config(r#"{"rate_per_second": 1.0, "rate_per_hour": 100.0}"#);
        assert_eq!(two.validate(), Err(LimitsConfigError::TwoRates));
        let zero = config(r#"{"concurrency": 0}"#);
        assert_eq!(zero.validate(), Err(LimitsConfigError::ZeroConcurrency));
        let neg = config(r#"{"rate_per_hour": -5}"#);
        let err = neg.validate().expect_err("negative rate");
        assert!(err.to_string().starts_with("rate_per_hour:"), "{err}");
        let burst = config(r#"{"rate_per_second": 5, "burst": 0}"#);
        let err = burst.validate().expect_err("zero burst");
        assert!(err.to_string().starts_with("burst:"), "{err}");
        let order = config(r#"{"breaker_cooldown_ms": 10, "breaker_max_cooldown_ms": 5}"#);
        assert_eq!(order.validate(), Err(LimitsConfigError::CooldownOrder));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_limit_holds_extra_deliveries_until_a_slot_frees() {
        let t = Target::new("x", &config(r#"{"concurrency": 2}"#)).expect("valid");
        let a = t.acquire().await.expect("slot 1");
        let b = t.acquire().await.expect("slot 2");
        assert_eq!(t.in_flight(), 2);
        assert!(ready_now(t.acquire()).await.is_none(), "third waits");
        a.success();
        let c = ready_now(t.acquire()).await.expect("slot freed");
        assert!(c.is_ok());
        drop(b);
        drop(c);
        assert_eq!(t.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn open_breaker_refuses_at_once_and_keeps_no_slot() {
        let clock = Arc::new(ManualClock::new());
        let t = Target::with_clock(
            "x",
            &config(r#"{"concurrency": 1, "breaker_failures": 2, "breaker_cooldown_ms": 1000}"#),
            clock.clone(),
        )
        .expect("valid");
        t.acquire().await.expect("admitted").failure();
        t.acquire().await.expect("admitted").failure();
        assert_eq!(t.breaker_state(), BreakerState::Open);
        let refused = ready_now(t.acquire()).await.expect("no waiting");
        assert_eq!(
            refused.expect_err("open").retry_after,
            Duration::from_millis(1000)
        );
        assert_eq!(t.in_flight(), 0);
        clock.advance(Duration::from_millis(1000));
        let probe = t.acquire().await.expect("probe");
        assert!(probe.is_probe());
        probe.success();
        assert_eq!(t.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_paces_a_targets_deliveries() {
        let t = Target::new(
            "enbek",
            &config(r#"{"concurrency": 4, "rate_per_hour": 3600, "burst": 1}"#),
        )
        .expect("valid");
        let start = tokio::time::Instant::now();
        for _ in 0..11 {
            t.acquire().await.expect("admitted").success();
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_secs(10) && elapsed < Duration::from_millis(10_100),
            "one per second after the first: {elapsed:?}"
        );
    }

    #[test]
    fn registry_shares_one_target_per_name() {
        let targets = Targets::new();
        let cfg = TargetLimitsConfig::default();
        let a = targets.get_or_create("esf", &cfg).expect("valid");
        let b = targets
            .get_or_create("esf", &config(r#"{"concurrency": 1}"#))
            .expect("valid");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.concurrency(), 16, "first config wins");
        targets.get_or_create("bmg", &cfg).expect("valid");
        assert_eq!(targets.names(), vec!["bmg".to_owned(), "esf".to_owned()]);
        assert!(targets.get("nope").is_none());
        assert!(targets
            .get_or_create("bad", &config(r#"{"concurrency": 0}"#))
            .is_err());
        assert!(targets.get("bad").is_none());
    }
}

//! A consecutive-failures circuit breaker (after linkerd2-proxy's `consecutive_failures.rs`):
//! `failures` failed attempts in a row open it; while open every request is refused at once
//! with the time left; after the cool-down it is half-open and admits exactly ONE probe; the
//! probe's success closes it, its failure re-opens it with a doubled cool-down (up to a maximum).
//!
//! It must never admit two probes at once, and never block: every method returns immediately.
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::clock::{Clock, TokioClock};

/// The breaker's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (at least 1).
    pub failures: u32,
    /// First cool-down after opening.
    pub cooldown: Duration,
    /// Longest cool-down after repeated failed probes.
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
        }
    }
}

/// What the breaker is doing, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Requests flow; failures are counted.
    Closed,
    /// Requests are refused until the cool-down ends.
    Open,
    /// The cool-down is over: one probe is (or may be) in flight.
    HalfOpen,
}

impl BreakerState {
    /// Lower-case name, e.g. for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// A number for a gauge: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// The breaker refused a request. `retry_after` is the remaining cool-down, or, while a
/// half-open probe is in flight, the base cool-down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open; retry after {} ms", retry_after.as_millis())]
pub struct BreakerOpen {
    pub retry_after: Duration,
}

#[derive(Debug)]
enum Phase {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        until: Instant,
        cooldown: Duration,
    },
    HalfOpen {
        probe_in_flight: bool,
        cooldown: Duration,
    },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Bumped on every transition, so an outcome reported by a permit from an earlier phase
    /// (a request admitted while closed that ends after the breaker opened) is ignored.
    generation: u64,
}

struct Shared {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

/// A thread-safe circuit breaker. Cloning is cheap and clones share one state.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("config", &self.shared.config)
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreaker {
    /// A closed breaker on tokio's clock.
    pub fn new(config: BreakerConfig) -> Self {
        Self::with_clock(config, Arc::new(TokioClock))
    }

    /// A closed breaker reading time from `clock`. `failures` of 0 is treated as 1 and a
    /// `max_cooldown` below `cooldown` as `cooldown`.
    pub fn with_clock(mut config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        config.failures = config.failures.max(1);
        config.max_cooldown = config.max_cooldown.max(config.cooldown);
        Self {
            shared: Arc::new(Shared {
                config,
                clock,
                inner: Mutex::new(Inner {
                    phase: Phase::Closed {
                        consecutive_failures: 0,
                    },
                    generation: 0,
                }),
            }),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }

    /// Asks to send one request. The permit must be resolved with [`Permit::success`] or
    /// [`Permit::failure`]; dropping it counts as neither (and frees the half-open probe slot).
    pub fn try_acquire(&self) -> Result<Permit, BreakerOpen> {
        let now = self.shared.clock.now();
        let mut inner = self.shared.lock();
        inner.expire_open(now);
        let generation = inner.generation;
        match &mut inner.phase {
            Phase::Closed { .. } => Ok(self.permit(generation, false)),
            Phase::Open { until, .. } => Err(BreakerOpen {
                retry_after: until.saturating_duration_since(now),
            }),
            Phase::HalfOpen {
                probe_in_flight, ..
            } => {
                if *probe_in_flight {
                    Err(BreakerOpen {
                        retry_after: self.shared.config.cooldown,
                    })
                } else {
                    *probe_in_flight = true;
                    Ok(self.permit(generation, true))
                }
            }
        }
    }

    /// The current state (an open breaker whose cool-down is over reads as half-open).
    pub fn state(&self) -> BreakerState {
        let now = self.shared.clock.now();
        let mut inner = self.shared.lock();
        inner.expire_open(now);
        match inner.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn permit(&self, generation: u64, probe: bool) -> Permit {
        Permit {
            shared: Some(self.shared.clone()),
            generation,
            probe,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is a few plain values always left consistent; a panic elsewhere while the
        // lock was held cannot corrupt it, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, generation: u64, probe: bool, outcome: Outcome) {
        let now = self.clock.now();
        let mut inner = self.lock();
        if inner.generation != generation {
            return; // admitted in an earlier phase: says nothing about the target now
        }
        let config = &self.config;
        let next = match (&mut inner.phase, outcome) {
            (
                Phase::Closed {
                    consecutive_failures,
                },
                Outcome::Success,
            ) => {
                *consecutive_failures = 0;
                None
            }
            (
                Phase::Closed {
                    consecutive_failures,
                },
                Outcome::Failure,
            ) => {
                *consecutive_failures += 1;
                (*consecutive_failures >= config.failures).then(|| Phase::Open {
                    until: now + config.cooldown,
                    cooldown: config.cooldown,
                })
            }
            (Phase::HalfOpen { .. }, Outcome::Success) if probe => Some(Phase::Closed {
                consecutive_failures: 0,
            }),
            (Phase::HalfOpen { cooldown, .. }, Outcome::Failure) if probe => {
                let longer = cooldown.saturating_mul(2).min(config.max_cooldown);
                Some(Phase::Open {
                    until: now + longer,
                    cooldown: longer,
                })
            }
            (
                Phase::HalfOpen {
                    probe_in_flight, ..
                },
                Outcome::Abandoned,
            ) if probe => {
                *probe_in_flight = false;
                None
            }
            _ => None,
        };
        if let Some(phase) = next {
            inner.phase = phase;
            inner.generation += 1;
        }
    }
}

impl Inner {
    fn expire_open(&mut self, now: Instant) {
        if let Phase::Open { until, cooldown } = self.phase {
            if now >= until {
                self.phase = Phase::HalfOpen {
                    probe_in_flight: false,
                    cooldown,
                };
                self.generation += 1;
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Success,
    Failure,
    Abandoned,
}

/// Leave to send one request. Report how it went with [`Permit::success`] (the target answered,
/// even with a business error) or [`Permit::failure`] (the target looks unhealthy: transport
/// error, timeout, 5xx). Dropping it reports nothing but frees the half-open probe slot.
#[must_use = "report the outcome with success() or failure()"]
pub struct Permit {
    shared: Option<Arc<Shared>>,
    generation: u64,
    probe: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("generation", &self.generation)
            .field("probe", &self.probe)
            .finish()
    }
}

impl Permit {
    /// True when this request is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The target handled the request.
    pub fn success(mut self) {
        self.resolve(Outcome::Success);
    }

    /// The target failed in a way that suggests it is unhealthy.
    pub fn failure(mut self) {
        self.resolve(Outcome::Failure);
    }

    fn resolve(&mut self, outcome: Outcome) {
        if let Some(shared) = self.shared.take() {
            shared.record(self.generation, self.probe, outcome);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.resolve(Outcome::Abandoned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const COOL: Duration = Duration::from_secs(10);

    fn breaker() -> (CircuitBreaker, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let b = CircuitBreaker::with_clock(
            BreakerConfig {
                failures: 3,
                cooldown: COOL,
                max_cooldown: Duration::from_secs(35),
            },
            clock.clone(),
        );
        (b, clock)
    }

    fn fail(b: &CircuitBreaker) {
        b.try_acquire().expect("admitted").failure();
    }

    #[test]
    fn breaker_opens_after_consecutive_failures() {
        let (b, _) = breaker();
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        let refused = b.try_acquire().expect_err("open");
        assert_eq!(refused.retry_after, COOL);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let (b, _) = breaker();
        fail(&b);
        fail(&b);
        b.try_acquire().expect("admitted").success();
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn open_breaker_reports_the_remaining_cooldown() {
        let (b, clock) = breaker();
        (0..3).for_each(|_| fail(&b));
        clock.advance(Duration::from_secs(4));
        assert_eq!(
            b.try_acquire().expect_err("open").retry_after,
            Duration::from_secs(6)
        );
    }

    #[test]
    fn half_open_admits_exactly_one_probe_and_success_closes() {
        let (b, clock) = breaker();
        (0..3).for_each(|_| fail(&b));
        clock.advance(COOL);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().expect("probe admitted");
        assert!(probe.is_probe());
        assert!(
            b.try_acquire().is_err(),
            "second request refused while probing"
        );
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        let p = b.try_acquire().expect("closed again");
        assert!(!p.is_probe());
        p.success();
    }

    #[test]
    fn failed_probe_reopens_with_a_doubled_then_capped_cooldown() {
        let (b, clock) = breaker();
        (0..3).for_each(|_| fail(&b));
        clock.advance(COOL);
        fail(&b); // the probe
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.try_acquire().expect_err("open").retry_after,
            Duration::from_secs(20)
        );
        clock.advance(Duration::from_secs(20));
        fail(&b);
        assert_eq!(
            b.try_acquire().expect_err("open").retry_after,
            Duration::from_secs(35),
            "40 s capped at max_cooldown"
        );
        clock.advance(Duration::from_secs(35));
        b.try_acquire().expect("probe").success();
        assert_eq!(b.state(), BreakerState::Closed);
        // After closing, the next trip starts from the base cool-down again.
        (0..3).for_each(|_| fail(&b));
        assert_eq!(b.try_acquire().expect_err("open").retry_after, COOL);
    }

    #[test]
    fn dropped_probe_frees_the_slot_without_deciding() {
        let (b, clock) = breaker();
        (0..3).for_each(|_| fail(&b));
        clock.advance(COOL);
        drop(b.try_acquire().expect("probe"));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let again = b.try_acquire().expect("slot freed");
        assert!(again.is_probe());
        again.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn late_outcomes_from_before_the_trip_are_ignored() {
        let (b, clock) = breaker();
        let straggler = b.try_acquire().expect("closed");
        (0..3).for_each(|_| fail(&b));
        straggler.success(); // admitted while closed; must not close an open breaker
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(COOL);
        let late = b.try_acquire().expect("probe");
        late.failure();
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn half_open_admits_one_probe_under_concurrency() {
        let (b, clock) = breaker();
        (0..3).for_each(|_| fail(&b));
        clock.advance(COOL);
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let b = b.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    // Hold any permit until every thread has tried.
                    let permit = b.try_acquire().ok();
                    barrier.wait();
                    permit.map(|p| {
                        let probe = p.is_probe();
                        p.failure();
                        probe
                    })
                })
            })
            .collect();
        let admitted: Vec<bool> = handles
            .into_iter()
            .filter_map(|h| h.join().expect("thread ran"))
            .collect();
        assert_eq!(admitted, vec![true], "exactly one probe, and it is a probe");
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn zero_failure_threshold_means_one() {
        let clock = Arc::new(ManualClock::new());
        let b = CircuitBreaker::with_clock(
            BreakerConfig {
                failures: 0,
                ..BreakerConfig::default()
            },
            clock,
        );
        b.try_acquire().expect("closed").success();
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
    }
}

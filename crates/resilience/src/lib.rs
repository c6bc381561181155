//! The delivery engine's protective machinery, one small piece per module, each tested on its
//! own: [`Backoff`] (when to try again), [`CircuitBreaker`] (stop hammering a dead target),
//! [`RateLimiter`] (stay under a target's quota) and [`Targets`] (the three plus a concurrency
//! limit, per target).
//!
//! This crate knows nothing of messages, adapters or storage, and never performs I/O: it only
//! decides and waits. Time comes from an injectable [`Clock`] so every behaviour is testable
//! without sleeping.

pub mod backoff;
pub mod breaker;
pub mod clock;
pub mod limits;
pub mod rate;

pub use backoff::{Backoff, BackoffConfig};
pub use breaker::{BreakerConfig, BreakerOpen, BreakerState, CircuitBreaker, Permit};
pub use clock::{Clock, ManualClock, TokioClock};
pub use limits::{LimitsConfigError, Target, TargetLimitsConfig, TargetPermit, Targets};
pub use rate::{RateLimiter, RateLimiterError};

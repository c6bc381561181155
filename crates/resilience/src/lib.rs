//! The delivery engine's protective machinery, one small piece per module, each tested on its
//! own: [`Backoff`] (when to try again), [`CircuitBreaker`] (stop hammering a dead target),
//! [`RateLimiter`] (stay under a target's quota) and [`Targets`] (the three plus a concurrency
//! limit, per target).
//!
//! This crate knows nothing of messages, adapters or storage, and never performs I/O: it only
//! decides and waits. Time comes from an injectable [`Clock`] so every behaviour is testable
//! without sleeping.
//!
//! How the engine uses them for one attempt (sketch):
//! ```text
//! let target = targets.get_or_create(&route.target, &route.limits)?;   // once per route
//! match target.acquire().await {                 // concurrency slot → breaker → rate token
//!     Err(BreakerOpen { retry_after }) => reschedule(msg, retry_after), // no attempt counted
//!     Ok(permit) => match adapter.deliver(&msg, &cx).await {
//!         Ok(_) => permit.success(),
//!         Err(Failure::Permanent { .. }) => permit.success(),  // the target is up, the message is bad
//!         Err(Failure::Retry { after, .. }) => {
//!             permit.failure();
//!             reschedule(msg, backoff.delay_with_hint(msg.attempt - 1, after));
//!         }
//!     },
//! }
//! ```

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

//! Exponential backoff with full jitter: the delay before retry number `attempt` is drawn
//! uniformly from `[0, min(cap, base * 2^attempt)]` (the "full jitter" of AWS's architecture
//! blog), so a crowd of failed deliveries spreads out instead of returning in lockstep.
//!
//! It must never return more than `cap` on its own account (a server's hint may be longer, see
//! [`Backoff::delay_with_hint`]), and never panics on any attempt number.
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

/// Backoff settings as a route spells them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// Ceiling of the first delay, in milliseconds (default 1,000).
    pub base_ms: u64,
    /// Largest delay ever computed, in milliseconds (default 300,000 = 5 minutes).
    pub cap_ms: u64,
    /// Retries allowed after the first attempt; `None` means unlimited (the route's max age then
    /// bounds them). Default `None`.
    pub max_retries: Option<u32>,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base_ms: 1_000,
            cap_ms: 300_000,
            max_retries: None,
        }
    }
}

/// A full-jitter exponential backoff policy. Shareable (`&self` everywhere, `Sync`); the random
/// source is a lock-free SplitMix64 seeded from the OS (or a fixed seed in tests).
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    max_retries: Option<u32>,
    rng: AtomicU64,
}

impl Backoff {
    /// A policy with the given first-delay ceiling and cap (cap is raised to base if smaller),
    /// unlimited retries, randomly seeded.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
            max_retries: None,
            rng: AtomicU64::new(random_seed()),
        }
    }

    /// The policy a route's configuration describes.
    pub fn from_config(config: &BackoffConfig) -> Self {
        Self::new(
            Duration::from_millis(config.base_ms),
            Duration::from_millis(config.cap_ms),
        )
        .with_max_retries(config.max_retries)
    }

    /// Limits the number of retries ([`Backoff::next_delay`] answers `None` past it).
    pub fn with_max_retries(mut self, max_retries: Option<u32>) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Makes the jitter deterministic: the same seed gives the same sequence of delays.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = AtomicU64::new(seed);
        self
    }

    /// The upper bound of the delay before retry `attempt` (0 for the first retry):
    /// `min(cap, base * 2^attempt)`, saturating.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(0);
        if factor == 0 {
            return self.cap;
        }
        self.base
            .checked_mul(factor)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// The delay before retry `attempt` (0 for the first retry): uniform in
    /// `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let span = u128::from(nanos) + 1;
        let pick = (u128::from(self.next_random()) * span) >> 64;
        Duration::from_nanos(u64::try_from(pick).unwrap_or(nanos))
    }

    /// The delay before retry `attempt`, or `None` when the retry budget is spent.
    pub fn next_delay(&self, attempt: u32) -> Option<Duration> {
        match self.max_retries {
            Some(max) if attempt >= max => None,
            _ => Some(self.delay(attempt)),
        }
    }

    /// The delay before retry `attempt`, never shorter than the target's own hint
    /// (`Retry-After`): see [`honour_hint`].
    pub fn delay_with_hint(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        honour_hint(self.delay(attempt), hint)
    }

    fn next_random(&self) -> u64 {
        // SplitMix64: a Weyl sequence through a mixing function; fetch_add keeps it lock-free.
        let mut z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `max(hint, computed)`: a target that says when to come back is believed when it asks for
/// longer than our own backoff; a shorter hint does not make us retry sooner than computed.
pub fn honour_hint(computed: Duration, hint: Option<Duration>) -> Duration {
    hint.map_or(computed, |h| h.max(computed))
}

fn random_seed() -> u64 {
    // std's RandomState is seeded from the OS once per process and perturbed per instance.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x0051_4151_5041); // "QAQPA"
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).with_seed(7)
    }

    #[test]
    fn ceiling_doubles_per_attempt_until_the_cap() {
        let b = policy();
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(5), Duration::from_millis(3_200));
        assert_eq!(b.ceiling(7), Duration::from_secs(10), "12.8 s is capped");
        assert_eq!(b.ceiling(40), Duration::from_secs(10));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10), "no overflow");
    }

    #[test]
    fn jittered_delays_stay_within_zero_and_the_ceiling() {
        let b = policy();
        for attempt in 0..64 {
            for _ in 0..200 {
                let d = b.delay(attempt);
                assert!(d <= b.ceiling(attempt), "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn jitter_spreads_over_the_whole_range() {
        let b = policy();
        let ceiling = b.ceiling(3); // 800 ms
        let samples: Vec<Duration> = (0..2_000).map(|_| b.delay(3)).collect();
        let min = samples.iter().min().copied().unwrap_or_default();
        let max = samples.iter().max().copied().unwrap_or_default();
        let mean = samples.iter().sum::<Duration>() / 2_000;
        assert!(min < ceiling / 20, "some delays are near zero: {min:?}");
        assert!(
            max > ceiling * 19 / 20,
            "some delays are near the ceiling: {max:?}"
        );
        assert!(
            mean > ceiling * 2 / 5 && mean < ceiling * 3 / 5,
            "mean {mean:?} is about half of {ceiling:?}"
        );
    }

    #[test]
    fn mean_delay_grows_with_attempts() {
        let b = policy();
        let mean = |attempt| (0..1_000).map(|_| b.delay(attempt)).sum::<Duration>() / 1_000;
        let (m0, m3, m6) = (mean(0), mean(3), mean(6));
        assert!(m0 < m3 && m3 < m6, "{m0:?} < {m3:?} < {m6:?}");
    }

    #[test]
    fn same_seed_gives_the_same_delays() {
        let a: Vec<_> = (0..20)
            .map({
                let b = policy();
                move |i| b.delay(i)
            })
            .collect();
        let b2 = policy();
        let again: Vec<_> = (0..20).map(|i| b2.delay(i)).collect();
        assert_eq!(a, again);
        let other = Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).with_seed(8);
        let different: Vec<_> = (0..20).map(|i| other.delay(i)).collect();
        assert_ne!(a, different);
    }

    #[test]
    fn a_longer_server_hint_wins_and_a_shorter_one_does_not() {
        let b = policy();
        let hinted = b.delay_with_hint(0, Some(Duration::from_secs(30)));
        assert_eq!(hinted, Duration::from_secs(30));
        assert_eq!(
            honour_hint(Duration::from_secs(5), Some(Duration::from_secs(1))),
            Duration::from_secs(5)
        );
        assert_eq!(
            honour_hint(Duration::from_secs(5), None),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn retry_budget_ends_the_sequence() {
        let b = policy().with_max_retries(Some(3));
        assert!(b.next_delay(0).is_some());
        assert!(b.next_delay(2).is_some());
        assert_eq!(b.next_delay(3), None);
        assert!(policy().next_delay(1_000).is_some(), "unlimited by default");
    }

    #[test]
    fn config_rejects_unknown_keys_and_fills_defaults() {
        let cfg: BackoffConfig = serde_json::from_str(r#"{"base_ms": 50}"#).expect("parses");
        assert_eq!(cfg.base_ms, 50);
        assert_eq!(cfg.cap_ms, 300_000);
        let err =
            serde_json::from_str::<BackoffConfig>(r#"{"base": 50}"#).expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `base`"), "{err}");
        let b = Backoff::from_config(&cfg);
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
    }
}

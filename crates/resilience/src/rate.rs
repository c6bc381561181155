//! A token-bucket rate limiter: `rate` tokens per second flow into a bucket holding at most
//! `burst`; each request takes one. Used to stay under a target's quota (Enbek: 2,000
//! requests/hour; ESF: 3,000 calls/day per IP).
//!
//! It must never admit more than `burst + rate * elapsed` requests over any interval, and
//! [`RateLimiter::acquire`] must never spin: it sleeps on tokio's timer exactly as long as needed.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::{Clock, TokioClock};

/// A rate or burst that cannot work.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RateLimiterError {
    #[error("rate must be a positive, finite number of requests per second (got {0})")]
    BadRate(f64),
    #[error("burst must be at least 1")]
    ZeroBurst,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// A token bucket. Thread-safe (`&self`); share it with an `Arc`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    clock: Arc<dyn Clock>,
    bucket: Mutex<Bucket>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate_per_second", &self.rate)
            .field("burst", &self.burst)
            .finish()
    }
}

impl RateLimiter {
    /// `rate` requests per second, up to `burst` at once; starts full; tokio's clock.
    pub fn per_second(rate: f64, burst: u32) -> Result<Self, RateLimiterError> {
        Self::with_clock(rate, burst, Arc::new(TokioClock))
    }

    /// `rate` requests per hour, up to `burst` at once; starts full; tokio's clock.
    pub fn per_hour(rate: f64, burst: u32) -> Result<Self, RateLimiterError> {
        Self::with_clock(rate / 3600.0, burst, Arc::new(TokioClock))
    }

    /// `rate` requests per second on the given clock. [`RateLimiter::acquire`] sleeps on tokio's
    /// timer, so use it only with a clock that follows tokio time ([`TokioClock`]); with a
    /// [`crate::ManualClock`] use [`RateLimiter::try_acquire`].
    pub fn with_clock(
        rate: f64,
        burst: u32,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RateLimiterError> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(RateLimiterError::BadRate(rate));
        }
        if burst == 0 {
            return Err(RateLimiterError::ZeroBurst);
        }
        let now = clock.now();
        Ok(Self {
            rate,
            burst: f64::from(burst),
            clock,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(burst),
                refilled_at: now,
            }),
        })
    }

    /// Requests per second.
    pub fn rate_per_second(&self) -> f64 {
        self.rate
    }

    /// Takes a token now, or says how long until one is available.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(bucket.refilled_at);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - bucket.tokens;
            // Round up to the next microsecond so the wake-up never lands just short of a token.
            let wait = Duration::from_secs_f64(missing / self.rate) + Duration::from_micros(1);
            Err(wait)
        }
    }

    /// Waits until a token is available and takes it. Cancel-safe: a dropped future has taken
    /// nothing.
    pub async fn acquire(&self) {
        while let Err(wait) = self.try_acquire() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn burst_is_available_at_once_then_the_wait_is_reported() {
        let clock = Arc::new(ManualClock::new());
        let rl = RateLimiter::with_clock(2.0, 3, clock.clone()).expect("valid");
        for _ in 0..3 {
            assert_eq!(rl.try_acquire(), Ok(()));
        }
        let wait = rl.try_acquire().expect_err("bucket empty");
        assert!(
            wait >= Duration::from_millis(500) && wait < Duration::from_millis(501),
            "{wait:?}"
        );
        clock.advance(Duration::from_millis(499));
        assert!(rl.try_acquire().is_err());
        clock.advance(Duration::from_millis(1));
        assert_eq!(rl.try_acquire(), Ok(()));
    }

    #[test]
    fn idle_time_refills_no_more_than_the_burst() {
        let clock = Arc::new(ManualClock::new());
        let rl = RateLimiter::with_clock(10.0, 2, clock.clone()).expect("valid");
        clock.advance(Duration::from_secs(3600));
        assert!(rl.try_acquire().is_ok());
        assert!(rl.try_acquire().is_ok());
        assert!(
            rl.try_acquire().is_err(),
            "only the burst of 2 was saved up"
        );
    }

    #[test]
    fn nonsense_rates_are_refused() {
        assert_eq!(
            RateLimiter::per_second(0.0, 1).map(|_| ()),
            Err(RateLimiterError::BadRate(0.0))
        );
        assert!(RateLimiter::per_second(f64::NAN, 1).is_err());
        assert!(RateLimiter::per_second(-1.0, 1).is_err());
        assert_eq!(
            RateLimiter::per_second(1.0, 0).map(|_| ()),
            Err(RateLimiterError::ZeroBurst)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_holds_throughput_to_the_rate_over_virtual_time() {
        let rl = Arc::new(RateLimiter::per_second(50.0, 5).expect("valid"));
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let rl = rl.clone();
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::new();
                for _ in 0..50 {
                    rl.acquire().await;
                    times.push(tokio::time::Instant::now());
                }
                times
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.extend(t.await.expect("task ran"));
        }
        times.sort();
        // 400 requests at 50/s with a burst of 5: the last at (400 - 5) / 50 = 7.9 s.
        let total = times.last().copied().unwrap_or(start) - start;
        assert!(
            total >= Duration::from_millis(7_900) && total < Duration::from_millis(8_000),
            "{total:?}"
        );
        // Over every window of one second, at most burst + rate requests.
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(in_window <= 55, "{in_window} requests within 1 s");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_hour_quota_spaces_requests_across_the_hour() {
        let rl = RateLimiter::per_hour(2_000.0, 1).expect("valid");
        let start = tokio::time::Instant::now();
        for _ in 0..2_001 {
            rl.acquire().await;
        }
        let elapsed = start.elapsed();
        // Never faster than the quota. Slower by at most tokio's 1 ms timer granularity per
        // wait: with a burst of 1 a token that ripens before the wake-up cannot be saved.
        assert!(
            elapsed >= Duration::from_secs(3_600) && elapsed <= Duration::from_millis(3_602_001),
            "2,001 requests (burst 1) take one hour: {elapsed:?}"
        );
    }
}

//! Exponential backoff with jitter between failed attempts: reconnects of
//! the collectors that hold a connection (PostgreSQL, Redis) and retried
//! sink writes.

use std::time::{Duration, Instant};

use rand::Rng;

/// When the next connection attempt may be made.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
    next_attempt: Option<Instant>,
}

impl Backoff {
    /// Waits start at `base`, double with each failure, and never exceed `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
            next_attempt: None,
        }
    }

    /// How long until an attempt is allowed; `None` when it is now.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.next_attempt
            .and_then(|next| next.checked_duration_since(now))
            .filter(|wait| !wait.is_zero())
    }

    /// Records a failed attempt that started at `started`: the next waits
    /// `base * 2^(failures-1)`, capped at `max`, scaled by a random factor in
    /// 0.5..=1 so that many sidecars do not retry in step.
    pub fn failed(&mut self, started: Instant) {
        self.failures = self.failures.saturating_add(1);
        let exponent = self.failures.saturating_sub(1).min(20);
        let delay = self.base.saturating_mul(1 << exponent).min(self.max);
        let jitter = rand::rng().random_range(0.5..=1.0);
        self.next_attempt = Some(started + delay.mul_f64(jitter));
    }

    /// Failed attempts since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a successful attempt.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.next_attempt = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(backoff.remaining(now), None);
        for (failure, ceiling) in [1u64, 2, 4, 8, 10, 10].into_iter().enumerate() {
            backoff.failed(now);
            let wait = backoff.remaining(now).unwrap();
            let ceiling = Duration::from_secs(ceiling);
            assert!(
                wait <= ceiling && wait >= ceiling / 2,
                "failure {failure}: {wait:?} not in {:?}..={ceiling:?}",
                ceiling / 2
            );
        }
        assert_eq!(backoff.remaining(now + Duration::from_secs(11)), None);
        backoff.reset();
        assert_eq!(backoff.remaining(now), None);
    }
}

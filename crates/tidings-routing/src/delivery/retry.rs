//! `RetryPolicy`: full-jitter exponential backoff with limits.

use std::time::Duration;

/// Default for [`RetryPolicy::max_attempts`]: no limit, so a batch is
/// retried until it is older than [`DEFAULT_MAX_BATCH_AGE`] (an outage of
/// minutes delays events, it does not cost them).
pub const DEFAULT_MAX_ATTEMPTS: u32 = u32::MAX;
/// Default for [`RetryPolicy::initial_backoff`]: 500 ms.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Default for [`RetryPolicy::max_backoff`]: 30 s.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Default for [`RetryPolicy::max_batch_age`]: 15 minutes.
pub const DEFAULT_MAX_BATCH_AGE: Duration = Duration::from_secs(15 * 60);

/// How a failed batch is retried.
///
/// Only retryable failures are retried (see
/// [`SinkErrorKind`](crate::SinkErrorKind)). Before attempt `n + 1` the sink
/// waits a random time between zero and `min(max_backoff, initial_backoff ×
/// 2ⁿ⁻¹)` ("full jitter"), and at least as long as a `Retry-After` the
/// receiver sent, during which the whole sink pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_batch_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_batch_age: DEFAULT_MAX_BATCH_AGE,
        }
    }
}

impl RetryPolicy {
    /// Fire and forget (tachyon's default): one attempt, no retry.
    #[must_use]
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Attempts per batch, the first included; at least 1. Defaults to no
    /// limit ([`DEFAULT_MAX_ATTEMPTS`]): `max_batch_age` ends the retries.
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The base of the backoff. Defaults to 500 ms.
    #[must_use]
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The cap of the backoff. Defaults to 30 s.
    #[must_use]
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// How long a batch may keep being retried, from when it was formed.
    /// Defaults to 15 minutes.
    #[must_use]
    pub fn with_max_batch_age(mut self, age: Duration) -> Self {
        self.max_batch_age = age;
        self
    }

    /// Attempts per batch, the first included.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The base of the backoff.
    #[must_use]
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The cap of the backoff.
    #[must_use]
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// How long a batch may keep being retried.
    #[must_use]
    pub fn max_batch_age(&self) -> Duration {
        self.max_batch_age
    }

    /// The longest a batch can keep being sent again after its first
    /// attempt: the sum of the backoff ceilings of its retries, capped by
    /// `max_batch_age`. A receiver that removes duplicates (NATS JetStream's
    /// duplicate window, say) must remember an id at least this long.
    #[must_use]
    pub fn horizon(&self) -> Duration {
        // Ceilings stop changing after 32 doublings: the retries past that
        // each add the same ceiling.
        const STEADY: u32 = 33;
        let growing = (1..self.max_attempts.min(STEADY))
            .map(|attempt| self.backoff_ceiling(attempt))
            .fold(Duration::ZERO, Duration::saturating_add);
        let steady = self
            .backoff_ceiling(STEADY)
            .saturating_mul(self.max_attempts.saturating_sub(STEADY));
        growing.saturating_add(steady).min(self.max_batch_age)
    }

    /// The upper bound of the wait after failed attempt `attempt` (1-based).
    #[must_use]
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }

    /// The wait after failed attempt `attempt`: uniform in `[0, ceiling]`,
    /// and never shorter than `retry_after`.
    #[must_use]
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.backoff_ceiling(attempt);
        let jittered = ceiling.mul_f64(fastrand::f64());
        retry_after.map_or(jittered, |floor| jittered.max(floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<u64> = (1..=8)
            .map(|a| policy.backoff_ceiling(a).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(policy.backoff_ceiling(u32::MAX), DEFAULT_MAX_BACKOFF);
    }

    #[test]
    fn waits_are_jittered_within_the_ceiling_and_honour_retry_after() {
        let policy = RetryPolicy::default();
        let waits: Vec<Duration> = (0..200).map(|_| policy.backoff(3, None)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(2)));
        assert!(
            waits.iter().any(|w| *w < Duration::from_millis(1000)),
            "full jitter reaches low values"
        );
        assert!(
            waits.iter().any(|w| *w > Duration::from_millis(1000)),
            "and high ones"
        );
        for _ in 0..50 {
            assert!(policy.backoff(1, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        }
    }

    #[test]
    fn the_horizon_sums_the_retry_waits_up_to_the_batch_age() {
        let policy = RetryPolicy::default().with_max_attempts(4);
        // 0.5 s + 1 s + 2 s of ceilings before attempts 2, 3 and 4.
        assert_eq!(policy.horizon(), Duration::from_millis(3500));
        assert_eq!(RetryPolicy::none().horizon(), Duration::ZERO);
        // Ten attempts would wait 0.5+1+2+4+8+16+30+30+30 s, over a 1-minute age cap.
        let capped = RetryPolicy::default()
            .with_max_attempts(10)
            .with_max_batch_age(Duration::from_secs(60));
        assert_eq!(capped.horizon(), Duration::from_secs(60));
        // No attempt limit: the batch age is the horizon.
        assert_eq!(RetryPolicy::default().horizon(), DEFAULT_MAX_BATCH_AGE);
        let steady = RetryPolicy::default()
            .with_max_attempts(40)
            .with_max_batch_age(Duration::MAX);
        // 0.5+1+2+4+8+16 s, then 33 retries at the 30 s cap.
        assert_eq!(
            steady.horizon(),
            Duration::from_millis(31_500 + 33 * 30_000)
        );
    }

    #[test]
    fn none_is_a_single_attempt() {
        assert_eq!(RetryPolicy::none().max_attempts(), 1);
        assert_eq!(
            RetryPolicy::default().with_max_attempts(0).max_attempts(),
            1
        );
    }
}

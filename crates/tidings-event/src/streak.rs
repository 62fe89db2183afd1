//! `FailureStreak`: how the crates of tidings log a failure that repeats
//! (a sink down, a disk full) without flooding the log: the first failure
//! of a streak, then one reminder per interval with the count of what was
//! not logged, then the recovery with the streak's length.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The interval between reminders of [`FailureStreak::default`].
pub const DEFAULT_REMINDER_INTERVAL: Duration = Duration::from_secs(30);

/// What to log for a failure, as [`FailureStreak::failed`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreakLog {
    /// The first failure of a streak: log it in full (a warning).
    First,
    /// The interval passed: log a reminder (a warning) with these counts.
    Reminder {
        /// Failures in the streak so far, this one included.
        failures: u64,
        /// Failures not logged since the last line.
        suppressed: u64,
    },
    /// Counted only: log it at debug level, if at all.
    Quiet,
}

/// Counts a streak of failures and tells which of them to log.
///
/// ```
/// use std::time::Duration;
/// use tidings_event::{FailureStreak, StreakLog};
///
/// let streak = FailureStreak::new(Duration::from_secs(3600));
/// assert_eq!(streak.failed(), StreakLog::First);
/// assert_eq!(streak.failed(), StreakLog::Quiet);
/// assert_eq!(streak.succeeded(), Some(2)); // log "recovered after 2 failures"
/// assert_eq!(streak.succeeded(), None);
/// ```
#[derive(Debug)]
pub struct FailureStreak {
    /// Failures in the current streak (0: none), read without the lock on
    /// every success.
    failures: AtomicU64,
    every: Duration,
    /// When the last line was logged, and the failures since.
    logged: Mutex<(Option<Instant>, u64)>,
}

impl Default for FailureStreak {
    fn default() -> Self {
        Self::new(DEFAULT_REMINDER_INTERVAL)
    }
}

impl FailureStreak {
    /// A streak logging a reminder at most once per `every`.
    #[must_use]
    pub fn new(every: Duration) -> Self {
        Self {
            failures: AtomicU64::new(0),
            every,
            logged: Mutex::new((None, 0)),
        }
    }

    /// Counts a failure; says what to log for it.
    pub fn failed(&self) -> StreakLog {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let mut logged = self
            .logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match logged.0 {
            Some(at) if failures > 1 && now.duration_since(at) < self.every => {
                logged.1 += 1;
                StreakLog::Quiet
            }
            _ if failures == 1 => {
                *logged = (Some(now), 0);
                StreakLog::First
            }
            _ => {
                let suppressed = logged.1;
                *logged = (Some(now), 0);
                StreakLog::Reminder {
                    failures,
                    suppressed,
                }
            }
        }
    }

    /// Counts a success: the length of the streak it ended, if any (log
    /// the recovery then). Costs one atomic load outside a streak.
    pub fn succeeded(&self) -> Option<u64> {
        if self.failures.load(Ordering::Acquire) == 0 {
            return None;
        }
        let failures = self.failures.swap(0, Ordering::AcqRel);
        (failures > 0).then_some(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streak_logs_its_first_failure_then_reminders_with_what_was_suppressed() {
        let streak = FailureStreak::new(Duration::from_millis(50));
        assert_eq!(streak.succeeded(), None);
        assert_eq!(streak.failed(), StreakLog::First);
        assert_eq!(streak.failed(), StreakLog::Quiet);
        assert_eq!(streak.failed(), StreakLog::Quiet);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            streak.failed(),
            StreakLog::Reminder {
                failures: 4,
                suppressed: 2
            }
        );
        assert_eq!(streak.failed(), StreakLog::Quiet);
        assert_eq!(streak.succeeded(), Some(5));
        // A new streak starts over.
        assert_eq!(streak.failed(), StreakLog::First);
        assert_eq!(streak.succeeded(), Some(1));
    }
}

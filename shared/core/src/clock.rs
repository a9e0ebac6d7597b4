//! The process's clock: real time plus an offset.
//!
//! The offset is zero in every Lambda and in every command but one: the local runner's
//! virtual clock (`a2a run --clock virtual`) sets it, so that a plan spread over several
//! nights runs in seconds. Time then flows at the real rate while work is done, and jumps
//! forward over idle hours. Steps, the local workflow engine and the scheduler all read
//! [`now`], so their records stay on one consistent time line.
//!
//! It is process-wide on purpose: the local engine spawns tasks, and a task-local or a
//! clock threaded through every step would be lost or forgotten on the way.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// Milliseconds added to the real time.
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// The current time of this process.
pub fn now() -> DateTime<Utc> {
    Utc::now() + Duration::milliseconds(OFFSET_MS.load(Ordering::Relaxed))
}

/// Sets the clock so that [`now`] reads `at` at this instant, forward or back. For the
/// start of a virtual-clock run only: records already written are not moved.
pub fn start_at(at: DateTime<Utc>) {
    let offset = (at - Utc::now()).num_milliseconds();
    OFFSET_MS.store(offset, Ordering::Relaxed);
}

/// Moves the clock forward so that [`now`] reads at least `at`; never back.
pub fn skip_to(at: DateTime<Utc>) {
    // Rounded up, so that `now()` is never a fraction of a millisecond short of `at`.
    let us = (at - Utc::now()).num_microseconds().unwrap_or(i64::MAX);
    let offset = us.saturating_add(999).div_euclid(1000);
    OFFSET_MS.fetch_max(offset, Ordering::Relaxed);
}

/// How far the clock is from the real time.
pub fn offset() -> Duration {
    Duration::milliseconds(OFFSET_MS.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_forward_never_back() {
        // One test only touches the process clock, so tests here cannot race on it.
        let t = Utc::now() + Duration::days(3);
        start_at(t);
        assert!((now() - t).num_seconds().abs() < 2);
        skip_to(t - Duration::hours(1));
        // Milliseconds are truncated, hence the second of slack.
        assert!(
            now() > t - Duration::seconds(1),
            "skip_to must not move back"
        );
        skip_to(t + Duration::hours(5));
        assert!(now() >= t + Duration::hours(5));
        assert!(offset() >= Duration::days(3));
        start_at(Utc::now());
        assert!(offset().num_seconds().abs() < 2);
    }
}

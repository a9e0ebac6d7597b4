//! Time, real or virtual. Under the virtual clock, Wait states, retry back-off and task
//! timeouts cost no wall time: sleeping moves the execution's own "now" forward.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A source of "now" and of sleeps. Each execution owns one; Parallel branches and Map
/// iterations get a fork, and the parent moves on to the latest time a child reached.
#[async_trait]
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Sleeps for `d`.
    async fn sleep(&self, d: Duration);
    /// A clock for a concurrent branch, starting now.
    fn fork(&self) -> Arc<dyn Clock>;
    /// Moves this clock forward to `t` when `t` is later (a no-op for the real clock).
    fn advance_to(&self, t: DateTime<Utc>);
    /// Whether time is simulated (timeouts are then judged on the simulated time).
    fn is_virtual(&self) -> bool;
}

/// Wall-clock time and real sleeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClock;

#[async_trait]
impl Clock for RealClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn fork(&self) -> Arc<dyn Clock> {
        Arc::new(RealClock)
    }

    fn advance_to(&self, _t: DateTime<Utc>) {}

    fn is_virtual(&self) -> bool {
        false
    }
}

/// Simulated time: starts at a given instant and only moves when slept on.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<DateTime<Utc>>,
}

impl VirtualClock {
    /// A virtual clock reading `start`.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// A virtual clock reading the current wall time.
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn sleep(&self, d: Duration) {
        {
            let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
            // Saturates: a retry storm of huge delays must not overflow the calendar.
            let step = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            *now = now
                .checked_add_signed(step)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
        }
        // Let other executions run, as a real sleep would.
        tokio::task::yield_now().await;
    }

    fn fork(&self) -> Arc<dyn Clock> {
        Arc::new(VirtualClock::starting_at(self.now()))
    }

    fn advance_to(&self, t: DateTime<Utc>) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        if t > *now {
            *now = t;
        }
    }

    fn is_virtual(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn virtual_sleep_moves_time_not_the_wall() {
        let start = Utc::now();
        let c = VirtualClock::starting_at(start);
        c.sleep(Duration::from_secs(86_400 * 365)).await;
        assert_eq!(c.now() - start, chrono::Duration::days(365));
        let child = c.fork();
        child.sleep(Duration::from_secs(10)).await;
        assert_eq!(c.now() - start, chrono::Duration::days(365));
        c.advance_to(child.now());
        assert_eq!(
            c.now() - start,
            chrono::Duration::days(365) + chrono::Duration::seconds(10)
        );
        c.advance_to(start);
        assert_eq!(c.now(), child.now());
        c.sleep(Duration::from_secs(u64::MAX)).await;
        c.sleep(Duration::from_secs(u64::MAX)).await;
        assert_eq!(c.now(), DateTime::<Utc>::MAX_UTC);
    }
}

//! The scheduler Lambda's handler: one [`a2a_schedule::tick`] over the state table, the
//! fan-out queue and Step Functions, per EventBridge schedule event.
//!
//! A plain async function, so tests call it without the Lambda runtime; `main.rs` only
//! wires it to `lambda_runtime`. Run it with a reserved concurrency of 1: ticks at once
//! never enqueue an instance twice, but the nightly quota is counted before enqueuing, so
//! two at once could together pass it.

#![warn(missing_docs)]

use std::sync::Arc;

use a2a_core::{InstanceStore, PortError, Snapshots, WorkQueue, Workflows};
use a2a_schedule::{Policy, TickReport};
use chrono::{DateTime, Utc};

/// The handler: the ports and the rules.
pub struct Handler {
    store: Arc<dyn InstanceStore>,
    queue: Arc<dyn WorkQueue>,
    workflows: Arc<dyn Workflows>,
    snapshots: Option<Arc<dyn Snapshots>>,
    policy: Policy,
}

impl Handler {
    /// A handler over these ports, ticking by `policy`.
    pub fn new(
        store: Arc<dyn InstanceStore>,
        queue: Arc<dyn WorkQueue>,
        workflows: Arc<dyn Workflows>,
        policy: Policy,
    ) -> Self {
        Self {
            store,
            queue,
            workflows,
            snapshots: None,
            policy,
        }
    }

    /// Takes a snapshot of the target databases before each wave (see
    /// [`a2a_schedule::tick_with`]).
    pub fn with_snapshots(mut self, snapshots: Arc<dyn Snapshots>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// The policy from the environment: `A2A_WINDOWS` (required, `;`-separated),
    /// optionally `A2A_NIGHTLY_QUOTA`, `A2A_MAX_ATTEMPTS`, `A2A_RETRY_BACKOFF_MINUTES`,
    /// `A2A_MAX_DURATION_MINUTES`, `A2A_REQUEUE_AFTER_MINUTES`.
    pub fn policy_from_env() -> Result<Policy, String> {
        use a2a_fn_bootstrap::var;
        let windows = var("A2A_WINDOWS").ok_or("A2A_WINDOWS is not set")?;
        let windows = a2a_schedule::parse_windows(&windows).map_err(|e| e.to_string())?;
        if windows.is_empty() {
            return Err("A2A_WINDOWS holds no window".into());
        }
        let mut p = Policy::new(windows);
        let number = |name: &str| -> Result<Option<u32>, String> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("{name}={v:?}: expected a whole number"))
                })
                .transpose()
        };
        if let Some(n) = number("A2A_NIGHTLY_QUOTA")? {
            p.nightly_quota = n as usize;
        }
        if let Some(n) = number("A2A_MAX_ATTEMPTS")? {
            p.max_attempts = n;
        }
        if let Some(n) = number("A2A_RETRY_BACKOFF_MINUTES")? {
            p.retry_backoff = chrono::Duration::minutes(n.into());
        }
        if let Some(n) = number("A2A_MAX_DURATION_MINUTES")? {
            p.max_duration = chrono::Duration::minutes(n.into());
        }
        if let Some(n) = number("A2A_REQUEUE_AFTER_MINUTES")? {
            p.requeue_after = chrono::Duration::minutes(n.into());
        }
        Ok(p)
    }

    /// One tick at `now`.
    pub async fn handle(&self, now: DateTime<Utc>) -> Result<TickReport, PortError> {
        let report = a2a_schedule::tick_with(
            &*self.store,
            &*self.queue,
            Some(&*self.workflows),
            self.snapshots.as_deref(),
            &self.policy,
            now,
        )
        .await?;
        tracing::info!(
            in_window = report.night.is_some(),
            waiting_for_snapshot = report.waiting_for_snapshot,
            enqueued = report.enqueued.len(),
            retried = report.retried.len(),
            reconciled = report.reconciled.len(),
            stopped = report.stopped.len(),
            lost_races = report.lost_races,
            "tick"
        );
        for p in &report.problems {
            tracing::warn!(problem = p, "tick problem");
        }
        Ok(report)
    }
}

//! The scheduler Lambda's handler: one [`a2a_schedule::tick`] over the state table, the
//! fan-out queue and Step Functions, per EventBridge schedule event.
//!
//! A plain async function, so tests call it without the Lambda runtime; `main.rs` only
//! wires it to `lambda_runtime`. [`Config::from_env`] reads and checks the whole
//! environment before any client is built. Run it with a reserved concurrency of 1: ticks at once
//! never enqueue an instance twice, but the nightly quota is counted before enqueuing, so
//! two at once could together pass it.

#![warn(missing_docs)]

use std::sync::Arc;

use a2a_core::{InstanceStore, PortError, Snapshots, WorkQueue, Workflows};
use a2a_fn_bootstrap::{Env, EnvError, Failure, FromEnv, StateMachines};
use a2a_schedule::{Policy, TickReport};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};

/// The scheduler's environment: `A2A_TABLE`, `A2A_QUEUE_URL`,
/// `A2A_MIGRATE_STATE_MACHINE`, `A2A_PROVISION_STATE_MACHINE`, `A2A_WINDOWS`
/// (`;`-separated), all required; `A2A_TARGET_CLUSTER`, the RDS cluster snapshotted before
/// each wave (unset: no snapshots); and the policy's `A2A_NIGHTLY_QUOTA`,
/// `A2A_MAX_ATTEMPTS`, `A2A_RETRY_BACKOFF_MINUTES`, `A2A_MAX_DURATION_MINUTES`,
/// `A2A_REQUEUE_AFTER_MINUTES`, each with its default when unset.
#[derive(Debug, Clone)]
pub struct Config {
    /// The state table.
    pub table: String,
    /// The fan-out queue's URL.
    pub queue_url: String,
    /// The state machines reconciled.
    pub state_machines: StateMachines,
    /// The RDS cluster snapshotted before each wave, if any.
    pub target_cluster: Option<String>,
    /// The windows, quota, attempts and durations.
    pub policy: Policy,
}

impl FromEnv for Config {
    fn read(mut env: Env) -> Result<Config, EnvError> {
        let table = env.required("A2A_TABLE");
        let queue_url = env.required("A2A_QUEUE_URL");
        let state_machines = env.state_machines();
        let target_cluster = env.optional("A2A_TARGET_CLUSTER");
        let windows = env.parsed("A2A_WINDOWS", |w| match a2a_schedule::parse_windows(w) {
            Ok(w) if w.is_empty() => Err("holds no window".to_owned()),
            Ok(w) => Ok(w),
            Err(e) => Err(e.to_string()),
        });
        if windows.is_none() && env.optional("A2A_WINDOWS").is_none() {
            env.required("A2A_WINDOWS");
        }
        let mut policy = Policy::new(windows.unwrap_or_default());
        if let Some(n) = env.whole("A2A_NIGHTLY_QUOTA", 0) {
            policy.nightly_quota = n;
        }
        if let Some(n) = env.whole("A2A_MAX_ATTEMPTS", 0) {
            policy.max_attempts = n;
        }
        let minutes = |env: &mut Env, name: &str| {
            env.whole(name, 0u32)
                .map(|n| chrono::Duration::minutes(n.into()))
        };
        if let Some(d) = minutes(&mut env, "A2A_RETRY_BACKOFF_MINUTES") {
            policy.retry_backoff = d;
        }
        if let Some(d) = minutes(&mut env, "A2A_MAX_DURATION_MINUTES") {
            policy.max_duration = d;
        }
        if let Some(d) = minutes(&mut env, "A2A_REQUEUE_AFTER_MINUTES") {
            policy.requeue_after = d;
        }
        env.finish(Config {
            table,
            queue_url,
            state_machines,
            target_cluster,
            policy,
        })
    }
}

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

    /// The handler of the environment ([`Config::from_env`]), with the clients it uses:
    /// DynamoDB, SQS, Step Functions, and RDS only when a target cluster is set.
    pub async fn from_env() -> Result<Handler, String> {
        let c = Config::from_env()?;
        let conf = a2a_aws::config::lambda_sdk_config().await?;
        let handler = Handler::new(
            Arc::new(a2a_aws::DynamoDbStore::from_conf(&conf, c.table)),
            Arc::new(a2a_aws::SqsQueue::from_conf(&conf, c.queue_url)),
            Arc::new(a2a_aws::SfnWorkflows::from_conf(
                &conf,
                c.state_machines.migrate,
                c.state_machines.provision,
            )),
            c.policy,
        );
        Ok(match c.target_cluster {
            Some(cluster) => {
                handler.with_snapshots(Arc::new(a2a_aws::RdsSnapshots::from_conf(&conf, cluster)))
            }
            None => handler,
        })
    }

    /// The Lambda's answer to a schedule event: one tick at the time the event is handled
    /// (a late event must not act as of an earlier time), its report as JSON. A failed
    /// tick's errorType names its kind (`A2A.Transient`, …).
    pub async fn on_event(&self, _event: EventBridgeEvent) -> Result<serde_json::Value, Failure> {
        let report = self
            .handle(Utc::now())
            .await
            .map_err(|e| Failure::from_port(&e))?;
        serde_json::to_value(report).map_err(|e| Failure {
            error_type: a2a_fn_bootstrap::error_type::PERMANENT,
            message: format!("the tick's report: {e}"),
        })
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
            cleanups = report.cleanups.len(),
            lost_races = report.lost_races,
            "tick"
        );
        for p in &report.problems {
            tracing::warn!(problem = p, "tick problem");
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHOLE: &[(&str, &str)] = &[
        ("A2A_TABLE", "t"),
        ("A2A_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/q"),
        ("A2A_MIGRATE_STATE_MACHINE", "m"),
        ("A2A_PROVISION_STATE_MACHINE", "p"),
        ("A2A_WINDOWS", "Mon-Fri 21:00-06:00 Europe/Madrid"),
        ("A2A_NIGHTLY_QUOTA", "10"),
        ("A2A_RETRY_BACKOFF_MINUTES", "5"),
    ];

    #[test]
    fn the_environment_is_read_whole() {
        let c = Config::read(Env::from_pairs(WHOLE)).unwrap();
        assert_eq!(c.policy.windows.len(), 1);
        assert_eq!(c.policy.nightly_quota, 10);
        assert_eq!(c.policy.retry_backoff, chrono::Duration::minutes(5));
        assert_eq!(c.target_cluster, None);
        let e = Config::read(Env::from_pairs(&[
            ("A2A_TABLE", "t"),
            ("A2A_MAX_ATTEMPTS", "many"),
            ("A2A_MAX_DURATION_MINUTES", "-3"),
        ]))
        .unwrap_err()
        .to_string();
        a2a_testkit::assert_contains_all(
            &e,
            &[
                "A2A_QUEUE_URL is not set",
                "A2A_MIGRATE_STATE_MACHINE is not set",
                "A2A_PROVISION_STATE_MACHINE is not set",
                "A2A_WINDOWS is not set",
                "A2A_MAX_ATTEMPTS=\"many\": expected a whole number",
                "A2A_MAX_DURATION_MINUTES=\"-3\"",
            ],
        );
        assert!(!e.contains("A2A_TABLE"), "{e}");
        let e = Config::read(Env::from_pairs(&[("A2A_WINDOWS", ";")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("A2A_WINDOWS=\";\": holds no window"), "{e}");
    }
}

//! The dispatcher Lambda's handler: an SQS batch of start messages in, one workflow
//! execution per school started through [`a2a_schedule::Dispatcher`], and the
//! `ReportBatchItemFailures` response out.
//!
//! * Deferred (over the cap, outside a window) or failed messages are batch item
//!   failures: SQS shows them again after the visibility timeout. The batch never fails
//!   as a whole.
//! * Malformed messages (or ones naming no registered school) are sent to the dead-letter
//!   queue when its URL is given, with the reason logged; without one, or if that send
//!   fails, they are batch item failures and the queue's redrive policy moves them there.
//!
//! A plain async function over an [`SqsEvent`], so tests call it without the Lambda
//! runtime; `main.rs` only wires it to `lambda_runtime`. [`Config::from_env`] reads and
//! checks the whole environment before any client is built.

#![warn(missing_docs)]

use std::sync::Arc;

use a2a_core::{Window, WorkQueue};
use a2a_fn_bootstrap::{Env, EnvError, Failure, FromEnv, StateMachines};
use a2a_schedule::{Delivery, DispatchReport, Dispatcher};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};

/// Executions in flight at most when `A2A_MAX_RUNNING` is unset.
pub const DEFAULT_MAX_RUNNING: usize = 25;

/// The dispatcher's environment: `A2A_TABLE` (the state table), `A2A_MIGRATE_STATE_MACHINE`
/// and `A2A_PROVISION_STATE_MACHINE` (ARNs), all required; optionally `A2A_MAX_RUNNING`
/// (default 25), `A2A_WINDOWS` (`;`-separated; unset means any time) and
/// `A2A_DEAD_LETTER_QUEUE_URL`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The state table.
    pub table: String,
    /// The state machines started.
    pub state_machines: StateMachines,
    /// Executions in flight at most.
    pub max_running: usize,
    /// When starts are allowed; empty means any time.
    pub windows: Vec<Window>,
    /// Where malformed messages go, if anywhere.
    pub dead_letter_queue_url: Option<String>,
}

impl FromEnv for Config {
    fn read(mut env: Env) -> Result<Config, EnvError> {
        let config = Config {
            table: env.required("A2A_TABLE"),
            state_machines: env.state_machines(),
            max_running: env
                .whole("A2A_MAX_RUNNING", 0)
                .unwrap_or(DEFAULT_MAX_RUNNING),
            windows: env
                .parsed("A2A_WINDOWS", a2a_schedule::parse_windows)
                .unwrap_or_default(),
            dead_letter_queue_url: env.optional("A2A_DEAD_LETTER_QUEUE_URL"),
        };
        env.finish(config)
    }
}

/// The handler: the dispatcher, and where malformed messages go.
pub struct Handler {
    dispatcher: Dispatcher,
    dead_letters: Option<Arc<dyn WorkQueue>>,
}

impl Handler {
    /// A handler over `dispatcher`; malformed messages are sent to `dead_letters` if given.
    pub fn new(dispatcher: Dispatcher, dead_letters: Option<Arc<dyn WorkQueue>>) -> Self {
        Self {
            dispatcher,
            dead_letters,
        }
    }

    /// The handler of the environment ([`Config::from_env`]), with the clients it uses:
    /// DynamoDB, Step Functions, and SQS only when a dead-letter queue is set.
    pub async fn from_env() -> Result<Handler, String> {
        let c = Config::from_env()?;
        let conf = a2a_aws::config::lambda_sdk_config().await?;
        let store = Arc::new(a2a_aws::DynamoDbStore::from_conf(&conf, c.table));
        let machines = c.state_machines;
        let workflows = Arc::new(a2a_aws::SfnWorkflows::from_conf(
            &conf,
            machines.migrate,
            machines.provision,
        ));
        let dead = c
            .dead_letter_queue_url
            .map(|url| Arc::new(a2a_aws::SqsQueue::from_conf(&conf, url)) as Arc<dyn WorkQueue>);
        let dispatcher = Dispatcher::new(store, workflows, c.max_running).with_windows(c.windows);
        Ok(Handler::new(dispatcher, dead))
    }

    /// The Lambda's answer to one batch, handled now: the messages that must come back.
    pub async fn on_event(&self, event: SqsEvent) -> Result<SqsBatchResponse, Failure> {
        Ok(self.handle(event, Utc::now()).await.1)
    }

    /// Handles one SQS batch at `now`, and says which messages must come back.
    pub async fn handle(
        &self,
        event: SqsEvent,
        now: DateTime<Utc>,
    ) -> (DispatchReport, SqsBatchResponse) {
        let batch: Vec<Delivery> = event
            .records
            .into_iter()
            .map(|r| Delivery {
                id: r.message_id.unwrap_or_default(),
                body: r.body.unwrap_or_default(),
            })
            .collect();
        let report = self.dispatcher.dispatch(&batch, now).await;
        let mut response = SqsBatchResponse::default();
        for id in report.retry_ids() {
            response.add_failure(id);
        }
        for (id, reason) in report.malformed() {
            let body = batch
                .iter()
                .find(|d| d.id == id)
                .map(|d| d.body.clone())
                .unwrap_or_default();
            let sent = match &self.dead_letters {
                Some(q) => q.send(&[body]).await.map_err(|e| e.to_string()),
                None => Err("no dead-letter queue URL is set".to_owned()),
            };
            match sent {
                Ok(()) => tracing::warn!(message_id = id, reason, "sent to the dead-letter queue"),
                Err(e) => {
                    tracing::warn!(
                        message_id = id,
                        reason,
                        error = e,
                        "left to the redrive policy"
                    );
                    response.add_failure(id);
                }
            }
        }
        (report, response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_read_whole() {
        let c = Config::read(Env::from_pairs(&[
            ("A2A_TABLE", "t"),
            ("A2A_MIGRATE_STATE_MACHINE", "m"),
            ("A2A_PROVISION_STATE_MACHINE", "p"),
        ]))
        .unwrap();
        assert_eq!(c.max_running, DEFAULT_MAX_RUNNING);
        assert!(c.windows.is_empty() && c.dead_letter_queue_url.is_none());
        let e = Config::read(Env::from_pairs(&[
            ("A2A_MIGRATE_STATE_MACHINE", "m"),
            ("A2A_MAX_RUNNING", "-1"),
            ("A2A_WINDOWS", "Mon-Fri 25:00-06:00 Europe/Madrid"),
        ]))
        .unwrap_err()
        .to_string();
        a2a_testkit::assert_contains_all(
            &e,
            &[
                "A2A_TABLE is not set",
                "A2A_PROVISION_STATE_MACHINE is not set",
                "A2A_MAX_RUNNING=\"-1\": expected a whole number",
                "A2A_WINDOWS=",
            ],
        );
    }
}

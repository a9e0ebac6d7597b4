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
//! runtime; `main.rs` only wires it to `lambda_runtime`.

#![warn(missing_docs)]

use std::sync::Arc;

use a2a_core::WorkQueue;
use a2a_schedule::{Delivery, DispatchReport, Dispatcher};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};

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

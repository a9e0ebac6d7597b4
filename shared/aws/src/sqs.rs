//! `WorkQueue` on an SQS standard queue and its dead-letter queue.

use std::time::Duration;

use a2a_core::{Message, PortError, WorkQueue};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use tokio::sync::OnceCell;

use crate::error::{Call, classify};

const SERVICE: &str = "SQS";
/// SQS's most entries in one batch, and most messages in one receive.
const BATCH: usize = 10;
/// SQS's largest batch payload (the sum of the bodies) that every region accepts.
const BATCH_BYTES: usize = 256 * 1024;
/// SQS's longest visibility timeout: 12 hours.
const MAX_VISIBILITY: u64 = 12 * 60 * 60;
/// How long a dead letter stays hidden between being taken and being deleted.
const DEAD_LETTER_VISIBILITY: i32 = 30;

/// The [`WorkQueue`] on SQS.
#[derive(Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    /// Known from the start, or looked up once from the queue's RedrivePolicy.
    dead_letter_url: OnceCell<String>,
}

impl SqsQueue {
    /// A queue at `queue_url` whose dead-letter queue is at `dead_letter_url`; with `None`,
    /// it is found from the queue's RedrivePolicy when first needed.
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        dead_letter_url: Option<String>,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dead_letter_url: OnceCell::new_with(dead_letter_url),
        }
    }

    /// A queue at `queue_url`, with a client made from `conf`; its dead-letter queue is
    /// found from its RedrivePolicy when first needed.
    pub fn from_conf(conf: &SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(conf), queue_url, None)
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Creates the standard queue `name`, with no attributes, and returns its URL.
    /// Idempotent. For tests and setup, as [`SqsQueue::create_with_dead_letter`].
    pub async fn create_plain(client: &Client, name: &str) -> Result<String, PortError> {
        let resource = format!("queue {name:?}");
        client
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "CreateQueue", &resource)))?
            .queue_url
            .ok_or_else(|| no_field("CreateQueue", &resource, "QueueUrl"))
    }

    /// Creates `<name>-dlq` and `name`, whose messages go to the first after
    /// `max_receives` receives, and returns the queue. Idempotent while the attributes
    /// stay the same. For tests and setup; production queues come from the SAM template.
    /// Standard queues only: `name` must not end in `.fifo`.
    pub async fn create_with_dead_letter(
        client: &Client,
        name: &str,
        max_receives: u32,
    ) -> Result<SqsQueue, PortError> {
        if name.ends_with(".fifo") {
            return Err(PortError::Invalid(format!(
                "queue {name:?}: FIFO queues are not supported by SqsQueue"
            )));
        }
        if max_receives == 0 {
            return Err(PortError::Invalid(format!(
                "queue {name:?}: max_receives must be at least 1"
            )));
        }
        let dlq_name = format!("{name}-dlq");
        let dlq_resource = format!("queue {dlq_name:?}");
        let dlq_url = Self::create_plain(client, &dlq_name).await?;
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "GetQueueAttributes", &dlq_resource)))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| no_field("GetQueueAttributes", &dlq_resource, "QueueArn"))?;
        let policy = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receives.to_string(),
        });
        let resource = format!("queue {name:?}");
        let url = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "CreateQueue", &resource)))?
            .queue_url
            .ok_or_else(|| no_field("CreateQueue", &resource, "QueueUrl"))?;
        Ok(SqsQueue::new(client.clone(), url, Some(dlq_url)))
    }

    /// The dead-letter queue's URL, looked up once from the RedrivePolicy.
    async fn dead_letter_url(&self) -> Result<&str, PortError> {
        self.dead_letter_url
            .get_or_try_init(|| self.find_dead_letter_url())
            .await
            .map(String::as_str)
    }

    async fn find_dead_letter_url(&self) -> Result<String, PortError> {
        let resource = self.resource();
        let policy = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "GetQueueAttributes", &resource)))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::RedrivePolicy))
            .ok_or_else(|| {
                PortError::Unavailable(format!(
                    "{resource} has no RedrivePolicy, so no dead-letter queue; create it \
                     with one (template.yaml, or SqsQueue::create_with_dead_letter)"
                ))
            })?;
        let arn = dead_letter_arn(&policy).ok_or_else(|| {
            PortError::Corrupt(format!(
                "{resource}: the RedrivePolicy {policy:?} names no deadLetterTargetArn"
            ))
        })?;
        let (account, name) = queue_of_arn(&arn).ok_or_else(|| {
            PortError::Corrupt(format!("{resource}: {arn:?} is not an SQS queue ARN"))
        })?;
        let dlq_resource = format!("queue {name:?}");
        self.client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "GetQueueUrl", &dlq_resource)))?
            .queue_url
            .ok_or_else(|| no_field("GetQueueUrl", &dlq_resource, "QueueUrl"))
    }

    fn resource(&self) -> String {
        format!("queue {}", self.queue_url)
    }

    async fn take(
        &self,
        url: &str,
        max: usize,
        visibility: i32,
        wait: i32,
    ) -> Result<Vec<Message>, PortError> {
        let resource = format!("queue {url}");
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, BATCH) as i32)
            .visibility_timeout(visibility)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "ReceiveMessage", &resource)))?;
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let id = m.message_id.as_deref().unwrap_or("?").to_owned();
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse::<u32>().ok())
                    .ok_or_else(|| {
                        PortError::Corrupt(format!(
                            "{resource}: message {id} came without a valid ApproximateReceiveCount"
                        ))
                    })?;
                Ok(Message {
                    body: m.body.ok_or_else(|| {
                        PortError::Corrupt(format!("{resource}: message {id} came without a body"))
                    })?,
                    receipt: m.receipt_handle.ok_or_else(|| {
                        PortError::Corrupt(format!(
                            "{resource}: message {id} came without a receipt handle"
                        ))
                    })?,
                    receive_count,
                })
            })
            .collect()
    }
}

fn no_field(operation: &str, resource: &str, field: &str) -> PortError {
    PortError::Backend(format!(
        "SQS {operation} on {resource}: no {field} came back"
    ))
}

/// The `deadLetterTargetArn` of a RedrivePolicy.
fn dead_letter_arn(policy: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(policy).ok()?;
    v.get("deadLetterTargetArn")?.as_str().map(str::to_owned)
}

/// Account and queue name of `arn:<partition>:sqs:<region>:<account>:<name>`.
fn queue_of_arn(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "sqs", _, account, name] if !account.is_empty() && !name.is_empty() => {
            Some((account, name))
        }
        _ => None,
    }
}

/// Whole seconds for SQS, rounding a fraction up: a hidden message must stay hidden at
/// least as long as asked.
fn visibility_secs(d: Duration) -> Result<i32, PortError> {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if secs > MAX_VISIBILITY {
        return Err(PortError::Invalid(format!(
            "a visibility timeout of {secs} s is over SQS's 12 hours"
        )));
    }
    Ok(secs as i32)
}

/// Splits bodies into SQS batches: at most 10 entries and 256 KiB each.
fn batches(bodies: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, b) in bodies.iter().enumerate() {
        let full = i - start == BATCH || (i > start && bytes + b.len() > BATCH_BYTES);
        if full {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += b.len();
    }
    if start < bodies.len() {
        out.push(start..bodies.len());
    }
    out
}

#[async_trait]
impl WorkQueue for SqsQueue {
    async fn send(&self, bodies: &[String]) -> Result<(), PortError> {
        let resource = self.resource();
        for range in batches(bodies) {
            let first = range.start;
            let entries = range
                .clone()
                .map(|i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&bodies[i])
                        .build()
                        .map_err(|e| PortError::Invalid(format!("SQS message {i}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    let err = classify(&e, Call::new(SERVICE, "SendMessageBatch", &resource));
                    with_progress(err, first, bodies.len())
                })?;
            if !out.failed.is_empty() {
                let named: Vec<String> = out
                    .failed
                    .iter()
                    .map(|f| {
                        format!(
                            "message {} ({}: {})",
                            f.id,
                            f.code,
                            f.message.as_deref().unwrap_or("no reason given")
                        )
                    })
                    .collect();
                let text = format!(
                    "SQS SendMessageBatch on {resource}: {} of {} failed: {}; the first {first} \
                     and the rest of this batch were sent",
                    out.failed.len(),
                    range.len(),
                    named.join(", ")
                );
                // The sender's fault is our input; otherwise SQS could not take it now.
                return Err(if out.failed.iter().any(|f| f.sender_fault) {
                    PortError::Invalid(text)
                } else {
                    PortError::Unavailable(text)
                });
            }
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Message>, PortError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // No long poll: a wait longer than a short visibility would hand back a message
        // that was just hidden.
        self.take(&self.queue_url, max, visibility_secs(visibility)?, 0)
            .await
    }

    async fn delete(&self, receipt: &str) -> Result<(), PortError> {
        let resource = self.resource();
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "DeleteMessage", &resource)))?;
        Ok(())
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<Message>, PortError> {
        let url = self.dead_letter_url().await?.to_owned();
        let resource = format!("queue {url}");
        let mut out = Vec::new();
        while out.len() < max {
            // A one-second poll: short polling may miss messages on a quiet queue.
            let got = self
                .take(&url, max - out.len(), DEAD_LETTER_VISIBILITY, 1)
                .await?;
            if got.is_empty() {
                break;
            }
            let entries = got
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt)
                        .build()
                        .map_err(|e| PortError::Invalid(format!("SQS dead letter {i}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let deleted = self
                .client
                .delete_message_batch()
                .queue_url(&url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify(&e, Call::new(SERVICE, "DeleteMessageBatch", &resource)))?;
            if let Some(f) = deleted.failed.first() {
                return Err(PortError::Unavailable(format!(
                    "SQS DeleteMessageBatch on {resource}: {} dead letters could not be deleted \
                     (first: {}: {}); they will be delivered again",
                    deleted.failed.len(),
                    f.code,
                    f.message.as_deref().unwrap_or("no reason given")
                )));
            }
            out.extend(got);
        }
        Ok(out)
    }
}

/// Adds to a failed send how far it got, so a caller knows what was already sent.
fn with_progress(err: PortError, sent: usize, total: usize) -> PortError {
    if sent == 0 {
        return err;
    }
    let note = |m: String| format!("{m} (the first {sent} of {total} messages were sent)");
    match err {
        PortError::Conflict(m) => PortError::Conflict(note(m)),
        PortError::NotFound(m) => PortError::NotFound(note(m)),
        PortError::Invalid(m) => PortError::Invalid(note(m)),
        PortError::Unavailable(m) => PortError::Unavailable(note(m)),
        PortError::Corrupt(m) => PortError::Corrupt(note(m)),
        PortError::Backend(m) => PortError::Backend(note(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_ten_and_256_kib() {
        let small: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        assert_eq!(batches(&small), vec![0..10, 10..20, 20..25]);
        assert!(batches(&[]).is_empty());
        let big: Vec<String> = (0..3).map(|_| "x".repeat(100 * 1024)).collect();
        assert_eq!(batches(&big), vec![0..2, 2..3]);
        let huge = vec!["x".repeat(300 * 1024)];
        assert_eq!(batches(&huge), vec![0..1], "SQS itself refuses it, by name");
    }

    #[test]
    fn visibility_rounds_up_and_is_bounded() {
        assert_eq!(visibility_secs(Duration::from_millis(1)).unwrap(), 1);
        assert_eq!(visibility_secs(Duration::from_secs(30)).unwrap(), 30);
        assert_eq!(visibility_secs(Duration::ZERO).unwrap(), 0);
        assert!(visibility_secs(Duration::from_secs(MAX_VISIBILITY + 1)).is_err());
    }

    #[test]
    fn redrive_policies_name_their_queue() {
        let p = r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:work-dlq","maxReceiveCount":2}"#;
        let arn = dead_letter_arn(p).unwrap();
        assert_eq!(queue_of_arn(&arn), Some(("123456789012", "work-dlq")));
        assert_eq!(dead_letter_arn("{}"), None);
        assert_eq!(queue_of_arn("arn:aws:s3:::bucket"), None);
    }
}

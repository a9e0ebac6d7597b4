//! The template's events, as the AWS services deliver them to the functions:
//!
//! * the bucket notification: the emulator sends `s3:ObjectCreated:*` under the filter's
//!   prefix and suffix to a queue of the rehearsal (as S3 may notify SQS; keys arrive
//!   URL-encoded, as in a Lambda's S3 event), and each S3 event is handed to the function
//!   as Lambda's asynchronous invoke does (a failed one is tried twice more);
//! * the SQS event source mapping: up to `MaximumConcurrency` pollers, each receiving up
//!   to `BatchSize` messages and invoking the function with Lambda's SQS event; with
//!   `ReportBatchItemFailures` the items the function names stay in the queue, the others
//!   are deleted; a failed invocation leaves the whole batch. What stays comes back after
//!   the queue's visibility timeout, and the queue's redrive policy (the emulator's)
//!   moves it after `maxReceiveCount`;
//! * the schedule: an EventBridge `Scheduled Event` at the rate; on the virtual clock the
//!   wait to the next tick is skipped whenever nothing is in flight (the clock jumps over
//!   idle time), as the local runner's virtual clock does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use a2a_aws::aws_sdk_s3 as s3;
use a2a_aws::aws_sdk_sqs as sqs;
use a2a_aws::error::{Call, classify};
use a2a_core::PortError;
use a2a_stack::events::{Failure, InFlight, Invoke, invoke_counted};
use serde_json::{Value, json};

/// Makes the emulator notify `queue_name` (a queue of the rehearsal, created here) of
/// objects created in `bucket` under `prefix` and ending in `suffix`; its URL.
pub(crate) async fn notify_uploads(
    s3c: &s3::Client,
    sqsc: &sqs::Client,
    bucket: &str,
    prefix: &str,
    suffix: &str,
    queue_name: &str,
) -> Result<String, PortError> {
    use s3::types::{
        Event, FilterRule, FilterRuleName, NotificationConfiguration,
        NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
    };
    use sqs::types::QueueAttributeName as A;
    let resource = format!("queue {queue_name:?}");
    let url = sqsc
        .create_queue()
        .queue_name(queue_name)
        .attributes(A::VisibilityTimeout, "60")
        .send()
        .await
        .map_err(|e| classify(&e, Call::new("SQS", "CreateQueue", &resource)))?
        .queue_url
        .unwrap_or_default();
    let arn = super::resources::queue_arn(sqsc, &url, &resource).await?;
    let mut rules = Vec::new();
    for (name, value) in [
        (FilterRuleName::Prefix, prefix),
        (FilterRuleName::Suffix, suffix),
    ] {
        if !value.is_empty() {
            rules.push(FilterRule::builder().name(name).value(value).build());
        }
    }
    let config = QueueConfiguration::builder()
        .queue_arn(arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .filter(
            NotificationConfigurationFilter::builder()
                .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
                .build(),
        )
        .build()
        .map_err(|e| PortError::Invalid(format!("the bucket notification: {e}")))?;
    let bresource = format!("bucket {bucket:?}");
    s3c.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(config)
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            classify(
                &e,
                Call::new("S3", "PutBucketNotificationConfiguration", &bresource),
            )
        })?;
    Ok(url)
}

/// How long a receive waits for messages: short, so a stop is not held up.
const WAIT_SECONDS: i32 = 2;

/// Lambda's asynchronous invoke: the first try and two more.
const ASYNC_TRIES: u64 = 3;

/// Hands every S3 event that arrives on `url` to `function`, until the task is dropped.
pub(crate) async fn serve_uploads(
    sqsc: sqs::Client,
    url: String,
    invoker: Arc<dyn Invoke>,
    inflight: Arc<InFlight>,
    function: String,
) {
    loop {
        let got = sqsc
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(WAIT_SECONDS)
            .message_system_attribute_names(sqs::types::MessageSystemAttributeName::All)
            .send()
            .await;
        let messages = match got {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(
                    "upload notifications: {}",
                    classify(&e, Call::new("SQS", "ReceiveMessage", &url))
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for m in messages {
            let body: Value = serde_json::from_str(m.body().unwrap_or("")).unwrap_or(Value::Null);
            let tries = m
                .attributes()
                .and_then(|a| {
                    a.get(&sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                })
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(1);
            // S3's test event on a new configuration has no records.
            let done = if body.get("Records").is_none() {
                true
            } else {
                match invoke_counted(&*invoker, &inflight, &function, s3_event(body)).await {
                    Ok(v) => {
                        tracing::info!(function = %function, "upload event handled: {v}");
                        true
                    }
                    Err(f) if tries >= ASYNC_TRIES => {
                        tracing::warn!(function = %function, "upload event dropped after {tries} tries: {}: {}", f.error_type, f.message);
                        true
                    }
                    Err(f) => {
                        tracing::warn!(function = %function, "upload event failed (try {tries}): {}: {}", f.error_type, f.message);
                        false
                    }
                }
            };
            if done && let Some(h) = m.receipt_handle() {
                let _ = sqsc
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(h)
                    .send()
                    .await;
            }
        }
    }
}

/// An S3 notification as Lambda receives it: S3 always sends each record's
/// `userIdentity` and `requestParameters`, which the emulator leaves out.
pub(crate) fn s3_event(mut body: Value) -> Value {
    if let Some(records) = body.get_mut("Records").and_then(Value::as_array_mut) {
        for r in records.iter_mut().filter_map(Value::as_object_mut) {
            r.entry("userIdentity")
                .or_insert_with(|| json!({"principalId": "AWS:A2AREHEARSAL"}));
            r.entry("requestParameters")
                .or_insert_with(|| json!({"sourceIPAddress": "127.0.0.1"}));
            r.entry("responseElements").or_insert_with(|| json!({}));
        }
    }
    body
}

/// An SQS event source mapping.
#[derive(Debug, Clone)]
pub(crate) struct Mapping {
    /// The queue's URL.
    pub(crate) url: String,
    /// The queue's ARN (`eventSourceARN`).
    pub(crate) arn: String,
    /// The region (`awsRegion`).
    pub(crate) region: String,
    /// `BatchSize`.
    pub(crate) batch_size: u32,
    /// `ScalingConfig.MaximumConcurrency`: pollers.
    pub(crate) max_concurrency: u32,
    /// `ReportBatchItemFailures`.
    pub(crate) report_failures: bool,
    /// The function.
    pub(crate) function: String,
}

/// Lambda's SQS event of `messages`.
pub(crate) fn sqs_event(messages: &[sqs::types::Message], arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: HashMap<String, String> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Which of `messages` to delete after the function answered `answer`.
pub(crate) fn settled<'a>(
    messages: &'a [sqs::types::Message],
    answer: &Result<Value, Failure>,
    report_failures: bool,
) -> Vec<&'a sqs::types::Message> {
    match answer {
        Err(_) => Vec::new(),
        Ok(v) if report_failures => {
            let Some(failures) = v.get("batchItemFailures").and_then(Value::as_array) else {
                return messages.iter().collect();
            };
            let failed: Vec<&str> = failures
                .iter()
                .filter_map(|f| f.get("itemIdentifier").and_then(Value::as_str))
                .collect();
            // An identifier that is no message of the batch fails the whole batch, as in
            // Lambda.
            if failed
                .iter()
                .any(|id| !messages.iter().any(|m| m.message_id() == Some(*id)))
            {
                return Vec::new();
            }
            messages
                .iter()
                .filter(|m| !failed.contains(&m.message_id().unwrap_or("")))
                .collect()
        }
        Ok(_) => messages.iter().collect(),
    }
}

/// Serves `mapping` with its pollers, until the task is dropped.
pub(crate) async fn serve_queue(
    sqsc: sqs::Client,
    mapping: Mapping,
    invoker: Arc<dyn Invoke>,
    inflight: Arc<InFlight>,
) {
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..mapping.max_concurrency {
        let (sqsc, m, invoker, inflight) = (
            sqsc.clone(),
            mapping.clone(),
            invoker.clone(),
            inflight.clone(),
        );
        pollers.spawn(async move {
            loop {
                let got = sqsc
                    .receive_message()
                    .queue_url(&m.url)
                    .max_number_of_messages(m.batch_size.min(10) as i32)
                    .wait_time_seconds(WAIT_SECONDS)
                    .message_system_attribute_names(sqs::types::MessageSystemAttributeName::All)
                    .send()
                    .await;
                let messages = match got {
                    Ok(out) => out.messages.unwrap_or_default(),
                    Err(e) => {
                        tracing::warn!("queue mapping: {}", classify(&e, Call::new("SQS", "ReceiveMessage", &m.url)));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if messages.is_empty() {
                    continue;
                }
                let event = sqs_event(&messages, &m.arn, &m.region);
                let answer = invoke_counted(&*invoker, &inflight, &m.function, event).await;
                if let Err(f) = &answer {
                    tracing::warn!(function = %m.function, "batch of {} failed: {}: {}", messages.len(), f.error_type, f.message);
                }
                for msg in settled(&messages, &answer, m.report_failures) {
                    if let Some(h) = msg.receipt_handle() {
                        let _ = sqsc.delete_message().queue_url(&m.url).receipt_handle(h).send().await;
                    }
                }
            }
        });
    }
    while pollers.join_next().await.is_some() {}
}

/// A schedule rule.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// The rate.
    pub(crate) every: Duration,
    /// The virtual clock: skip the wait whenever all is idle.
    pub(crate) virtual_clock: bool,
    /// The function.
    pub(crate) function: String,
    /// The rule's ARN (`resources`).
    pub(crate) rule_arn: String,
    /// The region.
    pub(crate) region: String,
    /// The account.
    pub(crate) account: String,
}

/// The EventBridge event of a tick at `time`.
pub(crate) fn scheduled_event(s: &Schedule, n: u64, time: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "version": "0",
        "id": format!("00000000-0000-4000-8000-{n:012}"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": s.account,
        "time": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": s.region,
        "resources": [s.rule_arn],
        "detail": {},
    })
}

/// How long all must be idle before the virtual clock skips to the next tick.
const SETTLE: Duration = Duration::from_secs(1);

/// Fires `s` until the task is dropped: at once, then at its rate; on the virtual clock
/// also as soon as `idle()` has held for a second since the last tick ended.
pub(crate) async fn serve_schedule(
    s: Schedule,
    invoker: Arc<dyn Invoke>,
    inflight: Arc<InFlight>,
    idle: Arc<dyn Fn() -> bool + Send + Sync>,
) {
    let mut n = 0u64;
    loop {
        n += 1;
        let event = scheduled_event(&s, n, a2a_core::clock::now());
        match invoke_counted(&*invoker, &inflight, &s.function, event).await {
            Ok(v) => tracing::info!(function = %s.function, "tick {n}: {v}"),
            Err(f) => {
                tracing::warn!(function = %s.function, "tick {n} failed: {}: {}", f.error_type, f.message)
            }
        }
        let next = Instant::now() + s.every;
        let mut quiet_since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now >= next {
                break;
            }
            if s.virtual_clock {
                if idle() && inflight.get() == 0 {
                    let since = *quiet_since.get_or_insert(now);
                    if now.duration_since(since) >= SETTLE {
                        break;
                    }
                } else {
                    quiet_since = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(200).min(next - now)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str) -> sqs::types::Message {
        sqs::types::Message::builder()
            .message_id(id)
            .receipt_handle(format!("h-{id}"))
            .body("{}")
            .build()
    }

    #[test]
    fn an_s3_record_gets_what_s3_always_sends_and_keeps_the_rest() {
        let ev = s3_event(
            json!({"Records": [{"eventTime": "t", "s3": {"object": {"key": "uploads/a+b.csv"}}}]}),
        );
        let r = &ev["Records"][0];
        assert_eq!(r["userIdentity"]["principalId"], "AWS:A2AREHEARSAL");
        assert_eq!(r["requestParameters"]["sourceIPAddress"], "127.0.0.1");
        assert_eq!(
            r["s3"]["object"]["key"], "uploads/a+b.csv",
            "left URL-encoded"
        );
        let kept = s3_event(json!({"Records": [{"userIdentity": {"principalId": "me"}}]}));
        assert_eq!(kept["Records"][0]["userIdentity"]["principalId"], "me");
    }

    #[test]
    fn reported_failures_stay_and_the_rest_are_deleted() {
        let batch = [msg("a"), msg("b"), msg("c")];
        let ids = |v: Vec<&sqs::types::Message>| -> Vec<String> {
            v.iter()
                .map(|m| m.message_id().unwrap().to_owned())
                .collect()
        };
        let ok = Ok(json!({"batchItemFailures": [{"itemIdentifier": "b"}]}));
        assert_eq!(ids(settled(&batch, &ok, true)), ["a", "c"]);
        // Without ReportBatchItemFailures the answer is not read: the batch succeeded.
        assert_eq!(ids(settled(&batch, &ok, false)), ["a", "b", "c"]);
        let failed = Err(Failure {
            error_type: "A2A.Transient".into(),
            message: "x".into(),
        });
        assert!(settled(&batch, &failed, true).is_empty());
        let unknown = Ok(json!({"batchItemFailures": [{"itemIdentifier": "zz"}]}));
        assert!(settled(&batch, &unknown, true).is_empty());
        let ev = sqs_event(&batch, "arn:q", "eu-west-1");
        assert_eq!(ev["Records"][1]["messageId"], "b");
        assert_eq!(ev["Records"][1]["eventSource"], "aws:sqs");
    }
}

//! The `dispatcher` binary itself, started as Lambda starts it, against the fake Lambda
//! Runtime API of `a2a_testkit::lambda`, with moto's DynamoDB, SQS and Step Functions
//! behind it: an SQS batch in, an execution started, a malformed message sent to the
//! dead-letter queue, the `ReportBatchItemFailures` response out; an event that is not an
//! SQS batch comes back through `/error`.
//!
//! Needs `AWS_ENDPOINT_URL` (a moto server); without it the test prints a SKIP line.

use std::path::Path;

use a2a_aws::SqsQueue;
use a2a_core::{InstanceKind, InstanceStore, Status, WorkQueue};
use a2a_schedule::StartMessage;
use a2a_testkit::lambda::{FakeRuntime, LambdaProcess, expect_failed_cold_start};
use a2a_testkit::moto::Moto;
use a2a_testkit::{code, register_queued};
use serde_json::{Value, json};

/// An SQS batch as the event source mapping delivers it.
fn sqs_event(queue_arn: &str, messages: &[(&str, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("AQEB{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000",
                               "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1767225600001"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "eu-west-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_binary_answers_through_the_runtime_api() {
    let Some(moto) = Moto::for_test("the_dispatcher_binary_answers_through_the_runtime_api").await
    else {
        return;
    };
    let store = moto.state_table().await.unwrap();
    register_queued(&store, code(41), InstanceKind::Provision)
        .await
        .unwrap();
    let (migrate, provision) = moto.waiting_machines().await.expect("the state machines");
    let dead = moto.queue("a2a-dlq").await.unwrap();
    let dead_letters = SqsQueue::new(moto.sqs.clone(), &dead, None);

    let rt = FakeRuntime::start("a2a-dispatcher").await.unwrap();
    let mut lambda = LambdaProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_dispatcher")),
        "a2a-dispatcher",
        &rt,
        &[
            ("A2A_TABLE", store.table().to_owned()),
            ("A2A_MIGRATE_STATE_MACHINE", migrate),
            ("A2A_PROVISION_STATE_MACHINE", provision.clone()),
            ("A2A_DEAD_LETTER_QUEUE_URL", dead.clone()),
            ("A2A_MAX_RUNNING", "5".into()),
        ],
    )
    .unwrap();
    let queue_arn = "arn:aws:sqs:eu-west-1:123456789012:a2a-fanout";
    let start = StartMessage {
        school_code: code(41),
        attempt: 1,
    }
    .to_body();

    // A start message and a malformed one: the school starts, the bad one goes to the
    // dead-letter queue, and nothing comes back to the queue.
    let out = lambda
        .call_json(
            &rt,
            &sqs_event(
                queue_arn,
                &[
                    ("m1", start.clone()),
                    ("bad", "{\"school_code\": \"0800\"}".into()),
                ],
            ),
        )
        .await
        .expect_response("a batch");
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let i = store.get(&code(41)).await.unwrap().unwrap();
    assert_eq!((i.status, i.attempt), (Status::Running, 1));
    let arn = i.execution.expect("the execution is recorded");
    assert!(arn.contains(&format!("{}-provision-1", code(41))), "{arn}");
    let dead = dead_letters
        .receive(10, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "{\"school_code\": \"0800\"}");

    // Delivered again: recognised, acknowledged, no second execution.
    let out = lambda
        .call_json(&rt, &sqs_event(queue_arn, &[("m1-again", start)]))
        .await
        .expect_response("the same message");
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    assert_eq!(moto.execution_names(&provision).await.unwrap().len(), 1);

    // Not an SQS batch: the runtime's error endpoint (Lambda retries it, then its own
    // failure destination takes it).
    let e = lambda
        .call_json(&rt, &json!({"Records": [{"body": 5}]}))
        .await
        .expect_error("not a batch");
    assert!(e.error_type.contains("DeserializeError"), "{e:?}");
    assert!(e.error_message.contains("Records"), "{e:?}");

    lambda.expect_serving(&rt);
}

/// A bad window stops the start before any event is taken, and Lambda is told why. Needs
/// no AWS: the configuration is read before any client is built.
#[tokio::test]
async fn a_bad_window_stops_the_cold_start_and_is_reported_to_lambda() {
    expect_failed_cold_start(
        Path::new(env!("CARGO_BIN_EXE_dispatcher")),
        "a2a-dispatcher",
        &[
            ("A2A_TABLE", "a2a-state".into()),
            (
                "A2A_MIGRATE_STATE_MACHINE",
                "arn:aws:states:eu-west-1:123456789012:stateMachine:m".into(),
            ),
            (
                "A2A_PROVISION_STATE_MACHINE",
                "arn:aws:states:eu-west-1:123456789012:stateMachine:p".into(),
            ),
            ("A2A_WINDOWS", "Mon-Fri 25:00-06:00 Europe/Madrid".into()),
        ],
        a2a_fn_bootstrap::error_type::INIT,
        "A2A_WINDOWS",
    )
    .await;
}

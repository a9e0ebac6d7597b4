//! The `scheduler` binary itself, started as Lambda starts it, against the fake Lambda
//! Runtime API of `a2a_testkit::lambda`, with moto's DynamoDB, SQS and Step Functions
//! behind it: an EventBridge schedule event in, a registered school enqueued, the tick's
//! report back through `/response`; a tick that cannot read its table comes back through
//! `/error` with an `errorType` named by kind.
//!
//! Needs `AWS_ENDPOINT_URL` (a moto server); without it the test prints a SKIP line.

use std::path::Path;

use a2a_core::{Instance, InstanceKind, InstanceStore, Status, Wave, WorkQueue};
use a2a_schedule::StartMessage;
use a2a_testkit::code;
use a2a_testkit::lambda::{FakeRuntime, LambdaProcess, expect_failed_cold_start};
use a2a_testkit::moto::Moto;
use chrono::Utc;
use serde_json::json;

/// Open at every hour: two windows, because one window cannot span a whole day.
const ALWAYS: &str = "daily 00:00-12:00 UTC;daily 12:00-00:00 UTC";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_binary_answers_through_the_runtime_api() {
    let Some(moto) = Moto::for_test("the_scheduler_binary_answers_through_the_runtime_api").await
    else {
        return;
    };
    let store = moto.state_table().await.unwrap();
    let table = store.table().to_owned();
    let i = Instance::new(
        code(51),
        InstanceKind::Migrate,
        "Institut",
        Wave(1),
        Utc::now(),
    );
    store.register(&i).await.unwrap();
    let queue = moto.fanout_queue().await.unwrap();
    let (migrate, provision) = moto.waiting_machines().await.expect("the state machines");

    let rt = FakeRuntime::start("a2a-scheduler").await.unwrap();
    let mut lambda = LambdaProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_scheduler")),
        "a2a-scheduler",
        &rt,
        &[
            ("A2A_TABLE", table.clone()),
            ("A2A_QUEUE_URL", queue.queue_url().to_owned()),
            ("A2A_MIGRATE_STATE_MACHINE", migrate),
            ("A2A_PROVISION_STATE_MACHINE", provision),
            ("A2A_WINDOWS", ALWAYS.into()),
            ("A2A_NIGHTLY_QUOTA", "10".into()),
        ],
    )
    .unwrap();
    let event = json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-30T21:00:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/a2a-tick"],
        "detail": {}
    });

    // A tick: the registered school is enqueued and its start message sent.
    let report = lambda
        .call_json(&rt, &event)
        .await
        .expect_response("a tick");
    assert_eq!(report["enqueued"], json!([code(51).as_str()]), "{report}");
    assert!(!report["night"].is_null(), "inside the window: {report}");
    assert_eq!(
        store.get(&code(51)).await.unwrap().unwrap().status,
        Status::Queued
    );
    let sent = queue
        .receive(10, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        StartMessage::parse(&sent[0].body).unwrap().school_code,
        code(51)
    );

    // The next tick finds nothing new to do.
    let report = lambda
        .call_json(&rt, &event)
        .await
        .expect_response("a second tick");
    assert_eq!(report["enqueued"], json!([]), "{report}");

    // Not an EventBridge event: refused by lambda_runtime before the handler.
    let e = lambda
        .call_json(&rt, &json!({"source": "aws.events"}))
        .await
        .expect_error("not a schedule event");
    assert!(e.error_type.contains("DeserializeError"), "{e:?}");

    // The table is gone: the tick fails, named as what it is, and the process lives on.
    moto.dynamodb
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let e = lambda
        .call_json(&rt, &event)
        .await
        .expect_error("a tick without its table");
    assert!(e.error_type.starts_with("A2A."), "{e:?}");
    assert!(e.error_message.contains(&table), "{e:?}");
    lambda.expect_serving(&rt);
}

/// A missing queue stops the start before any event is taken, and Lambda is told why.
/// Needs no AWS: the configuration is read before any client is built.
#[tokio::test]
async fn a_missing_queue_stops_the_cold_start_and_is_reported_to_lambda() {
    expect_failed_cold_start(
        Path::new(env!("CARGO_BIN_EXE_scheduler")),
        "a2a-scheduler",
        &[
            ("A2A_TABLE", "a2a-state".into()),
            ("A2A_QUEUE_URL", String::new()),
        ],
        a2a_fn_bootstrap::error_type::INIT,
        "A2A_QUEUE_URL is not set",
    )
    .await;
}

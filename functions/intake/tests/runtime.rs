//! The `intake` binary itself, started as Lambda starts it, against the fake Lambda Runtime
//! API of `a2a_testkit::lambda`, with moto behind it: S3 notifications in, outcomes back
//! through `/response`, failures through `/error` with an `errorType` named by kind.
//!
//! Needs `AWS_ENDPOINT_URL` (a moto server); without it the test prints a SKIP line.

use std::path::Path;

use a2a_aws::aws_sdk_s3::primitives::ByteStream;
use a2a_core::{InstanceStore, SchoolCode};
use a2a_testkit::lambda::{FakeRuntime, LambdaProcess, expect_failed_cold_start};
use a2a_testkit::moto::Moto;
use serde_json::{Value, json};

const LIST: &str = "Codi centre;Denominació completa;EPRI;Web\n\
                    08000013;Escola Bertí;EPRI;https://agora.xtec.cat/ceip-berti/moodle/\n\
                    08000021;Institut Nou;;\n\
                    0800003X;Escola Trencada;EPRI;\n\
                    17000034;Escola del Mar;EPRI;\n";

/// An S3 notification as AWS delivers it to a Lambda, for one object.
fn s3_event(bucket: &str, key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "eu-west-1",
        "eventTime": "2026-11-30T12:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "192.0.2.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "uploads",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                       "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": key, "size": 180, "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                       "sequencer": "0055AED6DCD90281E5"}
        }
    }]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intake_binary_answers_through_the_runtime_api() {
    let Some(moto) = Moto::for_test("the_intake_binary_answers_through_the_runtime_api").await
    else {
        return;
    };
    let store = moto.state_table().await.unwrap();
    let bucket = moto.bucket("a2a-data").await.unwrap();
    moto.s3
        .put_object()
        .bucket(&bucket)
        .key("uploads/llista 2026.csv")
        .body(ByteStream::from_static(LIST.as_bytes()))
        .send()
        .await
        .unwrap();

    let rt = FakeRuntime::start("a2a-intake").await.unwrap();
    let mut lambda = LambdaProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_intake")),
        "a2a-intake",
        &rt,
        &[
            ("A2A_TABLE", store.table().to_owned()),
            ("RUST_LOG", "info".into()),
        ],
    )
    .unwrap();

    // A list: taken in (the key arrives URL-encoded, as S3 sends it).
    let out = lambda
        .call_json(&rt, &s3_event(&bucket, "uploads/llista+2026.csv"))
        .await
        .expect_response("a good list");
    assert_eq!(out[0]["outcome"], "taken_in", "{out}");
    assert_eq!(
        (out[0]["accepted"].as_u64(), out[0]["rejected"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(out[0]["key"], "uploads/llista 2026.csv");
    let code = SchoolCode::parse("08000013").unwrap();
    let i = store
        .get(&code)
        .await
        .unwrap()
        .expect("registered in DynamoDB");
    assert_eq!(i.name, "Escola Bertí");

    // The same upload again, as S3 may deliver it twice: nothing new.
    let out = lambda
        .call_json(&rt, &s3_event(&bucket, "uploads/llista+2026.csv"))
        .await
        .expect_response("the same list");
    assert_eq!(out[0]["outcome"], "already", "{out}");

    // Not a school list: ignored, not an error.
    let out = lambda
        .call_json(&rt, &s3_event(&bucket, "reports/x.csv"))
        .await
        .expect_response("a report key");
    assert_eq!(out[0]["outcome"], "ignored", "{out}");

    // An object that is not there: the error endpoint, named as a permanent input error.
    let e = lambda
        .call_json(&rt, &s3_event(&bucket, "uploads/gone.csv"))
        .await
        .expect_error("a missing object");
    assert_eq!(e.error_type, "A2A.Permanent.Input", "{e:?}");
    assert!(e.error_message.contains("uploads/gone.csv"), "{e:?}");
    assert_eq!(e.header.as_deref(), Some("unhandled"));

    // Not an S3 event at all: lambda_runtime refuses it before the handler.
    let e = lambda
        .call_json(&rt, &json!({"Records": "nope"}))
        .await
        .expect_error("a malformed event");
    assert!(e.error_type.contains("DeserializeError"), "{e:?}");

    // Still alive and polling after the errors; the log lines are JSON and carry the
    // request id of the invocation they belong to.
    assert!(lambda.exited().is_none(), "{}", lambda.output());
    assert!(
        rt.wait_nexts(6, std::time::Duration::from_secs(10)).await,
        "{}",
        lambda.output()
    );
    let log = lambda.output();
    let line = log
        .lines()
        .find(|l| l.contains("uploads/gone.csv") && l.contains("record failed"))
        .unwrap_or_else(|| panic!("no log line of the failed record:\n{log}"));
    let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(line.to_string().contains("req-0004"), "{line}");
    lambda.expect_serving(&rt);
}

#[tokio::test]
async fn a_missing_table_stops_the_cold_start_with_the_variable_named() {
    let lambda = expect_failed_cold_start(
        Path::new(env!("CARGO_BIN_EXE_intake")),
        "a2a-intake",
        &[("A2A_TABLE", String::new())],
        a2a_fn_bootstrap::error_type::INIT,
        "A2A_TABLE is not set",
    )
    .await;
    assert!(
        lambda.output().contains("A2A_TABLE is not set"),
        "the log says it too: {}",
        lambda.output()
    );
}

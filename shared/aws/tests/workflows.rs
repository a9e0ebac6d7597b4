//! `SfnWorkflows` against Step Functions on moto (or AWS) at `AWS_ENDPOINT_URL`.

#![cfg(feature = "sfn")]

use std::io::{Read, Write};
use std::time::Duration;

use a2a_aws::{SfnWorkflows, aws_sdk_sfn};
use a2a_core::{ExecutionStatus, InstanceKind, PortError, StartOutcome, Workflows};
use a2a_testkit::{service_url, unique_name};
use serde_json::json;

/// moto runs definitions only when told to; on AWS this is not needed (and not sent).
fn let_moto_execute(endpoint: &str) {
    let Some(hostport) = endpoint.strip_prefix("http://") else {
        return;
    };
    let hostport = hostport.trim_end_matches('/');
    let body =
        r#"{"stepfunctions": {"execute_state_machine": true}, "lambda": {"use_docker": false}}"#;
    let mut s = std::net::TcpStream::connect(hostport).expect("moto answers");
    write!(
        s,
        "POST /moto-api/config HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 2"), "{answer}");
}

async fn machine(client: &aws_sdk_sfn::Client, definition: serde_json::Value) -> String {
    SfnWorkflows::create_state_machine(
        client,
        &unique_name("a2a-sm"),
        &definition.to_string(),
        SfnWorkflows::TEST_ROLE,
    )
    .await
    .expect("create the state machine")
}

async fn settled(wf: &SfnWorkflows, arn: &str) -> a2a_core::ExecutionInfo {
    for _ in 0..100 {
        let info = wf.describe(arn).await.unwrap();
        if info.status != ExecutionStatus::Running {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{arn} never finished");
}

#[tokio::test]
async fn start_is_idempotent_by_name_and_describe_and_stop_work() {
    let Some(endpoint) = service_url("AWS_ENDPOINT_URL", "sfn workflows") else {
        return;
    };
    let_moto_execute(&endpoint);
    let conf = a2a_aws::config::sdk_config().await;
    let client = aws_sdk_sfn::Client::new(&conf);
    let quick = machine(
        &client,
        json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let slow = machine(
        &client,
        json!({"StartAt": "Sleep", "States": {"Sleep": {"Type": "Wait", "Seconds": 600, "End": true}}}),
    )
    .await;
    let wf = SfnWorkflows::new(client.clone(), &quick, &slow);
    let input = json!({"school_code": "08012345"});

    let StartOutcome::Started(arn) = wf
        .start(InstanceKind::Migrate, "08012345-migrate-1", input.clone())
        .await
        .unwrap()
    else {
        panic!("a new name starts an execution");
    };
    assert!(arn.ends_with(":08012345-migrate-1"), "{arn}");
    let info = settled(&wf, &arn).await;
    assert_eq!(info.status, ExecutionStatus::Succeeded);
    assert_eq!(info.output, Some(input.clone()));
    assert!(info.stopped_at.is_some());

    // The same name again, as a duplicate queue message would: nothing new starts.
    match wf
        .start(InstanceKind::Migrate, "08012345-migrate-1", input.clone())
        .await
        .unwrap()
    {
        StartOutcome::AlreadyExists(again) => assert_eq!(again, arn),
        StartOutcome::Started(again) => panic!("a duplicate started {again}"),
    }
    let listed = client
        .list_executions()
        .state_machine_arn(&quick)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.executions().len(), 1, "exactly one execution");

    let StartOutcome::Started(stuck) = wf
        .start(InstanceKind::Provision, "17000001-provision-1", input)
        .await
        .unwrap()
    else {
        panic!("starts");
    };
    assert_eq!(
        wf.describe(&stuck).await.unwrap().status,
        ExecutionStatus::Running
    );
    wf.stop(&stuck, "A2A.Stuck", "ran past the maximum duration")
        .await
        .unwrap();
    let info = settled(&wf, &stuck).await;
    assert_eq!(info.status, ExecutionStatus::Aborted);

    let ghost = arn.replace("08012345-migrate-1", "08099999-migrate-1");
    assert!(matches!(
        wf.describe(&ghost).await,
        Err(PortError::NotFound(_))
    ));
}

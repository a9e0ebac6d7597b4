//! The dispatcher Lambda's handler against moto: an SQS event in, executions started on
//! moto's Step Functions, a duplicate recognised, the cap respected, a malformed message
//! sent to the dead-letter queue.
//!
//! The first test makes its state machines from a one-state `Wait` definition, so that
//! executions stay running and the cap can be seen. The second creates them from the real
//! `statemachines/*.asl.json`, with each `${Step}` placeholder made a Lambda ARN that moto
//! does not have: those executions fail at their first step, and the test checks only that
//! each message started exactly one.
//! Needs `AWS_ENDPOINT_URL` (a moto server); without it the test prints a SKIP line.

use std::sync::Arc;

use a2a_aws::{SfnWorkflows, SqsQueue};
use a2a_core::{InstanceKind, InstanceStore, Status, WorkQueue};
use a2a_fn_dispatcher::Handler;
use a2a_schedule::{Dispatched, Dispatcher, StartMessage};
use a2a_testkit::moto::Moto;
use a2a_testkit::{code, register_queued};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::Utc;

fn event(messages: &[(&str, String)]) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = messages
        .iter()
        .map(|(id, body)| {
            let mut m = SqsMessage::default();
            m.message_id = Some((*id).to_owned());
            m.body = Some(body.clone());
            m
        })
        .collect();
    e
}

fn start(n: u32) -> String {
    StartMessage {
        school_code: code(n),
        attempt: 1,
    }
    .to_body()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_event_starts_executions_once_each_under_the_cap() {
    let Some(moto) = Moto::for_test("an_sqs_event_starts_executions_once_each_under_the_cap").await
    else {
        return;
    };
    let store = Arc::new(moto.state_table().await.unwrap());
    for n in 1..=3 {
        register_queued(store.as_ref(), code(n), InstanceKind::Provision)
            .await
            .unwrap();
    }
    let (migrate, provision) = moto.waiting_machines().await.expect("the state machines");
    let workflows = Arc::new(SfnWorkflows::new(moto.sfn.clone(), &migrate, &provision));
    let queue = moto.fanout_queue().await.unwrap();
    let dlq_url = moto
        .sqs
        .get_queue_url()
        .queue_name(format!(
            "{}-dlq",
            queue.queue_url().rsplit('/').next().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dead = Arc::new(SqsQueue::new(moto.sqs.clone(), &dlq_url, None));
    let handler = Handler::new(
        Dispatcher::new(store.clone(), workflows, 2),
        Some(dead.clone() as Arc<dyn WorkQueue>),
    );

    let (report, response) = handler
        .handle(
            event(&[
                ("m1", start(1)),
                ("m2", start(2)),
                ("m3", start(3)),
                ("bad", "{\"school_code\": 8}".to_owned()),
            ]),
            Utc::now(),
        )
        .await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        ["m3"],
        "over the cap: back to the queue; {report:?}"
    );
    assert_eq!(
        moto.execution_names(&provision).await.unwrap(),
        [
            format!("{}-provision-1", code(1)),
            format!("{}-provision-1", code(2))
        ]
    );
    let one = store.get(&code(1)).await.unwrap().unwrap();
    assert_eq!((one.status, one.attempt), (Status::Running, 1));
    assert!(one.execution.unwrap().contains(":execution:"));
    let dead_letters = dead
        .receive(10, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(dead_letters.len(), 1);
    assert_eq!(dead_letters[0].body, "{\"school_code\": 8}");

    // The same message again, as SQS may deliver it: recognised, nothing new starts.
    let (report, response) = handler
        .handle(event(&[("m1-again", start(1))]), Utc::now())
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert!(
        matches!(report.outcomes[0].1, Dispatched::Duplicate { .. }),
        "{report:?}"
    );
    assert_eq!(moto.execution_names(&provision).await.unwrap().len(), 2);
    assert!(moto.execution_names(&migrate).await.unwrap().is_empty());
}

/// The definition in `statemachines/NAME.asl.json` with each `${Step}` placeholder made a
/// Lambda ARN (of a function moto does not have: the executions fail at their first step,
/// which is enough to see that they were started once). `None` if the file is missing.
fn real_definition(name: &str) -> Option<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../statemachines")
        .join(format!("{name}.asl.json"));
    let text = std::fs::read_to_string(path).ok()?;
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("${") {
        let end = rest[i..].find('}').expect("a closed placeholder") + i;
        out.push_str(&rest[..i]);
        out.push_str(&format!(
            "arn:aws:lambda:eu-west-1:123456789012:function:a2a-{}",
            &rest[i + 2..end]
        ));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_state_machines_are_started_once_per_message() {
    let test = "the_real_state_machines_are_started_once_per_message";
    let Some(moto) = Moto::for_test(test).await else {
        return;
    };
    let (Some(migrate_asl), Some(provision_asl)) = (
        real_definition("migrate-instance"),
        real_definition("provision-instance"),
    ) else {
        panic!("{test}: statemachines/*.asl.json are missing");
    };
    let store = Arc::new(moto.state_table().await.unwrap());
    for (n, kind) in [(11, InstanceKind::Migrate), (12, InstanceKind::Provision)] {
        register_queued(store.as_ref(), code(n), kind)
            .await
            .unwrap();
    }
    let mut arns = Vec::new();
    for definition in [migrate_asl, provision_asl] {
        let arn = moto
            .state_machine("a2a-real", &definition)
            .await
            .expect("moto takes the real definition");
        arns.push(arn);
    }
    let workflows = Arc::new(SfnWorkflows::new(moto.sfn.clone(), &arns[0], &arns[1]));
    let handler = Handler::new(Dispatcher::new(store.clone(), workflows, 10), None);
    let messages = [("a", start(11)), ("b", start(12))];
    let (report, response) = handler.handle(event(&messages), Utc::now()).await;
    assert!(response.batch_item_failures.is_empty(), "{report:?}");
    assert_eq!(
        report.count(|o| matches!(o, Dispatched::Started { .. })),
        2,
        "{report:?}"
    );
    // Delivered again: recognised whether the execution still runs or has ended.
    let (report, response) = handler.handle(event(&messages), Utc::now()).await;
    assert!(response.batch_item_failures.is_empty(), "{report:?}");
    assert_eq!(
        report.count(|o| matches!(o, Dispatched::Duplicate { .. })),
        2,
        "{report:?}"
    );
    for (arn, name) in arns.iter().zip([
        format!("{}-migrate-1", code(11)),
        format!("{}-provision-1", code(12)),
    ]) {
        assert_eq!(moto.execution_names(arn).await.unwrap(), [name]);
    }
}

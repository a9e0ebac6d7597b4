//! The scheduler Lambda's handler against moto: it reads and writes the DynamoDB state
//! table, sends to SQS, and reconciles with Step Functions executions.
//!
//! The state machines are made in the test from one-state definitions: the workflow
//! definitions of `statemachines/` call Lambda steps that moto cannot run here.
//! Needs `AWS_ENDPOINT_URL` (a moto server); without it the test prints a SKIP line.

use std::sync::Arc;
use std::time::Duration;

use a2a_aws::SfnWorkflows;
use a2a_core::{
    ExecutionStatus, Instance, InstanceKind, InstanceStore, StartOutcome, Status, Wave, Window,
    WorkQueue, Workflows,
};
use a2a_fn_scheduler::Handler;
use a2a_schedule::{ENQUEUE_STEP, Policy, StartMessage};
use a2a_testkit::code;
use a2a_testkit::moto::Moto;
use chrono::{DateTime, Utc};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn machine(moto: &Moto, state: &str) -> String {
    let definition = format!(r#"{{"StartAt": "S", "States": {{"S": {state}}}}}"#);
    moto.state_machine("a2a-sm", &definition)
        .await
        .expect("create the state machine")
}

/// Starts `name` and waits until moto has finished it.
async fn finished(wf: &SfnWorkflows, kind: InstanceKind, name: &str) -> String {
    let StartOutcome::Started(arn) = wf.start(kind, name, serde_json::json!({})).await.unwrap()
    else {
        panic!("{name} is new");
    };
    for _ in 0..100 {
        if wf.describe(&arn).await.unwrap().status != ExecutionStatus::Running {
            return arn;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{arn} never finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_reads_and_writes_the_state_table_and_reconciles_executions() {
    let Some(moto) =
        Moto::for_test("a_tick_reads_and_writes_the_state_table_and_reconciles_executions").await
    else {
        return;
    };
    let store = Arc::new(moto.state_table().await.unwrap());
    let queue = Arc::new(moto.fanout_queue().await.unwrap());
    let ok = machine(&moto, r#"{"Type": "Pass", "End": true}"#).await;
    let bad = machine(
        &moto,
        r#"{"Type": "Fail", "Error": "A2A.Verify", "Cause": "checksums differ"}"#,
    )
    .await;
    // Migrations succeed, provisions fail.
    let wf = Arc::new(SfnWorkflows::new(moto.sfn.clone(), &ok, &bad));

    let t0 = utc("2026-01-01T00:00:00Z");
    for n in 1..=3 {
        let i = Instance::new(code(n), InstanceKind::Migrate, "Escola", Wave(n), t0);
        store.register(&i).await.unwrap();
    }
    // Two instances whose executions ended without their end being recorded.
    for (n, kind) in [(4, InstanceKind::Migrate), (5, InstanceKind::Provision)] {
        let mut i = Instance::new(code(n), kind, "Escola", Wave(1), t0);
        store.register(&i).await.unwrap();
        i.move_to(Status::Queued, t0).unwrap();
        i.move_to(Status::Running, t0).unwrap();
        let name = a2a_core::execution_name(&code(n), kind, 1);
        i.execution = Some(finished(&wf, kind, &name).await);
        store.save(&i).await.unwrap();
    }
    let mut policy = Policy::new(vec![
        Window::parse("Mon-Fri 21:00-06:00 Europe/Madrid").unwrap(),
    ]);
    policy.nightly_quota = 2;
    let handler = Handler::new(store.clone(), queue.clone(), wf, policy);

    // Tuesday noon in Madrid: reconciles, enqueues nothing. The failed provision ended
    // without its rollback having run: a cleanup execution is started on its machine.
    let noon = utc("2026-12-01T11:00:00Z");
    let r = handler.handle(noon).await.unwrap();
    assert!(r.night.is_none() && r.enqueued.is_empty());
    assert_eq!(r.cleanups.len(), 1, "{r:?}");
    let four = store.get(&code(4)).await.unwrap().unwrap();
    assert_eq!(four.status, Status::Active);
    let five = store.get(&code(5)).await.unwrap().unwrap();
    assert_eq!(
        five.status,
        Status::Running,
        "in flight until its cleanup ends"
    );
    assert_eq!(five.execution.as_deref(), Some(r.cleanups[0].as_str()));
    assert!(r.cleanups[0].ends_with("-provision-1-cleanup-1"), "{r:?}");
    // Here the machine only fails, so no cleanup rolls it back: after the last one it is
    // failed, with the error.
    for _ in 0..200 {
        if store.get(&code(5)).await.unwrap().unwrap().status == Status::Failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        handler.handle(noon).await.unwrap();
    }
    let five = store.get(&code(5)).await.unwrap().unwrap();
    assert_eq!(five.status, Status::Failed);
    let why = five.last_error.unwrap();
    assert!(
        why.contains("A2A.Verify") && why.contains("checksums differ"),
        "{why}"
    );
    assert!(why.contains("did not finish in 3 cleanup runs"), "{why}");
    assert!(
        queue
            .receive(10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );

    // Tuesday 22:00 in Madrid: the first two by wave, up to the quota.
    let now = utc("2026-12-01T21:00:00Z");
    let r = handler.handle(now).await.unwrap();
    assert_eq!(r.enqueued, vec![code(1), code(2)]);
    // The failed provision's back-off has passed: retried, outside the quota.
    assert_eq!(r.retried, vec![(code(5), 2)]);
    for n in [1, 2] {
        assert_eq!(
            store.get(&code(n)).await.unwrap().unwrap().status,
            Status::Queued
        );
        let h = store.history(&code(n)).await.unwrap();
        assert!(
            h.iter()
                .any(|e| e.step == ENQUEUE_STEP && e.started_at == now)
        );
    }
    assert_eq!(
        store.get(&code(3)).await.unwrap().unwrap().status,
        Status::Registered
    );
    let mut got: Vec<StartMessage> = queue
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap()
        .iter()
        .map(|m| StartMessage::parse(&m.body).unwrap())
        .collect();
    got.sort_by(|a, b| a.school_code.cmp(&b.school_code));
    assert_eq!(
        got,
        [(1, 1), (2, 1), (5, 2)].map(|(n, attempt)| StartMessage {
            school_code: code(n),
            attempt
        })
    );
    // Again the same night: the quota, counted from the table, is spent.
    let r = handler
        .handle(now + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!((r.enqueued_before, r.enqueued.len()), (2, 0));
}

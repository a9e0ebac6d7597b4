//! `a2a tick` and `a2a start`, end to end: refusals without AWS, and the AWS path against
//! moto (DynamoDB state, SQS queue, Step Functions made from a one-state definition: the
//! workflow definitions of `statemachines/` call Lambda steps that moto cannot run here).

mod common;
use common::{a2a, command, text};

use std::sync::Arc;

use a2a_core::{Instance, InstanceKind, InstanceStore, Status, Wave};
use a2a_testkit::{code, service_url, unique_name};
use chrono::Utc;
use serde_json::Value;

#[test]
fn without_aws_tick_and_start_refuse_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let o = a2a(home, &["tick"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("lasting queue"), "{}", text(&o));
    let o = a2a(
        home,
        &[
            "--queue",
            "sqs:http://127.0.0.1:9/q",
            "tick",
            "--now",
            "tonight",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--now \"tonight\""), "{}", text(&o));
    let o = a2a(home, &["start", "0801234X", "--aws"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("0801234X"), "{}", text(&o));
    let o = a2a(home, &["start", "08012345"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not registered"), "{}", text(&o));
    let o = a2a(home, &["start", "08012345", "--aws"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--provision-state-machine"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_local_start_runs_the_school_here_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let list = home.join("list.csv");
    std::fs::write(
        &list,
        "school_code,name,kind,dns,template\n08012345,Escola Nova,provision,escola-nova,primary\n",
    )
    .unwrap();
    let o = a2a(home, &["upload", list.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = a2a(home, &["start", "08012345", "--kind", "migrate"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--kind provision"), "{}", text(&o));

    let o = a2a(home, &["start", "08012345", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "active", "{v}");
    assert_eq!(v["execution"], "08012345-provision-1", "{v}");

    // Once active, a site is never moved again.
    let o = a2a(home, &["start", "08012345"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already active"), "{}", text(&o));
    let o = a2a(home, &["status", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["by_status"]["active"], 1, "{v}");
}

async fn machine(client: &a2a_aws::aws_sdk_sfn::Client) -> String {
    a2a_aws::SfnWorkflows::create_waiting_machine(client, &unique_name("a2a-sm"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tick_and_start_on_moto() {
    if service_url("AWS_ENDPOINT_URL", "tick_and_start_on_moto").is_none() {
        return;
    }
    let conf = a2a_aws::config::sdk_config().await;
    let dynamo = a2a_aws::aws_sdk_dynamodb::Client::new(&conf);
    let sfn = a2a_aws::aws_sdk_sfn::Client::new(&conf);
    let sqs = a2a_aws::aws_sdk_sqs::Client::new(&conf);
    let table = unique_name("a2a-state");
    a2a_aws::DynamoDbStore::create_table(&dynamo, &table)
        .await
        .unwrap();
    let store: Arc<dyn InstanceStore> = Arc::new(a2a_aws::DynamoDbStore::new(dynamo, &table));
    for n in 1..=3 {
        let i = Instance::new(
            code(n),
            InstanceKind::Provision,
            "Escola",
            Wave(n),
            Utc::now(),
        );
        store.register(&i).await.unwrap();
    }
    let queue = a2a_aws::SqsQueue::create_with_dead_letter(&sqs, &unique_name("a2a-q"), 3)
        .await
        .unwrap();
    let (migrate, provision) = (machine(&sfn).await, machine(&sfn).await);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    std::fs::write(
        home.join("a2a.toml"),
        format!(
            "[backends]\nstate = \"dynamodb:{table}\"\nqueue = \"sqs:{}\"\n\n\
             [schedule]\nwindows = [\"Mon-Fri 21:00-06:00 Europe/Madrid\"]\nnightly_quota = 2\nmax_running = 1\n\n\
             [aws]\nmigrate_state_machine = \"{migrate}\"\nprovision_state_machine = \"{provision}\"\n",
            queue.queue_url()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let o = command(home).args(args).output().unwrap();
        (o.status.code(), text(&o), o.stdout)
    };

    // Tuesday noon in Madrid: nothing.
    let (rc, t, out) = run(&["tick", "--now", "2026-12-01T12:00:00+01:00", "--json"]);
    assert_eq!(rc, Some(0), "{t}");
    let r: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(r["enqueued"], serde_json::json!([]));
    // 22:00: the first two, by wave; each wave only once its snapshot of the target
    // cluster is there.
    let cluster = unique_name("a2a-targets");
    a2a_aws::aws_sdk_rds::Client::new(&conf)
        .create_db_cluster()
        .db_cluster_identifier(&cluster)
        .engine("aurora-mysql")
        .master_username("a2a")
        .master_user_password("not-a-real-secret")
        .send()
        .await
        .unwrap();
    let tick = |at: &str| {
        let (rc, t, out) = run(&["tick", "--now", at, "--target-cluster", &cluster, "--json"]);
        assert_eq!(rc, Some(0), "{t}");
        serde_json::from_slice::<Value>(&out).unwrap()
    };
    let r = tick("2026-12-01T22:00:00+01:00");
    assert_eq!(r["enqueued"], serde_json::json!([]), "{r}");
    assert_eq!(r["waiting_for_snapshot"], "wave-1", "{r}");
    let r = tick("2026-12-01T22:05:00+01:00");
    assert_eq!(r["enqueued"], serde_json::json!(["08000001"]), "{r}");
    assert_eq!(r["waiting_for_snapshot"], "wave-2", "{r}");
    let r = tick("2026-12-01T22:10:00+01:00");
    assert_eq!(r["enqueued"], serde_json::json!(["08000002"]), "{r}");
    assert_eq!(
        store.get(&code(1)).await.unwrap().unwrap().status,
        Status::Queued
    );

    // By hand: school 3, still registered.
    let (rc, t, out) = run(&["start", "08000003", "--aws", "--json"]);
    assert_eq!(rc, Some(0), "{t}");
    let r: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(r["outcome"], "started", "{t}");
    let three = store.get(&code(3)).await.unwrap().unwrap();
    assert_eq!((three.status, three.attempt), (Status::Running, 1));
    // Again: recognised, no second run.
    let (rc, t, out) = run(&["start", "08000003", "--aws", "--json"]);
    assert_eq!(rc, Some(0), "{t}");
    let r: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(r["outcome"], "duplicate", "{t}");
    let listed = sfn
        .list_executions()
        .state_machine_arn(&provision)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.executions().len(), 1);
    // One in flight, the cap is 1: school 1 waits, unless forced.
    let (rc, t, _) = run(&["start", "08000001", "--aws"]);
    assert_eq!(rc, Some(1), "{t}");
    assert!(t.contains("the cap is 1") && t.contains("--force"), "{t}");
    assert_eq!(
        store.get(&code(1)).await.unwrap().unwrap().status,
        Status::Queued
    );
    let (rc, t, out) = run(&["start", "08000001", "--aws", "--force", "--json"]);
    assert_eq!(rc, Some(0), "{t}");
    let r: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(r["outcome"], "started", "{t}");
    // A code nobody registered, and the wrong kind: refused before anything starts.
    let (rc, t, _) = run(&["start", "08099999", "--aws"]);
    assert_eq!(rc, Some(2), "{t}");
    assert!(t.contains("not registered"), "{t}");
    let (rc, t, _) = run(&["start", "08000001", "--aws", "--kind", "migrate"]);
    assert_eq!(rc, Some(2), "{t}");
    assert!(t.contains("provision"), "{t}");
}

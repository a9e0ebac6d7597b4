//! The endpoint against the project's own SDK adapters (`SfnWorkflows`, `SfnActivities`,
//! over `aws-sdk-sfn`) and raw HTTP for what the SDK never sends.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use a2a_aws::aws_sdk_sfn;
use a2a_aws::{SfnActivities, SfnWorkflows};
use a2a_core::{Activities, ExecutionStatus, InstanceKind, PortError, StartOutcome, Workflows};
use a2a_local::{AslWorkflows, MemActivities, TaskError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Endpoint, Engine};

/// Both workflows: `Act` (an activity, heartbeat `hb` s) then `Echo` (a Lambda); with
/// `hb` 0, `Act` alone (heartbeat 30 s), its answer the execution's.
fn machines(dir: &Path, hb: u64) {
    for kind in InstanceKind::ALL {
        let asl = if hb == 0 {
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Task", "Resource": "${Act}", "TimeoutSeconds": 60,
                      "HeartbeatSeconds": 30, "End": true}}})
        } else {
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Task", "Resource": "${Act}", "TimeoutSeconds": 60,
                      "HeartbeatSeconds": hb, "ResultPath": "$.act", "Next": "B"},
                "B": {"Type": "Task", "Resource": "${Echo}", "End": true}}})
        };
        std::fs::write(
            dir.join(format!("{}.asl.json", kind.workflow())),
            asl.to_string(),
        )
        .unwrap();
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    endpoint: Endpoint,
    client: aws_sdk_sfn::Client,
}

impl Setup {
    async fn new(hb: u64, real_clock: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        machines(dir.path(), hb);
        let loopback = Arc::new(MemActivities::new(Duration::from_millis(300)));
        let mut flows = AslWorkflows::load_with_activities(
            dir.path(),
            &["Echo"],
            &["Act"],
            Some(loopback.clone()),
            |name, input: Value| async move {
                match input["fail"].as_str() {
                    Some(why) => Err(TaskError::new("A2A.Permanent", why)),
                    None => Ok(json!({"task": name, "input": input})),
                }
            },
        )
        .unwrap();
        if real_clock {
            flows = flows.with_clock(Arc::new(a2a_asl::RealClock));
        }
        let engine = Engine::new(flows, loopback, &["Act"]);
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let endpoint = Endpoint::bind(engine.clone(), addr).await.unwrap();
        let conf = aws_sdk_sfn::Config::builder()
            .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
            .endpoint_url(endpoint.url())
            .region(aws_sdk_sfn::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_sfn::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        Self {
            _dir: dir,
            engine,
            endpoint,
            client: aws_sdk_sfn::Client::from_conf(conf),
        }
    }

    fn workflows(&self) -> SfnWorkflows {
        let m = self.engine.machines();
        SfnWorkflows::new(self.client.clone(), &m.migrate, &m.provision)
    }

    fn activities(&self) -> SfnActivities {
        SfnActivities::new(self.client.clone())
    }

    fn act(&self) -> String {
        self.engine.activities()["Act"].clone()
    }

    async fn task(&self) -> a2a_core::ActivityTask {
        for _ in 0..20 {
            if let Some(t) = self.activities().poll(&self.act(), "test").await.unwrap() {
                return t;
            }
        }
        panic!("no task came");
    }

    async fn ended(&self, id: &str) -> a2a_core::ExecutionInfo {
        for _ in 0..200 {
            let info = self.workflows().describe(id).await.unwrap();
            if info.status != ExecutionStatus::Running {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{id} did not end");
    }

    /// The execution's history as the SDK reads it, and its event types.
    async fn history(
        &self,
        id: &str,
    ) -> (
        aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryOutput,
        Vec<String>,
    ) {
        let h = self
            .client
            .get_execution_history()
            .execution_arn(id)
            .send()
            .await
            .unwrap();
        let types = h
            .events()
            .iter()
            .map(|e| e.r#type().as_str().to_owned())
            .collect();
        (h, types)
    }

    /// A raw request: status and body.
    async fn raw(&self, method: &str, target: Option<&str>, body: &str) -> (u16, Value) {
        let addr = self.endpoint.url().trim_start_matches("http://").to_owned();
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let target = target.map_or(String::new(), |t| format!("X-Amz-Target: {t}\r\n"));
        let req = format!(
            "{method} / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.0\r\n{target}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out[9..12].parse().unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/x-amz-json-1.0"),
            "{head}"
        );
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

/// The call is refused with the error type `$code`.
macro_rules! refused {
    ($call:expr, $code:literal) => {{
        let e = $call.send().await.unwrap_err();
        assert_eq!(code(&e).as_deref(), Some($code), "{e:?}");
    }};
}

fn code<E, R>(e: &aws_sdk_sfn::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_sfn::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .map(str::to_owned)
}

#[tokio::test]
async fn an_execution_runs_through_the_sdk_its_activity_served_by_sfn_activities() {
    let s = Setup::new(10, false).await;
    let flows = s.workflows();
    let input = json!({"school_code": "08000011"});
    let StartOutcome::Started(id) = flows
        .start(InstanceKind::Migrate, "08000011-migrate-1", input.clone())
        .await
        .unwrap()
    else {
        panic!("a first start starts");
    };
    assert_eq!(
        id,
        "arn:aws:states:eu-west-1:000000000000:execution:migrate-instance:08000011-migrate-1"
    );
    // The same name and input while it runs: that execution, as AWS answers.
    let again = flows
        .start(InstanceKind::Migrate, "08000011-migrate-1", input.clone())
        .await
        .unwrap();
    assert_eq!(again, StartOutcome::Started(id.clone()));
    // Another input under the name: refused.
    let other = flows
        .start(InstanceKind::Migrate, "08000011-migrate-1", json!({"x": 1}))
        .await
        .unwrap();
    assert_eq!(other, StartOutcome::AlreadyExists(id.clone()));
    // Names are unique per state machine: the provision machine may use it.
    assert!(matches!(
        flows
            .start(InstanceKind::Provision, "08000011-migrate-1", json!({"fail": "no"}))
            .await
            .unwrap(),
        StartOutcome::Started(p) if p.contains(":provision-instance:")
    ));
    assert_eq!(
        flows.describe(&id).await.unwrap().status,
        ExecutionStatus::Running
    );

    let acts = s.activities();
    let t = s.task().await;
    let t2 = s.task().await;
    let (mine, theirs) = if t.input == input { (t, t2) } else { (t2, t) };
    assert_eq!(mine.input, input);
    acts.heartbeat(&mine.token).await.unwrap();
    acts.succeed(&mine.token, &json!({"served": true}))
        .await
        .unwrap();
    acts.fail(&theirs.token, "A2A.Permanent.Input", "bad school")
        .await
        .unwrap();
    // Answered: the token is spent, as a timed-out one is.
    assert!(matches!(
        acts.heartbeat(&mine.token).await,
        Err(PortError::NotFound(_))
    ));
    let done = s.ended(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    assert_eq!(
        done.output,
        Some(
            json!({"task": "Echo", "input": {"school_code": "08000011", "act": {"served": true}}})
        )
    );
    assert!(done.stopped_at.is_some());
    let failed = s
        .ended(
            "arn:aws:states:eu-west-1:000000000000:execution:provision-instance:08000011-migrate-1",
        )
        .await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("A2A.Permanent.Input"));
    assert_eq!(failed.cause.as_deref(), Some("bad school"));
    // Ended: the name is taken for good.
    assert_eq!(
        flows
            .start(InstanceKind::Migrate, "08000011-migrate-1", input)
            .await
            .unwrap(),
        StartOutcome::AlreadyExists(id.clone())
    );

    // The history, as the SDK reads it.
    let (h, types) = s.history(&id).await;
    assert_eq!(types.first().map(String::as_str), Some("ExecutionStarted"));
    assert_eq!(types.last().map(String::as_str), Some("ExecutionSucceeded"));
    assert!(
        types.iter().any(|t| t == "LambdaFunctionSucceeded"),
        "{types:?}"
    );
    assert!(h.events()[0].timestamp().secs() > 1_700_000_000);
    let ids: Vec<i64> = h.events().iter().map(|e| e.id()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Listed by machine, newest first, filtered by status, paged.
    let list = |machine: &str, status: Option<aws_sdk_sfn::types::ExecutionStatus>| {
        s.client
            .list_executions()
            .state_machine_arn(machine)
            .set_status_filter(status)
            .send()
    };
    let m = s.engine.machines().clone();
    let l = list(&m.migrate, None).await.unwrap();
    assert_eq!(l.executions().len(), 1);
    assert_eq!(l.executions()[0].name(), "08000011-migrate-1");
    let l = list(
        &m.provision,
        Some(aws_sdk_sfn::types::ExecutionStatus::Succeeded),
    )
    .await
    .unwrap();
    assert!(l.executions().is_empty());
    let pages = s
        .client
        .list_executions()
        .state_machine_arn(&m.provision)
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(pages.len(), 1);
}

#[tokio::test]
async fn unknown_and_malformed_names_get_the_errors_aws_gives() {
    let s = Setup::new(10, false).await;
    let c = &s.client;
    refused!(
        c.describe_execution()
            .execution_arn("arn:aws:states:eu-west-1:000000000000:execution:migrate-instance:nope"),
        "ExecutionDoesNotExist"
    );
    // Through the adapter: NotFound, which the scheduler's reconciliation acts on.
    assert!(matches!(
        s.workflows()
            .describe("arn:aws:states:eu-west-1:000000000000:execution:migrate-instance:nope")
            .await,
        Err(PortError::NotFound(_))
    ));
    refused!(
        c.describe_execution().execution_arn("not-an-arn"),
        "InvalidArn"
    );
    refused!(
        c.start_execution()
            .state_machine_arn("arn:aws:states:eu-west-1:000000000000:stateMachine:other"),
        "StateMachineDoesNotExist"
    );
    refused!(
        c.start_execution()
            .state_machine_arn(&s.engine.machines().migrate)
            .name("a name"),
        "InvalidName"
    );
    refused!(
        c.start_execution()
            .state_machine_arn(&s.engine.machines().migrate)
            .input("{not json"),
        "InvalidExecutionInput"
    );
    refused!(
        c.get_activity_task()
            .activity_arn("arn:aws:states:eu-west-1:000000000000:activity:Other"),
        "ActivityDoesNotExist"
    );
    refused!(
        c.send_task_heartbeat().task_token("never-handed-out"),
        "TaskDoesNotExist"
    );
    // Through the adapter, a token it cannot use is NotFound: the worker lets it go.
    assert!(matches!(
        s.activities().succeed("never-handed-out", &json!({})).await,
        Err(PortError::NotFound(_))
    ));
    // No task: an empty answer after the poll's wait.
    assert_eq!(s.activities().poll(&s.act(), "w").await.unwrap(), None);

    // What a worker or an operator lists to find the ARNs.
    let machines = c.list_state_machines().send().await.unwrap();
    let names: Vec<&str> = machines.state_machines().iter().map(|m| m.name()).collect();
    assert_eq!(names, ["migrate-instance", "provision-instance"]);
    assert_eq!(
        machines.state_machines()[0].state_machine_arn(),
        s.engine.machines().migrate
    );
    let acts = c.list_activities().max_results(1).send().await.unwrap();
    assert_eq!(acts.activities().len(), 1);
    assert_eq!(acts.activities()[0].activity_arn(), s.act());
    assert_eq!(acts.next_token(), None, "one activity, one page");

    // What the SDK never sends: each a 400 with AWS's error type.
    for (method, target, body, kind) in [
        (
            "POST",
            Some("AWSStepFunctions.CreateStateMachine"),
            "{}",
            "UnknownOperationException",
        ),
        (
            "POST",
            Some("AWSStepFunctions.ListExecutions"),
            "[1,",
            "SerializationException",
        ),
        ("POST", None, "{}", "UnknownOperationException"),
        (
            "GET",
            Some("AWSStepFunctions.ListExecutions"),
            "",
            "UnknownOperationException",
        ),
        (
            "POST",
            Some("AWSStepFunctions.ListExecutions"),
            "{}",
            "ValidationException",
        ),
    ] {
        let (status, answer) = s.raw(method, target, body).await;
        assert_eq!(
            (status, answer["__type"].as_str()),
            (400, Some(kind)),
            "{method} {target:?} {body}: {answer}"
        );
    }
}

#[tokio::test]
async fn a_worker_that_stops_heartbeating_loses_its_task_and_a_stop_abandons_one() {
    // The real clock: HeartbeatSeconds runs in wall time, as in AWS.
    let s = Setup::new(1, true).await;
    let flows = s.workflows();
    let StartOutcome::Started(id) = flows
        .start(InstanceKind::Migrate, "hb-1", json!({}))
        .await
        .unwrap()
    else {
        panic!("started");
    };
    let dead = s.task().await;
    // The worker "dies": no heartbeat. The Task fails States.HeartbeatTimeout.
    let info = s.ended(&id).await;
    assert_eq!(info.status, ExecutionStatus::Failed, "{info:?}");
    assert_eq!(info.error.as_deref(), Some("States.HeartbeatTimeout"));
    let e = s
        .client
        .send_task_success()
        .task_token(&dead.token)
        .output("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("TaskTimedOut"));

    let StartOutcome::Started(id) = flows
        .start(InstanceKind::Migrate, "stop-1", json!({}))
        .await
        .unwrap()
    else {
        panic!("started");
    };
    let t = s.task().await;
    s.activities().heartbeat(&t.token).await.unwrap();
    flows
        .stop(&id, "Operator", "stopped by hand")
        .await
        .unwrap();
    let info = flows.describe(&id).await.unwrap();
    assert_eq!(info.status, ExecutionStatus::Aborted);
    assert_eq!(info.error.as_deref(), Some("Operator"));
    // Its worker finds the task gone at its next heartbeat.
    assert!(matches!(
        s.activities().heartbeat(&t.token).await,
        Err(PortError::NotFound(_))
    ));
    let (_, types) = s.history(&id).await;
    assert_eq!(types, ["ExecutionStarted", "ExecutionAborted"]);
    // Stopping again changes nothing.
    flows.stop(&id, "Again", "x").await.unwrap();
    assert_eq!(
        flows.describe(&id).await.unwrap().error.as_deref(),
        Some("Operator")
    );
}

#[tokio::test]
async fn a_poll_whose_worker_hung_up_takes_no_task() {
    let s = Setup::new(10, false).await;
    let addr = s.endpoint.url().trim_start_matches("http://").to_owned();
    let body = json!({"activityArn": s.act(), "workerName": "dead"}).to_string();
    let mut dead = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: AWSStepFunctions.GetActivityTask\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    dead.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The worker dies with its poll under way.
    drop(dead);
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.workflows()
        .start(InstanceKind::Migrate, "after-hangup", json!({"n": 1}))
        .await
        .unwrap();
    // The next worker's poll gets the task, not the dead one's.
    let t = s.activities().poll(&s.act(), "alive").await.unwrap();
    assert_eq!(t.map(|t| t.input), Some(json!({"n": 1})));
}

/// Step Functions' side of the activities suite: each task an execution of a machine that
/// is that one activity task, its answer the execution's end, abandoned by a stop.
struct Executions {
    setup: Setup,
    next: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl a2a_testkit::activity_suite::TaskSource for Executions {
    fn activity(&self) -> String {
        self.setup.act()
    }

    async fn schedule(&self, input: Value) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match self
            .setup
            .workflows()
            .start(InstanceKind::Migrate, &format!("suite-{n}"), input)
            .await
            .unwrap()
        {
            StartOutcome::Started(id) => id,
            other => panic!("{other:?}"),
        }
    }

    async fn answer(
        &self,
        id: &str,
        within: Duration,
    ) -> Option<a2a_testkit::activity_suite::Answer> {
        let end = std::time::Instant::now() + within;
        loop {
            let info = self.setup.workflows().describe(id).await.unwrap();
            match info.status {
                ExecutionStatus::Running if std::time::Instant::now() < end => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                ExecutionStatus::Running => return None,
                ExecutionStatus::Succeeded => return Some(Ok(info.output.unwrap_or(Value::Null))),
                _ => {
                    return Some(Err((
                        info.error.unwrap_or_default(),
                        info.cause.unwrap_or_default(),
                    )));
                }
            }
        }
    }

    async fn abandon(&self, id: &str) {
        self.setup
            .workflows()
            .stop(id, "Suite", "abandoned")
            .await
            .unwrap();
    }
}

async fn over_the_endpoint() -> Option<a2a_testkit::activity_suite::Bench> {
    let setup = Setup::new(0, false).await;
    Some(a2a_testkit::activity_suite::Bench {
        port: Arc::new(setup.activities()),
        source: Arc::new(Executions {
            setup,
            next: Default::default(),
        }),
    })
}

mod sfn_activities {
    a2a_testkit::conformance!(activities, super::over_the_endpoint());
}

//! The `Activities` conformance suite: the worker's side of activity tasks, the same for
//! the loopback of the local engine (`MemActivities`) and for Step Functions
//! (`SfnActivities`, against the stack rehearsal's endpoint). The port has no call to make
//! a task (the engine makes them), so each adapter comes with a [`TaskSource`] that does,
//! as its engine would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use a2a_core::{Activities, PortError};
use async_trait::async_trait;
use serde_json::{Value, json};

/// How a task was answered: its output, or its error name and cause.
pub type Answer = Result<Value, (String, String)>;

/// Hands tasks to the activity under test, as the engine does, and learns their answers.
#[async_trait]
pub trait TaskSource: Send + Sync {
    /// The activity's ARN.
    fn activity(&self) -> String;
    /// Schedules a task with `input`, and returns an id for [`answer`](Self::answer) and
    /// [`abandon`](Self::abandon).
    async fn schedule(&self, input: Value) -> String;
    /// The task's answer, waiting at most `within`.
    async fn answer(&self, id: &str, within: Duration) -> Option<Answer>;
    /// Gives the task up, as a timeout or a stopped execution does.
    async fn abandon(&self, id: &str);
}

/// An adapter under test and its task source. The adapter's poll must wait at most a
/// second or so when there is no task.
#[derive(Clone)]
pub struct Bench {
    /// The port under test.
    pub port: Arc<dyn Activities>,
    /// What makes its tasks.
    pub source: Arc<dyn TaskSource>,
}

/// Polls until a task comes, for at most ten seconds.
async fn task(b: &Bench) -> a2a_core::ActivityTask {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Some(t) = b.port.poll(&b.source.activity(), "suite").await.unwrap() {
            return t;
        }
    }
    panic!("no task reached the poller");
}

/// A poll with nothing scheduled ends empty.
pub async fn an_empty_poll_is_none(b: Bench) {
    assert_eq!(
        b.port.poll(&b.source.activity(), "suite").await.unwrap(),
        None
    );
}

/// A scheduled task reaches a poller with its input; heartbeats are taken; its success
/// comes back as the output; the spent token is then `NotFound`, to every call.
pub async fn a_task_reaches_its_poller_and_its_success_comes_back(b: Bench) {
    let id = b.source.schedule(json!({"school_code": "08000011"})).await;
    let t = task(&b).await;
    assert_eq!(t.input, json!({"school_code": "08000011"}));
    b.port.heartbeat(&t.token).await.unwrap();
    b.port.heartbeat(&t.token).await.unwrap();
    b.port
        .succeed(&t.token, &json!({"rows": 42}))
        .await
        .unwrap();
    let answer = b.source.answer(&id, Duration::from_secs(10)).await;
    assert_eq!(answer, Some(Ok(json!({"rows": 42}))));
    for r in [
        b.port.heartbeat(&t.token).await,
        b.port.succeed(&t.token, &json!({})).await,
        b.port.fail(&t.token, "A2A.Transient", "again").await,
    ] {
        assert!(matches!(r, Err(PortError::NotFound(_))), "{r:?}");
    }
}

/// A failure comes back with its error name and cause, as the Retry and Catch match them.
pub async fn a_failure_comes_back_with_its_name_and_cause(b: Bench) {
    let id = b.source.schedule(json!({"n": 2})).await;
    let t = task(&b).await;
    b.port
        .fail(&t.token, "A2A.Permanent.Input", "no such school: 08000099")
        .await
        .unwrap();
    let answer = b.source.answer(&id, Duration::from_secs(10)).await;
    assert_eq!(
        answer,
        Some(Err((
            "A2A.Permanent.Input".to_owned(),
            "no such school: 08000099".to_owned()
        )))
    );
}

/// Each task goes to one poller only: two tasks, two polls, two different tokens, each
/// answered on its own.
pub async fn each_task_goes_to_one_poller(b: Bench) {
    let first = b.source.schedule(json!({"n": 1})).await;
    let second = b.source.schedule(json!({"n": 2})).await;
    let (x, y) = (task(&b).await, task(&b).await);
    assert_ne!(x.token, y.token);
    let mut inputs = [x.input["n"].as_u64(), y.input["n"].as_u64()];
    inputs.sort();
    assert_eq!(inputs, [Some(1), Some(2)]);
    for t in [&x, &y] {
        b.port
            .succeed(&t.token, &json!({"was": t.input}))
            .await
            .unwrap();
    }
    for (id, n) in [(first, 1), (second, 2)] {
        let answer = b.source.answer(&id, Duration::from_secs(10)).await;
        assert_eq!(answer, Some(Ok(json!({"was": {"n": n}}))));
    }
}

/// A task its engine gave up on (timed out, execution stopped) is `NotFound` to the
/// worker that holds it, within a couple of seconds, so that the worker drops it.
pub async fn an_abandoned_task_is_not_found_by_its_worker(b: Bench) {
    let id = b.source.schedule(json!({"n": 3})).await;
    let t = task(&b).await;
    b.port.heartbeat(&t.token).await.unwrap();
    b.source.abandon(&id).await;
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        match b.port.heartbeat(&t.token).await {
            Err(PortError::NotFound(_)) => break,
            r => assert!(
                Instant::now() < end,
                "still wanted after it was abandoned: {r:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(
        b.port.succeed(&t.token, &json!({})).await,
        Err(PortError::NotFound(_))
    ));
}

/// A token that was never handed out is `NotFound`, never another error.
pub async fn an_unknown_token_is_not_found(b: Bench) {
    for r in [
        b.port.heartbeat("never-handed-out").await,
        b.port.succeed("never-handed-out", &json!({})).await,
        b.port.fail("never-handed-out", "X", "y").await,
    ] {
        assert!(matches!(r, Err(PortError::NotFound(_))), "{r:?}");
    }
}

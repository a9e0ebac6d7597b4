//! The worker loop: the source steps served as activity tasks, written once against the
//! [`Activities`] port. `a2a worker` runs it against Step Functions on premises, next to
//! the sources; the local engine runs it against its in-process loopback
//! (`a2a_local::MemActivities`), so both take the same path.
//!
//! Each served activity has a poller. A poller takes a slot before it polls, and the task
//! it gets keeps the slot, so at most `max_tasks` tasks run (and polls wait) at once. A
//! running step is heartbeated every `heartbeat` until it ends; its result is sent as the
//! task's success, its [`StepError`] as a failure named as the Lambdas name theirs
//! (`A2A.Transient`, `A2A.Permanent…`). A task that Step Functions no longer wants (its
//! heartbeat is `NotFound`) is dropped. On shutdown no new poll starts; a task that a poll
//! under way still brings is failed `A2A.Transient` at once, and running steps get
//! `grace` to finish, after which they are failed `A2A.Transient` too: the state
//! machine's Retry runs them again, on this worker's successor, from the stage.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use a2a_core::{Activities, ActivityTask, PortError};
use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use crate::table::{Side, Step, StepFuture, step};
use crate::{StepContext, StepError};

/// What runs a step: its name and input to its result. The worker's is [`crate::call`]
/// over a [`StepContext`] ([`runner`]); tests give their own.
pub type Runner = Arc<dyn Fn(&'static str, Value) -> StepFuture<'static> + Send + Sync>;

/// [`crate::call`] over `ctx`, as a [`Runner`].
pub fn runner(ctx: StepContext) -> Runner {
    Arc::new(move |name, input| {
        let ctx = ctx.clone();
        Box::pin(async move { crate::call(&ctx, name, input).await })
    })
}

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The most tasks at once (polls waiting for a task included).
    pub max_tasks: usize,
    /// How often a running step is heartbeated: well inside its `HeartbeatSeconds`.
    pub heartbeat: Duration,
    /// How long running steps may go on after shutdown, before they are failed as
    /// transient.
    pub grace: Duration,
    /// The worker's name in Step Functions' history (host and process).
    pub name: String,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            max_tasks: 8,
            heartbeat: Duration::from_secs(20),
            grace: Duration::from_secs(60),
            name: "a2a-worker".into(),
        }
    }
}

/// What a worker did, counted by outcome.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Tasks answered with the step's result.
    pub succeeded: AtomicU64,
    /// Tasks answered with the step's error.
    pub failed: AtomicU64,
    /// Tasks failed `A2A.Transient` because the worker stopped.
    pub interrupted: AtomicU64,
    /// Tasks dropped because Step Functions no longer wanted them.
    pub abandoned: AtomicU64,
}

impl WorkerReport {
    /// The four counts: succeeded, failed, interrupted, abandoned.
    pub fn counts(&self) -> [u64; 4] {
        [
            &self.succeeded,
            &self.failed,
            &self.interrupted,
            &self.abandoned,
        ]
        .map(|c| c.load(Ordering::SeqCst))
    }
}

/// The step an activity serves: the one named by the last `-`-separated part of the
/// activity's name (`arn:…:activity:a2a-prod-Freeze` → `Freeze`), which must be a
/// source-side step. The error says which ARN and why.
pub fn step_of_activity(arn: &str) -> Result<&'static Step, String> {
    let name = arn.rsplit(':').next().unwrap_or(arn);
    let last = name.rsplit('-').next().unwrap_or(name);
    let s = step(last).ok_or_else(|| {
        format!(
            "activity {arn}: its name must end in a step's name (-Freeze, -SyncFiles, …), \
             and {last:?} is none"
        )
    })?;
    if s.side != Side::Source {
        return Err(format!(
            "activity {arn}: step {} is a target-side step, run as a Lambda, not by the worker",
            s.name
        ));
    }
    Ok(s)
}

/// Serves `activities` (ARN and step) with `run` until `shutdown` resolves, then stops as
/// the module says. Returns when every task has been answered or dropped.
pub async fn serve(
    port: Arc<dyn Activities>,
    activities: Vec<(String, &'static Step)>,
    run: Runner,
    options: WorkerOptions,
    shutdown: impl Future<Output = ()>,
) -> Arc<WorkerReport> {
    let report = Arc::new(WorkerReport::default());
    let slots = Arc::new(Semaphore::new(options.max_tasks.max(1)));
    let (stop_tx, stop) = watch::channel(false);
    let mut pollers = tokio::task::JoinSet::new();
    for (arn, step) in activities {
        pollers.spawn(poller(
            Shared {
                port: port.clone(),
                run: run.clone(),
                options: options.clone(),
                report: report.clone(),
                stop: stop.clone(),
            },
            arn,
            step.name,
            slots.clone(),
        ));
    }
    shutdown.await;
    tracing::info!(
        "worker stopping: no new polls; running steps get {:?}",
        options.grace
    );
    let _ = stop_tx.send(true);
    while pollers.join_next().await.is_some() {}
    // Every slot back: every task answered or dropped.
    let _ = slots.acquire_many(options.max_tasks.max(1) as u32).await;
    report
}

/// What every poller and task shares.
#[derive(Clone)]
struct Shared {
    port: Arc<dyn Activities>,
    run: Runner,
    options: WorkerOptions,
    report: Arc<WorkerReport>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Polls `arn` for tasks of `step` while the worker runs; each task runs in its own slot.
async fn poller(shared: Shared, arn: String, step: &'static str, slots: Arc<Semaphore>) {
    let mut stop = shared.stop.clone();
    let mut failures = 0u32;
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => return },
            _ = stopped(&mut stop) => return,
        };
        if shared.stopping() {
            return;
        }
        // A poll under way is not cut: Step Functions may already have handed it a task.
        let task = match shared.port.poll(&arn, &shared.options.name).await {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                failures += 1;
                let wait = Duration::from_secs(1 << failures.min(5));
                tracing::warn!(activity = %arn, "polling failed ({e}); again in {wait:?}");
                drop(slot);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stopped(&mut stop) => return,
                }
            }
        };
        failures = 0;
        let shared = shared.clone();
        tokio::spawn(async move {
            run_task(&shared, step, task).await;
            drop(slot);
        });
    }
}

/// Runs one task to its answer.
async fn run_task(shared: &Shared, step: &'static str, task: ActivityTask) {
    let ActivityTask { token, input } = task;
    let port = shared.port.as_ref();
    if shared.stopping() {
        interrupt(shared, step, &token).await;
        return;
    }
    tracing::info!(step, "activity task started");
    // Its own task, so that heartbeats go on whatever the step does to its thread.
    let mut work = tokio::spawn((shared.run)(step, input));
    let mut beat = tokio::time::interval(shared.options.heartbeat);
    beat.tick().await;
    let mut stop = shared.stop.clone();
    let mut deadline: Option<tokio::time::Instant> = None;
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = beat.tick() => match port.heartbeat(&token).await {
                Ok(()) => {}
                Err(PortError::NotFound(m)) => {
                    tracing::warn!(step, "task dropped: {m}");
                    work.abort();
                    shared.report.abandoned.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Err(e) => tracing::warn!(step, "heartbeat failed: {e}"),
            },
            _ = stopped(&mut stop), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + shared.options.grace);
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                work.abort();
                interrupt(shared, step, &token).await;
                return;
            }
        }
    };
    let answered = match result {
        Ok(Ok(output)) => {
            shared.report.succeeded.fetch_add(1, Ordering::SeqCst);
            answer(port, &token, Ok(&output)).await
        }
        Ok(Err(e)) => {
            shared.report.failed.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(step, error = e.name(), "step failed: {e}");
            answer(port, &token, Err(&e)).await
        }
        Err(join) => {
            // A panic is a bug; it is not worth a retry.
            shared.report.failed.fetch_add(1, Ordering::SeqCst);
            let e = StepError::Permanent(format!("step {step} stopped abnormally: {join}"));
            answer(port, &token, Err(&e)).await
        }
    };
    if let Err(e) = answered {
        tracing::warn!(
            step,
            "the answer was not taken ({e}); the task times out and is retried"
        );
    }
}

/// Resolves once the worker stops (the guard `wait_for` returns is not held across awaits).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Fails the task as transient: the worker stops, the Retry runs it again elsewhere.
async fn interrupt(shared: &Shared, step: &'static str, token: &str) {
    shared.report.interrupted.fetch_add(1, Ordering::SeqCst);
    let e = StepError::Transient(format!(
        "the worker {} stopped before step {step} ended; it is run again",
        shared.options.name
    ));
    if let Err(e) = answer(shared.port.as_ref(), token, Err(&e)).await {
        tracing::warn!(step, "the interruption was not taken ({e})");
    }
}

/// Sends a task's answer, trying again briefly while the service cannot be reached.
async fn answer(
    port: &dyn Activities,
    token: &str,
    result: Result<&Value, &StepError>,
) -> Result<(), PortError> {
    let mut tries = 0;
    loop {
        let sent = match result {
            Ok(v) => port.succeed(token, v).await,
            Err(e) => port.fail(token, e.name(), &e.to_string()).await,
        };
        match sent {
            Err(PortError::Unavailable(_)) if tries < 3 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(500 << tries)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TRANSIENT;
    use a2a_local::MemActivities;
    use serde_json::json;
    use std::sync::atomic::AtomicUsize;

    fn arn(name: &str) -> String {
        format!("arn:aws:states:eu-west-1:000000000000:activity:a2a-test-{name}")
    }

    fn served(names: &[&str]) -> Vec<(String, &'static Step)> {
        names
            .iter()
            .map(|n| (arn(n), step_of_activity(&arn(n)).unwrap()))
            .collect()
    }

    fn options(max_tasks: usize, grace_ms: u64) -> WorkerOptions {
        WorkerOptions {
            max_tasks,
            heartbeat: Duration::from_millis(20),
            grace: Duration::from_millis(grace_ms),
            name: "test".into(),
        }
    }

    /// A runner whose steps sleep `ms` of their input, or fail as their input says, and
    /// which counts the most steps at once.
    fn sleepy(peak: Arc<AtomicUsize>) -> Runner {
        let now = Arc::new(AtomicUsize::new(0));
        Arc::new(move |name, input: Value| {
            let (now, peak) = (now.clone(), peak.clone());
            Box::pin(async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(input["ms"].as_u64().unwrap_or(0))).await;
                now.fetch_sub(1, Ordering::SeqCst);
                match input["fail"].as_str() {
                    Some("transient") => Err(StepError::Transient("network".into())),
                    Some("input") => Err(StepError::Input("no such school".into())),
                    _ => Ok(json!({"step": name, "n": input["n"]})),
                }
            })
        })
    }

    #[test]
    fn activities_are_found_by_their_names_last_part_and_only_source_steps() {
        assert_eq!(
            step_of_activity(&arn("SyncFiles")).unwrap().name,
            "SyncFiles"
        );
        assert_eq!(
            step_of_activity("arn:aws:states:eu-west-1:1:activity:Freeze")
                .unwrap()
                .name,
            "Freeze"
        );
        let e = step_of_activity(&arn("ImportDatabase")).unwrap_err();
        assert!(e.contains("target-side"), "{e}");
        let e = step_of_activity(&arn("Nothing")).unwrap_err();
        assert!(e.contains("\"Nothing\""), "{e}");
    }

    #[tokio::test]
    async fn tasks_run_at_most_max_at_once_heartbeated_and_answered_with_their_errors_names() {
        let acts = Arc::new(MemActivities::new(Duration::from_millis(30)));
        let peak = Arc::new(AtomicUsize::new(0));
        let beats = Arc::new(AtomicUsize::new(0));
        let mut answers = Vec::new();
        for n in 0..8 {
            let b = beats.clone();
            answers.push(tokio::spawn(acts.schedule(
                &arn("ExportDatabase"),
                json!({"n": n, "ms": 120}),
                move || {
                    b.fetch_add(1, Ordering::SeqCst);
                },
            )));
        }
        let transient = acts.schedule(&arn("Freeze"), json!({"fail": "transient"}), || {});
        let input = acts.schedule(&arn("Freeze"), json!({"fail": "input"}), || {});
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(serve(
            acts.clone(),
            served(&["ExportDatabase", "Freeze"]),
            sleepy(peak.clone()),
            options(3, 1000),
            async move {
                let _ = done_rx.await;
            },
        ));
        for (n, a) in answers.into_iter().enumerate() {
            let out = a.await.unwrap().unwrap();
            assert_eq!(out, json!({"step": "ExportDatabase", "n": n}));
        }
        let e = transient.await.unwrap_err();
        assert_eq!(
            (e.error.as_str(), e.message.as_str()),
            (TRANSIENT, "network")
        );
        let e = input.await.unwrap_err();
        assert_eq!(e.error, "A2A.Permanent.Input");
        done_tx.send(()).unwrap();
        let report = worker.await.unwrap();
        assert_eq!(report.counts(), [8, 2, 0, 0]);
        assert_eq!(peak.load(Ordering::SeqCst), 3, "three slots, all used");
        // 120 ms each, a heartbeat every 20 ms: several per step.
        assert!(beats.load(Ordering::SeqCst) >= 8 * 3, "{beats:?}");
        assert_eq!(acts.unanswered(), 0);
    }

    #[tokio::test]
    async fn on_shutdown_running_steps_finish_within_grace_or_are_failed_transient() {
        let acts = Arc::new(MemActivities::new(Duration::from_millis(30)));
        let quick = acts.schedule(&arn("SyncFiles"), json!({"ms": 100}), || {});
        let slow = acts.schedule(&arn("SyncFiles"), json!({"ms": 60_000}), || {});
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(serve(
            acts.clone(),
            served(&["SyncFiles"]),
            sleepy(Arc::new(AtomicUsize::new(0))),
            options(2, 300),
            async move {
                let _ = stop_rx.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let began = std::time::Instant::now();
        stop_tx.send(()).unwrap();
        assert!(quick.await.is_ok(), "finished within the grace");
        let e = slow.await.unwrap_err();
        assert_eq!(e.error, TRANSIENT, "{e}");
        let report = worker.await.unwrap();
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
        assert_eq!(report.counts(), [1, 0, 1, 0]);
        // Stopped: a task scheduled now is not taken.
        let late = acts.schedule(&arn("SyncFiles"), json!({}), || {});
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(acts.unanswered(), 1);
        drop(late);
    }

    #[tokio::test]
    async fn a_task_no_longer_wanted_is_dropped_and_its_step_stopped() {
        let acts = Arc::new(MemActivities::new(Duration::from_millis(30)));
        let peak = Arc::new(AtomicUsize::new(0));
        let gone = acts.schedule(&arn("RestoreSource"), json!({"ms": 60_000}), || {});
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(serve(
            acts.clone(),
            served(&["RestoreSource"]),
            sleepy(peak.clone()),
            options(1, 10_000),
            async move {
                let _ = stop_rx.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(peak.load(Ordering::SeqCst), 1, "running");
        // The state machine gives up on it (a timeout): the next heartbeat finds out.
        drop(gone);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Its slot is free again: the one slot serves the next task.
        let next = acts.schedule(&arn("RestoreSource"), json!({"n": 2}), || {});
        assert_eq!(next.await.unwrap()["n"], 2);
        stop_tx.send(()).unwrap();
        let report = worker.await.unwrap();
        assert_eq!(report.counts(), [1, 0, 0, 1]);
    }
}

//! The `Workflows` port on one machine: the real `statemachines/*.asl.json` on the local ASL
//! engine. Each Lambda task `${Name}` is handed to a callback with its name and input (the
//! callers make it the in-process step of that name, `a2a_steps::call`); each activity
//! task `${Name}` is scheduled on a [`MemActivities`], which the callers serve with the
//! worker loop of the on-premises worker (`a2a_steps::worker`). This adapter knows no step.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::MemActivities;
use a2a_asl::{Clock, Execution, ExecutionOptions, StateMachine, VirtualClock};
pub use a2a_asl::{FnHandler, Handlers, TaskContext, TaskError};
use a2a_core::{ExecutionInfo, ExecutionStatus, InstanceKind, PortError, StartOutcome, Workflows};
use async_trait::async_trait;
use serde_json::Value;

/// The Lambda ARN a task's `${Name}` becomes locally; only the function name matters to
/// the resolver.
fn arn(name: &str) -> String {
    format!("arn:aws:lambda:eu-west-1:000000000000:function:{name}")
}

/// The activity ARN a task's `${Name}` becomes locally. The worker finds the step by the
/// activity's name, as it does in AWS (`<stack>-<Name>` there).
pub fn activity_arn(name: &str) -> String {
    format!("arn:aws:states:eu-west-1:000000000000:activity:{name}")
}

/// The `${Name}` substitutions of the state machines: each Lambda task's name to its local
/// function ARN. With the step table's names (`a2a_steps::names()`), those of both
/// workflows.
pub fn substitutions(tasks: &[&str]) -> HashMap<String, String> {
    tasks.iter().map(|n| ((*n).to_owned(), arn(n))).collect()
}

/// [`substitutions`] of the Lambda tasks `lambdas`, and each of `activities` to its local
/// activity ARN ([`activity_arn`]).
pub fn all_substitutions(lambdas: &[&str], activities: &[&str]) -> HashMap<String, String> {
    let mut subs = substitutions(lambdas);
    subs.extend(
        activities
            .iter()
            .map(|n| ((*n).to_owned(), activity_arn(n))),
    );
    subs
}

/// Runs executions of both workflows in this process, on the local ASL engine.
#[derive(Clone)]
pub struct AslWorkflows {
    machines: Arc<HashMap<InstanceKind, StateMachine>>,
    resolver: Arc<Handlers>,
    clock: Arc<dyn Clock>,
    runs: Arc<Mutex<HashMap<String, ExecutionInfo>>>,
    /// The in-process run of each started execution, for `stop` to end it.
    tasks: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
}

impl AslWorkflows {
    /// Loads `<dir>/migrate-instance.asl.json` and `<dir>/provision-instance.asl.json`,
    /// with each of `tasks` substituted for its `${Name}` (a placeholder that is none of
    /// them fails the load) and run by `task(name, input)`. Time is virtual: retry back-off
    /// and waits cost no wall time, the work itself does.
    pub fn load<F, Fut>(dir: &Path, tasks: &[&'static str], task: F) -> Result<Self, PortError>
    where
        F: Fn(&'static str, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, TaskError>> + Send + 'static,
    {
        Self::load_with_activities(dir, tasks, &[], None, task)
    }

    /// [`load`](Self::load), with each of `activities` substituted by its local activity
    /// ARN and scheduled on `loopback` (whose worker's heartbeats reach the Task state's
    /// `HeartbeatSeconds`). Without a loopback an activity task finds no handler.
    pub fn load_with_activities<F, Fut>(
        dir: &Path,
        tasks: &[&'static str],
        activities: &[&'static str],
        loopback: Option<Arc<MemActivities>>,
        task: F,
    ) -> Result<Self, PortError>
    where
        F: Fn(&'static str, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, TaskError>> + Send + 'static,
    {
        let subs = all_substitutions(tasks, activities);
        let files: Vec<(InstanceKind, PathBuf, HashMap<String, String>)> = InstanceKind::ALL
            .into_iter()
            .map(|kind| {
                let path = dir.join(format!("{}.asl.json", kind.workflow()));
                (kind, path, subs.clone())
            })
            .collect();
        let task = Arc::new(task);
        let mut handlers = Handlers::new();
        for &name in tasks {
            let task = task.clone();
            handlers = handlers.lambda(
                name,
                FnHandler(move |input: Value, _t: TaskContext| task(name, input)),
            );
        }
        if let Some(loopback) = loopback {
            for &name in activities {
                let arn = activity_arn(name);
                let (loopback, at) = (loopback.clone(), arn.clone());
                handlers = handlers.resource(
                    &arn,
                    FnHandler(move |input: Value, t: TaskContext| {
                        loopback.schedule(&at, input, move || t.heartbeat())
                    }),
                );
            }
        }
        Self::from_files(&files, handlers)
    }

    /// Both workflows from their definition files (each kind's, with its substitutions:
    /// a `${Name}` that is none of them fails the load) and every task resolved by
    /// `handlers`: the stack rehearsal's engine, whose substitutions are the template's
    /// ARNs.
    pub fn from_files(
        files: &[(InstanceKind, PathBuf, HashMap<String, String>)],
        handlers: Handlers,
    ) -> Result<Self, PortError> {
        let mut machines = HashMap::new();
        for (kind, path, subs) in files {
            let text = std::fs::read_to_string(path)
                .map_err(|e| PortError::Invalid(format!("{}: {e}", path.display())))?;
            let sm = StateMachine::load(&text, subs)
                .map_err(|e| PortError::Invalid(format!("{}: {e}", path.display())))?;
            machines.insert(*kind, sm);
        }
        if let Some(kind) = InstanceKind::ALL
            .into_iter()
            .find(|k| !machines.contains_key(k))
        {
            return Err(PortError::Invalid(format!(
                "no state machine for {}",
                kind.workflow()
            )));
        }
        Ok(Self {
            machines: Arc::new(machines),
            resolver: Arc::new(handlers),
            clock: Arc::new(VirtualClock::new()),
            runs: Arc::new(Mutex::new(HashMap::new())),
            tasks: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The same engine on `clock`: the real clock makes every `TimeoutSeconds`,
    /// `HeartbeatSeconds`, wait and back-off cost wall time (a worker that dies is noticed
    /// when its heartbeat runs out), the virtual one (the default) skips them.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Runs one execution of `kind` to its end and returns the engine's outcome, with its
    /// history events when `history` is set (what `GetExecutionHistory` serves). `arn`:
    /// the state machine's ARN where a service endpoint serves it (`None` here).
    pub async fn execute(
        &self,
        kind: InstanceKind,
        name: &str,
        input: Value,
        history: bool,
        arn: Option<String>,
    ) -> a2a_asl::Outcome {
        Execution::run(
            &self.machines[&kind],
            input,
            ExecutionOptions {
                name: Some(name.to_owned()),
                state_machine_name: kind.workflow().to_owned(),
                clock: self.clock.clone(),
                resolver: self.resolver.clone(),
                mock: None,
                history,
                arn,
            },
        )
        .await
    }

    /// Runs one execution to its end and returns what `describe` would.
    pub async fn run(&self, kind: InstanceKind, name: &str, input: Value) -> ExecutionInfo {
        let started_at = a2a_core::clock::now();
        let out = self.execute(kind, name, input, false, None).await;
        ExecutionInfo {
            id: name.to_owned(),
            status: match out.status {
                a2a_asl::Status::Succeeded => ExecutionStatus::Succeeded,
                a2a_asl::Status::Failed => ExecutionStatus::Failed,
                a2a_asl::Status::TimedOut => ExecutionStatus::TimedOut,
            },
            started_at,
            stopped_at: Some(a2a_core::clock::now()),
            output: out.output,
            error: out.error,
            cause: out.cause,
        }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecutionInfo>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Workflows for AslWorkflows {
    async fn start(
        &self,
        kind: InstanceKind,
        name: &str,
        input: Value,
    ) -> Result<StartOutcome, PortError> {
        {
            let mut runs = self.runs();
            if runs.contains_key(name) {
                return Ok(StartOutcome::AlreadyExists(name.to_owned()));
            }
            runs.insert(
                name.to_owned(),
                ExecutionInfo {
                    id: name.to_owned(),
                    status: ExecutionStatus::Running,
                    started_at: a2a_core::clock::now(),
                    stopped_at: None,
                    output: None,
                    error: None,
                    cause: None,
                },
            );
        }
        let me = self.clone();
        let id = name.to_owned();
        let task = tokio::spawn(async move {
            let info = me.run(kind, &id, input).await;
            let mut runs = me.runs();
            // A stop recorded meanwhile stands.
            if runs
                .get(&id)
                .is_some_and(|r| r.status == ExecutionStatus::Running)
            {
                let started_at = runs[&id].started_at;
                runs.insert(id.clone(), ExecutionInfo { started_at, ..info });
            }
            drop(runs);
            // Ended: nothing left to stop.
            me.tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), task.abort_handle());
        Ok(StartOutcome::Started(name.to_owned()))
    }

    /// `id` is a name, or an ARN as a step records it from `$$.Execution.Id`.
    async fn describe(&self, id: &str) -> Result<ExecutionInfo, PortError> {
        self.runs()
            .get(a2a_core::execution_name_of(id))
            .cloned()
            .ok_or_else(|| PortError::NotFound(format!("execution {id}")))
    }

    /// Marks the execution aborted and ends its in-process run where it waits now, as
    /// Step Functions runs no further state of a stopped execution: no Catch, no rollback
    /// (reconciliation starts that). A step cut short there is one a rerun finishes.
    async fn stop(&self, id: &str, error: &str, cause: &str) -> Result<(), PortError> {
        let id = a2a_core::execution_name_of(id);
        let mut runs = self.runs();
        let r = runs
            .get_mut(id)
            .ok_or_else(|| PortError::NotFound(format!("execution {id}")))?;
        if r.status == ExecutionStatus::Running {
            r.status = ExecutionStatus::Aborted;
            r.stopped_at = Some(a2a_core::clock::now());
            r.error = Some(error.to_owned());
            r.cause = Some(cause.to_owned());
            let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(task) = tasks.get(id) {
                task.abort();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A folder with both workflows: provision runs `${Echo}`, migrate runs `${Fail}`.
    fn machines() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (kind, task) in [
            (InstanceKind::Provision, "Echo"),
            (InstanceKind::Migrate, "Fail"),
        ] {
            let asl = json!({"StartAt": "T", "States": {"T": {
                "Type": "Task", "Resource": format!("${{{task}}}"), "End": true}}});
            std::fs::write(
                dir.path().join(format!("{}.asl.json", kind.workflow())),
                asl.to_string(),
            )
            .unwrap();
        }
        dir
    }

    fn flows(dir: &Path, tasks: &[&'static str]) -> Result<AslWorkflows, PortError> {
        AslWorkflows::load(dir, tasks, |name, input: Value| async move {
            match name {
                "Echo" => Ok(json!({"task": name, "input": input})),
                _ => Err(TaskError::new("A2A.Permanent", format!("{name} failed"))),
            }
        })
    }

    #[tokio::test]
    async fn each_task_goes_to_the_callback_by_name() {
        let dir = machines();
        let flows = flows(dir.path(), &["Echo", "Fail"]).unwrap();
        let ok = flows
            .run(
                InstanceKind::Provision,
                "p-1",
                json!({"school_code": "08000011"}),
            )
            .await;
        assert_eq!(ok.status, ExecutionStatus::Succeeded);
        assert_eq!(
            ok.output,
            Some(json!({"task": "Echo", "input": {"school_code": "08000011"}}))
        );
        let failed = flows.run(InstanceKind::Migrate, "m-1", json!({})).await;
        assert_eq!(failed.status, ExecutionStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some("A2A.Permanent"));
        // As from Lambda: the cause is the JSON of the error, message inside.
        let cause: Value = serde_json::from_str(failed.cause.as_deref().unwrap()).unwrap();
        assert_eq!(cause["errorMessage"], "Fail failed");
    }

    #[test]
    fn a_placeholder_that_is_no_task_fails_the_load() {
        let dir = machines();
        let e = flows(dir.path(), &["Echo"])
            .err()
            .expect("Fail is not a task");
        assert!(e.to_string().contains("migrate-instance.asl.json"), "{e}");
    }

    #[tokio::test]
    async fn an_activity_task_goes_through_the_loopback_to_its_worker() {
        let dir = tempfile::tempdir().unwrap();
        for kind in InstanceKind::ALL {
            let asl = json!({"StartAt": "T", "States": {"T": {
                "Type": "Task", "Resource": "${Act}", "TimeoutSeconds": 60,
                "HeartbeatSeconds": 10, "End": true}}});
            std::fs::write(
                dir.path().join(format!("{}.asl.json", kind.workflow())),
                asl.to_string(),
            )
            .unwrap();
        }
        let loopback = Arc::new(MemActivities::new(std::time::Duration::from_secs(5)));
        let flows = AslWorkflows::load_with_activities(
            dir.path(),
            &[],
            &["Act"],
            Some(loopback.clone()),
            |_, _| async { Err(TaskError::new("X", "no Lambda here")) },
        )
        .unwrap();
        let worker = {
            let loopback = loopback.clone();
            tokio::spawn(async move {
                use a2a_core::Activities as _;
                let t = loopback
                    .poll(&activity_arn("Act"), "test")
                    .await
                    .unwrap()
                    .expect("the execution's task");
                loopback.heartbeat(&t.token).await.unwrap();
                loopback
                    .succeed(&t.token, &json!({"served": t.input}))
                    .await
                    .unwrap();
            })
        };
        let out = flows
            .run(
                InstanceKind::Migrate,
                "m-1",
                json!({"school_code": "08000011"}),
            )
            .await;
        worker.await.unwrap();
        assert_eq!(out.status, ExecutionStatus::Succeeded, "{:?}", out.cause);
        assert_eq!(
            out.output,
            Some(json!({"served": {"school_code": "08000011"}}))
        );
    }
}

//! The `Workflows` port on one machine: the real `statemachines/*.asl.json` on the local ASL
//! engine, each `${Name}` resolved to the in-process step of that name.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use a2a_asl::{
    Clock, Execution, ExecutionOptions, FnHandler, Handlers, StateMachine, TaskContext, TaskError,
    VirtualClock,
};
use a2a_core::{ExecutionInfo, ExecutionStatus, InstanceKind, PortError, StartOutcome, Workflows};
use async_trait::async_trait;
use serde_json::Value;

use crate::{STEPS, StepContext};

/// The Lambda ARN a step's `${Name}` becomes locally; only the function name matters to
/// the resolver.
fn arn(name: &str) -> String {
    format!("arn:aws:lambda:eu-west-1:000000000000:function:{name}")
}

/// The `${Name}` substitutions of both state machines: every step's name to its ARN.
pub fn substitutions() -> HashMap<String, String> {
    STEPS
        .iter()
        .map(|s| (s.name.to_owned(), arn(s.name)))
        .collect()
}

/// Runs executions of both workflows in this process.
#[derive(Clone)]
pub struct LocalWorkflows {
    machines: Arc<HashMap<InstanceKind, StateMachine>>,
    resolver: Arc<Handlers>,
    clock: Arc<dyn Clock>,
    runs: Arc<Mutex<HashMap<String, ExecutionInfo>>>,
}

impl LocalWorkflows {
    /// Loads `<dir>/migrate-instance.asl.json` and `<dir>/provision-instance.asl.json`.
    /// Time is virtual: retry back-off and waits cost no wall time, the work itself does.
    pub fn load(ctx: StepContext, dir: &Path) -> Result<Self, PortError> {
        let subs = substitutions();
        let mut machines = HashMap::new();
        for kind in InstanceKind::ALL {
            let path = dir.join(format!("{}.asl.json", kind.workflow()));
            let text = std::fs::read_to_string(&path)
                .map_err(|e| PortError::Invalid(format!("{}: {e}", path.display())))?;
            let sm = StateMachine::load(&text, &subs)
                .map_err(|e| PortError::Invalid(format!("{}: {e}", path.display())))?;
            machines.insert(kind, sm);
        }
        let mut handlers = Handlers::new();
        for name in STEPS.iter().map(|s| s.name) {
            let ctx = ctx.clone();
            let name: &'static str = name;
            handlers = handlers.lambda(
                name,
                FnHandler(move |input: Value, _t: TaskContext| {
                    let ctx = ctx.clone();
                    async move {
                        crate::call(&ctx, name, input)
                            .await
                            .map_err(|e| TaskError::new(e.name(), e.to_string()))
                    }
                }),
            );
        }
        Ok(Self {
            machines: Arc::new(machines),
            resolver: Arc::new(handlers),
            clock: Arc::new(VirtualClock::new()),
            runs: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Runs one execution to its end and returns what `describe` would.
    pub async fn run(&self, kind: InstanceKind, name: &str, input: Value) -> ExecutionInfo {
        let started_at = a2a_core::clock::now();
        let sm = &self.machines[&kind];
        let out = Execution::run(
            sm,
            input,
            ExecutionOptions {
                name: Some(name.to_owned()),
                state_machine_name: kind.workflow().to_owned(),
                clock: self.clock.clone(),
                resolver: self.resolver.clone(),
                mock: None,
                history: false,
            },
        )
        .await;
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
impl Workflows for LocalWorkflows {
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
        tokio::spawn(async move {
            let info = me.run(kind, &id, input).await;
            let mut runs = me.runs();
            // A stop recorded meanwhile stands.
            if runs
                .get(&id)
                .is_some_and(|r| r.status == ExecutionStatus::Running)
            {
                let started_at = runs[&id].started_at;
                runs.insert(id, ExecutionInfo { started_at, ..info });
            }
        });
        Ok(StartOutcome::Started(name.to_owned()))
    }

    async fn describe(&self, id: &str) -> Result<ExecutionInfo, PortError> {
        self.runs()
            .get(id)
            .cloned()
            .ok_or_else(|| PortError::NotFound(format!("execution {id}")))
    }

    /// Marks the execution aborted. The in-process run is not interrupted mid-step: it
    /// finishes, and its result is then ignored.
    async fn stop(&self, id: &str, error: &str, cause: &str) -> Result<(), PortError> {
        let mut runs = self.runs();
        let r = runs
            .get_mut(id)
            .ok_or_else(|| PortError::NotFound(format!("execution {id}")))?;
        if r.status == ExecutionStatus::Running {
            r.status = ExecutionStatus::Aborted;
            r.stopped_at = Some(a2a_core::clock::now());
            r.error = Some(error.to_owned());
            r.cause = Some(cause.to_owned());
        }
        Ok(())
    }
}

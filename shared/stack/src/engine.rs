//! The executions and activity tasks behind the endpoint: Step Functions' API on the local
//! engine, one operation per method, each taking the request's JSON and returning the
//! response's JSON or AWS's error for it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use a2a_core::{Activities, InstanceKind, PortError};
use a2a_local::{AslWorkflows, MemActivities};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::{ACCOUNT, REGION};

/// An error as Step Functions answers it: `__type`, the message, and the HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) status: u16,
}

impl ApiError {
    pub(crate) fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: 400,
        }
    }
}

/// The ARNs of the two state machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineArns {
    /// `migrate-instance`.
    pub migrate: String,
    /// `provision-instance`.
    pub provision: String,
}

/// An execution's status as Step Functions names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::TimedOut => "TIMED_OUT",
            Self::Aborted => "ABORTED",
        }
    }
}

struct Exec {
    machine: String,
    name: String,
    input: String,
    status: Status,
    started: DateTime<Utc>,
    stopped: Option<DateTime<Utc>>,
    output: Option<String>,
    error: Option<String>,
    cause: Option<String>,
    /// The engine's events, once it has ended.
    history: Vec<Value>,
    abort: Option<tokio::task::AbortHandle>,
}

#[derive(Default)]
struct State {
    executions: HashMap<String, Exec>,
    /// Execution ARNs in the order they started.
    order: Vec<String>,
    /// Every task token handed out, so that a spent one is `TaskTimedOut` and one never
    /// handed out `TaskDoesNotExist`, as in AWS.
    issued: HashSet<String>,
    unnamed: u64,
}

/// Both state machines on the local engine, and its activities, as Step Functions serves
/// them. Execution names are unique per state machine, as in AWS: a second start under a
/// name is refused (`ExecutionAlreadyExists`) unless the first is running with the same
/// input, which answers with the same execution.
pub struct Engine {
    flows: AslWorkflows,
    activities: Arc<MemActivities>,
    /// Activity name → ARN.
    activity_arns: BTreeMap<String, String>,
    machines: MachineArns,
    /// When the engine was made: the machines' and activities' creation date.
    created: DateTime<Utc>,
    state: Mutex<State>,
}

/// Step Functions' limits on an execution name: 1 to 80 characters, none of these, no
/// white space or control character.
const NAME_FORBIDDEN: &str = "<>{}[]?*\"#%\\^|~`$&,;:/";

fn machine_arn(kind: InstanceKind) -> String {
    format!(
        "arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{}",
        kind.workflow()
    )
}

/// The resource type and name of a Step Functions ARN (`stateMachine`, `migrate-instance`),
/// or `InvalidArn`.
/// The ARN in `body`'s `field`, which must name a Step Functions resource of type `rtype`
/// (`stateMachine`, `execution`, `activity`).
fn arn_field<'a>(body: &'a Value, field: &str, rtype: &str) -> Result<&'a str, ApiError> {
    let arn = required(body, field)?;
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, "states", _, _, kind, name] if !name.is_empty() && *kind == rtype => Ok(arn),
        ["arn", _, "states", _, _, _, name] if !name.is_empty() => Err(ApiError::new(
            "InvalidArn",
            format!("Invalid Arn: {arn:?} is not an ARN of type {rtype}"),
        )),
        _ => Err(ApiError::new(
            "InvalidArn",
            format!("Invalid Arn: '{field}' {arn:?} is not a Step Functions ARN"),
        )),
    }
}

fn time(t: DateTime<Utc>) -> Value {
    json!(t.timestamp_millis() as f64 / 1000.0)
}

fn field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

fn required<'a>(body: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    field(body, key).filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError::new(
            "ValidationException",
            format!("1 validation error detected: Value null at '{key}' failed to satisfy constraint: Member must not be null"),
        )
    })
}

/// A listing's answer: the page of `items` from `nextToken` (an index, as this endpoint
/// writes it) under `field`, and the token of the next page when there is one.
fn page(
    items: Vec<Value>,
    body: &Value,
    max_default: usize,
    field_name: &str,
) -> Result<Value, ApiError> {
    let max = match body.get("maxResults").and_then(Value::as_u64) {
        None | Some(0) => max_default,
        Some(n) if n <= 1000 => n as usize,
        Some(n) => {
            return Err(ApiError::new(
                "ValidationException",
                format!("maxResults {n}: at most 1000"),
            ));
        }
    };
    let from = match field(body, "nextToken") {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| {
            ApiError::new(
                "InvalidToken",
                format!("nextToken {t:?} is not one this endpoint gave"),
            )
        })?,
    };
    let total = items.len();
    let taken: Vec<Value> = items.into_iter().skip(from).take(max).collect();
    let next = from + taken.len();
    let mut out = json!({ field_name: taken });
    if next < total {
        out["nextToken"] = json!(next.to_string());
    }
    Ok(out)
}

impl Engine {
    /// Serves `flows` (both workflows, each activity task scheduled on `activities`) with
    /// the activities `activity_names` (each under its local ARN,
    /// `a2a_local::workflows::activity_arn`).
    pub fn new(
        flows: AslWorkflows,
        activities: Arc<MemActivities>,
        activity_names: &[&str],
    ) -> Arc<Self> {
        Arc::new(Self {
            flows,
            activities,
            activity_arns: activity_names
                .iter()
                .map(|n| ((*n).to_owned(), a2a_local::workflows::activity_arn(n)))
                .collect(),
            machines: MachineArns {
                migrate: machine_arn(InstanceKind::Migrate),
                provision: machine_arn(InstanceKind::Provision),
            },
            created: a2a_core::clock::now(),
            state: Mutex::new(State::default()),
        })
    }

    /// Serves `flows` under the template's ARNs: `machines`, and the activities
    /// (name → ARN) whose tasks `flows` schedules on `activities`.
    pub fn with_arns(
        flows: AslWorkflows,
        activities: Arc<MemActivities>,
        machines: MachineArns,
        activity_arns: BTreeMap<String, String>,
    ) -> Arc<Self> {
        Arc::new(Self {
            flows,
            activities,
            activity_arns,
            machines,
            created: a2a_core::clock::now(),
            state: Mutex::new(State::default()),
        })
    }

    /// How many executions are running.
    pub fn running(&self) -> usize {
        self.state()
            .executions
            .values()
            .filter(|e| e.status == Status::Running)
            .count()
    }

    /// The state machines' ARNs.
    pub fn machines(&self) -> &MachineArns {
        &self.machines
    }

    /// The activities, name → ARN.
    pub fn activities(&self) -> &BTreeMap<String, String> {
        &self.activity_arns
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kind_of(&self, arn: &str) -> Option<InstanceKind> {
        if arn == self.machines.migrate {
            Some(InstanceKind::Migrate)
        } else if arn == self.machines.provision {
            Some(InstanceKind::Provision)
        } else {
            None
        }
    }

    /// The operation `op` with its request `body`.
    pub(crate) async fn call(self: &Arc<Self>, op: &str, body: &Value) -> Result<Value, ApiError> {
        match op {
            "StartExecution" => self.start_execution(body),
            "DescribeExecution" => self.describe_execution(body),
            "StopExecution" => self.stop_execution(body),
            "ListExecutions" => self.list_executions(body),
            "GetExecutionHistory" => self.get_execution_history(body),
            "ListStateMachines" => self.list_state_machines(body),
            "ListActivities" => self.list_activities(body),
            "GetActivityTask" => self.get_activity_task(body).await,
            "SendTaskHeartbeat" => self.send_task_heartbeat(body).await,
            "SendTaskSuccess" | "SendTaskFailure" => self.send_task_answer(op, body).await,
            other => Err(ApiError::new(
                "UnknownOperationException",
                format!("this endpoint does not serve {other:?}"),
            )),
        }
    }

    fn start_execution(self: &Arc<Self>, body: &Value) -> Result<Value, ApiError> {
        let machine = arn_field(body, "stateMachineArn", "stateMachine")?;
        let kind = self.kind_of(machine).ok_or_else(|| {
            ApiError::new(
                "StateMachineDoesNotExist",
                format!("State Machine Does Not Exist: '{machine}'"),
            )
        })?;
        let text = field(body, "input").unwrap_or("{}");
        let input: Value = serde_json::from_str(text).map_err(|e| {
            ApiError::new(
                "InvalidExecutionInput",
                format!("Invalid execution input: {e}"),
            )
        })?;
        let mut state = self.state();
        let name = match field(body, "name") {
            Some(n) => {
                let bad = n.is_empty()
                    || n.chars().count() > 80
                    || n.chars()
                        .any(|c| c.is_whitespace() || c.is_control() || NAME_FORBIDDEN.contains(c));
                if bad {
                    return Err(ApiError::new(
                        "InvalidName",
                        format!(
                            "Invalid Name: {n:?} (1 to 80 characters, none of {NAME_FORBIDDEN} or white space)"
                        ),
                    ));
                }
                n.to_owned()
            }
            None => {
                state.unnamed += 1;
                format!(
                    "{}-{:06}",
                    Utc::now().format("%Y%m%dT%H%M%S"),
                    state.unnamed
                )
            }
        };
        // The machine's ARN with `execution` for `stateMachine`, and the name after it.
        let arn = format!(
            "{}:{name}",
            machine.replacen(":stateMachine:", ":execution:", 1)
        );
        if let Some(e) = state.executions.get(&arn) {
            // AWS: the same name and input as a running execution is that execution.
            if e.status == Status::Running && e.input == text {
                return Ok(json!({"executionArn": arn, "startDate": time(e.started)}));
            }
            return Err(ApiError::new(
                "ExecutionAlreadyExists",
                format!("Execution Already Exists: '{arn}'"),
            ));
        }
        let started = a2a_core::clock::now();
        let me = self.clone();
        let (at, run_name, served_as) = (arn.clone(), name.clone(), machine.to_owned());
        let task = tokio::spawn(async move {
            let out = me
                .flows
                .execute(kind, &run_name, input, true, Some(served_as))
                .await;
            me.finish(&at, out);
        });
        state.order.push(arn.clone());
        state.executions.insert(
            arn.clone(),
            Exec {
                machine: machine.to_owned(),
                name,
                input: text.to_owned(),
                status: Status::Running,
                started,
                stopped: None,
                output: None,
                error: None,
                cause: None,
                history: Vec::new(),
                abort: Some(task.abort_handle()),
            },
        );
        tracing::info!(execution = %arn, "execution started");
        Ok(json!({"executionArn": arn, "startDate": time(started)}))
    }

    /// Records how an execution ended, unless it was stopped meanwhile.
    fn finish(&self, arn: &str, out: a2a_asl::Outcome) {
        let mut state = self.state();
        let Some(e) = state.executions.get_mut(arn) else {
            return;
        };
        if e.status != Status::Running {
            return;
        }
        e.status = match out.status {
            a2a_asl::Status::Succeeded => Status::Succeeded,
            a2a_asl::Status::Failed => Status::Failed,
            a2a_asl::Status::TimedOut => Status::TimedOut,
        };
        e.stopped = Some(a2a_core::clock::now());
        e.output = out.output.map(|v| v.to_string());
        e.error = out.error;
        e.cause = out.cause;
        e.abort = None;
        e.history = out
            .history
            .iter()
            .map(|ev| {
                let mut v = serde_json::to_value(ev).unwrap_or(Value::Null);
                // The SDK reads timestamps as epoch seconds.
                if let Some(o) = v.as_object_mut() {
                    o.insert("timestamp".into(), time(ev.timestamp));
                }
                v
            })
            .collect();
        tracing::info!(execution = %arn, status = e.status.as_str(), "execution ended");
    }

    fn execution<'a>(
        state: &'a mut State,
        body: &Value,
    ) -> Result<(String, &'a mut Exec), ApiError> {
        let arn = arn_field(body, "executionArn", "execution")?;
        let e = state.executions.get_mut(arn).ok_or_else(|| {
            ApiError::new(
                "ExecutionDoesNotExist",
                format!("Execution Does Not Exist: '{arn}'"),
            )
        })?;
        Ok((arn.to_owned(), e))
    }

    fn describe_execution(&self, body: &Value) -> Result<Value, ApiError> {
        let mut state = self.state();
        let (arn, e) = Self::execution(&mut state, body)?;
        let mut out = Map::new();
        out.insert("executionArn".into(), json!(arn));
        out.insert("stateMachineArn".into(), json!(e.machine));
        out.insert("name".into(), json!(e.name));
        out.insert("status".into(), json!(e.status.as_str()));
        out.insert("startDate".into(), time(e.started));
        out.insert("input".into(), json!(e.input));
        if let Some(t) = e.stopped {
            out.insert("stopDate".into(), time(t));
        }
        for (k, v) in [
            ("output", &e.output),
            ("error", &e.error),
            ("cause", &e.cause),
        ] {
            if let Some(v) = v {
                out.insert(k.into(), json!(v));
            }
        }
        Ok(Value::Object(out))
    }

    /// Stops a running execution as Step Functions does: at once, its task abandoned (an
    /// activity's worker finds the task gone at its next heartbeat). A step running in
    /// this process is dropped where it stands; steps are idempotent, and in AWS a Lambda
    /// would finish unheard.
    fn stop_execution(&self, body: &Value) -> Result<Value, ApiError> {
        let mut state = self.state();
        let (arn, e) = Self::execution(&mut state, body)?;
        if e.status == Status::Running {
            if let Some(a) = e.abort.take() {
                a.abort();
            }
            e.status = Status::Aborted;
            e.stopped = Some(a2a_core::clock::now());
            e.error = field(body, "error").map(str::to_owned);
            e.cause = field(body, "cause").map(str::to_owned);
            tracing::info!(execution = %arn, "execution stopped");
        }
        Ok(json!({"stopDate": time(e.stopped.unwrap_or_else(a2a_core::clock::now))}))
    }

    fn list_executions(&self, body: &Value) -> Result<Value, ApiError> {
        let machine = arn_field(body, "stateMachineArn", "stateMachine")?;
        if self.kind_of(machine).is_none() {
            return Err(ApiError::new(
                "StateMachineDoesNotExist",
                format!("State Machine Does Not Exist: '{machine}'"),
            ));
        }
        let filter = field(body, "statusFilter");
        let state = self.state();
        // Newest first, as Step Functions lists them.
        let items: Vec<Value> = state
            .order
            .iter()
            .rev()
            .filter_map(|arn| Some((arn, state.executions.get(arn)?)))
            .filter(|(_, e)| e.machine == machine)
            .filter(|(_, e)| filter.is_none_or(|f| f == e.status.as_str()))
            .map(|(arn, e)| {
                let mut v = json!({
                    "executionArn": arn,
                    "stateMachineArn": e.machine,
                    "name": e.name,
                    "status": e.status.as_str(),
                    "startDate": time(e.started),
                });
                if let Some(t) = e.stopped {
                    v["stopDate"] = time(t);
                }
                v
            })
            .collect();
        page(items, body, 100, "executions")
    }

    /// The engine's events once the execution has ended; while it runs (the engine
    /// records them in one piece at the end), its start only; a stopped one, its start
    /// and its abort.
    fn get_execution_history(&self, body: &Value) -> Result<Value, ApiError> {
        let mut state = self.state();
        let (_, e) = Self::execution(&mut state, body)?;
        let mut events = if e.history.is_empty() {
            let mut v = vec![json!({
                "id": 1, "previousEventId": 0, "timestamp": time(e.started),
                "type": "ExecutionStarted",
                "executionStartedEventDetails": {"input": e.input},
            })];
            if e.status == Status::Aborted {
                v.push(json!({
                    "id": 2, "previousEventId": 1,
                    "timestamp": time(e.stopped.unwrap_or(e.started)),
                    "type": "ExecutionAborted",
                    "executionAbortedEventDetails": {"error": e.error, "cause": e.cause},
                }));
            }
            v
        } else {
            e.history.clone()
        };
        if body.get("reverseOrder").and_then(Value::as_bool) == Some(true) {
            events.reverse();
        }
        page(events, body, 1000, "events")
    }

    /// Both state machines (standard workflows), as `ListStateMachines` lists them.
    fn list_state_machines(&self, body: &Value) -> Result<Value, ApiError> {
        let items: Vec<Value> = [&self.machines.migrate, &self.machines.provision]
            .into_iter()
            .map(|arn| {
                json!({
                    "stateMachineArn": arn,
                    "name": arn.rsplit(':').next().unwrap_or(""),
                    "type": "STANDARD",
                    "creationDate": time(self.created),
                })
            })
            .collect();
        page(items, body, 100, "stateMachines")
    }

    /// The activities, as `ListActivities` lists them: a worker may find its ARNs so.
    fn list_activities(&self, body: &Value) -> Result<Value, ApiError> {
        let items: Vec<Value> = self
            .activity_arns
            .iter()
            .map(|(name, arn)| {
                json!({"activityArn": arn, "name": name, "creationDate": time(self.created)})
            })
            .collect();
        page(items, body, 100, "activities")
    }

    async fn get_activity_task(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = arn_field(body, "activityArn", "activity")?;
        if !self.activity_arns.values().any(|a| a == arn) {
            return Err(ApiError::new(
                "ActivityDoesNotExist",
                format!("Activity Does Not Exist: '{arn}'"),
            ));
        }
        let worker = field(body, "workerName").unwrap_or("");
        let task = self.activities.poll(arn, worker).await.map_err(backend)?;
        Ok(match task {
            Some(t) => {
                self.state().issued.insert(t.token.clone());
                tracing::info!(activity = %arn, worker, "activity task handed out");
                json!({"taskToken": t.token, "input": t.input.to_string()})
            }
            None => json!({}),
        })
    }

    /// `NotFound` from the loopback as AWS says it: a token handed out and no longer
    /// wanted timed out; another was never a task.
    fn gone(&self, token: &str, e: PortError) -> ApiError {
        match e {
            PortError::NotFound(_) if self.state().issued.contains(token) => {
                ApiError::new("TaskTimedOut", "Task Timed Out")
            }
            PortError::NotFound(_) => ApiError::new("TaskDoesNotExist", "Task Does Not Exist"),
            e => backend(e),
        }
    }

    async fn send_task_heartbeat(&self, body: &Value) -> Result<Value, ApiError> {
        let token = token(body)?;
        self.activities
            .heartbeat(token)
            .await
            .map_err(|e| self.gone(token, e))?;
        Ok(json!({}))
    }

    async fn send_task_answer(&self, op: &str, body: &Value) -> Result<Value, ApiError> {
        let token = token(body)?;
        let r = if op == "SendTaskSuccess" {
            let text = required(body, "output")?;
            let output: Value = serde_json::from_str(text)
                .map_err(|e| ApiError::new("InvalidOutput", format!("Invalid output: {e}")))?;
            self.activities.succeed(token, &output).await
        } else {
            let error = field(body, "error").unwrap_or("");
            let cause = field(body, "cause").unwrap_or("");
            self.activities.fail(token, error, cause).await
        };
        r.map_err(|e| self.gone(token, e))?;
        Ok(json!({}))
    }
}

fn token(body: &Value) -> Result<&str, ApiError> {
    match field(body, "taskToken") {
        Some(t) if !t.is_empty() && t.len() <= 2048 => Ok(t),
        _ => Err(ApiError::new(
            "InvalidToken",
            "Invalid Token: taskToken is missing or too long",
        )),
    }
}

fn backend(e: PortError) -> ApiError {
    ApiError {
        kind: "InternalFailure",
        message: e.to_string(),
        status: 500,
    }
}

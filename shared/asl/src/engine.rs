//! Running a state machine: the state loop, input and output processing, Retry and Catch,
//! Parallel and Map concurrency, tasks with timeouts and heartbeats, and the history.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use serde_json::{Value, json};

use crate::choice::timestamp;
use crate::clock::{Clock, RealClock};
use crate::definition::{Io, Kind, Machine, Secs, Source, State, StateMachine, WaitFor, describe};
use crate::error::{StateError, names};
use crate::history::{History, HistoryEvent};
use crate::intrinsic::splitmix;
use crate::mock::{MockAnswer, MockCase, MockRun};
use crate::path::ContextSource;
use crate::task::{Handlers, LAMBDA_INVOKE, TaskContext, TaskResolver, TaskTarget, lambda_name};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Reached an End or a Succeed state.
    Succeeded,
    /// An error nothing caught, or a Fail state.
    Failed,
    /// Ran past the state machine's `TimeoutSeconds`.
    TimedOut,
}

impl Status {
    /// The name Step Functions uses (`SUCCEEDED`, `FAILED`, `TIMED_OUT`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
        }
    }
}

/// What one execution produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// The output, when it succeeded.
    pub output: Option<Value>,
    /// The error name, when it failed or timed out.
    pub error: Option<String>,
    /// The cause, when it failed or timed out.
    pub cause: Option<String>,
    /// The events, when recording was asked for.
    pub history: Vec<HistoryEvent>,
    /// How many states were entered (state transitions).
    pub transitions: u64,
    /// When it started and stopped, on its clock.
    pub started: DateTime<Utc>,
    /// When it stopped, on its clock.
    pub stopped: DateTime<Utc>,
}

impl Outcome {
    /// The report the CLI prints: status, then output or error and cause, then history.
    pub fn to_json(&self, with_history: bool) -> Value {
        let mut v = json!({"status": self.status.as_str()});
        match self.status {
            Status::Succeeded => v["output"] = self.output.clone().unwrap_or(Value::Null),
            _ => {
                v["error"] = json!(self.error);
                v["cause"] = json!(self.cause);
            }
        }
        if with_history {
            v["history"] = serde_json::to_value(&self.history).unwrap_or(Value::Null);
        }
        v
    }
}

/// How to run one execution.
#[derive(Clone)]
pub struct ExecutionOptions {
    /// The execution name (a UUID when `None`).
    pub name: Option<String>,
    /// The state machine's name, used in ARNs and to find mocks.
    pub state_machine_name: String,
    /// Real or virtual time.
    pub clock: Arc<dyn Clock>,
    /// Where tasks find their code.
    pub resolver: Arc<dyn TaskResolver>,
    /// Mocked task answers (Step Functions Local's test case); checked before the resolver.
    pub mock: Option<MockCase>,
    /// Record the history events.
    pub history: bool,
    /// The state machine's ARN as the service that runs it names it (the stack
    /// rehearsal's endpoint), so that `$$.Execution.Id` is the ARN its `StartExecution`
    /// answered; `None`: a stand-in ARN of `state_machine_name`.
    pub arn: Option<String>,
}

impl Default for ExecutionOptions {
    fn default() -> Self {
        Self {
            name: None,
            state_machine_name: "StateMachine".into(),
            clock: Arc::new(RealClock),
            resolver: Arc::new(Handlers::new()),
            mock: None,
            history: false,
            arn: None,
        }
    }
}

/// Runs executions.
#[derive(Debug, Clone, Copy)]
pub struct Execution;

impl Execution {
    /// Runs `sm` on `input` to its end. Many can run at once on one tokio runtime.
    pub async fn run(sm: &StateMachine, input: Value, opts: ExecutionOptions) -> Outcome {
        let name = opts
            .name
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let clock = opts.clock.clone();
        let started = clock.now();
        let seed = u64::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .unwrap_or([1; 8]),
        );
        let sm_arn = opts.arn.clone().unwrap_or_else(|| {
            format!(
                "arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{}",
                opts.state_machine_name
            )
        });
        let run = Run {
            exec_arn: format!(
                "{}:{name}",
                sm_arn.replacen(":stateMachine:", ":execution:", 1)
            ),
            sm_name: match &opts.arn {
                Some(arn) => arn.rsplit(':').next().unwrap_or(arn).to_owned(),
                None => opts.state_machine_name.clone(),
            },
            sm_arn,
            name,
            input: input.clone(),
            started,
            resolver: opts.resolver.clone(),
            mock: opts.mock.clone().map(MockRun::new),
            history: History::new(opts.history),
            transitions: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
            timed_out: AtomicBool::new(false),
        };
        let first = run.history.record(
            0,
            started,
            "ExecutionStarted",
            Some((
                "executionStartedEventDetails",
                json!({"input": input.to_string(), "roleArn": format!("arn:aws:iam::{ACCOUNT}:role/a2a-local")}),
            )),
        );
        let deadline = sm.timeout_seconds.map(|t| later(started, t));
        let body = run.machine(&sm.root, input, clock.clone(), first, deadline);
        let (result, last) = match (sm.timeout_seconds, clock.is_virtual()) {
            (Some(t), false) => match tokio::time::timeout(Duration::from_secs(t), body).await {
                Ok(r) => r,
                Err(_) => {
                    run.timed_out.store(true, Ordering::Relaxed);
                    (Err(timed_out(t)), first)
                }
            },
            _ => body.await,
        };
        let stopped = clock.now();
        let (status, output, error, cause) = match result {
            Ok(out) => {
                run.history.record(
                    last,
                    stopped,
                    "ExecutionSucceeded",
                    Some((
                        "executionSucceededEventDetails",
                        json!({"output": out.to_string()}),
                    )),
                );
                (Status::Succeeded, Some(out), None, None)
            }
            Err(e) => {
                let timed = run.timed_out.load(Ordering::Relaxed);
                let (kind, key) = if timed {
                    ("ExecutionTimedOut", "executionTimedOutEventDetails")
                } else {
                    ("ExecutionFailed", "executionFailedEventDetails")
                };
                run.history.record(
                    last,
                    stopped,
                    kind,
                    Some((key, json!({"error": e.error, "cause": e.cause}))),
                );
                let status = if timed {
                    Status::TimedOut
                } else {
                    Status::Failed
                };
                // A Fail state may leave out Error or Cause: Step Functions reports none.
                let some = |s: String| (!s.is_empty()).then_some(s);
                (status, None, some(e.error), some(e.cause))
            }
        };
        Outcome {
            status,
            output,
            error,
            cause,
            history: run.history.take(),
            transitions: run.transitions.load(Ordering::Relaxed),
            started,
            stopped,
        }
    }
}

fn timed_out(t: u64) -> StateError {
    StateError::new(
        names::TIMEOUT,
        format!("The execution ran longer than its TimeoutSeconds ({t} s)"),
    )
}

/// One execution's shared state: every branch and iteration sees it.
struct Run {
    exec_arn: String,
    sm_arn: String,
    sm_name: String,
    name: String,
    input: Value,
    started: DateTime<Utc>,
    resolver: Arc<dyn TaskResolver>,
    mock: Option<MockRun>,
    history: History,
    transitions: AtomicU64,
    rng: AtomicU64,
    timed_out: AtomicBool,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The context object as one state sees it.
struct Ctx<'a> {
    run: &'a Run,
    state: &'a str,
    entered: DateTime<Utc>,
    retry: u32,
    item: Option<(usize, &'a Value)>,
}

impl ContextSource for Ctx<'_> {
    fn context(&self) -> Value {
        let mut c = json!({
            "Execution": {
                "Id": self.run.exec_arn,
                "Input": self.run.input,
                "Name": self.run.name,
                "RoleArn": format!("arn:aws:iam::{ACCOUNT}:role/a2a-local"),
                "StartTime": ts(self.run.started),
                "RedriveCount": 0,
            },
            "StateMachine": {"Id": self.run.sm_arn, "Name": self.run.sm_name},
            "State": {"Name": self.state, "EnteredTime": ts(self.entered), "RetryCount": self.retry},
        });
        if let Some((i, v)) = self.item {
            c["Map"] = json!({"Item": {"Index": i, "Value": v}});
        }
        c
    }
}

/// Where a state sends the execution next.
enum Step {
    Next(String, Value),
    End(Value),
}

type Flow = (Result<Value, StateError>, u64);

fn apply_output(st: &State, v: Value, ctx: &dyn ContextSource) -> Result<Value, StateError> {
    match &st.output_path {
        Io::Default => Ok(v),
        Io::Null => Ok(json!({})),
        Io::Set(p) => p.get(&v, ctx, "OutputPath"),
    }
}

fn apply_input(st: &State, raw: &Value, ctx: &dyn ContextSource) -> Result<Value, StateError> {
    match &st.input_path {
        Io::Default => Ok(raw.clone()),
        Io::Null => Ok(json!({})),
        Io::Set(p) => p.get(raw, ctx, "InputPath"),
    }
}

/// InputPath, then Parameters.
fn effective_input(st: &State, raw: &Value, ctx: &dyn ContextSource) -> Result<Value, StateError> {
    let v = apply_input(st, raw, ctx)?;
    match &st.parameters {
        Some(t) => t.render(&v, ctx, "Parameters"),
        None => Ok(v),
    }
}

/// ResultSelector, then ResultPath (into the raw input), then OutputPath.
fn post(
    st: &State,
    raw: &Value,
    result: Value,
    ctx: &dyn ContextSource,
) -> Result<Value, StateError> {
    let r = match &st.result_selector {
        Some(t) => t.render(&result, ctx, "ResultSelector")?,
        None => result,
    };
    let combined = match &st.result_path {
        Io::Default => r,
        Io::Null => raw.clone(),
        Io::Set(p) => p.write(raw, r)?,
    };
    apply_output(st, combined, ctx)
}

fn secs(s: &Secs, input: &Value, ctx: &dyn ContextSource, field: &str) -> Result<u64, StateError> {
    match s {
        Secs::Fixed(n) => Ok(*n),
        Secs::Path(p) => {
            let v = p.get(input, ctx, field)?;
            v.as_u64().ok_or_else(|| {
                StateError::runtime(format!(
                    "{field} '{}' must select a non-negative integer, not {v}",
                    p.as_str()
                ))
            })
        }
    }
}

fn next_of(st: &State, out: Value) -> Step {
    match &st.next {
        Some(n) => Step::Next(n.clone(), out),
        None => Step::End(out),
    }
}

impl Run {
    fn event(
        &self,
        prev: u64,
        at: DateTime<Utc>,
        kind: &'static str,
        key: &'static str,
        d: Value,
    ) -> u64 {
        self.history.record(prev, at, kind, Some((key, d)))
    }

    /// Runs a set of states from its start to an end. `deadline` is set only at the top.
    fn machine<'a>(
        &'a self,
        m: &'a Machine,
        input: Value,
        clock: Arc<dyn Clock>,
        mut last: u64,
        deadline: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, Flow> {
        Box::pin(async move {
            let mut name = m.start_at.as_str();
            let mut input = input;
            loop {
                let Some(st) = m.states.get(name) else {
                    return (
                        Err(StateError::runtime(format!("no state \"{name}\""))),
                        last,
                    );
                };
                self.transitions.fetch_add(1, Ordering::Relaxed);
                let entered = clock.now();
                let t = st.kind.type_name();
                last = self.event(
                    last,
                    entered,
                    entered_type(t),
                    "stateEnteredEventDetails",
                    json!({"name": st.name, "input": input.to_string()}),
                );
                let step = self
                    .state(st, input, &clock, entered, &mut last)
                    .await
                    .and_then(|step| {
                        let out = match &step {
                            Step::Next(_, out) | Step::End(out) => out,
                        };
                        within_limit(out, "state", &st.name).map(|()| step)
                    });
                if let Some(d) = deadline
                    && clock.now() > d
                {
                    self.timed_out.store(true, Ordering::Relaxed);
                    let secs = (d - self.started).num_seconds().max(0) as u64;
                    return (Err(timed_out(secs)), last);
                }
                match step {
                    Ok(Step::Next(n, out)) => {
                        last = self.exited(st, &out, &clock, last);
                        name = m.states.get_key_value(&n).map_or("", |(k, _)| k.as_str());
                        if name.is_empty() {
                            return (Err(StateError::runtime(format!("no state \"{n}\""))), last);
                        }
                        input = out;
                    }
                    Ok(Step::End(out)) => {
                        last = self.exited(st, &out, &clock, last);
                        return (Ok(out), last);
                    }
                    Err(e) => return (Err(e), last),
                }
            }
        })
    }

    fn exited(&self, st: &State, out: &Value, clock: &Arc<dyn Clock>, last: u64) -> u64 {
        match exited_type(st.kind.type_name()) {
            Some(kind) => self.event(
                last,
                clock.now(),
                kind,
                "stateExitedEventDetails",
                json!({"name": st.name, "output": out.to_string()}),
            ),
            None => last,
        }
    }

    async fn state(
        &self,
        st: &State,
        raw: Value,
        clock: &Arc<dyn Clock>,
        entered: DateTime<Utc>,
        last: &mut u64,
    ) -> Result<Step, StateError> {
        let ctx = Ctx {
            run: self,
            state: &st.name,
            entered,
            retry: 0,
            item: None,
        };
        match &st.kind {
            Kind::Pass { result } => {
                let eff = effective_input(st, &raw, &ctx)?;
                let r = result.clone().unwrap_or(eff);
                Ok(next_of(st, post(st, &raw, r, &ctx)?))
            }
            Kind::Succeed => {
                let v = apply_input(st, &raw, &ctx)?;
                Ok(Step::End(apply_output(st, v, &ctx)?))
            }
            Kind::Fail { error, cause } => {
                let get = |s: &Option<Source>, field: &str| -> Result<String, StateError> {
                    match s {
                        None => Ok(String::new()),
                        Some(Source::Lit(s)) => Ok(s.clone()),
                        Some(Source::Path(p)) => match p.get(&raw, &ctx, field)? {
                            Value::String(s) => Ok(s),
                            v => Err(StateError::runtime(format!(
                                "{field} '{}' must select a string, not {v}",
                                p.as_str()
                            ))),
                        },
                        Some(Source::Call(e)) => match e.eval(&raw, &ctx)? {
                            Value::String(s) => Ok(s),
                            v => Err(StateError::runtime(format!(
                                "{field} must give a string, not {v}"
                            ))),
                        },
                    }
                };
                Err(StateError::new(
                    get(error, "ErrorPath")?,
                    get(cause, "CausePath")?,
                ))
            }
            Kind::Choice { choices, default } => {
                let v = apply_input(st, &raw, &ctx)?;
                let mut next = None;
                for (rule, n) in choices {
                    if rule.eval(&v, &ctx)? {
                        next = Some(n);
                        break;
                    }
                }
                let Some(n) = next.or(default.as_ref()) else {
                    return Err(StateError::new(
                        names::NO_CHOICE_MATCHED,
                        format!(
                            "No Choice rule of state \"{}\" matched, and it has no Default",
                            st.name
                        ),
                    ));
                };
                Ok(Step::Next(n.clone(), apply_output(st, v, &ctx)?))
            }
            Kind::Wait(w) => {
                let v = apply_input(st, &raw, &ctx)?;
                let now = clock.now();
                let until_ts = |t: DateTime<Utc>| (t - now).to_std().unwrap_or(Duration::ZERO);
                let d = match w {
                    WaitFor::Seconds(n) => Duration::from_secs(*n),
                    WaitFor::Timestamp(t) => until_ts(t.with_timezone(&Utc)),
                    WaitFor::SecondsPath(p) => {
                        Duration::from_secs(secs(&Secs::Path(p.clone()), &v, &ctx, "SecondsPath")?)
                    }
                    WaitFor::TimestampPath(p) => {
                        let t = p.get(&v, &ctx, "TimestampPath")?;
                        let Some(t) = t.as_str().and_then(timestamp) else {
                            return Err(StateError::runtime(format!(
                                "TimestampPath '{}' must select an RFC 3339 timestamp, not {t}",
                                p.as_str()
                            )));
                        };
                        until_ts(t.with_timezone(&Utc))
                    }
                };
                clock.sleep(d).await;
                Ok(next_of(st, apply_output(st, v, &ctx)?))
            }
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map { .. } => {
                self.with_retry(st, raw, clock, entered, last).await
            }
        }
    }

    /// Runs a Task, Parallel or Map under its retriers, then its catchers.
    async fn with_retry(
        &self,
        st: &State,
        raw: Value,
        clock: &Arc<dyn Clock>,
        entered: DateTime<Utc>,
        last: &mut u64,
    ) -> Result<Step, StateError> {
        let mut used = vec![0u32; st.retry.len()];
        let mut retry_count = 0u32;
        let err = loop {
            let ctx = Ctx {
                run: self,
                state: &st.name,
                entered,
                retry: retry_count,
                item: None,
            };
            let result = match self.work(st, &raw, clock, &ctx, last).await {
                Ok(r) => r,
                Err(e) => {
                    let retrier = (!e.is_terminal())
                        .then(|| {
                            st.retry
                                .iter()
                                .position(|r| r.error_equals.iter().any(|n| e.matches(n)))
                        })
                        .flatten();
                    if let Some(i) = retrier {
                        let r = &st.retry[i];
                        if used[i] < r.max_attempts {
                            let mut delay =
                                r.interval_seconds as f64 * r.backoff_rate.powi(used[i] as i32);
                            if let Some(max) = r.max_delay_seconds {
                                delay = delay.min(max as f64);
                            }
                            if r.full_jitter {
                                let x = splitmix(self.rng.fetch_add(1, Ordering::Relaxed));
                                delay *= (x >> 11) as f64 / (1u64 << 53) as f64;
                            }
                            used[i] += 1;
                            retry_count += 1;
                            clock
                                .sleep(Duration::from_secs_f64(delay.clamp(0.0, 1.0e9)))
                                .await;
                            continue;
                        }
                    }
                    break e;
                }
            };
            match post(st, &raw, result, &ctx) {
                Ok(out) => return Ok(next_of(st, out)),
                Err(e) => break e,
            }
        };
        if !err.is_terminal()
            && let Some(c) = st
                .catch
                .iter()
                .find(|c| c.error_equals.iter().any(|n| err.matches(n)))
        {
            let caught = json!({"Error": err.error, "Cause": err.cause});
            let out = match &c.result_path {
                Io::Default => caught,
                Io::Null => raw,
                Io::Set(p) => p.write(&raw, caught)?,
            };
            return Ok(Step::Next(c.next.clone(), out));
        }
        Err(err)
    }

    /// One attempt of the work of a Task, Parallel or Map: its result, before ResultSelector.
    async fn work(
        &self,
        st: &State,
        raw: &Value,
        clock: &Arc<dyn Clock>,
        ctx: &Ctx<'_>,
        last: &mut u64,
    ) -> Result<Value, StateError> {
        match &st.kind {
            Kind::Task {
                resource,
                timeout,
                heartbeat,
            } => {
                let eff = effective_input(st, raw, ctx)?;
                let timeout = timeout
                    .as_ref()
                    .map(|s| secs(s, raw, ctx, "TimeoutSecondsPath"))
                    .transpose()?;
                let heartbeat = heartbeat
                    .as_ref()
                    .map(|s| secs(s, raw, ctx, "HeartbeatSecondsPath"))
                    .transpose()?;
                self.task(
                    st, resource, eff, timeout, heartbeat, clock, ctx.retry, last,
                )
                .await
            }
            Kind::Parallel { branches } => {
                let eff = effective_input(st, raw, ctx)?;
                let start = self.event(
                    *last,
                    clock.now(),
                    "ParallelStateStarted",
                    "stateStartedEventDetails",
                    json!({"name": st.name}),
                );
                let mut runs: futures::stream::FuturesUnordered<_> = branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let c = clock.fork();
                        let input = eff.clone();
                        async move {
                            let (r, l) = self.machine(b, input, c.clone(), start, None).await;
                            (i, r, l, c.now())
                        }
                    })
                    .collect();
                let mut out = vec![Value::Null; branches.len()];
                let mut failure: Option<(DateTime<Utc>, StateError)> = None;
                let mut end = clock.now();
                while let Some((i, r, l, t)) = runs.next().await {
                    *last = (*last).max(l);
                    match r {
                        Ok(v) => {
                            out[i] = v;
                            end = end.max(t);
                        }
                        Err(e) => {
                            if failure.as_ref().is_none_or(|(ft, _)| t < *ft) {
                                failure = Some((t, e));
                            }
                            // On real time the first failure stops the other branches (by
                            // dropping them). On virtual time every branch finishes at once in
                            // wall time, so the failure that came first on the clock wins.
                            if !clock.is_virtual() {
                                break;
                            }
                        }
                    }
                }
                drop(runs);
                let failure = failure.map(|(t, e)| {
                    clock.advance_to(t);
                    e
                });
                if failure.is_none() {
                    clock.advance_to(end);
                }
                match failure {
                    None => {
                        *last = self.event(
                            *last,
                            clock.now(),
                            "ParallelStateSucceeded",
                            "stateSucceededEventDetails",
                            json!({"name": st.name}),
                        );
                        Ok(Value::Array(out))
                    }
                    Some(e) => {
                        *last = self.event(
                            *last,
                            clock.now(),
                            "ParallelStateFailed",
                            "stateFailedEventDetails",
                            json!({"name": st.name, "error": e.error, "cause": e.cause}),
                        );
                        Err(e)
                    }
                }
            }
            Kind::Map {
                processor,
                items_path,
                item_selector,
                max_concurrency,
            } => {
                // In a Map, Parameters is the old name of ItemSelector: it shapes each item.
                let v = apply_input(st, raw, ctx)?;
                let items = match items_path {
                    Some(p) => p.get(&v, ctx, "ItemsPath")?,
                    None => v.clone(),
                };
                let Value::Array(items) = items else {
                    return Err(StateError::runtime(format!(
                        "ItemsPath of Map state \"{}\" must select an array, not {}",
                        st.name,
                        describe(&items)
                    )));
                };
                let limit = secs(max_concurrency, &v, ctx, "MaxConcurrencyPath")? as usize;
                let selector = item_selector.as_ref().or(st.parameters.as_ref());
                let mut inputs = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    inputs.push(match selector {
                        Some(t) => {
                            let ictx = Ctx {
                                run: self,
                                state: &st.name,
                                entered: ctx.entered,
                                retry: ctx.retry,
                                item: Some((i, item)),
                            };
                            t.render(&v, &ictx, "ItemSelector")?
                        }
                        None => item.clone(),
                    });
                }
                let n = inputs.len();
                let start = self.event(
                    *last,
                    clock.now(),
                    "MapStateStarted",
                    "mapStateStartedEventDetails",
                    json!({"length": n}),
                );
                let name = st.name.as_str();
                let iterations = inputs.into_iter().enumerate().map(|(i, input)| {
                    let c = clock.fork();
                    async move {
                        let it = self.event(
                            start,
                            c.now(),
                            "MapIterationStarted",
                            "mapIterationStartedEventDetails",
                            json!({"name": name, "index": i}),
                        );
                        let (r, l) = self.machine(processor, input, c.clone(), it, None).await;
                        let (kind, key) = if r.is_ok() {
                            ("MapIterationSucceeded", "mapIterationSucceededEventDetails")
                        } else {
                            ("MapIterationFailed", "mapIterationFailedEventDetails")
                        };
                        let l =
                            self.event(l, c.now(), kind, key, json!({"name": name, "index": i}));
                        (i, r, l, c.now())
                    }
                });
                let width = if limit == 0 { n.max(1) } else { limit };
                let mut running = stream::iter(iterations).buffer_unordered(width);
                let mut results: Vec<Value> = vec![Value::Null; n];
                while let Some((i, r, l, t)) = running.next().await {
                    clock.advance_to(t);
                    *last = (*last).max(l);
                    match r {
                        Ok(out) => results[i] = out,
                        Err(e) => {
                            // Dropping the stream stops the iterations still running.
                            drop(running);
                            *last = self.event(
                                *last,
                                clock.now(),
                                "MapStateFailed",
                                "stateFailedEventDetails",
                                json!({"name": name, "error": e.error, "cause": e.cause}),
                            );
                            return Err(e);
                        }
                    }
                }
                *last = self.event(
                    *last,
                    clock.now(),
                    "MapStateSucceeded",
                    "stateSucceededEventDetails",
                    json!({"name": name}),
                );
                Ok(Value::Array(results))
            }
            _ => Err(StateError::runtime("internal: not a task-like state")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn task(
        &self,
        st: &State,
        resource: &str,
        eff: Value,
        timeout: Option<u64>,
        heartbeat: Option<u64>,
        clock: &Arc<dyn Clock>,
        retry: u32,
        last: &mut u64,
    ) -> Result<Value, StateError> {
        let invoke = resource == LAMBDA_INVOKE;
        let (target, payload) = if invoke {
            let f = eff
                .get("FunctionName")
                .and_then(Value::as_str)
                .and_then(lambda_name);
            let Some(function) = f else {
                return Err(StateError::runtime(format!(
                    "{LAMBDA_INVOKE} in state \"{}\" needs a FunctionName string",
                    st.name
                )));
            };
            let payload = eff.get("Payload").cloned().unwrap_or_else(|| json!({}));
            (TaskTarget::Lambda { function }, payload)
        } else {
            (TaskTarget::of_resource(resource), eff.clone())
        };
        // A plain function ARN is the legacy Lambda integration, with its own event names.
        let legacy = !invoke && matches!(target, TaskTarget::Lambda { .. });
        let (res_type, res_name) = if invoke {
            ("lambda", "invoke")
        } else {
            resource.rsplit_once(':').map_or(("", resource), |(a, b)| {
                (a.rsplit(':').next().unwrap_or(""), b)
            })
        };
        let now = clock.now();
        if legacy {
            *last = self.event(*last, now, "LambdaFunctionScheduled", "lambdaFunctionScheduledEventDetails", json!({"resource": resource, "input": payload.to_string(), "timeoutInSeconds": timeout}));
            *last = self.event(
                *last,
                now,
                "LambdaFunctionStarted",
                "lambdaFunctionStartedEventDetails",
                json!({}),
            );
        } else {
            *last = self.event(*last, now, "TaskScheduled", "taskScheduledEventDetails", json!({"resourceType": res_type, "resource": res_name, "region": REGION, "parameters": eff.to_string(), "timeoutInSeconds": timeout, "heartbeatInSeconds": heartbeat}));
            *last = self.event(
                *last,
                now,
                "TaskStarted",
                "taskStartedEventDetails",
                json!({"resourceType": res_type, "resource": res_name}),
            );
        }
        let result = self
            .call(st, &target, payload, timeout, heartbeat, clock, retry)
            .await;
        let at = clock.now();
        let result = match result {
            Ok(r) if invoke && !r.1 => Ok(lambda_invoke_output(r.0)),
            Ok(r) => Ok(r.0),
            Err(e) => Err(e),
        }
        .and_then(|r| within_limit(&r, "task", &st.name).map(|()| r));
        let timed = matches!(&result, Err(e) if e.error == names::TIMEOUT || e.error == names::HEARTBEAT_TIMEOUT);
        *last = match (&result, legacy, timed) {
            (Ok(v), true, _) => self.event(*last, at, "LambdaFunctionSucceeded", "lambdaFunctionSucceededEventDetails", json!({"output": v.to_string()})),
            (Ok(v), false, _) => self.event(*last, at, "TaskSucceeded", "taskSucceededEventDetails", json!({"resourceType": res_type, "resource": res_name, "output": v.to_string()})),
            (Err(e), true, true) => self.event(*last, at, "LambdaFunctionTimedOut", "lambdaFunctionTimedOutEventDetails", json!({"error": e.error, "cause": e.cause})),
            (Err(e), true, false) => self.event(*last, at, "LambdaFunctionFailed", "lambdaFunctionFailedEventDetails", json!({"error": e.error, "cause": e.cause})),
            (Err(e), false, true) => self.event(*last, at, "TaskTimedOut", "taskTimedOutEventDetails", json!({"resourceType": res_type, "resource": res_name, "error": e.error, "cause": e.cause})),
            (Err(e), false, false) => self.event(*last, at, "TaskFailed", "taskFailedEventDetails", json!({"resourceType": res_type, "resource": res_name, "error": e.error, "cause": e.cause})),
        };
        result
    }

    /// Calls the mock or the handler, under the task's timeout and heartbeat. The flag says
    /// the answer came from a mock (which is the whole service response: never wrapped).
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        st: &State,
        target: &TaskTarget,
        payload: Value,
        timeout: Option<u64>,
        heartbeat: Option<u64>,
        clock: &Arc<dyn Clock>,
        retry: u32,
    ) -> Result<(Value, bool), StateError> {
        if let Some(answer) = self.mock.as_ref().and_then(|m| m.next(&st.name)) {
            return match answer {
                Ok(MockAnswer::Return(v)) => Ok((v, true)),
                Ok(MockAnswer::Throw { error, cause }) => Err(StateError::new(error, cause)),
                Err(why) => Err(StateError::runtime(why)),
            };
        }
        let Some(handler) = self.resolver.resolve(target) else {
            return Err(match target {
                TaskTarget::Lambda { function } => StateError::new(
                    "Lambda.ResourceNotFoundException",
                    format!(
                        "Function not found: {function} (no handler is registered for it, and no mock answers state \"{}\")",
                        st.name
                    ),
                ),
                TaskTarget::Resource(r) => StateError::runtime(format!(
                    "no handler is registered for resource {r}, and no mock answers state \"{}\"",
                    st.name
                )),
            });
        };
        let lambda = matches!(target, TaskTarget::Lambda { .. });
        let to_error = |e: crate::task::TaskError| {
            if lambda {
                let cause = json!({"errorMessage": e.message, "errorType": e.error, "trace": []});
                StateError::new(e.error, cause.to_string())
            } else {
                StateError::new(e.error, e.message)
            }
        };
        let child = clock.fork();
        let tctx = TaskContext::new(child.clone(), &st.name, &self.name, retry);
        let start = child.now();
        if clock.is_virtual() {
            let r = handler.call(payload, &tctx).await;
            let end = child.now();
            // Judge the limits on the task's simulated time: the first one crossed wins.
            let mut fail: Option<(DateTime<Utc>, StateError)> = None;
            if let Some(hb) = heartbeat {
                let hb = chrono::Duration::seconds(hb as i64);
                let mut prev = start;
                for t in tctx.heartbeat_times().into_iter().chain([end]) {
                    if t - prev > hb {
                        fail = Some((
                            prev.checked_add_signed(hb).unwrap_or(prev),
                            heartbeat_error(st),
                        ));
                        break;
                    }
                    prev = t;
                }
            }
            if let Some(to) = timeout {
                let at = later(start, to);
                if end > at && fail.as_ref().is_none_or(|(t, _)| at < *t) {
                    fail = Some((at, timeout_error(st, to)));
                }
            }
            if let Some((at, e)) = fail {
                clock.advance_to(at);
                return Err(e);
            }
            clock.advance_to(end);
            return r.map(|v| (v, false)).map_err(to_error);
        }
        let work = handler.call(payload, &tctx);
        tokio::pin!(work);
        let begun = tokio::time::Instant::now();
        loop {
            let mut wake: Option<tokio::time::Instant> =
                timeout.map(|t| begun + Duration::from_secs(t));
            if let Some(hb) = heartbeat {
                let last_beat = tctx.heartbeat_times().last().copied().unwrap_or(start);
                let since = (Utc::now() - last_beat).to_std().unwrap_or(Duration::ZERO);
                let due =
                    tokio::time::Instant::now() + Duration::from_secs(hb).saturating_sub(since);
                wake = Some(wake.map_or(due, |w| w.min(due)));
            }
            let Some(w) = wake else {
                return work.await.map(|v| (v, false)).map_err(to_error);
            };
            tokio::select! {
                r = &mut work => return r.map(|v| (v, false)).map_err(to_error),
                _ = tokio::time::sleep_until(w) => {
                    if let Some(t) = timeout && begun.elapsed() >= Duration::from_secs(t) {
                        return Err(timeout_error(st, t));
                    }
                    if let Some(hb) = heartbeat {
                        let last_beat = tctx.heartbeat_times().last().copied().unwrap_or(start);
                        if (Utc::now() - last_beat).to_std().unwrap_or(Duration::ZERO) >= Duration::from_secs(hb) {
                            return Err(heartbeat_error(st));
                        }
                    }
                }
            }
        }
    }
}

/// The largest payload Step Functions passes between states, in bytes of JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 262_144;

/// Fails with `States.DataLimitExceeded` (terminal) when `v` is larger than Step Functions
/// allows, so that a workflow that would break in AWS breaks here too.
fn within_limit(v: &Value, what: &str, state: &str) -> Result<(), StateError> {
    // Counting bytes needs no buffer: serialise into a counter.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    let _ = serde_json::to_writer(&mut n, v);
    if n.0 > MAX_PAYLOAD_BYTES {
        return Err(StateError::new(
            names::DATA_LIMIT_EXCEEDED,
            format!(
                "The {what} \"{state}\" produced {} bytes, more than the {MAX_PAYLOAD_BYTES} bytes Step Functions allows",
                n.0
            ),
        ));
    }
    Ok(())
}

/// `t` plus `secs`, saturating: a clock pushed to the end of time must not panic.
fn later(t: DateTime<Utc>, secs: u64) -> DateTime<Utc> {
    t.checked_add_signed(chrono::Duration::seconds(secs as i64))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn heartbeat_error(st: &State) -> StateError {
    StateError::new(
        names::HEARTBEAT_TIMEOUT,
        format!(
            "Task \"{}\" sent no heartbeat within HeartbeatSeconds",
            st.name
        ),
    )
}

fn timeout_error(st: &State, t: u64) -> StateError {
    StateError::new(
        names::TIMEOUT,
        format!(
            "Task \"{}\" ran longer than its TimeoutSeconds ({t} s)",
            st.name
        ),
    )
}

/// The response of `lambda:invoke`, as Step Functions hands it to ResultSelector.
fn lambda_invoke_output(payload: Value) -> Value {
    let request = uuid::Uuid::new_v4().to_string();
    json!({
        "ExecutedVersion": "$LATEST",
        "Payload": payload,
        "SdkHttpMetadata": {
            "HttpHeaders": {
                "Connection": "keep-alive",
                "Content-Type": "application/json",
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-Remapped-Content-Length": "0",
                "x-amzn-RequestId": request,
            },
            "HttpStatusCode": 200
        },
        "SdkResponseMetadata": {"RequestId": request},
        "StatusCode": 200
    })
}

fn entered_type(t: &str) -> &'static str {
    match t {
        "Pass" => "PassStateEntered",
        "Task" => "TaskStateEntered",
        "Choice" => "ChoiceStateEntered",
        "Wait" => "WaitStateEntered",
        "Succeed" => "SucceedStateEntered",
        "Fail" => "FailStateEntered",
        "Parallel" => "ParallelStateEntered",
        _ => "MapStateEntered",
    }
}

fn exited_type(t: &str) -> Option<&'static str> {
    Some(match t {
        "Pass" => "PassStateExited",
        "Task" => "TaskStateExited",
        "Choice" => "ChoiceStateExited",
        "Wait" => "WaitStateExited",
        "Succeed" => "SucceedStateExited",
        "Parallel" => "ParallelStateExited",
        "Map" => "MapStateExited",
        _ => return None,
    })
}

//! `a2a history CODE`: one school's life, step by step and attempt by attempt, with the
//! workflow execution behind each attempt.

use a2a_core::{Instance, Outcome as StepOutcome, SchoolCode, StepEvent, execution_name};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::backends::Backends;
use crate::{CliError, CliResult, Config, Outcome};

/// One school's history, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct History {
    /// The school code.
    pub school_code: String,
    /// The school's name.
    pub name: String,
    /// `migrate` or `provision`.
    pub kind: &'static str,
    /// Its status now.
    pub status: &'static str,
    /// Runs started so far.
    pub attempt: u32,
    /// The last error recorded, if any.
    pub last_error: Option<String>,
    /// With `--aws`: the execution now or last working on it, and how Step Functions
    /// says it stands (`RUNNING`, `SUCCEEDED`, `FAILED`, …, or `NOT_FOUND`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
    /// What happened before the first start (intake, the scheduler's enqueue), and each
    /// attempt after it.
    pub attempts: Vec<Attempt>,
}

/// An execution as Step Functions describes it.
#[derive(Debug, Serialize)]
pub struct Execution {
    /// Its ARN.
    pub id: String,
    /// How it stands.
    pub status: String,
    /// The error name, if it failed.
    pub error: Option<String>,
}

/// The steps of one attempt.
#[derive(Debug, Serialize)]
pub struct Attempt {
    /// 1, 2, …; 0 for what no recorded start precedes (the intake and the scheduler's
    /// enqueue, or steps of an execution started outside A2A, e.g. from the console).
    pub attempt: u32,
    /// The execution's name (`None` for attempt 0).
    pub execution: Option<String>,
    /// Its steps, in time order.
    pub steps: Vec<Row>,
}

/// One step's run: its start and, unless it is still going or was cut short, its end.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The step's name (`export-database`, `scheduler.enqueue`).
    pub step: String,
    /// When it began.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<i64>,
    /// `succeeded`, `failed`, or `started` (running, or cut short).
    pub outcome: &'static str,
    /// Rows moved or checked.
    pub rows: Option<u64>,
    /// Bytes moved or checked.
    pub bytes: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
}

impl History {
    /// Groups `events` (in time order) by attempt: the k-th dispatcher start begins attempt
    /// k. A start event whose end is recorded is shown once, as its end.
    pub fn of(instance: &Instance, events: &[StepEvent]) -> Self {
        let mut attempts = vec![Attempt {
            attempt: 0,
            execution: None,
            steps: Vec::new(),
        }];
        for (i, e) in events.iter().enumerate() {
            if e.step == a2a_schedule::START_STEP {
                let k = attempts.len() as u32;
                attempts.push(Attempt {
                    attempt: k,
                    execution: Some(execution_name(&instance.code, instance.kind, k)),
                    steps: Vec::new(),
                });
                continue;
            }
            let ended_later = e.outcome == StepOutcome::Started
                && events[i + 1..].iter().any(|l| {
                    l.step == e.step
                        && l.started_at == e.started_at
                        && l.outcome != StepOutcome::Started
                });
            if ended_later {
                continue;
            }
            let outcome = match e.outcome {
                StepOutcome::Started => "started",
                StepOutcome::Succeeded => "succeeded",
                StepOutcome::Failed => "failed",
            };
            let last = attempts.last_mut().expect("attempt 0 is always there");
            last.steps.push(Row {
                step: e.step.clone(),
                started_at: e.started_at,
                ended_at: e.ended_at,
                duration_ms: e
                    .ended_at
                    .map(|end| (end - e.started_at).num_milliseconds()),
                outcome,
                rows: e.rows,
                bytes: e.bytes,
                error: e.error.clone(),
            });
        }
        if attempts[0].steps.is_empty() {
            attempts.remove(0);
        }
        Self {
            school_code: instance.code.to_string(),
            name: instance.name.clone(),
            kind: instance.kind.as_str(),
            status: instance.status.as_str(),
            attempt: instance.attempt,
            last_error: instance.last_error.clone(),
            execution: None,
            attempts,
        }
    }

    fn print_text(&self) {
        println!(
            "{} {} ({}): {} after {} attempt(s)",
            self.school_code, self.name, self.kind, self.status, self.attempt
        );
        if let Some(e) = &self.last_error {
            println!("last error: {e}");
        }
        if let Some(x) = &self.execution {
            let error = x
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            println!(
                "execution {} is {} in Step Functions{error}",
                x.id, x.status
            );
        }
        for a in &self.attempts {
            match &a.execution {
                Some(x) => println!("attempt {}: execution {x}", a.attempt),
                None => println!(
                    "outside any recorded start (intake, scheduler, or a run started elsewhere):"
                ),
            }
            for r in &a.steps {
                let took = r
                    .duration_ms
                    .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into());
                let mut line = format!(
                    "  {}  {:<26} {:>9}  {:<9}",
                    r.started_at.format("%Y-%m-%d %H:%M:%S"),
                    r.step,
                    took,
                    r.outcome
                );
                if let Some(n) = r.rows {
                    line.push_str(&format!("  {n} rows"));
                }
                if let Some(n) = r.bytes {
                    line.push_str(&format!("  {n} bytes"));
                }
                if let Some(e) = &r.error {
                    line.push_str(&format!("  {e}"));
                }
                println!("{line}");
            }
        }
        if self.attempts.is_empty() {
            println!("no step has run yet");
        }
    }
}

/// Prints one school's history. Reading only. With `aws`, its execution is looked up in
/// Step Functions (when the state machines are known).
pub async fn run(
    config: &Config,
    ports: &Backends,
    code: &str,
    json: bool,
    aws: bool,
) -> CliResult {
    let code = SchoolCode::parse(code)
        .map_err(|e| CliError::input(e.to_string(), "give the school's 8-digit code"))?;
    let label = config.state.label();
    let missing = || {
        CliError::input(
            format!("school {code} is not in the state ({label})"),
            "`a2a status` lists the schools taken in; check the code or the --home",
        )
    };
    let store = ports.existing_state(config).await?.ok_or_else(missing)?;
    let port = |e| CliError::from_port(&label, e);
    let instance = store.get(&code).await.map_err(port)?.ok_or_else(missing)?;
    let events = store.history(&code).await.map_err(port)?;
    let mut history = History::of(&instance, &events);
    if aws
        && let Some(id) = &instance.execution
        && let Some(flows) = crate::deployed::workflows(config, ports).await
    {
        let (status, error) = crate::deployed::execution_status(&*flows, id).await?;
        history.execution = Some(Execution {
            id: id.clone(),
            status,
            error,
        });
    }
    if json {
        let text = serde_json::to_string(&history)
            .map_err(|e| CliError::Failed(format!("cannot write the history as JSON: {e}")))?;
        println!("{text}");
    } else {
        history.print_text();
    }
    Ok(Outcome::Ok)
}

//! The step table: every step of both workflows, once. The binaries of `functions/steps`,
//! the `${Name}` substitutions of `statemachines/*.asl.json`, `template.yaml` (each step
//! function, its memory and timeout, the state machines' substitutions, invoke policies
//! and Task timeouts) and the local resolver are generated from it or checked against it
//! (`tests/template.rs`, `a2a-fn-steps`' tests). A new step is its function, one row here
//! and its place in the ASL; the checks then say what else to add.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use a2a_core::{InstanceKind, SchoolCode};
use serde_json::Value;

use crate::common::ROLLBACK_TIME;
use crate::migrate::{self, CHECK_TIME, PART_TIME, SYNC_TIME};
use crate::{StepContext, StepError, provision};

/// Where a step runs: the design's two sides, with the data store (the S3 stage) between
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Next to the sources, on premises: the only steps that open a source database or a
    /// source folder. An activity task, served by `a2a worker` ([`crate::worker`]).
    Source,
    /// In AWS, as a Lambda: the target database, the data store's objects, routes and
    /// state only; never a source.
    Target,
}

impl Side {
    /// The lower-case word (`source`, `target`).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

/// The `HeartbeatSeconds` of every source step's Task: a worker heartbeats well inside it
/// (every 20 s by default), and a worker that dies is noticed this long after.
pub const HEARTBEAT: Duration = Duration::from_secs(60);

/// The future of one step's run.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, StepError>> + Send + 'a>>;

/// What a row runs: the step on the context, the checked school code and the whole input.
type Run = for<'a> fn(&'a StepContext, &'a SchoolCode, &'a Value) -> StepFuture<'a>;

/// One step of a workflow.
pub struct Step {
    /// Its name: the `${Name}` of the state machine, the template's `<Name>Function`.
    pub name: &'static str,
    /// The workflow it belongs to.
    pub workflow: InstanceKind,
    /// Where it runs: a source step is an activity task, a target step a Lambda.
    pub side: Side,
    /// How long its own work goes on before it stops and reports where it is, to be run
    /// again; `None`: short work that needs no such limit.
    pub budget: Option<Duration>,
    /// Its Lambda's memory, in MB (a source step's is unused: it runs in the worker).
    pub memory_mb: u32,
    /// Its Tasks' `TimeoutSeconds`, and a target step's Lambda timeout.
    pub timeout: Duration,
    run: Run,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("workflow", &self.workflow)
            .field("side", &self.side)
            .field("budget", &self.budget)
            .field("memory_mb", &self.memory_mb)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Step {
    /// Runs the step on `input`, whose school code is `code`.
    pub fn run<'a>(
        &self,
        ctx: &'a StepContext,
        code: &'a SchoolCode,
        input: &'a Value,
    ) -> StepFuture<'a> {
        (self.run)(ctx, code, input)
    }

    /// Its Lambda's binary: `step-<kebab name>` ([`bin_name`]).
    pub fn bin_name(&self) -> String {
        bin_name(self.name)
    }

    /// Its logical name in `template.yaml`: `<Name>Function` for a target step's Lambda,
    /// `<Name>Activity` for a source step's activity.
    pub fn resource(&self) -> String {
        match self.side {
            Side::Source => format!("{}Activity", self.name),
            Side::Target => format!("{}Function", self.name),
        }
    }
}

const SHORT: Duration = Duration::from_secs(120);
const PLAN: Duration = Duration::from_secs(300);
/// Lambda's longest run.
const LONG: Duration = Duration::from_secs(900);
/// Steps that only touch the state table and a few small objects.
const SMALL_MB: u32 = 256;
/// Steps that move a database or a site's files: one full vCPU (and more network).
const BIG_MB: u32 = 1769;

impl Step {
    /// A target step: a Lambda of `memory_mb` MB and `timeout`, no budget.
    const fn lambda(
        name: &'static str,
        workflow: InstanceKind,
        memory_mb: u32,
        timeout: Duration,
        run: Run,
    ) -> Step {
        Step {
            name,
            workflow,
            side: Side::Target,
            budget: None,
            memory_mb,
            timeout,
            run,
        }
    }

    /// A source step: an activity task of `timeout` (its memory is the worker's).
    const fn activity(name: &'static str, timeout: Duration, run: Run) -> Step {
        Step {
            side: Side::Source,
            ..Step::lambda(name, InstanceKind::Migrate, SMALL_MB, timeout, run)
        }
    }

    /// The same step with a time `budget`.
    const fn budgeted(self, budget: Duration) -> Step {
        Step {
            budget: Some(budget),
            ..self
        }
    }
}

/// A row's run of a step that takes only the context and the school code.
macro_rules! plain {
    ($step:path) => {
        |ctx, code, _| Box::pin($step(ctx, code))
    };
}

use InstanceKind::{Migrate, Provision};

/// Every step of both workflows.
#[rustfmt::skip] // a table: one row a step reads better than rustfmt's one field a line
pub static STEPS: &[Step] = &[
    // provision-instance
    Step::lambda("AllocateTarget", Provision, SMALL_MB, SHORT, |ctx, code, input| {
        Box::pin(provision::allocate_target(ctx, code, execution(input)))
    }),
    Step::lambda("CloneTemplate", Provision, BIG_MB, LONG, plain!(provision::clone_template)),
    Step::lambda("CopyTemplateFiles", Provision, BIG_MB, LONG,
        plain!(provision::copy_template_files)),
    Step::lambda("Customise", Provision, SMALL_MB, SHORT, plain!(provision::customise)),
    Step::lambda("VerifySite", Provision, SMALL_MB, SHORT, plain!(provision::verify_site)),
    Step::lambda("RegisterRoute", Provision, SMALL_MB, SHORT, plain!(provision::register_route)),
    Step::lambda("Deprovision", Provision, SMALL_MB, SHORT, |ctx, code, input| {
        Box::pin(async move {
            let seconds = number(input, "seconds")?.map(|s| Duration::from_secs(s as u64));
            provision::deprovision(ctx, code, &failure(input), seconds).await
        })
    }).budgeted(ROLLBACK_TIME),
    // migrate-instance
    Step::activity("CheckSource", SHORT, |ctx, code, input| {
        Box::pin(migrate::check_source(ctx, code, execution(input)))
    }),
    Step::lambda("Preflight", Migrate, SMALL_MB, SHORT, |ctx, code, input| {
        Box::pin(migrate::preflight(ctx, code, execution(input)))
    }),
    Step::activity("Freeze", SHORT, plain!(migrate::freeze)),
    Step::activity("PlanExport", PLAN, |ctx, code, input| {
        Box::pin(async move { migrate::plan_export(ctx, code, number(input, "parts")?).await })
    }),
    Step::activity("ExportDatabase", LONG, |ctx, code, input| {
        Box::pin(async move { migrate::export_database(ctx, code, part_input(input)?).await })
    }).budgeted(PART_TIME),
    Step::activity("SealExport", PLAN, plain!(migrate::seal_export)),
    Step::activity("SyncFiles", LONG, |ctx, code, input| {
        Box::pin(async move {
            let seconds = number(input, "seconds")?.map(|s| Duration::from_secs(s as u64));
            migrate::sync_files(ctx, code, seconds).await
        })
    }).budgeted(SYNC_TIME),
    Step::lambda("ProvisionTargetDatabase", Migrate, SMALL_MB, SHORT,
        plain!(migrate::provision_target_database)),
    Step::lambda("PlanImport", Migrate, SMALL_MB, PLAN, plain!(migrate::plan_import)),
    Step::lambda("ImportDatabase", Migrate, BIG_MB, LONG, |ctx, code, input| {
        Box::pin(async move { migrate::import_database(ctx, code, part_input(input)?).await })
    }).budgeted(PART_TIME),
    Step::lambda("FinishImport", Migrate, SMALL_MB, SHORT, plain!(migrate::finish_import)),
    Step::activity("VerifySource", LONG, |ctx, code, input| {
        Box::pin(async move { migrate::verify_source(ctx, code, part(input)).await })
    }).budgeted(CHECK_TIME),
    Step::lambda("Verify", Migrate, BIG_MB, LONG, |ctx, code, input| {
        Box::pin(async move { migrate::verify(ctx, code, part(input)).await })
    }).budgeted(CHECK_TIME),
    Step::lambda("RewriteConfig", Migrate, BIG_MB, LONG, plain!(migrate::rewrite_config)),
    Step::lambda("SwitchRoute", Migrate, SMALL_MB, SHORT, plain!(migrate::switch_route)),
    Step::activity("RestoreSource", SHORT, plain!(migrate::restore_source)),
    Step::lambda("Rollback", Migrate, SMALL_MB, SHORT, |ctx, code, input| {
        Box::pin(async move {
            let seconds = number(input, "seconds")?.map(|s| Duration::from_secs(s as u64));
            migrate::rollback(ctx, code, &failure(input), restore_left(input), seconds).await
        })
    }).budgeted(ROLLBACK_TIME),
];

/// The run a start step claims the school for: its `execution` (the state machines pass
/// `$$.Execution.Id`), if given.
fn execution(input: &Value) -> Option<&str> {
    input.get("execution").and_then(Value::as_str)
}

/// The `part` of a verify's input (`database`, `database:<n>`, `files`), or empty.
fn part(input: &Value) -> &str {
    input.get("part").and_then(Value::as_str).unwrap_or("")
}

/// The binary of the step named `step`: `step-` and the name in kebab case
/// (`ProvisionTargetDatabase` → `step-provision-target-database`).
pub fn bin_name(step: &str) -> String {
    let mut out = String::from("step");
    for c in step.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The step named `name`, if there is one.
pub fn step(name: &str) -> Option<&'static Step> {
    STEPS.iter().find(|s| s.name == name)
}

/// The steps of one workflow, in the table's order.
pub fn steps_of(workflow: InstanceKind) -> impl Iterator<Item = &'static Step> {
    STEPS.iter().filter(move |s| s.workflow == workflow)
}

/// The names of the steps on `side`, in the table's order.
pub fn names_on(side: Side) -> Vec<&'static str> {
    STEPS
        .iter()
        .filter(|s| s.side == side)
        .map(|s| s.name)
        .collect()
}

/// The names of every step: the `${Name}`s of both state machines.
pub fn names() -> Vec<&'static str> {
    STEPS.iter().map(|s| s.name).collect()
}

/// Runs the step `name` on `input` and returns its result. The input is
/// `{"school_code": …}`, plus: `part` (a number) for `ExportDatabase` and
/// `ImportDatabase`, with optional `max_chunks`, `chunk_rows` and `seconds`; optional
/// `parts` for `PlanExport`; `part` (`database`, `database:<n>`, `files`) for
/// `Verify` and `VerifySource`; `execution` (the run's id) for `CheckSource`, `Preflight`
/// and `AllocateTarget`; optional `seconds` for `SyncFiles`, `Rollback` and
/// `Deprovision`; `error` for the rollbacks, and `restore` (what `RestoreSource`
/// answered) for `Rollback`.
pub async fn call(ctx: &StepContext, name: &str, input: Value) -> Result<Value, StepError> {
    let step = step(name).ok_or_else(|| StepError::Input(format!("no step is named {name:?}")))?;
    let code = school_code(&input)?;
    crate::journal::call(ctx, step, &code, &input).await
}

/// An optional whole number of a step's input.
fn number(input: &Value, field: &str) -> Result<Option<usize>, StepError> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                StepError::Input(format!("the input's {field:?} is {v}, not a whole number"))
            }),
    }
}

/// The part a Map iteration works on, and its optional limits.
fn part_input(input: &Value) -> Result<migrate::PartInput, StepError> {
    Ok(migrate::PartInput {
        part: number(input, "part")?.ok_or_else(|| {
            StepError::Input("the input has no \"part\" number (the Map's item)".into())
        })?,
        max_chunks: number(input, "max_chunks")?.map(|n| n as u64),
        chunk_rows: number(input, "chunk_rows")?,
        seconds: number(input, "seconds")?.map(|s| s as u64),
    })
}

/// The school code of a step's input, checked.
fn school_code(input: &Value) -> Result<SchoolCode, StepError> {
    let raw = input
        .get("school_code")
        .and_then(Value::as_str)
        .ok_or_else(|| StepError::Input("the input has no \"school_code\" string".into()))?;
    SchoolCode::parse(raw).map_err(|e| StepError::Input(e.to_string()))
}

/// What `RestoreSource` left undone, from the rollback's `restore` input: its own
/// report (`maintenance_setting_error`), or the error it failed with (caught as
/// `{"Error", "Cause"}`).
fn restore_left(input: &Value) -> Option<String> {
    let r = input.get("restore")?;
    if let Some(m) = r.get("maintenance_setting_error").and_then(Value::as_str) {
        return Some(m.to_owned());
    }
    let error = r.get("Error").and_then(Value::as_str)?;
    let cause = r.get("Cause").and_then(Value::as_str).unwrap_or("");
    Some(format!(
        "the source was not restored ({error}: {cause}); unfreeze it by hand"
    ))
}

/// The failure a rollback was caught with (`{"Error", "Cause"}` under `error`), as text.
fn failure(input: &Value) -> String {
    let e = input.get("error");
    let name = e
        .and_then(|e| e.get("Error"))
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let cause = e
        .and_then(|e| e.get("Cause"))
        .and_then(Value::as_str)
        .unwrap_or("");
    // A Lambda-style cause is JSON with the message inside.
    let message = serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| cause.to_owned());
    format!("{name}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_kebab_case_binaries_follow_them() {
        let names: BTreeSet<&str> = STEPS.iter().map(|s| s.name).collect();
        assert_eq!(
            names.len(),
            STEPS.len(),
            "a step name is in the table twice"
        );
        let pt = step("ProvisionTargetDatabase").unwrap();
        assert_eq!(pt.bin_name(), "step-provision-target-database");
        assert_eq!(pt.resource(), "ProvisionTargetDatabaseFunction");
        assert_eq!(step("Verify").unwrap().bin_name(), "step-verify");
        assert!(step("verify").is_none());
        assert_eq!(steps_of(InstanceKind::Provision).count(), 7);
        assert_eq!(steps_of(InstanceKind::Migrate).count(), 17);
        assert_eq!(step("Freeze").unwrap().resource(), "FreezeActivity");
    }

    /// A step stops itself with room to spare: its budget, plus a minute for the chunk or
    /// check under way and its bookkeeping, fits its timeout, which fits Lambda's 900 s.
    #[test]
    fn budgets_fit_timeouts_and_timeouts_fit_lambda() {
        for s in STEPS {
            assert!(s.timeout <= LONG, "{}: timeout {:?}", s.name, s.timeout);
            assert!((128..=10_240).contains(&s.memory_mb), "{}", s.name);
            if let Some(b) = s.budget {
                assert!(
                    b + Duration::from_secs(60) <= s.timeout,
                    "{}: budget {b:?} leaves under a minute of its timeout {:?}",
                    s.name,
                    s.timeout
                );
            }
        }
    }

    /// The sides of the design: the source side is the source's checks, the freeze, the
    /// export, the file sync, the source half of verify and the source half of the
    /// rollback. Nothing unfreezes the source after the switch.
    #[test]
    fn sides_are_the_designs() {
        let of = |side| -> BTreeSet<&str> { names_on(side).into_iter().collect() };
        assert_eq!(
            of(Side::Source),
            BTreeSet::from([
                "Freeze",
                "PlanExport",
                "ExportDatabase",
                "SealExport",
                "SyncFiles",
                "CheckSource",
                "VerifySource",
                "RestoreSource",
            ])
        );
        assert!(steps_of(InstanceKind::Provision).all(|s| s.side == Side::Target));
    }

    #[test]
    fn a_rollback_reads_the_lambda_message_of_its_cause() {
        let input = serde_json::json!({"error": {"Error": "A2A.Permanent",
            "Cause": "{\"errorType\":\"A2A.Permanent\",\"errorMessage\":\"no table\"}"}});
        assert_eq!(failure(&input), "A2A.Permanent: no table");
        assert_eq!(failure(&serde_json::json!({})), "unknown: ");
    }

    #[test]
    fn a_rollback_reads_what_the_restore_left() {
        let reported = serde_json::json!({"restore": {"maintenance_setting_error": "no db"}});
        assert_eq!(restore_left(&reported).as_deref(), Some("no db"));
        let caught = serde_json::json!({"restore": {"Error": "States.HeartbeatTimeout",
            "Cause": "no worker"}});
        let left = restore_left(&caught).unwrap();
        assert!(
            left.contains("States.HeartbeatTimeout") && left.contains("by hand"),
            "{left}"
        );
        let done = serde_json::json!({"restore": {"restored": true}});
        assert_eq!(restore_left(&done), None);
        assert_eq!(restore_left(&serde_json::json!({})), None);
    }
}

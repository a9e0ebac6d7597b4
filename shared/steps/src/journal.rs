//! The journal of an attempt: the result of every step that finished in it, kept in the
//! stage (`stage/<code>/journal/<attempt>/<Step>-<input hash>.json`) before the step's end
//! event is recorded. A step called again in the same attempt with the same input returns
//! its kept result instead of running again. That is how an execution lost with the local
//! runner's process (or a Lambda whose answer was lost) resumes: it is started again under
//! its name, and its finished steps are passed over, each in an instant, up to the one
//! that was cut short, which starts its own work again from what it finds.
//!
//! The catch path (`RestoreSource`, `Rollback`, `Deprovision`) is never journaled. Its
//! start marks the attempt as being undone (`undoing.json` in its journal, with the error
//! that caught it): from then on a step of the forward path called in that attempt fails
//! at once with that error, so a resumed execution goes straight back to its catch and
//! finishes undoing, as Step Functions would have gone on with it, instead of doing again
//! what was being undone.

use a2a_core::{BlobKey, SchoolCode, Status};
use a2a_files::layout;
use serde_json::{Value, json};

use crate::common::{get_json, put_json};
use crate::{Step, StepContext, StepError};

tokio::task_local! {
    /// The journal entry of the step this task runs (its name and input hash).
    static ENTRY: String;
}

/// The journal entry that marks an attempt as being undone by its catch path.
const UNDOING: &str = "undoing";

/// Whether `step`'s result is journaled: every step but those of the catch path.
pub(crate) fn journaled(step: &str) -> bool {
    !matches!(step, "RestoreSource" | "Rollback" | "Deprovision")
}

/// FNV-1a, 64 bits: a hash of the input that stays the same across builds.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The entry of `step` called with `input` (serde_json orders an object's keys, so the
/// same input always prints the same).
fn entry(step: &str, input: &Value) -> String {
    format!("{step}-{:016x}", fnv(&input.to_string()))
}

fn key(code: &SchoolCode, attempt: u32, entry: &str) -> Result<BlobKey, StepError> {
    Ok(BlobKey::parse(&format!(
        "{}{entry}.json",
        layout::journal_root(code, attempt)
    ))?)
}

/// The attempt of `code` when one is under way (its instance is past the start and not
/// yet active or ended); `None` otherwise: nothing is kept or returned then.
async fn attempt_of(ctx: &StepContext, code: &SchoolCode) -> Result<Option<u32>, StepError> {
    let Some(i) = ctx.store.get(code).await? else {
        return Ok(None);
    };
    let under_way = matches!(
        i.status,
        Status::Running | Status::Migrated | Status::Provisioned | Status::Verified
    );
    Ok(under_way.then_some(i.attempt))
}

/// Runs `step`, or returns the result it had in this attempt already.
pub(crate) async fn call(
    ctx: &StepContext,
    step: &Step,
    code: &SchoolCode,
    input: &Value,
) -> Result<Value, StepError> {
    let attempt = attempt_of(ctx, code).await?;
    if !journaled(step.name) {
        if let Some(a) = attempt {
            let mark = key(code, a, UNDOING)?;
            if get_json::<Value>(ctx, &mark).await?.is_none() {
                let why = json!({"step": step.name, "error": input.get("error")});
                put_json(ctx, &mark, &why).await?;
            }
        }
        return step.run(ctx, code, input).await;
    }
    refuse_if_undoing(ctx, code, attempt).await?;
    let entry = entry(step.name, input);
    if let Some(a) = attempt
        && let Some(done) = get_json::<Value>(ctx, &key(code, a, &entry)?).await?
    {
        tracing::info!(school_code = %code, step = step.name, attempt = a,
            "finished in this attempt already: its result is returned, it is not run again");
        return Ok(done);
    }
    ENTRY.scope(entry, step.run(ctx, code, input)).await
}

/// Fails with the catch's error when `attempt` of `code` is being undone. [`call`] asks
/// before a forward step runs; a step that changes the source asks again once it holds
/// the source's lock, since its catch may have begun meanwhile.
pub(crate) async fn refuse_if_undoing(
    ctx: &StepContext,
    code: &SchoolCode,
    attempt: Option<u32>,
) -> Result<(), StepError> {
    if let Some(a) = attempt
        && let Some(why) = get_json::<Value>(ctx, &key(code, a, UNDOING)?).await?
    {
        return Err(StepError::Permanent(format!(
            "school {code}: attempt {a} is being undone ({} began after {}); it is \
             undone again rather than done",
            why["step"].as_str().unwrap_or("the catch"),
            why["error"]
        )));
    }
    Ok(())
}

/// [`refuse_if_undoing`] for the attempt of `code` under way now.
pub(crate) async fn refuse_if_undoing_now(
    ctx: &StepContext,
    code: &SchoolCode,
) -> Result<(), StepError> {
    let attempt = attempt_of(ctx, code).await?;
    refuse_if_undoing(ctx, code, attempt).await
}

/// Keeps the result of the step this task runs, when it is final (a budgeted step that
/// stopped at its budget, `"complete": false`, is called again to go on, so it is not
/// kept). Called by the step's `run` before its end event is recorded.
pub(crate) async fn keep(
    ctx: &StepContext,
    code: &SchoolCode,
    result: &Value,
) -> Result<(), StepError> {
    let Ok(entry) = ENTRY.try_with(Clone::clone) else {
        return Ok(());
    };
    if result.get("complete") == Some(&Value::Bool(false)) {
        return Ok(());
    }
    if let Some(a) = attempt_of(ctx, code).await? {
        put_json(ctx, &key(code, a, &entry)?, result).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_names_the_step_and_its_input() {
        let a = entry(
            "ImportDatabase",
            &serde_json::json!({"school_code": "08012345", "part": 1}),
        );
        let b = entry(
            "ImportDatabase",
            &serde_json::json!({"part": 1, "school_code": "08012345"}),
        );
        let c = entry(
            "ImportDatabase",
            &serde_json::json!({"school_code": "08012345", "part": 2}),
        );
        assert_eq!(a, b, "the order of the keys does not matter");
        assert_ne!(a, c, "another part is another entry");
        assert!(a.starts_with("ImportDatabase-") && a.len() == "ImportDatabase-".len() + 16);
        assert!(!journaled("Rollback") && !journaled("Deprovision") && journaled("CloneTemplate"));
    }
}

//! The scheduler tick: reconcile, then (inside a window) retry, re-send and enqueue.

use a2a_core::{
    ExecutionStatus, Instance, InstanceKind, InstanceStore, ListFilter, Night, Outcome, PortError,
    SchoolCode, SnapshotState, Snapshots, Status, StepEvent, Wave, Window, WorkQueue, Workflows,
    list_all,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::{IN_FLIGHT, StartMessage};

/// The history step of a first enqueue; the nightly quota counts these.
pub const ENQUEUE_STEP: &str = "scheduler.enqueue";
/// The history step of a retry's enqueue (not counted against the quota).
pub const RETRY_STEP: &str = "scheduler.retry";
/// The history step of an operator's retry (`a2a retry`), not counted against the quota.
pub const OPERATOR_RETRY_STEP: &str = "operator.retry";
/// The history step of an operator's cancel (`a2a cancel`).
pub const OPERATOR_CANCEL_STEP: &str = "operator.cancel";
/// The history step of a reconciliation.
pub const RECONCILE_STEP: &str = "scheduler.reconcile";
/// The history step of a cleanup that reconciliation started: the rollback (or
/// deprovision) of an attempt whose execution ended without its Catch.
pub const CLEANUP_STEP: &str = "scheduler.cleanup";
/// Cleanups per attempt at most: after that many, the instance is `failed`, and its
/// history says what is left.
pub const MAX_CLEANUPS: usize = 3;

/// The scheduler's rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// When new runs may start. Empty: never.
    pub windows: Vec<Window>,
    /// New instances enqueued per night at most (retries are not counted).
    pub nightly_quota: usize,
    /// Runs per instance at most: a failed instance with this many is left for a person.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles with every further attempt.
    pub retry_backoff: Duration,
    /// An execution running longer than this is stopped and its instance failed.
    pub max_duration: Duration,
    /// A `queued` instance unchanged this long has its message sent again (a tick that
    /// died between the status move and the send leaves it so; duplicates are harmless).
    pub requeue_after: Duration,
}

impl Policy {
    /// The rules with these windows and the defaults: 150 a night, 3 attempts, back-off
    /// from 15 minutes, 6 hours at most per execution, re-send after 2 hours.
    pub fn new(windows: Vec<Window>) -> Self {
        Self {
            windows,
            nightly_quota: 150,
            max_attempts: 3,
            retry_backoff: Duration::minutes(15),
            max_duration: Duration::hours(6),
            requeue_after: Duration::hours(2),
        }
    }

    /// The wait after a failure of an instance that has run `attempt` times.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.retry_backoff * (1i32 << doublings)
    }

    /// The window opening that contains `now`, if any (the earliest opened, if several).
    pub fn night_at(&self, now: DateTime<Utc>) -> Option<Night> {
        self.windows.iter().filter_map(|w| w.night_at(now)).min()
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TickReport {
    /// The window opening the tick ran in; `None` outside every window.
    pub night: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// New instances enqueued now.
    pub enqueued: Vec<SchoolCode>,
    /// Counted against tonight's quota before this tick.
    pub enqueued_before: usize,
    /// Failed or rolled-back instances enqueued again, with the attempt their message
    /// asks for.
    pub retried: Vec<(SchoolCode, u32)>,
    /// Failed or rolled-back instances out of attempts, left for a person.
    pub exhausted: Vec<SchoolCode>,
    /// Queued instances whose message was sent again.
    pub resent: Vec<SchoolCode>,
    /// Instances whose real outcome was recorded, with their new status.
    pub reconciled: Vec<(SchoolCode, Status)>,
    /// Executions stopped for running past the maximum duration.
    pub stopped: Vec<SchoolCode>,
    /// Cleanup executions started (their ids): the rollback of an attempt whose
    /// execution was stopped, timed out or failed without its Catch.
    pub cleanups: Vec<String>,
    /// In-flight instances not checked, because no workflow engine was given.
    pub unchecked: usize,
    /// Versioned moves lost to another writer (another tick, a step): left to it.
    pub lost_races: usize,
    /// A wave held back until its snapshot of the target databases is made: the
    /// snapshot's id.
    pub waiting_for_snapshot: Option<String>,
    /// Per-instance problems that did not stop the tick.
    pub problems: Vec<String>,
}

/// One scheduler tick at `now`. Reconciles in-flight instances (always, when `workflows`
/// is given); inside a window, also retries failed instances whose back-off has passed,
/// re-sends stale `queued` ones, and enqueues registered ones by wave, then priority
/// (higher first), then code, up to the nightly quota. Outside every window nothing is
/// enqueued. Idempotent: every move is a versioned save, so of two ticks at once only one
/// moves an instance.
pub async fn tick(
    store: &dyn InstanceStore,
    queue: &dyn WorkQueue,
    workflows: Option<&dyn Workflows>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<TickReport, PortError> {
    tick_with(store, queue, workflows, None, policy, now).await
}

/// [`tick`], and before the first instance of a wave is enqueued, a snapshot of the target
/// databases ([`snapshot_id`]): the wave waits, tick after tick, until it is available.
pub async fn tick_with(
    store: &dyn InstanceStore,
    queue: &dyn WorkQueue,
    workflows: Option<&dyn Workflows>,
    snapshots: Option<&dyn Snapshots>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<TickReport, PortError> {
    let mut report = TickReport::default();
    reconcile(store, workflows, policy, now, &mut report).await?;
    let Some(night) = policy.night_at(now) else {
        return Ok(report);
    };
    report.night = Some((night.opens, night.closes));
    retry(store, queue, policy, now, &mut report).await?;
    resend(store, queue, policy, now, &mut report).await?;
    report.enqueued_before = enqueued_in(store, night).await?;
    let room = policy.nightly_quota.saturating_sub(report.enqueued_before);
    if room == 0 {
        return Ok(report);
    }
    let mut waiting = list_all(store, ListFilter::status(Status::Registered)).await?;
    waiting.sort_by(|a, b| {
        (a.wave, -i64::from(a.priority), &a.code).cmp(&(b.wave, -i64::from(b.priority), &b.code))
    });
    let mut cleared: Option<Wave> = None;
    for inst in waiting {
        if report.enqueued.len() >= room {
            break;
        }
        if let Some(snap) = snapshots
            && cleared != Some(inst.wave)
        {
            if !wave_may_start(store, snap, inst.wave, &mut report).await? {
                break;
            }
            cleared = Some(inst.wave);
        }
        let code = inst.code.clone();
        if enqueue(store, queue, inst, ENQUEUE_STEP, now, &mut report).await? {
            report.enqueued.push(code);
        }
    }
    Ok(report)
}

/// The id of the snapshot taken before `wave` starts.
pub fn snapshot_id(wave: Wave) -> String {
    format!("wave-{}", wave.0)
}

/// Whether the first instances of `wave` may be enqueued: the wave has started already,
/// or its snapshot is available. Otherwise the snapshot is started (or checked) and the
/// report says what the wave waits for.
async fn wave_may_start(
    store: &dyn InstanceStore,
    snapshots: &dyn Snapshots,
    wave: Wave,
    report: &mut TickReport,
) -> Result<bool, PortError> {
    let filter = ListFilter {
        status: None,
        wave: Some(wave),
    };
    if list_all(store, filter)
        .await?
        .iter()
        .any(|i| i.status != Status::Registered)
    {
        return Ok(true);
    }
    let id = snapshot_id(wave);
    match snapshots.ensure(&id).await? {
        SnapshotState::Available => Ok(true),
        SnapshotState::Creating => {
            tracing::info!(wave = wave.0, snapshot = id, "wave waits for its snapshot");
            report.waiting_for_snapshot = Some(id);
            Ok(false)
        }
        SnapshotState::Failed(why) => {
            report.problems.push(format!(
                "wave {}: snapshot {id} failed: {why}; the wave waits",
                wave.0
            ));
            report.waiting_for_snapshot = Some(id);
            Ok(false)
        }
    }
}

/// An operator's retry of one school (`a2a retry`): a `failed` or `rolled_back` instance
/// moved back to `queued`, the move recorded as [`OPERATOR_RETRY_STEP`], and its start
/// message sent, whatever its attempts and back-off (the scheduler's limits are for
/// automatic retries). Returns the instance as saved, or why nothing changed.
pub async fn retry_now(
    store: &dyn InstanceStore,
    queue: &dyn WorkQueue,
    code: &SchoolCode,
    now: DateTime<Utc>,
) -> Result<Result<Instance, String>, PortError> {
    let Some(inst) = store.get(code).await? else {
        return Ok(Err(format!("school {code} is not in the state")));
    };
    if !matches!(inst.status, Status::Failed | Status::RolledBack) {
        return Ok(Err(format!(
            "school {code} is {}: only a failed or rolled-back school is retried",
            inst.status
        )));
    }
    let mut report = TickReport::default();
    if enqueue(store, queue, inst, OPERATOR_RETRY_STEP, now, &mut report).await? {
        Ok(store
            .get(code)
            .await?
            .ok_or_else(|| format!("school {code} vanished from the state")))
    } else if report.lost_races > 0 {
        Ok(Err(format!(
            "school {code} changed meanwhile (a tick or a step moved it); look again"
        )))
    } else {
        Ok(Err(report.problems.join("; ")))
    }
}

/// An operator's cancel of one school (`a2a cancel`), through the legal moves, recorded as
/// [`OPERATOR_CANCEL_STEP`]: a `queued` school is moved to `failed` (its start message is
/// then stale to the dispatcher); a school in flight has its execution stopped and the
/// same rollback started as reconciliation starts for a stopped execution, so that it ends
/// `rolled_back` (the next reconciliation follows that cleanup). An in-flight school
/// needs the workflow engine. Returns what changed, or why nothing did.
pub async fn cancel_now(
    store: &dyn InstanceStore,
    workflows: Option<&dyn Workflows>,
    code: &SchoolCode,
    now: DateTime<Utc>,
) -> Result<Result<String, String>, PortError> {
    let Some(inst) = store.get(code).await? else {
        return Ok(Err(format!("school {code} is not in the state")));
    };
    let why = "cancelled by an operator".to_owned();
    let changed =
        || format!("school {code} changed meanwhile (a tick or a step moved it); look again");
    if inst.status == Status::Queued
        || (IN_FLIGHT.contains(&inst.status) && inst.execution.is_none())
    {
        let from = inst.status;
        let mut i = inst;
        if let Err(e) = i.move_to(Status::Failed, now) {
            return Ok(Err(e.to_string()));
        }
        i.last_error = Some(why.clone());
        match store.save(&i).await {
            Ok(_) => {}
            Err(PortError::Conflict(_)) => return Ok(Err(changed())),
            Err(e) => return Err(e),
        }
        store
            .record(code, &event(OPERATOR_CANCEL_STEP, now, Some(why)))
            .await?;
        return Ok(Ok(format!(
            "{from} → failed: no execution had started; its start message is ignored now"
        )));
    }
    if !IN_FLIGHT.contains(&inst.status) {
        return Ok(Err(format!(
            "school {code} is {}: only a queued or running school is cancelled",
            inst.status
        )));
    }
    let Some(wf) = workflows else {
        return Ok(Err(format!(
            "school {code} is {} with an execution under way: give the state machines' \
             ARNs to stop it",
            inst.status
        )));
    };
    let id = inst.execution.clone().unwrap_or_default();
    let running = match wf.describe(&id).await {
        Ok(info) => info.status == ExecutionStatus::Running,
        Err(PortError::NotFound(_)) => false,
        Err(e) => return Err(e),
    };
    if running {
        wf.stop(&id, "A2A.Cancelled", &why).await?;
    }
    store
        .record(code, &event(OPERATOR_CANCEL_STEP, now, Some(why.clone())))
        .await?;
    let mut report = TickReport::default();
    clean_up(store, wf, inst, "A2A.Cancelled", why, now, &mut report).await?;
    let stopped = if running { "stopped" } else { "had ended" };
    Ok(match (report.cleanups.first(), report.reconciled.first()) {
        (Some(c), _) => Ok(format!(
            "execution {id} {stopped}; its rollback runs as {c}, and the school ends rolled_back"
        )),
        (None, Some((_, s))) => Ok(format!(
            "execution {id} {stopped}; its rollback did not finish in {MAX_CLEANUPS} runs: now {s}"
        )),
        (None, None) if report.lost_races > 0 => Err(changed()),
        (None, None) => Err(report.problems.join("; ")),
    })
}

pub(crate) fn event(step: &str, now: DateTime<Utc>, error: Option<String>) -> StepEvent {
    StepEvent {
        step: step.to_owned(),
        started_at: now,
        ended_at: Some(now),
        outcome: if error.is_some() {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        },
        rows: None,
        bytes: None,
        error,
    }
}

/// Moves `inst` to `queued` (a versioned save), records `step`, sends its message.
/// `Ok(false)`: another writer moved it first.
async fn enqueue(
    store: &dyn InstanceStore,
    queue: &dyn WorkQueue,
    mut inst: Instance,
    step: &str,
    now: DateTime<Utc>,
    report: &mut TickReport,
) -> Result<bool, PortError> {
    if let Err(e) = inst.move_to(Status::Queued, now) {
        report.problems.push(e.to_string());
        return Ok(false);
    }
    let saved = match store.save(&inst).await {
        Ok(s) => s,
        Err(PortError::Conflict(_)) => {
            report.lost_races += 1;
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    store.record(&saved.code, &event(step, now, None)).await?;
    let body = StartMessage {
        school_code: saved.code.clone(),
        attempt: saved.attempt + 1,
    }
    .to_body();
    if let Err(e) = queue.send(&[body]).await {
        // Not left `queued` with no message: failed, so a later tick retries it.
        let why = format!("could not enqueue: {e}");
        let mut back = saved;
        if back.move_to(Status::Failed, now).is_ok() {
            back.last_error = Some(why.clone());
            if let Err(e2) = store.save(&back).await {
                report
                    .problems
                    .push(format!("school {}: {why}; then {e2}", back.code));
            }
        }
        return Err(e);
    }
    tracing::info!(school_code = %saved.code, attempt = saved.attempt + 1, step, "enqueued");
    Ok(true)
}

/// How many first enqueues happened in `night`: the instances touched since it opened,
/// and of those the ones whose history holds an enqueue inside it.
async fn enqueued_in(store: &dyn InstanceStore, night: Night) -> Result<usize, PortError> {
    let mut n = 0;
    for inst in list_all(store, ListFilter::default()).await? {
        if inst.status == Status::Registered || inst.updated_at < night.opens {
            continue;
        }
        let history = store.history(&inst.code).await?;
        if history.iter().any(|e| {
            e.step == ENQUEUE_STEP && e.started_at >= night.opens && e.started_at < night.closes
        }) {
            n += 1;
        }
    }
    Ok(n)
}

/// Failed and rolled-back instances whose back-off has passed, enqueued again while they
/// have attempts left.
async fn retry(
    store: &dyn InstanceStore,
    queue: &dyn WorkQueue,
    policy: &Policy,
    now: DateTime<Utc>,
    report: &mut TickReport,
) -> Result<(), PortError> {
    let mut ended = list_all(store, ListFilter::status(Status::Failed)).await?;
    ended.extend(list_all(store, ListFilter::status(Status::RolledBack)).await?);
    for inst in ended {
        if inst.attempt >= policy.max_attempts {
            report.exhausted.push(inst.code.clone());
            continue;
        }
        if now < inst.updated_at + policy.backoff(inst.attempt) {
            continue;
        }
        let (code, next) = (inst.code.clone(), inst.attempt + 1);
        if enqueue(store, queue, inst, RETRY_STEP, now, report).await? {
            report.retried.push((code, next));
        }
    }
    Ok(())
}

async fn resend(
    store: &dyn InstanceStore,
    queue: &dyn WorkQueue,
    policy: &Policy,
    now: DateTime<Utc>,
    report: &mut TickReport,
) -> Result<(), PortError> {
    for mut inst in list_all(store, ListFilter::status(Status::Queued)).await? {
        if now < inst.updated_at + policy.requeue_after {
            continue;
        }
        // The save claims the re-send, so two ticks send it once, and the next re-send
        // waits another interval.
        inst.updated_at = now;
        let saved = match store.save(&inst).await {
            Ok(s) => s,
            Err(PortError::Conflict(_)) => {
                report.lost_races += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let body = StartMessage {
            school_code: saved.code.clone(),
            attempt: saved.attempt + 1,
        }
        .to_body();
        queue.send(&[body]).await?;
        report.resent.push(saved.code);
    }
    Ok(())
}

/// The kind's "done" status.
fn done(kind: InstanceKind) -> Status {
    match kind {
        InstanceKind::Migrate => Status::Migrated,
        InstanceKind::Provision => Status::Provisioned,
    }
}

async fn reconcile(
    store: &dyn InstanceStore,
    workflows: Option<&dyn Workflows>,
    policy: &Policy,
    now: DateTime<Utc>,
    report: &mut TickReport,
) -> Result<(), PortError> {
    for s in IN_FLIGHT {
        for inst in list_all(store, ListFilter::status(s)).await? {
            let code = inst.code.clone();
            let Some(id) = inst.execution.clone() else {
                // Moved to running, but no start was recorded: give it the same time limit.
                if now - inst.updated_at > policy.max_duration {
                    let why = format!(
                        "no workflow execution was recorded for attempt {} within {} minutes",
                        inst.attempt,
                        policy.max_duration.num_minutes()
                    );
                    fail(store, inst, why, now, report).await?;
                }
                continue;
            };
            let Some(wf) = workflows else {
                report.unchecked += 1;
                continue;
            };
            let info = match wf.describe(&id).await {
                Ok(info) => info,
                Err(PortError::NotFound(_)) => {
                    let why = format!("the workflow engine knows no execution {id}");
                    fail(store, inst, why, now, report).await?;
                    continue;
                }
                Err(e) => {
                    report
                        .problems
                        .push(format!("school {code}: describing {id}: {e}"));
                    continue;
                }
            };
            match info.status {
                ExecutionStatus::Running => {
                    if now - info.started_at > policy.max_duration {
                        let cause = format!(
                            "ran past the maximum duration of {} minutes",
                            policy.max_duration.num_minutes()
                        );
                        wf.stop(&id, "A2A.MaxDuration", &cause).await?;
                        report.stopped.push(code.clone());
                        let why = format!("stopped: {cause}");
                        clean_up(store, wf, inst, "A2A.MaxDuration", why, now, report).await?;
                    }
                }
                ExecutionStatus::Succeeded if is_cleanup(&id) => {
                    // A cleanup never succeeds in its state machine (it ends in `Failed`);
                    // one that did, with the school still in flight, did not roll it back.
                    let why = format!("cleanup execution {id} ended without rolling back");
                    clean_up(store, wf, inst, "A2A.Cleanup", why, now, report).await?;
                }
                ExecutionStatus::Succeeded => {
                    // The execution verified and switched the route; its last record was
                    // lost. Walk the legal moves to where it really is.
                    let mut inst = inst;
                    while inst.status != Status::Active {
                        let to = match inst.status {
                            Status::Running => done(inst.kind),
                            Status::Verified => Status::Active,
                            _ => Status::Verified,
                        };
                        if inst.move_to(to, now).is_err() {
                            break;
                        }
                    }
                    inst.last_error = None;
                    save_reconciled(store, inst, None, now, report).await?;
                }
                ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted => {
                    // Still in flight, so its own Catch did not finish: a stop, a timeout,
                    // or a rollback that failed. The same rollback runs now.
                    let error = info.error.as_deref().unwrap_or("no error name");
                    let why = format!(
                        "execution {id} ended {:?}: {error}: {}",
                        info.status,
                        info.cause.as_deref().unwrap_or("no cause given")
                    );
                    let error = error.to_owned();
                    clean_up(store, wf, inst, &error, why, now, report).await?;
                }
            }
        }
    }
    Ok(())
}

/// Whether the execution `id` (a name, or an ARN ending with it) is a cleanup that
/// [`clean_up`] started.
pub(crate) fn is_cleanup(id: &str) -> bool {
    cleanup_number(id) > 0
}

/// The `n` of a cleanup execution `…-cleanup-<n>` (a name, or an ARN ending with it);
/// 0 for any other execution.
fn cleanup_number(id: &str) -> usize {
    a2a_core::execution_name_of(id)
        .rsplit_once("-cleanup-")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

/// The input of a cleanup execution of `code`, for an attempt that ended with `error`
/// (its name) because of `why`.
pub(crate) fn cleanup_input(
    code: &a2a_core::SchoolCode,
    error: &str,
    why: &str,
) -> serde_json::Value {
    serde_json::json!({
        "school_code": code.as_str(),
        "cleanup": true,
        "error": {"Error": error, "Cause": why},
    })
}

/// Starts the cleanup of `inst`, whose execution ended (`why`, with the error name
/// `error`) without its Catch having rolled it back: an execution of its own workflow with
/// `{"cleanup": true, "error": …}`, which runs only the rollback (`RestoreSource` then
/// `Rollback`, or `Deprovision`), the same steps as a caught error, on the same sides.
/// Its name is the attempt's with `-cleanup-<n>` (`n` one more than the cleanup that
/// ended, which the instance records); the instance stays in flight and records the new
/// one, so that the next reconciliation follows it. After [`MAX_CLEANUPS`] of them the
/// instance is `failed`: the cleanups' failed steps in its history say what is left, and
/// a retry runs the workflow again.
async fn clean_up(
    store: &dyn InstanceStore,
    wf: &dyn Workflows,
    mut inst: Instance,
    error: &str,
    why: String,
    now: DateTime<Utc>,
    report: &mut TickReport,
) -> Result<(), PortError> {
    // The cleanups of this attempt so far: the number of the one that ended, if any.
    let done = inst.execution.as_deref().map_or(0, cleanup_number);
    if done >= MAX_CLEANUPS {
        let why = format!(
            "{why}; the rollback did not finish in {done} cleanup runs: the school's history \
             names what is left (the failed rollback steps); fix that, then retry the school"
        );
        return fail(store, inst, why, now, report).await;
    }
    let name = format!(
        "{}-cleanup-{}",
        a2a_core::execution_name(&inst.code, inst.kind, inst.attempt),
        done + 1
    );
    let input = cleanup_input(&inst.code, error, &why);
    let id = match wf.start(inst.kind, &name, input).await? {
        a2a_core::StartOutcome::Started(id) | a2a_core::StartOutcome::AlreadyExists(id) => id,
    };
    inst.execution = Some(id.clone());
    inst.last_error = Some(why.clone());
    inst.updated_at = now;
    match store.save(&inst).await {
        Ok(saved) => {
            store
                .record(&saved.code, &event(CLEANUP_STEP, now, Some(why.clone())))
                .await?;
            tracing::info!(school_code = %saved.code, execution = id, why, "cleanup started");
            report.cleanups.push(id);
            Ok(())
        }
        Err(PortError::Conflict(_)) => {
            report.lost_races += 1;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn fail(
    store: &dyn InstanceStore,
    mut inst: Instance,
    why: String,
    now: DateTime<Utc>,
    report: &mut TickReport,
) -> Result<(), PortError> {
    if let Err(e) = inst.move_to(Status::Failed, now) {
        report.problems.push(e.to_string());
        return Ok(());
    }
    inst.last_error = Some(why.clone());
    save_reconciled(store, inst, Some(why), now, report).await
}

async fn save_reconciled(
    store: &dyn InstanceStore,
    inst: Instance,
    why: Option<String>,
    now: DateTime<Utc>,
    report: &mut TickReport,
) -> Result<(), PortError> {
    match store.save(&inst).await {
        Ok(saved) => {
            store
                .record(&saved.code, &event(RECONCILE_STEP, now, why.clone()))
                .await?;
            tracing::info!(school_code = %saved.code, status = %saved.status, why, "reconciled");
            report.reconciled.push((saved.code, saved.status));
            Ok(())
        }
        Err(PortError::Conflict(_)) => {
            report.lost_races += 1;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

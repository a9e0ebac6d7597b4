//! The local runner: the scheduler and the dispatcher together in one process, as the
//! EventBridge schedule and the SQS event source join them in AWS. It ticks, drains the
//! queue through the dispatcher, waits for the executions it started, and goes on until
//! every instance of a list has ended: `active`, or out of attempts.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use a2a_core::{
    ExecutionStatus, InstanceStore, PortError, SchoolCode, StartOutcome, Status, StepEvent,
    WorkQueue, Workflows, clock, execution_name,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::{Delivery, Dispatched, Dispatcher, IN_FLIGHT, Policy, tick};

/// The history step of an execution that the runner started again under its name, in the
/// same attempt, because the workflow engine had lost it (it died with an earlier
/// process of the runner). It opens no attempt: the attempt goes on.
pub const RESUME_STEP: &str = "runner.resume";

/// How long a received message stays hidden while its batch is dispatched. Deferred
/// messages are sent again at the end of the round, so this only has to outlast a round.
const HIDE: std::time::Duration = std::time::Duration::from_secs(3600);

/// How often the runner looks at the executions it waits for.
const POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The time the runner goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// The wall clock: outside a window the runner waits for the next one to open.
    Real,
    /// The process clock ([`a2a_core::clock`]) jumps over idle time: when nothing is
    /// running, it moves straight on to the next tick.
    Virtual,
}

/// What the runner needs.
pub struct Runner {
    /// The state store.
    pub store: Arc<dyn InstanceStore>,
    /// The fan-out queue (the in-process queue, locally).
    pub queue: Arc<dyn WorkQueue>,
    /// The workflow engine (the local ASL engine, locally).
    pub workflows: Arc<dyn Workflows>,
    /// Windows, nightly quota, attempts, back-off.
    pub policy: Policy,
    /// Executions in flight at most, as the dispatcher counts them from the store.
    pub max_running: usize,
    /// Real or virtual time.
    pub clock: ClockMode,
    /// Time between scheduler ticks (as the EventBridge schedule's rate).
    pub tick_every: Duration,
    /// The runner gives up when its clock has gone this far with instances left.
    pub horizon: Duration,
}

/// What happened in one night (one window opening).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NightReport {
    /// When the window opened.
    pub opens: DateTime<Utc>,
    /// When it closed.
    pub closes: DateTime<Utc>,
    /// New instances enqueued (counted against the quota).
    pub enqueued: usize,
    /// Failed instances enqueued again.
    pub retried: usize,
    /// Executions started.
    pub started: usize,
    /// Of those, the ones that succeeded.
    pub succeeded: usize,
    /// Of those, the ones that failed, timed out or were stopped.
    pub failed: usize,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// Night by night, in order.
    pub nights: Vec<NightReport>,
    /// Scheduler ticks.
    pub ticks: usize,
    /// Executions started, over all nights.
    pub started: usize,
    /// Messages that found their execution already started (duplicates): not run again.
    pub duplicates: usize,
    /// Executions lost with an earlier process of the runner and started again under
    /// their names, in the same attempt (their finished steps are not run again).
    pub resumed: usize,
    /// The most executions that ran at one time, from the step events recorded in the
    /// instances' histories.
    pub max_in_flight: usize,
    /// Messages that were not start messages, with the reason (for the dead letters).
    pub malformed: Vec<String>,
    /// Instances of the list now active.
    pub active: usize,
    /// Instances that ended without becoming active, with their status and last error.
    pub left: Vec<(SchoolCode, Status, String)>,
    /// Instances still on their way when the horizon was reached.
    pub unfinished: Vec<SchoolCode>,
    /// Problems the ticks reported (they did not stop the run).
    pub problems: Vec<String>,
}

/// Where a run stands, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The runner's clock.
    pub now: DateTime<Utc>,
    /// Instances of the list that have ended.
    pub done: usize,
    /// Instances of the list.
    pub total: usize,
    /// Executions being waited for.
    pub running: usize,
    /// Whether a window is open.
    pub open: bool,
}

impl Runner {
    /// Runs `codes` to their end. Instances already `active` count as done; a `queued`
    /// one left by an earlier run (its in-process message died with it) is sent again at
    /// the first tick inside a window.
    pub async fn run(
        &self,
        codes: &[SchoolCode],
        on_progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<RunReport, PortError> {
        let mut report = RunReport::default();
        let mut nights: BTreeMap<DateTime<Utc>, NightReport> = BTreeMap::new();
        let dispatcher =
            Dispatcher::new(self.store.clone(), self.workflows.clone(), self.max_running)
                .with_windows(self.policy.windows.clone());
        // The first tick re-sends every queued instance at once: no message of an
        // earlier process survives it.
        let mut first = self.policy.clone();
        first.requeue_after = Duration::zero();
        if self.clock == ClockMode::Virtual {
            // A virtual clock starts where an earlier run's left off, never before its
            // records: back-off, re-sends and time limits read them against it.
            clock::skip_to(latest_record(&*self.store, codes).await?);
        }
        // Before the first tick, whose reconciliation would fail them: executions that
        // died with an earlier process go on in the same attempt.
        let mut resumed = self.resume(codes).await?;
        report.resumed = resumed.len();
        let begin = clock::now();
        loop {
            let now = clock::now();
            let policy = if report.ticks == 0 {
                &first
            } else {
                &self.policy
            };
            let t = tick(
                &*self.store,
                &*self.queue,
                Some(&*self.workflows),
                policy,
                now,
            )
            .await?;
            report.ticks += 1;
            report.problems.extend(t.problems);
            // The cleanups that reconciliation started end before new executions start
            // (a cleanup's school leaves the cap's count a moment before its execution
            // ends), and the starts are recorded after them.
            let now = if t.cleanups.is_empty() {
                now
            } else {
                self.wait(&t.cleanups).await?;
                clock::now()
            };
            let night = t.night.map(|(opens, closes)| {
                nights.entry(opens).or_insert(NightReport {
                    opens,
                    closes,
                    enqueued: 0,
                    retried: 0,
                    started: 0,
                    succeeded: 0,
                    failed: 0,
                })
            });
            let mut started = match night {
                Some(n) => {
                    n.enqueued += t.enqueued.len();
                    n.retried += t.retried.len();
                    let started = self.pump(&dispatcher, now, &mut report).await?;
                    n.started += started.len();
                    started
                }
                None => Vec::new(),
            };
            // Resumed executions are waited for in the first round, as if just started.
            started.append(&mut resumed);

            let before = self.tally(codes).await?;
            on_progress(Progress {
                now,
                done: codes.len() - before.pending.len(),
                total: codes.len(),
                running: started.len(),
                open: t.night.is_some(),
            });
            // Wait for this round's executions, then book their outcomes to the night.
            let outcomes = self.wait(&started).await?;
            if let Some((opens, _)) = t.night
                && let Some(n) = nights.get_mut(&opens)
            {
                n.succeeded += outcomes.0;
                n.failed += outcomes.1;
            }
            if started.is_empty() && before.pending.is_empty() {
                report.left = before.left;
                break;
            }
            if clock::now() - begin > self.horizon {
                // Counted again: this round's executions have ended since.
                let after = self.tally(codes).await?;
                report.left = after.left;
                report.unfinished = after.pending;
                break;
            }
            if !started.is_empty() {
                // The cap freed up as they ended: tick again now, as the next SQS
                // delivery would, rather than wait for the schedule.
                continue;
            }
            // Idle: the next tick of the schedule's grid.
            let since = (clock::now() - begin).num_milliseconds();
            let every = self.tick_every.num_milliseconds().max(1);
            let next_tick = begin + Duration::milliseconds((since / every + 1) * every);
            match self.clock {
                ClockMode::Virtual => clock::skip_to(next_tick),
                ClockMode::Real => {
                    let wait = (next_tick - clock::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                }
            }
        }
        report.active = codes.len() - report.left.len() - report.unfinished.len();
        report.max_in_flight = peak(&*self.store, codes).await?;
        report.nights = nights.into_values().collect();
        Ok(report)
    }

    /// Receives every visible message and dispatches it. Deferred messages (cap reached)
    /// are sent again after the round, as SQS would show them again after the
    /// visibility timeout, so that the round ends. The ids of new executions.
    async fn pump(
        &self,
        dispatcher: &Dispatcher,
        now: DateTime<Utc>,
        report: &mut RunReport,
    ) -> Result<Vec<String>, PortError> {
        let mut started = Vec::new();
        let mut again = Vec::new();
        loop {
            let got = self.queue.receive(10, HIDE).await?;
            if got.is_empty() {
                break;
            }
            let batch: Vec<Delivery> = got.into_iter().map(Delivery::from).collect();
            let r = dispatcher.dispatch(&batch, now).await;
            for ((id, outcome), d) in r.outcomes.iter().zip(&batch) {
                match outcome {
                    Dispatched::Started { execution, .. } => started.push(execution.clone()),
                    Dispatched::Duplicate { .. } => report.duplicates += 1,
                    Dispatched::Malformed { reason } => {
                        report.malformed.push(format!("{:?}: {reason}", d.body));
                    }
                    Dispatched::Deferred { .. } | Dispatched::Failed { .. } => {
                        again.push(d.body.clone());
                    }
                    Dispatched::Stale { .. } => {}
                }
                self.queue.delete(id).await?;
            }
        }
        if !again.is_empty() {
            self.queue.send(&again).await?;
        }
        report.started += started.len();
        Ok(started)
    }

    /// Starts again, under its name and in its attempt, the execution of every instance of
    /// `codes` in flight that the workflow engine does not know: it died with an earlier
    /// process of this runner (Step Functions would have kept it). No attempt is spent on
    /// it; the steps it finished return their journaled results instead of running again.
    /// The ids of the executions started.
    async fn resume(&self, codes: &[SchoolCode]) -> Result<Vec<String>, PortError> {
        let mut ids = Vec::new();
        for code in codes {
            let Some(mut inst) = self.store.get(code).await? else {
                continue;
            };
            if !IN_FLIGHT.contains(&inst.status) {
                continue;
            }
            // Under the name it had: a run a person started by hand is not the attempt's
            // own name, and the steps that claim the school know it by that name.
            let known = inst
                .execution
                .clone()
                .unwrap_or_else(|| execution_name(code, inst.kind, inst.attempt));
            let name = a2a_core::execution_name_of(&known).to_owned();
            match self.workflows.describe(&known).await {
                Ok(_) => continue,
                Err(PortError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            // A lost cleanup is started again as the cleanup it was: the workflow from its
            // start would run a migration over a target its rollback half removed.
            let cleanup = Some(name.as_str()).filter(|n| crate::tick::is_cleanup(n));
            let (name, input) = match cleanup {
                Some(cleanup) => {
                    let why = inst.last_error.clone().unwrap_or_default();
                    let input = crate::tick::cleanup_input(code, "A2A.Resumed", &why);
                    (cleanup.to_owned(), input)
                }
                None => (
                    name.clone(),
                    serde_json::json!({"school_code": code, "attempt": inst.attempt}),
                ),
            };
            let id = match self.workflows.start(inst.kind, &name, input).await? {
                StartOutcome::Started(id) | StartOutcome::AlreadyExists(id) => id,
            };
            let now = clock::now();
            self.store
                .record(code, &crate::tick::event(RESUME_STEP, now, None))
                .await?;
            tracing::info!(school_code = %code, attempt = inst.attempt, execution = id,
                "execution lost with an earlier run: started again in the same attempt");
            if inst.execution.as_deref() != Some(id.as_str()) {
                inst.execution = Some(id.clone());
                // Lost to a step that moved it meanwhile: the id is the name, found again
                // by the next resume.
                match self.store.save(&inst).await {
                    Ok(_) | Err(PortError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// Waits until none of `ids` is running; (succeeded, failed).
    async fn wait(&self, ids: &[String]) -> Result<(usize, usize), PortError> {
        let mut pending: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let (mut ok, mut bad) = (0, 0);
        while !pending.is_empty() {
            let mut ended = Vec::new();
            for id in &pending {
                let info = self.workflows.describe(id).await?;
                match info.status {
                    ExecutionStatus::Running => {}
                    ExecutionStatus::Succeeded => {
                        ok += 1;
                        ended.push(*id);
                    }
                    _ => {
                        bad += 1;
                        ended.push(*id);
                    }
                }
            }
            for id in ended {
                pending.remove(id);
            }
            if !pending.is_empty() {
                tokio::time::sleep(POLL).await;
            }
        }
        Ok((ok, bad))
    }

    /// Where `codes` stand: those that ended without becoming active (with status and
    /// last error), and those still on their way; the rest are active.
    async fn tally(&self, codes: &[SchoolCode]) -> Result<Tally, PortError> {
        let mut t = Tally::default();
        for code in codes {
            let Some(i) = self.store.get(code).await? else {
                t.left
                    .push((code.clone(), Status::Registered, "not registered".into()));
                continue;
            };
            let out_of_attempts = matches!(i.status, Status::Failed | Status::RolledBack)
                && i.attempt >= self.policy.max_attempts;
            if out_of_attempts {
                t.left.push((
                    code.clone(),
                    i.status,
                    i.last_error.unwrap_or_else(|| "no error recorded".into()),
                ));
            } else if i.status != Status::Active {
                t.pending.push(code.clone());
            }
        }
        Ok(t)
    }
}

/// The latest time recorded for `codes`: their instances' last changes and history events.
async fn latest_record(
    store: &dyn InstanceStore,
    codes: &[SchoolCode],
) -> Result<DateTime<Utc>, PortError> {
    let mut latest = DateTime::<Utc>::MIN_UTC;
    for code in codes {
        if let Some(i) = store.get(code).await? {
            latest = latest.max(i.updated_at);
        }
        for e in store.history(code).await? {
            latest = latest.max(e.ended_at.unwrap_or(e.started_at).max(e.started_at));
        }
    }
    Ok(latest)
}

/// What [`Runner::tally`] found.
#[derive(Default)]
struct Tally {
    left: Vec<(SchoolCode, Status, String)>,
    pending: Vec<SchoolCode>,
}

/// The executions recorded in one instance's history, as (start, end): each run of step
/// events between two scheduler events is one execution, and a dispatcher's start
/// ([`crate::START_STEP`]) begins one.
pub fn executions(history: &[StepEvent]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut run: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    for e in history {
        if e.step.starts_with("scheduler.") {
            out.extend(run.take());
            continue;
        }
        if e.step == crate::START_STEP {
            out.extend(run.take());
        }
        let end = e.ended_at.unwrap_or(e.started_at);
        run = Some(run.map_or((e.started_at, end), |(a, b)| {
            (a.min(e.started_at), b.max(end))
        }));
    }
    out.extend(run);
    out
}

/// The most executions of `codes` that ran at one instant, from their histories.
pub async fn peak(store: &dyn InstanceStore, codes: &[SchoolCode]) -> Result<usize, PortError> {
    let mut edges: Vec<(DateTime<Utc>, i32)> = Vec::new();
    for code in codes {
        for (a, b) in executions(&store.history(code).await?) {
            edges.extend([(a, 1), (b, -1)]);
        }
    }
    // At one instant an end comes before a start: a run is [start, end).
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    Ok(max as usize)
}

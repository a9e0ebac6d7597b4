//! Test doubles and helpers shared by the schedule tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use a2a_core::{
    ExecutionInfo, ExecutionStatus, Instance, InstanceKind, InstanceStore, PortError, StartOutcome,
    Wave, WorkQueue, Workflows,
};
use a2a_local::{MemQueue, SqliteStore};
use a2a_schedule::{Delivery, DispatchReport, Dispatcher};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// One execution the double knows.
#[derive(Debug, Clone)]
pub struct Exec {
    pub kind: InstanceKind,
    pub input: serde_json::Value,
    pub status: ExecutionStatus,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub stop_cause: Option<String>,
}

#[derive(Default)]
struct Inner {
    execs: BTreeMap<String, Exec>,
    calls: usize,
    clock: Option<DateTime<Utc>>,
}

/// A `Workflows` that records every start, is idempotent by name as Step Functions is,
/// and lets the test say how each execution ends.
#[derive(Default, Clone)]
pub struct Recording(Arc<Mutex<Inner>>);

const PREFIX: &str = "exec:";

impl Recording {
    /// The virtual time new executions start at.
    pub fn set_clock(&self, now: DateTime<Utc>) {
        self.0.lock().unwrap().clock = Some(now);
    }
    /// Names of every execution started, in name order.
    pub fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().execs.keys().cloned().collect()
    }
    /// Every start call, duplicates included.
    pub fn calls(&self) -> usize {
        self.0.lock().unwrap().calls
    }
    pub fn get(&self, name: &str) -> Option<Exec> {
        self.0.lock().unwrap().execs.get(name).cloned()
    }
    /// Ends every running execution: those whose name `fails` picks fail, the rest succeed.
    pub fn finish_running(&self, fails: impl Fn(&str) -> bool) {
        for (name, e) in self.0.lock().unwrap().execs.iter_mut() {
            if e.status == ExecutionStatus::Running {
                e.status = if fails(name) {
                    ExecutionStatus::Failed
                } else {
                    ExecutionStatus::Succeeded
                };
            }
        }
    }
    /// Ends every running execution at the clock's time, as `finish_running` does.
    pub fn finish_running_now(&self, fails: impl Fn(&str) -> bool) {
        let mut g = self.0.lock().unwrap();
        let now = g.clock.unwrap_or_else(Utc::now);
        for (name, e) in g.execs.iter_mut() {
            if e.status == ExecutionStatus::Running {
                e.status = if fails(name) {
                    ExecutionStatus::Failed
                } else {
                    ExecutionStatus::Succeeded
                };
                e.ended_at = Some(now);
            }
        }
    }

    /// The most executions that ran at one instant, from the recorded start and end times.
    pub fn max_concurrent(&self) -> usize {
        let g = self.0.lock().unwrap();
        let mut edges: Vec<(DateTime<Utc>, i32)> = Vec::new();
        for e in g.execs.values() {
            edges.push((e.started_at, 1));
            if let Some(end) = e.ended_at {
                edges.push((end, -1));
            }
        }
        // At one instant, ends come before starts: the interval is [start, end).
        edges.sort();
        let (mut now, mut max) = (0i32, 0i32);
        for (_, d) in edges {
            now += d;
            max = max.max(now);
        }
        max as usize
    }

    /// Every execution, by name.
    pub fn all(&self) -> Vec<(String, Exec)> {
        let g = self.0.lock().unwrap();
        g.execs
            .iter()
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect()
    }

    /// Ends the execution `name` as `status`, at the clock's time.
    pub fn end(&self, name: &str, status: ExecutionStatus) {
        let mut g = self.0.lock().unwrap();
        let now = g.clock.unwrap_or_else(Utc::now);
        if let Some(e) = g.execs.get_mut(name) {
            e.status = status;
            e.ended_at = Some(now);
        }
    }

    pub fn running(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .execs
            .values()
            .filter(|e| e.status == ExecutionStatus::Running)
            .count()
    }
}

#[async_trait]
impl Workflows for Recording {
    async fn start(
        &self,
        kind: InstanceKind,
        name: &str,
        input: serde_json::Value,
    ) -> Result<StartOutcome, PortError> {
        let mut g = self.0.lock().unwrap();
        g.calls += 1;
        let id = format!("{PREFIX}{name}");
        if g.execs.contains_key(name) {
            return Ok(StartOutcome::AlreadyExists(id));
        }
        let started_at = g.clock.unwrap_or_else(Utc::now);
        g.execs.insert(
            name.to_owned(),
            Exec {
                kind,
                input,
                status: ExecutionStatus::Running,
                started_at,
                ended_at: None,
                stop_cause: None,
            },
        );
        Ok(StartOutcome::Started(id))
    }

    async fn describe(&self, id: &str) -> Result<ExecutionInfo, PortError> {
        let g = self.0.lock().unwrap();
        let e = id
            .strip_prefix(PREFIX)
            .and_then(|n| g.execs.get(n))
            .ok_or_else(|| PortError::NotFound(id.to_owned()))?;
        Ok(ExecutionInfo {
            id: id.to_owned(),
            status: e.status,
            started_at: e.started_at,
            stopped_at: None,
            output: None,
            error: (e.status == ExecutionStatus::Failed).then(|| "States.TaskFailed".into()),
            cause: (e.status == ExecutionStatus::Failed).then(|| "injected".into()),
        })
    }

    async fn stop(&self, id: &str, _error: &str, cause: &str) -> Result<(), PortError> {
        let mut g = self.0.lock().unwrap();
        let e = id
            .strip_prefix(PREFIX)
            .and_then(|n| g.execs.get_mut(n))
            .ok_or_else(|| PortError::NotFound(id.to_owned()))?;
        e.status = ExecutionStatus::Aborted;
        e.stop_cause = Some(cause.to_owned());
        Ok(())
    }
}

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A store with `n` provision instances `code(1..=n)`, `per_wave` to a wave.
pub async fn store_with(n: u32, per_wave: u32) -> Arc<SqliteStore> {
    let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let all: Vec<Instance> = (1..=n)
        .map(|i| {
            Instance::new(
                a2a_testkit::code(i),
                InstanceKind::Provision,
                format!("Escola {i}"),
                Wave((i - 1) / per_wave + 1),
                utc("2026-01-01T00:00:00Z"),
            )
        })
        .collect();
    store.register_all(&all).await.unwrap();
    store
}

/// Takes every visible message off `queue` (deleting none).
pub async fn drain(queue: &MemQueue) -> Vec<Delivery> {
    let mut out = Vec::new();
    loop {
        let got = queue.receive(10, Duration::from_secs(600)).await.unwrap();
        if got.is_empty() {
            return out;
        }
        out.extend(got.into_iter().map(Delivery::from));
    }
}

/// Receives, dispatches and deletes what is done, until nothing is visible.
pub async fn pump(queue: &MemQueue, d: &Dispatcher, now: DateTime<Utc>) -> DispatchReport {
    let mut all = DispatchReport::default();
    loop {
        let got = queue.receive(10, Duration::from_secs(600)).await.unwrap();
        if got.is_empty() {
            return all;
        }
        let batch: Vec<Delivery> = got.into_iter().map(Delivery::from).collect();
        let report = d.dispatch(&batch, now).await;
        for (id, o) in &report.outcomes {
            if !o.retry() {
                queue.delete(id).await.unwrap();
            }
        }
        all.outcomes.extend(report.outcomes);
    }
}

/// Plays the cleanups that reconciliation started as `Deprovision` does for a provision:
/// each running cleanup fails (its state machine ends in `Failed`) and its school is
/// `rolled_back` at `now` with the error the cleanup was given. How many it played.
pub async fn deprovision_cleanups(
    wf: &Recording,
    store: &dyn InstanceStore,
    now: DateTime<Utc>,
) -> usize {
    let mut n = 0;
    for (name, e) in wf.all() {
        if !name.contains("-cleanup-") || e.status != ExecutionStatus::Running {
            continue;
        }
        let code = a2a_core::SchoolCode::parse(&name[..8]).unwrap();
        let mut i = store.get(&code).await.unwrap().unwrap();
        i.move_to(a2a_core::Status::RolledBack, now).unwrap();
        i.last_error = e.input["error"]["Cause"].as_str().map(str::to_owned);
        store.save(&i).await.unwrap();
        wf.end(&name, ExecutionStatus::Failed);
        n += 1;
    }
    n
}

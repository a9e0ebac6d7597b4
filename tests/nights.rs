//! `a2a run` over several virtual nights, on the embedded default: 700 EIX schools through
//! the scheduler, the in-process queue, the dispatcher and the real state machines on the
//! local engine. Faults are injected at the seams: every message is delivered twice, and
//! one school in ten has its first execution fail.
//!
//! One test in this binary only: the run moves the process clock (`a2a_core::clock`).
//! At its end, the operator's console reads the 700 schools the run left: `status`,
//! `history` and `report` at the scale of the EIX programme.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use a2a_cli::{Cli, Seams};
use a2a_core::{
    ExecutionInfo, ExecutionStatus, InstanceKind, InstanceStore, Message, PortError, SchoolCode,
    StartOutcome, Status, Window, WorkQueue, Workflows,
};
use async_trait::async_trait;
use clap::Parser;

/// Sends every message twice: SQS delivers at least once, and sometimes more.
struct Twice(Arc<dyn WorkQueue>);

#[async_trait]
impl WorkQueue for Twice {
    async fn send(&self, bodies: &[String]) -> Result<(), PortError> {
        let doubled: Vec<String> = bodies.iter().flat_map(|b| [b.clone(), b.clone()]).collect();
        self.0.send(&doubled).await
    }
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Message>, PortError> {
        self.0.receive(max, visibility).await
    }
    async fn delete(&self, receipt: &str) -> Result<(), PortError> {
        self.0.delete(receipt).await
    }
    async fn dead_letters(&self, max: usize) -> Result<Vec<Message>, PortError> {
        self.0.dead_letters(max).await
    }
}

/// Fails the first execution of every tenth school, and counts the executions that
/// really started.
struct FailFirst {
    inner: Arc<dyn Workflows>,
    injected: Mutex<BTreeSet<String>>,
    started: Mutex<Vec<String>>,
}

fn chosen(name: &str) -> bool {
    // Execution names are `<code>-<kind>-<attempt>` (and a cleanup's `…-cleanup-<n>`).
    name[..8].parse::<u32>().is_ok_and(|c| c % 10 == 0) && name.ends_with("-provision-1")
}

#[async_trait]
impl Workflows for FailFirst {
    async fn start(
        &self,
        kind: InstanceKind,
        name: &str,
        input: serde_json::Value,
    ) -> Result<StartOutcome, PortError> {
        if chosen(name) {
            let new = self.injected.lock().unwrap().insert(name.to_owned());
            return Ok(if new {
                self.started.lock().unwrap().push(name.to_owned());
                StartOutcome::Started(name.to_owned())
            } else {
                StartOutcome::AlreadyExists(name.to_owned())
            });
        }
        let out = self.inner.start(kind, name, input).await?;
        if let StartOutcome::Started(_) = &out {
            self.started.lock().unwrap().push(name.to_owned());
        }
        Ok(out)
    }
    async fn describe(&self, id: &str) -> Result<ExecutionInfo, PortError> {
        if self.injected.lock().unwrap().contains(id) {
            return Ok(ExecutionInfo {
                id: id.to_owned(),
                status: ExecutionStatus::Failed,
                started_at: a2a_core::clock::now(),
                stopped_at: Some(a2a_core::clock::now()),
                output: None,
                error: Some("A2A.Injected".into()),
                cause: Some("failed on purpose by the test".into()),
            });
        }
        self.inner.describe(id).await
    }
    async fn stop(&self, id: &str, error: &str, cause: &str) -> Result<(), PortError> {
        self.inner.stop(id, error, cause).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_hundred_eix_schools_in_five_virtual_nights() {
    let n = 700u32;
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("a2a.toml"),
        "[schedule]\nwindows = [\"Mon-Fri 21:00-06:00 Europe/Madrid\"]\nnightly_quota = 150\n",
    )
    .unwrap();
    let list = home.path().join("eix.csv");
    let mut csv = String::from("school_code,name,kind,dns,template\n");
    for i in 0..n {
        csv.push_str(&format!(
            "08{:06},Escola {i},provision,eix-{i:03},{}\n",
            600_000 + i,
            ["primary", "secondary"][i as usize % 2]
        ));
    }
    std::fs::write(&list, csv).unwrap();

    let flows = Arc::new(Mutex::new(None::<Arc<FailFirst>>));
    let keep = flows.clone();
    let seams = Seams {
        queue: Some(Box::new(|q| Arc::new(Twice(q)))),
        workflows: Some(Box::new(move |inner| {
            let f = Arc::new(FailFirst {
                inner,
                injected: Mutex::default(),
                started: Mutex::default(),
            });
            *keep.lock().unwrap() = Some(f.clone());
            f
        })),
    };
    let cli = Cli::parse_from([
        "a2a",
        "--home",
        home.path().to_str().unwrap(),
        "run",
        list.to_str().unwrap(),
        "--clock",
        "virtual",
        // Monday 7 December 2026, 20:00 in Madrid.
        "--start",
        "2026-12-07T19:00:00Z",
        "--max-running",
        "25",
    ]);
    let s = a2a_cli::run_list(cli, seams).await.unwrap();
    let r = &s.report;

    assert_eq!(s.schools.len(), n as usize);
    assert_eq!(r.active, n as usize, "all active: {r:?}");
    assert_eq!(r.nights.len(), 5, "five nights: {:?}", r.nights);
    for night in &r.nights {
        assert!(night.enqueued <= 150, "{night:?}");
    }
    assert_eq!(
        r.nights.iter().map(|x| x.enqueued).sum::<usize>(),
        n as usize
    );

    // Every message came twice, yet each attempt ran once: 700 first runs, 70 retries;
    // and each failed first run that ended without its Catch was cleaned up once, by
    // reconciliation.
    let f = flows.lock().unwrap().clone().unwrap();
    let started = f.started.lock().unwrap().clone();
    let distinct: BTreeSet<&String> = started.iter().collect();
    assert_eq!(distinct.len(), started.len(), "an execution started twice");
    let named = |end: &str| started.iter().filter(|x| x.ends_with(end)).count();
    assert_eq!(named("-provision-1"), n as usize);
    assert_eq!(named("-provision-2"), 70);
    assert_eq!(named("-provision-1-cleanup-1"), 70);
    assert!(r.duplicates > 0, "the duplicates were seen: {r:?}");

    // From the recorded histories: never more than 25 at once, none outside a window.
    let store = a2a_local::SqliteStore::open(&home.path().join("state.db"))
        .await
        .unwrap();
    let window = Window::parse("Mon-Fri 21:00-06:00 Europe/Madrid").unwrap();
    for code in &s.schools {
        let history = store.history(code).await.unwrap();
        for (start, _) in a2a_schedule::executions(&history) {
            assert!(
                window.night_at(start).is_some(),
                "{code} started at {start}, outside the window"
            );
        }
    }
    let peak = a2a_schedule::peak(&store, &s.schools).await.unwrap();
    assert!(peak <= 25, "{peak} executions at once");
    assert!(peak > 1, "the executions ran in parallel: {peak}");
    assert_eq!(r.max_in_flight, peak);

    // The tenth schools failed once and were recovered by a scheduler retry.
    for i in (0..n).step_by(10) {
        let code = SchoolCode::parse(&format!("08{:06}", 600_000 + i)).unwrap();
        let inst = store.get(&code).await.unwrap().unwrap();
        assert_eq!((inst.status, inst.attempt), (Status::Active, 2), "{code}");
        let history = store.history(&code).await.unwrap();
        assert!(
            history.iter().any(|e| e.step == a2a_schedule::RETRY_STEP),
            "{code}: {history:?}"
        );
        assert!(
            history.iter().any(|e| e.step == a2a_schedule::CLEANUP_STEP)
                && history.iter().any(|e| e.step == "deprovision"),
            "{code}: cleaned up by reconciliation: {history:?}"
        );
    }

    drop(store);

    console_at_scale(home.path(), n as usize);
}

/// `a2a status`, `history` and `report` over the state the run left.
fn console_at_scale(home: &std::path::Path, n: usize) {
    use common::{a2a, text};
    let o = a2a(home, &["status", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["instances"], n, "{v}");
    assert_eq!(v["by_kind"]["provision"]["active"], n, "{v}");
    assert_eq!(v["failed"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["running"].as_array().map(Vec::len), Some(0), "{v}");

    // A tenth school: its failed first attempt, cleaned up, then the retry that finished.
    let code = format!("08{:06}", 600_000 + 10);
    let o = a2a(home, &["history", &code, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let executions: Vec<&str> = h["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["execution"].as_str())
        .collect();
    assert!(
        executions.contains(&format!("{code}-provision-1").as_str())
            && executions.contains(&format!("{code}-provision-2").as_str()),
        "{h}"
    );

    let html = home.join("report.html");
    let csv = home.join("report.csv");
    let o = a2a(
        home,
        &[
            "report",
            "--html",
            html.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rows = csv::Reader::from_path(&csv).unwrap().records().count();
    assert_eq!(rows, n, "one CSV row per school");
    let page = std::fs::read_to_string(&html).unwrap();
    for i in [0, 349, 699] {
        let code = format!("08{:06}", 600_000 + i);
        assert!(page.contains(&code), "{code} is not in the report");
    }
    // Self-contained at this size too: nothing to fetch.
    for fetch in ["<script src", "<link", "@import", "url(http"] {
        assert!(!page.contains(fetch), "the report fetches: {fetch}");
    }
}

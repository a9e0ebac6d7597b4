//! `a2a run FILE`: a real school list on this machine, through the same machinery as in
//! AWS. The list is taken in; then the scheduler ticks (windows, nightly quota, retries,
//! reconciliation), the in-process queue fans the schools out, the dispatcher starts
//! their executions under the cap, and the local ASL engine runs the real state machines.
//! It goes on until every school is `active` or out of attempts, then reports night by
//! night.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use a2a_core::{InstanceKind, SchoolCode, WorkQueue, Workflows};
use a2a_local::AslWorkflows;
use a2a_schedule::{ClockMode, Policy, Progress, RunReport, Runner};
use a2a_steps::StepContext;

use chrono::{DateTime, Duration, Utc};
use clap::{Args, ValueEnum};

use crate::backends::{Backends, Local, QueueSpec};
use crate::demo::{bar, workflows};
use crate::{CliError, CliResult, Config, Outcome};

/// The clock on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClockArg {
    /// The wall clock: work starts only inside a window, so the run may wait for one.
    Real,
    /// Idle hours are skipped: a plan over several nights runs in minutes.
    Virtual,
}

/// What `a2a run` takes.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The school list (CSV: the school directory export or A2A's plan file).
    pub file: PathBuf,
    /// The kind of rows that do not say: `migrate` or `provision`.
    #[arg(long, value_parser = crate::parse_kind, default_value = "provision")]
    pub kind: InstanceKind,
    /// `real` waits for the migration windows of a2a.toml; `virtual` skips idle time.
    #[arg(long, value_enum, default_value = "real")]
    pub clock: ClockArg,
    /// When the virtual clock starts (RFC 3339); default now.
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// Executions in flight at most (default `schedule.max_running` of a2a.toml, 25).
    #[arg(long, visible_alias = "jobs", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=500))]
    pub max_running: Option<u32>,
    /// Minutes between scheduler ticks.
    #[arg(long, value_name = "MINUTES", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub tick: u32,
    /// Give up when the clock has gone this many days with schools left.
    #[arg(long, value_name = "DAYS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub horizon: u32,
    #[command(flatten)]
    pub local: LocalArgs,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Where the local engine finds its databases and state machines (`a2a run`, `a2a start`).
#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// A PostgreSQL or MySQL/MariaDB server (admin URL) for the templates and targets,
    /// instead of SQLite files under the home.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// The folder holding `migrate-instance.asl.json` and `provision-instance.asl.json`.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/statemachines"))]
    pub statemachines: PathBuf,
}

impl LocalArgs {
    /// The embedded backends and the local engine over them, with the site configuration;
    /// this process then holds the home's runner lock ([`hold_runner_lock`]). Refused
    /// while another process holds it.
    pub(crate) async fn engine(
        &self,
        config: &Config,
        what: &str,
    ) -> Result<(Local, Arc<AslWorkflows>), CliError> {
        self.free_engine(config, what).await?.ok_or_else(|| {
            CliError::input(
                format!(
                    "{what}: another a2a process (a run, or a local start) runs workflows on \
                     this home ({} is locked), and their executions live in it",
                    config.home.join(RUNNER_LOCK).display()
                ),
                "let it end, or stop it (Ctrl-C): the next run resumes what it left",
            )
        })
    }

    /// [`Self::engine`], or `None` when another process holds the home's runner lock.
    pub(crate) async fn free_engine(
        &self,
        config: &Config,
        what: &str,
    ) -> Result<Option<(Local, Arc<AslWorkflows>)>, CliError> {
        let local = Local::open(config, self.db.as_deref(), what).await?;
        if !hold_runner_lock(&config.home)? {
            return Ok(None);
        }
        let ctx = StepContext {
            store: local.store.clone(),
            blob: local.blob.clone(),
            site: Arc::new(local.site().await?),
            secrets: local.secrets.clone(),
        };
        let flows = workflows(ctx, &self.statemachines)?;
        Ok(Some((local, Arc::new(flows))))
    }
}

/// The file a process locks in its home while the local engine runs executions there.
pub const RUNNER_LOCK: &str = "runner.lock";

/// Takes the home's runner lock for the rest of this process, if no other process holds
/// it: whether this process holds it now. The local engine's executions live in the
/// process that runs them (Step Functions would keep them); the lock says which process
/// that is, so that `a2a cancel` never rolls back a school whose execution another run
/// is still driving, and two runs never drive one school. The system releases it when
/// the process ends, however it ends.
fn hold_runner_lock(home: &Path) -> Result<bool, CliError> {
    static HELD: Mutex<Vec<(PathBuf, std::fs::File)>> = Mutex::new(Vec::new());
    let path = home.join(RUNNER_LOCK);
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    if held.iter().any(|(p, _)| *p == path) {
        return Ok(true);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            CliError::environment(
                format!("{}: {e}", path.display()),
                "check that the home is writable",
            )
        })?;
    match file.try_lock() {
        Ok(()) => {
            held.push((path, file));
            Ok(true)
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(CliError::environment(
            format!("{}: {e}", path.display()),
            "check that the home's file system supports locks",
        )),
    }
}

/// A function that wraps a port, for fault injection.
pub type Wrap<T> = Box<dyn FnOnce(Arc<T>) -> Arc<T> + Send>;

/// Where tests may wrap the ports of a run, to inject faults (a queue that delivers every
/// message twice, an engine that fails some executions). Empty in the CLI.
#[derive(Default)]
pub struct Seams {
    /// Wraps the in-process queue.
    pub queue: Option<Wrap<dyn WorkQueue>>,
    /// Wraps the local workflow engine.
    pub workflows: Option<Wrap<dyn Workflows>>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The runner's report.
    pub report: RunReport,
    /// The schools of the list that were accepted.
    pub schools: Vec<SchoolCode>,
    /// Rows of the list that were rejected.
    pub rejected: usize,
    /// The clock when the run began and ended.
    pub began: DateTime<Utc>,
    /// When it ended.
    pub ended: DateTime<Utc>,
}

/// `a2a run FILE`: runs it and prints the report.
pub async fn run_file(config: &Config, ports: &Backends, args: &RunArgs) -> CliResult {
    let clock = Instant::now();
    let s = run_with(config, ports, args, Seams::default()).await?;
    if args.json {
        let v = serde_json::json!({
            "schools": s.schools.len(),
            "rejected": s.rejected,
            "began": s.began,
            "ended": s.ended,
            "report": s.report,
        });
        println!("{v}");
    } else {
        print(config, &s, args.clock, clock.elapsed().as_secs_f64());
    }
    let all = s.report.active == s.schools.len();
    Ok(if all && s.rejected == 0 {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// Takes the list in and runs it; the ports may be wrapped (see [`Seams`]).
pub async fn run_with(
    config: &Config,
    ports: &Backends,
    args: &RunArgs,
    seams: Seams,
) -> Result<RunSummary, CliError> {
    let start = match (&args.start, args.clock) {
        (None, _) => None,
        (Some(t), ClockArg::Virtual) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|e| {
                    CliError::input(
                        format!("--start {t:?}: {e}"),
                        "give a time such as 2026-12-07T20:00:00+01:00",
                    )
                })?
                .with_timezone(&Utc),
        ),
        (Some(_), ClockArg::Real) => {
            return Err(CliError::input(
                "--start sets the virtual clock, and this run is on the real one",
                "add --clock virtual, or drop --start",
            ));
        }
    };
    let bytes = a2a_intake::read_file(&args.file, 50_000_000)
        .map_err(|r| CliError::input(r.to_string(), "nothing was registered; fix the file"))?;
    let (local, flows) = args.local.engine(config, "a2a run").await?;
    let flows: Arc<dyn Workflows> = flows;
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| args.file.display().to_string());
    let plan = local.take(&name, &args.file, &bytes, args.kind).await?;
    let schools: Vec<SchoolCode> = plan.schools.iter().map(|p| p.school.code.clone()).collect();

    let flows = match seams.workflows {
        Some(wrap) => wrap(flows),
        None => flows,
    };
    // The in-process queue, whatever a2a.toml says: this run is its only consumer.
    let queue = ports.queue(&QueueSpec::Memory).await;
    let queue = match seams.queue {
        Some(wrap) => wrap(queue),
        None => queue,
    };
    let mut policy = Policy::new(config.schedule.windows.clone());
    policy.nightly_quota = config.schedule.nightly_quota;
    policy.max_attempts = config.schedule.max_attempts;
    let runner = Runner {
        store: local.store.clone(),
        queue,
        workflows: flows,
        policy,
        max_running: args
            .max_running
            .map_or(config.schedule.max_running, |n| n as usize),
        clock: match args.clock {
            ClockArg::Real => ClockMode::Real,
            ClockArg::Virtual => ClockMode::Virtual,
        },
        tick_every: Duration::minutes(i64::from(args.tick)),
        horizon: Duration::days(i64::from(args.horizon)),
    };
    if let Some(t) = start {
        a2a_core::clock::start_at(t);
    }
    let began = start.unwrap_or_else(a2a_core::clock::now);
    let bar = bar(schools.len() as u64);
    let windows = config.schedule.windows.clone();
    let waiting = std::sync::Mutex::new(false);
    let on_progress = |p: Progress| {
        bar.set_position(p.done as u64);
        bar.set_message(windows[0].local(p.now));
        // On the real clock, say once why nothing happens for hours.
        if args.clock == ClockArg::Real && !p.open && p.done < p.total {
            let mut w = waiting.lock().unwrap_or_else(|e| e.into_inner());
            if !*w {
                *w = true;
                if let Some(n) = windows.iter().filter_map(|w| w.next_night(p.now)).min() {
                    bar.suspend(|| {
                        eprintln!(
                            "outside every migration window: waiting for the next, at {}",
                            windows[0].local(n.opens)
                        );
                    });
                }
            }
        } else if p.open {
            *waiting.lock().unwrap_or_else(|e| e.into_inner()) = false;
        }
    };
    let report = runner
        .run(&schools, &on_progress)
        .await
        .map_err(|e| CliError::from_port("the local run", e))?;
    bar.finish_and_clear();
    Ok(RunSummary {
        report,
        schools,
        rejected: plan.rejected(),
        began,
        ended: a2a_core::clock::now(),
    })
}

fn print(config: &Config, s: &RunSummary, clock: ClockArg, seconds: f64) {
    let w = &config.schedule.windows[0];
    let r = &s.report;
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>10} {:>7}",
        "night (window opens)", "enqueued", "retried", "started", "succeeded", "failed"
    );
    for n in &r.nights {
        println!(
            "{:<28} {:>8} {:>8} {:>8} {:>10} {:>7}",
            w.local(n.opens),
            n.enqueued,
            n.retried,
            n.started,
            n.succeeded,
            n.failed
        );
    }
    if r.duplicates > 0 {
        println!(
            "{} duplicate deliveries recognised, none run twice",
            r.duplicates
        );
    }
    for m in &r.malformed {
        println!("malformed message (dead letter): {m}");
    }
    for p in r.problems.iter().take(10) {
        println!("problem: {p}");
    }
    for (code, status, error) in r.left.iter().take(20) {
        println!("{code}: {status}: {error}");
    }
    if !r.unfinished.is_empty() {
        println!(
            "{} schools unfinished when the clock reached the horizon ({}): run again to go on",
            r.unfinished.len(),
            w.local(s.ended)
        );
    }
    let clock = match clock {
        ClockArg::Real => "real clock",
        ClockArg::Virtual => "virtual clock",
    };
    println!(
        "{} of {} schools active after {} night{}, at most {} executions at once ({clock}: {} to {}; {seconds:.1} s)",
        r.active,
        s.schools.len(),
        r.nights.len(),
        if r.nights.len() == 1 { "" } else { "s" },
        r.max_in_flight,
        w.local(s.began),
        w.local(s.ended),
    );
}

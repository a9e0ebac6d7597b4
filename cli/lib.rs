//! The `a2a` command-line tool: the local runner and the operator's console, over the
//! embedded backends (the default) or AWS. The binary in `main.rs` only parses and calls
//! [`run`]; everything here is a library so the end-to-end tests can reach it too.

#![warn(missing_docs)]

mod asl;
mod backends;
pub(crate) mod config;
mod db;
mod demo;
mod deployed;
mod error;
mod files;
mod history;
mod intake;
mod report;
pub(crate) mod run;
mod schedule;
mod secret;
mod stack;
mod status;
mod template;
mod worker;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::backends::Backends;
use crate::deployed::Needs;

pub use backends::{BlobSpec, QueueSpec, StateSpec};
pub use config::Config;
pub use demo::{BeforeStep, workflows as local_workflows, workflows_with as local_workflows_with};
pub use error::{CliError, CliResult, Outcome};
pub use run::{RunSummary, Seams, Wrap};

/// Àgora to AWS: migrate school Moodle sites and provision new ones.
///
/// Exit codes: 0 ok; 1 the work ran but an instance failed or did not verify; 2 bad input
/// or usage (nothing was changed); 3 the environment (database, AWS, disk) is unreachable.
#[derive(Debug, Parser)]
#[command(name = "a2a", version)]
pub struct Cli {
    /// Where A2A keeps its state (the embedded database, a2a.toml, local blobs).
    #[arg(long, global = true, env = "A2A_HOME", default_value = ".a2a")]
    pub home: PathBuf,

    /// State store: `sqlite` (in the home) or `dynamodb:TABLE`. Overrides a2a.toml.
    #[arg(long, global = true, value_name = "SPEC")]
    pub state: Option<String>,

    /// Blob store: `dir` (in the home) or `s3://BUCKET/PREFIX`. Overrides a2a.toml.
    #[arg(long, global = true, value_name = "SPEC")]
    pub blobs: Option<String>,

    /// Work queue: `memory` (in-process) or `sqs:QUEUE_URL`. Overrides a2a.toml.
    #[arg(long, global = true, value_name = "SPEC")]
    pub queue: Option<String>,

    /// More log lines on stderr (-v info, -vv debug). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars (they are shown on stderr only when it is a terminal).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Counts of instances by status, by wave and by kind, the failed ones with their last
    /// error, and what runs now.
    Status {
        /// Only this wave.
        #[arg(long, value_name = "N")]
        wave: Option<u32>,
        /// Only this kind.
        #[arg(long, value_enum)]
        kind: Option<schedule::KindArg>,
        /// Also estimate what the recorded work costs on AWS, at this region's list prices
        /// (as `a2a report` does).
        #[arg(long, value_name = "REGION", num_args = 0..=1, default_missing_value = "eu-west-1")]
        cost: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The deployed system (`--aws`, `--stack NAME`).
        #[command(flatten)]
        aws: deployed::AwsArgs,
    },
    /// One school's life: each step with its start, duration, rows, bytes and outcome,
    /// across attempts, and the workflow execution behind each attempt.
    History {
        /// The school's code (8 digits).
        code: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The deployed system (`--aws`, `--stack NAME`).
        #[command(flatten)]
        aws: deployed::AwsArgs,
    },
    /// Move failed or rolled-back schools back to `queued`, through the legal move, and
    /// send their start messages; says what changed for each. Exit 1 if a named school
    /// could not be retried.
    Retry(schedule::RetryArgs),
    /// Records that the source of an active migration may be retired, after a waiting
    /// period since its switch (`--after-days`, 14 by default): forgets the source's state
    /// from before the freeze, so that nothing can unfreeze it. The source stays in
    /// maintenance, its page naming the new address. Exit 1 if refused.
    Retire(schedule::RetireArgs),
    /// Stops schools through the legal moves: a queued one is failed; a running one's
    /// execution is stopped and its rollback started (it ends `rolled_back`), which needs
    /// the state machines' ARNs. Says what changed for each; exit 1 if one was not.
    Cancel(schedule::CancelArgs),
    /// One self-contained HTML report (progress per wave, schools per night, step
    /// durations, failures, data moved, the cost on AWS, every school) and a CSV of every
    /// school.
    Report(report::ReportArgs),
    /// Databases: copy a Moodle database between PostgreSQL, MySQL/MariaDB and SQLite
    /// through staged chunks, export, import (resumable), verify, clone a template,
    /// search-and-replace, customise.
    Db {
        /// The subcommand.
        #[command(subcommand)]
        command: db::DbCommand,
    },
    /// Generated test data: `fixture site` makes a Moodle-like site database (and
    /// moodledata, with --files).
    Fixture {
        /// The subcommand.
        #[command(subcommand)]
        command: db::FixtureCommand,
    },
    /// Moodledata: sync a site's files to a folder or S3, verify, copy a template,
    /// maintenance page.
    Files {
        /// The subcommand.
        #[command(subcommand)]
        command: files::FilesCommand,
    },
    /// Reads, validates and plans a school list, and prints the plan. Changes nothing.
    ///
    /// Exit 0: every row accepted; 1: some rows rejected (listed); 2: the file is refused.
    Plan(intake::IntakeArgs),
    /// Takes a school list in: registers its schools (idempotently: the same content twice
    /// changes nothing) and writes an error report and a summary under `reports/`.
    ///
    /// Exit 0: every row accepted; 1: some rows rejected (see the report); 2: the file is
    /// refused and nothing was registered.
    Upload(intake::IntakeArgs),
    /// Amazon States Language: check definitions, or run one on this machine.
    Asl {
        /// The subcommand.
        #[command(subcommand)]
        command: asl::AslCommand,
    },
    /// One scheduler tick: reconcile running instances with their executions, then, inside
    /// a migration window, retry failed instances and enqueue new ones by wave and
    /// priority up to the nightly quota (`[schedule]` in a2a.toml). Needs an SQS queue.
    ///
    /// Exit 0: done; 1: done, with problems listed.
    Tick(schedule::TickArgs),
    /// Starts one school now, whatever the window: on the deployed state machines (--aws),
    /// or here, on the local engine, waiting for its end. Starting it again is recognised,
    /// not a second run.
    ///
    /// Exit 0: started (--aws) or active (local); 1: the cap is reached (--force starts
    /// anyway), or the local run failed; 2: unknown or malformed code, or no ARNs.
    Start(schedule::StartArgs),
    /// Generates a small Àgora under the home (20 sites to migrate, 700 EIX sites to
    /// provision, by default), takes its school list in, runs every instance through the
    /// real state machines on this machine, and prints a summary.
    ///
    /// Exit 0: every instance active; 1: some failed (listed).
    Demo(demo::DemoArgs),
    /// Takes a school list in and runs it as the deployed system would: scheduler ticks
    /// inside the migration windows (`[schedule]` of a2a.toml) up to the nightly quota, the
    /// in-process queue, the dispatcher under the cap, and the real state machines on the
    /// local engine, until every school is active or out of attempts. Then a report, night
    /// by night. `--clock virtual` skips idle hours, so several nights pass in minutes.
    ///
    /// Targets are SQLite databases and folders under the home (or `--db`), the EIX
    /// templates the generated ones of `a2a demo`. Rows of kind `migrate` bring their own
    /// `source_db` and `source_files` (`a2a fixture site`). A rerun goes on where the last
    /// one stopped.
    ///
    /// Exit 0: every school active; 1: some failed or rows were rejected; 2: the file is
    /// refused.
    Run(run::RunArgs),
    /// A site's own secrets (its admin password), kept only in the secret store.
    Secret {
        /// The subcommand.
        #[command(subcommand)]
        command: secret::SecretCommand,
    },
    /// The on-premises worker: serves the deployed source-side activities (the source's
    /// checks, freeze, export, file sync, source half of verify and restore)
    /// next to the sources, up to --max-tasks at once, until SIGTERM or Ctrl-C. The
    /// activities are given (--activity) or those of the deployed stack (--stack NAME).
    /// State and blobs are those of a2a.toml's [backends] (the stack's table and bucket),
    /// or with --stack the stack's own.
    ///
    /// Exit 0: stopped; 2: a bad activity ARN or site configuration, or a stack that does
    /// not exist or lacks its WorkerActivityArns; 3: CloudFormation out of reach.
    Worker(worker::WorkerArgs),
    /// The stack rehearsal (issue 20, first slice): `stack up` serves both state machines
    /// behind a local Step Functions endpoint, the source steps as activities for `a2a
    /// worker`.
    Stack {
        /// The subcommand.
        #[command(subcommand)]
        command: stack::StackCommand,
    },
}

/// The `--kind` of a command line: `migrate` or `provision`.
pub(crate) fn parse_kind(s: &str) -> Result<a2a_core::InstanceKind, String> {
    match s {
        "migrate" => Ok(a2a_core::InstanceKind::Migrate),
        "provision" => Ok(a2a_core::InstanceKind::Provision),
        _ => Err("expected `migrate` or `provision`".into()),
    }
}

/// Prints a command's report on stdout: `value` as indented JSON under `--json` (of `db`
/// and `files`), otherwise as `text` prints it.
pub(crate) fn print_report<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(),
) -> Result<(), CliError> {
    if !json {
        text();
        return Ok(());
    }
    let out = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Failed(format!("cannot write the report as JSON: {e}")))?;
    println!("{out}");
    Ok(())
}

/// Sets up human-readable logs on stderr. Secrets never reach them: every type that may
/// hold one redacts itself.
pub fn init_logging(verbose: u8) {
    // The SDK's credential chain warns, with a long debug dump, about every provider it
    // tried; the error that follows already says what failed.
    let default = match verbose {
        0 => "warn,aws_config=error",
        1 => "info,aws_config=warn",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Set once by `--quiet`: no progress bars anywhere.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Where every progress bar draws: stderr when it is a terminal and `--quiet` was not
/// given, else nowhere, so bars never mix with `--json` on stdout or with a log file.
pub(crate) fn progress_target() -> indicatif::ProgressDrawTarget {
    use std::io::IsTerminal as _;
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) || !std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::hidden()
    } else {
        indicatif::ProgressDrawTarget::stderr()
    }
}

/// Runs one command.
pub async fn run(cli: Cli) -> CliResult {
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let config = Config::resolve(&cli)?;
    load_ca_bundle()?;
    // The one set of ports of this process: AWS is loaded only if a command opens it.
    let ports = Backends::new();
    match cli.command {
        Command::Status {
            wave,
            kind,
            cost,
            json,
            aws,
        } => {
            let only = status::Only {
                wave,
                kind: kind.map(Into::into),
                cost,
            };
            let config = deployed::config(&config, &ports, &aws, Needs::Table).await?;
            status::run(&config, &ports, only, json, aws.on()).await
        }
        Command::History { code, json, aws } => {
            let config = deployed::config(&config, &ports, &aws, Needs::Table).await?;
            history::run(&config, &ports, &code, json, aws.on()).await
        }
        Command::Retry(args) => {
            let config = deployed::config(&config, &ports, &args.aws, Needs::Queue).await?;
            schedule::retry(&config, &ports, &args).await
        }
        Command::Retire(args) => schedule::retire(&config, &ports, &args).await,
        Command::Cancel(args) => {
            let config = deployed::config(&config, &ports, &args.aws, Needs::Table).await?;
            schedule::cancel(&config, &ports, &args).await
        }
        Command::Report(args) => {
            let config = deployed::config(&config, &ports, &args.aws, Needs::Table).await?;
            report::run(&config, &ports, &args).await
        }
        Command::Files { command } => files::run(&ports, command).await,
        Command::Db { command } => db::run(&ports, command).await,
        Command::Fixture { command } => db::run_fixture(command).await,
        Command::Plan(args) => intake::plan(&args).await,
        Command::Upload(args) => intake::upload(&config, &ports, &args).await,
        Command::Asl { command } => asl::run(command).await,
        Command::Tick(args) => schedule::tick(&config, &ports, &args).await,
        Command::Start(args) => {
            // `--aws` alone keeps its meaning: the state machines of the flags or [aws].
            let config = match args.deployed.stack {
                Some(_) => deployed::config(&config, &ports, &args.deployed, Needs::Table).await?,
                None => config,
            };
            schedule::start(&config, &ports, &args).await
        }
        Command::Demo(args) => demo::run(&config, &args).await,
        Command::Run(args) => run::run_file(&config, &ports, &args).await,
        Command::Secret { command } => secret::run(&config, &ports, command).await,
        Command::Worker(args) => worker::run(&config, &ports, &args).await,
        Command::Stack { command } => stack::run(&config, &ports, command).await,
    }
}

/// The databases' CA bundle of `A2A_DB_CA_BUNDLE` (a PEM file), if set: what a URL names
/// with `sslrootcert=bundle` or `ssl-ca=bundle`, as the step Lambdas name the bundle they
/// load from the data bucket, so one site configuration serves both.
fn load_ca_bundle() -> Result<(), CliError> {
    let Some(path) = std::env::var_os("A2A_DB_CA_BUNDLE").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let fix = "set A2A_DB_CA_BUNDLE to a PEM file of CA certificates, or unset it";
    let pem = std::fs::read(&path)
        .map_err(|e| CliError::input(format!("A2A_DB_CA_BUNDLE: {shown}: {e}"), fix))?;
    a2a_dbmove::set_ca_bundle(&shown, &pem)
        .map_err(|e| CliError::input(format!("A2A_DB_CA_BUNDLE: {e}"), fix))?;
    Ok(())
}

/// `a2a run` with its ports wrapped (see [`Seams`]): for the end-to-end tests' fault
/// injection. `cli` must hold a `run` command.
pub async fn run_list(cli: Cli, seams: Seams) -> Result<RunSummary, CliError> {
    let config = Config::resolve(&cli)?;
    match cli.command {
        Command::Run(args) => run::run_with(&config, &Backends::new(), &args, seams).await,
        _ => Err(CliError::input(
            "run_list runs `a2a run` only",
            "parse a `run` command",
        )),
    }
}

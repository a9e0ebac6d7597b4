//! `a2a worker`: the source steps, served next to the sources. It long-polls the
//! deployed activities (Step Functions) and runs their steps with the worker loop of
//! `a2a_steps::worker`, the same loop the local engine serves its loopback with.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use a2a_steps::worker::{WorkerOptions, runner, serve, step_of_activity};
use a2a_steps::{SiteConfig, StepContext};
use clap::Args;

use crate::backends::Backends;
use crate::{CliError, CliResult, Config, Outcome};

/// The arguments of `a2a worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The activities to serve, by ARN (repeat, or separate with commas: the stack's
    /// `WorkerActivityArns` output as it is). Each one's name ends in its step's name.
    #[arg(
        long = "activity",
        value_name = "ARN",
        required_unless_present = "stack",
        conflicts_with = "stack",
        value_delimiter = ','
    )]
    pub activities: Vec<String>,
    /// The deployed CloudFormation stack (name or ARN): serve every activity of its
    /// `WorkerActivityArns`, on its state table and data bucket.
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    /// Slots for the activities' polls and the steps they bring: a poll waiting for a
    /// task takes one, so this must be more than the activities served (9 for a whole
    /// stack: the default leaves room for 15 steps at once).
    #[arg(long, value_name = "N", default_value_t = 24)]
    pub max_tasks: usize,
    /// Seconds that running steps may go on after SIGTERM or Ctrl-C, before they are
    /// failed as transient (the state machine runs them again).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub grace: u64,
    /// Seconds between heartbeats of a running step: well inside the state machines'
    /// `HeartbeatSeconds` (60 in `statemachines/`), so a third of it or less.
    #[arg(long, value_name = "SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heartbeat: u64,
    /// The site configuration, as the stack's `SiteConfig` parameter (JSON), or `@FILE`.
    #[arg(long, env = "A2A_SITE", value_name = "JSON")]
    pub site: String,
    /// The prefix in Secrets Manager of the sources' passwords (the stack's
    /// `SecretPrefix`); without it, the home's secret folder.
    #[arg(long, value_name = "PREFIX")]
    pub secret_prefix: Option<String>,
}

/// A stack's worker serves every source step: a step with no activity would leave its
/// schools waiting until their tasks time out.
fn every_source_step(
    stack: &str,
    served: &[(String, &'static a2a_steps::Step)],
) -> Result<(), CliError> {
    let missing: Vec<&str> = a2a_steps::STEPS
        .iter()
        .filter(|s| s.side == a2a_steps::Side::Source)
        .filter(|s| !served.iter().any(|(_, t)| t.name == s.name))
        .map(|s| s.name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(CliError::input(
        format!(
            "stack {stack:?}: its output {} has no activity for the source steps {}",
            a2a_aws::stack::WORKER_ACTIVITIES,
            missing.join(", ")
        ),
        "deploy this version's template.yaml, or name the activities with --activity ARN…",
    ))
}

/// Set by the signal handler; read by the worker's shutdown future.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Resolves once SIGTERM or SIGINT has come.
pub(crate) async fn stopped() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
    while !STOP.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The site configuration of `--site`: JSON, or `@FILE` holding it; checked.
pub(crate) fn site(arg: &str) -> Result<SiteConfig, CliError> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            CliError::input(format!("--site @{path}: {e}"), "name a readable JSON file")
        })?,
        None => arg.to_owned(),
    };
    let site: SiteConfig = serde_json::from_str(&text).map_err(|e| {
        CliError::input(
            format!("--site: not a site configuration: {e}"),
            "give the stack's SiteConfig JSON",
        )
    })?;
    site.check()
        .map_err(|e| CliError::input(format!("--site: {e}"), "fix the site configuration"))?;
    Ok(site)
}

/// The steps' context of a process that runs them against the configured backends (the
/// worker, `a2a stack up`): `site` as `--site` takes it, the sites' secrets in Secrets
/// Manager under `secret_prefix`, or in the home.
pub(crate) async fn context(
    config: &Config,
    ports: &Backends,
    site_arg: &str,
    secret_prefix: Option<&str>,
) -> Result<StepContext, CliError> {
    let site = site(site_arg)?;
    let (secrets, _) = ports.secrets(config, secret_prefix).await;
    Ok(StepContext {
        store: ports.state(config).await?,
        blob: ports.blobs(config).await?.0,
        site: Arc::new(site),
        secrets,
    })
}

/// Runs the worker until SIGTERM or SIGINT, then stops as the worker loop does.
pub async fn run(config: &Config, ports: &Backends, args: &WorkerArgs) -> CliResult {
    let (config, arns) = match &args.stack {
        Some(name) => crate::deployed::worker(config, ports, name).await?,
        None => (config.clone(), args.activities.clone()),
    };
    let config = &config;
    let mut served = Vec::new();
    for arn in &arns {
        let step = step_of_activity(arn)
            .map_err(|e| CliError::input(e, "give the stack's WorkerActivityArns"))?;
        served.push((arn.clone(), step));
    }
    if let Some(name) = &args.stack {
        every_source_step(name, &served)?;
    }
    // Each activity's poll holds a slot while it waits (up to a minute), so with no more
    // slots than activities a poller waits for another's empty poll before it may take
    // its own task: steps would wait a minute each, or never run.
    if args.max_tasks <= served.len() {
        return Err(CliError::input(
            format!(
                "--max-tasks {}: each of the {} activities' polls holds a slot while it \
                 waits, which leaves no room for a step",
                args.max_tasks,
                served.len()
            ),
            format!(
                "give more than {}: the activities plus the steps to run at once",
                served.len()
            ),
        ));
    }
    let ctx = context(config, ports, &args.site, args.secret_prefix.as_deref()).await?;
    let name = format!(
        "a2a-worker-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
        std::process::id()
    );
    tracing::info!(
        worker = %name,
        activities = %arns.join(","),
        state = %config.state,
        blobs = %config.blobs,
        "worker started"
    );
    let report = serve(
        ports.activities().await,
        served,
        runner(ctx),
        WorkerOptions {
            max_tasks: args.max_tasks,
            grace: Duration::from_secs(args.grace),
            heartbeat: Duration::from_secs(args.heartbeat),
            name,
        },
        stopped(),
    )
    .await;
    let [ok, failed, interrupted, dropped] = report.counts();
    println!(
        "worker stopped: {ok} succeeded, {failed} failed, {interrupted} interrupted, {dropped} dropped"
    );
    Ok(Outcome::Ok)
}

//! `a2a tick` (one scheduler tick) and `a2a start CODE --aws` (start one school by hand on
//! the deployed state machines), over the same code as the scheduler and dispatcher
//! Lambdas (`a2a-schedule`).

use std::sync::Arc;

use a2a_core::{
    InstanceKind, InstanceStore, ListFilter, PortError, SchoolCode, Status, Workflows, list_all,
};
use a2a_schedule::{Delivery, Dispatched, Dispatcher, IN_FLIGHT, Policy, StartMessage};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use crate::backends::{Backends, BlobSpec, QueueSpec, StateSpec};
use crate::{CliError, CliResult, Config, Outcome};

/// Where the deployed state machines are; flags win over `[aws]` in a2a.toml.
#[derive(Debug, Args)]
pub struct MachineArgs {
    /// ARN of the `migrate-instance` state machine (else `aws.migrate_state_machine`).
    #[arg(long, value_name = "ARN")]
    pub migrate_state_machine: Option<String>,
    /// ARN of the `provision-instance` state machine (else `aws.provision_state_machine`).
    #[arg(long, value_name = "ARN")]
    pub provision_state_machine: Option<String>,
}

/// `a2a tick`.
#[derive(Debug, Args)]
pub struct TickArgs {
    /// The time the tick acts at (RFC 3339, such as 2026-12-01T22:00:00+01:00); default now.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub machines: MachineArgs,
    /// The RDS cluster of the targets (else `aws.target_cluster`): a wave starts only once
    /// its snapshot of this cluster is available.
    #[arg(long, value_name = "ID")]
    pub target_cluster: Option<String>,
}

/// The kind on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// Move an existing site (`migrate-instance`).
    Migrate,
    /// Create an EIX site from the template (`provision-instance`).
    Provision,
}

impl From<KindArg> for InstanceKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Migrate => InstanceKind::Migrate,
            KindArg::Provision => InstanceKind::Provision,
        }
    }
}

/// `a2a start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The school code (8 digits).
    pub code: String,
    /// The workflow; it must be the registered instance's kind (which is the default).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Start on the deployed Step Functions state machines (`--aws`, or `--stack NAME`:
    /// its table and state machines); without either, the school runs here, on the local
    /// engine over the embedded backends, and the command waits for its end.
    #[command(flatten)]
    pub deployed: crate::deployed::AwsArgs,
    /// Start even if `schedule.max_running` executions are in flight.
    #[arg(long)]
    pub force: bool,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub machines: MachineArgs,
    #[command(flatten)]
    pub local: crate::run::LocalArgs,
}

/// The Step Functions engine, if both ARNs are known.
async fn workflows(
    config: &Config,
    ports: &Backends,
    m: &MachineArgs,
) -> Option<Arc<dyn Workflows>> {
    let migrate = m
        .migrate_state_machine
        .clone()
        .or_else(|| config.aws.migrate_state_machine.clone())?;
    let provision = m
        .provision_state_machine
        .clone()
        .or_else(|| config.aws.provision_state_machine.clone())?;
    Some(ports.step_functions(migrate, provision).await)
}

/// A school code given on the command line, or the usage error that says what to give.
fn school_code(raw: &str) -> Result<SchoolCode, CliError> {
    SchoolCode::parse(raw).map_err(|e| {
        CliError::input(
            format!("school code {raw:?}: {e}"),
            "give the school's 8-digit code, such as 08012345",
        )
    })
}

fn parse_now(now: &Option<String>) -> Result<DateTime<Utc>, CliError> {
    match now {
        None => Ok(Utc::now()),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                CliError::input(
                    format!("--now {t:?}: {e}"),
                    "give a time such as 2026-12-01T22:00:00+01:00",
                )
            }),
    }
}

/// One scheduler tick: reconcile (when the state machines are known), then, inside a
/// window, retries and new instances up to the nightly quota, sent to the SQS queue.
pub async fn tick(config: &Config, ports: &Backends, args: &TickArgs) -> CliResult {
    let now = parse_now(&args.now)?;
    let QueueSpec::Sqs { .. } = &config.queue else {
        return Err(CliError::input(
            "a2a tick needs a lasting queue: the in-process queue (`memory`) ends with the \
             command, and enqueued schools would be left `queued` with no message",
            "pass --queue sqs:QUEUE_URL (or set backends.queue in a2a.toml); to tick and \
             drain the in-process queue on this machine, use `a2a run FILE`",
        ));
    };
    let store = ports.state(config).await?;
    let queue = ports.queue(&config.queue).await;
    let wf = workflows(config, ports, &args.machines).await;
    let mut policy = Policy::new(config.schedule.windows.clone());
    policy.nightly_quota = config.schedule.nightly_quota;
    policy.max_attempts = config.schedule.max_attempts;
    let snapshots = match args
        .target_cluster
        .clone()
        .or_else(|| config.aws.target_cluster.clone())
    {
        Some(cluster) => Some(ports.snapshots(cluster).await),
        None => None,
    };
    let report = a2a_schedule::tick_with(
        &*store,
        &*queue,
        wf.as_deref(),
        snapshots.as_deref(),
        &policy,
        now,
    )
    .await
    .map_err(|e| CliError::from_port("tick", e))?;
    if args.json {
        let text = serde_json::to_string(&report)
            .map_err(|e| CliError::Failed(format!("cannot write the report as JSON: {e}")))?;
        println!("{text}");
    } else {
        match report.night {
            Some((opens, closes)) => println!("in a window ({opens} to {closes})"),
            None => println!("outside every window: nothing enqueued"),
        }
        let codes = |v: &[SchoolCode]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "enqueued {} (quota {}, {} before tonight's tick): {}",
            report.enqueued.len(),
            policy.nightly_quota,
            report.enqueued_before,
            codes(&report.enqueued)
        );
        if let Some(id) = &report.waiting_for_snapshot {
            println!("the next wave waits for its snapshot {id} of the target cluster");
        }
        for (code, attempt) in &report.retried {
            println!("retried {code} as attempt {attempt}");
        }
        for (code, status) in &report.reconciled {
            println!("reconciled {code}: now {status}");
        }
        for code in &report.stopped {
            println!("stopped the execution of {code}: past the maximum duration");
        }
        if !report.exhausted.is_empty() {
            println!("out of attempts: {}", codes(&report.exhausted));
        }
        if report.unchecked > 0 {
            println!(
                "{} running instances not reconciled: give the state machine ARNs \
                 (--migrate-state-machine, --provision-state-machine or [aws] in a2a.toml)",
                report.unchecked
            );
        }
        for p in &report.problems {
            println!("problem: {p}");
        }
    }
    Ok(if report.problems.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// Starts one school now, whatever the window (the operator decides), under the cap on
/// executions in flight unless `--force`. The
/// instance goes through the same moves as a scheduled one (to `queued`, then `running`
/// under the execution name of its next attempt), so a second start finds it running.
pub async fn start(config: &Config, ports: &Backends, args: &StartArgs) -> CliResult {
    let code = school_code(&args.code)?;
    let (store, wf, local): (Arc<dyn InstanceStore>, Arc<dyn Workflows>, _) = if args.deployed.on()
    {
        let Some(wf) = workflows(config, ports, &args.machines).await else {
            return Err(CliError::input(
                "the state machine ARNs are not known",
                "pass --migrate-state-machine and --provision-state-machine, or set \
                 aws.migrate_state_machine and aws.provision_state_machine in a2a.toml",
            ));
        };
        (ports.state(config).await?, wf, None)
    } else {
        let (local, flows) = args.local.engine(config, "a local a2a start").await?;
        (local.store.clone(), flows.clone(), Some(flows))
    };
    let port = |e: PortError| CliError::from_port(&config.state.label(), e);
    let Some(mut inst) = store.get(&code).await.map_err(port)? else {
        return Err(CliError::input(
            format!("school {code} is not registered in {}", config.state),
            "take its school list in first (a2a upload), or check --state",
        ));
    };
    if let Some(k) = args.kind {
        let k = InstanceKind::from(k);
        if k != inst.kind {
            return Err(CliError::input(
                format!(
                    "school {code} is registered as a {} instance, not {k}",
                    inst.kind
                ),
                format!("leave out --kind, or give --kind {}", inst.kind),
            ));
        }
    }
    if inst.status == Status::Active {
        return Err(CliError::input(
            format!("school {code} is already active"),
            "A2A never moves a live site again; see `a2a status`",
        ));
    }
    let now = Utc::now();
    let attempt = if IN_FLIGHT.contains(&inst.status) {
        // Already started: the same start again is recognised, not a second run.
        inst.attempt
    } else if inst.status == Status::Queued {
        inst.attempt + 1
    } else {
        inst.move_to(Status::Queued, now)
            .map_err(|e| CliError::input(e.to_string(), "see `a2a status` for where it stands"))?;
        inst = store.save(&inst).await.map_err(port)?;
        inst.attempt + 1
    };
    // No window applies: the operator decides when. The cap does, unless --force.
    let cap = if args.force {
        usize::MAX
    } else {
        config.schedule.max_running
    };
    let dispatcher = Dispatcher::new(store.clone(), wf, cap);
    let body = StartMessage {
        school_code: code.clone(),
        attempt,
    }
    .to_body();
    let report = dispatcher
        .dispatch(
            &[Delivery {
                id: "cli".into(),
                body,
            }],
            now,
        )
        .await;
    let outcome = report.outcomes.into_iter().next().map(|(_, o)| o);
    // A local start prints one JSON object too: where the school stands at the end.
    if args.json && local.is_none() {
        let text = serde_json::to_string(&outcome)
            .map_err(|e| CliError::Failed(format!("cannot write the outcome as JSON: {e}")))?;
        println!("{text}");
    }
    match outcome {
        Some(Dispatched::Started { execution, .. }) => {
            if !args.json {
                println!("started {code} attempt {attempt}: {execution}");
            }
            match local {
                Some(flows) => finish_here(&*flows, &*store, &code, &execution, args.json).await,
                None => Ok(Outcome::Ok),
            }
        }
        Some(Dispatched::Duplicate { execution, .. }) => {
            if !args.json {
                println!("{code} attempt {attempt} was already started: {execution}");
            }
            Ok(Outcome::Ok)
        }
        Some(Dispatched::Deferred { why, .. }) => Err(CliError::Failed(format!(
            "school {code}: not started: {why}. It stays queued: a scheduler tick inside a \
             window sends it again; --force starts it now"
        ))),
        Some(Dispatched::Failed { error, .. }) => Err(CliError::environment(
            format!("school {code}: {error}"),
            "check the state machine ARNs and the AWS credentials; a2a start again is safe",
        )),
        other => Err(CliError::Failed(format!(
            "school {code}: nothing started: {other:?}"
        ))),
    }
}

/// Waits for a local execution to end (the process is its engine), then says where the
/// school stands.
async fn finish_here(
    flows: &dyn Workflows,
    store: &dyn InstanceStore,
    code: &SchoolCode,
    execution: &str,
    json: bool,
) -> CliResult {
    let info = loop {
        let info = flows
            .describe(execution)
            .await
            .map_err(|e| CliError::from_port("the local engine", e))?;
        if info.status != a2a_core::ExecutionStatus::Running {
            break info;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let inst = store
        .get(code)
        .await
        .map_err(|e| CliError::from_port("state", e))?
        .ok_or_else(|| CliError::Failed(format!("school {code} vanished from the state store")))?;
    let ok = info.status == a2a_core::ExecutionStatus::Succeeded && inst.status == Status::Active;
    if json {
        let v = serde_json::json!({
            "school_code": code,
            "execution": execution,
            "execution_status": format!("{:?}", info.status),
            "status": inst.status,
            "error": info.error,
            "cause": info.cause,
        });
        println!("{v}");
    } else if ok {
        println!("{code} is active");
    } else {
        println!(
            "{code} is {}: {} {}",
            inst.status,
            info.error.unwrap_or_default(),
            info.cause.or(inst.last_error).unwrap_or_default()
        );
    }
    Ok(if ok { Outcome::Ok } else { Outcome::Failed })
}

/// Which schools `a2a retry` moves back to `queued`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The schools' codes (8 digits each).
    #[arg(value_name = "CODE")]
    pub codes: Vec<String>,
    /// Every failed or rolled-back school (of `--wave`, if given).
    #[arg(long, conflicts_with = "codes")]
    pub failed: bool,
    /// Only schools of this wave.
    #[arg(long, value_name = "N")]
    pub wave: Option<u32>,
    /// On the deployed system: the start messages go to its queue, and each retried
    /// school's execution is started at once (under `schedule.max_running`) when the
    /// state machines are known.
    #[command(flatten)]
    pub aws: crate::deployed::AwsArgs,
}

/// `a2a retry`: each named (or each failed) school back to `queued` through the legal move,
/// its start message sent, and a line saying what changed. Exit 1 if a named school could
/// not be retried.
pub async fn retry(config: &Config, ports: &Backends, args: &RetryArgs) -> CliResult {
    if args.codes.is_empty() && !args.failed {
        return Err(CliError::input(
            "a2a retry: no school named",
            "name the schools' codes, or pass --failed for every failed or rolled-back one",
        ));
    }
    let mut codes = Vec::new();
    for c in &args.codes {
        codes.push(school_code(c)?);
    }
    let label = config.state.label();
    let port = |e| CliError::from_port(&label, e);
    let store = ports.state(config).await?;
    if args.failed {
        codes = list_all(&*store, ListFilter::default())
            .await
            .map_err(port)?
            .into_iter()
            .filter(|i| matches!(i.status, Status::Failed | Status::RolledBack))
            .filter(|i| args.wave.is_none_or(|w| i.wave.0 == w))
            .map(|i| i.code)
            .collect();
    }
    let queue = ports.queue(&config.queue).await;
    let now = chrono::Utc::now();
    let (mut done, mut refused) = (0, 0);
    let mut queued = Vec::new();
    for code in &codes {
        if let (Some(w), false) = (args.wave, args.failed) {
            let wave = store.get(code).await.map_err(port)?.map(|i| i.wave.0);
            if wave.is_some_and(|x| x != w) {
                println!(
                    "{code}: not retried: it is in wave {}, not {w}",
                    wave.unwrap_or(0)
                );
                refused += 1;
                continue;
            }
        }
        match a2a_schedule::retry_now(&*store, &*queue, code, now)
            .await
            .map_err(port)?
        {
            Ok(i) => {
                done += 1;
                println!("{code}: queued for attempt {}", i.attempt + 1);
                queued.push((i.code.clone(), i.attempt + 1));
            }
            Err(why) => {
                refused += 1;
                println!("{code}: not retried: {why}");
            }
        }
    }
    println!("{done} retried, {refused} not");
    if done > 0 && matches!(config.queue, QueueSpec::Memory) {
        println!("the next `a2a run` starts them: it sends every queued school's message again");
    }
    if args.aws.on() && !queued.is_empty() {
        start_deployed(config, ports, store, &queued).await?;
    }
    Ok(if refused == 0 {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// Starts the executions of schools just retried, on the deployed state machines, as the
/// dispatcher would on their messages (under the cap; the same name per attempt, so the
/// dispatcher's own delivery of the message is then a duplicate it recognises).
async fn start_deployed(
    config: &Config,
    ports: &Backends,
    store: Arc<dyn InstanceStore>,
    queued: &[(SchoolCode, u32)],
) -> Result<(), CliError> {
    let Some(wf) = crate::deployed::workflows(config, ports).await else {
        println!(
            "the deployed dispatcher starts them from the queue (give --stack or the state \
             machines' ARNs to start them now)"
        );
        return Ok(());
    };
    let dispatcher = Dispatcher::new(store, wf, config.schedule.max_running);
    let deliveries: Vec<Delivery> = queued
        .iter()
        .map(|(code, attempt)| Delivery {
            id: code.to_string(),
            body: StartMessage {
                school_code: code.clone(),
                attempt: *attempt,
            }
            .to_body(),
        })
        .collect();
    let report = dispatcher.dispatch(&deliveries, Utc::now()).await;
    for (id, outcome) in report.outcomes {
        match outcome {
            Dispatched::Started { execution, .. } | Dispatched::Duplicate { execution, .. } => {
                println!("{id}: started {execution}")
            }
            Dispatched::Deferred { why, .. } => {
                println!("{id}: not started now ({why}): the dispatcher starts it from the queue")
            }
            Dispatched::Stale { why, .. } => println!("{id}: not started: {why}"),
            Dispatched::Failed { error, .. } => {
                println!("{id}: not started now ({error}): the dispatcher tries it again")
            }
            Dispatched::Malformed { reason } => println!("{id}: not started: {reason}"),
        }
    }
    Ok(())
}

/// Which school `a2a retire` retires, and after how long.
#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The school's code (8 digits): an active migration.
    #[arg(value_name = "CODE")]
    pub code: String,
    /// The waiting period: days after the switch of the route before the source may be
    /// retired (while browsers and caches still reach the old address).
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub after_days: u32,
}

/// `a2a retire`: records that the source of an active migration may be retired, once the
/// waiting period has passed since its switch. The memory of the source from before the
/// freeze is deleted (nothing can unfreeze it any more) and the history records it; the
/// source itself is not touched: it stays frozen, its page naming the new address. Exit 1
/// if it is refused (not an active migration, or too early).
pub async fn retire(config: &Config, ports: &Backends, args: &RetireArgs) -> CliResult {
    let code = school_code(&args.code)?;
    let store = ports.state(config).await?;
    let (blob, _) = ports.blobs(config).await?;
    let wait = chrono::Duration::days(i64::from(args.after_days));
    match a2a_steps::retire(&*store, &*blob, &code, wait, a2a_core::clock::now()).await {
        Ok(r) if r.already => {
            println!("{code}: retired before; nothing changed");
            Ok(Outcome::Ok)
        }
        Ok(r) => {
            println!(
                "{code}: active since {}; its source may be retired now. Deleted the \
                 record of the source from before the freeze, so no rollback can unfreeze \
                 it; the source is unchanged (in maintenance, its page naming the new \
                 address): take it down when you will",
                r.active_since
            );
            Ok(Outcome::Ok)
        }
        Err(a2a_steps::StepError::Input(why)) => {
            println!("{code}: not retired: {why}");
            Ok(Outcome::Failed)
        }
        Err(e) => Err(CliError::environment(
            format!("{code}: {e}"),
            "check the state and the data store, then run it again",
        )),
    }
}

/// Which schools `a2a cancel` stops.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The schools' codes (8 digits each).
    #[arg(value_name = "CODE", required = true)]
    pub codes: Vec<String>,
    #[command(flatten)]
    pub machines: MachineArgs,
    /// On the deployed system: its table, and its state machines to stop the executions
    /// and start the rollbacks.
    #[command(flatten)]
    pub aws: crate::deployed::AwsArgs,
    /// On the embedded backends, where the run that started the schools put their sites
    /// (give it the same `--db`): a running school's rollback runs here.
    #[command(flatten)]
    pub local: crate::run::LocalArgs,
}

/// `a2a cancel`: each named school stopped through the legal moves
/// ([`a2a_schedule::cancel_now`]): a queued one failed, a running one's execution stopped
/// and its rollback started, ending `rolled_back`. On the embedded backends with no state
/// machines given, a running school's execution lived in the process of the `a2a run`
/// (or local `a2a start`) that drove it: once no such process is left (none holds the
/// home's runner lock), its rollback runs here on the local engine, and the line says how
/// it ended. One line per school says what changed or why not. Exit 1 if a school was not
/// cancelled.
pub async fn cancel(config: &Config, ports: &Backends, args: &CancelArgs) -> CliResult {
    let mut codes = Vec::new();
    for c in &args.codes {
        codes.push(school_code(c)?);
    }
    let label = config.state.label();
    let store = ports.state(config).await?;
    let aws = workflows(config, ports, &args.machines).await;
    let embedded =
        aws.is_none() && config.state == StateSpec::Sqlite && config.blobs == BlobSpec::Dir;
    // The local engine, opened for the first running school that needs it.
    let mut local: Option<Result<Arc<dyn Workflows>, String>> = None;
    let (mut done, mut refused) = (0, 0);
    for code in &codes {
        let before = store
            .get(code)
            .await
            .map_err(|e| CliError::from_port(&label, e))?;
        let running = before
            .as_ref()
            .filter(|i| IN_FLIGHT.contains(&i.status) && i.execution.is_some());
        let mut wf = aws.clone();
        if let (true, Some(i)) = (embedded, running) {
            if local.is_none() {
                local = Some(local_engine(config, args).await?);
            }
            match local.as_ref().and_then(|l| l.as_ref().ok()) {
                Some(engine) => wf = Some(engine.clone()),
                None => {
                    let why = local.as_ref().and_then(|l| l.as_ref().err());
                    refused += 1;
                    println!(
                        "{code}: not cancelled: it is {} and {}",
                        i.status,
                        why.map_or("", String::as_str)
                    );
                    continue;
                }
            }
        }
        let r = a2a_schedule::cancel_now(&*store, wf.as_deref(), code, a2a_core::clock::now())
            .await
            .map_err(|e| CliError::from_port(&label, e))?;
        match (r, embedded.then_some(wf).flatten(), running) {
            (Ok(_), Some(engine), Some(i)) => {
                let gone = i.execution.clone().unwrap_or_default();
                let (i, said) = rolled_back_here(&*store, &*engine, code, &label).await?;
                if i.status == Status::RolledBack {
                    done += 1;
                } else {
                    refused += 1;
                }
                println!(
                    "{code}: cancelled: its execution {gone} ended with the run that drove \
                     it; {said}"
                );
            }
            (Ok(what), _, _) => {
                done += 1;
                println!("{code}: cancelled: {what}");
            }
            (Err(why), _, _) => {
                refused += 1;
                println!("{code}: not cancelled: {why}");
            }
        }
    }
    println!("{done} cancelled, {refused} not");
    Ok(if refused == 0 {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// The local engine for `a2a cancel`, or why it cannot be had: another process holds the
/// home's runner lock, so the school's execution may still be driven there.
async fn local_engine(
    config: &Config,
    args: &CancelArgs,
) -> Result<Result<Arc<dyn Workflows>, String>, CliError> {
    Ok(match args.local.free_engine(config, "a2a cancel").await? {
        Some((_, flows)) => Ok(flows as Arc<dyn Workflows>),
        None => Err(format!(
            "an a2a process (a run, or a local start) on this home may be driving its \
             execution in its own process ({} is locked): stop that process (Ctrl-C), then \
             cancel again; or let it end",
            config.home.join(crate::run::RUNNER_LOCK).display()
        )),
    })
}

/// Waits in this process for the cleanup execution that [`a2a_schedule::cancel_now`]
/// started on the local `engine` for `code` (recorded as its execution), and says how
/// it ended: the instance then, and a line about it.
async fn rolled_back_here(
    store: &dyn InstanceStore,
    engine: &dyn Workflows,
    code: &SchoolCode,
    label: &str,
) -> Result<(a2a_core::Instance, String), CliError> {
    let port = |e| CliError::from_port(label, e);
    let get = async || {
        store
            .get(code)
            .await
            .map_err(port)?
            .ok_or_else(|| CliError::Failed(format!("school {code} vanished from the state")))
    };
    let cleanup = get().await?.execution.unwrap_or_default();
    loop {
        let info = engine.describe(&cleanup).await.map_err(port)?;
        if info.status != a2a_core::ExecutionStatus::Running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let i = get().await?;
    let said = if i.status == Status::RolledBack {
        format!("its rollback ran here as {cleanup}: now rolled_back")
    } else {
        format!(
            "its rollback ran here as {cleanup} and did not finish: now {} ({}); the \
             next `a2a run` goes on with it",
            i.status,
            i.last_error.as_deref().unwrap_or("no error recorded")
        )
    };
    Ok((i, said))
}

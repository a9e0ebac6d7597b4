//! `a2a stack up`: the stack rehearsal. From `template.yaml` (`a2a_stack::template`): the
//! parameters, the data resources created on the emulator at `AWS_ENDPOINT_URL` (table,
//! bucket, queues with their redrive, the database secret), every function built as SAM
//! builds it and run as its binary behind a Lambda Runtime API (`a2a_stack::functions`),
//! both state machines on the local engine with their `DefinitionSubstitutions` resolved,
//! served behind a Step Functions endpoint with the activities for `a2a worker`, and the
//! template's events (`a2a_stack::events`). `--demo` first makes what `a2a demo` makes and
//! sets the site's parameters from it.
//!
//! With `--site` instead, the first slice of the rehearsal: no template, the target steps
//! in this process (the end-to-end tests of the worker use it).

mod events;
mod resources;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use a2a_core::{BlobStore, Locator, PortError};
use a2a_local::MemActivities;
use a2a_stack::events::{Failure, InFlight, Invoke};
use a2a_stack::shape::{self, Activity, Event, Role};
use a2a_stack::template::{Pseudo, Resolver, Template, TemplateError};
use a2a_stack::{Endpoint, Engine, FunctionSpec, Functions};
use clap::{Args, Subcommand};
use events::{Mapping, Schedule};
use resources::{Clients, CreateError};
use serde_json::json;

use crate::backends::{Backends, BlobSpec, StateSpec};
pub(crate) use crate::run::ClockArg;
use crate::{CliError, CliResult, Config, Outcome};

/// `a2a stack …`.
#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Brings `template.yaml`'s stack up on this machine and serves it until SIGINT or
    /// SIGTERM: its table, bucket, queues and database secret on the emulator at
    /// AWS_ENDPOINT_URL (moto), every function built (as `sam build` builds it, for this
    /// machine) and run as its binary behind a local Lambda Runtime API, both state
    /// machines behind a Step Functions endpoint on 127.0.0.1 with the source steps'
    /// activities for `a2a worker`, and the template's events (the upload notification, the
    /// queue's event source mapping, the schedule). When ready, prints one JSON line on
    /// stdout: `bucket`, `upload_prefix`, `table`, `queue`, `dlq`, `states_endpoint`,
    /// `state_machines` (`migrate`, `provision`), `activities` (name → ARN), and with
    /// `--demo` `school_list`. Logs go to stderr.
    ///
    /// With `--site`, the first slice instead: no template, the state and blobs of the
    /// configured backends, the target steps run in this process.
    ///
    /// Exit 0: stopped by a signal; 1: a function failed to build; 2: a template (or site
    /// configuration) it cannot serve, naming the resource or parameter; 3: the emulator
    /// does not answer, or the port could not be bound.
    Up(UpArgs),
}

/// The arguments of `a2a stack up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The SAM template.
    #[arg(long, default_value = "template.yaml", conflicts_with = "site")]
    pub template: PathBuf,
    /// The template's parameters, `KEY=VALUE` (as `sam deploy --parameter-overrides`);
    /// the others keep their defaults.
    #[arg(long = "parameter-overrides", value_name = "KEY=VALUE", num_args = 1..)]
    pub overrides: Vec<String>,
    /// The stack's name (`AWS::StackName`).
    #[arg(long, default_value = "a2a")]
    pub stack_name: String,
    /// Build the functions in the release profile (the debug one by default: the
    /// rehearsal is about behaviour).
    #[arg(long)]
    pub release: bool,
    /// First make what `a2a demo` makes (source sites, the EIX templates) and set the
    /// template's `SiteConfig`, `DatabaseSecretArn` (a secret made from `--db`'s login)
    /// and, unless given, `AlarmTopicArn` from it; the ready line names the school list.
    #[arg(long, conflicts_with = "site")]
    pub demo: bool,
    /// With `--demo`: existing sites to migrate.
    #[arg(long, requires = "demo", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(0..=500))]
    pub migrations: u32,
    /// With `--demo`: new EIX sites to provision.
    #[arg(long, requires = "demo", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=5000))]
    pub eix: u32,
    /// With `--demo`: the PostgreSQL or MySQL/MariaDB server (an admin URL) of the
    /// templates, sources and targets.
    #[arg(long, requires = "demo", value_name = "URL")]
    pub db: Option<String>,
    /// The first slice: the site configuration of the target steps run in this process
    /// (JSON, or `@FILE`); no template.
    #[arg(long, env = "A2A_SITE", value_name = "JSON")]
    pub site: Option<String>,
    /// With `--site`: the prefix in Secrets Manager of the sites' secrets.
    #[arg(long, value_name = "PREFIX", requires = "site")]
    pub secret_prefix: Option<String>,
    /// With `--site`: the folder holding the two state machines.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/statemachines"))]
    pub statemachines: PathBuf,
    /// `real`: every timeout, heartbeat, wait, retry back-off and schedule takes wall
    /// time, as in AWS. `virtual`: the state machines' waits take none, and the schedule
    /// fires again as soon as nothing is in flight (idle time is skipped).
    #[arg(long, value_enum, default_value = "real")]
    pub clock: ClockArg,
    /// The Step Functions endpoint's port on 127.0.0.1 (0: a free one, named in the ready
    /// line).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Runs a `stack` subcommand.
pub async fn run(config: &Config, ports: &Backends, command: StackCommand) -> CliResult {
    match command {
        StackCommand::Up(args) => match &args.site {
            Some(site) => up_site(config, ports, &args, site).await,
            None => up(config, &args).await,
        },
    }
}

/// How long a `GetActivityTask` waits for a task, as Step Functions holds it.
const POLL_WAIT: Duration = Duration::from_secs(60);

async fn up_site(config: &Config, ports: &Backends, args: &UpArgs, site: &str) -> CliResult {
    let ctx = crate::worker::context(config, ports, site, args.secret_prefix.as_deref()).await?;
    // The emulator (or the embedded stores) must answer before anything is served:
    // unreachable is exit 3, as for any command.
    ctx.store
        .list(a2a_core::ListFilter::default(), 1, None)
        .await
        .map_err(|e| CliError::from_port(&config.state.label(), e))?;
    ctx.blob
        .list("", None)
        .await
        .map_err(|e| CliError::from_port(&format!("blobs ({})", config.blobs), e))?;
    let (flows, loopback, activities) =
        crate::demo::engine(ctx, &args.statemachines, POLL_WAIT, None)?;
    let flows = match args.clock {
        ClockArg::Real => flows.with_clock(Arc::new(a2a_asl::RealClock)),
        ClockArg::Virtual => flows,
    };
    let engine = Engine::new(flows, loopback, &activities);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let endpoint = Endpoint::bind(engine.clone(), addr).await.map_err(|e| {
        CliError::environment(
            format!("the Step Functions endpoint: cannot listen on {addr}: {e}"),
            "give a free --port, or 0 for any",
        )
    })?;
    let machines = engine.machines();
    let mut ready = json!({
        "states_endpoint": endpoint.url(),
        "state_machines": {"migrate": machines.migrate, "provision": machines.provision},
        "activities": engine.activities(),
    });
    if let StateSpec::DynamoDb { table } = &config.state {
        ready["table"] = json!(table);
    }
    if let BlobSpec::S3 { bucket, .. } = &config.blobs {
        ready["bucket"] = json!(bucket);
    }
    ready_line(&ready)?;
    announce("", &endpoint.url(), args.clock);
    crate::worker::stopped().await;
    drop(endpoint);
    eprintln!("stack stopped: running executions end with this process");
    Ok(Outcome::Ok)
}

/// Says on stderr where the endpoint is and how to serve its source steps.
fn announce(what: &str, url: &str, clock: ClockArg) {
    let clock = match clock {
        ClockArg::Real => "real",
        ClockArg::Virtual => "virtual",
    };
    eprintln!(
        "stack up: {what}Step Functions at {url} ({clock} clock); serve the source steps with \
         `AWS_ENDPOINT_URL_SFN={url} a2a worker --activity …`; Ctrl-C or SIGTERM stops it"
    );
}

/// Prints the ready line: one JSON line on stdout, flushed.
pub(crate) fn ready_line(ready: &serde_json::Value) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{ready}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Failed(format!("writing the ready line: {e}")))
}

/// The account of the emulator's ARNs (moto's default), as `AWS::AccountId`.
const ACCOUNT: &str = "123456789012";

/// The region of the SDK's configuration, as `AWS::Region`.
fn region() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| a2a_stack::REGION.to_owned())
}

fn template_error(e: TemplateError) -> CliError {
    CliError::input(
        e.to_string(),
        "fix the template, or pass --parameter-overrides",
    )
}

fn emulator(e: PortError) -> CliError {
    CliError::from_port("the emulator (AWS_ENDPOINT_URL)", e)
}

/// `--parameter-overrides K=V…`, each checked.
fn overrides(args: &UpArgs) -> Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for o in &args.overrides {
        let Some((k, v)) = o.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(CliError::input(
                format!("--parameter-overrides {o:?}: not KEY=VALUE"),
                "give each parameter as KEY=VALUE",
            ));
        };
        out.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(out)
}

/// The template resolved with `overrides`: its resources' roles, its activities, and
/// its data resources made on the emulator.
async fn resolve(
    args: &UpArgs,
    clients: &Clients,
    overrides: &BTreeMap<String, String>,
) -> Result<(Resolver, Vec<(String, Role)>, Vec<Activity>), CliError> {
    let template = Template::read(&args.template).map_err(template_error)?;
    let pseudo = Pseudo {
        region: region(),
        account: ACCOUNT.to_owned(),
        stack_name: args.stack_name.clone(),
    };
    let mut r = Resolver::new(template, pseudo, overrides).map_err(template_error)?;
    let roles = shape::roles(&r).map_err(template_error)?;
    let activities = shape::name_resources(&mut r, &roles).map_err(template_error)?;
    let made = resources::create(clients, &mut r, &roles)
        .await
        .map_err(|e| match e {
            CreateError::Template(e) => template_error(e),
            CreateError::Emulator(e) => emulator(e),
        })?;
    for m in made {
        tracing::info!("stack up: {m} is on the emulator");
    }
    Ok((r, roles, activities))
}

/// What `--demo` sets: the site, the database secret, the school list.
struct Demo {
    site: String,
    secret_arn: String,
    list: PathBuf,
}

/// Makes what `a2a demo` makes, its template files in the stack's `bucket`, and the
/// database secret from `--db`'s login.
async fn demo(
    config: &Config,
    args: &UpArgs,
    clients: &Clients,
    bucket: &str,
    stage: &str,
) -> Result<Demo, CliError> {
    let server = args.db.as_deref().map(Locator::new);
    let Some(admin) = &server else {
        return Err(CliError::input(
            "stack up --demo: the functions cannot reach SQLite files under the home",
            "give --db postgres://USER@HOST/postgres or mysql://USER@HOST/mysql",
        ));
    };
    if !matches!(
        a2a_dbmove::Engine::of(admin),
        Ok(a2a_dbmove::Engine::Postgres | a2a_dbmove::Engine::MySql)
    ) {
        return Err(CliError::input(
            format!("--db {admin}: not a PostgreSQL or MySQL/MariaDB URL"),
            "use postgres://USER@HOST/postgres or mysql://USER@HOST/mysql",
        ));
    }
    let dir = config.home.join("demo");
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::Failed(format!("creating {}: {e}", dir.display())))?;
    let blob: Arc<dyn BlobStore> = Arc::new(a2a_aws::S3Blob::new(clients.s3.clone(), bucket, ""));
    eprintln!(
        "stack up --demo: generating {} sites and the EIX templates",
        args.migrations
    );
    let site = crate::demo::demo_site(&blob, server.as_ref(), &dir).await?;
    let csv =
        crate::demo::school_list(server.as_ref(), &dir, args.migrations, args.eix, None).await?;
    let list = dir.join("schools.csv");
    std::fs::write(&list, csv)
        .map_err(|e| CliError::Failed(format!("writing {}: {e}", list.display())))?;
    // The shard's login comes from the secret, as RDS keeps it; the site names no
    // password of its own.
    let (user, password) = admin
        .credentials()
        .unwrap_or_else(|| (user_of(admin), String::new()));
    let secret_arn =
        resources::database_secret(clients, &format!("a2a-{stage}-database"), &user, &password)
            .await
            .map_err(emulator)?;
    let site = serde_json::to_string(&site)
        .map_err(|e| CliError::Failed(format!("the demo's site configuration: {e}")))?;
    // For `a2a worker --site @FILE`: the worker needs the site, as the functions do.
    let path = dir.join("site.json");
    std::fs::write(&path, &site)
        .map_err(|e| CliError::Failed(format!("writing {}: {e}", path.display())))?;
    Ok(Demo {
        site,
        secret_arn,
        list,
    })
}

/// The user of a URL without a password (`postgres://USER@HOST/…`); empty without one.
fn user_of(url: &Locator) -> String {
    let s = url.expose();
    let rest = s.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    authority
        .rsplit_once('@')
        .map(|(user, _)| user.to_owned())
        .unwrap_or_default()
}

/// The variables every function gets beside the template's: credentials and region (its
/// endpoints are its own proxies, set with its environment).
fn base_env() -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
    ]
    .iter()
    .filter_map(|k| Some(((*k).to_owned(), std::env::var(k).ok()?)))
    .collect();
    env.entry("AWS_REGION".into()).or_insert_with(region);
    env
}

/// The functions' invoke, as the events and the state machines call it.
struct Invoker(Functions);

impl Invoke for Invoker {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        payload: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, Failure>> + Send + 'a>> {
        Box::pin(async move {
            self.0.invoke(function, payload).await.map_err(|e| Failure {
                message: e.cause(),
                error_type: e.error_type,
            })
        })
    }
}

/// `a2a stack up` from the template.
async fn up(config: &Config, args: &UpArgs) -> CliResult {
    if std::env::var("AWS_ENDPOINT_URL").map_or(true, |v| v.trim().is_empty()) {
        return Err(CliError::environment(
            "stack up: AWS_ENDPOINT_URL is not set: the rehearsal makes its resources on an emulator, never in an AWS account",
            "start moto (moto_server -p PORT) and set AWS_ENDPOINT_URL=http://127.0.0.1:PORT",
        ));
    }
    let clients = Clients::load().await;
    let mut given = overrides(args)?;
    // The first pass makes the data resources, which the demo needs (its template files
    // go into the bucket); the site's parameters do not change them.
    if args.demo {
        for (k, v) in [
            ("SiteConfig", "{}"),
            (
                "AlarmTopicArn",
                "arn:aws:sns:eu-west-1:123456789012:a2a-demo-alarms",
            ),
        ] {
            given.entry(k.to_owned()).or_insert_with(|| v.to_owned());
        }
    }
    let (first, roles, _) = resolve(args, &clients, &given).await?;
    let mut school_list = None;
    if args.demo {
        let bucket = roles
            .iter()
            .find(|(_, r)| *r == Role::Bucket)
            .and_then(|(id, _)| first.attrs(id))
            .map(|a| a.reference.clone())
            .ok_or_else(|| {
                CliError::input(
                    "stack up --demo: the template has no bucket",
                    "add the data bucket",
                )
            })?;
        let stage = first
            .parameter("Stage")
            .unwrap_or_else(|| args.stack_name.clone());
        let d = demo(config, args, &clients, &bucket, &stage).await?;
        let mut demo_params = BTreeMap::from([
            ("SiteConfig".to_owned(), d.site),
            ("DatabaseSecretArn".to_owned(), d.secret_arn),
        ]);
        for (k, v) in overrides(args)? {
            demo_params.insert(k, v);
        }
        given.extend(demo_params);
        school_list = Some(d.list);
    }
    let (r, roles, activities) = resolve(args, &clients, &given).await?;
    if let Some(arn) = r.parameter("DatabaseSecretArn").filter(|a| !a.is_empty())
        && !resources::secret_exists(&clients, &arn)
            .await
            .map_err(emulator)?
    {
        return Err(CliError::input(
            format!("parameter DatabaseSecretArn: the secret {arn} is not on the emulator"),
            "create it there first, or use --demo",
        ));
    }
    for (id, role) in &roles {
        if let Role::Skipped(why) = role {
            eprintln!("stack up: {id} is not rehearsed ({why})");
        }
    }
    let ids = |want: Role| -> Vec<&String> {
        roles
            .iter()
            .filter(|(_, r)| *r == want)
            .map(|(id, _)| id)
            .collect()
    };
    let functions: Vec<shape::Function> = ids(Role::Function)
        .into_iter()
        .map(|id| shape::function(&r, id))
        .collect::<Result<_, _>>()
        .map_err(template_error)?;
    let machines: Vec<shape::Machine> = ids(Role::StateMachine)
        .into_iter()
        .map(|id| shape::machine(&r, id))
        .collect::<Result<_, _>>()
        .map_err(template_error)?;

    // The functions, built as SAM's builder builds them (cargo in the CodeUri, `.`).
    let binaries: Vec<String> = functions.iter().map(|f| f.binary.clone()).collect();
    let workspace = r.template().base().to_owned();
    let release = args.release;
    eprintln!("stack up: building {} functions", binaries.len());
    let built = tokio::task::spawn_blocking(move || {
        a2a_stack::functions::build(&workspace, &binaries, release)
    })
    .await
    .map_err(|e| CliError::Failed(format!("building the functions: {e}")))?
    .map_err(|e| CliError::Failed(format!("building the functions: {e}")))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        CliError::environment(
            format!("the Step Functions endpoint: cannot listen on {addr}: {e}"),
            "give a free --port, or 0 for any",
        )
    })?;
    let states = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| CliError::Failed(e.to_string()))?
    );
    // Each function reaches the emulator and the Step Functions endpoint through proxies of
    // its own, which name each call's IAM actions and refuse what the function's policies
    // in the template do not grant, as AWS would (the emulator checks no permission).
    let recorder = a2a_stack::iam::Recorder::default();
    let emulator_url = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let mut specs: Vec<FunctionSpec> = Vec::with_capacity(functions.len());
    for f in &functions {
        let policies = r
            .template()
            .field(&f.id, "Properties")
            .and_then(|p| p.get("Policies"))
            .cloned()
            .unwrap_or(yaml_serde::Value::Null);
        let granted = a2a_stack::iam::granted(&policies).map_err(|e| {
            CliError::input(
                format!("function {}: Policies: {e}", f.id),
                "grant it with SAM policy templates or inline statements the rehearsal reads",
            )
        })?;
        let proxy = |upstream: String, granted| {
            let (recorder, name) = (&recorder, f.name.clone());
            async move {
                recorder
                    .proxy(&name, &upstream, granted)
                    .await
                    .map_err(|e| {
                        CliError::environment(
                            format!("function {name}: its proxy to {upstream}: {e}"),
                            "free some local ports and start again",
                        )
                    })
            }
        };
        let mut env = f.env.clone();
        env.insert(
            "AWS_ENDPOINT_URL".into(),
            proxy(emulator_url.clone(), granted.clone()).await?,
        );
        env.insert(
            "AWS_ENDPOINT_URL_SFN".into(),
            proxy(states.clone(), granted).await?,
        );
        specs.push(FunctionSpec {
            name: f.name.clone(),
            binary: built[&f.binary].clone(),
            env,
            timeout: Duration::from_secs(f.timeout),
            memory_mb: f.memory_mb as u32,
            reserved_concurrency: f.reserved_concurrency,
        });
    }
    if let Some(s) = specs.iter().find(|s| !s.reserved_keys().is_empty()) {
        return Err(CliError::input(
            format!(
                "function {}: its environment sets {}, which Lambda reserves",
                s.name,
                s.reserved_keys().join(", ")
            ),
            "remove them from the template",
        ));
    }
    let runtime = Functions::new(specs, base_env());
    let invoker: Arc<dyn Invoke> = Arc::new(Invoker(runtime.clone()));
    let inflight = Arc::new(InFlight::default());

    let loopback = Arc::new(MemActivities::new(POLL_WAIT));
    let (flows, machine_arns, served) = a2a_stack::machines::workflows(
        &machines,
        &functions,
        &activities,
        invoker.clone(),
        inflight.clone(),
        loopback.clone(),
    )
    .map_err(|e| CliError::input(e, "fix the template's state machines"))?;
    let flows = match args.clock {
        ClockArg::Real => flows.with_clock(Arc::new(a2a_asl::RealClock)),
        ClockArg::Virtual => flows,
    };
    let engine = Engine::with_arns(flows, loopback, machine_arns.clone(), served.clone());
    let endpoint = Endpoint::serve(engine.clone(), listener)
        .map_err(|e| CliError::environment(format!("the Step Functions endpoint: {e}"), "retry"))?;

    // The events.
    let mut tasks = tokio::task::JoinSet::new();
    let mut ready = json!({
        "states_endpoint": endpoint.url(),
        "state_machines": {"migrate": machine_arns.migrate, "provision": machine_arns.provision},
        "activities": served,
    });
    if let Some(id) = ids(Role::Table).first() {
        ready["table"] = json!(r.attrs(id).map(|a| a.reference.clone()));
    }
    for f in &functions {
        for ev in &f.events {
            match ev {
                Event::Upload {
                    bucket,
                    prefix,
                    suffix,
                    ..
                } => {
                    let bucket = r
                        .attrs(bucket)
                        .map(|a| a.reference.clone())
                        .unwrap_or_default();
                    let queue = format!("{}-uploads-{}", args.stack_name, f.id)
                        .chars()
                        .take(80)
                        .collect::<String>();
                    let url = events::notify_uploads(
                        &clients.s3,
                        &clients.sqs,
                        &bucket,
                        prefix,
                        suffix,
                        &queue,
                    )
                    .await
                    .map_err(emulator)?;
                    ready["bucket"] = json!(bucket);
                    ready["upload_prefix"] = json!(prefix);
                    tasks.spawn(events::serve_uploads(
                        clients.sqs.clone(),
                        url,
                        invoker.clone(),
                        inflight.clone(),
                        f.name.clone(),
                    ));
                }
                Event::Queue {
                    queue,
                    batch_size,
                    max_concurrency,
                    report_failures,
                    ..
                } => {
                    let a = r.attrs(queue).cloned().unwrap_or_default();
                    let arn = a.get.get("Arn").cloned().unwrap_or_default();
                    ready["queue"] = json!(a.reference);
                    // The queue's dead-letter queue: the one its redrive names.
                    let dlq = r
                        .properties(queue)
                        .ok()
                        .and_then(|p| {
                            p.get("RedrivePolicy")?
                                .get("deadLetterTargetArn")?
                                .as_str()
                                .map(str::to_owned)
                        })
                        .and_then(|t| {
                            ids(Role::Queue).into_iter().find_map(|q| {
                                let qa = r.attrs(q)?;
                                (qa.get.get("Arn") == Some(&t)).then(|| qa.reference.clone())
                            })
                        });
                    ready["dlq"] = json!(dlq);
                    let mapping = Mapping {
                        url: a.reference.clone(),
                        arn,
                        region: region(),
                        batch_size: *batch_size,
                        max_concurrency: *max_concurrency,
                        report_failures: *report_failures,
                        function: f.name.clone(),
                    };
                    tasks.spawn(events::serve_queue(
                        clients.sqs.clone(),
                        mapping,
                        invoker.clone(),
                        inflight.clone(),
                    ));
                }
                Event::Schedule { id, every, enabled } => {
                    if !enabled {
                        eprintln!("stack up: {}'s schedule {id} is disabled", f.id);
                        continue;
                    }
                    let schedule = Schedule {
                        every: *every,
                        virtual_clock: matches!(args.clock, ClockArg::Virtual),
                        function: f.name.clone(),
                        rule_arn: format!(
                            "arn:aws:events:{}:{ACCOUNT}:rule/{}-{}{id}",
                            region(),
                            args.stack_name,
                            f.id
                        ),
                        region: region(),
                        account: ACCOUNT.to_owned(),
                    };
                    let e = engine.clone();
                    tasks.spawn(events::serve_schedule(
                        schedule,
                        invoker.clone(),
                        inflight.clone(),
                        Arc::new(move || e.running() == 0),
                    ));
                }
            }
        }
    }
    if let Some(list) = &school_list {
        ready["school_list"] = json!(list);
    }
    ready_line(&ready)?;
    announce(
        &format!("{} functions, ", functions.len()),
        &endpoint.url(),
        args.clock,
    );
    crate::worker::stopped().await;
    tasks.abort_all();
    drop(endpoint);
    runtime.shutdown().await;
    for (function, used) in recorder.usages() {
        let all: Vec<&str> = used.used.iter().map(String::as_str).collect();
        eprintln!("stack iam: {function} called {}", all.join(" "));
        if !used.denied.is_empty() {
            let refused: Vec<&str> = used.denied.iter().map(String::as_str).collect();
            eprintln!(
                "stack iam: {function} was refused {} (not granted by its policies in the template)",
                refused.join(" ")
            );
        }
    }
    eprintln!("stack stopped: running executions end with this process");
    Ok(Outcome::Ok)
}

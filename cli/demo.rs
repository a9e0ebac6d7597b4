//! `a2a demo`: a small Àgora on this machine, moved and provisioned end to end. It
//! generates Moodle-like source sites (SQLite and moodledata) and the EIX templates under
//! `<home>/demo/`, writes a school list and takes it in as `a2a upload` does, then runs
//! every instance through the real `statemachines/*.asl.json` on the local ASL engine, and
//! prints a summary table.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use a2a_core::{
    BlobKey, BlobStore, ExecutionStatus, InstanceKind, InstanceStore, ListFilter, Locator,
    SchoolCode, Status, execution_name,
};
use a2a_local::workflows::activity_arn;
use a2a_local::{AslWorkflows, MemActivities, TaskError};
use a2a_steps::worker::{WorkerOptions, runner, serve};
use a2a_steps::{Shard, SiteConfig, StepContext, Template};
use a2a_steps::{Side, names_on};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::backends::Local;
use crate::{CliError, CliResult, Config, Outcome};

/// How big a demo to run.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Existing sites to migrate.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=500))]
    pub migrations: u32,
    /// New EIX sites to provision.
    #[arg(long, default_value_t = 700, value_parser = clap::value_parser!(u32).range(0..=5000))]
    pub eix: u32,
    /// Instances worked on at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// A PostgreSQL or MySQL/MariaDB server (an admin URL such as
    /// `postgres://user@host/postgres`) for the templates, sources and targets, instead of
    /// SQLite files under the home. Databases `a2a_demo_*` and `a2a_<code>` are made there.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// The folder holding `migrate-instance.asl.json` and `provision-instance.asl.json`.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/statemachines"))]
    pub statemachines: PathBuf,
}

/// The old address of the generated sites, as their content links to it.
const OLD_WWWROOT: &str = "https://agora.xtec.cat/{dns}/moodle";
const TEMPLATES: [&str; 2] = ["primary", "secondary"];

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("demo: {what}: {e}"))
}

impl Local {
    /// The site configuration: the `[site]` of a2a.toml, or the embedded default (the
    /// generated templates, made if missing, and two SQLite shards under the home, or the
    /// `--db` server as the one shard).
    pub(crate) async fn site(&self) -> Result<SiteConfig, CliError> {
        if let Some(spec) = &self.spec {
            return self.configured(spec).await;
        }
        demo_site(&self.blob, self.server.as_ref(), &self.demo).await
    }

    /// The `[site]` of a2a.toml, with each template's files put into the data store (once).
    async fn configured(&self, spec: &crate::config::SiteSpec) -> Result<SiteConfig, CliError> {
        let mut templates = BTreeMap::new();
        for (name, t) in &spec.templates {
            if !t.files.is_dir() {
                return Err(CliError::input(
                    format!(
                        "a2a.toml: site.templates.{name}.files: {} is not a folder",
                        t.files.display()
                    ),
                    "give the template's moodledata folder",
                ));
            }
            install_template(&self.blob, &t.files, name, 0).await?;
            templates.insert(
                name.clone(),
                Template {
                    db: Locator::new(t.db.clone()),
                    files: name.clone(),
                    wwwroot: t.wwwroot.clone(),
                },
            );
        }
        Ok(SiteConfig {
            host: spec.host.clone(),
            old_wwwroot: spec.old_wwwroot.clone(),
            prefix: spec.prefix.clone(),
            shards: spec
                .shards
                .iter()
                .map(|s| Shard {
                    name: s.name.clone(),
                    db: Locator::new(s.db.clone()),
                    capacity: s.capacity,
                })
                .collect(),
            templates,
        })
    }

    /// Takes a school list in, as `a2a upload` does; returns the plan.
    pub(crate) async fn take(
        &self,
        name: &str,
        file: &Path,
        bytes: &[u8],
        kind: InstanceKind,
    ) -> Result<a2a_intake::Plan, CliError> {
        let opts = a2a_intake::Options {
            kind,
            wave_size: 1000,
            max_bytes: 50_000_000,
        };
        let refused = |r: a2a_intake::Refusal| {
            CliError::input(r.to_string(), "nothing was registered; fix the file")
        };
        let plan =
            a2a_intake::plan_bytes(&file.display().to_string(), bytes, &opts).map_err(refused)?;
        // As `a2a upload`: the passwords go to the secret store, and the list taken in and
        // kept under uploads/ names them instead.
        let taken = a2a_intake::take_list(
            name,
            plan,
            bytes,
            &opts,
            a2a_intake::Ports {
                store: self.store.as_ref(),
                ledger: self.store.as_ref(),
                blobs: self.blob.as_ref(),
                secrets: self.secrets.as_ref(),
            },
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| match e {
            a2a_intake::TakeError::Refused(r) => refused(r),
            e => failed("taking the school list in", e),
        })?;
        let kept = taken.redacted.map_or_else(|| bytes.to_vec(), |r| r.bytes);
        let key = BlobKey::parse(&a2a_intake::upload_key(name))
            .map_err(|e| failed("keeping the school list", e))?;
        self.blob
            .put(&key, kept.into())
            .await
            .map_err(|e| failed("keeping the school list", e))?;
        let plan = match taken.intake {
            a2a_intake::Intake::Already { plan, .. } | a2a_intake::Intake::New { plan, .. } => plan,
        };
        eprintln!(
            "{name}: {} rows, {} accepted, {} rejected",
            plan.rows,
            plan.schools.len(),
            plan.rejected()
        );
        for e in plan.errors.iter().take(10) {
            eprintln!("  line {}: {}: {}", e.line, e.field, e.message);
        }
        Ok(plan)
    }

    /// Runs every school of `codes` that is not `active` yet through its state machine,
    /// `jobs` at a time, then prints the summary. Whether all ended `active`.
    async fn run_all(
        &self,
        site: SiteConfig,
        statemachines: &Path,
        codes: &[SchoolCode],
        jobs: u32,
        clock: Instant,
    ) -> Result<bool, CliError> {
        let store_port: Arc<dyn InstanceStore> = self.store.clone();
        let ctx = StepContext {
            store: store_port.clone(),
            blob: self.blob.clone(),
            site: Arc::new(site),
            secrets: self.secrets.clone(),
        };
        let flows = workflows(ctx, statemachines)?;
        let mut todo = Vec::new();
        for code in codes {
            let i = store_port
                .get(code)
                .await
                .map_err(|e| CliError::from_port("state", e))?
                .ok_or_else(|| failed("registration", format!("school {code} is missing")))?;
            if i.status != Status::Active {
                if let (Some(admin), Status::Registered) = (&self.server, i.status) {
                    // A target left on the server by a demo of another home: never run here.
                    a2a_dbmove::server::drop(admin, &a2a_dbmove::target::name(code))
                        .await
                        .map_err(|e| failed("dropping an old target", e))?;
                }
                todo.push((code.clone(), i.kind, i.attempt + 1));
            }
        }
        let bar = bar(todo.len() as u64);
        let sem = Arc::new(tokio::sync::Semaphore::new(jobs as usize));
        let mut set = tokio::task::JoinSet::new();
        for (code, kind, attempt) in todo {
            let (flows, sem, bar) = (flows.clone(), sem.clone(), bar.clone());
            let store = store_port.clone();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let name = execution_name(&code, kind, attempt);
                a2a_schedule::record_start(&*store, &code, chrono::Utc::now()).await;
                let info = flows
                    .run(
                        kind,
                        &name,
                        serde_json::json!({"school_code": code.as_str()}),
                    )
                    .await;
                bar.inc(1);
                (code, info)
            });
        }
        let mut failures = Vec::new();
        while let Some(r) = set.join_next().await {
            let (code, info) = r.map_err(|e| failed("a workflow task", e))?;
            if info.status != ExecutionStatus::Succeeded {
                failures.push(format!(
                    "{code}: {} {}",
                    info.error.unwrap_or_default(),
                    info.cause.unwrap_or_default()
                ));
            }
        }
        bar.finish_and_clear();

        // The summary: every instance of the list, by kind and status, from the state store.
        let all = a2a_core::list_all(store_port.as_ref(), ListFilter::default())
            .await
            .map_err(|e| CliError::from_port("state", e))?;
        let mut table: BTreeMap<(&'static str, Status), u64> = BTreeMap::new();
        let listed: std::collections::HashSet<&SchoolCode> = codes.iter().collect();
        for i in all.iter().filter(|i| listed.contains(&i.code)) {
            *table.entry((i.kind.as_str(), i.status)).or_default() += 1;
        }
        println!("{:<10} {:<12} {:>6}", "kind", "status", "sites");
        for ((kind, status), n) in &table {
            println!("{kind:<10} {:<12} {n:>6}", status.as_str());
        }
        failures.sort();
        for f in failures.iter().take(10) {
            println!("failed: {f}");
        }
        let active = table
            .iter()
            .filter(|((_, s), _)| *s == Status::Active)
            .map(|(_, n)| n)
            .sum::<u64>();
        println!(
            "{active} of {} instances active in {:.1} s",
            codes.len(),
            clock.elapsed().as_secs_f64()
        );
        Ok(active as usize == codes.len())
    }
}

/// The demo's site configuration: the generated templates (their databases on `server`
/// or SQLite files under `demo`, their files put into `blob` once), and two SQLite shards
/// under `demo`, or the server as the one shard.
pub(crate) async fn demo_site(
    blob: &Arc<dyn BlobStore>,
    server: Option<&Locator>,
    demo: &Path,
) -> Result<SiteConfig, CliError> {
    let mut templates = BTreeMap::new();
    for (n, name) in TEMPLATES.iter().enumerate() {
        let db = database(server, demo, &format!("a2a_demo_tpl_{name}")).await?;
        let wwwroot = format!("https://plantilla-{name}.xtec.cat/moodle");
        site_db(&db, &wwwroot, 100 + n as u64).await?;
        install_template(
            blob,
            &demo.join(format!("templates/{name}-moodledata")),
            name,
            n as u64,
        )
        .await?;
        templates.insert(
            (*name).to_owned(),
            Template {
                db,
                files: (*name).to_owned(),
                wwwroot,
            },
        );
    }
    Ok(SiteConfig {
        host: "eix.xtec.cat".into(),
        old_wwwroot: OLD_WWWROOT.into(),
        prefix: a2a_dbmove::DEFAULT_PREFIX.into(),
        shards: match server {
            // Clones stay on their template's server: one shard, the server.
            Some(admin) => vec![Shard {
                name: "server".into(),
                db: admin.clone(),
                capacity: 5000,
            }],
            None => (1..=2)
                .map(|n| Shard {
                    name: format!("shard-{n}"),
                    db: Locator::new(format!("sqlite://{}/shard-{n}", demo.display())),
                    capacity: 5000,
                })
                .collect(),
        },
        templates,
    })
}

/// The demo's school list: `migrations` generated source sites (databases on `server`
/// or SQLite files under `demo`, moodledata folders under `demo`), each source URL
/// naming its password by the secret `source_login` when given, then `eix` EIX sites.
pub(crate) async fn school_list(
    server: Option<&Locator>,
    demo: &Path,
    migrations: u32,
    eix: u32,
    source_login: Option<&a2a_core::SecretName>,
) -> Result<String, CliError> {
    let mut csv = String::from("school_code,name,kind,dns,template,source_db,source_files\n");
    for i in 0..migrations {
        let code = format!("08{:06}", 100_000 + i);
        let dns = format!("escola-{i:03}");
        let db = database(server, demo, &format!("a2a_demo_src_{code}")).await?;
        site_db(&db, &OLD_WWWROOT.replace("{dns}", &dns), 1 + u64::from(i)).await?;
        let files = demo.join(format!("sources/{code}-moodledata"));
        if !files.exists() {
            moodledata(&files, 1 + u64::from(i)).map_err(|e| failed("generating moodledata", e))?;
        }
        let listed = match source_login {
            Some(name) => db.with_secret_ref(name.as_str()),
            None => db,
        };
        csv.push_str(&format!(
            "{code},Escola {i:03},migrate,{dns},,{},{}\n",
            listed.expose(),
            files.display()
        ));
    }
    for i in 0..eix {
        let province = ["08", "17", "25", "43"][i as usize % 4];
        let code = format!("{province}{:06}", 500_000 + i);
        let template = TEMPLATES[i as usize % 2];
        csv.push_str(&format!(
            "{code},Escola Infantil {i:04},provision,eix-{i:04},{template},,\n"
        ));
    }
    Ok(csv)
}

/// The secret that holds the `--db` server's password for the demo's school list, stored
/// now; `None` when the server has no password (or there is no server).
async fn source_login(local: &Local) -> Result<Option<a2a_core::SecretName>, CliError> {
    let Some((_, password)) = local.server.as_ref().and_then(|s| s.credentials()) else {
        return Ok(None);
    };
    let name = a2a_core::SecretName::parse("a2a-demo/source-db-password")
        .map_err(|e| failed("naming the sources' secret", e))?;
    local
        .secrets
        .put(&name, &a2a_core::Secret::new(password))
        .await
        .map_err(|e| CliError::from_port("secrets (home)", e))?;
    Ok(Some(name))
}

/// Runs the demo.
pub async fn run(config: &Config, args: &DemoArgs) -> CliResult {
    let clock = Instant::now();
    let mut local = Local::open(config, args.db.as_deref(), "a2a demo").await?;
    // The demo makes its own small Àgora, whatever the [site] of a2a.toml says.
    local.spec = None;
    let demo = &local.demo;
    let server = &local.server;
    eprintln!(
        "demo: generating {} sites and the EIX templates",
        args.migrations
    );
    let site = local.site().await?;
    // The list names the sources' password by a secret, as an operator's list may
    // (`secret:NAME`), so that no file of the home holds it in plain text.
    let source_login = source_login(&local).await?;
    let csv = school_list(
        server.as_ref(),
        demo,
        args.migrations,
        args.eix,
        source_login.as_ref(),
    )
    .await?;
    let list = demo.join("schools.csv");
    std::fs::write(&list, &csv).map_err(|e| failed("writing the school list", e))?;
    let plan = local
        .take(
            "schools.csv",
            &list,
            csv.as_bytes(),
            InstanceKind::Provision,
        )
        .await?;
    if plan.rejected() > 0 {
        return Err(failed("the school list", "generated rows were rejected"));
    }
    let codes: Vec<SchoolCode> = plan.schools.iter().map(|p| p.school.code.clone()).collect();
    let all_active = local
        .run_all(site, &args.statemachines, &codes, args.jobs, clock)
        .await?;
    Ok(if all_active {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

pub(crate) fn bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), crate::progress_target());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} instances  {elapsed}") {
        bar.set_style(style);
    }
    bar
}

/// What the end-to-end tests put before each target step of the local engine: awaited
/// first, its error fails the task instead of the step, and one that never ends hangs
/// the task (until its execution is stopped or times out).
pub type BeforeStep = Arc<
    dyn Fn(&'static str) -> Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send>>
        + Send
        + Sync,
>;

/// The local engine over `ctx`: both state machines of `dir`, each target step a Lambda
/// task run in this process (`a2a_steps::call`, after `before` if given), each source step
/// an activity task scheduled on the returned loopback, whose polls wait at most
/// `poll_wait`. Nothing serves the activities yet: [`workflows`] serves them in-process,
/// `a2a stack up` over its Step Functions endpoint. Also returns the source steps' names.
pub(crate) fn engine(
    ctx: StepContext,
    dir: &Path,
    poll_wait: std::time::Duration,
    before: Option<BeforeStep>,
) -> Result<(AslWorkflows, Arc<MemActivities>, Vec<&'static str>), CliError> {
    let (lambdas, activities) = (names_on(Side::Target), names_on(Side::Source));
    let loopback = Arc::new(MemActivities::new(poll_wait));
    let flows = AslWorkflows::load_with_activities(
        dir,
        &lambdas,
        &activities,
        Some(loopback.clone()),
        move |name, input| {
            let ctx = ctx.clone();
            let before = before.clone();
            async move {
                if let Some(before) = before {
                    before(name).await?;
                }
                a2a_steps::call(&ctx, name, input)
                    .await
                    .map_err(|e| TaskError::new(e.name(), e.to_string()))
            }
        },
    )
    .map_err(|e| CliError::from_port("state machines", e))?;
    Ok((flows, loopback, activities))
}

/// The local engine of [`engine`], its activities served in this process by the worker
/// loop (the loopback): `a2a demo`, `a2a run` and a local `a2a start`. Needs a Tokio
/// runtime: the worker loop runs on it until the process ends.
pub fn workflows(ctx: StepContext, dir: &Path) -> Result<AslWorkflows, CliError> {
    workflows_with(ctx, dir, None)
}

/// [`workflows`], with `before` awaited before each target step.
pub fn workflows_with(
    ctx: StepContext,
    dir: &Path,
    before: Option<BeforeStep>,
) -> Result<AslWorkflows, CliError> {
    // Step Functions holds a poll for a minute; so does the loopback.
    let (flows, loopback, activities) =
        engine(ctx.clone(), dir, std::time::Duration::from_secs(60), before)?;
    let served = activities
        .iter()
        .filter_map(|n| Some((activity_arn(n), a2a_steps::step(n)?)))
        .collect();
    let options = WorkerOptions {
        // Each activity's poller holds a slot while it waits: room for every Map
        // iteration of every execution a local run lets through, as before the loopback.
        max_tasks: LOOPBACK_TASKS,
        name: "a2a-local".into(),
        ..WorkerOptions::default()
    };
    tokio::spawn(serve(
        loopback,
        served,
        runner(ctx),
        options,
        std::future::pending(),
    ));
    Ok(flows)
}

/// The loopback worker's slots: more than a local run ever asks for at once.
const LOOPBACK_TASKS: usize = 1024;

/// The demo database `name`: on the server, created if missing; or a SQLite file under
/// the demo folder.
async fn database(server: Option<&Locator>, demo: &Path, name: &str) -> Result<Locator, CliError> {
    let Some(admin) = server else {
        let dir = demo.join("databases");
        std::fs::create_dir_all(&dir).map_err(|e| failed("creating a folder", e))?;
        return Ok(Locator::new(format!(
            "sqlite://{}/{name}.db",
            dir.display()
        )));
    };
    let loc = a2a_dbmove::server::with_database(admin, name);
    if a2a_dbmove::Db::connect(&loc, false).await.is_ok() {
        return Ok(loc);
    }
    a2a_dbmove::server::create(admin, name)
        .await
        .map_err(|e| failed("creating a database", e))
}

/// A generated site database, unless it is there from an earlier demo.
async fn site_db(loc: &Locator, wwwroot: &str, seed: u64) -> Result<(), CliError> {
    let db = a2a_dbmove::Db::connect(loc, true)
        .await
        .map_err(|e| failed("generating a site", e))?;
    if !db
        .list_tables(a2a_dbmove::DEFAULT_PREFIX)
        .await
        .map_err(|e| failed("generating a site", e))?
        .is_empty()
    {
        return Ok(());
    }
    let o = a2a_dbmove::fixture::FixtureOptions {
        seed,
        wwwroot: wwwroot.into(),
        ..Default::default()
    };
    a2a_dbmove::fixture::generate(&db, &o)
        .await
        .map_err(|e| failed("generating a site", e))?;
    Ok(())
}

fn moodledata(path: &Path, seed: u64) -> std::io::Result<()> {
    let spec = a2a_files::fixture::Spec {
        files: 20,
        max_size: 16 * 1024,
        seed,
        ..Default::default()
    };
    a2a_files::fixture::generate(path, &spec).map(|_| ())
}

/// Puts a generated moodledata under `templates/<name>/`: synced as a scratch site (the
/// data plane's layout and manifest), then moved there.
async fn install_template(
    blob: &Arc<dyn BlobStore>,
    path: &Path,
    name: &str,
    seed: u64,
) -> Result<(), CliError> {
    let manifest = BlobKey::parse(&format!("templates/{name}/manifest.json"))
        .map_err(|e| failed("template", e))?;
    if blob.head(&manifest).await.ok().flatten().is_some() {
        return Ok(());
    }
    if !path.exists() {
        moodledata(path, 1000 + seed).map_err(|e| failed("generating moodledata", e))?;
    }
    a2a_files::fixture::install_template(blob.clone(), path, name)
        .await
        .map_err(|e| failed("installing a template", e))?;
    Ok(())
}

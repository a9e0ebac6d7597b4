//! Both workflows: the real state machines with every step mocked (the mock configuration
//! file), then end to end on SQLite and folders through `a2a_local::AslWorkflows` with
//! `a2a_steps::call` as its task callback, as the CLI runs them.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use Status::RolledBack;
use a2a_asl::{Execution, ExecutionOptions, MockConfig, StateMachine, VirtualClock};
use a2a_core::{
    BlobKey, BlobStore, ExecutionStatus, Instance, InstanceKind, InstanceStore, Locator, Outcome,
    SchoolCode, Status, StepEvent, execution_name,
};
use a2a_local::workflows::all_substitutions;
use a2a_local::{AslWorkflows, FsBlob, SqliteStore, TaskError};
use a2a_steps::{Shard, Side, StepContext, fixture, names_on};
use serde_json::json;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn machine(kind: InstanceKind) -> StateMachine {
    let path = root().join(format!("statemachines/{}.asl.json", kind.workflow()));
    let text = std::fs::read_to_string(&path).unwrap();
    let subs = all_substitutions(&names_on(Side::Target), &names_on(Side::Source));
    StateMachine::load(&text, &subs).unwrap_or_else(|e| panic!("{e}"))
}

async fn mocked(kind: InstanceKind, case: &str) -> a2a_asl::Outcome {
    mocked_with(kind, case, json!({"school_code": "08012345"})).await
}

async fn mocked_with(kind: InstanceKind, case: &str, input: serde_json::Value) -> a2a_asl::Outcome {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/statemachines/workflows.mock.json"))
            .unwrap();
    let mock = MockConfig::parse(&text)
        .unwrap()
        .test_case(kind.workflow(), case)
        .unwrap();
    Execution::run(
        &machine(kind),
        input,
        ExecutionOptions {
            state_machine_name: kind.workflow().into(),
            clock: Arc::new(VirtualClock::new()),
            mock: Some(mock),
            ..Default::default()
        },
    )
    .await
}

#[tokio::test]
async fn both_state_machines_run_with_every_step_mocked() {
    use a2a_asl::Status::{Failed, Succeeded};
    for kind in InstanceKind::ALL {
        let out = mocked(kind, "HappyPath").await;
        assert_eq!(
            out.status, Succeeded,
            "{kind}: {:?} {:?}",
            out.error, out.cause
        );
    }
    // Transient errors are retried with back-off, then the run goes on.
    let out = mocked(InstanceKind::Provision, "CloneRetried").await;
    assert_eq!(out.status, Succeeded, "{:?}", out.cause);
    let out = mocked(InstanceKind::Migrate, "ImportRetried").await;
    assert_eq!(out.status, Succeeded, "{:?}", out.cause);
    // A permanent error is caught, rolled back, and fails the run with its own name.
    for (kind, case, error) in [
        (
            InstanceKind::Provision,
            "VerifyFails",
            "A2A.Permanent.Verify",
        ),
        (InstanceKind::Migrate, "VerifyFails", "A2A.Permanent.Verify"),
        (InstanceKind::Migrate, "TargetUnreachable", "A2A.Transient"),
    ] {
        let out = mocked(kind, case).await;
        assert_eq!(out.status, Failed, "{kind} {case}");
        assert_eq!(out.error.as_deref(), Some(error), "{kind} {case}");
    }
    // A cleanup that reconciliation starts runs the rollback only (the case mocks no
    // other step), and fails with the error it was given.
    for kind in InstanceKind::ALL {
        let input = json!({"school_code": "08012345", "cleanup": true,
            "error": {"Error": "A2A.MaxDuration", "Cause": "stopped"}});
        let out = mocked_with(kind, "Cleanup", input).await;
        assert_eq!(out.status, Failed, "{kind}: {:?}", out.cause);
        assert_eq!(out.error.as_deref(), Some("A2A.MaxDuration"), "{kind}");
    }
}

#[test]
fn every_task_has_a_timeout_and_a_substituted_arn() {
    for kind in InstanceKind::ALL {
        let path = root().join(format!("statemachines/{}.asl.json", kind.workflow()));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut tasks = Vec::new();
        collect_tasks(&v, &mut tasks);
        assert!(tasks.len() >= 6, "{kind}");
        for t in tasks {
            assert!(t["TimeoutSeconds"].is_u64(), "{kind}: {t}");
            let r = t["Resource"].as_str().unwrap();
            assert!(r.starts_with("${") && r.ends_with('}'), "{kind}: {r}");
        }
    }
}

fn collect_tasks<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("Type").and_then(|t| t.as_str()) == Some("Task") {
                out.push(v);
            }
            m.values().for_each(|x| collect_tasks(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_tasks(x, out)),
        _ => {}
    }
}

/// Faults a test puts in the target-side steps (the Lambdas) of a run: a step that hangs
/// (until its execution is stopped), and steps that fail once, permanently.
#[derive(Default)]
struct Faults {
    hang: std::sync::Mutex<Option<&'static str>>,
    hung: std::sync::atomic::AtomicBool,
    fail_once: std::sync::Mutex<Vec<&'static str>>,
}

impl Faults {
    /// The fault to put in step `name` now, if any (a failure is taken: it happens once).
    fn at(&self, name: &str) -> Option<Result<(), TaskError>> {
        let mut once = self.fail_once.lock().unwrap();
        if let Some(n) = once.iter().position(|s| *s == name) {
            once.remove(n);
            let why = format!("{name} fails once (the test's fault)");
            return Some(Err(TaskError::new("A2A.Permanent", why)));
        }
        (*self.hang.lock().unwrap() == Some(name)).then_some(Ok(()))
    }

    /// Waits until a run hangs in the hanging step.
    async fn until_hung(&self) {
        for _ in 0..6000 {
            if self.hung.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no run reached the step that hangs");
    }
}

/// Both workflows on the local engine as the CLI runs them: each target step the
/// in-process step over `ctx`, each source step an activity task served by the worker
/// loop through the in-process loopback.
fn flows(ctx: StepContext) -> AslWorkflows {
    flows_with(ctx, Arc::new(Faults::default()))
}

/// [`flows`], with `faults` put in its target-side steps.
fn flows_with(ctx: StepContext, faults: Arc<Faults>) -> AslWorkflows {
    let before: a2a_cli::BeforeStep = Arc::new(move |name| {
        let faults = faults.clone();
        Box::pin(async move {
            match faults.at(name) {
                Some(Err(e)) => Err(e),
                Some(Ok(())) => {
                    faults.hung.store(true, std::sync::atomic::Ordering::SeqCst);
                    std::future::pending().await
                }
                None => Ok(()),
            }
        })
    });
    a2a_cli::local_workflows_with(ctx, &root().join("statemachines"), Some(before)).unwrap()
}

/// A home with a template (database and files), one SQLite shard, and the ports.
struct World {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    ctx: StepContext,
    flows: AslWorkflows,
    faults: Arc<Faults>,
    pg: Option<Locator>,
    source: Option<Locator>,
}

async fn world(capacity: u32) -> World {
    world_on(capacity, None, None, "").await
}

/// The same world with the template, the sources and the shard on the PostgreSQL server
/// of `pg` (an admin URL) and the sources on the server of `source`, when given; `tag`
/// names this world's template database there.
async fn world_on(
    capacity: u32,
    pg: Option<&Locator>,
    source: Option<&Locator>,
    tag: &str,
) -> World {
    world_in(capacity, pg, source, tag, None).await
}

/// [`world_on`] with its data store on `blob` (a folder in the world's home when `None`).
async fn world_in(
    capacity: u32,
    pg: Option<&Locator>,
    source: Option<&Locator>,
    tag: &str,
    blob: Option<Arc<dyn BlobStore>>,
) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let blob: Arc<dyn BlobStore> =
        blob.unwrap_or_else(|| Arc::new(FsBlob::new(dir.join("blobs")).unwrap()));
    let store: Arc<dyn InstanceStore> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    // The template: a fixture database, and fixture files under `templates/primary/`.
    let tpl_db = match pg {
        Some(admin) => fresh_pg(admin, &format!("a2a_test_tpl_{tag}")).await,
        None => Locator::new(format!("sqlite://{}/templates/primary.db", dir.display())),
    };
    let template = fixture::primary_template(blob.clone(), &dir, tpl_db)
        .await
        .unwrap();
    let shard = pg
        .cloned()
        .unwrap_or_else(|| Locator::new(format!("sqlite://{}/shard-1", dir.display())));
    let site = fixture::eix_site(shard, capacity, template);
    let ctx = StepContext {
        store,
        blob,
        site: Arc::new(site),
        secrets: Arc::new(a2a_local::FileSecrets::new(dir.join("secrets"))),
    };
    let faults = Arc::new(Faults::default());
    let flows = flows_with(ctx.clone(), faults.clone());
    World {
        _dir: tmp,
        dir,
        ctx,
        flows,
        faults,
        pg: pg.cloned(),
        source: source.cloned(),
    }
}

/// An empty database `name` on the server of `admin`, dropped first if a run left it.
async fn fresh_pg(admin: &Locator, name: &str) -> Locator {
    use a2a_dbmove::server;
    server::drop(admin, name).await.unwrap();
    server::create(admin, name).await.unwrap()
}

async fn register(w: &World, code: &str, kind: InstanceKind, dns: &str) -> SchoolCode {
    let code = SchoolCode::parse(code).unwrap();
    let source_db = match (&w.source, kind) {
        (Some(admin), InstanceKind::Migrate) => {
            Some(fresh_pg(admin, &format!("a2a_test_src_{code}")).await)
        }
        _ => None,
    };
    let i = fixture::school(&code, kind, dns, &w.dir, source_db)
        .await
        .unwrap();
    assert!(w.ctx.store.register(&i).await.unwrap());
    if let Some(admin) = &w.pg {
        // A target left by an earlier run of this test.
        a2a_dbmove::server::drop(admin, &a2a_dbmove::target::name(&code))
            .await
            .unwrap();
    }
    code
}

/// The workflow of `kind` for `code`, run to its end as attempt `attempt` on `flows`.
async fn run_on(
    flows: &AslWorkflows,
    code: &SchoolCode,
    kind: InstanceKind,
    attempt: u32,
) -> a2a_core::ExecutionInfo {
    let name = execution_name(code, kind, attempt);
    flows
        .run(kind, &name, json!({"school_code": code.as_str()}))
        .await
}

/// The next attempt of the workflow of `kind` for `code`, run to its end.
async fn run(w: &World, code: &SchoolCode, kind: InstanceKind) -> a2a_core::ExecutionInfo {
    let attempt = w.ctx.store.get(code).await.unwrap().unwrap().attempt + 1;
    run_on(&w.flows, code, kind, attempt).await
}

async fn status(w: &World, code: &SchoolCode) -> Instance {
    w.ctx.store.get(code).await.unwrap().unwrap()
}

/// Checks that the run `info` failed with error `error` and left `code` `ended` (failed
/// or rolled back) with a last error that says `because`; returns the instance.
async fn assert_ended(
    w: &World,
    code: &SchoolCode,
    info: &a2a_core::ExecutionInfo,
    error: &str,
    because: &str,
    ended: Status,
) -> Instance {
    assert_eq!(info.status, ExecutionStatus::Failed, "{:?}", info.cause);
    assert_eq!(info.error.as_deref(), Some(error), "{:?}", info.cause);
    let i = status(w, code).await;
    assert_eq!(i.status, ended, "{:?}", i.last_error);
    let why = i.last_error.as_deref().unwrap_or_default();
    assert!(why.contains(because), "{why:?}");
    i
}

/// Starts the next attempt of `kind` for `code` on `flows` as the dispatcher does: the
/// execution recorded on the instance, then started. Its id.
async fn start_on(
    w: &World,
    flows: &AslWorkflows,
    code: &SchoolCode,
    kind: InstanceKind,
) -> String {
    use a2a_core::Workflows;
    let mut i = status(w, code).await;
    let name = execution_name(code, kind, i.attempt + 1);
    i.execution = Some(name.clone());
    w.ctx.store.save(&i).await.unwrap();
    let input = json!({"school_code": code.as_str()});
    flows.start(kind, &name, input).await.unwrap();
    name
}

/// Waits until the execution `id` has ended; how.
async fn ended(flows: &dyn a2a_core::Workflows, id: &str) -> a2a_core::ExecutionInfo {
    for _ in 0..30_000 {
        let info = flows.describe(id).await.unwrap();
        if info.status != ExecutionStatus::Running {
            return info;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("execution {id} did not end");
}

/// One scheduler tick outside every window (reconciliation only) on `flows`, executions
/// stopped after `max_duration`; then waits for the cleanups it started.
async fn reconcile(
    w: &World,
    flows: &dyn a2a_core::Workflows,
    max_duration: chrono::Duration,
) -> a2a_schedule::TickReport {
    let mut policy = a2a_schedule::Policy::new(Vec::new());
    policy.max_duration = max_duration;
    let queue = a2a_local::MemQueue::new(5);
    let now = a2a_core::clock::now();
    let r = a2a_schedule::tick(&*w.ctx.store, &queue, Some(flows), &policy, now)
        .await
        .unwrap();
    for id in &r.cleanups {
        ended(flows, id).await;
    }
    r
}

/// Runs the second attempt of `kind` for `code` on `flows`, after a fix: it succeeds and
/// leaves the site active, with no error.
async fn assert_retry_succeeds(
    w: &World,
    flows: &AslWorkflows,
    code: &SchoolCode,
    kind: InstanceKind,
) {
    let info = run_on(flows, code, kind, 2).await;
    assert_eq!(info.status, ExecutionStatus::Succeeded, "{:?}", info.cause);
    let i = status(w, code).await;
    assert_eq!(
        (i.status, i.attempt, i.last_error),
        (Status::Active, 2, None)
    );
}

/// Checks that each of `steps` has a success event in `history`; `what` names the run.
fn assert_succeeded(history: &[StepEvent], steps: &[&str], what: &str) {
    for step in steps {
        assert!(
            history
                .iter()
                .any(|e| e.step == *step && e.outcome == Outcome::Succeeded),
            "{what}: {step} has no success event"
        );
    }
}

#[tokio::test]
async fn provision_instance_makes_three_eix_sites_on_sqlite() {
    let w = world(10).await;
    let mut codes = Vec::new();
    for (c, dns) in [
        ("08000011", "escola-a"),
        ("17000012", "escola-b"),
        ("25000013", "escola-c"),
    ] {
        codes.push(register(&w, c, InstanceKind::Provision, dns).await);
    }
    for code in &codes {
        let info = run(&w, code, InstanceKind::Provision).await;
        assert_eq!(info.status, ExecutionStatus::Succeeded, "{:?}", info.cause);
        let i = status(&w, code).await;
        assert_eq!(i.status, Status::Active);
        assert_eq!(i.attempt, 1);
        let history = w.ctx.store.history(code).await.unwrap();
        let steps = [
            "allocate-target",
            "clone-template",
            "copy-template-files",
            "customise",
            "verify-site",
            "register-route",
        ];
        assert_succeeded(&history, &steps, code.as_str());
        let route = w
            .ctx
            .blob
            .get(&a2a_steps::route_key(i.target.dns.as_deref().unwrap()).unwrap())
            .await
            .unwrap();
        let route: serde_json::Value = serde_json::from_slice(&route).unwrap();
        assert_eq!(route["school_code"], code.as_str());
        assert_eq!(
            route["wwwroot"],
            format!("https://eix.example.cat/{}/moodle", i.target.dns.unwrap())
        );
    }
    // Idempotent: a step run again leaves the same result and the same status.
    let again = a2a_steps::call(&w.ctx, "Customise", json!({"school_code": "08000011"})).await;
    assert!(again.is_ok(), "{again:?}");
    let again = a2a_steps::call(&w.ctx, "VerifySite", json!({"school_code": "08000011"})).await;
    assert!(again.is_ok(), "{again:?}");
    assert_eq!(status(&w, &codes[0]).await.status, Status::Active);
    // A new run of an active site is refused, and the site is left as it is.
    let info = run(&w, &codes[0], InstanceKind::Provision).await;
    assert_eq!(info.status, ExecutionStatus::Failed);
    assert_eq!(status(&w, &codes[0]).await.status, Status::Active);
}

#[tokio::test]
async fn a_failed_provision_is_undone_and_a_retry_succeeds() {
    // A full shard: allocation fails permanently, the catch deprovisions.
    let w = world(1).await;
    let a = register(&w, "08000011", InstanceKind::Provision, "escola-a").await;
    let b = register(&w, "08000029", InstanceKind::Provision, "escola-b").await;
    assert_eq!(
        run(&w, &a, InstanceKind::Provision).await.status,
        ExecutionStatus::Succeeded
    );
    let info = run(&w, &b, InstanceKind::Provision).await;
    let why = "no target shard has room";
    assert_ended(&w, &b, &info, "A2A.Permanent", why, RolledBack).await;
    let history = w.ctx.store.history(&b).await.unwrap();
    assert_succeeded(&history, &["deprovision"], b.as_str());

    // The fix (a shard with room), then a retry: it succeeds.
    let mut site = (*w.ctx.site).clone();
    site.shards[0].capacity = 2;
    let ctx = StepContext {
        site: Arc::new(site),
        ..w.ctx.clone()
    };
    let flows = flows(ctx);
    assert_retry_succeeds(&w, &flows, &b, InstanceKind::Provision).await;
}

#[tokio::test]
async fn migrate_instance_moves_a_site_and_rolls_back_a_failure() {
    let w = world(10).await;
    let code = register(&w, "08012345", InstanceKind::Migrate, "ins-exemple").await;
    let src = status(&w, &code).await.source;
    let src_db = src.db.clone().unwrap();
    let before = snapshot(&w, &src_db);
    // Another school holds the address: the run fails at SwitchRoute, after the import.
    let route = a2a_steps::route_key("ins-exemple").unwrap();
    w.ctx
        .blob
        .put(
            &route,
            br#"{"school_code":"08000011","wwwroot":"x","shard":null}"#
                .as_slice()
                .to_vec()
                .into(),
        )
        .await
        .unwrap();
    let as_it_was = source_now(&status(&w, &code).await).await;
    let info = run(&w, &code, InstanceKind::Migrate).await;
    let why = "routed to school 08000011";
    let i = assert_ended(&w, &code, &info, "A2A.Permanent.Input", why, RolledBack).await;
    let files = PathBuf::from(src.files.as_ref().unwrap().expose());
    assert_eq!(
        source_now(&i).await,
        as_it_was,
        "the source as it was, its own maintenance page too"
    );
    assert_unchanged(&src_db, &before).await;
    assert_eq!(i.target.db, None, "the target is released");
    let stage = w.ctx.blob.list("stage/08012345/", None).await.unwrap();
    assert!(
        stage.items.is_empty(),
        "the stage is deleted: {:?}",
        stage.items
    );
    let target = a2a_steps::target_db(&w.ctx.site.shards[0], &code);
    assert!(
        !Path::new(target.expose().trim_start_matches("sqlite://")).exists(),
        "the target is abandoned"
    );
    assert!(
        w.ctx
            .blob
            .head(&BlobKey::parse("abandoned/08012345/1.json").unwrap())
            .await
            .unwrap()
            .is_some()
    );

    // The fix, then a retry: it succeeds, and the site is verified equal to its source.
    w.ctx.blob.delete(&route).await.unwrap();
    let info = run(&w, &code, InstanceKind::Migrate).await;
    assert_eq!(info.status, ExecutionStatus::Succeeded, "{:?}", info.cause);
    let i = status(&w, &code).await;
    assert_eq!((i.status, i.attempt), (Status::Active, 2));
    assert_moved_away(&w, &i).await;
    let history = w.ctx.store.history(&code).await.unwrap();
    let steps = [
        "check-source",
        "preflight",
        "freeze",
        "provision-target-database",
        "plan-export",
        "export-database",
        "plan-import",
        "import-database",
        "seal-export",
        "sync-files",
        "finish-import",
        "verify-source-database",
        "verify-source-files",
        "verify-database",
        "verify-files",
        "rewrite-config",
        "switch-route",
        "restore-source",
        "rollback",
    ];
    assert_succeeded(&history, &steps, code.as_str());
    let failed: Vec<_> = history
        .iter()
        .filter(|e| e.outcome == Outcome::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].step, "switch-route");
    // The rewrite moved content to the new address.
    let db = a2a_dbmove::Db::connect(&target, false).await.unwrap();
    let old = db
        .query_i64(
            "SELECT COUNT(*) FROM \"mdl_course\" WHERE \"summary\" LIKE {}",
            &[a2a_dbmove::Value::Text(
                "%agora.xtec.cat/ins-exemple%".into(),
            )],
        )
        .await
        .unwrap();
    assert_eq!(old, 0, "no old address left in course summaries");
    // The target as the source was before the freeze (no setting), though its export was
    // taken frozen; the source stays frozen.
    assert_eq!(maintenance(&target).await, None);
    assert_eq!(
        maintenance(src.db.as_ref().unwrap()).await.as_deref(),
        Some("1")
    );
    let _ = files;
}

/// Checks that the migrated school `i` is active and its source still in maintenance,
/// both halves: the setting on, and the page naming the new address.
async fn assert_moved_away(w: &World, i: &Instance) {
    assert_eq!(i.status, Status::Active);
    let src = &i.source;
    assert_eq!(
        maintenance(src.db.as_ref().unwrap()).await.as_deref(),
        Some("1")
    );
    let files = PathBuf::from(src.files.as_ref().unwrap().expose());
    let page = std::fs::read_to_string(files.join("climaintenance.html")).unwrap();
    let new = w.ctx.site.wwwroot(i.target.dns.as_deref().unwrap());
    assert!(page.contains(&new), "the page names {new}: {page}");
}

/// A source's content, to compare with later: every table's row count and checksum (as
/// `a2a db verify` sums them), and every file of its moodledata with its bytes and mode.
#[derive(Debug, PartialEq)]
struct SourceContent {
    tables: Vec<(String, u64, String)>,
    files: std::collections::BTreeMap<String, (Vec<u8>, u32)>,
}

async fn source_now(i: &Instance) -> SourceContent {
    let db = a2a_dbmove::Db::connect(i.source.db.as_ref().unwrap(), false)
        .await
        .unwrap();
    let mut tables = Vec::new();
    for t in db.introspect("mdl_").await.unwrap() {
        let (rows, sum) = a2a_dbmove::verify::table_sum(&db, &t).await.unwrap();
        tables.push((t.name.clone(), rows, sum));
    }
    let root = PathBuf::from(i.source.files.as_ref().unwrap().expose());
    let mut files = std::collections::BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                dirs.push(e.path());
                continue;
            }
            use std::os::unix::fs::PermissionsExt as _;
            let rel = e.path().strip_prefix(&root).unwrap().display().to_string();
            let mode = md.permissions().mode();
            files.insert(rel, (std::fs::read(e.path()).unwrap(), mode));
        }
    }
    assert!(
        files.contains_key("climaintenance.html"),
        "the site had its own page"
    );
    SourceContent { tables, files }
}

/// The source's `maintenance_enabled` setting.
#[tokio::test]
async fn a_new_address_that_does_not_fit_fails_the_rewrite_and_rolls_back() {
    let w = world(10).await;
    let code = register(&w, "08012346", InstanceKind::Migrate, "ins-ple").await;
    let src = status(&w, &code).await.source;
    let src_db = src.db.clone().unwrap();
    // A course whose full name ends with the old address at its column's limit (254): the
    // new address, one character longer, cannot replace it there.
    let old = fixture::OLD_WWWROOT.replace("{dns}", "ins-ple");
    let name = format!("{}{old}", "x".repeat(254 - old.chars().count()));
    let db = a2a_dbmove::Db::connect(&src_db, false).await.unwrap();
    db.exec(&format!(
        "UPDATE \"mdl_course\" SET \"fullname\" = '{name}' WHERE \"id\" = 1"
    ))
    .await
    .unwrap();
    drop(db);
    let before = snapshot(&w, &src_db);
    let info = run(&w, &code, InstanceKind::Migrate).await;
    let why = "mdl_course.fullname (254 characters): 1 row, id 1";
    let i = assert_ended(&w, &code, &info, "A2A.Permanent.Verify", why, RolledBack).await;
    assert!(
        i.last_error.unwrap().contains("does not fit"),
        "the error says why"
    );
    // Rolled back: the source as it was, the target released.
    assert_unchanged(&src_db, &before).await;
    assert_eq!(status(&w, &code).await.target.db, None);
}

async fn maintenance(db: &Locator) -> Option<String> {
    let db = a2a_dbmove::Db::connect(db, false).await.unwrap();
    a2a_dbmove::site::config_value(&db, "mdl_", a2a_dbmove::site::MAINTENANCE_SETTING)
        .await
        .unwrap()
}

/// A copy of a SQLite source, to compare its content with later.
fn snapshot(w: &World, source: &Locator) -> Locator {
    let path = source.expose().trim_start_matches("sqlite://");
    let copy = w.dir.join(format!(
        "snapshot-{}",
        Path::new(path).file_name().unwrap().to_string_lossy()
    ));
    std::fs::copy(path, &copy).unwrap();
    Locator::new(format!("sqlite://{}", copy.display()))
}

/// The source holds the same rows as its snapshot, table by table, compared row by row
/// (with [`source_now`], its files are compared byte for byte too).
async fn assert_unchanged(source: &Locator, snapshot: &Locator) {
    let a = a2a_dbmove::Db::connect(source, false).await.unwrap();
    let b = a2a_dbmove::Db::connect(snapshot, false).await.unwrap();
    let r = a2a_dbmove::verify(&a, &b, "mdl_", &a2a_dbmove::NoProgress)
        .await
        .unwrap();
    let bad: Vec<_> = r.differing().collect();
    assert!(bad.is_empty(), "the source is unchanged: {bad:#?}");
}

/// The migration's steps one by one, as the workflow's Maps run them, with tiny budgets:
/// each part stops after one chunk and goes on at its next run; sealing or finishing too
/// early is refused by name; the freeze's setting is remembered once and put back.
#[tokio::test]
async fn parts_stop_at_their_budget_resume_and_the_maintenance_setting_comes_back() {
    use a2a_dbmove::site::{MAINTENANCE_SETTING, set_config_value};
    let w = world(10).await;
    let code = register(&w, "08012345", InstanceKind::Migrate, "ins-exemple").await;
    let src = status(&w, &code).await.source.db.unwrap();
    // The site had the setting, off.
    let db = a2a_dbmove::Db::connect(&src, false).await.unwrap();
    set_config_value(&db, "mdl_", MAINTENANCE_SETTING, Some("0"))
        .await
        .unwrap();
    drop(db);
    let c = |extra: serde_json::Value| {
        let mut v = json!({"school_code": code.as_str()});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let call = |name: &'static str, input: serde_json::Value| {
        let ctx = w.ctx.clone();
        async move { a2a_steps::call(&ctx, name, input).await }
    };
    call("Preflight", c(json!({}))).await.unwrap();
    for _ in 0..2 {
        let r = call("Freeze", c(json!({}))).await.unwrap();
        assert_eq!(r["maintenance_enabled_before"], "0", "remembered once: {r}");
    }
    assert_eq!(maintenance(&src).await.as_deref(), Some("1"));

    let plan = call("PlanExport", c(json!({"parts": 2}))).await.unwrap();
    assert_eq!(plan["parts"], json!([0, 1]));
    let again = call("PlanExport", c(json!({"parts": 3}))).await.unwrap();
    assert_eq!(again["parts"], json!([0, 1]), "the plan under way is kept");
    // The import follows the export: planned as soon as the export is, with its parts.
    call("ProvisionTargetDatabase", c(json!({}))).await.unwrap();
    let plan = call("PlanImport", c(json!({}))).await.unwrap();
    assert_eq!(plan["parts"], json!([0, 1]), "the export's parts: {plan}");
    // Nothing staged yet: an import part waits, and says so when its time is up.
    let wait = c(json!({"part": 0, "seconds": 1}));
    let waited = call("ImportDatabase", wait.clone()).await.unwrap();
    assert_eq!(waited["complete"], false, "{waited}");
    assert_eq!(waited["chunks"], 0, "{waited}");
    let part = |n: usize| c(json!({"part": n, "max_chunks": 1, "chunk_rows": 5}));
    let first = call("ExportDatabase", part(0)).await.unwrap();
    assert_eq!(first["complete"], false, "{first}");
    let early = call("SealExport", c(json!({}))).await.unwrap_err();
    assert!(early.to_string().contains("not staged"), "{early}");
    let mut runs = 1;
    for n in [0, 1] {
        loop {
            runs += 1;
            let r = call("ExportDatabase", part(n)).await.unwrap();
            if r["complete"] == true {
                break;
            }
        }
    }
    assert!(runs > 4, "one chunk a run takes several runs: {runs}");
    // Every table staged, not sealed yet: the import loads them, one chunk a run here.
    let first = call("ImportDatabase", part(1)).await.unwrap();
    assert_eq!(first["complete"], false, "{first}");
    assert_eq!(first["chunks"], 1, "{first}");
    call("SealExport", c(json!({}))).await.unwrap();
    // A part finished in this attempt returns its journaled result, and is not run again.
    let kept = call("ExportDatabase", part(1)).await.unwrap();
    assert_eq!(kept["complete"], true, "{kept}");
    let sync = call("SyncFiles", c(json!({"seconds": 0}))).await.unwrap();
    assert_eq!(sync["complete"], false, "no time: cut short, {sync}");
    let sync = call("SyncFiles", c(json!({}))).await.unwrap();
    assert_eq!(sync["complete"], true, "{sync}");

    let early = call("FinishImport", c(json!({}))).await.unwrap_err();
    assert!(early.to_string().contains("not wholly imported"), "{early}");
    assert_eq!(status(&w, &code).await.status, Status::Running);
    for n in [0, 1] {
        while call("ImportDatabase", part(n)).await.unwrap()["complete"] != true {}
    }
    let done = call("FinishImport", c(json!({}))).await.unwrap();
    assert_eq!(done["checks"], json!(["database:0", "database:1", "files"]));
    assert_eq!(status(&w, &code).await.status, Status::Migrated);
    let again = call("FinishImport", c(json!({}))).await.unwrap();
    assert_eq!(again, done, "a finished step returns its journaled result");
    // Each check is its source half (on premises), then its target half.
    for check in done["checks"].as_array().unwrap() {
        let early = call("Verify", c(json!({"part": check}))).await.unwrap_err();
        assert!(early.to_string().contains("VerifySource"), "{early}");
        let r = call("VerifySource", c(json!({"part": check}))).await;
        assert!(r.is_ok(), "{check}: {r:?}");
        let r = call("Verify", c(json!({"part": check}))).await;
        assert!(r.is_ok(), "{check}: {r:?}");
    }
    let bad = call("Verify", c(json!({"part": "database:9"}))).await;
    assert!(bad.is_err());
    let target = status(&w, &code).await.target.db.unwrap();
    assert_eq!(
        maintenance(&target).await.as_deref(),
        Some("1"),
        "taken frozen"
    );
    let r = call("RewriteConfig", c(json!({}))).await.unwrap();
    assert_eq!(r["maintenance_enabled"], "0");
    assert_eq!(maintenance(&target).await.as_deref(), Some("0"));
    for _ in 0..2 {
        call("SwitchRoute", c(json!({}))).await.unwrap();
        assert_eq!(status(&w, &code).await.status, Status::Active);
        // The source stays frozen after the switch.
        assert_eq!(maintenance(&src).await.as_deref(), Some("1"));
    }
    // A rerun after the switch keeps the source's own setting for the target.
    let r = call("RewriteConfig", c(json!({}))).await.unwrap();
    assert_eq!(r["maintenance_enabled"], "0");
    assert_eq!(status(&w, &code).await.status, Status::Active);
    // Nothing rolls an active site back: the source stays frozen.
    let restore = call("RestoreSource", c(json!({}))).await.unwrap();
    assert_eq!(restore["restored"], false);
    assert_eq!(maintenance(&src).await.as_deref(), Some("1"));
}

/// Freeze then rollback, each twice: the setting comes back as it was (here: no row), and
/// the site's own maintenance page byte for byte.
#[tokio::test]
async fn a_rollback_puts_the_maintenance_setting_and_page_back() {
    let w = world(10).await;
    let code = register(&w, "08012345", InstanceKind::Migrate, "ins-exemple").await;
    let i = status(&w, &code).await;
    let (src, files) = (
        i.source.db.clone().unwrap(),
        PathBuf::from(i.source.files.clone().unwrap().expose()),
    );
    let page = files.join("climaintenance.html");
    let own = std::fs::read(&page).unwrap();
    let as_it_was = source_now(&i).await;
    let input = json!({"school_code": code.as_str()});
    a2a_steps::call(&w.ctx, "Preflight", input.clone())
        .await
        .unwrap();
    for _ in 0..2 {
        let r = a2a_steps::call(&w.ctx, "Freeze", input.clone())
            .await
            .unwrap();
        assert_eq!(r["page_before"], true, "{r}");
        assert_eq!(maintenance(&src).await.as_deref(), Some("1"));
        let frozen = std::fs::read_to_string(&page).unwrap();
        assert!(frozen.contains("eix.example.cat/ins-exemple"), "{frozen}");
    }
    let failed = json!({"school_code": code.as_str(), "error": {"Error": "X", "Cause": "y"}});
    // The catch as the state machine runs it: the source's restore (on premises), then the
    // rollback, handed what the restore answered.
    let rollback = || async {
        let restore = a2a_steps::call(&w.ctx, "RestoreSource", input.clone())
            .await
            .unwrap();
        let mut failed = failed.clone();
        failed["restore"] = restore;
        a2a_steps::call(&w.ctx, "Rollback", failed).await
    };
    for _ in 0..2 {
        let r = rollback().await.unwrap();
        assert_eq!(r["rolled_back"], true, "{r}");
        assert_eq!(status(&w, &code).await.status, Status::RolledBack);
        assert_eq!(source_now(&i).await, as_it_was, "the source as it was");
    }

    // A source database out of reach: the page comes back, the rollback says what it
    // left and fails (reconciliation runs it again), and the remembered value survives
    // for the next freeze and its rollback.
    let path = src.expose().trim_start_matches("sqlite://").to_owned();
    a2a_steps::call(&w.ctx, "Preflight", input.clone())
        .await
        .unwrap();
    a2a_steps::call(&w.ctx, "Freeze", input.clone())
        .await
        .unwrap();
    std::fs::rename(&path, format!("{path}.away")).unwrap();
    let e = rollback().await.unwrap_err();
    assert!(
        e.to_string()
            .contains(a2a_dbmove::site::MAINTENANCE_SETTING),
        "{e}"
    );
    assert_eq!(std::fs::read(&page).unwrap(), own, "the page is back");
    let i2 = status(&w, &code).await;
    assert_eq!(
        i2.status,
        Status::Running,
        "not rolled back: it is not finished"
    );
    assert!(i2.last_error.unwrap().contains("not put back"));
    std::fs::rename(format!("{path}.away"), &path).unwrap();
    assert_eq!(maintenance(&src).await.as_deref(), Some("1"), "left frozen");
    let r = a2a_steps::call(&w.ctx, "Freeze", input.clone())
        .await
        .unwrap();
    assert_eq!(
        r["maintenance_enabled_before"],
        serde_json::Value::Null,
        "the value from before the first freeze: {r}"
    );
    rollback().await.unwrap();
    assert_eq!(source_now(&i).await, as_it_was, "the source as it was");
}

/// Runs provisions and migrations with the targets (and template) on the server of
/// `target_var` and the sources on the server of `source_var`, all to `active`.
async fn on_servers(
    test: &str,
    target_var: &str,
    source_var: &str,
    eix: &[(String, String)],
    migrations: &[(String, String)],
) {
    let (Some(target), Some(source)) = (
        a2a_testkit::service_url(target_var, test),
        a2a_testkit::service_url(source_var, test),
    ) else {
        return;
    };
    let (target, source) = (Locator::new(target), Locator::new(source));
    let w = world_on(64, Some(&target), Some(&source), test).await;
    let mut codes = Vec::new();
    for (c, dns) in eix {
        codes.push((
            register(&w, c, InstanceKind::Provision, dns).await,
            InstanceKind::Provision,
        ));
    }
    for (c, dns) in migrations {
        codes.push((
            register(&w, c, InstanceKind::Migrate, dns).await,
            InstanceKind::Migrate,
        ));
    }
    let scheme = target.expose().split("://").next().unwrap().to_owned();
    for (code, kind) in &codes {
        let info = run(&w, code, *kind).await;
        assert_eq!(
            info.status,
            ExecutionStatus::Succeeded,
            "{code}: {:?}",
            info.cause
        );
        let i = status(&w, code).await;
        assert_eq!(i.status, Status::Active);
        let target = i.target.db.clone().unwrap();
        assert!(target.expose().starts_with(&scheme));
        if *kind == InstanceKind::Migrate {
            assert_eq!(maintenance(&target).await, None, "{code}: target");
            assert_moved_away(&w, &i).await;
        }
        assert!(!w.ctx.store.history(code).await.unwrap().is_empty());
    }
}

/// `n` schools from code `first` on, each with a short name `tag-<i>`.
fn sites(tag: &str, first: u32, n: u32) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{:08}", first + i), format!("{tag}-{i}")))
        .collect()
}

/// The issue's counts: 50 EIX provisions and 5 migrations on PostgreSQL.
#[tokio::test]
async fn both_workflows_run_on_postgres() {
    on_servers(
        "pg",
        "A2A_TEST_PG_URL",
        "A2A_TEST_PG_URL",
        &sites("pg-eix", 43_900_100, 50),
        &sites("pg-mig", 43_900_200, 5),
    )
    .await;
}

/// 5 MariaDB → MariaDB migrations, and 2 EIX provisions there too.
#[tokio::test]
async fn both_workflows_run_on_mariadb() {
    on_servers(
        "mariadb",
        "A2A_TEST_MYSQL_URL",
        "A2A_TEST_MYSQL_URL",
        &sites("my-eix", 43_910_100, 2),
        &sites("my-mig", 43_910_200, 5),
    )
    .await;
}

#[tokio::test]
async fn a_postgres_site_migrates_to_mariadb() {
    on_servers(
        "pg_to_mariadb",
        "A2A_TEST_MYSQL_URL",
        "A2A_TEST_PG_URL",
        &[],
        &sites("pg-to-my", 43_920_045, 1),
    )
    .await;
}

/// A target that cannot be reached fails the import and then the rollback's drop: the
/// source is restored at once, the school is left in flight, and reconciliation runs the
/// same rollback again once the target can be reached: `rolled_back`, then a retry.
#[tokio::test]
async fn a_target_unreachable_midway_is_rolled_back_by_reconciliation_and_a_retry_succeeds() {
    let w = world(10).await;
    let code = register(&w, "08012345", InstanceKind::Migrate, "ins-exemple").await;
    let (blocked, flows) = on_a_blocked_shard(&w, &code).await;
    let as_it_was = source_now(&status(&w, &code).await).await;

    let id = start_on(&w, &flows, &code, InstanceKind::Migrate).await;
    let info = ended(&flows, &id).await;
    assert_eq!(info.status, ExecutionStatus::Failed, "{:?}", info.cause);
    assert_eq!(info.error.as_deref(), Some("A2A.Transient"));
    let i = status(&w, &code).await;
    assert_eq!(i.status, Status::Running, "its rollback did not finish");
    assert_eq!(
        source_now(&i).await,
        as_it_was,
        "the source is restored at once"
    );
    let history = w.ctx.store.history(&code).await.unwrap();
    let failed = |step: &str| {
        history
            .iter()
            .filter(|e| e.step == step && e.outcome == Outcome::Failed)
            .count()
    };
    assert_eq!(
        failed("provision-target-database"),
        6,
        "tried once and retried five times"
    );
    assert_eq!(failed("rollback"), 6, "the drop too");

    // Still unreachable: reconciliation's cleanup fails the same way, up to its limit,
    // and then the school is failed, its history naming what is left.
    let i = cleaned_up_in_vain(&w, &flows, &code).await;
    assert!(
        i.target.db.is_some(),
        "the target is still recorded, for a rerun to drop"
    );

    // The fix: the shard's folder is a folder again. A retry succeeds: the stage and the
    // files were removed, and the target, still recorded, is created now.
    std::fs::remove_file(&blocked).unwrap();
    std::fs::create_dir(&blocked).unwrap();
    let info = run_on(&flows, &code, InstanceKind::Migrate, 2).await;
    assert_eq!(info.status, ExecutionStatus::Succeeded, "{:?}", info.cause);
    let i = status(&w, &code).await;
    assert_eq!(
        (i.status, i.attempt, i.last_error.clone()),
        (Status::Active, 2, None)
    );
    assert_moved_away(&w, &i).await;
}

/// A second shard whose folder is a plain file, so that every connection to it fails,
/// recorded as `code`'s target: the file, and the workflows over a context that has it.
async fn on_a_blocked_shard(w: &World, code: &SchoolCode) -> (PathBuf, AslWorkflows) {
    let blocked = w.dir.join("blocked");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let mut site = (*w.ctx.site).clone();
    site.shards.push(Shard {
        name: "blocked".into(),
        db: Locator::new(format!("sqlite://{}", blocked.display())),
        capacity: 10,
    });
    let ctx = StepContext {
        site: Arc::new(site),
        ..w.ctx.clone()
    };
    let mut i = status(w, code).await;
    i.target.db = Some(a2a_steps::target_db(&ctx.site.shards[1], code));
    w.ctx.store.save(&i).await.unwrap();
    (blocked, flows(ctx))
}

/// Reconciliation's cleanups of `code`, each failing as its attempt's rollback did, up
/// to their limit; then the school is failed, its history naming what is left. It, then.
async fn cleaned_up_in_vain(w: &World, flows: &AslWorkflows, code: &SchoolCode) -> Instance {
    for n in 1..=a2a_schedule::MAX_CLEANUPS {
        let r = reconcile(w, flows, chrono::Duration::hours(6)).await;
        assert_eq!(r.cleanups.len(), 1, "cleanup {n}: {r:?}");
        assert_eq!(status(w, code).await.status, Status::Running);
    }
    let r = reconcile(w, flows, chrono::Duration::hours(6)).await;
    assert!(r.cleanups.is_empty(), "{r:?}");
    assert_failed_now(w, code, "did not finish in 3 cleanup runs").await
}

/// Checks that `code` is `failed` now, with a last error that says `because`.
async fn assert_failed_now(w: &World, code: &SchoolCode, because: &str) -> Instance {
    let i = status(w, code).await;
    assert_eq!(i.status, Status::Failed, "{:?}", i.last_error);
    let why = i.last_error.as_deref().unwrap_or_default();
    assert!(why.contains(because), "{why:?}");
    i
}

#[tokio::test]
async fn local_workflows_start_once_by_name_and_describe() {
    use a2a_core::{StartOutcome, Workflows};
    let w = world(10).await;
    let code = register(&w, "08000011", InstanceKind::Provision, "escola-a").await;
    let name = execution_name(&code, InstanceKind::Provision, 1);
    let input = json!({"school_code": code.as_str()});
    let flows: &dyn Workflows = &w.flows;
    let first = flows
        .start(InstanceKind::Provision, &name, input.clone())
        .await
        .unwrap();
    assert_eq!(first, StartOutcome::Started(name.clone()));
    let again = flows
        .start(InstanceKind::Provision, &name, input)
        .await
        .unwrap();
    assert_eq!(again, StartOutcome::AlreadyExists(name.clone()));
    // Wait for the end by polling the port, as the scheduler does.
    let info = loop {
        let info = flows.describe(&name).await.unwrap();
        if info.status != ExecutionStatus::Running {
            break info;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(info.status, ExecutionStatus::Succeeded, "{:?}", info.cause);
    assert_eq!(status(&w, &code).await.status, Status::Active);
    assert!(flows.describe("nope").await.is_err());
}

/// Starts by hand, as from the console (`{"school_code"}` under names of the person's
/// choosing). Two at once for one registered school: the first step of one claims it and
/// that one makes the site; the other is refused as a duplicate (`A2A.Duplicate`) and
/// rolls nothing back. A start of a school that is active is refused the same way, for a
/// provision and for a migration, and leaves both active.
#[tokio::test]
async fn a_second_start_of_a_school_is_refused_as_a_duplicate_and_rolls_nothing_back() {
    use a2a_core::Workflows;
    let w = world(10).await;
    let flows: &dyn Workflows = &w.flows;
    let input = |code: &SchoolCode| json!({"school_code": code.as_str()});
    let undone = |h: &[StepEvent]| {
        h.iter()
            .filter(|e| {
                matches!(
                    e.step.as_str(),
                    "deprovision" | "restore-source" | "rollback"
                )
            })
            .count()
    };
    let eix = register(&w, "08000021", InstanceKind::Provision, "escola-d").await;
    let kind = InstanceKind::Provision;
    for name in ["by-hand-a", "by-hand-b"] {
        flows.start(kind, name, input(&eix)).await.unwrap();
    }
    let (a, b) = (
        ended(flows, "by-hand-a").await,
        ended(flows, "by-hand-b").await,
    );
    let (won, lost) = match a.status {
        ExecutionStatus::Succeeded => (a, b),
        _ => (b, a),
    };
    assert_eq!(won.status, ExecutionStatus::Succeeded, "{:?}", won.cause);
    assert_eq!(lost.status, ExecutionStatus::Failed, "{:?}", lost.cause);
    assert_eq!(
        lost.error.as_deref(),
        Some("A2A.Duplicate"),
        "{:?}",
        lost.cause
    );
    let cause = lost.cause.unwrap_or_default();
    // The loser was refused at its claim (the winner running), or after the winner ended.
    assert!(
        (cause.contains("under execution") && cause.contains(&format!(":{}", won.id)))
            || cause.contains("already active"),
        "{cause}"
    );
    let i = status(&w, &eix).await;
    assert_eq!((i.status, i.attempt), (Status::Active, 1));
    assert_eq!(
        a2a_core::execution_name_of(i.execution.as_deref().unwrap()),
        won.id,
        "the instance follows the run that claimed it"
    );
    assert_eq!(undone(&w.ctx.store.history(&eix).await.unwrap()), 0);

    // An active school, of either kind, started again.
    let moved = register(&w, "08012346", InstanceKind::Migrate, "ins-exemple-b").await;
    let info = run(&w, &moved, InstanceKind::Migrate).await;
    assert_eq!(info.status, ExecutionStatus::Succeeded, "{:?}", info.cause);
    for (code, kind) in [
        (&eix, InstanceKind::Provision),
        (&moved, InstanceKind::Migrate),
    ] {
        let before = status(&w, code).await;
        let name = format!("again-{code}");
        flows.start(kind, &name, input(code)).await.unwrap();
        let again = ended(flows, &name).await;
        assert_eq!(again.status, ExecutionStatus::Failed, "{kind}");
        assert_eq!(again.error.as_deref(), Some("A2A.Duplicate"), "{kind}");
        let cause = again.cause.unwrap_or_default();
        assert!(cause.contains("already active"), "{kind}: {cause}");
        common::assert_left_as_it_was(&before, &status(&w, code).await, &kind);
        assert_eq!(
            undone(&w.ctx.store.history(code).await.unwrap()),
            0,
            "{kind}"
        );
    }
}

/// A template that carries its own `siteidentifier`, cron password and admin password: each
/// new site gets its own of all three, kept in the secret store, and a rerun of Customise
/// keeps them.
#[tokio::test]
async fn a_site_gets_its_own_identifier_cron_password_and_admin_password() {
    use a2a_core::SecretName;
    use a2a_dbmove::site::{
        admin_password_hash, config_value, set_admin_password, set_config_value,
    };
    let w = world(10).await;
    let tpl = a2a_dbmove::Db::connect(&w.ctx.site.templates["primary"].db, false)
        .await
        .unwrap();
    set_config_value(
        &tpl,
        "mdl_",
        "siteidentifier",
        Some("templatesiteidplantilla.xtec.cat"),
    )
    .await
    .unwrap();
    set_config_value(&tpl, "mdl_", "cronremotepassword", Some("template-cron"))
        .await
        .unwrap();
    let template_hash = "$2y$10$templatetemplatetemplatetemplatetemplatetemplatetempla";
    set_admin_password(&tpl, "mdl_", template_hash)
        .await
        .unwrap();
    drop(tpl);

    let mut seen = Vec::new();
    for (c, dns) in [("08000021", "escola-x"), ("17000022", "escola-y")] {
        let code = register(&w, c, InstanceKind::Provision, dns).await;
        let info = run(&w, &code, InstanceKind::Provision).await;
        assert_eq!(info.status, ExecutionStatus::Succeeded, "{:?}", info.cause);
        let db = status(&w, &code).await.target.db.unwrap();
        let db = a2a_dbmove::Db::connect(&db, false).await.unwrap();
        let secret = |what: &str| {
            let name = SecretName::of(&code, what).unwrap();
            let secrets = w.ctx.secrets.clone();
            async move { secrets.get(&name).await.unwrap().unwrap() }
        };
        let id = config_value(&db, "mdl_", "siteidentifier")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id, secret("site-identifier").await.expose());
        assert!(id.ends_with("eix.example.cat") && id != "templatesiteidplantilla.xtec.cat");
        let cron = config_value(&db, "mdl_", "cronremotepassword")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cron, secret("cron-password").await.expose());
        let hash = admin_password_hash(&db, "mdl_").await.unwrap().unwrap();
        assert_ne!(hash, template_hash);
        assert!(bcrypt_verifies(
            secret("admin-password").await.expose(),
            &hash
        ));

        // A rerun of Customise keeps the site's secrets.
        let again = a2a_steps::call(&w.ctx, "Customise", json!({"school_code": c})).await;
        assert!(again.is_ok(), "{again:?}");
        assert_eq!(
            config_value(&db, "mdl_", "siteidentifier")
                .await
                .unwrap()
                .unwrap(),
            id
        );
        seen.push((id, cron));
    }
    assert_ne!(
        seen[0], seen[1],
        "two sites share an identifier or a cron password"
    );
}

/// Whether `hash` is a bcrypt hash of `password` (PHP's `$2y$` reads as `$2b$`).
fn bcrypt_verifies(password: &str, hash: &str) -> bool {
    a2a_steps::secrets::verifies(password, hash)
}

/// How an attempt ends without its success.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    /// A step fails permanently: the Catch rolls back.
    Caught,
    /// Reconciliation stops it for running too long: no Catch runs.
    Stopped,
    /// The execution times out: no Catch runs.
    TimedOut,
    /// A step fails and then the Catch's rollback fails too.
    RollbackFailsOnce,
}

/// The local engine with one answer added: the execution `id` has timed out (Step
/// Functions' execution timeout; the local engine judges it on virtual time, which a hung
/// step never moves). Its run is stopped as the timeout would; the rest is the engine's.
struct TimesOut<'a> {
    engine: &'a AslWorkflows,
    id: String,
}

#[async_trait::async_trait]
impl a2a_core::Workflows for TimesOut<'_> {
    async fn start(
        &self,
        kind: InstanceKind,
        name: &str,
        input: serde_json::Value,
    ) -> Result<a2a_core::StartOutcome, a2a_core::PortError> {
        self.engine.start(kind, name, input).await
    }

    async fn describe(&self, id: &str) -> Result<a2a_core::ExecutionInfo, a2a_core::PortError> {
        if id != self.id {
            return self.engine.describe(id).await;
        }
        let cause = "The execution ran longer than its TimeoutSeconds";
        self.engine.stop(id, "States.Timeout", cause).await?;
        let mut info = self.engine.describe(id).await?;
        info.status = ExecutionStatus::TimedOut;
        Ok(info)
    }

    async fn stop(&self, id: &str, error: &str, cause: &str) -> Result<(), a2a_core::PortError> {
        self.engine.stop(id, error, cause).await
    }
}

/// The issue's acceptance, on the server of `var`: a migration per way an attempt can end
/// without success, each then rolled back (by its Catch, or by reconciliation's cleanup)
/// to a source byte for byte as before (its own maintenance page included), no target
/// database, stage, files or route left, `rolled_back`; and a retry ends `active`, its
/// verify passed (after the caught ending, of a source changed meanwhile: a row added, a
/// file removed), the source left frozen with a page naming the new address.
async fn every_ending_is_rolled_back_and_retried(test: &str, var: &str, first: u32) {
    use Ending::*;
    let Some(url) = a2a_testkit::service_url(var, test) else {
        return;
    };
    let server = Locator::new(url);
    let w = world_on(64, Some(&server), Some(&server), test).await;
    let six_hours = chrono::Duration::hours(6);
    for (n, ending) in [Caught, Stopped, TimedOut, RollbackFailsOnce]
        .into_iter()
        .enumerate()
    {
        let dns = format!("end{n}-{}", &test[..2]);
        let code = format!("{:08}", first + n as u32);
        let code = register(&w, &code, InstanceKind::Migrate, &dns).await;
        let i = status(&w, &code).await;
        if ending == Stopped {
            // A school in maintenance before its migration (its own page is there in
            // every fixture): it stays so after the rollback.
            let db = a2a_dbmove::Db::connect(i.source.db.as_ref().unwrap(), false)
                .await
                .unwrap();
            let setting = a2a_dbmove::site::MAINTENANCE_SETTING;
            a2a_dbmove::site::set_config_value(&db, "mdl_", setting, Some("1"))
                .await
                .unwrap();
        }
        let as_it_was = source_now(&i).await;
        match ending {
            Caught => w.faults.fail_once.lock().unwrap().push("RewriteConfig"),
            RollbackFailsOnce => {
                let mut once = w.faults.fail_once.lock().unwrap();
                once.extend(["RewriteConfig", "Rollback"]);
            }
            // After the copy: the import follows the export, and a step stopped while an
            // export part still runs on the worker would leave that part writing to the
            // stage until its next heartbeat.
            Stopped | TimedOut => *w.faults.hang.lock().unwrap() = Some("FinishImport"),
        }
        w.faults
            .hung
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let id = start_on(&w, &w.flows, &code, InstanceKind::Migrate).await;
        match ending {
            Caught => {
                let info = ended(&w.flows, &id).await;
                let why = "fails once";
                assert_ended(&w, &code, &info, "A2A.Permanent", why, RolledBack).await;
                let r = reconcile(&w, &w.flows, six_hours).await;
                assert!(r.cleanups.is_empty(), "nothing left to clean: {r:?}");
            }
            RollbackFailsOnce => {
                let info = ended(&w.flows, &id).await;
                assert_eq!(info.status, ExecutionStatus::Failed);
                let left = status(&w, &code).await.status;
                assert!(a2a_schedule::IN_FLIGHT.contains(&left), "in flight: {left}");
                let r = reconcile(&w, &w.flows, six_hours).await;
                assert_eq!(r.cleanups.len(), 1, "{r:?}");
            }
            Stopped => {
                w.faults.until_hung().await;
                let r = reconcile(&w, &w.flows, chrono::Duration::zero()).await;
                assert_eq!(r.stopped, vec![code.clone()], "{r:?}");
                assert_eq!(r.cleanups.len(), 1, "{r:?}");
                let info = ended(&w.flows, &id).await;
                assert_eq!(info.status, ExecutionStatus::Aborted);
            }
            TimedOut => {
                w.faults.until_hung().await;
                let engine = TimesOut {
                    engine: &w.flows,
                    id: id.clone(),
                };
                let r = reconcile(&w, &engine, six_hours).await;
                assert_eq!(r.cleanups.len(), 1, "{r:?}");
            }
        }
        *w.faults.hang.lock().unwrap() = None;
        let i = status(&w, &code).await;
        assert_eq!(
            i.status,
            Status::RolledBack,
            "{ending:?}: {:?}",
            i.last_error
        );
        assert_eq!(
            source_now(&i).await,
            as_it_was,
            "{ending:?}: the source as it was"
        );
        assert!(
            !a2a_dbmove::target::exists(&server, &code).await.unwrap(),
            "{ending:?}: the target database is dropped"
        );
        assert_eq!(i.target.db, None);
        for prefix in [
            format!("stage/{code}/"),
            format!("instances/{code}/"),
            format!("routes/{dns}"),
            format!("frozen/{code}"),
        ] {
            let left = w.ctx.blob.list(&prefix, None).await.unwrap().items;
            assert!(left.is_empty(), "{ending:?}: {prefix} is gone: {left:?}");
        }
        let history = w.ctx.store.history(&code).await.unwrap();
        let cleanups = history
            .iter()
            .filter(|e| e.step == a2a_schedule::CLEANUP_STEP)
            .count();
        let by_reconciliation = usize::from(ending != Caught);
        assert_eq!(cleanups, by_reconciliation, "{ending:?}");

        if ending == Caught {
            // The source changes between the rollback and the retry: a row added, a
            // file removed. The retry moves it as it is then.
            let db = a2a_dbmove::Db::connect(i.source.db.as_ref().unwrap(), false)
                .await
                .unwrap();
            a2a_dbmove::site::set_config_value(&db, "mdl_", "a2a_added_after", Some("1"))
                .await
                .unwrap();
            let root = PathBuf::from(i.source.files.as_ref().unwrap().expose());
            let gone = as_it_was.files.keys().find(|k| k.starts_with("filedir/"));
            std::fs::remove_file(root.join(gone.unwrap())).unwrap();
        }
        // The retry starts from an empty target side and ends active, verified.
        let info = run(&w, &code, InstanceKind::Migrate).await;
        assert_eq!(
            info.status,
            ExecutionStatus::Succeeded,
            "{ending:?}: {:?}",
            info.cause
        );
        let i = status(&w, &code).await;
        assert_eq!((i.attempt, i.last_error.clone()), (2, None), "{ending:?}");
        assert_moved_away(&w, &i).await;
        let history = w.ctx.store.history(&code).await.unwrap();
        let verified = history.iter().filter(|e| {
            e.step.starts_with("verify-")
                && !e.step.starts_with("verify-source")
                && e.outcome == Outcome::Succeeded
        });
        assert!(
            verified.count() >= 2,
            "{ending:?}: the retry's checks passed"
        );
    }
}

#[tokio::test]
async fn every_ending_is_rolled_back_and_retried_on_postgres() {
    every_ending_is_rolled_back_and_retried("pg_endings", "A2A_TEST_PG_URL", 25_930_100).await;
}

#[tokio::test]
async fn every_ending_is_rolled_back_and_retried_on_mariadb() {
    every_ending_is_rolled_back_and_retried("my_endings", "A2A_TEST_MYSQL_URL", 25_930_200).await;
}

/// `ProvisionTargetDatabase` asks the shard's server whether the target is there: a login
/// the server refuses is an error, never taken for "absent" (which would send a
/// `CREATE DATABASE` for a database that holds an import), and what is there is kept.
#[tokio::test]
async fn a_refused_login_is_an_error_not_an_absent_target() {
    let test = "refused_login";
    let (Some(root), Some(pw)) = (
        a2a_testkit::service_url("A2A_TEST_MYSQL_URL", test),
        a2a_testkit::service_url("A2A_TEST_MYSQL_PASSWORD_URL", test),
    ) else {
        return;
    };
    let (root, pw) = (Locator::new(root), Locator::new(pw));
    let w = world(10).await;
    let code = register(&w, "25930300", InstanceKind::Migrate, "refused").await;
    let name = a2a_dbmove::target::name(&code);
    a2a_dbmove::server::drop(&root, &name).await.unwrap();
    let held = a2a_dbmove::server::create(&root, &name).await.unwrap();
    let db = a2a_dbmove::Db::connect(&held, false).await.unwrap();
    db.exec("CREATE TABLE mdl_kept (id INT PRIMARY KEY); INSERT INTO mdl_kept VALUES (7)")
        .await
        .unwrap();
    let kept = || async {
        let db = a2a_dbmove::Db::connect(&held, false).await.unwrap();
        db.query_i64("SELECT COUNT(*) FROM mdl_kept", &[])
            .await
            .unwrap()
    };
    let (user, _) = pw.credentials().unwrap();
    let wrong = pw.without_password().with_credentials(&user, "wrong-pw");
    let on = |shard: &Locator| {
        let mut site = (*w.ctx.site).clone();
        site.shards = vec![Shard {
            name: "pw".into(),
            db: shard.clone(),
            capacity: 10,
        }];
        StepContext {
            site: Arc::new(site),
            ..w.ctx.clone()
        }
    };
    let mut i = status(&w, &code).await;
    i.target.db = Some(a2a_steps::target_db(&on(&pw).site.shards[0], &code).without_password());
    w.ctx.store.save(&i).await.unwrap();
    let input = json!({"school_code": code.as_str()});

    let e = a2a_steps::call(&on(&wrong), "ProvisionTargetDatabase", input.clone())
        .await
        .unwrap_err();
    assert!(
        !e.to_string().contains("wrong-pw"),
        "no password shown: {e}"
    );
    assert_eq!(kept().await, 1, "the target and its rows are there: {e}");

    let r = a2a_steps::call(&on(&pw), "ProvisionTargetDatabase", input.clone())
        .await
        .unwrap();
    assert_eq!(r["created"], false, "{r}");
    assert_eq!(kept().await, 1);

    a2a_dbmove::server::drop(&root, &name).await.unwrap();
    let r = a2a_steps::call(&on(&pw), "ProvisionTargetDatabase", input)
        .await
        .unwrap();
    assert_eq!(r["created"], true, "{r}");
    a2a_dbmove::server::drop(&root, &name).await.unwrap();
}

/// A rollback (`step`, of the workflow of `kind`, whose first step `first` starts the
/// attempt) with no time left deletes one batch of blobs and answers `complete: false`;
/// run again, it goes on where it stopped, ends `rolled_back`, and a rerun then keeps it.
async fn out_of_time_stops_after_a_batch_and_resumes(kind: InstanceKind, first: &str, step: &str) {
    let w = world(10).await;
    let code = register(&w, "08012345", kind, "ins-exemple").await;
    let input = json!({"school_code": code.as_str()});
    a2a_steps::call(&w.ctx, first, input.clone()).await.unwrap();
    for n in 0..100 {
        let k = BlobKey::parse(&format!("instances/{code}/moodledata/f{n:03}")).unwrap();
        w.ctx.blob.put(&k, b"x".as_slice().into()).await.unwrap();
    }
    let k = BlobKey::parse(&format!("stage/{code}/dbmove/export.json")).unwrap();
    w.ctx.blob.put(&k, b"{}".as_slice().into()).await.unwrap();
    let rollback = json!({"school_code": code.as_str(), "seconds": 0,
        "error": {"Error": "A2A.Permanent", "Cause": "test"}});
    let mut runs = Vec::new();
    loop {
        let r = a2a_steps::call(&w.ctx, step, rollback.clone())
            .await
            .unwrap();
        runs.push(r["removed"].as_u64().unwrap());
        if r["complete"] == true {
            assert_eq!(r["rolled_back"], true, "{step}: {r}");
            break;
        }
        assert_eq!(status(&w, &code).await.status, Status::Running, "not yet");
        assert!(runs.len() < 10, "{step}: {runs:?}");
    }
    // The stage's three blobs (the export, the first step's journal entry and the mark
    // that the attempt is being undone) and a batch of 32; then 32 a run, then the last
    // 4, each with the undoing mark that run wrote again.
    assert_eq!(runs, [35, 33, 33, 5], "{step}");
    let i = status(&w, &code).await;
    assert_eq!(
        (i.status, i.target.db),
        (Status::RolledBack, None),
        "{step}"
    );
    for prefix in [format!("instances/{code}/"), "shards/".to_owned()] {
        let left = w.ctx.blob.list(&prefix, None).await.unwrap().items;
        assert!(left.is_empty(), "{step}: {prefix}: {left:?}");
    }
    let again = a2a_steps::call(&w.ctx, step, rollback).await.unwrap();
    assert_eq!(again["kept"], true, "{step}: {again}");
}

#[tokio::test]
async fn a_rollback_out_of_time_stops_after_a_batch_and_resumes() {
    out_of_time_stops_after_a_batch_and_resumes(InstanceKind::Migrate, "Preflight", "Rollback")
        .await;
}

#[tokio::test]
async fn a_deprovision_out_of_time_stops_after_a_batch_and_resumes() {
    let kind = InstanceKind::Provision;
    out_of_time_stops_after_a_batch_and_resumes(kind, "AllocateTarget", "Deprovision").await;
}

/// How a provision's attempt ends without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProvisionEnding {
    /// A step fails: its Catch runs `Deprovision`.
    Caught,
    /// Reconciliation stops it: no Catch runs; its cleanup execution runs `Deprovision`.
    Stopped,
    /// The template's address, replaced by the site's, cannot fit in a char column of the
    /// template: `Customise` fails naming the table, the column and the row ids.
    RewriteDoesNotFit,
}

/// Issue 21's endings for provisions, on the server of `var`: each attempt is left with
/// no target database, allocation, stage, site files or route, `rolled_back` with the
/// error; a retry (after the template is mended, for the rewrite) then ends `active`,
/// its `VerifySite` passed.
async fn every_provision_ending_is_rolled_back_and_retried(test: &str, var: &str, first: u32) {
    use ProvisionEnding::*;
    let Some(url) = a2a_testkit::service_url(var, test) else {
        return;
    };
    let server = Locator::new(url);
    let w = world_on(64, Some(&server), None, test).await;
    let template = w.ctx.site.templates["primary"].clone();
    let tamper = |sql: String| {
        let db = template.db.clone();
        async move {
            let t = a2a_dbmove::Db::connect(&db, false).await.unwrap();
            t.exec(&sql).await.unwrap();
            drop(t);
            // PostgreSQL clones only a template nobody is connected to.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    };
    for (n, ending) in [Caught, Stopped, RewriteDoesNotFit].into_iter().enumerate() {
        let dns = format!("prov{n}-{}", &test[..2]);
        let code = format!("{:08}", first + n as u32);
        let code = register(&w, &code, InstanceKind::Provision, &dns).await;
        match ending {
            Caught => w.faults.fail_once.lock().unwrap().push("VerifySite"),
            Stopped => *w.faults.hang.lock().unwrap() = Some("VerifySite"),
            RewriteDoesNotFit => {
                // 12 rows whose note ends with the template's address at the column's
                // limit: the site's address is longer.
                let new = w.ctx.site.wwwroot(&dns);
                let width = template.wwwroot.len() + 1;
                assert!(new.len() > width, "{new}");
                let full = format!("z{}", template.wwwroot);
                let rows: Vec<String> = (1..=12).map(|id| format!("({id}, '{full}')")).collect();
                tamper(format!(
                    "CREATE TABLE mdl_a2a_tamper (id BIGINT PRIMARY KEY, note VARCHAR({width})); \
                     INSERT INTO mdl_a2a_tamper (id, note) VALUES {}",
                    rows.join(", ")
                ))
                .await;
            }
        }
        w.faults
            .hung
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let id = start_on(&w, &w.flows, &code, InstanceKind::Provision).await;
        if ending == Stopped {
            w.faults.until_hung().await;
            // What the attempt made before it hung is there, to be removed.
            assert!(a2a_dbmove::target::exists(&server, &code).await.unwrap());
            let files = w.ctx.blob.list(&format!("instances/{code}/"), None).await;
            assert!(!files.unwrap().items.is_empty(), "the template's files");
            let r = reconcile(&w, &w.flows, chrono::Duration::zero()).await;
            assert_eq!(r.stopped, vec![code.clone()], "{r:?}");
            assert_eq!(r.cleanups.len(), 1, "{r:?}");
            assert_eq!(ended(&w.flows, &id).await.status, ExecutionStatus::Aborted);
            *w.faults.hang.lock().unwrap() = None;
        } else {
            let info = ended(&w.flows, &id).await;
            let (error, why) = match ending {
                RewriteDoesNotFit => (
                    "A2A.Permanent.Verify",
                    format!(
                        "mdl_a2a_tamper.note ({} characters): 12 rows, id 1, 2, 3, 4, 5, 6, \
                         7, 8, 9, 10 and 2 more",
                        template.wwwroot.len() + 1
                    ),
                ),
                _ => ("A2A.Permanent", "fails once".to_owned()),
            };
            assert_ended(&w, &code, &info, error, &why, RolledBack).await;
            let r = reconcile(&w, &w.flows, chrono::Duration::hours(6)).await;
            assert!(r.cleanups.is_empty(), "nothing left to clean: {r:?}");
        }
        let i = status(&w, &code).await;
        assert_eq!(i.status, RolledBack, "{ending:?}: {:?}", i.last_error);
        assert_eq!(i.target.db, None, "{ending:?}");
        assert!(
            !a2a_dbmove::target::exists(&server, &code).await.unwrap(),
            "{ending:?}: the target database is dropped"
        );
        for prefix in [
            format!("stage/{code}/"),
            format!("instances/{code}/"),
            format!("routes/{dns}"),
            format!("shards/{}/{code}", w.ctx.site.shards[0].name),
        ] {
            let left = w.ctx.blob.list(&prefix, None).await.unwrap().items;
            assert!(left.is_empty(), "{ending:?}: {prefix} is gone: {left:?}");
        }
        let history = w.ctx.store.history(&code).await.unwrap();
        assert_succeeded(&history, &["deprovision"], &format!("{ending:?}"));
        let cleanups = history
            .iter()
            .filter(|e| e.step == a2a_schedule::CLEANUP_STEP)
            .count();
        assert_eq!(cleanups, usize::from(ending == Stopped), "{ending:?}");

        if ending == RewriteDoesNotFit {
            tamper("DROP TABLE mdl_a2a_tamper".to_owned()).await;
        }
        let info = run(&w, &code, InstanceKind::Provision).await;
        assert_eq!(
            info.status,
            ExecutionStatus::Succeeded,
            "{ending:?}: {:?}",
            info.cause
        );
        let i = status(&w, &code).await;
        assert_eq!(
            (i.status, i.attempt, i.last_error.clone()),
            (Status::Active, 2, None),
            "{ending:?}"
        );
        let history = w.ctx.store.history(&code).await.unwrap();
        let steps = ["verify-site", "register-route"];
        assert_succeeded(&history, &steps, &format!("{ending:?}"));
        assert!(a2a_dbmove::target::exists(&server, &code).await.unwrap());
        a2a_dbmove::server::drop(&server, &a2a_dbmove::target::name(&code))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn every_provision_ending_is_rolled_back_and_retried_on_postgres() {
    let var = "A2A_TEST_PG_URL";
    every_provision_ending_is_rolled_back_and_retried("pg_prov_endings", var, 25_930_400).await;
}

#[tokio::test]
async fn every_provision_ending_is_rolled_back_and_retried_on_mariadb() {
    let var = "A2A_TEST_MYSQL_URL";
    every_provision_ending_is_rolled_back_and_retried("my_prov_endings", var, 25_930_500).await;
}

/// Issue 21's source-side race: a `Freeze` still changing the source when its execution
/// is stopped. The test holds the source's config table (a write lock in an open
/// transaction), so the freeze waits inside, after it remembered the source and before
/// it writes the setting; the execution is stopped and its cleanup's `RestoreSource`
/// starts; only then is the table let go, and the late freeze goes on. The cleanup puts
/// the source back after it: byte for byte as before, `rolled_back`; a retry then ends
/// `active`.
#[tokio::test]
async fn a_late_freeze_does_not_leave_the_source_frozen() {
    let test = "late_freeze";
    let Some(url) = a2a_testkit::service_url("A2A_TEST_PG_URL", test) else {
        return;
    };
    let server = Locator::new(url);
    let w = world_on(64, Some(&server), Some(&server), test).await;
    let code = register(&w, "25930600", InstanceKind::Migrate, "late-freeze").await;
    let i = status(&w, &code).await;
    let as_it_was = source_now(&i).await;
    let src = i.source.db.clone().unwrap();
    let holder = a2a_dbmove::Db::connect(&src, false).await.unwrap();
    holder
        .exec("BEGIN; LOCK TABLE mdl_config IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let id = start_on(&w, &w.flows, &code, InstanceKind::Migrate).await;

    // The freeze waits for the table: a lock on it not granted, in the source's database.
    let probe = a2a_dbmove::Db::connect(&src, false).await.unwrap();
    let waiting = "SELECT COUNT(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                   WHERE c.relname = 'mdl_config' AND NOT l.granted \
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let mut n = 0;
    while probe.query_i64(waiting, &[]).await.unwrap() == 0 {
        n += 1;
        assert!(n < 1500, "the freeze never reached the setting");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        w.ctx
            .blob
            .get(&BlobKey::parse(&format!("frozen/{code}.json")).unwrap())
            .await
            .is_ok(),
        "the freeze remembered the source before it waits"
    );

    // Reconciliation stops the execution and starts its cleanup, not waited for here.
    let mut policy = a2a_schedule::Policy::new(Vec::new());
    policy.max_duration = chrono::Duration::zero();
    let queue = a2a_local::MemQueue::new(5);
    let now = a2a_core::clock::now();
    let r = a2a_schedule::tick(&*w.ctx.store, &queue, Some(&w.flows), &policy, now)
        .await
        .unwrap();
    assert_eq!(
        (r.stopped.clone(), r.cleanups.len()),
        (vec![code.clone()], 1),
        "{r:?}"
    );
    assert_eq!(ended(&w.flows, &id).await.status, ExecutionStatus::Aborted);
    // The cleanup's RestoreSource has started while the freeze still waits.
    let mut n = 0;
    loop {
        let history = w.ctx.store.history(&code).await.unwrap();
        if history.iter().any(|e| e.step == "restore-source") {
            assert!(
                !history
                    .iter()
                    .any(|e| e.step == "freeze" && e.outcome != Outcome::Started),
                "the freeze has not ended yet: {history:?}"
            );
            break;
        }
        n += 1;
        assert!(n < 1500, "the cleanup never began its restore");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Let the late freeze go on (well inside its worker's next heartbeat).
    holder.exec("COMMIT").await.unwrap();
    ended(&w.flows, &r.cleanups[0]).await;

    // The late freeze finished (it set the setting and wrote its page), and the restore
    // put back what it found after it: without the source's lock, the restore's page
    // comes first and the freeze's page stays.
    let history = w.ctx.store.history(&code).await.unwrap();
    assert_succeeded(&history, &["freeze", "restore-source"], "the late freeze");
    let i = status(&w, &code).await;
    assert_eq!(i.status, RolledBack, "{:?}", i.last_error);
    assert_eq!(source_now(&i).await, as_it_was, "the source as it was");

    let info = run(&w, &code, InstanceKind::Migrate).await;
    assert_eq!(info.status, ExecutionStatus::Succeeded, "{:?}", info.cause);
    assert_moved_away(&w, &status(&w, &code).await).await;
}

/// A provision whose target shard cannot be reached: its `Deprovision` removes what it
/// can and fails on the database it cannot drop, the school left in flight; after
/// reconciliation's last cleanup it is `failed`, its history naming the database left;
/// once the shard is back, an operator's retry (`a2a retry`) provisions it.
#[tokio::test]
async fn a_deprovision_that_cannot_drop_leaves_the_school_failed_and_a_retry_provisions_it() {
    let w = world(10).await;
    let code = register(&w, "08012346", InstanceKind::Provision, "escola-blocked").await;
    let (blocked, flows) = on_a_blocked_shard(&w, &code).await;

    let id = start_on(&w, &flows, &code, InstanceKind::Provision).await;
    let info = ended(&flows, &id).await;
    assert_eq!(info.status, ExecutionStatus::Failed, "{:?}", info.cause);
    assert_eq!(
        status(&w, &code).await.status,
        Status::Running,
        "not undone"
    );
    let i = cleaned_up_in_vain(&w, &flows, &code).await;
    assert!(i.target.db.is_some(), "the target is still recorded");
    // What is left, in the history: the database, by name; the files are gone.
    let history = w.ctx.store.history(&code).await.unwrap();
    let left = history
        .iter()
        .filter(|e| e.step == "deprovision" && e.outcome == Outcome::Failed)
        .filter_map(|e| e.error.as_deref())
        .collect::<Vec<_>>();
    assert!(
        left.len() >= 4
            && left.iter().all(|e| e.contains("target database")
                && e.contains(&format!("a2a_{code}.db"))
                && e.contains("is left")),
        "{left:#?}"
    );
    for prefix in [format!("instances/{code}/"), format!("stage/{code}/")] {
        let files = w.ctx.blob.list(&prefix, None).await.unwrap().items;
        assert!(files.is_empty(), "{prefix}: {files:?}");
    }

    // The shard is back; `a2a retry`'s move, then the next attempt: active.
    std::fs::remove_file(&blocked).unwrap();
    std::fs::create_dir(&blocked).unwrap();
    let queue = a2a_local::MemQueue::new(5);
    let now = a2a_core::clock::now();
    let retried = a2a_schedule::retry_now(&*w.ctx.store, &queue, &code, now)
        .await
        .unwrap();
    assert_eq!(retried.map(|i| i.status), Ok(Status::Queued));
    let info = run_on(&flows, &code, InstanceKind::Provision, 2).await;
    assert_eq!(info.status, ExecutionStatus::Succeeded, "{:?}", info.cause);
    let i = status(&w, &code).await;
    assert_eq!(
        (i.status, i.attempt, i.last_error.clone()),
        (Status::Active, 2, None)
    );
}

/// One object of the copy under `instances/<code>/<place>` (`filedir/` or `moodledata/`)
/// overwritten behind the manifest with other bytes of the same size; its key.
async fn tamper(blob: &dyn BlobStore, code: &str, place: &str) -> String {
    let page = blob
        .list(&format!("instances/{code}/{place}"), None)
        .await
        .unwrap();
    let victim = page
        .items
        .into_iter()
        .find(|m| m.size > 0)
        .unwrap_or_else(|| panic!("no object under {place} to tamper with"));
    let mut bytes = blob.get(&victim.key).await.unwrap().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    if place == "filedir/" {
        // With the SHA-1 of its new bytes, as a content-addressed put stores it: what is
        // caught is the content, not a missing checksum.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tampered");
        std::fs::write(&file, &bytes).unwrap();
        let (_, sha1) = a2a_files::sum_file(&file, a2a_core::SumAlgo::Sha1)
            .await
            .unwrap();
        blob.put_file_sha1(&victim.key, &file, &sha1).await.unwrap();
    } else {
        blob.put(&victim.key, bytes.into()).await.unwrap();
    }
    victim.key.to_string()
}

/// Migrates `code` in `w` with one object of the copy under `place` changed (same size,
/// other bytes) just before the workflow's Verify: Verify fails `A2A.Permanent.Verify`
/// naming that key, the attempt is rolled back, and a retry (a clean migration) passes.
async fn a_changed_object_fails_verify_and_a_clean_retry_passes(
    w: &World,
    code: &str,
    place: &str,
) {
    let code = register(w, code, InstanceKind::Migrate, &format!("ins-{code}")).await;
    let tampered = Arc::new(tokio::sync::OnceCell::<String>::new());
    let before: a2a_cli::BeforeStep = {
        let (blob, tampered, place) = (w.ctx.blob.clone(), tampered.clone(), place.to_owned());
        let code = code.to_string();
        Arc::new(move |name| {
            let (blob, tampered, place, code) =
                (blob.clone(), tampered.clone(), place.clone(), code.clone());
            Box::pin(async move {
                // Once, before the first part's Verify; the parts' Verifies run at once
                // and each waits until it is done.
                if name == "Verify" {
                    tampered
                        .get_or_init(|| tamper(blob.as_ref(), &code, &place))
                        .await;
                }
                Ok(())
            })
        })
    };
    let flows =
        a2a_cli::local_workflows_with(w.ctx.clone(), &root().join("statemachines"), Some(before))
            .unwrap();
    let info = run_on(&flows, &code, InstanceKind::Migrate, 1).await;
    let key = tampered.get().cloned().expect("Verify ran");
    let i = assert_ended(w, &code, &info, "A2A.Permanent.Verify", &key, RolledBack).await;
    let why = i.last_error.unwrap_or_default();
    assert!(why.contains(&format!("school {code}")), "{why}");
    // Same size: caught by content.
    assert!(
        why.contains(&format!("{key} differs (content: the copy's")),
        "{why}"
    );
    // The retry's copy is clean (the rollback removed the tampered one): Verify passes.
    assert_retry_succeeds(w, &flows, &code, InstanceKind::Migrate).await;
}

#[tokio::test]
async fn a_target_object_changed_behind_the_manifest_is_caught_in_a_folder_store() {
    let w = world(10).await;
    a_changed_object_fails_verify_and_a_clean_retry_passes(&w, "08034561", "filedir/").await;
    a_changed_object_fails_verify_and_a_clean_retry_passes(&w, "08034562", "moodledata/").await;
}

#[tokio::test]
async fn a_target_object_changed_behind_the_manifest_is_caught_in_s3() {
    let test = "a target object changed behind the manifest, in S3";
    if a2a_testkit::service_url("AWS_ENDPOINT_URL", test).is_none() {
        return;
    }
    let conf = a2a_aws::config::sdk_config().await;
    let bucket = a2a_testkit::unique_name("a2a-verify");
    let client = a2a_aws::aws_sdk_s3::Client::from_conf(
        a2a_aws::aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    a2a_aws::S3Blob::create_bucket(&client, &bucket)
        .await
        .unwrap();
    let blob: Arc<dyn BlobStore> = Arc::new(a2a_aws::S3Blob::from_conf(&conf, &bucket, "agora"));
    let w = world_in(10, None, None, "", Some(blob)).await;
    a_changed_object_fails_verify_and_a_clean_retry_passes(&w, "17034563", "filedir/").await;
    a_changed_object_fails_verify_and_a_clean_retry_passes(&w, "17034564", "moodledata/").await;
}

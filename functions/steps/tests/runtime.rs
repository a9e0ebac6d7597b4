//! Every `step-*` binary itself, started as Lambda starts it, against the fake Lambda
//! Runtime API of `a2a_testkit::lambda`, with moto's DynamoDB and S3 behind it and SQLite
//! databases and local folders as the sites.
//!
//! The binaries are enumerated from the step table (`a2a_steps::STEPS`), so a
//! new step is covered without touching this file: each one is started once, and gets
//!
//! * its success path: both real state machines run on the local ASL engine with every
//!   task resolved to its step binary, invoked through the runtime API (an EIX site
//!   provisioned, a site migrated; a second school of each kind fails at its route and is
//!   rolled back or deprovisioned by the Catch); every step must have served a run;
//! * its error paths, always: a malformed school code and an unregistered one come back
//!   through `/error` as `A2A.Permanent.Input`, which no Retry names and `States.ALL`
//!   catches, and an unreachable state table as `A2A.Transient`, which every Retry names.
//!
//! Needs `AWS_ENDPOINT_URL` (a moto server); without it the test prints a SKIP line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use a2a_asl::{
    Execution, ExecutionOptions, StateMachine, TaskContext, TaskError, TaskHandler, TaskResolver,
    TaskTarget, VirtualClock,
};
use a2a_aws::{DynamoDbStore, S3Blob};
use a2a_core::{BlobStore, Instance, InstanceKind, InstanceStore, Locator, SchoolCode, Status};
use a2a_steps::{StepContext, bin_name, fixture};
use a2a_testkit::lambda::{
    ErrorReport, FakeRuntime, LambdaProcess, Outcome, binary_path, expect_failed_cold_start,
};
use a2a_testkit::moto::Moto;
use a2a_testkit::service_url;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// How the state machines handle an error name at the tasks that call `step`: whether a
/// Retry names it, and whether a Catch (of the task or of the Map or Parallel around it)
/// takes it.
#[derive(Debug, Default)]
struct Handling {
    tasks: usize,
    retried: usize,
    caught: usize,
}

fn handling(step: &str, error: &str) -> Handling {
    fn names(v: &Value, key: &str) -> Vec<String> {
        v.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|r| r["ErrorEquals"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect()
    }
    fn walk(v: &Value, around: &[String], step: &str, error: &str, out: &mut Handling) {
        let matches = |list: &[String]| list.iter().any(|n| n == error || n == "States.ALL");
        match v {
            Value::Object(m) => {
                let kind = m.get("Type").and_then(Value::as_str);
                let mut catch = around.to_vec();
                catch.extend(names(v, "Catch"));
                if kind == Some("Task") && m.get("Resource") == Some(&json!(format!("${{{step}}}")))
                {
                    out.tasks += 1;
                    // Retry on States.ALL would retry a permanent error too: only names count.
                    if names(v, "Retry").iter().any(|n| n == error) {
                        out.retried += 1;
                    }
                    if matches(&catch) {
                        out.caught += 1;
                    }
                }
                let inner = if matches!(kind, Some("Map" | "Parallel")) {
                    &catch[..]
                } else {
                    around
                };
                for x in m.values() {
                    walk(x, inner, step, error, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, around, step, error, out)),
            _ => {}
        }
    }
    let mut out = Handling::default();
    for kind in InstanceKind::ALL {
        let path = root().join(format!("statemachines/{}.asl.json", kind.workflow()));
        let asl: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        walk(&asl, &[], step, error, &mut out);
    }
    out
}

/// A permanent error: never retried; caught wherever the step is called under a Catch
/// (the rollback steps run inside the catch handlers and have none).
fn assert_permanent(step: &str, e: &ErrorReport, what: &str) {
    assert_eq!(e.error_type, "A2A.Permanent.Input", "{step} {what}: {e:?}");
    let h = handling(step, &e.error_type);
    assert!(
        h.tasks >= 1,
        "{step}: no Task calls ${{{step}}} in statemachines/"
    );
    assert_eq!(h.retried, 0, "{step}: a Retry names {}", e.error_type);
    if !matches!(step, "Rollback" | "Deprovision") {
        assert_eq!(
            h.caught, h.tasks,
            "{step}: {} is not caught: {h:?}",
            e.error_type
        );
    }
}

/// The world the steps work in: moto's table and bucket, and a folder with the EIX
/// template database, one SQLite shard and the migrated schools' sources.
struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    table: String,
    bucket: String,
    site: String,
    store: DynamoDbStore,
    blob: Arc<S3Blob>,
    /// The same context in this process, for a step whose binary is missing.
    ctx: StepContext,
}

async fn world(moto: Moto) -> World {
    let store = moto.state_table().await.unwrap();
    let bucket = moto.bucket("a2a-data").await.unwrap();
    let blob = Arc::new(S3Blob::from_conf(&moto.conf, &bucket, ""));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();

    // The EIX template: a database, and files under `templates/primary/` of the bucket.
    let tpl_db = Locator::new(format!("sqlite://{}/templates/primary.db", dir.display()));
    let template = fixture::primary_template(blob.clone(), &dir, tpl_db)
        .await
        .unwrap();
    let shard = Locator::new(format!("sqlite://{}/shard-1", dir.display()));
    let site = fixture::eix_site(shard, 10, template);
    let ctx = StepContext {
        store: Arc::new(store.clone()),
        blob: blob.clone(),
        site: Arc::new(site.clone()),
        secrets: Arc::new(a2a_local::FileSecrets::new(dir.join("secrets"))),
    };
    World {
        _tmp: tmp,
        dir,
        site: serde_json::to_string(&site).unwrap(),
        ctx,
        table: store.table().to_owned(),
        store,
        bucket,
        blob,
    }
}

impl World {
    async fn register(&self, code: &str, kind: InstanceKind, dns: &str) -> SchoolCode {
        let code = SchoolCode::parse(code).unwrap();
        let i = fixture::school(&code, kind, dns, &self.dir, None)
            .await
            .unwrap();
        assert!(self.store.register(&i).await.unwrap());
        code
    }

    async fn status(&self, code: &SchoolCode) -> Instance {
        self.store.get(code).await.unwrap().unwrap()
    }

    /// The step's binary, started against `rt` with this world's configuration.
    fn spawn(&self, step: &str, rt: &FakeRuntime, extra: &[(&str, String)]) -> LambdaProcess {
        let bin = binary_path(&bin_name(step));
        assert!(bin.is_file(), "{step}: {} was not built", bin.display());
        let mut env = vec![
            ("A2A_TABLE", self.table.clone()),
            ("A2A_BUCKET", self.bucket.clone()),
            ("A2A_SITE", self.site.clone()),
        ];
        env.extend(extra.iter().cloned());
        LambdaProcess::spawn(&bin, &format!("a2a-{}", bin_name(step)), rt, &env)
            .unwrap_or_else(|e| panic!("{step}: {e}"))
    }
}

/// The step binaries as the state machines' tasks: `${Step}` resolves to the binary of
/// that step, started on its first call (one process and one fake runtime per binary) and
/// invoked through the runtime API; its `/error` becomes the task's error, as Lambda's
/// does in Step Functions.
struct Binaries {
    world: Arc<World>,
    running: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<Running>>>>,
    /// Per step, the last input it succeeded on.
    served: Mutex<BTreeMap<String, Value>>,
    /// Steps without a binary: run in this process so the rest can be tested, and then
    /// the test fails naming them.
    missing: Mutex<BTreeSet<String>>,
}

struct Running {
    rt: FakeRuntime,
    process: LambdaProcess,
}

impl Binaries {
    async fn running(&self, step: &str) -> Arc<tokio::sync::Mutex<Running>> {
        if let Some(r) = self.running.lock().unwrap().get(step) {
            return r.clone();
        }
        let rt = FakeRuntime::start(&format!("a2a-{}", bin_name(step)))
            .await
            .unwrap();
        let process = self.world.spawn(step, &rt, &[]);
        let r = Arc::new(tokio::sync::Mutex::new(Running { rt, process }));
        self.running
            .lock()
            .unwrap()
            .entry(step.to_owned())
            .or_insert(r)
            .clone()
    }

    /// One event to the binary of `step`, and its answer.
    async fn call(&self, step: &str, input: &Value) -> Outcome {
        // A source-side step is no Lambda: it runs here, as `a2a worker` runs it.
        let source = a2a_steps::step(step).is_some_and(|s| s.side == a2a_steps::Side::Source);
        let out = if !source && binary_path(&bin_name(step)).is_file() {
            let r = self.running(step).await;
            let mut r = r.lock().await;
            let Running { rt, process } = &mut *r;
            process.call_json(rt, input).await
        } else {
            if !source {
                self.missing.lock().unwrap().insert(bin_name(step));
            }
            match a2a_fn_steps::handle(step, input.clone(), &self.world.ctx).await {
                Ok(v) => Outcome::Response(v),
                Err(f) => Outcome::Error(ErrorReport {
                    error_type: f.error_type().to_owned(),
                    error_message: f.to_string(),
                    header: None,
                }),
            }
        };
        if matches!(out, Outcome::Response(_)) {
            self.served
                .lock()
                .unwrap()
                .insert(step.to_owned(), input.clone());
        }
        out
    }
}

struct StepTask {
    step: String,
    binaries: Arc<Binaries>,
}

#[async_trait::async_trait]
impl TaskHandler for StepTask {
    async fn call(&self, input: Value, _: &TaskContext) -> Result<Value, TaskError> {
        match self.binaries.call(&self.step, &input).await {
            Outcome::Response(v) => Ok(v),
            // Step Functions gives a Lambda's error as its name and a JSON cause.
            Outcome::Error(e) => Err(TaskError::new(
                e.error_type.clone(),
                json!({"errorType": e.error_type, "errorMessage": e.error_message}).to_string(),
            )),
        }
    }
}

/// The resolver of the workflows' tasks: each step to its binary.
struct Resolver(Arc<Binaries>);

impl TaskResolver for Resolver {
    fn resolve(&self, target: &TaskTarget) -> Option<Arc<dyn TaskHandler>> {
        let TaskTarget::Lambda { function } = target else {
            return None;
        };
        a2a_steps::step(function).map(|s| {
            Arc::new(StepTask {
                step: s.name.to_owned(),
                binaries: self.0.clone(),
            }) as Arc<dyn TaskHandler>
        })
    }
}

/// Runs the real workflow of `kind` for `code`, every task a step binary.
async fn workflow(
    binaries: &Arc<Binaries>,
    kind: InstanceKind,
    code: &SchoolCode,
) -> a2a_asl::Outcome {
    let path = root().join(format!("statemachines/{}.asl.json", kind.workflow()));
    let text = std::fs::read_to_string(&path).unwrap();
    let sm = StateMachine::load(
        &text,
        &a2a_local::workflows::substitutions(&a2a_steps::names()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Execution::run(
        &sm,
        json!({"school_code": code.as_str()}),
        ExecutionOptions {
            name: Some(format!("{code}-{kind}-1")),
            state_machine_name: kind.workflow().into(),
            // Retry back-off costs no wall time.
            clock: Arc::new(VirtualClock::new()),
            resolver: Arc::new(Resolver(binaries.clone())),
            ..Default::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_binary_answers_through_the_runtime_api() {
    let Some(moto) = Moto::for_test("every_step_binary_answers_through_the_runtime_api").await
    else {
        return;
    };
    // The path found beside the test is the one cargo names.
    assert_eq!(
        binary_path("step-preflight"),
        Path::new(env!("CARGO_BIN_EXE_step-preflight"))
    );
    let w = Arc::new(world(moto).await);
    // P is provisioned and M migrated. Q and N fail at their route (another school holds
    // the address), so the state machines roll them back through their Catch.
    let mut codes = Vec::new();
    for (code, kind, dns) in [
        ("08000061", InstanceKind::Provision, "ceip-nou"),
        ("08000062", InstanceKind::Provision, "ceip-altre"),
        ("08000063", InstanceKind::Migrate, "ins-exemple"),
        ("08000064", InstanceKind::Migrate, "ins-segon"),
    ] {
        codes.push(w.register(code, kind, dns).await);
    }
    let [p, q, m, n] = <[SchoolCode; 4]>::try_from(codes).unwrap();
    for dns in ["ceip-altre", "ins-segon"] {
        w.blob
            .put(
                &a2a_steps::route_key(dns).unwrap(),
                bytes::Bytes::from_static(
                    br#"{"school_code":"08000011","wwwroot":"x","shard":null}"#,
                ),
            )
            .await
            .unwrap();
    }
    let binaries = Arc::new(Binaries {
        world: w.clone(),
        running: Mutex::new(BTreeMap::new()),
        served: Mutex::new(BTreeMap::new()),
        missing: Mutex::new(BTreeSet::new()),
    });

    for (code, kind) in [(&p, InstanceKind::Provision), (&m, InstanceKind::Migrate)] {
        let out = workflow(&binaries, kind, code).await;
        assert_eq!(
            out.status,
            a2a_asl::Status::Succeeded,
            "{kind} {code}: {:?} {:?}",
            out.error,
            out.cause
        );
        let i = w.status(code).await;
        assert_eq!(i.status, Status::Active, "{code}: {:?}", i.last_error);
    }
    assert!(
        w.blob
            .head(&a2a_steps::route_key("ins-exemple").unwrap())
            .await
            .unwrap()
            .is_some(),
        "the migrated site is routed"
    );
    for (code, kind) in [(&q, InstanceKind::Provision), (&n, InstanceKind::Migrate)] {
        let out = workflow(&binaries, kind, code).await;
        assert_eq!(out.status, a2a_asl::Status::Failed, "{kind} {code}");
        assert_eq!(
            out.error.as_deref(),
            Some("A2A.Permanent.Input"),
            "{kind} {code}: {:?}",
            out.cause
        );
        let i = w.status(code).await;
        // A migration's rollback and a provision's deprovision both end `rolled_back`.
        assert_eq!(i.status, Status::RolledBack, "{kind} {code}");
        assert!(
            i.last_error
                .as_deref()
                .unwrap_or("")
                .contains("routed to school 08000011"),
            "{code}: {:?}",
            i.last_error
        );
    }
    let src = w.status(&n).await.source.files.unwrap();
    let page = std::fs::read(Path::new(src.expose()).join("climaintenance.html")).unwrap();
    assert_eq!(
        page, b"rebuilt by Moodle",
        "the rolled-back source has its own maintenance page back (the fixture's)"
    );
    // Every step's binary served its workflow at least once.
    let served = binaries.served.lock().unwrap().clone();
    let idle: Vec<&str> = a2a_steps::names()
        .into_iter()
        .filter(|s| !served.contains_key(*s))
        .collect();
    assert!(
        idle.is_empty(),
        "steps no workflow run succeeded in: {idle:?}; served: {served:?}"
    );

    // The error paths of every step, through the same processes.
    let mut binaries_seen = BTreeSet::new();
    let mut unnamed = Vec::new();
    let lambdas = a2a_steps::names_on(a2a_steps::Side::Target);
    for step in lambdas {
        assert!(
            binaries_seen.insert(bin_name(step)),
            "{step}: two steps, one binary"
        );
        let e = binaries
            .call(step, &json!({"school_code": "0800006X"}))
            .await
            .expect_error(step);
        assert_permanent(step, &e, "a malformed code");
        assert!(e.error_message.starts_with(&format!("{step}: ")), "{e:?}");
        let e = binaries
            .call(step, &json!({"school": 8}))
            .await
            .expect_error(step);
        assert_permanent(step, &e, "no code");
        // The input the workflow gave it, for a school nobody registered (the rollbacks
        // have nothing to undo: no error).
        if !matches!(step, "Rollback" | "Deprovision") {
            let mut input = served[step].clone();
            input["school_code"] = json!("08000069");
            let e = binaries.call(step, &input).await.expect_error(step);
            assert_permanent(step, &e, "an unregistered school");
            // The message must say which school: collected, to name every step at once.
            if !e.error_message.contains("08000069") {
                unnamed.push(e.error_message);
            }
        }
    }
    let running = binaries.running.lock().unwrap().clone();
    for r in running.values() {
        let mut r = r.lock().await;
        let Running { rt, process } = &mut *r;
        process.expect_serving(rt);
    }
    // Both collected, so that one run names every gap.
    let missing = binaries.missing.lock().unwrap().clone();
    let mut gaps = Vec::new();
    if !missing.is_empty() {
        gaps.push(format!(
            "no binary for {missing:?}: add a [[bin]] for each (everything else was checked, \
             with those steps run in this process)"
        ));
    }
    if !unnamed.is_empty() {
        gaps.push(format!(
            "errors for an unregistered school that do not name it: {unnamed:#?}"
        ));
    }
    assert!(gaps.is_empty(), "{}", gaps.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_table_is_a_transient_error_that_every_retry_names() {
    let test = "an_unreachable_table_is_a_transient_error_that_every_retry_names";
    if service_url("AWS_ENDPOINT_URL", test).is_none() {
        return;
    }
    let rt = FakeRuntime::start("a2a-step-preflight").await.unwrap();
    let bin = binary_path("step-preflight");
    let site = r#"{"host": "eix.example.cat", "old_wwwroot": "https://agora.example.cat/{dns}/moodle",
                   "prefix": "mdl_", "templates": {},
                   "shards": [{"name": "a", "db": "sqlite:///a2a-nowhere/a", "capacity": 1}]}"#;
    // Port 9 (discard) refuses the connection at once; the SDK gives up after its attempts.
    let mut f = LambdaProcess::spawn(
        &bin,
        "a2a-step-preflight",
        &rt,
        &[
            ("A2A_TABLE", "a2a-state".into()),
            ("A2A_BUCKET", "a2a-data".into()),
            ("A2A_SITE", site.into()),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".into()),
        ],
    )
    .unwrap();
    let e = f
        .call(
            &rt,
            json!({"school_code": "08000071"}).to_string(),
            Duration::from_secs(90),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .expect_error("an unreachable table");
    assert_eq!(e.error_type, "A2A.Transient", "{e:?}");
    let h = handling("Preflight", "A2A.Transient");
    assert!(h.tasks >= 1 && h.retried == h.tasks, "{h:?}");
    for step in a2a_steps::names() {
        let h = handling(step, "A2A.Transient");
        assert!(h.tasks >= 1, "{step}: no Task in statemachines/");
        if !matches!(step, "Rollback" | "Deprovision") {
            assert_eq!(
                h.retried, h.tasks,
                "{step}: A2A.Transient is not retried: {h:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_bad_site_configuration_stops_the_cold_start_with_the_variable_named() {
    expect_failed_cold_start(
        &binary_path("step-switch-route"),
        "a2a-step-switch-route",
        &[
            ("A2A_TABLE", "a2a-state".into()),
            ("A2A_BUCKET", "a2a-data".into()),
            ("A2A_SITE", "{\"host\": 1}".into()),
        ],
        a2a_fn_bootstrap::error_type::INIT,
        "A2A_SITE: not a site configuration",
    )
    .await;
}

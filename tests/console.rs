//! The operator's console on a state filled by a real run: `a2a status`, `a2a history`,
//! `a2a report`, `a2a retry`.

mod common;

use a2a_core::{ListFilter, list_all};
use common::{a2a, text};
use serde_json::Value;

/// A home where a small demo (one migration, one EIX site) ran to its end.
fn demo_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let o = a2a(home.path(), &["demo", "--migrations", "1", "--eix", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    home
}

/// Every instance in the state of `home`.
fn instances(home: &std::path::Path) -> Vec<a2a_core::Instance> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = a2a_local::SqliteStore::open(&home.join("state.db"))
            .await
            .unwrap();
        list_all(&store, ListFilter::default()).await.unwrap()
    })
}

/// Runs `a2a ARGS` in `home`, expects exit `code`, and returns everything it printed.
fn exits(home: &std::path::Path, args: &[&str], code: i32) -> String {
    let o = a2a(home, args);
    assert_eq!(o.status.code(), Some(code), "{}", text(&o));
    text(&o)
}

#[test]
fn history_shows_each_attempt_with_its_execution_and_every_step() {
    let home = demo_home();
    let instances = instances(home.path());
    assert_eq!(instances.len(), 2);
    for i in &instances {
        let code = i.code.to_string();
        let o = a2a(home.path(), &["history", &code, "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["status"], "active", "{v}");
        let attempts = v["attempts"].as_array().unwrap();
        // The demo starts each execution itself (no enqueue before it): one attempt.
        assert_eq!(attempts.len(), 1, "{v}");
        let first = &attempts[0];
        assert_eq!(first["attempt"], 1, "{v}");
        assert_eq!(
            first["execution"],
            a2a_core::execution_name(&i.code, i.kind, 1),
            "{v}"
        );
        let steps = first["steps"].as_array().unwrap();
        // Every row is a step of this school's workflow (`verify-files` is Verify's part).
        let kebabs: Vec<String> = a2a_steps::STEPS
            .iter()
            .filter(|s| s.workflow == i.kind)
            .map(|s| s.bin_name().trim_start_matches("step-").to_owned())
            .collect();
        assert!(steps.len() >= 5, "{code}: {steps:?}");
        for s in steps {
            assert_eq!(s["outcome"], "succeeded", "{code}: {s}");
            assert!(s["duration_ms"].as_i64().unwrap() >= 0, "{s}");
            let step = s["step"].as_str().unwrap();
            assert!(
                kebabs
                    .iter()
                    .any(|k| step == k || step.starts_with(&format!("{k}-"))),
                "{code}: {step} is no step of its workflow"
            );
        }
        if i.kind == a2a_core::InstanceKind::Migrate {
            assert!(
                steps.iter().any(|s| s["rows"].as_u64().unwrap_or(0) > 0),
                "a migration moves rows: {steps:?}"
            );
        }

        let o = a2a(home.path(), &["history", &code]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(&format!(
                "attempt 1: execution {}",
                first["execution"].as_str().unwrap()
            )),
            "{out}"
        );
    }

    // Status per kind and wave, filtered.
    let status = |args: &[&str]| -> Value {
        let mut all = vec!["status", "--json"];
        all.extend_from_slice(args);
        let o = a2a(home.path(), &all);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = status(&[]);
    assert_eq!(v["by_kind"]["migrate"]["active"], 1, "{v}");
    assert_eq!(v["by_kind"]["provision"]["active"], 1, "{v}");
    assert_eq!(v["running"].as_array().unwrap().len(), 0, "{v}");
    let wave = instances[0].wave.0;
    let left = v["by_wave_status"][wave.to_string()]["active"].as_u64();
    assert!(left >= Some(1), "{v}");
    let v = status(&["--kind", "provision"]);
    assert_eq!(v["instances"], 1, "{v}");
    assert!(v["by_kind"].get("migrate").is_none(), "{v}");
    assert!(v.get("cost").is_none(), "only with --cost: {v}");
    let v = status(&["--cost"]);
    let cost = &v["cost"];
    assert!(cost["total"].as_f64().unwrap() > 0.0, "{v}");
    assert!(cost["gb_seconds"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(cost["executions"], 2, "one per school: {v}");
    let per = cost["per_instance"].as_f64().unwrap();
    assert!(
        (per * 2.0 - cost["total"].as_f64().unwrap()).abs() < 1e-9,
        "{v}"
    );
    let o = a2a(home.path(), &["status", "--cost", "us-east-1"]);
    assert!(text(&o).contains("cost on AWS (us-east-1"), "{}", text(&o));
    let v = status(&["--wave", "999"]);
    assert_eq!(v["instances"], 0, "{v}");
    let o = a2a(home.path(), &["status"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("running now: none"),
        "{}",
        text(&o)
    );

    // The report: one HTML file that fetches nothing, and a CSV row per school.
    let html = home.path().join("report.html");
    let csv = home.path().join("schools.csv");
    let o = a2a(
        home.path(),
        &[
            "report",
            "--html",
            html.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("per instance"), "{}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    for i in &instances {
        assert!(page.contains(&i.code.to_string()), "{}", i.code);
    }
    assert!(page.contains("<svg") && page.contains("Cost on AWS"));
    assert!(
        !page.contains(" src=") && !page.contains("<link"),
        "nothing fetched"
    );
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), instances.len() + 1, "{rows}");
    let html = html.to_str().unwrap();
    let said = exits(
        home.path(),
        &["report", "--html", html, "--region", "mars-1"],
        2,
    );
    assert!(said.contains("no prices for region"), "{said}");

    // A malformed code and an unknown one: exit 2, each named.
    exits(home.path(), &["history", "0801"], 2);
    let said = exits(home.path(), &["history", "08999999"], 2);
    assert!(
        said.contains("school 08999999 is not in the state"),
        "{said}"
    );
}

#[test]
fn retry_moves_a_failed_school_back_to_queued_and_refuses_an_active_one() {
    let home = demo_home();
    let db = home.path().join("state.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A school whose first attempt failed, beside the demo's active ones.
    let (active, failed) = rt.block_on(async {
        let store = a2a_local::SqliteStore::open(&db).await.unwrap();
        let all = list_all(&store, ListFilter::default()).await.unwrap();
        let mut f = all[0].clone();
        f.code = a2a_core::SchoolCode::parse("08777777").unwrap();
        f.status = a2a_core::Status::Failed;
        f.attempt = 1;
        f.version = 0;
        f.last_error = Some("A2A.Transient: the source did not answer".into());
        assert!(a2a_core::InstanceStore::register(&store, &f).await.unwrap());
        (all[0].code.to_string(), f.code.to_string())
    });

    let o = a2a(home.path(), &["retry", &failed, &active]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("{failed}: queued for attempt 2")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{active}: not retried: school {active} is active")),
        "{out}"
    );
    assert!(out.contains("1 retried, 1 not"), "{out}");
    rt.block_on(async {
        let store = a2a_local::SqliteStore::open(&db).await.unwrap();
        let code = a2a_core::SchoolCode::parse(&failed).unwrap();
        let i = a2a_core::InstanceStore::get(&store, &code)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((i.status, i.attempt), (a2a_core::Status::Queued, 1));
        let h = a2a_core::InstanceStore::history(&store, &code)
            .await
            .unwrap();
        assert!(
            h.iter()
                .any(|e| e.step == a2a_schedule::OPERATOR_RETRY_STEP),
            "{h:?}"
        );
    });
    // Nothing failed is left: --failed retries none, and says so.
    let o = a2a(home.path(), &["retry", "--failed"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 retried, 0 not"));
    // No school named: a usage error.
    exits(home.path(), &["retry"], 2);
}

/// Runs `a2a ARGS` under a pseudo-terminal (util-linux `script`), as an operator's shell
/// would; `None` where `script` is missing.
fn on_a_terminal(home: &std::path::Path, args: &[&str]) -> Option<String> {
    let mut line = format!("{} --home {}", env!("CARGO_BIN_EXE_a2a"), home.display());
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    let o = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("A2A_HOME")
        .output()
        .ok()?;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn progress_shows_on_a_terminal_and_quiet_hides_it() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let demo = ["demo", "--migrations", "1", "--eix", "1"];
    let Some(shown) = on_a_terminal(a.path(), &demo) else {
        eprintln!(
            "######## SKIP progress_shows_on_a_terminal_and_quiet_hides_it: no `script` ########"
        );
        return;
    };
    assert!(shown.contains("/2 instances"), "{shown}");
    let mut quiet = vec!["--quiet"];
    quiet.extend(demo);
    let hidden = on_a_terminal(b.path(), &quiet).unwrap();
    assert!(!hidden.contains("/2 instances"), "{hidden}");
    assert!(hidden.contains("2 of 2 instances active"), "{hidden}");
    // Off a terminal (as every other test runs it) the bar is hidden too.
    let o = a2a(b.path(), &demo);
    assert!(!text(&o).contains("/2 instances"), "{}", text(&o));
}

#[test]
fn retire_waits_its_period_then_forgets_the_freeze_and_leaves_the_source_frozen() {
    let home = demo_home();
    let instances = instances(home.path());
    let kind = |k| instances.iter().find(|i| i.kind == k).unwrap();
    let migrated = kind(a2a_core::InstanceKind::Migrate);
    let eix = kind(a2a_core::InstanceKind::Provision).code.to_string();
    let code = migrated.code.to_string();
    let frozen = home.path().join(format!("blobs/frozen/{code}.json"));
    assert!(frozen.is_file(), "an active school's freeze is remembered");
    let files = std::path::PathBuf::from(migrated.source.files.as_ref().unwrap().expose());
    let page = files.join("climaintenance.html");
    let moving = std::fs::read_to_string(&page).unwrap();
    assert!(
        moving.contains(migrated.target.dns.as_deref().unwrap()),
        "the source's page names the new address: {moving}"
    );

    // Too early: the waiting period (14 days by default) has not passed.
    let out = exits(home.path(), &["retire", &code], 1);
    assert!(
        out.contains("not retired") && out.contains("14 days"),
        "{out}"
    );
    assert!(frozen.is_file());
    let out = exits(home.path(), &["retire", &eix], 1);
    assert!(
        out.contains("only the source of an active migration"),
        "{out}"
    );

    let out = exits(home.path(), &["retire", &code, "--after-days", "0"], 0);
    assert!(out.contains("may be retired now"), "{out}");
    assert!(!frozen.exists(), "the freeze is forgotten");
    assert_eq!(
        std::fs::read_to_string(&page).unwrap(),
        moving,
        "the source is left frozen"
    );
    let out = exits(home.path(), &["retire", &code, "--after-days", "0"], 0);
    assert!(out.contains("retired before"), "{out}");
    let o = a2a(home.path(), &["history", &code]);
    assert!(text(&o).contains(a2a_steps::RETIRE_STEP), "{}", text(&o));
    exits(home.path(), &["retire", "0801234"], 2);
}

#[test]
fn cancel_fails_a_queued_school_rolls_back_a_running_one_and_leaves_the_rest() {
    let home = demo_home();
    let db = home.path().join("state.db");
    let all = instances(home.path());
    let active = all[0].code.to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A queued school and a running one, beside the demo's active ones.
    let (queued, running) = rt.block_on(async {
        let store = a2a_local::SqliteStore::open(&db).await.unwrap();
        let mut made = Vec::new();
        for (code, status) in [
            ("08777771", a2a_core::Status::Queued),
            ("08777772", a2a_core::Status::Running),
        ] {
            let mut i = all[0].clone();
            i.code = a2a_core::SchoolCode::parse(code).unwrap();
            i.status = status;
            i.attempt = u32::from(status == a2a_core::Status::Running);
            i.execution = (status == a2a_core::Status::Running).then(|| format!("{code}-x-1"));
            i.version = 0;
            assert!(a2a_core::InstanceStore::register(&store, &i).await.unwrap());
            made.push(code.to_owned());
        }
        (made[0].clone(), made[1].clone())
    });

    let out = exits(home.path(), &["cancel", &queued, &running, &active], 1);
    assert!(
        out.contains(&format!("{queued}: cancelled: queued → failed")),
        "{out}"
    );
    // Its execution lived in a run's process, gone now (no process holds the home's
    // runner lock): its rollback runs here, on the local engine.
    assert!(
        out.contains(&format!(
            "{running}: cancelled: its execution {running}-x-1 ended with the run that drove it"
        )) && out.contains("now rolled_back"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{active}: not cancelled: school {active} is active"
        )),
        "{out}"
    );
    assert!(out.contains("2 cancelled, 1 not"), "{out}");
    rt.block_on(async {
        let store = a2a_local::SqliteStore::open(&db).await.unwrap();
        let get = |c: &str| {
            let code = a2a_core::SchoolCode::parse(c).unwrap();
            let store = &store;
            async move {
                a2a_core::InstanceStore::get(store, &code)
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        assert_eq!(get(&queued).await.status, a2a_core::Status::Failed);
        assert_eq!(get(&running).await.status, a2a_core::Status::RolledBack);
        assert_eq!(get(&active).await.status, a2a_core::Status::Active);
    });
    exits(home.path(), &["cancel"], 2);
}

/// A child process killed when the test ends, whatever happens.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue 23's console on the deployed shape, found by the stack's name: the stack
/// rehearsal (`a2a stack up`: both state machines behind a Step Functions endpoint) on a
/// DynamoDB table and an S3 bucket in moto, and a CloudFormation stack in moto whose
/// outputs name them as template.yaml's do. `a2a worker --stack` serves exactly the
/// stack's activities; `a2a start`, `status`, `history`, `report`, `retry` and `cancel`
/// with `--stack` read and move that table and those executions; a missing stack, a stack
/// without the worker's output and a bad name are refused, each named.
#[test]
fn the_console_and_the_worker_find_the_deployed_stack_by_its_name() {
    let test = "the_console_and_the_worker_find_the_deployed_stack_by_its_name";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(moto) = rt.block_on(a2a_testkit::moto::Moto::for_test(test)) else {
        return;
    };
    let table = rt.block_on(moto.state_table()).unwrap().table().to_owned();
    let bucket = rt.block_on(moto.bucket("a2a-console")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = w.join("home");
    let shard = w.join("shard");
    std::fs::create_dir_all(&shard).unwrap();
    let site = serde_json::json!({
        "host": "campus.example.cat",
        "old_wwwroot": "https://agora.xtec.cat/{dns}/moodle",
        "prefix": "mdl_",
        "shards": [{"name": "a", "db": format!("sqlite://{}", shard.display()), "capacity": 10}],
        "templates": {},
    })
    .to_string();
    let backends = [
        "--state".to_owned(),
        format!("dynamodb:{table}"),
        "--blobs".to_owned(),
        format!("s3://{bucket}"),
    ];

    // The stack's processes: the rehearsal's endpoint, and (below) the worker.
    let log = w.join("stack.log");
    let mut up = common::command(&home);
    up.args(&backends)
        .args(["-v", "stack", "up", "--site", &site, "--clock", "virtual"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = up.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _stack_up = Running(child);
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!(
            "no ready line ({e}): {line:?}\n{}",
            std::fs::read_to_string(&log).unwrap()
        )
    });
    let endpoint = ready["states_endpoint"].as_str().unwrap().to_owned();
    let activities: Vec<String> = ready["activities"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    use a2a_aws::stack as out;
    let name = a2a_testkit::unique_name("a2a-console");
    let full = [
        (out::STATE_TABLE, table.clone()),
        (out::BUCKET, bucket.clone()),
        (
            out::MIGRATE_STATE_MACHINE,
            ready["state_machines"]["migrate"].as_str().unwrap().into(),
        ),
        (
            out::PROVISION_STATE_MACHINE,
            ready["state_machines"]["provision"]
                .as_str()
                .unwrap()
                .into(),
        ),
        (out::WORKER_ACTIVITIES, activities.join(",")),
    ];
    let partial = a2a_testkit::unique_name("a2a-partial");
    rt.block_on(async {
        common::deployed_stack(&moto.conf, &name, &full).await;
        common::deployed_stack(&moto.conf, &partial, &full[..4]).await;
    });

    // `a2a ARGS` in the work folder, with only the emulator's endpoints: no --state.
    let run = |args: &[&str]| {
        common::command(&home)
            .current_dir(w)
            .env("AWS_ENDPOINT_URL_SFN", &endpoint)
            .args(args)
            .output()
            .unwrap()
    };
    let exits = |args: &[&str], code: i32| {
        let o = run(args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
        o
    };
    let status = || -> Value {
        serde_json::from_slice(&exits(&["status", "--stack", &name, "--json"], 0).stdout).unwrap()
    };
    let worker = |n: u32| {
        let log = w.join(format!("worker-{n}.log"));
        let child = common::command(&home)
            .current_dir(w)
            .env("AWS_ENDPOINT_URL_SFN", &endpoint)
            .args([
                "-v",
                "worker",
                "--stack",
                &name,
                "--site",
                &site,
                "--heartbeat",
                "1",
            ])
            .stdout(std::fs::File::create(w.join(format!("worker-{n}.out"))).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (Running(child), log)
    };
    let wait_for = |code: &str, want: &str| {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let h: Value = serde_json::from_slice(
                &exits(&["history", code, "--stack", &name, "--json"], 0).stdout,
            )
            .unwrap();
            // The school moves before its execution ends (the last step's own save).
            if h["status"] == want && h["execution"]["status"] != "RUNNING" {
                return h;
            }
            assert!(std::time::Instant::now() < end, "{code} never {want}: {h}");
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };

    // Refusals first: each names the stack, the output and what to do.
    let o = exits(
        &["worker", "--stack", "a2a-nowhere-at-all", "--site", &site],
        2,
    );
    let said = text(&o);
    assert!(
        said.contains("stack \"a2a-nowhere-at-all\" does not exist"),
        "{said}"
    );
    assert!(
        said.contains("sam deploy --stack-name a2a-nowhere-at-all"),
        "{said}"
    );
    let said = text(&exits(&["worker", "--stack", &partial, "--site", &site], 2));
    assert!(
        said.contains(&format!(
            "stack \"{partial}\" (CREATE_COMPLETE) has no output WorkerActivityArns"
        )),
        "{said}"
    );
    let said = text(&exits(&["status", "--stack", "no_such/stack"], 2));
    assert!(said.contains("not a CloudFormation stack name"), "{said}");
    let said = text(&exits(&["status", "--aws"], 2));
    assert!(
        said.contains("--stack NAME") && said.contains("dynamodb:TABLE"),
        "{said}"
    );
    // CloudFormation out of reach: the environment (3), not the input.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let o = common::command(&home)
        .args(["status", "--stack", &name])
        .env("AWS_ENDPOINT_URL", format!("http://{closed}"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("CloudFormation DescribeStacks"),
        "{}",
        text(&o)
    );
    let v = status();
    assert_eq!(v["instances"], 0, "the stack's table, empty so far: {v}");

    // Two migrations whose sources are here; a third whose source database is missing.
    common::fixture_site(
        &home,
        &format!("sqlite://{}/good.db", w.display()),
        &format!("{}/good-files", w.display()),
    );
    common::fixture_site(
        &home,
        &format!("sqlite://{}/third.db", w.display()),
        &format!("{}/third-files", w.display()),
    );
    let list = w.join("list.csv");
    let row = |code: &str, src: &str| {
        format!(
            "{code},Institut {code},migrate,ins-{code},sqlite://{w}/{src}.db,{w}/{src}-files\n",
            w = w.display()
        )
    };
    std::fs::write(
        &list,
        format!(
            "school_code,name,kind,dns,source_db,source_files\n{}{}{}",
            row("08300001", "good"),
            row("08300002", "late"),
            row("08300003", "third"),
        ),
    )
    .unwrap();
    let mut upload = vec!["upload", list.to_str().unwrap()];
    let flags: Vec<&str> = backends.iter().map(String::as_str).collect();
    upload.splice(0..0, flags.iter().copied());
    exits(&upload, 0);

    // The worker finds exactly the stack's activities, on the stack's table and bucket.
    let (_served, worker_log) = worker(1);
    for code in ["08300001", "08300002"] {
        let o = exits(&["start", code, "--stack", &name, "--force"], 0);
        assert!(
            text(&o).contains(&format!("started {code} attempt 1")),
            "{}",
            text(&o)
        );
    }
    let good = wait_for("08300001", "active");
    let late = wait_for("08300002", "rolled_back");
    // The log's fields, without the colours of a terminal.
    let said = std::fs::read_to_string(&worker_log).unwrap();
    let mut plain = String::new();
    let mut rest = said.as_str();
    while let Some(at) = rest.find('\x1b') {
        plain.push_str(&rest[..at]);
        rest = rest[at..].split_once('m').map_or("", |(_, r)| r);
    }
    plain.push_str(rest);
    let started = plain
        .lines()
        .find(|l| l.contains("worker started"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        started.contains(&format!("activities={}", activities.join(","))),
        "{started}"
    );
    assert!(
        started.contains(&format!("state=dynamodb:{table}")),
        "{started}"
    );

    // history: the run's steps and its execution as Step Functions tells it.
    assert_eq!(good["execution"]["status"], "SUCCEEDED", "{good}");
    let steps = good["attempts"][0]["steps"].to_string();
    assert!(
        steps.contains("export-database") && steps.contains("switch-route"),
        "{steps}"
    );
    let ended = late["execution"]["status"].as_str().unwrap_or_default();
    assert!(
        ["SUCCEEDED", "FAILED"].contains(&ended),
        "its execution ended: {late}"
    );
    assert!(
        late.to_string().contains("\"outcome\":\"failed\""),
        "the failing step: {late}"
    );
    let error = late["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(!error.is_empty(), "{late}");

    // status and report: the same table, as the run filled it.
    let v = status();
    assert_eq!(v["by_status"]["active"], 1, "{v}");
    assert_eq!(v["by_status"]["rolled_back"], 1, "{v}");
    assert_eq!(v["by_status"]["registered"], 1, "{v}");
    let html = w.join("report.html");
    let o = exits(
        &["report", "--stack", &name, "--html", html.to_str().unwrap()],
        0,
    );
    assert!(text(&o).contains("3 schools"), "{}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("08300001") && page.contains("08300002"),
        "the report"
    );

    // retry, once the cause is fixed: queued on the stack's queue and started at once.
    common::fixture_site(
        &home,
        &format!("sqlite://{}/late.db", w.display()),
        &format!("{}/late-files", w.display()),
    );
    let o = exits(&["retry", "08300002", "--stack", &name], 0);
    let said = text(&o);
    assert!(said.contains("08300002: queued for attempt 2"), "{said}");
    assert!(said.contains("08300002: started"), "{said}");
    wait_for("08300002", "active");

    // cancel: a school on its way (the worker at its source steps) is stopped, and its
    // rollback runs; a migration takes seconds, the cancel a fraction of one.
    exits(&["start", "08300003", "--stack", &name, "--force"], 0);
    let v = status();
    assert_eq!(v["running"][0]["school_code"], "08300003", "{v}");
    assert_eq!(v["running"][0]["execution_status"], "RUNNING", "{v}");
    let said = text(&exits(&["cancel", "08300003", "--stack", &name], 0));
    assert!(said.contains("08300003: cancelled: "), "{said}");
    let third = wait_for("08300003", "rolled_back");
    assert!(
        third
            .to_string()
            .contains(a2a_schedule::OPERATOR_CANCEL_STEP),
        "{third}"
    );
    let v = status();
    assert_eq!(v["by_status"]["active"], 2, "{v}");
    assert_eq!(v["by_status"]["rolled_back"], 1, "{v}");
}

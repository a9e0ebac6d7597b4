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

//! Crash and resume: `a2a run` killed with SIGKILL at random moments, again and again,
//! over one run of migrations (sources on PostgreSQL and on MariaDB) and EIX provisions,
//! on the virtual clock, and started again each time. At the end every school is
//! `active` in its first attempt (a lost execution costs no attempt), verifies again
//! here, and its history shows that no step that had finished ran again: each finished
//! step has exactly the journal entry its finish wrote, and no more successful ends.
//!
//! The moments come from a seeded random (printed; `A2A_CRASH_SEED` replays one). The
//! size is CI's by default; `bench/crash.sh` runs a larger one through the same test
//! (`A2A_CRASH_EIX`, `A2A_CRASH_MIGRATIONS`, `A2A_CRASH_KILLS`, and `A2A_CRASH_MAX_MS`,
//! the longest a start runs before its kill).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use a2a_core::{InstanceKind, InstanceStore, Locator, Outcome, SchoolCode, Status};
use a2a_dbmove::server;
use a2a_steps::{Shard, SiteConfig, StepContext, Template};
use common::{a2a, text};

/// splitmix64: a small seeded random, the same on every machine.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration between `lo` and `hi` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

fn number(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The history name of each step of the table (`AllocateTarget` records
/// `allocate-target`); the verify steps record one name per part kind.
fn table_step(history_name: &str) -> Option<&'static str> {
    if history_name.starts_with("verify-source-") {
        return Some("VerifySource");
    }
    if history_name.starts_with("verify-") && history_name != "verify-site" {
        return Some("Verify");
    }
    a2a_steps::STEPS
        .iter()
        .find(|s| a2a_steps::bin_name(s.name).strip_prefix("step-") == Some(history_name))
        .map(|s| s.name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_again_and_again_ends_with_every_school_active_in_its_first_attempt() {
    let test = "a_run_killed_again_and_again_ends_with_every_school_active_in_its_first_attempt";
    let (Some(pg), Some(my)) = (
        a2a_testkit::service_url("A2A_TEST_PG_URL", test),
        a2a_testkit::service_url("A2A_TEST_MYSQL_URL", test),
    ) else {
        return;
    };
    let (pg, my) = (Locator::new(pg), Locator::new(my));
    let eix = number("A2A_CRASH_EIX", 14);
    let migrations = number("A2A_CRASH_MIGRATIONS", 4).max(2);
    let kills = number("A2A_CRASH_KILLS", 10);
    // The longest a start runs before its kill; bench/crash.sh spreads the kills over a
    // longer run with it.
    let max_ms = number("A2A_CRASH_MAX_MS", 800).max(200) as u64;
    let seed = std::env::var("A2A_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test}: seed {seed} (replay with A2A_CRASH_SEED={seed})");
    let mut random = Random(seed);

    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display().to_string();
    // Codes of this run only (province 43, then two digits of the process id), so that
    // the targets `a2a_<code>` on the shared server are its own, even beside another run.
    let block = std::process::id() % 100;
    let codes: Vec<SchoolCode> = (0..migrations + eix)
        .map(|i| SchoolCode::parse(&format!("43{block:02}{:04}", i + 1)).unwrap())
        .collect();
    for c in &codes {
        server::drop(&pg, &a2a_dbmove::target::name(c))
            .await
            .unwrap();
    }
    let tpl = server::create(&pg, &a2a_testkit::db_name("crash_tpl"))
        .await
        .unwrap();
    let fixture = |db: &Locator, files: &str| {
        common::fixture_site(work.path(), db.expose(), &format!("{w}/{files}"));
    };
    fixture(&tpl, "tpl-moodledata");
    let mut csv = String::from("school_code,name,kind,dns,template,source_db,source_files\n");
    let mut sources = BTreeMap::new();
    for (i, code) in codes.iter().enumerate() {
        if i < migrations {
            let admin = if i % 2 == 0 { &pg } else { &my };
            let src = server::create(admin, &a2a_testkit::db_name(&format!("crash_src{i}")))
                .await
                .unwrap();
            fixture(&src, &format!("src{i}"));
            csv.push_str(&format!(
                "{code},Institut {i},migrate,ins-crash-{i},,{},{w}/src{i}\n",
                src.expose()
            ));
            sources.insert(code.clone(), (admin.clone(), src, format!("{w}/src{i}")));
        } else {
            csv.push_str(&format!(
                "{code},Escola {i},provision,eix-crash-{i},primary,,\n"
            ));
        }
    }
    let list = work.path().join("list.csv");
    std::fs::write(&list, csv).unwrap();
    let wwwroot = "https://plantilla.example.cat/moodle";
    std::fs::write(
        home.path().join("a2a.toml"),
        format!(
            "[site]\nhost = \"campus.example.cat\"\n\
             old_wwwroot = \"https://agora.xtec.cat/{{dns}}/moodle\"\n\
             [[site.shards]]\nname = \"a\"\ndb = \"{}\"\ncapacity = 1000\n\
             [site.templates.primary]\ndb = \"{}\"\nfiles = \"{w}/tpl-moodledata\"\n\
             wwwroot = \"{wwwroot}\"\n",
            pg.expose(),
            tpl.expose()
        ),
    )
    .unwrap();

    // Killed at random moments, started again each time.
    let run_args = [
        "run",
        list.to_str().unwrap(),
        "--clock",
        "virtual",
        "--max-running",
        "6",
    ];
    let began = Instant::now();
    let mut killed = 0;
    let mut restarts = 0;
    // Kills that left an execution in flight, for a later start to resume. On a busy
    // machine a start may not get that far before its moment: it is killed again until
    // one does.
    let mut hits = 0;
    let state = home.path().join("state.db");
    while killed < kills || (hits == 0 && restarts < kills * 3) {
        let mut child = common::command(home.path())
            .args(run_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let at = random.millis(100, max_ms);
        let deadline = Instant::now() + at;
        let ended = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        restarts += 1;
        match ended {
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
                if state.exists() {
                    let store = a2a_local::SqliteStore::open(&state).await.unwrap();
                    let now = a2a_schedule::in_flight(&store).await.unwrap();
                    hits += usize::from(now > 0);
                }
            }
            // It finished before its moment: the run is over.
            Some(_) => break,
        }
        assert!(
            restarts < kills * 4,
            "the run never got far enough to be killed"
        );
    }
    let killing = began.elapsed();
    let last = a2a(home.path(), &run_args);
    eprintln!(
        "{test}: seed {seed}: {killed} kills ({hits} with executions in flight) over \
         {restarts} starts in {:.1} s, then a last \
         run: {:.1} s",
        killing.as_secs_f64(),
        (began.elapsed() - killing).as_secs_f64()
    );
    assert!(
        killed >= kills,
        "seed {seed}: the run ended after {killed} kills: make it larger"
    );
    assert_eq!(last.status.code(), Some(0), "seed {seed}: {}", text(&last));
    let n = codes.len();
    assert!(
        String::from_utf8_lossy(&last.stdout).contains(&format!("{n} of {n} schools active")),
        "seed {seed}: {}",
        text(&last)
    );

    // Every school active in its first attempt, and no finished step ran again.
    let store = a2a_local::SqliteStore::open(&home.path().join("state.db"))
        .await
        .unwrap();
    let blobs = home.path().join("blobs");
    let mut resumed = 0;
    for code in &codes {
        let i = store.get(code).await.unwrap().unwrap();
        let history = store.history(code).await.unwrap();
        let failed: Vec<String> = history
            .iter()
            .filter(|e| e.outcome == Outcome::Failed)
            .map(|e| format!("{} {}: {:?}", e.started_at, e.step, e.error))
            .collect();
        assert_eq!(
            (i.status, i.attempt),
            (Status::Active, 1),
            "seed {seed}: {code}: {:?}; failed steps: {failed:#?}",
            i.last_error
        );
        resumed += history
            .iter()
            .filter(|e| e.step == a2a_schedule::RESUME_STEP)
            .count();
        let mut finished: BTreeMap<&'static str, usize> = BTreeMap::new();
        for e in &history {
            if e.outcome != Outcome::Succeeded || e.ended_at.is_none() {
                continue;
            }
            if let Some(step) = table_step(&e.step) {
                *finished.entry(step).or_default() += 1;
            }
        }
        let journal = blobs.join(format!("stage/{code}/journal/1"));
        let mut entries: BTreeMap<String, usize> = BTreeMap::new();
        for f in std::fs::read_dir(&journal).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            let step = name.split('-').next().unwrap().to_owned();
            *entries.entry(step).or_default() += 1;
        }
        for (step, ends) in &finished {
            let kept = entries.get(*step).copied().unwrap_or(0);
            // The last step's result is not kept (the school is active then): one end.
            let allowed = if kept == 0 { 1 } else { kept };
            assert!(
                *ends <= allowed,
                "seed {seed}: {code}: {step} finished {ends} times for {kept} journal entries \
                 (a finished step ran again): {history:#?}"
            );
        }
    }

    eprintln!("{test}: seed {seed}: {resumed} executions resumed in their attempt");
    // For bench/crash.sh: the whole run, kills and restarts included.
    eprintln!(
        "crash run: {n} schools, {killed} kills, {:.2} s",
        began.elapsed().as_secs_f64()
    );
    // Kills in the middle of the work leave executions to resume.
    assert!(
        hits == 0 || resumed > 0,
        "seed {seed}: {hits} kills left executions in flight, and none was resumed"
    );

    // And each verifies again now: the provisions by their own check, the migrations by
    // every table's row count against the source and by their files.
    let ctx = StepContext {
        store: Arc::new(store),
        blob: Arc::new(a2a_local::FsBlob::new(&blobs).unwrap()),
        site: Arc::new(SiteConfig {
            host: "campus.example.cat".into(),
            old_wwwroot: "https://agora.xtec.cat/{dns}/moodle".into(),
            prefix: "mdl_".into(),
            shards: vec![Shard {
                name: "a".into(),
                db: pg.clone(),
                capacity: 1000,
            }],
            templates: BTreeMap::from([(
                "primary".to_owned(),
                Template {
                    db: tpl.clone(),
                    files: "primary".into(),
                    wwwroot: wwwroot.into(),
                },
            )]),
        }),
        secrets: Arc::new(a2a_local::FileSecrets::new(home.path().join("secrets"))),
    };
    for code in &codes {
        let i = ctx.store.get(code).await.unwrap().unwrap();
        if i.kind == InstanceKind::Provision {
            a2a_steps::call(&ctx, "VerifySite", serde_json::json!({"school_code": code}))
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: {code}: {e}"));
            continue;
        }
        let (_, src, files) = &sources[code];
        let a = a2a_dbmove::Db::connect(src, false).await.unwrap();
        let target = a2a_dbmove::target::locator(&pg, code);
        let b = a2a_dbmove::Db::connect(&target, false).await.unwrap();
        let r = a2a_dbmove::verify(&a, &b, "mdl_", &a2a_dbmove::NoProgress)
            .await
            .unwrap();
        // The source stays frozen after its switch (issue 21): its maintenance setting
        // may be the one row of the source that the target, put back as before the
        // freeze, has not.
        let setting = a2a_dbmove::site::MAINTENANCE_SETTING;
        let frozen = a2a_dbmove::site::config_value(&a, "mdl_", setting)
            .await
            .unwrap();
        assert_eq!(
            frozen.as_deref(),
            Some("1"),
            "seed {seed}: {code}: the source is frozen"
        );
        let on_target = a2a_dbmove::site::config_value(&b, "mdl_", setting)
            .await
            .unwrap();
        for t in &r.tables {
            let extra = u64::from(t.table == "mdl_config" && on_target.is_none());
            assert!(
                t.source_rows.is_some() && t.source_rows == t.target_rows.map(|n| n + extra),
                "seed {seed}: {code}: {t:?}"
            );
        }
        let files = a2a_files::verify(
            Path::new(files),
            ctx.blob.clone(),
            code,
            &a2a_files::VerifyOptions {
                rehash: true,
                ..Default::default()
            },
            &a2a_files::NoProgress,
        )
        .await
        .unwrap();
        assert!(files.equal, "seed {seed}: {code}: {files:?}");
    }

    for c in &codes {
        server::drop(&pg, &a2a_dbmove::target::name(c))
            .await
            .unwrap();
    }
    for (admin, src, _) in sources.values() {
        let name = src.expose().rsplit('/').next().unwrap().to_owned();
        server::drop(admin, &name).await.unwrap();
    }
    let name = tpl.expose().rsplit('/').next().unwrap().to_owned();
    server::drop(&pg, &name).await.unwrap();
}

//! `a2a cancel` of a running school on the embedded backends, on a real local run: the
//! school's execution lives in the `a2a run` process that drives it, so while that
//! process is alive the cancel is refused (it holds the home's runner lock); once it is
//! gone, the cancel rolls the school back here, on the local engine, through the legal
//! moves, and the next run migrates it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use a2a_core::{InstanceStore, Locator, SchoolCode, Status};
use a2a_dbmove::server;
use common::{a2a, text};

/// Every file under `dir` and its bytes, by path relative to it.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The source's maintenance setting.
async fn setting(db: &Locator) -> Option<String> {
    let db = a2a_dbmove::Db::connect(db, false).await.unwrap();
    let name = a2a_dbmove::site::MAINTENANCE_SETTING;
    a2a_dbmove::site::config_value(&db, "mdl_", name)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_rolls_back_a_running_school_once_its_run_is_gone() {
    let test = "cancel_rolls_back_a_running_school_once_its_run_is_gone";
    let Some(pg) = a2a_testkit::service_url("A2A_TEST_PG_URL", test) else {
        return;
    };
    let pg = Locator::new(pg);
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display().to_string();
    // A code of this process only, so that its target on the shared server is its own.
    let code = SchoolCode::parse(&format!("17{:02}9001", std::process::id() % 100)).unwrap();
    server::drop(&pg, &a2a_dbmove::target::name(&code))
        .await
        .unwrap();
    let tpl = server::create(&pg, &a2a_testkit::db_name("cancel_tpl"))
        .await
        .unwrap();
    common::fixture_site(work.path(), tpl.expose(), &format!("{w}/tpl"));
    let src = server::create(&pg, &a2a_testkit::db_name("cancel_src"))
        .await
        .unwrap();
    common::fixture_site(work.path(), src.expose(), &format!("{w}/src"));
    let list = work.path().join("list.csv");
    std::fs::write(
        &list,
        format!(
            "school_code,name,kind,dns,template,source_db,source_files\n\
             {code},Institut Cancel,migrate,ins-cancel,,{},{w}/src\n",
            src.expose()
        ),
    )
    .unwrap();
    std::fs::write(
        home.path().join("a2a.toml"),
        format!(
            "[site]\nhost = \"campus.example.cat\"\n\
             old_wwwroot = \"https://agora.xtec.cat/{{dns}}/moodle\"\n\
             [[site.shards]]\nname = \"a\"\ndb = \"{}\"\ncapacity = 10\n\
             [site.templates.primary]\ndb = \"{}\"\nfiles = \"{w}/tpl\"\n\
             wwwroot = \"https://plantilla.example.cat/moodle\"\n",
            pg.expose(),
            tpl.expose()
        ),
    )
    .unwrap();
    let source_files = work.path().join("src");
    let as_it_was = (setting(&src).await, files(&source_files));

    // The source's config table held, so that the run's Freeze waits inside, with the
    // school running.
    let holder = a2a_dbmove::Db::connect(&src, false).await.unwrap();
    holder
        .exec("BEGIN; LOCK TABLE mdl_config IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let run = ["run", list.to_str().unwrap(), "--clock", "virtual"];
    let mut child = common::command(home.path())
        .args(run)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let began = Instant::now();
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the run ended");
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "no freeze began"
        );
        let db = home.path().join("state.db");
        if db.exists() {
            let store = a2a_local::SqliteStore::open(&db).await.unwrap();
            let history = store.history(&code).await.unwrap_or_default();
            if history.iter().any(|e| e.step == "freeze") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // While the run is alive, its process drives the execution: refused, nothing changed.
    let out = a2a(home.path(), &["cancel", code.as_str()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("{code}: not cancelled: it is running"))
            && said.contains("runner.lock"),
        "{said}"
    );

    // The run is gone (killed, as a crash would): the cancel rolls the school back here.
    child.kill().unwrap();
    child.wait().unwrap();
    holder.exec("COMMIT").await.unwrap();
    // The killed run's session, still waiting on the table, writes its freeze's setting
    // now that it may (the server learns of the dead client later): the rollback below
    // comes after it and puts it back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = a2a(home.path(), &["cancel", code.as_str()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "{code}: cancelled: its execution {code}-migrate-1 ended with the run that drove it; \
             its rollback ran here as {code}-migrate-1-cleanup-1: now rolled_back"
        )),
        "{said}"
    );
    let store = a2a_local::SqliteStore::open(&home.path().join("state.db"))
        .await
        .unwrap();
    let i = store.get(&code).await.unwrap().unwrap();
    assert_eq!((i.status, i.target.db.clone()), (Status::RolledBack, None));
    let history = store.history(&code).await.unwrap();
    for step in [
        a2a_schedule::OPERATOR_CANCEL_STEP,
        "restore-source",
        "rollback",
    ] {
        assert!(
            history.iter().any(|e| e.step == step),
            "{step}: {history:?}"
        );
    }
    assert!(!a2a_dbmove::target::exists(&pg, &code).await.unwrap());
    for prefix in [format!("stage/{code}"), format!("instances/{code}")] {
        let left = home.path().join("blobs").join(&prefix);
        assert!(
            !left.exists() || files(&left).is_empty(),
            "{prefix} is gone"
        );
    }
    assert_eq!(
        (setting(&src).await, files(&source_files)),
        as_it_was,
        "the source as it was"
    );
    drop(store);

    // The next run migrates it.
    let out = a2a(home.path(), &run);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 of 1 schools active"),
        "{}",
        text(&out)
    );
    server::drop(&pg, &a2a_dbmove::target::name(&code))
        .await
        .unwrap();
}

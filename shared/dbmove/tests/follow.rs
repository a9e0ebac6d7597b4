//! An import that follows the export under way, as the migrate workflow runs them: each
//! import part loads the chunks its export part has staged (indexing a table once it is
//! whole), waits for the others
//! within its time, and resumes from the ledger; on every engine the environment offers
//! (PostgreSQL and MariaDB from `A2A_TEST_PG_URL` and `A2A_TEST_MYSQL_URL`, SQLite always).

use std::time::{Duration, Instant};

use a2a_core::{BlobStore as _, Locator};
use a2a_dbmove::fixture::{FixtureOptions, generate};
use a2a_dbmove::mover::{SMALL_TABLE, read_tables};
use a2a_dbmove::plan::{balance, weights};
use a2a_dbmove::server;
use a2a_dbmove::{
    Budget, CopyLimits, Db, DbError, ExportReport, ImportFrom, ImportReport, NoProgress,
    begin_export, begin_import_following, check_import, export, export_part, finish_import,
    import_part_from, seal_export, verify,
};
use a2a_local::FsBlob;
use a2a_testkit::{db_name, engines};

fn limits() -> CopyLimits {
    CopyLimits {
        chunk_rows: 64,
        chunk_bytes: 16 << 10,
        ..CopyLimits::default()
    }
}

/// A source with the fixture, and a fresh target on the next engine (SQLite alone: a
/// second SQLite database): their URLs and database names.
struct Pair {
    src: (Locator, String),
    dst: (Locator, String),
}

async fn pair(tag: &str, engines: &[(&'static str, Locator)], i: usize) -> Pair {
    let (stag, sadmin) = &engines[i];
    let (dtag, dadmin) = &engines[(i + 1) % engines.len()];
    let sname = db_name(&format!("{tag}_src_{stag}"));
    let src = server::create(sadmin, &sname).await.unwrap();
    let db = Db::connect(&src, true).await.unwrap();
    generate(&db, &FixtureOptions::default()).await.unwrap();
    let dname = db_name(&format!("{tag}_dst_{stag}_{dtag}"));
    let dst = server::create(dadmin, &dname).await.unwrap();
    Pair {
        src: (src, sname),
        dst: (dst, dname),
    }
}

async fn drop_pair(p: Pair, engines: &[(&'static str, Locator)], i: usize) {
    server::drop(&engines[i].1, &p.src.1).await.unwrap();
    let next = &engines[(i + 1) % engines.len()].1;
    server::drop(next, &p.dst.1).await.unwrap();
}

/// The export's parts, balanced by the source sizes that `begin_export` staged.
async fn parts(store: &FsBlob, export_id: &str, tables: &[String], n: usize) -> Vec<Vec<String>> {
    let staged = read_tables(store, export_id).await.unwrap().unwrap();
    assert_eq!(staged.tables.len(), tables.len());
    balance(&weights(tables, &staged.sizes), n)
}

/// One run of a following import part, on one connection.
async fn follow(
    db: &Db,
    store: &FsBlob,
    part: &[String],
    budget: &Budget,
) -> Result<ImportReport, DbError> {
    import_part_from(
        ImportFrom::Following,
        db,
        store,
        Some(part),
        1,
        budget,
        &NoProgress,
    )
    .await
}

/// One run of an export part.
async fn export_run(
    db: &Db,
    store: &FsBlob,
    part: &[String],
    budget: &Budget,
) -> Result<ExportReport, DbError> {
    export_part(db, store, "mdl_", Some(part), limits(), budget, &NoProgress).await
}

/// A following import part run again until it is whole, each run within `time`: its
/// runs' reports.
async fn follow_until_whole(
    url: &Locator,
    store: &FsBlob,
    part: &[String],
    time: Duration,
) -> Result<Vec<ImportReport>, DbError> {
    let db = Db::connect(url, false).await?;
    let mut runs = Vec::new();
    loop {
        let budget = Budget::new(None, Some(time));
        let r = follow(&db, store, part, &budget).await?;
        let whole = r.complete;
        runs.push(r);
        if whole {
            return Ok(runs);
        }
    }
}

/// Export parts of one chunk a run, and beside them, at once, the import parts that
/// follow them: every import part is whole before the export is sealed, and the target
/// verifies equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_parts_follow_a_budgeted_export_and_verify_equal() {
    let dir = tempfile::tempdir().unwrap();
    let engines = engines(
        "import_parts_follow_a_budgeted_export_and_verify_equal",
        dir.path(),
    );
    for i in 0..engines.len() {
        let p = pair("fol", &engines, i).await;
        let stage = tempfile::tempdir().unwrap();
        let store = FsBlob::new(stage.path()).unwrap();
        let src = Db::connect(&p.src.0, false).await.unwrap();
        let (index, staged) = begin_export(&src, &store, "mdl_").await.unwrap();
        let parts = parts(&store, &index.export_id, &index.tables, 3).await;
        assert_eq!(parts.len(), 3);
        // Begun before any table is staged: the tables come from the export's list. Only
        // those loaded alone are made now; each part makes its small ones.
        let dst = Db::connect(&p.dst.0, true).await.unwrap();
        let begun = begin_import_following(&dst, &store, false).await.unwrap();
        assert!(!begun.resumed);
        let mut alone: Vec<String> = staged
            .sizes
            .iter()
            .filter(|(_, s)| *s >= SMALL_TABLE)
            .map(|(n, _)| n.clone())
            .collect();
        alone.sort();
        let mut made = dst.list_tables("mdl_").await.unwrap();
        made.sort();
        assert_eq!(made, alone, "{}: the tables loaded alone", engines[i].0);
        assert!(
            made.len() < index.tables.len(),
            "the fixture has small tables"
        );
        let exports = parts.iter().map(|part| {
            let (store, url) = (&store, &p.src.0);
            async move {
                let db = Db::connect(url, false).await?;
                let mut runs = 0;
                loop {
                    runs += 1;
                    let one = Budget::new(Some(1), None);
                    let r = export_run(&db, store, part, &one).await?;
                    if r.complete {
                        return Ok::<_, DbError>(runs);
                    }
                }
            }
        });
        let imports = parts.iter().map(|part| {
            let (store, url) = (&store, &p.dst.0);
            async move { follow_until_whole(url, store, part, Duration::from_millis(300)).await }
        });
        let (exported, imported) = tokio::join!(
            futures::future::join_all(exports),
            futures::future::join_all(imports)
        );
        for runs in exported {
            assert!(runs.unwrap() > 1, "one chunk a run takes several runs");
        }
        let mut rows = 0;
        for runs in imported {
            let runs = runs.unwrap();
            rows += runs.iter().map(|r| r.rows).sum::<u64>();
            assert!(runs.last().unwrap().complete);
        }
        // Every part is in; the export is not sealed yet, so it cannot be checked yet.
        assert!(matches!(
            check_import(&dst, &store).await,
            Err(DbError::Input(_))
        ));
        let sealed = seal_export(&store).await.unwrap();
        assert_eq!(rows, sealed.rows, "every row loaded once");
        finish_import(&dst, &store).await.unwrap();
        let report = verify(&src, &dst, "mdl_", &NoProgress).await.unwrap();
        let bad: Vec<_> = report.differing().collect();
        assert!(bad.is_empty(), "{:?}: {bad:#?}", engines[i].0);
        // Every table has its indexes, made with it (small) or after its rows.
        // Per table, its indexes' columns and uniqueness (names may differ).
        type Shape = Vec<(String, Vec<(Vec<String>, bool)>)>;
        let shape = |tables: Vec<a2a_dbmove::Table>| {
            let mut out: Shape = tables
                .into_iter()
                .map(|t| {
                    let mut ix: Vec<_> = t
                        .indexes
                        .into_iter()
                        .map(|i| (i.columns, i.unique))
                        .collect();
                    ix.sort();
                    (t.name, ix)
                })
                .collect();
            out.sort();
            out
        };
        assert_eq!(
            shape(dst.introspect("mdl_").await.unwrap()),
            shape(src.introspect("mdl_").await.unwrap()),
            "{}: the indexes",
            engines[i].0
        );
        drop((src, dst));
        drop_pair(p, &engines, i).await;
    }
}

/// A following import part started before its tables are staged waits, and says
/// `complete: false` when its time is up; a manifest left by another export is not taken
/// for this one's. Stopped by its chunks, or killed, a rerun resumes from the ledger; an
/// export sealed meanwhile is followed alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_import_waits_stops_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let engines = engines("a_following_import_waits_stops_and_resumes", dir.path());
    for i in 0..engines.len() {
        let tag = engines[i].0;
        let p = pair("wait", &engines, i).await;
        let stage = tempfile::tempdir().unwrap();
        let store = FsBlob::new(stage.path()).unwrap();
        let src = Db::connect(&p.src.0, false).await.unwrap();
        // An older export's manifests stay in the stage under the same keys.
        export(&src, &store, "mdl_", limits(), 1, &NoProgress)
            .await
            .unwrap();
        let (index, staged) = begin_export(&src, &store, "mdl_").await.unwrap();
        let parts = parts(&store, &index.export_id, &index.tables, 2).await;
        let dst = Db::connect(&p.dst.0, true).await.unwrap();
        begin_import_following(&dst, &store, false).await.unwrap();
        assert!(
            begin_import_following(&dst, &store, false)
                .await
                .unwrap()
                .resumed,
            "{tag}: beginning again finds it under way"
        );
        let started = Instant::now();
        let second = Budget::new(None, Some(Duration::from_secs(1)));
        let r = follow(&dst, &store, &parts[0], &second).await.unwrap();
        let took = started.elapsed();
        assert!(!r.complete, "{tag}: {r:?}");
        assert_eq!(
            r.chunks, 0,
            "{tag}: the old export's manifests are not this one's"
        );
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(10),
            "{tag}: waited {took:?}"
        );
        // While it waited, the part made its small tables on a connection of their own;
        // on SQLite (one writer) it makes them as their manifests come.
        let dtag = engines[(i + 1) % engines.len()].0;
        let small: Vec<&String> = parts[0]
            .iter()
            .filter(|n| {
                staged
                    .sizes
                    .iter()
                    .any(|(s, b)| s == *n && *b < SMALL_TABLE)
            })
            .collect();
        assert!(!small.is_empty(), "{tag}: part 0 has small tables");
        let made = dst.list_tables("mdl_").await.unwrap();
        let waiting_made = small.iter().filter(|n| made.contains(n)).count();
        let expected = if dtag == "lite" { 0 } else { small.len() };
        assert_eq!(waiting_made, expected, "{tag} -> {dtag}: small tables made");

        // Part 0 staged whole, not sealed: one chunk, then a kill, then the rest.
        let r = export_run(&src, &store, &parts[0], &Budget::unlimited())
            .await
            .unwrap();
        assert!(r.complete && r.chunks > 2, "{tag}: {r:?}");
        let one = Budget::new(Some(1), Some(Duration::from_secs(60)));
        let r = follow(&dst, &store, &parts[0], &one).await.unwrap();
        assert!(!r.complete, "{tag}: {r:?}");
        assert_eq!(r.chunks, 1, "{tag}: {r:?}");
        // Killed: its connection goes with it, as a Lambda's does.
        let doomed = Db::connect(&p.dst.0, false).await.unwrap();
        let unlimited = Budget::unlimited();
        let run = follow(&doomed, &store, &parts[0], &unlimited);
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(30), run).await {
            r.unwrap();
        }
        drop((doomed, dst));
        // A killed process's last transaction has ended (committed or rolled back) before
        // its rerun; here SQLite's may still be committing on its blocking thread.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let again = Db::connect(&p.dst.0, false).await.unwrap();
        let minute = Budget::new(None, Some(Duration::from_secs(60)));
        let r = follow(&again, &store, &parts[0], &minute).await.unwrap();
        assert!(r.complete, "{tag}: {r:?}");
        assert!(
            r.chunks_skipped >= 1,
            "{tag}: the first run's chunk is kept: {r:?}"
        );
        // Part 1 waits on; staged and sealed, it is followed as well.
        let short = Budget::new(None, Some(Duration::from_millis(200)));
        let r = follow(&again, &store, &parts[1], &short).await.unwrap();
        assert!(!r.complete, "{tag}: {r:?}");
        let r = export_run(&src, &store, &parts[1], &Budget::unlimited())
            .await
            .unwrap();
        assert!(r.complete, "{tag}: {r:?}");
        seal_export(&store).await.unwrap();
        let r = follow(&again, &store, &parts[1], &minute).await.unwrap();
        assert!(r.complete, "{tag}: {r:?}");
        finish_import(&again, &store).await.unwrap();
        let report = verify(&src, &again, "mdl_", &NoProgress).await.unwrap();
        let bad: Vec<_> = report.differing().collect();
        assert!(bad.is_empty(), "{tag}: {bad:#?}");
        drop((src, again));
        drop_pair(p, &engines, i).await;
    }
}

/// An export part takes its tables' schemas from the list `begin_export` staged (no second
/// introspection), stages them in the order of its part (biggest first), and still names a
/// table dropped from the source since the export began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_part_follows_its_list_and_names_a_table_gone_since_the_begin() {
    let dir = tempfile::tempdir().unwrap();
    let engines = engines(
        "an_export_part_follows_its_list_and_names_a_table_gone_since_the_begin",
        dir.path(),
    );
    for i in 0..engines.len() {
        let p = pair("order", &engines, i).await;
        let src = Db::connect(&p.src.0, false).await.unwrap();
        let stage = tempfile::tempdir().unwrap();
        let store = FsBlob::new(stage.path()).unwrap();
        let (index, _) = begin_export(&src, &store, "mdl_").await.unwrap();
        let all = parts(&store, &index.export_id, &index.tables, 1).await;
        let part = &all[0];
        assert!(part.len() > 2, "{part:?}");
        // One chunk: the first table of the list, not the first by name.
        let one = export_part(
            &src,
            &store,
            "mdl_",
            Some(part),
            limits(),
            &Budget::new(Some(1), None),
            &NoProgress,
        )
        .await
        .unwrap();
        assert!(!one.complete);
        let first = store
            .list("dbmove/tables/", None)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|m| m.key.to_string())
            .find(|k| k.ends_with("manifest.json"))
            .unwrap();
        assert!(
            first.contains(&format!("/{}/", part[0])),
            "{}: {first} is not the biggest table {}",
            engines[i].0,
            part[0]
        );
        let gone = part.last().unwrap();
        src.exec(&format!("DROP TABLE {}", src.engine().quote(gone)))
            .await
            .unwrap();
        let err = export_part(
            &src,
            &store,
            "mdl_",
            Some(part),
            limits(),
            &Budget::unlimited(),
            &NoProgress,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, DbError::Input(m) if m.contains(&format!("table {gone} is no longer in the source"))),
            "{}: {err}",
            engines[i].0
        );
        drop(src);
        drop_pair(p, &engines, i).await;
    }
}

/// Pauses an export once the manifest at `path` exists (a published one, the table not
/// whole yet), until told to go on; says when it paused.
struct PauseAtManifest {
    path: std::path::PathBuf,
    paused: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
    go: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl a2a_dbmove::Progress for PauseAtManifest {
    fn rows(&self, _n: u64) {
        if !self.path.exists() {
            return;
        }
        let told = self.paused.lock().unwrap().take();
        if let Some(told) = told {
            told.send(()).unwrap();
            // `block_in_place` hands this worker's queued tasks to another thread, so the
            // import is not stuck behind the paused export; the timeout fails a stuck test
            // (the export's task panics) instead of hanging CI.
            let go = &self.go;
            tokio::task::block_in_place(|| {
                go.lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(120))
                    .expect("the test lets the paused export go within 120 s");
            });
        }
    }
}

/// A table over `whole_read` is exported in key order with its manifest published every
/// few chunks: an import that follows loads those chunks while the export goes on (paused
/// here), marks the table whole only once it is, loads each chunk once, and the table
/// verifies equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_follows_a_big_table_chunk_by_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let engines = engines("an_import_follows_a_big_table_chunk_by_chunk", dir.path());
    for i in 0..engines.len() {
        let tag = engines[i].0;
        let p = pair("chunks", &engines, i).await;
        let stage = tempfile::tempdir().unwrap();
        let store = FsBlob::new(stage.path()).unwrap();
        let src = Db::connect(&p.src.0, false).await.unwrap();
        let (_, staged) = begin_export(&src, &store, "mdl_").await.unwrap();
        let big = staged
            .sizes
            .iter()
            .max_by_key(|(_, s)| *s)
            .unwrap()
            .0
            .clone();
        let part = vec![big.clone()];
        let dst = Db::connect(&p.dst.0, true).await.unwrap();
        begin_import_following(&dst, &store, false).await.unwrap();

        let (paused_tx, paused_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel();
        let pause = PauseAtManifest {
            path: stage
                .path()
                .join(format!("dbmove/tables/{big}/manifest.json")),
            paused: std::sync::Mutex::new(Some(paused_tx)),
            go: std::sync::Mutex::new(go_rx),
        };
        let (url, st, only) = (p.src.0.clone(), store.clone(), part.clone());
        let exporting = tokio::spawn(async move {
            let db = Db::connect(&url, false).await?;
            let keyed = CopyLimits {
                whole_read: 0,
                ..limits()
            };
            let budget = Budget::new(None, Some(Duration::from_secs(60)));
            export_part(&db, &st, "mdl_", Some(&only), keyed, &budget, &pause).await
        });
        let waited =
            tokio::task::spawn_blocking(move || paused_rx.recv_timeout(Duration::from_secs(60)));
        waited
            .await
            .unwrap()
            .expect("the export published its manifest");
        let short = Budget::new(None, Some(Duration::from_millis(300)));
        let first = follow(&dst, &store, &part, &short).await.unwrap();
        assert!(!first.complete, "{tag}: {first:?}");
        assert!(
            first.chunks >= 1,
            "{tag}: chunks of a table under way: {first:?}"
        );
        go_tx.send(()).unwrap();
        let ex = exporting.await.unwrap().unwrap();
        assert!(ex.complete, "{tag}: {ex:?}");
        assert!(ex.chunks > first.chunks, "{tag}: {ex:?} {first:?}");
        let minute = Budget::new(None, Some(Duration::from_secs(60)));
        let second = follow(&dst, &store, &part, &minute).await.unwrap();
        assert!(second.complete, "{tag}: {second:?}");
        assert_eq!(second.chunks_skipped, first.chunks, "{tag}: {second:?}");
        assert_eq!(
            first.chunks + second.chunks,
            ex.chunks,
            "{tag}: each chunk once"
        );
        let report = a2a_dbmove::verify_tables(&src, &dst, "mdl_", Some(&part), &NoProgress)
            .await
            .unwrap();
        let bad: Vec<_> = report.differing().collect();
        assert!(bad.is_empty(), "{tag}: {bad:#?}");
        drop((src, dst));
        drop_pair(p, &engines, i).await;
    }
}

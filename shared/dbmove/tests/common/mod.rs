//! What the tests of a native stage (`pgbinary.rs`, `mytsv.rs`) share: a source database
//! on one engine beside the test's engines, small chunks, and a look at the stage.

use a2a_core::{BlobKey, BlobStore, Locator};
use a2a_dbmove::fixture::{FixtureOptions, generate};
use a2a_dbmove::mover::read_index;
use a2a_dbmove::server;
use a2a_dbmove::stage::{ChunkFormat, ExportIndex, Manifest};
use a2a_dbmove::{
    Budget, CopyLimits, Db, DbError, ImportOptions, NoProgress, begin_export, copy, export,
    export_part, import, seal_export, verify,
};
use a2a_local::FsBlob;
use a2a_testkit::{db_name, engines};

/// Chunks of at most 64 rows and 16 KiB: every table of a fixture has several.
pub fn small_chunks() -> CopyLimits {
    CopyLimits {
        chunk_rows: 64,
        chunk_bytes: 16 << 10,
        ..CopyLimits::default()
    }
}

/// A test's engines (SQLite in a folder of its own) and a new database on one of them.
pub struct Source {
    /// The engine's tag (`pg`, `my`).
    pub tag: &'static str,
    pub engines: Vec<(&'static str, Locator)>,
    pub admin: Locator,
    pub name: String,
    pub db: Db,
    _dir: tempfile::TempDir,
}

impl Source {
    /// The engines of `test` and a new database named after `tag` on engine `engine`
    /// (`pg`, `my`), with the fixture of `options` when given; `None` without that engine
    /// (a SKIP line is printed).
    pub async fn new(
        test: &str,
        engine: &str,
        tag: &str,
        options: Option<&FixtureOptions>,
    ) -> Option<Source> {
        let dir = tempfile::tempdir().unwrap();
        let engines = engines(test, dir.path());
        let (engine, admin) = engines.iter().find(|(t, _)| *t == engine)?.clone();
        let name = db_name(tag);
        let url = server::create(&admin, &name).await.unwrap();
        let db = Db::connect(&url, false).await.unwrap();
        if let Some(options) = options {
            generate(&db, options).await.unwrap();
        }
        Some(Source {
            tag: engine,
            engines,
            admin,
            name,
            db,
            _dir: dir,
        })
    }

    /// Drops the database.
    pub async fn drop(self) {
        drop(self.db);
        server::drop(&self.admin, &self.name).await.unwrap();
    }
}

/// Files under `dir` whose name ends with `ext`.
pub fn files_ending(dir: &std::path::Path, ext: &str) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            n += files_ending(&p, ext);
        } else if p.to_string_lossy().ends_with(ext) {
            n += 1;
        }
    }
    n
}

/// The key of `table`'s manifest.
pub fn manifest_key(table: &str) -> BlobKey {
    BlobKey::parse(&format!("dbmove/tables/{table}/manifest.json")).unwrap()
}

/// `table`'s manifest in the stage.
pub async fn manifest(store: &FsBlob, table: &str) -> Manifest {
    serde_json::from_slice(&store.get(&manifest_key(table)).await.unwrap()).unwrap()
}

/// Every table of `src` exported in [`small_chunks`] into a new folder stage (gone with
/// the folder).
pub async fn small_stage(src: &Db) -> (tempfile::TempDir, FsBlob) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlob::new(dir.path()).unwrap();
    export(src, &store, "mdl_", small_chunks(), 1, &NoProgress)
        .await
        .unwrap();
    (dir, store)
}

/// Imports the damaged `store` into a new database (named after `tag`) on each engine of
/// `source` but `skip`: the import must fail as `check` (given the engine's tag and the
/// error) asserts, and leave `table` with `before` rows, the chunks' before the damaged
/// one, nothing of it.
pub async fn refused_on_each(
    source: &Source,
    skip: &str,
    tag: &str,
    store: &FsBlob,
    (table, before): (&str, u64),
    check: impl Fn(&str, DbError),
) {
    for (dtag, dadmin) in source.engines.iter().filter(|(t, _)| *t != skip) {
        let dname = db_name(&format!("{tag}_{dtag}"));
        let dst_url = server::create(dadmin, &dname).await.unwrap();
        let dst = Db::connect(&dst_url, true).await.unwrap();
        match import(&dst, store, &ImportOptions::default(), &NoProgress).await {
            Err(e) => check(dtag, e),
            Ok(r) => panic!("{dtag}: imported {r:?}"),
        }
        let n = dst
            .query_i64(
                &format!("SELECT COUNT(*) FROM {}", dst.engine().quote(table)),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            n as u64, before,
            "{tag} {dtag}: the rows before the damaged chunk"
        );
        drop(dst);
        server::drop(dadmin, &dname).await.unwrap();
    }
}

/// A budgeted export of `src` into `store` in small chunks, killed after staging chunks
/// but before recording them: its biggest table is staged one chunk, then two more (whose
/// manifest is then lost), then the rest; the chunks staged again must be the very same
/// (the same SHA-256). Then the other tables, and the seal. Returns that table's manifest
/// as the crash left it (3 chunks, a resume key), and the sealed index.
pub async fn export_crashed_and_resumed(src: &Db, store: &FsBlob) -> (Manifest, ExportIndex) {
    let limits = small_chunks();
    let big = "mdl_logstore_standard_log".to_owned();
    let only = [big.clone()];
    begin_export(src, store, "mdl_").await.unwrap();
    // The big table alone, or (`all`) every table.
    let only = &only;
    let part = |all: bool, n: Option<u64>| async move {
        export_part(
            src,
            store,
            "mdl_",
            (!all).then_some(&only[..]),
            limits,
            &Budget::new(n, None),
            &NoProgress,
        )
        .await
        .unwrap()
    };
    assert!(!part(false, Some(1)).await.complete);
    let key = manifest_key(&big);
    let after_first = store.get(&key).await.unwrap();
    assert!(!part(false, Some(2)).await.complete);
    let crashed = manifest(store, &big).await;
    assert_eq!(crashed.chunks.len(), 3);
    assert!(crashed.resume_after.is_some() && !crashed.complete);
    // The crash: the second run's chunks are staged, its manifest never written.
    store.put(&key, after_first).await.unwrap();
    assert!(part(false, None).await.complete);
    let m = manifest(store, &big).await;
    assert!(m.chunks.len() > 3, "{}", m.chunks.len());
    assert_eq!(
        m.chunks[..3],
        crashed.chunks[..],
        "the same chunks again, byte for byte"
    );
    let count = format!("SELECT COUNT(*) FROM {}", src.engine().quote(&big));
    assert_eq!(m.rows, src.query_i64(&count, &[]).await.unwrap() as u64);
    // The other tables, then the seal.
    assert!(part(true, None).await.complete);
    (crashed, seal_export(store).await.unwrap())
}

/// `src` and `dst` verify equal, else a failure naming `what` and the tables.
pub async fn assert_equal(src: &Db, dst: &Db, what: &str) {
    let report = verify(src, dst, "mdl_", &NoProgress).await.unwrap();
    let bad: Vec<_> = report.differing().collect();
    assert!(bad.is_empty(), "{what}: {bad:#?}");
}

/// `source`'s fixture staged in small chunks of its engine's native `format` (files
/// ending `ext`), and as JSON Lines; each stage imported into every engine of the test,
/// then copied into it in one pass; all verify equal. Only the engine tagged `taker` loads
/// `format` as it is (checked: else the decoded path alone would pass). Target databases
/// are named after `tag`.
pub async fn stage_imports_into_every_engine(
    source: &Source,
    format: ChunkFormat,
    ext: &str,
    taker: &str,
    tag: &str,
) {
    let src = &source.db;
    for native in [true, false] {
        let stage = tempfile::tempdir().unwrap();
        let store = FsBlob::new(stage.path()).unwrap();
        let limits = CopyLimits {
            native,
            ..small_chunks()
        };
        let ex = export(src, &store, "mdl_", limits, 2, &NoProgress)
            .await
            .unwrap();
        assert!(ex.chunks > ex.tables as u64);
        let (ext, f) = if native {
            (ext, format)
        } else {
            (".jsonl.zst", ChunkFormat::JsonLines)
        };
        assert_eq!(files_ending(stage.path(), ext), ex.chunks, "{ext}");
        assert_eq!(manifest(&store, "mdl_user").await.format, f.tag());
        assert_eq!(read_index(&store).await.unwrap().format, f.tag());
        for (dtag, dadmin) in &source.engines {
            let what = format!("{} → {dtag} (native {native})", source.tag);
            let dname = db_name(&format!("{tag}_{dtag}_{native}"));
            let dst_url = server::create(dadmin, &dname).await.unwrap();
            let dst = Db::connect(&dst_url, true).await.unwrap();
            assert_eq!(dst.takes_as_is(format), *dtag == taker, "{what}");
            assert!(!dst.takes_as_is(ChunkFormat::JsonLines), "{what}");
            let jobs = ImportOptions {
                jobs: 2,
                ..ImportOptions::default()
            };
            let im = import(&dst, &store, &jobs, &NoProgress).await.unwrap();
            assert!(im.complete);
            assert_eq!(im.rows, ex.rows);
            assert_equal(src, &dst, &what).await;
            // The copy's pipeline: staged and loaded in one pass.
            let stage = tempfile::tempdir().unwrap();
            let store = FsBlob::new(stage.path()).unwrap();
            let (cx, _) = copy(src, &dst, &store, "mdl_", limits, 2, true, &NoProgress)
                .await
                .unwrap();
            assert_eq!(cx.rows, ex.rows);
            assert_eq!(manifest(&store, "mdl_user").await.format, f.tag());
            assert_eq!(files_ending(stage.path(), ext), cx.chunks, "{ext}");
            assert_equal(src, &dst, &format!("copy {what}")).await;
            drop(dst);
            server::drop(dadmin, &dname).await.unwrap();
        }
    }
}

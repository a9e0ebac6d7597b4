//! MySQL/MariaDB's `LOAD DATA` text stage: a MariaDB source stages it; a MariaDB target
//! (with `local_infile`) loads it as it is, PostgreSQL and SQLite targets get it decoded;
//! exported and imported, copied in one pass, budgeted and resumed after a crash, followed
//! by an import, and refused when damaged. A MySQL target without `local_infile` decodes
//! it too ([`Db::takes_as_is`]); the servers of the test environment all have it on, so
//! that path is not run here.

use a2a_core::{BlobKey, BlobStore, Locator};
use a2a_dbmove::fixture::{FixtureOptions, generate};
use a2a_dbmove::server;
use a2a_dbmove::stage::{ChunkFormat, FORMAT, MYTSV_FORMAT, Manifest};
use a2a_dbmove::{
    Budget, CopyLimits, Db, DbError, ImportFrom, ImportOptions, NoProgress, begin_export,
    begin_import_following, copy, export, export_part, finish_import, import, import_part_from,
    mover::read_index, seal_export, verify,
};
use a2a_local::FsBlob;
use a2a_testkit::{db_name, engines};
use bytes::Bytes;

fn small_chunks() -> CopyLimits {
    CopyLimits {
        chunk_rows: 64,
        chunk_bytes: 16 << 10,
        ..CopyLimits::default()
    }
}

/// A test's engines (SQLite in a folder of its own) and a new MariaDB database.
struct Source {
    engines: Vec<(&'static str, Locator)>,
    admin: Locator,
    name: String,
    db: Db,
    _dir: tempfile::TempDir,
}

impl Source {
    /// The engines of `test` and a new MariaDB database named after `tag`, with the
    /// fixture of `options`; `None` without MariaDB (a SKIP line is printed).
    async fn new(test: &str, tag: &str, options: &FixtureOptions) -> Option<Source> {
        let dir = tempfile::tempdir().unwrap();
        let engines = engines(test, dir.path());
        let admin = engines.iter().find(|(t, _)| *t == "my")?.1.clone();
        let name = db_name(tag);
        let url = server::create(&admin, &name).await.unwrap();
        let db = Db::connect(&url, false).await.unwrap();
        generate(&db, options).await.unwrap();
        Some(Source {
            engines,
            admin,
            name,
            db,
            _dir: dir,
        })
    }

    /// Drops the database.
    async fn drop(self) {
        drop(self.db);
        server::drop(&self.admin, &self.name).await.unwrap();
    }
}

/// Files under `dir` whose name ends with `ext`.
fn files_ending(dir: &std::path::Path, ext: &str) -> u64 {
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

fn manifest_key(table: &str) -> BlobKey {
    BlobKey::parse(&format!("dbmove/tables/{table}/manifest.json")).unwrap()
}

async fn manifest(store: &FsBlob, table: &str) -> Manifest {
    serde_json::from_slice(&store.get(&manifest_key(table)).await.unwrap()).unwrap()
}

/// The target of each engine that loads `LOAD DATA` text as it is: MariaDB (its
/// `local_infile` is on), no other. Without this the tests below would pass on the
/// decoded path alone.
fn takes_it(tag: &str, dst: &Db) {
    assert_eq!(dst.takes_as_is(ChunkFormat::MyTsv), tag == "my", "{tag}");
    assert!(!dst.takes_as_is(ChunkFormat::JsonLines), "{tag}");
}

async fn assert_equal(src: &Db, dst: &Db, what: &str) {
    let report = verify(src, dst, "mdl_", &NoProgress).await.unwrap();
    let bad: Vec<_> = report.differing().collect();
    assert!(bad.is_empty(), "{what}: {bad:#?}");
}

/// A MariaDB source stages `LOAD DATA` text (JSON Lines when not native); it imports into
/// every engine (as it is into MariaDB, decoded into the others), and `copy` does the
/// same in one pass; all verify equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_data_stage_imports_into_every_engine() {
    let options = FixtureOptions {
        extras: true,
        ..FixtureOptions::default()
    };
    let test = "a_load_data_stage_imports_into_every_engine";
    let Some(source) = Source::new(test, "tsv_src", &options).await else {
        return;
    };
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
        let (ext, tag) = if native {
            (".mytsv.zst", MYTSV_FORMAT)
        } else {
            (".jsonl.zst", FORMAT)
        };
        assert_eq!(files_ending(stage.path(), ext), ex.chunks, "{ext}");
        assert_eq!(manifest(&store, "mdl_user").await.format, tag);
        assert_eq!(read_index(&store).await.unwrap().format, tag);
        for (dtag, dadmin) in &source.engines {
            let dname = db_name(&format!("tsv_{dtag}_{native}"));
            let dst_url = server::create(dadmin, &dname).await.unwrap();
            let dst = Db::connect(&dst_url, true).await.unwrap();
            takes_it(dtag, &dst);
            let jobs = ImportOptions {
                jobs: 2,
                ..ImportOptions::default()
            };
            let im = import(&dst, &store, &jobs, &NoProgress).await.unwrap();
            assert!(im.complete);
            assert_eq!(im.rows, ex.rows);
            assert_equal(src, &dst, &format!("my → {dtag} (native {native})")).await;
            // The copy's pipeline: staged and loaded in one pass.
            let stage = tempfile::tempdir().unwrap();
            let store = FsBlob::new(stage.path()).unwrap();
            let (cx, _) = copy(src, &dst, &store, "mdl_", limits, 2, true, &NoProgress)
                .await
                .unwrap();
            assert_eq!(cx.rows, ex.rows);
            assert_eq!(manifest(&store, "mdl_user").await.format, tag);
            assert_eq!(files_ending(stage.path(), ext), cx.chunks, "{ext}");
            assert_equal(src, &dst, &format!("copy my → {dtag} (native {native})")).await;
            drop(dst);
            server::drop(dadmin, &dname).await.unwrap();
        }
    }
    source.drop().await;
}

/// A budgeted export killed after staging chunks but before recording them goes on from
/// its last recorded key and stages the very same bytes again; an import that follows it
/// into MariaDB (as it is) and an import into SQLite (decoded) verify equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budgeted_load_data_export_resumes_after_a_crash() {
    let test = "a_budgeted_load_data_export_resumes_after_a_crash";
    let Some(source) = Source::new(test, "tsv_crash_src", &FixtureOptions::default()).await else {
        return;
    };
    let src = &source.db;
    let stage = tempfile::tempdir().unwrap();
    let store = FsBlob::new(stage.path()).unwrap();
    let limits = small_chunks();
    let big = "mdl_logstore_standard_log".to_owned();
    let only = [big.clone()];
    begin_export(src, &store, "mdl_").await.unwrap();
    let part = |n: Option<u64>| {
        let (store, only) = (&store, &only);
        async move {
            export_part(
                src,
                store,
                "mdl_",
                Some(&only[..]),
                limits,
                &Budget::new(n, None),
                &NoProgress,
            )
            .await
            .unwrap()
        }
    };
    assert!(!part(Some(1)).await.complete);
    let after_first = store.get(&manifest_key(&big)).await.unwrap();
    assert!(!part(Some(2)).await.complete);
    let crashed = manifest(&store, &big).await;
    assert_eq!(crashed.chunks.len(), 3);
    assert_eq!(crashed.format, MYTSV_FORMAT);
    assert!(crashed.resume_after.is_some());
    // The crash: the second run's chunks are staged, its manifest never written.
    store.put(&manifest_key(&big), after_first).await.unwrap();
    assert!(part(None).await.complete);
    let m = manifest(&store, &big).await;
    assert!(m.chunks.len() > 3, "{}", m.chunks.len());
    assert_eq!(
        m.chunks[..3],
        crashed.chunks[..],
        "the same chunks again, byte for byte"
    );
    assert_eq!(
        m.rows,
        src.query_i64("SELECT COUNT(*) FROM mdl_logstore_standard_log", &[])
            .await
            .unwrap() as u64
    );
    let r = export_part(
        src,
        &store,
        "mdl_",
        None,
        limits,
        &Budget::unlimited(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(r.complete);
    let index = seal_export(&store).await.unwrap();
    assert_eq!(index.format, MYTSV_FORMAT);
    for (dtag, dadmin) in source.engines.iter().filter(|(t, _)| *t != "pg") {
        let dname = db_name(&format!("tsv_crash_{dtag}"));
        let dst_url = server::create(dadmin, &dname).await.unwrap();
        let dst = Db::connect(&dst_url, true).await.unwrap();
        takes_it(dtag, &dst);
        let rows = if *dtag == "my" {
            // The workflow's way: an import that follows the export.
            begin_import_following(&dst, &store, false).await.unwrap();
            let im = import_part_from(
                ImportFrom::Following,
                &dst,
                &store,
                None,
                2,
                &Budget::unlimited(),
                &NoProgress,
            )
            .await
            .unwrap();
            assert!(im.complete);
            finish_import(&dst, &store).await.unwrap();
            im.rows
        } else {
            import(&dst, &store, &ImportOptions::default(), &NoProgress)
                .await
                .unwrap()
                .rows
        };
        assert_eq!(rows, index.rows, "{dtag}");
        assert_equal(src, &dst, dtag).await;
        drop(dst);
        server::drop(dadmin, &dname).await.unwrap();
    }
    source.drop().await;
}

/// A staged chunk damaged on the way (one flipped bit) is refused by its checksum, into
/// MariaDB (which would take it as it is) and SQLite alike; one damaged before its
/// checksum was taken (an extra field on a line) fails MariaDB's load (a warning) and
/// SQLite's decoding (naming the chunk, the line and the column), and nothing of it is
/// committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_load_data_chunk_is_refused() {
    let test = "a_damaged_load_data_chunk_is_refused";
    let Some(source) = Source::new(test, "tsv_bad_src", &FixtureOptions::default()).await else {
        return;
    };
    let src = &source.db;
    let table = "mdl_logstore_standard_log";
    for flip in [true, false] {
        let stage = tempfile::tempdir().unwrap();
        let store = FsBlob::new(stage.path()).unwrap();
        export(src, &store, "mdl_", small_chunks(), 1, &NoProgress)
            .await
            .unwrap();
        let mut m = manifest(&store, table).await;
        let chunk = m.chunks[1].clone();
        let key = BlobKey::parse(&chunk.key).unwrap();
        let body = store.get(&key).await.unwrap().to_vec();
        if flip {
            let mut body = body;
            let mid = body.len() / 2;
            body[mid] ^= 0x10;
            store.put(&key, Bytes::from(body)).await.unwrap();
        } else {
            let mut raw = zstd::decode_all(&body[..]).unwrap();
            let second = raw.iter().position(|&b| b == b'\n').unwrap() + 1;
            raw.insert(second, b'\t');
            let body = zstd::encode_all(&raw[..], 1).unwrap();
            m.chunks[1].sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
            m.chunks[1].bytes = body.len() as u64;
            store.put(&key, Bytes::from(body)).await.unwrap();
            let json = serde_json::to_vec_pretty(&m).unwrap();
            store
                .put(&manifest_key(table), Bytes::from(json))
                .await
                .unwrap();
        }
        for (dtag, dadmin) in source.engines.iter().filter(|(t, _)| *t != "pg") {
            let dname = db_name(&format!("tsv_bad_{dtag}_{flip}"));
            let dst_url = server::create(dadmin, &dname).await.unwrap();
            let dst = Db::connect(&dst_url, true).await.unwrap();
            let r = import(&dst, &store, &ImportOptions::default(), &NoProgress).await;
            match (flip, *dtag, r) {
                (true, _, Err(DbError::Corrupt(e))) => {
                    assert!(e.contains(&chunk.key) && e.contains("SHA-256"), "{e}");
                }
                (false, "my", Err(DbError::Backend(e))) => {
                    assert!(e.contains("LOAD DATA took") && e.contains("warning"), "{e}");
                }
                (false, _, Err(DbError::Corrupt(e))) => {
                    assert!(
                        e.contains(&format!("staged chunk {}: line 2: ", chunk.key))
                            && e.contains(" fields for "),
                        "{e}"
                    );
                }
                (_, _, r) => panic!("{dtag} (flip {flip}): {r:?}"),
            }
            // The chunk before is in; nothing of the damaged one.
            let n = dst
                .query_i64(
                    &format!("SELECT COUNT(*) FROM {}", dst.engine().quote(table)),
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(n as u64, m.chunks[0].rows, "{dtag} (flip {flip})");
            drop(dst);
            server::drop(dadmin, &dname).await.unwrap();
        }
    }
    source.drop().await;
}

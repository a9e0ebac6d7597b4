//! MySQL/MariaDB's `LOAD DATA` text stage: a MariaDB source stages it; a MariaDB target
//! (with `local_infile`) loads it as it is, PostgreSQL and SQLite targets get it decoded;
//! exported and imported, copied in one pass, budgeted and resumed after a crash, followed
//! by an import, and refused when damaged. A MySQL target without `local_infile` decodes
//! it too ([`Db::takes_as_is`]); the servers of the test environment all have it on, so
//! that path is not run here.

mod common;

use a2a_core::{BlobKey, BlobStore};
use a2a_dbmove::fixture::FixtureOptions;
use a2a_dbmove::server;
use a2a_dbmove::stage::{ChunkFormat, MYTSV_FORMAT};
use a2a_dbmove::{
    Budget, Db, DbError, ImportFrom, ImportOptions, NoProgress, begin_import_following,
    finish_import, import, import_part_from,
};
use a2a_local::FsBlob;
use a2a_testkit::db_name;
use bytes::Bytes;
use common::{
    Source, assert_equal, export_crashed_and_resumed, manifest, manifest_key, refused_on_each,
    small_stage, stage_imports_into_every_engine,
};

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
    let Some(source) = Source::new(test, "my", "tsv_src", Some(&options)).await else {
        return;
    };
    let (ext, format) = (".mytsv.zst", ChunkFormat::MyTsv);
    stage_imports_into_every_engine(&source, format, ext, "my", "tsv").await;
    source.drop().await;
}

/// A budgeted export killed after staging chunks but before recording them goes on from
/// its last recorded key and stages the very same bytes again; an import that follows it
/// into MariaDB (as it is) and an import into SQLite (decoded) verify equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budgeted_load_data_export_resumes_after_a_crash() {
    let test = "a_budgeted_load_data_export_resumes_after_a_crash";
    let Some(source) = Source::new(
        test,
        "my",
        "tsv_crash_src",
        Some(&FixtureOptions::default()),
    )
    .await
    else {
        return;
    };
    let src = &source.db;
    let stage = tempfile::tempdir().unwrap();
    let store = FsBlob::new(stage.path()).unwrap();
    let (crashed, index) = export_crashed_and_resumed(src, &store).await;
    assert_eq!(crashed.format, MYTSV_FORMAT);
    assert_eq!(index.format, MYTSV_FORMAT);
    for (dtag, dadmin) in source.engines.iter().filter(|(t, _)| *t != "pg") {
        let dname = db_name(&format!("tsv_crash_{dtag}"));
        let dst_url = server::create(dadmin, &dname).await.unwrap();
        let dst = Db::connect(&dst_url, true).await.unwrap();
        assert_eq!(dst.takes_as_is(ChunkFormat::MyTsv), *dtag == "my", "{dtag}");
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
    let Some(source) =
        Source::new(test, "my", "tsv_bad_src", Some(&FixtureOptions::default())).await
    else {
        return;
    };
    let table = "mdl_logstore_standard_log";
    for flip in [true, false] {
        let (_dir, store) = small_stage(&source.db).await;
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
        let tag = format!("tsv_bad_{flip}");
        let before = (table, m.chunks[0].rows);
        refused_on_each(&source, "pg", &tag, &store, before, |dtag, e| {
            match (flip, dtag, e) {
                (true, _, DbError::Corrupt(e)) => {
                    assert!(e.contains(&chunk.key) && e.contains("SHA-256"), "{e}");
                }
                (false, "my", DbError::Backend(e)) => {
                    assert!(e.contains("LOAD DATA took") && e.contains("warning"), "{e}");
                }
                (false, _, DbError::Corrupt(e)) => {
                    assert!(
                        e.contains(&format!("staged chunk {}: line 2: ", chunk.key))
                            && e.contains(" fields for "),
                        "{e}"
                    );
                }
                (_, _, e) => panic!("{dtag} (flip {flip}): {e:?}"),
            }
        })
        .await;
    }
    source.drop().await;
}

/// A staged chunk handed as it is to a target that does not take its format (here
/// SQLite, as a MySQL without `local_infile` would be) is refused before anything is
/// loaded, naming the table and the format.
#[tokio::test]
async fn a_chunk_is_not_loaded_as_it_is_where_its_format_is_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let url = a2a_core::Locator::new(format!("sqlite://{}/t.db", dir.path().display()));
    let dst = Db::connect(&url, true).await.unwrap();
    let t = a2a_dbmove::fixture::tables("mdl_", false)
        .into_iter()
        .find(|t| t.name == "mdl_config")
        .unwrap();
    dst.create_table(&t).await.unwrap();
    assert!(!dst.takes_as_is(ChunkFormat::MyTsv));
    let mut line = Vec::new();
    let row: Vec<a2a_dbmove::Value> = t
        .columns
        .iter()
        .map(|c| match c.ty {
            a2a_dbmove::ColType::Int { .. } => a2a_dbmove::Value::Int(1),
            _ => a2a_dbmove::Value::Text("x".into()),
        })
        .collect();
    a2a_dbmove::mytsv::line(&row, &mut line);
    let part = a2a_dbmove::Load {
        table: &t,
        rows: Vec::new(),
        raw: Some(a2a_dbmove::RawChunk {
            format: ChunkFormat::MyTsv,
            bytes: Bytes::from(line),
            rows: 1,
        }),
        ledger: None,
    };
    match dst.load_many(vec![part]).await {
        Err(DbError::Backend(e)) => {
            assert!(e.contains("mdl_config") && e.contains(MYTSV_FORMAT), "{e}");
        }
        r => panic!("{r:?}"),
    }
    let n = dst
        .query_i64("SELECT COUNT(*) FROM mdl_config", &[])
        .await
        .unwrap();
    assert_eq!(n, 0);
}

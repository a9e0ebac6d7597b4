//! PostgreSQL's binary `COPY` stage: decoded against a real server's values, imported into
//! every engine, resumed after a crash, and refused when damaged.

use a2a_core::{BlobKey, BlobStore, Locator};
use a2a_dbmove::fixture::{FixtureOptions, generate};
use a2a_dbmove::pgcopy::{Tuples, decode_key, decode_tuple};
use a2a_dbmove::server;
use a2a_dbmove::stage::{Manifest, PGCOPY_FORMAT};
use a2a_dbmove::{
    Budget, CopyLimits, Db, DbError, ImportOptions, NoProgress, Row, Value, begin_export, copy,
    export, export_part, import, seal_export, verify,
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

/// A test's engines (SQLite in a folder of its own) and a new PostgreSQL database.
struct Source {
    engines: Vec<(&'static str, Locator)>,
    admin: Locator,
    name: String,
    db: Db,
    _dir: tempfile::TempDir,
}

impl Source {
    /// The engines of `test` and a new PostgreSQL database named after `tag`, with the
    /// fixture of `options` when given; `None` without PostgreSQL (a SKIP line is printed).
    async fn new(test: &str, tag: &str, options: Option<&FixtureOptions>) -> Option<Source> {
        let dir = tempfile::tempdir().unwrap();
        let engines = engines(test, dir.path());
        let admin = engines.iter().find(|(t, _)| *t == "pg")?.1.clone();
        let name = db_name(tag);
        let url = server::create(&admin, &name).await.unwrap();
        let db = Db::connect(&url, false).await.unwrap();
        if let Some(options) = options {
            generate(&db, options).await.unwrap();
        }
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

async fn manifest(store: &FsBlob, table: &str) -> Manifest {
    let key = BlobKey::parse(&format!("dbmove/tables/{table}/manifest.json")).unwrap();
    serde_json::from_slice(&store.get(&key).await.unwrap()).unwrap()
}

/// Values made by the server itself, in every type the schema mapping reads from
/// PostgreSQL, decoded from its binary stream: the same rows as the text path gives, and
/// the values expected.
#[tokio::test]
async fn the_decoder_reads_what_the_server_writes() {
    let test = "the_decoder_reads_what_the_server_writes";
    let Some(source) = Source::new(test, "pgbin_types", None).await else {
        return;
    };
    let db = &source.db;
    db.exec(
        "CREATE TABLE t_types (id BIGSERIAL PRIMARY KEY, i2 SMALLINT, i4 INTEGER, i8 BIGINT, \
         f4 REAL, f8 DOUBLE PRECISION, n NUMERIC(30,10), n0 NUMERIC(38,0), b BOOLEAN, \
         vc VARCHAR(20), ch CHAR(4), tx TEXT, bin BYTEA, d DATE, ts TIMESTAMP)",
    )
    .await
    .unwrap();
    db.exec(
        "INSERT INTO t_types (i2, i4, i8, f4, f8, n, n0, b, vc, ch, tx, bin, d, ts) VALUES \
         (-32768, -2147483648, -9223372036854775808, 1.5, 0.1, \
          -12345678901234567890.0123456789, 99999999999999999999999999999999999999, true, \
          '', 'ab', 'Lluís Puig i Ferrer 🎓 \"\\ ', '\\x00ff0000'::bytea, '2024-02-29', \
          '2024-01-02 03:04:05.12'), \
         (32767, 2147483647, 9223372036854775807, 'Infinity', 'NaN', 0.0000000001, 0, false, \
          'àèìòù', NULL, E'line\\nnext\\ttab', ''::bytea, '0044-03-15 BC', \
          '1999-12-31 23:59:59.999999'), \
         (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
         (0, 0, 0, '-Infinity', -0.0, 0, 10000, NULL, 'x', 'abcd', '', NULL, '1970-01-01', \
          '0001-01-01 00:00:00.5 BC')",
    )
    .await
    .unwrap();
    let t = db
        .introspect("t_")
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "t_types")
        .unwrap();

    let (ttx, mut trx) = tokio::sync::mpsc::channel::<Tuples>(16);
    let n = db.stream_tuples(&t, true, 2, None, &ttx).await.unwrap();
    drop(ttx);
    let mut binary: Vec<Row> = Vec::new();
    let mut last_key = None;
    while let Some(tuples) = trx.recv().await {
        for tu in tuples.iter() {
            binary.push(decode_tuple(&t, tu).unwrap());
            last_key = Some(decode_key(&t, &t.pk_positions(), tu).unwrap());
        }
    }
    assert_eq!(n, 4, "two pages of two, and an empty third");
    assert_eq!(last_key, Some(vec![Value::Int(4)]));

    let (rtx, mut rrx) = tokio::sync::mpsc::channel::<Vec<Row>>(16);
    db.stream_rows(&t, true, 100, None, &rtx).await.unwrap();
    drop(rtx);
    let mut text: Vec<Row> = Vec::new();
    while let Some(rows) = rrx.recv().await {
        text.extend(rows);
    }
    // NaN is not equal to itself: compare through the canonical encoding.
    let canon = |rows: &[Row]| -> Vec<Vec<u8>> {
        rows.iter()
            .map(|r| {
                let mut out = Vec::new();
                for v in r {
                    v.canonical(&mut out);
                }
                out
            })
            .collect()
    };
    assert_eq!(canon(&binary), canon(&text), "{binary:#?}\n{text:#?}");

    let col = |name: &str| t.columns.iter().position(|c| c.name == name).unwrap();
    let r0 = &binary[0];
    assert_eq!(r0[col("i8")], Value::Int(i64::MIN));
    assert_eq!(r0[col("f4")], Value::Float(1.5));
    assert_eq!(
        r0[col("n")],
        Value::Decimal("-12345678901234567890.0123456789".into())
    );
    assert_eq!(
        r0[col("n0")],
        Value::Decimal("99999999999999999999999999999999999999".into())
    );
    assert_eq!(r0[col("vc")], Value::Text(String::new()), "empty, not NULL");
    assert_eq!(r0[col("ch")], Value::Text("ab  ".into()), "char pads");
    assert_eq!(
        r0[col("tx")],
        Value::Text("Lluís Puig i Ferrer 🎓 \"\\ ".into())
    );
    assert_eq!(r0[col("bin")], Value::Bytes(vec![0, 255, 0, 0]));
    assert_eq!(r0[col("d")], Value::Date("2024-02-29".into()));
    assert_eq!(
        r0[col("ts")],
        Value::Timestamp("2024-01-02 03:04:05.12".into())
    );
    let r1 = &binary[1];
    assert_eq!(r1[col("f4")], Value::Float(f64::INFINITY));
    assert!(matches!(r1[col("f8")], Value::Float(f) if f.is_nan()));
    assert_eq!(r1[col("n")], Value::Decimal("0.0000000001".into()));
    assert_eq!(r1[col("ch")], Value::Null);
    assert_eq!(r1[col("bin")], Value::Bytes(vec![]));
    assert_eq!(r1[col("d")], Value::Date("0044-03-15 BC".into()));
    assert!(binary[2][1..].iter().all(|v| *v == Value::Null));
    assert_eq!(binary[3][col("n0")], Value::Decimal("10000".into()));
    assert_eq!(
        binary[3][col("ts")],
        Value::Timestamp("0001-01-01 00:00:00.5 BC".into())
    );
    source.drop().await;
}

/// A PostgreSQL source stages binary chunks; they import into PostgreSQL as they are and
/// into MariaDB and SQLite decoded, and `copy` does the same in one pass; all verify
/// equal. A JSON Lines stage of the same source (as older versions wrote) still imports.
#[tokio::test]
async fn a_binary_stage_imports_into_every_engine() {
    let options = FixtureOptions {
        extras: true,
        ..FixtureOptions::default()
    };
    let test = "a_binary_stage_imports_into_every_engine";
    let Some(source) = Source::new(test, "pgbin_src", Some(&options)).await else {
        return;
    };
    let src = &source.db;
    for binary in [true, false] {
        let stage = tempfile::tempdir().unwrap();
        let store = FsBlob::new(stage.path()).unwrap();
        let limits = CopyLimits {
            native: binary,
            ..small_chunks()
        };
        let ex = export(src, &store, "mdl_", limits, 2, &NoProgress)
            .await
            .unwrap();
        assert!(ex.chunks > ex.tables as u64);
        let ext = if binary { ".pgcopy.zst" } else { ".jsonl.zst" };
        assert_eq!(files_ending(stage.path(), ext), ex.chunks, "{ext}");
        let m = manifest(&store, "mdl_user").await;
        assert_eq!(m.format == PGCOPY_FORMAT, binary);
        for (dtag, dadmin) in &source.engines {
            let dname = db_name(&format!("pgbin_{dtag}_{binary}"));
            let dst_url = server::create(dadmin, &dname).await.unwrap();
            let dst = Db::connect(&dst_url, true).await.unwrap();
            let jobs = ImportOptions {
                jobs: 2,
                ..ImportOptions::default()
            };
            let im = import(&dst, &store, &jobs, &NoProgress).await.unwrap();
            assert!(im.complete);
            assert_eq!(im.rows, ex.rows);
            let report = verify(src, &dst, "mdl_", &NoProgress).await.unwrap();
            let bad: Vec<_> = report.differing().collect();
            assert!(bad.is_empty(), "pg → {dtag} (binary {binary}): {bad:#?}");
            if binary {
                // The copy's pipeline: staged and loaded in one pass.
                let stage = tempfile::tempdir().unwrap();
                let store = FsBlob::new(stage.path()).unwrap();
                let (cx, _) = copy(src, &dst, &store, "mdl_", limits, 2, true, &NoProgress)
                    .await
                    .unwrap();
                assert_eq!(cx.rows, ex.rows);
                let report = verify(src, &dst, "mdl_", &NoProgress).await.unwrap();
                let bad: Vec<_> = report.differing().collect();
                assert!(bad.is_empty(), "copy pg → {dtag}: {bad:#?}");
            }
            drop(dst);
            server::drop(dadmin, &dname).await.unwrap();
        }
    }
    source.drop().await;
}

/// A budgeted export killed after staging chunks but before recording them goes on from
/// its last recorded key, stages the very same bytes again (the same SHA-256), and the
/// stage imports equal.
#[tokio::test]
async fn a_binary_export_resumes_after_a_crash() {
    let test = "a_binary_export_resumes_after_a_crash";
    let options = FixtureOptions::default();
    let Some(source) = Source::new(test, "pgbin_crash_src", Some(&options)).await else {
        return;
    };
    let (src, admin) = (&source.db, &source.admin);
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
    let key = BlobKey::parse(&format!("dbmove/tables/{big}/manifest.json")).unwrap();
    let after_first = store.get(&key).await.unwrap();
    assert!(!part(Some(2)).await.complete);
    let crashed = manifest(&store, &big).await;
    assert_eq!(crashed.chunks.len(), 3);
    assert_eq!(crashed.format, PGCOPY_FORMAT);
    // The crash: the second run's chunks are staged, its manifest never written.
    store.put(&key, after_first).await.unwrap();
    assert!(part(None).await.complete);
    let m = manifest(&store, &big).await;
    assert!(m.chunks.len() > 3, "{}", m.chunks.len());
    assert_eq!(
        m.chunks[..3],
        crashed.chunks[..],
        "the same chunks again, byte for byte"
    );
    // The other tables, then the seal.
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
    assert_eq!(index.format, PGCOPY_FORMAT);
    let dname = db_name("pgbin_crash_dst");
    let dst_url = server::create(admin, &dname).await.unwrap();
    let dst = Db::connect(&dst_url, false).await.unwrap();
    let im = import(&dst, &store, &ImportOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(im.rows, index.rows);
    let report = verify(src, &dst, "mdl_", &NoProgress).await.unwrap();
    let bad: Vec<_> = report.differing().collect();
    assert!(bad.is_empty(), "{bad:#?}");
    drop(dst);
    server::drop(admin, &dname).await.unwrap();
    source.drop().await;
}

/// One flipped bit in a staged binary chunk stops the import at that chunk, naming it and
/// its checksum, into PostgreSQL (which would take the stream as it is) and SQLite alike.
#[tokio::test]
async fn a_damaged_binary_chunk_is_caught_by_its_checksum() {
    let test = "a_damaged_binary_chunk_is_caught_by_its_checksum";
    let options = FixtureOptions::default();
    let Some(source) = Source::new(test, "pgbin_bad_src", Some(&options)).await else {
        return;
    };
    let src = &source.db;
    let stage = tempfile::tempdir().unwrap();
    let store = FsBlob::new(stage.path()).unwrap();
    export(src, &store, "mdl_", small_chunks(), 1, &NoProgress)
        .await
        .unwrap();
    let m = manifest(&store, "mdl_logstore_standard_log").await;
    let chunk = &m.chunks[1];
    let key = BlobKey::parse(&chunk.key).unwrap();
    let mut body = store.get(&key).await.unwrap().to_vec();
    let mid = body.len() / 2;
    body[mid] ^= 0x10;
    store.put(&key, Bytes::from(body)).await.unwrap();
    for (dtag, dadmin) in source.engines.iter().filter(|(t, _)| *t != "my") {
        let dname = db_name(&format!("pgbin_bad_{dtag}"));
        let dst_url = server::create(dadmin, &dname).await.unwrap();
        let dst = Db::connect(&dst_url, true).await.unwrap();
        let r = import(&dst, &store, &ImportOptions::default(), &NoProgress).await;
        match r {
            Err(DbError::Corrupt(e)) => {
                assert!(e.contains(&chunk.key) && e.contains("SHA-256"), "{e}");
                assert!(e.contains(&chunk.sha256), "{e}");
            }
            r => panic!("{dtag}: {r:?}"),
        }
        drop(dst);
        server::drop(dadmin, &dname).await.unwrap();
    }
    source.drop().await;
}

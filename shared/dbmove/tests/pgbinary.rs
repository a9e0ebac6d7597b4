//! PostgreSQL's binary `COPY` stage: decoded against a real server's values, imported into
//! every engine, resumed after a crash, and refused when damaged.

mod common;

use a2a_core::{BlobKey, BlobStore};
use a2a_dbmove::fixture::FixtureOptions;
use a2a_dbmove::pgcopy::{Tuples, decode_key, decode_tuple};
use a2a_dbmove::server;
use a2a_dbmove::stage::{ChunkFormat, PGCOPY_FORMAT};
use a2a_dbmove::{Db, DbError, ImportOptions, NoProgress, Row, Value, import, verify};
use a2a_local::FsBlob;
use a2a_testkit::db_name;
use bytes::Bytes;
use common::{
    Source, export_crashed_and_resumed, manifest, manifest_key, refused_on_each, small_stage,
    stage_imports_into_every_engine,
};

/// Values made by the server itself, in every type the schema mapping reads from
/// PostgreSQL, decoded from its binary stream: the same rows as the text path gives, and
/// the values expected.
#[tokio::test]
async fn the_decoder_reads_what_the_server_writes() {
    let test = "the_decoder_reads_what_the_server_writes";
    let Some(source) = Source::new(test, "pg", "pgbin_types", None).await else {
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
    let Some(source) = Source::new(test, "pg", "pgbin_src", Some(&options)).await else {
        return;
    };
    let (ext, format) = (".pgcopy.zst", ChunkFormat::PgCopy);
    stage_imports_into_every_engine(&source, format, ext, "pg", "pgbin").await;
    source.drop().await;
}

/// A budgeted export killed after staging chunks but before recording them goes on from
/// its last recorded key, stages the very same bytes again (the same SHA-256), and the
/// stage imports equal.
#[tokio::test]
async fn a_binary_export_resumes_after_a_crash() {
    let test = "a_binary_export_resumes_after_a_crash";
    let options = FixtureOptions::default();
    let Some(source) = Source::new(test, "pg", "pgbin_crash_src", Some(&options)).await else {
        return;
    };
    let (src, admin) = (&source.db, &source.admin);
    let stage = tempfile::tempdir().unwrap();
    let store = FsBlob::new(stage.path()).unwrap();
    let (crashed, index) = export_crashed_and_resumed(src, &store).await;
    assert_eq!(crashed.format, PGCOPY_FORMAT);
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

/// A binary chunk whose manifest counts one row more than it holds (its checksum
/// intact) is refused: PostgreSQL's `COPY` reports the rows it took, and the chunk rolls
/// back with its ledger row; SQLite's import decodes and counts them.
#[tokio::test]
async fn a_binary_chunk_its_manifest_miscounts_is_refused() {
    let test = "a_binary_chunk_its_manifest_miscounts_is_refused";
    let options = FixtureOptions::default();
    let Some(source) = Source::new(test, "pg", "pgbin_count_src", Some(&options)).await else {
        return;
    };
    let (_dir, store) = small_stage(&source.db).await;
    let table = "mdl_logstore_standard_log";
    let mut m = manifest(&store, table).await;
    m.chunks[1].rows += 1;
    let json = serde_json::to_vec_pretty(&m).unwrap();
    store
        .put(&manifest_key(table), Bytes::from(json))
        .await
        .unwrap();
    let (said, key) = (m.chunks[1].rows, &m.chunks[1].key);
    let before = (table, m.chunks[0].rows);
    refused_on_each(&source, "my", "pgbin_count", &store, before, |dtag, e| {
        let DbError::Corrupt(e) = e else {
            panic!("{dtag}: {e:?}")
        };
        let named = if dtag == "pg" {
            e.contains(table) && e.contains(&format!("COPY took {} rows", said - 1))
        } else {
            e.contains(key)
        };
        assert!(
            named && e.contains(&format!("manifest says {said}")),
            "{dtag}: {e}"
        );
    })
    .await;
    source.drop().await;
}

/// One flipped bit in a staged binary chunk stops the import at that chunk, naming it and
/// its checksum, into PostgreSQL (which would take the stream as it is) and SQLite alike.
#[tokio::test]
async fn a_damaged_binary_chunk_is_caught_by_its_checksum() {
    let test = "a_damaged_binary_chunk_is_caught_by_its_checksum";
    let options = FixtureOptions::default();
    let Some(source) = Source::new(test, "pg", "pgbin_bad_src", Some(&options)).await else {
        return;
    };
    let (_dir, store) = small_stage(&source.db).await;
    let m = manifest(&store, "mdl_logstore_standard_log").await;
    let chunk = &m.chunks[1];
    let key = BlobKey::parse(&chunk.key).unwrap();
    let mut body = store.get(&key).await.unwrap().to_vec();
    let mid = body.len() / 2;
    body[mid] ^= 0x10;
    store.put(&key, Bytes::from(body)).await.unwrap();
    let before = ("mdl_logstore_standard_log", m.chunks[0].rows);
    refused_on_each(&source, "my", "pgbin_bad", &store, before, |dtag, e| {
        let DbError::Corrupt(e) = e else {
            panic!("{dtag}: {e:?}")
        };
        assert!(e.contains(&chunk.key) && e.contains("SHA-256"), "{e}");
        assert!(e.contains(&chunk.sha256), "{e}");
    })
    .await;
    source.drop().await;
}

//! Library-level round trips on the real engines: fixture → export → import → verify,
//! for every pair among PostgreSQL, MariaDB and SQLite that the environment offers.

use a2a_core::{BlobStore, Locator};
use a2a_dbmove::engine::scratch;
use a2a_dbmove::fixture::{FixtureOptions, generate};
use a2a_dbmove::{CopyLimits, Db, DbError, ImportOptions, NoProgress, export, import, verify};
use a2a_local::FsBlob;

/// Admin URLs of the engines this machine offers: SQLite always.
fn engines(test: &str, dir: &std::path::Path) -> Vec<(&'static str, Locator)> {
    let mut out = vec![("lite", Locator::new(format!("sqlite://{}", dir.display())))];
    if let Some(u) = a2a_testkit::service_url("A2A_TEST_PG_URL", test) {
        out.push(("pg", Locator::new(u)));
    }
    if let Some(u) = a2a_testkit::service_url("A2A_TEST_MYSQL_URL", test) {
        out.push(("my", Locator::new(u)));
    }
    out
}

fn name(tag: &str) -> String {
    a2a_testkit::unique_name(&format!("a2a_{tag}")).replace('-', "_")
}

#[tokio::test]
async fn every_pair_round_trips_and_verifies_equal() {
    let dir = tempfile::tempdir().unwrap();
    let engines = engines("every_pair_round_trips_and_verifies_equal", dir.path());
    let options = FixtureOptions {
        extras: true,
        ..FixtureOptions::default()
    };
    for (stag, sadmin) in &engines {
        let sname = name(&format!("src_{stag}"));
        let src_url = scratch::create(sadmin, &sname).await.unwrap();
        let src = Db::connect(&src_url, true).await.unwrap();
        generate(&src, &options).await.unwrap();
        let stage = tempfile::tempdir().unwrap();
        let store = FsBlob::new(stage.path()).unwrap();
        let limits = CopyLimits {
            chunk_rows: 64,
            chunk_bytes: 16 << 10,
        };
        let ex = export(&src, &store, "mdl_", limits, 2, &NoProgress)
            .await
            .unwrap();
        assert!(
            ex.chunks > ex.tables as u64,
            "small limits make several chunks"
        );
        for (dtag, dadmin) in &engines {
            let dname = name(&format!("dst_{stag}_{dtag}"));
            let dst_url = scratch::create(dadmin, &dname).await.unwrap();
            let dst = Db::connect(&dst_url, true).await.unwrap();
            let jobs = ImportOptions {
                jobs: 2,
                ..ImportOptions::default()
            };
            let im = import(&dst, &store, &jobs, &NoProgress).await.unwrap();
            assert!(im.complete);
            assert_eq!(im.rows, ex.rows);
            let report = verify(&src, &dst, "mdl_", &NoProgress).await.unwrap();
            let bad: Vec<_> = report.differing().collect();
            assert!(bad.is_empty(), "{stag} → {dtag}: {bad:#?}");
            // Sequences run at least as far as the source's.
            let s_tables = src.introspect("mdl_").await.unwrap();
            let d_tables = dst.introspect("mdl_").await.unwrap();
            for st in s_tables.iter().filter(|t| t.next_id.is_some()) {
                let dt = d_tables.iter().find(|t| t.name == st.name).unwrap();
                if let (Some(s), Some(d)) = (st.next_id, dt.next_id) {
                    assert!(d >= s, "{stag} → {dtag} {}: next id {d} < {s}", st.name);
                }
                assert_eq!(dt.indexes.len(), st.indexes.len(), "{}", st.name);
            }
            // A second import into the same target is refused, and changes nothing.
            let again = import(&dst, &store, &ImportOptions::default(), &NoProgress).await;
            assert!(matches!(again, Err(DbError::NotEmpty(_))), "{again:?}");
            drop(dst);
            scratch::drop(dadmin, &dname).await.unwrap();
        }
        drop(src);
        scratch::drop(sadmin, &sname).await.unwrap();
        let _ = store.list("", None).await;
    }
}

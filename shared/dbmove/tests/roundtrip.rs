//! Library-level round trips on the real engines: fixture → export → import → verify,
//! for every pair among PostgreSQL, MariaDB and SQLite that the environment offers.

use a2a_core::BlobStore;
use a2a_dbmove::fixture::{FixtureOptions, Shape, generate};
use a2a_dbmove::server;
use a2a_dbmove::{
    CopyLimits, Db, DbError, ImportOptions, NoProgress, copy, export, import, verify,
};
use a2a_local::FsBlob;
use a2a_testkit::{db_name, engines};

/// `copy` of every `mdl_` table with the defaults and two jobs, staged in a new folder
/// (gone with the returned guard); the tables copied.
async fn copy_whole(src: &Db, dst: &Db) -> (tempfile::TempDir, usize) {
    let stage = tempfile::tempdir().unwrap();
    let store = FsBlob::new(stage.path()).unwrap();
    let limits = CopyLimits::default();
    let (ex, _) = copy(src, dst, &store, "mdl_", limits, 2, false, &NoProgress)
        .await
        .unwrap();
    (stage, ex.tables)
}

/// A site shaped like a real Moodle (556 tables, most nearly empty) copied from SQLite into
/// every server engine: the small tables go in groups (one transaction for many, created
/// with their indexes), the big ones alone; every table, index and sequence arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moodle_shaped_site_copies_whole_in_groups_of_small_tables() {
    let dir = tempfile::tempdir().unwrap();
    let engines = engines(
        "a_moodle_shaped_site_copies_whole_in_groups_of_small_tables",
        dir.path(),
    );
    let options = FixtureOptions {
        shape: Shape::Moodle,
        ..FixtureOptions::default()
    };
    let (_, lite) = &engines[0];
    let src_url = server::create(lite, &db_name("moodle_src")).await.unwrap();
    let src = Db::connect(&src_url, true).await.unwrap();
    generate(&src, &options).await.unwrap();
    let s_tables = src.introspect("mdl_").await.unwrap();
    assert!(s_tables.len() > 500, "{}", s_tables.len());
    for (tag, admin) in engines.iter().skip(1) {
        let name = db_name(&format!("moodle_{tag}"));
        let dst_url = server::create(admin, &name).await.unwrap();
        let dst = Db::connect(&dst_url, true).await.unwrap();
        let (_stage, tables) = copy_whole(&src, &dst).await;
        assert_eq!(tables, s_tables.len());
        let report = verify(&src, &dst, "mdl_", &NoProgress).await.unwrap();
        let bad: Vec<_> = report.differing().collect();
        assert!(bad.is_empty(), "lite → {tag}: {bad:#?}");
        let d_tables = dst.introspect("mdl_").await.unwrap();
        assert_eq!(d_tables.len(), s_tables.len(), "{tag}");
        for st in &s_tables {
            let dt = d_tables.iter().find(|t| t.name == st.name).unwrap();
            assert_eq!(dt.indexes.len(), st.indexes.len(), "{tag} {}", st.name);
            assert_eq!(dt.primary_key, st.primary_key, "{tag} {}", st.name);
            if let (Some(s), Some(d)) = (st.next_id, dt.next_id) {
                assert!(d >= s, "{tag} {}: next id {d} < {s}", st.name);
            }
        }
        assert!(
            !dst.list_tables("")
                .await
                .unwrap()
                .iter()
                .any(|n| n == a2a_dbmove::LEDGER_TABLE)
        );
        drop(dst);
        server::drop(admin, &name).await.unwrap();
    }
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
        let sname = db_name(&format!("src_{stag}"));
        let src_url = server::create(sadmin, &sname).await.unwrap();
        let src = Db::connect(&src_url, true).await.unwrap();
        generate(&src, &options).await.unwrap();
        let stage = tempfile::tempdir().unwrap();
        let store = FsBlob::new(stage.path()).unwrap();
        let limits = CopyLimits {
            chunk_rows: 64,
            chunk_bytes: 16 << 10,
            ..CopyLimits::default()
        };
        let ex = export(&src, &store, "mdl_", limits, 2, &NoProgress)
            .await
            .unwrap();
        assert!(
            ex.chunks > ex.tables as u64,
            "small limits make several chunks"
        );
        for (dtag, dadmin) in &engines {
            let dname = db_name(&format!("dst_{stag}_{dtag}"));
            let dst_url = server::create(dadmin, &dname).await.unwrap();
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
            if stag == dtag && *stag != "lite" {
                // Same engine, same types: each server sums its own rows; none is sent.
                let by_servers = report
                    .tables
                    .iter()
                    .filter(|t| {
                        t.source_checksum
                            .as_deref()
                            .is_some_and(|c| c.starts_with("server-sum:"))
                    })
                    .count();
                assert_eq!(by_servers, report.tables.len(), "{stag}: {report:#?}");
            }
            // Sequences run at least as far as the source's; every key and index arrives
            // (on PostgreSQL a big table's primary key is built after its rows).
            let s_tables = src.introspect("mdl_").await.unwrap();
            let d_tables = dst.introspect("mdl_").await.unwrap();
            for st in &s_tables {
                let dt = d_tables.iter().find(|t| t.name == st.name).unwrap();
                if let (Some(s), Some(d)) = (st.next_id, dt.next_id) {
                    assert!(d >= s, "{stag} → {dtag} {}: next id {d} < {s}", st.name);
                }
                assert_eq!(dt.indexes.len(), st.indexes.len(), "{}", st.name);
                assert_eq!(
                    dt.primary_key, st.primary_key,
                    "{stag} → {dtag} {}",
                    st.name
                );
                // Building them again (a rerun after a crash) keeps them as they are.
                dst.create_indexes(dt).await.unwrap();
            }
            let again_tables = dst.introspect("mdl_").await.unwrap();
            assert_eq!(again_tables, d_tables, "{stag} → {dtag}");
            // A second import into the same target is refused, and changes nothing.
            let again = import(&dst, &store, &ImportOptions::default(), &NoProgress).await;
            assert!(matches!(again, Err(DbError::NotEmpty(_))), "{again:?}");
            drop(dst);
            server::drop(dadmin, &dname).await.unwrap();
        }
        drop(src);
        server::drop(sadmin, &sname).await.unwrap();
        let _ = store.list("", None).await;
    }
}

/// The workflow's way: the export and the import split into parts of about equal size,
/// each part first stopped by its budget and then resumed, the parts run at once; the
/// target verifies equal, part by part too.
#[tokio::test]
async fn parts_run_at_once_resume_and_verify_equal() {
    use a2a_dbmove::plan::{balance, table_sizes};
    use a2a_dbmove::{
        Budget, begin_export, begin_import, check_import, export_part, finish_import, import_part,
        seal_export, verify_tables,
    };
    let dir = tempfile::tempdir().unwrap();
    let engines = engines("parts_run_at_once_resume_and_verify_equal", dir.path());
    let limits = CopyLimits {
        chunk_rows: 64,
        chunk_bytes: 16 << 10,
        ..CopyLimits::default()
    };
    for (i, (stag, sadmin)) in engines.iter().enumerate() {
        // Each engine exports to the next one (SQLite alone: to itself).
        let (dtag, dadmin) = &engines[(i + 1) % engines.len()];
        let sname = db_name(&format!("psrc_{stag}"));
        let src_url = server::create(sadmin, &sname).await.unwrap();
        let src = Db::connect(&src_url, true).await.unwrap();
        generate(&src, &FixtureOptions::default()).await.unwrap();
        let stage = tempfile::tempdir().unwrap();
        let store = FsBlob::new(stage.path()).unwrap();

        let sizes = table_sizes(&src, "mdl_").await.unwrap();
        let (index, tables) = begin_export(&src, &store, "mdl_").await.unwrap();
        assert_eq!(
            sizes.iter().map(|s| &s.0).collect::<Vec<_>>(),
            index.tables.iter().collect::<Vec<_>>(),
            "{stag}: a size for every table"
        );
        assert_eq!(tables.tables.len(), index.tables.len());
        assert_eq!(
            tables.sizes, sizes,
            "{stag}: the sizes staged are the source's"
        );
        assert!(sizes.iter().any(|s| s.1 > 0), "{stag}: {sizes:?}");
        let parts = balance(&sizes, 3);
        assert_eq!(parts.len(), 3);
        // One chunk per run: no part is done after its first run, and the seal says so.
        for p in &parts {
            let r = export_part(
                &src,
                &store,
                "mdl_",
                Some(p),
                limits,
                &Budget::new(Some(1), None),
                &NoProgress,
            )
            .await
            .unwrap();
            assert!(!r.complete, "{stag}: {p:?}");
        }
        let early = seal_export(&store).await;
        assert!(
            matches!(&early, Err(DbError::Input(m)) if m.contains("mdl_")),
            "{early:?}"
        );
        // The rest, every part at once, each on its own connection.
        let runs = parts.iter().map(|p| {
            let (store, src_url) = (&store, &src_url);
            async move {
                let db = Db::connect(src_url, false).await?;
                export_part(
                    &db,
                    store,
                    "mdl_",
                    Some(p),
                    limits,
                    &Budget::unlimited(),
                    &NoProgress,
                )
                .await
            }
        });
        for r in futures::future::join_all(runs).await {
            assert!(r.unwrap().complete);
        }
        let sealed = seal_export(&store).await.unwrap();
        assert_eq!(
            seal_export(&store).await.unwrap(),
            sealed,
            "sealing again keeps it"
        );

        let dname = db_name(&format!("pdst_{stag}_{dtag}"));
        let dst_url = server::create(dadmin, &dname).await.unwrap();
        let dst = Db::connect(&dst_url, true).await.unwrap();
        let begun = begin_import(&dst, &store, false).await.unwrap();
        assert!(!begun.resumed);
        assert!(
            begin_import(&dst, &store, false).await.unwrap().resumed,
            "beginning again finds it under way"
        );
        let first = import_part(
            &dst,
            &store,
            Some(&parts[0]),
            1,
            &Budget::new(Some(1), None),
            &NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(first.chunks, 1);
        assert!(!first.complete);
        let early = check_import(&dst, &store).await;
        assert!(matches!(early, Err(DbError::Input(_))), "{early:?}");
        let runs = parts.iter().map(|p| {
            let (store, dst_url) = (&store, &dst_url);
            async move {
                let db = Db::connect(dst_url, false).await?;
                import_part(&db, store, Some(p), 1, &Budget::unlimited(), &NoProgress).await
            }
        });
        let mut skipped = 0;
        for r in futures::future::join_all(runs).await {
            let r = r.unwrap();
            assert!(r.complete);
            skipped += r.chunks_skipped;
        }
        assert_eq!(skipped, 1, "the chunk of the first run is not loaded again");
        finish_import(&dst, &store).await.unwrap();
        let report = verify(&src, &dst, "mdl_", &NoProgress).await.unwrap();
        let bad: Vec<_> = report.differing().collect();
        assert!(bad.is_empty(), "{stag} → {dtag}: {bad:#?}");
        let part = verify_tables(&src, &dst, "mdl_", Some(&parts[1]), &NoProgress)
            .await
            .unwrap();
        assert_eq!(part.tables.len(), parts[1].len());
        assert!(part.equal);
        drop(dst);
        server::drop(dadmin, &dname).await.unwrap();
        drop(src);
        server::drop(sadmin, &sname).await.unwrap();
    }
}

/// One config setting read, set, inserted and deleted on every engine, idempotently, with
/// no other row touched.
#[tokio::test]
async fn a_config_setting_is_read_and_set_idempotently() {
    use a2a_dbmove::site::{MAINTENANCE_SETTING, config_value, set_config_value};
    let dir = tempfile::tempdir().unwrap();
    for (tag, admin) in engines("a_config_setting_is_read_and_set_idempotently", dir.path()) {
        let dname = db_name(&format!("cfg_{tag}"));
        let url = server::create(&admin, &dname).await.unwrap();
        let db = Db::connect(&url, true).await.unwrap();
        generate(&db, &FixtureOptions::default()).await.unwrap();
        let other = config_value(&db, "mdl_", "setting_1").await.unwrap();
        assert!(other.is_some(), "{tag}: the fixture has setting_1");
        let m = MAINTENANCE_SETTING;
        assert_eq!(config_value(&db, "mdl_", m).await.unwrap(), None, "{tag}");
        assert!(set_config_value(&db, "mdl_", m, Some("1")).await.unwrap());
        assert!(!set_config_value(&db, "mdl_", m, Some("1")).await.unwrap());
        assert_eq!(
            config_value(&db, "mdl_", m).await.unwrap().as_deref(),
            Some("1")
        );
        assert!(set_config_value(&db, "mdl_", m, Some("0")).await.unwrap());
        assert_eq!(
            config_value(&db, "mdl_", m).await.unwrap().as_deref(),
            Some("0")
        );
        assert!(set_config_value(&db, "mdl_", m, None).await.unwrap());
        assert!(!set_config_value(&db, "mdl_", m, None).await.unwrap());
        assert_eq!(config_value(&db, "mdl_", m).await.unwrap(), None, "{tag}");
        // A name with a quote is a value, bound, never SQL.
        let odd = "it's \"odd\"`";
        assert!(set_config_value(&db, "mdl_", odd, Some("x")).await.unwrap());
        assert_eq!(
            config_value(&db, "mdl_", odd).await.unwrap().as_deref(),
            Some("x")
        );
        assert_eq!(config_value(&db, "mdl_", "setting_1").await.unwrap(), other);
        drop(db);
        server::drop(&admin, &dname).await.unwrap();
    }
}

/// The servers' sums see two rows trade a value (a sum of hashes that mix a row's values
/// linearly would not), and the verify then names the first of them.
#[tokio::test]
async fn the_servers_sums_see_two_rows_trade_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let engines = engines("the_servers_sums_see_two_rows_trade_a_value", dir.path());
    for (tag, admin) in engines.iter().skip(1) {
        let (sname, dname) = (
            db_name(&format!("swap_s_{tag}")),
            db_name(&format!("swap_d_{tag}")),
        );
        let src = Db::connect(&server::create(admin, &sname).await.unwrap(), true)
            .await
            .unwrap();
        generate(&src, &FixtureOptions::default()).await.unwrap();
        let dst = Db::connect(&server::create(admin, &dname).await.unwrap(), true)
            .await
            .unwrap();
        let _stage = copy_whole(&src, &dst).await;
        let q = |s: &str| src.engine().quote(s);
        let set = |id: i64, name: &str| {
            format!(
                "UPDATE {} SET {} = '{name}' WHERE {} = {id}",
                q("mdl_user"),
                q("firstname"),
                q("id")
            )
        };
        for (db, (one, two)) in [(&src, ("Ada", "Bob")), (&dst, ("Ada", "Bob"))] {
            db.exec(&set(1, one)).await.unwrap();
            db.exec(&set(2, two)).await.unwrap();
        }
        let user = src
            .introspect("mdl_user")
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name == "mdl_user")
            .unwrap();
        let before = (
            src.digest(&user).await.unwrap(),
            dst.digest(&user).await.unwrap(),
        );
        assert!(before.0.is_some(), "{tag}: the server sums");
        assert_eq!(before.0, before.1, "{tag}: equal tables, equal sums");
        dst.exec(&set(1, "Bob")).await.unwrap();
        dst.exec(&set(2, "Ada")).await.unwrap();
        let after = dst.digest(&user).await.unwrap();
        assert_ne!(before.0, after, "{tag}: two rows traded a first name");
        let report = verify(&src, &dst, "mdl_", &NoProgress).await.unwrap();
        let bad: Vec<_> = report.differing().collect();
        assert_eq!(bad.len(), 1, "{tag}: {bad:#?}");
        assert_eq!(
            bad[0].difference.as_deref(),
            Some("row id=1 differs in column firstname"),
            "{tag}"
        );
        drop((src, dst));
        server::drop(admin, &sname).await.unwrap();
        server::drop(admin, &dname).await.unwrap();
    }
}

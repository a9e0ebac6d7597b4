//! Every statement shape A2A sends to MySQL/MariaDB, listed from a run of every operation
//! against the server, and none of them MariaDB-only (MySQL 8.0 and Aurora MySQL 3 must
//! accept them all). Each statement is also checked as it is sent, in every debug build.

use a2a_core::Locator;
use a2a_dbmove::engine::mysql_statement_shapes;
use a2a_dbmove::fixture::{FixtureOptions, generate};
use a2a_dbmove::site::{clone_database, replace_text};
use a2a_dbmove::{
    CopyLimits, Db, ImportOptions, NoProgress, copy, export, import, plan, server, verify,
};
use a2a_local::FsBlob;
use a2a_testkit::{db_name, service_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_sent_to_mysql_is_mysql_8_syntax() {
    let test = "every_statement_sent_to_mysql_is_mysql_8_syntax";
    let Some(url) = service_url("A2A_TEST_MYSQL_URL", test) else {
        return;
    };
    let admin = Locator::new(url);
    let dir = tempfile::tempdir().unwrap();
    let limits = CopyLimits {
        chunk_rows: 200,
        chunk_bytes: 1 << 20,
        ..CopyLimits::default()
    };
    let options = FixtureOptions {
        extras: true,
        ..FixtureOptions::default()
    };
    // MySQL as a source: generated, sized, exported, copied out and verified.
    let (src_name, dst_name, clone_name) = (db_name("m8_src"), db_name("m8_dst"), db_name("m8_cl"));
    let src_url = server::create(&admin, &src_name).await.unwrap();
    let src = Db::connect(&src_url, false).await.unwrap();
    generate(&src, &options).await.unwrap();
    assert!(!plan::table_sizes(&src, "mdl_").await.unwrap().is_empty());
    let stage = FsBlob::new(dir.path().join("stage")).unwrap();
    // Two connections: they share a snapshot taken under a global read lock.
    export(&src, &stage, "mdl_", limits, 2, &NoProgress)
        .await
        .unwrap();
    // MySQL as a target: imported (twice: the second finds the indexes there), copied into.
    let dst_url = server::create(&admin, &dst_name).await.unwrap();
    let dst = Db::connect(&dst_url, false).await.unwrap();
    import(&dst, &stage, &ImportOptions::default(), &NoProgress)
        .await
        .unwrap();
    for t in dst.introspect("mdl_").await.unwrap() {
        dst.create_indexes(&t).await.unwrap();
    }
    let report = verify(&src, &dst, "mdl_", &NoProgress).await.unwrap();
    assert!(report.differing().next().is_none());
    let lite = Db::connect(
        &Locator::new(format!("sqlite://{}/l.db", dir.path().display())),
        true,
    )
    .await
    .unwrap();
    let stage2 = FsBlob::new(dir.path().join("stage2")).unwrap();
    copy(&src, &lite, &stage2, "mdl_", limits, 1, false, &NoProgress)
        .await
        .unwrap();
    // EIX: a clone on the server, then the search-and-replace.
    drop(src);
    let clone_url = server::with_database(&admin, &clone_name);
    clone_database(&src_url, &clone_url).await.unwrap();
    let clone = Db::connect(&clone_url, false).await.unwrap();
    replace_text(&clone, "mdl_", &options.wwwroot, "https://new.example")
        .await
        .unwrap();
    drop((dst, clone));
    for name in [&src_name, &dst_name, &clone_name] {
        server::drop(&admin, name).await.unwrap();
    }

    let shapes = mysql_statement_shapes();
    eprintln!("statement shapes sent to MySQL ({}):", shapes.len());
    for s in &shapes {
        eprintln!("  {s}");
    }
    for expected in [
        "CREATE TABLE",
        "ALTER TABLE ADD INDEX",
        "INSERT INTO VALUES ?",
        "ALTER TABLE AUTO_INCREMENT",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        "FLUSH TABLES WITH READ LOCK",
        "LOAD DATA LOCAL INFILE",
    ] {
        assert!(
            shapes.iter().any(|s| s.starts_with(expected)),
            "no statement shaped {expected:?} was sent: {shapes:#?}"
        );
    }
    assert!(
        shapes
            .iter()
            .all(|s| !s.contains("IF NOT EXISTS") || s.starts_with("CREATE TABLE IF NOT EXISTS")),
        "{shapes:#?}"
    );
}

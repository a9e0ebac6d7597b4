//! Servers configured as in AWS (`.ci/tls-servers.sh`): a PostgreSQL that takes only TLS
//! and a SCRAM password, a MariaDB user with a password, and a MariaDB that takes only TLS
//! (and no `LOAD DATA LOCAL INFILE`).
//! A copy reaches them; a certificate from another CA, or no TLS at all, is refused with
//! the host named.

use a2a_core::Locator;
use a2a_dbmove::fixture::{FixtureOptions, generate};
use a2a_dbmove::{
    CopyLimits, Db, DbError, ImportOptions, NoProgress, copy, import, server, verify,
};
use a2a_local::FsBlob;
use a2a_testkit::{db_name, service_url};

/// `url` with its query replaced by `query`.
fn with_query(url: &str, query: &str) -> Locator {
    let base = url.split_once('?').map_or(url, |(b, _)| b);
    Locator::new(format!("{base}?{query}"))
}

/// A small site copied from SQLite into a fresh database on `admin`'s server, verified,
/// and dropped.
async fn copy_into(admin: &Locator, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let src_url = Locator::new(format!("sqlite://{}/src.db", dir.path().display()));
    let src = Db::connect(&src_url, true).await.unwrap();
    generate(&src, &FixtureOptions::default()).await.unwrap();
    let name = db_name(tag);
    let dst_url = server::create(admin, &name).await.unwrap();
    let dst = Db::connect(&dst_url, true).await.unwrap();
    let store = FsBlob::new(dir.path().join("stage")).unwrap();
    copy_verified(&src, &dst, &store, tag).await;
    drop(dst);
    server::drop(admin, &name).await.unwrap();
}

/// `src` copied into `dst` through `store` in chunks of 500 rows, whole, and verified
/// equal: the rows copied.
async fn copy_verified(src: &Db, dst: &Db, store: &FsBlob, tag: &str) -> u64 {
    let limits = CopyLimits {
        chunk_rows: 500,
        chunk_bytes: 1 << 20,
        ..CopyLimits::default()
    };
    let (ex, im) = copy(src, dst, store, "mdl_", limits, 2, false, &NoProgress)
        .await
        .unwrap();
    assert!(im.complete && im.rows == ex.rows && ex.rows > 0, "{tag}");
    assert_verified(src, dst, tag).await;
    ex.rows
}

/// `dst` verifies equal to `src`.
async fn assert_verified(src: &Db, dst: &Db, tag: &str) {
    let report = verify(src, dst, "mdl_", &NoProgress).await.unwrap();
    let bad: Vec<_> = report.differing().collect();
    assert!(bad.is_empty(), "{tag}: {bad:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_with_a_password_is_reached_and_a_copy_verifies() {
    let test = "a_tls_server_with_a_password_is_reached_and_a_copy_verifies";
    let Some(url) = service_url("A2A_TEST_PG_TLS_URL", test) else {
        return;
    };
    let admin = Locator::new(url.clone());
    let db = Db::connect(&admin, false).await.unwrap();
    let tls = db
        .query_i64(
            "SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(tls, 1, "the session is encrypted");
    drop(db);
    copy_into(&admin, "tls_pg").await;
    // `require` without a CA: encrypted, certificate not checked (libpq's meaning).
    Db::connect(&with_query(&url, "sslmode=require"), false)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_user_with_a_password_is_reached_and_a_copy_verifies() {
    let test = "a_mariadb_user_with_a_password_is_reached_and_a_copy_verifies";
    let Some(url) = service_url("A2A_TEST_MYSQL_PASSWORD_URL", test) else {
        return;
    };
    copy_into(&Locator::new(url), "pw_my").await;
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_naming_the_host() {
    let test = "a_certificate_of_another_ca_is_refused_naming_the_host";
    let (Some(url), Some(other), Some(password)) = (
        service_url("A2A_TEST_PG_TLS_URL", test),
        service_url("A2A_TEST_PG_TLS_OTHER_CA", test),
        service_url("A2A_TEST_PG_TLS_PASSWORD", test),
    ) else {
        return;
    };
    for (query, against) in [
        (
            format!("sslmode=verify-full&sslrootcert={other}"),
            other.as_str(),
        ),
        (
            format!("sslmode=verify-ca&sslrootcert={other}"),
            other.as_str(),
        ),
        ("sslmode=verify-full".to_owned(), "public web roots"),
    ] {
        let e = Db::connect(&with_query(&url, &query), false)
            .await
            .err()
            .unwrap_or_else(|| panic!("{query}: connected"));
        let m = e.to_string();
        assert!(matches!(e, DbError::Unreachable(_)), "{query}: {m}");
        assert!(
            m.contains("TLS certificate of the database server 127.0.0.1 does not verify"),
            "{query}: {m}"
        );
        assert!(
            m.contains(against) && m.contains("sslrootcert=PATH"),
            "{query}: {m}"
        );
        assert!(!m.contains(&password), "{query}: the password leaked: {m}");
    }
}

#[tokio::test]
async fn no_tls_is_refused_by_a_server_that_takes_only_tls() {
    let test = "no_tls_is_refused_by_a_server_that_takes_only_tls";
    let (Some(url), Some(password)) = (
        service_url("A2A_TEST_PG_TLS_URL", test),
        service_url("A2A_TEST_PG_TLS_PASSWORD", test),
    ) else {
        return;
    };
    let e = Db::connect(&with_query(&url, "sslmode=disable"), false)
        .await
        .err()
        .expect("connected without TLS");
    let m = e.to_string();
    assert!(matches!(e, DbError::Unreachable(_)), "{m}");
    assert!(
        m.contains("127.0.0.1 accepts only TLS connections") && m.contains("sslmode=require"),
        "{m}"
    );
    assert!(!m.contains(&password), "the password leaked: {m}");
}

#[tokio::test]
async fn a_mariadb_without_tls_is_refused_when_tls_is_required() {
    let test = "a_mariadb_without_tls_is_refused_when_tls_is_required";
    let Some(url) = service_url("A2A_TEST_MYSQL_URL", test) else {
        return;
    };
    let db = Db::connect(&Locator::new(url.clone()), false)
        .await
        .unwrap();
    let has_tls = db
        .query_i64(
            "SELECT COUNT(*) FROM (SELECT @@have_ssl AS s) x WHERE s = 'YES'",
            &[],
        )
        .await
        .unwrap();
    drop(db);
    let required = with_query(&url, "ssl-mode=REQUIRED");
    if has_tls == 1 {
        Db::connect(&required, false).await.unwrap();
        return;
    }
    // This server has no TLS: PREFERRED (the default) speaks plain text, REQUIRED refuses.
    Db::connect(&with_query(&url, "ssl-mode=PREFERRED"), false)
        .await
        .unwrap();
    let m = Db::connect(&required, false)
        .await
        .err()
        .expect("REQUIRED connected without TLS")
        .to_string();
    assert!(
        m.contains("server 127.0.0.1 does not speak TLS") && m.contains("ssl-mode=PREFERRED"),
        "{m}"
    );
}

/// The MariaDB of `.ci/tls-servers.sh` that takes only TLS: `VERIFY_IDENTITY` with its CA
/// checks the chain and the name (127.0.0.1 is in the certificate) and a copy verifies; the
/// CA of another is refused, naming the host and the bundle; and a session without TLS is
/// refused by the server, which the message says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_that_takes_only_tls_is_verified_by_name_and_another_ca_is_refused() {
    let test = "a_mariadb_that_takes_only_tls_is_verified_by_name_and_another_ca_is_refused";
    let (Some(url), Some(other), Some(password)) = (
        service_url("A2A_TEST_MYSQL_TLS_URL", test),
        service_url("A2A_TEST_PG_TLS_OTHER_CA", test),
        service_url("A2A_TEST_PG_TLS_PASSWORD", test),
    ) else {
        return;
    };
    assert!(url.contains("ssl-mode=VERIFY_IDENTITY"), "{url}");
    let admin = Locator::new(url.clone());
    let db = Db::connect(&admin, false).await.unwrap();
    let cipher = db
        .query_i64(
            "SELECT COUNT(*) FROM information_schema.SESSION_STATUS \
             WHERE VARIABLE_NAME = 'Ssl_cipher' AND VARIABLE_VALUE <> ''",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(cipher, 1, "the session is encrypted");
    drop(db);
    copy_into(&admin, "tls_my").await;
    for mode in ["VERIFY_IDENTITY", "VERIFY_CA"] {
        let e = Db::connect(
            &with_query(&url, &format!("ssl-mode={mode}&ssl-ca={other}")),
            false,
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("{mode} with another CA: connected"));
        let m = e.to_string();
        assert!(matches!(e, DbError::Unreachable(_)), "{mode}: {m}");
        assert!(
            m.contains("TLS certificate of the database server 127.0.0.1 does not verify")
                && m.contains(other.as_str())
                && m.contains("ssl-ca=PATH"),
            "{mode}: {m}"
        );
        assert!(!m.contains(&password), "{mode}: the password leaked: {m}");
    }
    // Without TLS, MariaDB refuses the login itself (it answers "access denied", not why).
    let e = Db::connect(&with_query(&url, "ssl-mode=DISABLED"), false)
        .await
        .err()
        .expect("connected without TLS");
    let m = e.to_string();
    assert!(matches!(e, DbError::Unreachable(_)), "{m}");
    assert!(m.contains("127.0.0.1"), "{m}");
    assert!(!m.contains(&password), "the password leaked: {m}");
}

/// The MariaDB of `.ci/tls-servers.sh` runs without `LOAD DATA LOCAL INFILE`, as MySQL 8
/// does by default: a MariaDB site's stage (`LOAD DATA` text) goes into it through
/// multi-row `INSERT`s, by a copy and by an import of the stage the copy left, and both
/// verify equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_without_local_infile_takes_a_mariadb_stage_by_insert() {
    let test = "a_mariadb_without_local_infile_takes_a_mariadb_stage_by_insert";
    let (Some(shared), Some(url)) = (
        service_url("A2A_TEST_MYSQL_URL", test),
        service_url("A2A_TEST_MYSQL_TLS_URL", test),
    ) else {
        return;
    };
    let (shared, admin) = (Locator::new(shared), Locator::new(url));
    let db = Db::connect(&admin, false).await.unwrap();
    let infile = db.query_i64("SELECT @@local_infile", &[]).await.unwrap();
    assert_eq!(infile, 0, "the server takes no LOAD DATA LOCAL INFILE");
    drop(db);
    let sname = db_name("noinfile_src");
    let src_url = server::create(&shared, &sname).await.unwrap();
    let src = Db::connect(&src_url, true).await.unwrap();
    generate(&src, &FixtureOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlob::new(dir.path()).unwrap();
    let (copied, imported) = (db_name("noinfile_copy"), db_name("noinfile_import"));
    let dst = Db::connect(&server::create(&admin, &copied).await.unwrap(), true)
        .await
        .unwrap();
    let rows = copy_verified(&src, &dst, &store, "copy").await;
    let index = a2a_dbmove::mover::read_index(&store).await.unwrap();
    assert_eq!(
        index.format,
        a2a_dbmove::stage::MYTSV_FORMAT,
        "a LOAD DATA stage"
    );
    let again = Db::connect(&server::create(&admin, &imported).await.unwrap(), true)
        .await
        .unwrap();
    let r = import(&again, &store, &ImportOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.rows, rows);
    assert_verified(&src, &again, "import").await;
    drop((src, dst, again));
    server::drop(&admin, &copied).await.unwrap();
    server::drop(&admin, &imported).await.unwrap();
    server::drop(&shared, &sname).await.unwrap();
}

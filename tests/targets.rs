//! Targets as they are in AWS: `a2a demo --db URL` against a PostgreSQL that takes only TLS
//! and a SCRAM password (`.ci/tls-postgres.sh`), and against a MariaDB user with a
//! password. Every school ends `active`, and the password is in no output and in no file
//! of the home but the secret store's: the targets' is filled in from the shard at each
//! connection, and the sources', which the demo's list names by a secret (`secret:NAME`),
//! from the secret store.

mod common;

use std::path::Path;

use common::{a2a, files_containing, text};

/// The password of a `scheme://user:password@host/…` URL.
fn password_of(url: &str) -> String {
    let after = url.split_once("://").map_or("", |x| x.1);
    let userinfo = after.split_once('@').map_or("", |x| x.0);
    let password = userinfo.split_once(':').map_or("", |x| x.1);
    assert!(password.len() >= 8, "the test URL needs a real password");
    password.to_owned()
}

fn demo_reaches_every_school_and_keeps_no_password(var: &str, test: &str) {
    let Some(url) = a2a_testkit::service_url(var, test) else {
        return;
    };
    let password = password_of(&url);
    let home = tempfile::tempdir().unwrap();
    let run = a2a(
        home.path(),
        &["demo", "--migrations", "2", "--eix", "3", "--db", &url],
    );
    let status = a2a(home.path(), &["status", "--json"]);
    for (what, o) in [("demo", &run), ("status", &status)] {
        for (stream, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            assert!(
                !String::from_utf8_lossy(bytes).contains(&password),
                "{test}: the password is in the {what}'s {stream}"
            );
        }
    }
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("5 of 5 instances active"),
        "{}",
        text(&run)
    );
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["instances"], 5, "{v}");
    assert_eq!(v["by_status"]["active"], 5, "{v}");
    let secrets = home.path().join("secrets");
    let leaks: Vec<String> = files_containing(home.path(), password.as_bytes())
        .into_iter()
        .filter(|f| !Path::new(f).starts_with(&secrets))
        .collect();
    assert!(
        leaks.is_empty(),
        "{test}: the password is in files of the home: {leaks:#?}"
    );
}

#[test]
fn a_demo_on_a_tls_postgres_with_a_password_ends_active_and_leaks_no_password() {
    demo_reaches_every_school_and_keeps_no_password(
        "A2A_TEST_PG_TLS_URL",
        "a_demo_on_a_tls_postgres_with_a_password_ends_active_and_leaks_no_password",
    );
}

#[test]
fn a_demo_on_a_mariadb_user_with_a_password_ends_active_and_leaks_no_password() {
    demo_reaches_every_school_and_keeps_no_password(
        "A2A_TEST_MYSQL_PASSWORD_URL",
        "a_demo_on_a_mariadb_user_with_a_password_ends_active_and_leaks_no_password",
    );
}

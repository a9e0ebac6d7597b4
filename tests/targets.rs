//! Targets as they are in AWS: `a2a demo --db URL` against a PostgreSQL that takes only TLS
//! and a SCRAM password (`.ci/tls-postgres.sh`), and against a MariaDB user with a
//! password. Every school ends `active`, and the password is not in the output. It is
//! still in two files of the home, both the migrated schools' *source* URLs as the demo's
//! school list names them (issue 17, item 5: source credentials are not yet moved out of
//! the list and the instance record); the test that greps the whole home is ignored
//! until that lands.

mod common;

use std::path::Path;

use common::{a2a, text};

/// The password of a `scheme://user:password@host/…` URL.
fn password_of(url: &str) -> String {
    let after = url.split_once("://").map_or("", |x| x.1);
    let userinfo = after.split_once('@').map_or("", |x| x.0);
    let password = userinfo.split_once(':').map_or("", |x| x.1);
    assert!(password.len() >= 8, "the test URL needs a real password");
    password.to_owned()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// Files that still hold the source URL with its password (issue 17, item 5): the school
/// list the demo writes, and the state (the instance record's `source.db`).
const SOURCE_URL_KEPT_IN: &[&str] = &["/state.db", "/demo/schools.csv"];

/// Whether every occurrence of `password` in `bytes` is in the URL of a demo source
/// database (`…:PASSWORD@host:port/a2a_demo_src_…`), never of a target or a template.
fn only_in_source_urls(bytes: &[u8], password: &[u8]) -> bool {
    (0..bytes.len().saturating_sub(password.len()))
        .filter(|&i| bytes[i..].starts_with(password))
        .all(|i| {
            let rest = &bytes[i + password.len()..];
            let url_end = rest
                .iter()
                .position(|&b| b == b'"' || b == b',' || b == b'\n')
                .unwrap_or(rest.len());
            rest.starts_with(b"@")
                && rest[..url_end]
                    .windows(b"/a2a_demo_src_".len())
                    .any(|w| w == b"/a2a_demo_src_")
        })
}

fn demo_reaches_every_school_and_keeps_no_password(var: &str, test: &str, whole_home: bool) {
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
    let leaks: Vec<String> = files_containing(home.path(), password.as_bytes())
        .into_iter()
        .filter(|f| {
            whole_home
                || !SOURCE_URL_KEPT_IN.iter().any(|k| f.ends_with(k))
                || !only_in_source_urls(&std::fs::read(f).unwrap(), password.as_bytes())
        })
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
        false,
    );
}

#[test]
fn a_demo_on_a_mariadb_user_with_a_password_ends_active_and_leaks_no_password() {
    demo_reaches_every_school_and_keeps_no_password(
        "A2A_TEST_MYSQL_PASSWORD_URL",
        "a_demo_on_a_mariadb_user_with_a_password_ends_active_and_leaks_no_password",
        false,
    );
}

#[test]
#[ignore = "issue 17 item 5: the school list and the instance record keep the source URL's password"]
fn no_file_of_the_home_holds_the_password() {
    demo_reaches_every_school_and_keeps_no_password(
        "A2A_TEST_PG_TLS_URL",
        "no_file_of_the_home_holds_the_password",
        true,
    );
}

//! Targets as they are in AWS, against a PostgreSQL that takes only TLS and a SCRAM
//! password (`.ci/tls-servers.sh`) and a MariaDB user with a password: `a2a demo --db URL`,
//! and `a2a run` with a `[site]` whose shard, template and source need passwords. Every
//! school ends `active`, and the password is in no output, no log line and no file of the
//! home but the secret store's (and the operator's `a2a.toml`): the targets' is filled in
//! from the shard at each connection, and the sources', moved to the secret store at
//! intake (or named by the list as `secret:NAME`), from the secret store. Also: a URL that
//! names the CA bundle (`sslrootcert=bundle`) with `A2A_DB_CA_BUNDLE`.

mod common;

use std::path::Path;

use a2a_dbmove::server;
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

/// `a2a run` with a `[site]` whose shard and template are databases on a server that takes
/// only a password (and, for PostgreSQL, only TLS), with a migration whose source URL carries
/// the password too: both schools end `active`, and the password is in no output, no log
/// line (`-vv`), no history event and no state record; the only files of the home that hold
/// it are the secret store's and the operator's own `a2a.toml`.
async fn run_with_a_site_that_needs_passwords(var: &str, test: &str) {
    let Some(url) = a2a_testkit::service_url(var, test) else {
        return;
    };
    let password = password_of(&url);
    let admin = a2a_core::Locator::new(url.clone());
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display().to_string();
    // Codes no other test uses, so their targets `a2a_<code>` are this test's alone.
    let (migrate, provision) = ("25017171", "43017172");
    for code in [migrate, provision] {
        server::drop(&admin, &format!("a2a_{code}")).await.unwrap();
    }
    let tpl_name = a2a_testkit::db_name("t17_tpl");
    let src_name = a2a_testkit::db_name("t17_src");
    let tpl = server::create(&admin, &tpl_name).await.unwrap();
    let src = server::create(&admin, &src_name).await.unwrap();
    let mut outputs = Vec::new();
    for (db, files) in [(&tpl, "tpl-moodledata"), (&src, "src-moodledata")] {
        let o = a2a(
            work.path(),
            &[
                "fixture",
                "site",
                "--db",
                db.expose(),
                "--files",
                &format!("{w}/{files}"),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        outputs.push(("fixture", o));
    }
    let toml = common::site_toml(&url, tpl.expose(), &w);
    std::fs::write(home.path().join("a2a.toml"), &toml).unwrap();
    let list = common::pair_list(
        work.path(),
        (migrate, "ins-exemple-t17", src.expose()),
        (provision, "escola-nova-t17"),
    );
    let run = a2a(
        home.path(),
        &["-vv", "run", list.to_str().unwrap(), "--clock", "virtual"],
    );
    let status = a2a(home.path(), &["status", "--json"]);
    outputs.push(("run", run));
    outputs.push(("status", status));
    for (what, o) in &outputs {
        for (stream, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            assert!(
                !String::from_utf8_lossy(bytes).contains(&password),
                "{test}: the password is in the {what}'s {stream}"
            );
        }
    }
    let (run, status) = (&outputs[2].1, &outputs[3].1);
    assert_eq!(run.status.code(), Some(0), "{}", text(run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("2 of 2 schools active"),
        "{}",
        text(run)
    );
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["by_status"]["active"], 2, "{v}");
    // The run did log (-vv): the grep above read real log lines.
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("dispatched"),
        "{}",
        text(run)
    );
    let secrets = home.path().join("secrets");
    let config = home.path().join("a2a.toml");
    let leaks: Vec<String> = files_containing(home.path(), password.as_bytes())
        .into_iter()
        .filter(|f| !Path::new(f).starts_with(&secrets) && Path::new(f) != config)
        .collect();
    assert!(
        leaks.is_empty(),
        "{test}: the password is in files of the home: {leaks:#?}"
    );
    // The source password went to the secret store, and the state names it.
    let shown = a2a(
        home.path(),
        &["secret", "show", migrate, "--what", "source-db-password"],
    );
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown));
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), password);
    for code in [migrate, provision] {
        server::drop(&admin, &format!("a2a_{code}")).await.unwrap();
    }
    for name in [&tpl_name, &src_name] {
        server::drop(&admin, name).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_a_site_on_a_tls_postgres_with_passwords_ends_active_and_leaks_none() {
    run_with_a_site_that_needs_passwords(
        "A2A_TEST_PG_TLS_URL",
        "a_run_with_a_site_on_a_tls_postgres_with_passwords_ends_active_and_leaks_none",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_a_site_on_a_mariadb_user_with_passwords_ends_active_and_leaks_none() {
    run_with_a_site_that_needs_passwords(
        "A2A_TEST_MYSQL_PASSWORD_URL",
        "a_run_with_a_site_on_a_mariadb_user_with_passwords_ends_active_and_leaks_none",
    )
    .await;
}

/// A URL that names the CA bundle with `sslrootcert=bundle` instead of a path, as the
/// Lambdas' `SiteConfig` does, works on this machine with `A2A_DB_CA_BUNDLE`: the right
/// bundle verifies the TLS PostgreSQL; another CA's is refused (exit 3) naming the host and
/// the bundle; and without one, the URL is refused (exit 2) saying how to give it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_naming_the_bundle_uses_a2a_db_ca_bundle() {
    let test = "a_url_naming_the_bundle_uses_a2a_db_ca_bundle";
    let (Some(url), Some(ca), Some(other)) = (
        a2a_testkit::service_url("A2A_TEST_PG_TLS_URL", test),
        a2a_testkit::service_url("A2A_TEST_PG_TLS_CA", test),
        a2a_testkit::service_url("A2A_TEST_PG_TLS_OTHER_CA", test),
    ) else {
        return;
    };
    let password = password_of(&url);
    let admin = a2a_core::Locator::new(url.clone());
    let name = a2a_testkit::db_name("t17_bundle");
    let db = server::create(&admin, &name).await.unwrap();
    let bundled = db
        .expose()
        .replace(&format!("sslrootcert={ca}"), "sslrootcert=bundle");
    assert!(bundled.ends_with("sslrootcert=bundle"), "{bundled}");
    let home = tempfile::tempdir().unwrap();
    let verify = |bundle: Option<&str>| {
        let mut c = common::command(home.path());
        c.env_remove("A2A_DB_CA_BUNDLE");
        if let Some(b) = bundle {
            c.env("A2A_DB_CA_BUNDLE", b);
        }
        c.args(["db", "verify", "--from", &bundled, "--to", &bundled])
            .output()
            .unwrap()
    };
    let ok = verify(Some(&ca));
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let wrong = verify(Some(&other));
    assert_eq!(wrong.status.code(), Some(3), "{}", text(&wrong));
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("127.0.0.1 does not verify") && said.contains("other-ca.pem"),
        "{said}"
    );
    let none = verify(None);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    assert!(text(&none).contains("A2A_DB_CA_BUNDLE"), "{}", text(&none));
    for o in [&ok, &wrong, &none] {
        assert!(!text(o).contains(&password), "{}", text(o));
    }
    server::drop(&admin, &name).await.unwrap();
}

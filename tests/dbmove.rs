//! End-to-end tests of `a2a db …` on the machine's PostgreSQL and MariaDB and on SQLite,
//! in every pair: fixture → copy → verify equal; a mutated row is named; an interrupted
//! import resumes without duplicates; an unmappable type and an unreachable server are
//! clear errors with the right exit codes.

mod common;
use common::{a2a, text};

use std::process::Output;

use a2a_core::Locator;
use a2a_dbmove::Db;
use a2a_dbmove::server;
use a2a_testkit::{db_name, engines};
use serde_json::Value;

fn ok_json(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    serde_json::from_slice(&o.stdout).expect("stdout is one JSON object")
}

/// A fresh scratch database, dropped again at the end of the test.
struct Scratch {
    admin: Locator,
    name: String,
    url: Locator,
}

impl Scratch {
    async fn new(admin: &Locator, tag: &str) -> Scratch {
        let name = db_name(tag);
        let url = server::create(admin, &name)
            .await
            .expect("scratch database");
        Scratch {
            admin: admin.clone(),
            name,
            url,
        }
    }

    /// A name and URL for a database that does not exist yet (a clone's target).
    fn unborn(admin: &Locator, tag: &str) -> Scratch {
        let name = db_name(tag);
        let url = server::with_database(admin, &name);
        Scratch {
            admin: admin.clone(),
            name,
            url,
        }
    }

    fn url(&self) -> &str {
        self.url.expose()
    }

    async fn drop(self) {
        server::drop(&self.admin, &self.name).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_copies_verifies_names_a_mutated_row_and_resumes_an_import() {
    let test = "every_pair_copies_verifies_names_a_mutated_row_and_resumes_an_import";
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let engines = engines(test, dir.path());
    for (stag, sadmin) in &engines {
        let src = Scratch::new(sadmin, &format!("s_{stag}")).await;
        let made = a2a(&home, &["fixture", "site", "--db", src.url(), "--extras"]);
        assert_eq!(made.status.code(), Some(0), "{}", text(&made));

        for (dtag, dadmin) in &engines {
            let pair = format!("{stag} → {dtag}");
            // Copy, verified in the same run and again on its own.
            let dst = Scratch::new(dadmin, &format!("d_{stag}_{dtag}")).await;
            let copy = ok_json(&a2a(
                &home,
                &[
                    "db",
                    "copy",
                    "--from",
                    src.url(),
                    "--to",
                    dst.url(),
                    "--verify",
                    "--chunk-rows",
                    "50",
                    "--json",
                ],
            ));
            assert_eq!(copy["verify"]["equal"], true, "{pair}: {copy:#}");
            assert!(copy["export"]["chunks"].as_u64().unwrap() > 18, "{pair}");
            let verify = a2a(
                &home,
                &["db", "verify", "--from", src.url(), "--to", dst.url()],
            );
            assert_eq!(verify.status.code(), Some(0), "{pair}: {}", text(&verify));

            // Copying again onto it is refused, and changes nothing.
            let again = a2a(
                &home,
                &["db", "copy", "--from", src.url(), "--to", dst.url()],
            );
            assert_eq!(again.status.code(), Some(2), "{pair}: {}", text(&again));
            assert!(text(&again).contains("already holds"), "{pair}");

            // One changed row: verify names its table and key.
            let target = Db::connect(&dst.url, false).await.unwrap();
            let q = |s: &str| target.engine().quote(s);
            target
                .exec(&format!(
                    "UPDATE {} SET {} = {} WHERE {} = 6",
                    q("mdl_user"),
                    q("firstname"),
                    q("lastname"),
                    q("id")
                ))
                .await
                .unwrap();
            drop(target);
            let differs = a2a(
                &home,
                &["db", "verify", "--from", src.url(), "--to", dst.url()],
            );
            assert_eq!(differs.status.code(), Some(1), "{pair}: {}", text(&differs));
            let out = String::from_utf8_lossy(&differs.stdout);
            assert!(
                out.contains("differs mdl_user: row id=6 differs in column firstname"),
                "{pair}: {out}"
            );
            assert!(out.contains("1 of"), "{pair}: only mdl_user differs: {out}");
            dst.drop().await;

            // An import stopped after 3 chunks, then rerun: equal, and no row twice.
            let dst = Scratch::new(dadmin, &format!("k_{stag}_{dtag}")).await;
            let stage = dir.path().join(format!("stage-{stag}-{dtag}"));
            let stage = stage.to_str().unwrap();
            let ex = ok_json(&a2a(
                &home,
                &[
                    "db",
                    "export",
                    "--from",
                    src.url(),
                    "--stage",
                    stage,
                    "--chunk-rows",
                    "50",
                    "--json",
                ],
            ));
            let first = ok_json(&a2a(
                &home,
                &[
                    "db",
                    "import",
                    "--stage",
                    stage,
                    "--to",
                    dst.url(),
                    "--max-chunks",
                    "3",
                    "--json",
                ],
            ));
            assert_eq!(first["chunks"], 3, "{pair}");
            assert_eq!(first["complete"], false, "{pair}");
            // Another export cannot be resumed into it: refused, nothing changed.
            let other = dir.path().join(format!("other-{stag}-{dtag}"));
            let other = other.to_str().unwrap();
            ok_json(&a2a(
                &home,
                &[
                    "db",
                    "export",
                    "--from",
                    src.url(),
                    "--stage",
                    other,
                    "--json",
                ],
            ));
            let wrong = a2a(
                &home,
                &["db", "import", "--stage", other, "--to", dst.url()],
            );
            assert_eq!(wrong.status.code(), Some(2), "{pair}: {}", text(&wrong));
            assert!(text(&wrong).contains("another export"), "{pair}");
            let second = ok_json(&a2a(
                &home,
                &[
                    "db",
                    "import",
                    "--stage",
                    stage,
                    "--to",
                    dst.url(),
                    "--json",
                ],
            ));
            assert_eq!(second["resumed"], true, "{pair}");
            assert_eq!(second["chunks_skipped"], 3, "{pair}");
            assert_eq!(second["complete"], true, "{pair}");
            assert_eq!(
                first["rows"].as_u64().unwrap() + second["rows"].as_u64().unwrap(),
                ex["rows"].as_u64().unwrap(),
                "{pair}: every row loaded exactly once"
            );
            let verify = ok_json(&a2a(
                &home,
                &[
                    "db",
                    "verify",
                    "--from",
                    src.url(),
                    "--to",
                    dst.url(),
                    "--json",
                ],
            ));
            assert_eq!(verify["equal"], true, "{pair}: {verify:#}");
            dst.drop().await;
        }
        src.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmappable_type_is_named_and_nothing_is_written() {
    let test = "an_unmappable_type_is_named_and_nothing_is_written";
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    for (tag, admin) in engines(test, dir.path()) {
        let src = Scratch::new(&admin, &format!("u_{tag}")).await;
        let db = Db::connect(&src.url, true).await.unwrap();
        let (ty, q) = match tag {
            "pg" => ("POINT", db.engine().quote("shape")),
            "my" => ("SET('a','b')", db.engine().quote("shape")),
            _ => ("", db.engine().quote("shape")),
        };
        db.exec(&format!(
            "CREATE TABLE {} ({} BIGINT PRIMARY KEY, {q} {ty})",
            db.engine().quote("mdl_weird"),
            db.engine().quote("id")
        ))
        .await
        .unwrap();
        drop(db);
        let target = dir.path().join(format!("target-{tag}.db"));
        let to = format!("sqlite://{}", target.display());
        let stage = dir.path().join(format!("stage-u-{tag}"));
        let out = a2a(
            &home,
            &[
                "db",
                "copy",
                "--from",
                src.url(),
                "--to",
                &to,
                "--stage",
                stage.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{tag}: {}", text(&out));
        assert!(
            text(&out).contains("mdl_weird.shape"),
            "{tag}: {}",
            text(&out)
        );
        assert!(!target.exists(), "{tag}: the target must not be created");
        assert!(!stage.exists(), "{tag}: nothing staged");
        src.drop().await;
    }
}

#[test]
fn an_unreachable_database_is_exit_3_naming_the_host_and_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // An empty file is an empty SQLite database: the reachable side of each pair.
    std::fs::write(dir.path().join("x.db"), b"").unwrap();
    let good = format!("sqlite://{}", dir.path().join("x.db").display());
    for url in [
        "postgres://moodle:Sup3rS3cret@127.0.0.1:1/m08012345",
        "mysql://usu1:Sup3rS3cret@127.0.0.1:1/m08012345",
    ] {
        for args in [
            vec!["db", "copy", "--from", url, "--to", &good],
            vec!["db", "verify", "--from", &good, "--to", url],
        ] {
            let out = a2a(&home, &args);
            let all = text(&out);
            assert_eq!(out.status.code(), Some(3), "{url}: {all}");
            assert!(all.contains("127.0.0.1:1"), "the host is named: {all}");
            assert!(
                !all.contains("Sup3rS3cret"),
                "the password never shows: {all}"
            );
        }
    }
    let missing = format!("sqlite://{}", dir.path().join("nope.db").display());
    let out = a2a(&home, &["db", "verify", "--from", &missing, "--to", &good]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

async fn count(url: &Locator, sql: &str, params: &[a2a_dbmove::Value]) -> i64 {
    let db = Db::connect(url, false).await.unwrap();
    db.query_i64(sql, params).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_clones_then_takes_the_new_address_and_the_school() {
    use a2a_dbmove::Value::Text;
    let test = "a_template_clones_then_takes_the_new_address_and_the_school";
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let old = "https://agora.xtec.cat/centres/ins-exemple";
    let new = "https://escola-nova.xtec.cat";
    for (tag, admin) in engines(test, dir.path()) {
        let tpl = Scratch::new(&admin, &format!("t_{tag}")).await;
        let made = a2a(&home, &["fixture", "site", "--db", tpl.url()]);
        assert_eq!(made.status.code(), Some(0), "{}", text(&made));
        let site = Scratch::unborn(&admin, &format!("c_{tag}"));
        let clone = a2a(
            &home,
            &["db", "clone", "--template", tpl.url(), "--to", site.url()],
        );
        assert_eq!(clone.status.code(), Some(0), "{tag}: {}", text(&clone));
        let again = a2a(
            &home,
            &["db", "clone", "--template", tpl.url(), "--to", site.url()],
        );
        assert_eq!(again.status.code(), Some(2), "{tag}: {}", text(&again));
        let same = a2a(
            &home,
            &["db", "verify", "--from", tpl.url(), "--to", site.url()],
        );
        assert_eq!(same.status.code(), Some(0), "{tag}: {}", text(&same));

        let replaced = ok_json(&a2a(
            &home,
            &[
                "db",
                "replace",
                "--db",
                site.url(),
                "--search",
                old,
                "--replace",
                new,
                "--json",
            ],
        ));
        assert!(replaced["rows"].as_u64().unwrap() > 0, "{tag}: {replaced}");
        let like = |s: &str| Text(format!("%{s}%"));
        let posts = "SELECT COUNT(*) FROM mdl_forum_posts WHERE message LIKE {}";
        assert!(count(&site.url, posts, &[like(new)]).await > 0, "{tag}");
        assert_eq!(count(&site.url, posts, &[like(old)]).await, 0, "{tag}");
        // Moodle's skip list: config and logs keep the old address.
        let config = "SELECT COUNT(*) FROM mdl_config WHERE value LIKE {}";
        assert!(count(&site.url, config, &[like(old)]).await > 0, "{tag}");
        let logs = "SELECT COUNT(*) FROM mdl_logstore_standard_log WHERE other LIKE {}";
        assert!(count(&site.url, logs, &[like(old)]).await > 0, "{tag}");

        let custom = a2a(
            &home,
            &[
                "db",
                "customise",
                "--db",
                site.url(),
                "--school",
                "08012345",
                "--name",
                "Escola Sant Jordi",
                "--dns",
                "esc-santjordi",
            ],
        );
        assert_eq!(custom.status.code(), Some(0), "{tag}: {}", text(&custom));
        let course =
            "SELECT COUNT(*) FROM mdl_course WHERE id = 1 AND fullname = {} AND shortname = {}";
        let named = [
            Text("Escola Sant Jordi".into()),
            Text("esc-santjordi".into()),
        ];
        assert_eq!(count(&site.url, course, &named).await, 1, "{tag}");
        let user =
            "SELECT COUNT(*) FROM mdl_user WHERE username = {} AND institution = {} AND email = {}";
        let admin_row = [
            Text("admin".into()),
            Text("Escola Sant Jordi".into()),
            Text("a8012345@xtec.cat".into()),
        ];
        assert_eq!(count(&site.url, user, &admin_row).await, 1, "{tag}");

        let differs = a2a(
            &home,
            &["db", "verify", "--from", tpl.url(), "--to", site.url()],
        );
        assert_eq!(differs.status.code(), Some(1), "{tag}: {}", text(&differs));
        site.drop().await;
        tpl.drop().await;
    }
}

#[tokio::test]
async fn a_fixture_site_writes_a_moodledata_that_matches_its_files_table() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let db = Locator::new(format!("sqlite://{}", dir.path().join("site.db").display()));
    let data = dir.path().join("moodledata");
    let out = a2a(
        &home,
        &[
            "fixture",
            "site",
            "--db",
            db.expose(),
            "--files",
            data.to_str().unwrap(),
            "--seed",
            "7",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut files = 0;
    for a in std::fs::read_dir(data.join("filedir")).unwrap() {
        for b in std::fs::read_dir(a.unwrap().path()).unwrap() {
            for f in std::fs::read_dir(b.unwrap().path()).unwrap() {
                let f = f.unwrap();
                let content = std::fs::read(f.path()).unwrap();
                let sha = a2a_dbmove::fixture::sha1_hex(&content);
                assert_eq!(f.file_name().to_str().unwrap(), sha, "named by its SHA-1");
                let sql = "SELECT COUNT(*) FROM mdl_files WHERE contenthash = {} AND filesize = {}";
                let params = [
                    a2a_dbmove::Value::Text(sha),
                    a2a_dbmove::Value::Int(content.len() as i64),
                ];
                assert!(count(&db, sql, &params).await >= 1, "in the files table");
                files += 1;
            }
        }
    }
    let sql = "SELECT COUNT(DISTINCT contenthash) FROM mdl_files WHERE filesize > {}";
    let expected = count(&db, sql, &[a2a_dbmove::Value::Int(0)]).await;
    assert_eq!(files, expected);
    assert!(files > 10);
}

/// A real kill, mid-chunk: the import blocks on a lock the test holds on its last table,
/// with that chunk's transaction open, and is killed there (SIGKILL). PostgreSQL only: it
/// shows who waits on a lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_inside_a_chunk_resumes_without_duplicates() {
    use a2a_dbmove::Value::Text;
    let test = "an_import_killed_inside_a_chunk_resumes_without_duplicates";
    let Some(pg) = a2a_testkit::service_url("A2A_TEST_PG_URL", test) else {
        return;
    };
    let admin = Locator::new(pg);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let src = Scratch::new(&admin, "ks").await;
    let made = a2a(&home, &["fixture", "site", "--db", src.url()]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    let stage = dir.path().join("stage");
    let stage = stage.to_str().unwrap();
    let export = [
        "db",
        "export",
        "--from",
        src.url(),
        "--stage",
        stage,
        "--chunk-rows",
        "100",
    ];
    assert_eq!(a2a(&home, &export).status.code(), Some(0));
    let dst = Scratch::new(&admin, "kd").await;
    let import = |extra: &[&'static str]| {
        let mut args = vec![
            "db",
            "import",
            "--stage",
            stage,
            "--to",
            dst.url(),
            "--jobs",
            "1",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let first = a2a(
        &home,
        &import(&["--max-chunks", "2"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));

    // Hold a lock that stops writes to the last table, then start the rest of the import.
    let locker = Db::connect(&dst.url, false).await.unwrap();
    locker
        .exec("BEGIN; LOCK TABLE \"mdl_user\" IN SHARE MODE")
        .await
        .unwrap();
    let mut child = common::command(&home)
        .args(import(&[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waiting =
        "SELECT count(*) FROM pg_stat_activity WHERE datname = {} AND wait_event_type = 'Lock'";
    let mut polls = 0;
    while count(&admin, waiting, &[Text(dst.name.clone())]).await == 0 {
        polls += 1;
        assert!(polls < 1200, "the import never reached the locked table");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    locker.exec("ROLLBACK").await.unwrap();
    drop(locker);
    let users = "SELECT count(*) FROM \"mdl_user\"";
    assert_eq!(
        count(&dst.url, users, &[]).await,
        0,
        "the killed chunk left nothing"
    );

    let rerun = a2a(
        &home,
        &import(&["--json"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let report = ok_json(&rerun);
    assert_eq!(report["resumed"], true);
    assert_eq!(report["complete"], true);
    assert!(report["chunks_skipped"].as_u64().unwrap() > 2, "{report}");
    let verify = ok_json(&a2a(
        &home,
        &[
            "db",
            "verify",
            "--from",
            src.url(),
            "--to",
            dst.url(),
            "--json",
        ],
    ));
    assert_eq!(verify["equal"], true, "{verify:#}");
    dst.drop().await;
    src.drop().await;
}

#[test]
fn agoras_m2_prefix_is_taken_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let url = |n: &str| format!("sqlite://{}", dir.path().join(n).display());
    let (src, dst) = (url("usu1.db"), url("usu1-copy.db"));
    let made = a2a(&home, &["fixture", "site", "--db", &src, "--prefix", "m2"]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    let copy = ok_json(&a2a(
        &home,
        &[
            "db", "copy", "--from", &src, "--to", &dst, "--prefix", "m2", "--json",
        ],
    ));
    assert_eq!(copy["export"]["tables"], 15);
    let verify = ok_json(&a2a(
        &home,
        &[
            "db", "verify", "--from", &src, "--to", &dst, "--prefix", "m2", "--json",
        ],
    ));
    assert_eq!(verify["equal"], true);
    assert!(
        verify["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["table"] == "m2config")
    );
    // With the default prefix there is nothing to move.
    let none = ok_json(&a2a(
        &home,
        &["db", "verify", "--from", &src, "--to", &dst, "--json"],
    ));
    assert_eq!(none["tables"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budgeted_export_goes_on_run_after_run_and_imports_whole() {
    let test = "a_budgeted_export_goes_on_run_after_run_and_imports_whole";
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    for (tag, admin) in engines(test, dir.path()) {
        let src = Scratch::new(&admin, &format!("b_{tag}")).await;
        let dst = format!(
            "sqlite://{}",
            dir.path().join(format!("dst-{tag}.db")).display()
        );
        let made = a2a(&home, &["fixture", "site", "--db", src.url(), "--extras"]);
        assert_eq!(made.status.code(), Some(0), "{}", text(&made));
        let whole = dir.path().join(format!("whole-{tag}"));
        let one = ok_json(&a2a(
            &home,
            &[
                "db",
                "export",
                "--from",
                src.url(),
                "--stage",
                whole.to_str().unwrap(),
                "--chunk-rows",
                "100",
                "--json",
            ],
        ));
        let stage = dir.path().join(format!("budgeted-{tag}"));
        let stage = stage.to_str().unwrap();
        let early_db = format!("sqlite://{}", dir.path().join("early.db").display());
        let mut runs = 0;
        let last = loop {
            runs += 1;
            assert!(runs < 200, "{tag}: the budgeted export never ends");
            let r = ok_json(&a2a(
                &home,
                &[
                    "db",
                    "export",
                    "--from",
                    src.url(),
                    "--stage",
                    stage,
                    "--chunk-rows",
                    "100",
                    "--max-chunks",
                    "4",
                    "--json",
                ],
            ));
            if r["complete"] == true {
                break r;
            }
            // Until complete, the stage holds no importable export.
            let early = a2a(
                &home,
                &["db", "import", "--stage", stage, "--to", &early_db],
            );
            assert_eq!(early.status.code(), Some(2), "{tag}: {}", text(&early));
        };
        assert!(runs > 3, "{tag}: a budget of 4 chunks takes several runs");
        assert_eq!(last["rows"], one["rows"], "{tag}");
        assert_eq!(
            last["chunks"], one["chunks"],
            "{tag}: the same chunks, cut at the same keys"
        );
        let im = ok_json(&a2a(
            &home,
            &["db", "import", "--stage", stage, "--to", &dst, "--json"],
        ));
        assert_eq!(im["rows"], one["rows"], "{tag}");
        let verify = ok_json(&a2a(
            &home,
            &["db", "verify", "--from", src.url(), "--to", &dst, "--json"],
        ));
        assert_eq!(verify["equal"], true, "{tag}: {verify:#}");
        src.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_in_s3_exports_imports_and_verifies() {
    let test = "a_stage_in_s3_exports_imports_and_verifies";
    if a2a_testkit::service_url("AWS_ENDPOINT_URL", test).is_none() {
        return;
    }
    let conf = a2a_aws::config::sdk_config().await;
    let s3 = a2a_aws::aws_sdk_s3::config::Builder::from(&conf)
        .force_path_style(true)
        .build();
    let client = a2a_aws::aws_sdk_s3::Client::from_conf(s3);
    let bucket = a2a_testkit::unique_name("a2a-dbmove");
    a2a_aws::S3Blob::create_bucket(&client, &bucket)
        .await
        .unwrap();
    let stage = format!("s3://{bucket}/instances/08012345/db");

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let url = |n: &str| format!("sqlite://{}", dir.path().join(n).display());
    let (src, dst, dst2) = (url("src.db"), url("dst.db"), url("dst2.db"));
    let made = a2a(&home, &["fixture", "site", "--db", &src, "--extras"]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    ok_json(&a2a(
        &home,
        &[
            "db",
            "export",
            "--from",
            &src,
            "--stage",
            &stage,
            "--chunk-rows",
            "200",
            "--json",
        ],
    ));
    ok_json(&a2a(
        &home,
        &["db", "import", "--stage", &stage, "--to", &dst, "--json"],
    ));
    let verify = ok_json(&a2a(
        &home,
        &["db", "verify", "--from", &src, "--to", &dst, "--json"],
    ));
    assert_eq!(verify["equal"], true, "{verify:#}");
    // And `copy` through the same bucket.
    let copy = ok_json(&a2a(
        &home,
        &[
            "db", "copy", "--from", &src, "--to", &dst2, "--stage", &stage, "--verify", "--json",
        ],
    ));
    assert_eq!(copy["verify"]["equal"], true);
}

//! End-to-end tests of `a2a db …` on the machine's PostgreSQL and MariaDB and on SQLite,
//! in every pair: fixture → copy → verify equal; a mutated row is named; an interrupted
//! import resumes without duplicates; an unmappable type and an unreachable server are
//! clear errors with the right exit codes.

mod common;
use common::{a2a, text};

use std::path::{Path, PathBuf};
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

/// A temporary folder, and the `a2a` home inside it.
fn home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    (dir, home)
}

/// `a2a db ARGS --json`, which must succeed: its report.
fn db_json(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["db"];
    all.extend_from_slice(args);
    all.push("--json");
    ok_json(&a2a(home, &all))
}

/// `a2a db export --from FROM --stage STAGE --chunk-rows ROWS EXTRA --json`, which must
/// succeed: its report.
fn export(home: &Path, from: &str, stage: &str, rows: &str, extra: &[&str]) -> Value {
    let mut all = vec![
        "export",
        "--from",
        from,
        "--stage",
        stage,
        "--chunk-rows",
        rows,
    ];
    all.extend_from_slice(extra);
    db_json(home, &all)
}

/// `a2a ARGS`, which must end with exit code `code`; `what` names the case in a failure.
fn exits(home: &Path, args: &[&str], code: i32, what: &str) -> Output {
    let out = a2a(home, args);
    assert_eq!(out.status.code(), Some(code), "{what}: {}", text(&out));
    out
}

/// `a2a db verify --from FROM --to TO`, which must end with exit code `code` (0: equal,
/// 1: different).
fn verify(home: &Path, from: &str, to: &str, code: i32, what: &str) -> Output {
    exits(
        home,
        &["db", "verify", "--from", from, "--to", to],
        code,
        what,
    )
}

/// `a2a fixture site --db DB EXTRA`, which must succeed.
fn fixture_site(home: &Path, db: &str, extra: &[&str]) {
    let mut all = vec!["fixture", "site", "--db", db];
    all.extend_from_slice(extra);
    let made = a2a(home, &all);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
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
    let (dir, home) = home();
    let engines = engines(test, dir.path());
    for (stag, sadmin) in &engines {
        let src = Scratch::new(sadmin, &format!("s_{stag}")).await;
        fixture_site(&home, src.url(), &["--extras"]);

        for (dtag, dadmin) in &engines {
            let pair = format!("{stag} → {dtag}");
            // Copy, verified in the same run and again on its own.
            let dst = Scratch::new(dadmin, &format!("d_{stag}_{dtag}")).await;
            let copy = db_json(
                &home,
                &[
                    "copy",
                    "--from",
                    src.url(),
                    "--to",
                    dst.url(),
                    "--verify",
                    "--chunk-rows",
                    "50",
                ],
            );
            assert_eq!(copy["verify"]["equal"], true, "{pair}: {copy:#}");
            assert!(copy["export"]["chunks"].as_u64().unwrap() > 18, "{pair}");
            verify(&home, src.url(), dst.url(), 0, &pair);
            // Same engine: the servers' sums settle every table, unless --rows asks for
            // every row on both sides (SHA-256 of the rows, as across engines).
            for (flag, server_sums) in [
                (None, *stag == *dtag && *stag != "lite"),
                (Some("--rows"), false),
            ] {
                let mut args = vec![
                    "db",
                    "verify",
                    "--from",
                    src.url(),
                    "--to",
                    dst.url(),
                    "--json",
                ];
                args.extend(flag);
                let v: serde_json::Value =
                    serde_json::from_slice(&exits(&home, &args, 0, &pair).stdout).unwrap();
                let tables = v["tables"].as_array().unwrap();
                let by_servers = tables
                    .iter()
                    .filter(|t| {
                        t["source_checksum"]
                            .as_str()
                            .unwrap()
                            .starts_with("server-sum:")
                    })
                    .count();
                let want = if server_sums { tables.len() } else { 0 };
                assert_eq!(by_servers, want, "{pair} {flag:?}: {v:#}");
            }

            // Copying again onto it is refused, and changes nothing.
            let again = exits(
                &home,
                &["db", "copy", "--from", src.url(), "--to", dst.url()],
                2,
                &pair,
            );
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
            let differs = verify(&home, src.url(), dst.url(), 1, &pair);
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
            let ex = export(&home, src.url(), stage, "50", &[]);
            let first = db_json(
                &home,
                &[
                    "import",
                    "--stage",
                    stage,
                    "--to",
                    dst.url(),
                    "--max-chunks",
                    "3",
                ],
            );
            assert_eq!(first["chunks"], 3, "{pair}");
            assert_eq!(first["complete"], false, "{pair}");
            // Another export cannot be resumed into it: refused, nothing changed.
            let other = dir.path().join(format!("other-{stag}-{dtag}"));
            let other = other.to_str().unwrap();
            db_json(&home, &["export", "--from", src.url(), "--stage", other]);
            let wrong = exits(
                &home,
                &["db", "import", "--stage", other, "--to", dst.url()],
                2,
                &pair,
            );
            assert!(text(&wrong).contains("another export"), "{pair}");
            let second = db_json(&home, &["import", "--stage", stage, "--to", dst.url()]);
            assert_eq!(second["resumed"], true, "{pair}");
            assert_eq!(second["chunks_skipped"], 3, "{pair}");
            assert_eq!(second["complete"], true, "{pair}");
            assert_eq!(
                first["rows"].as_u64().unwrap() + second["rows"].as_u64().unwrap(),
                ex["rows"].as_u64().unwrap(),
                "{pair}: every row loaded exactly once"
            );
            let verify = db_json(&home, &["verify", "--from", src.url(), "--to", dst.url()]);
            assert_eq!(verify["equal"], true, "{pair}: {verify:#}");
            dst.drop().await;
        }
        src.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmappable_type_is_named_and_nothing_is_written() {
    let test = "an_unmappable_type_is_named_and_nothing_is_written";
    let (dir, home) = home();
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
        let out = exits(
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
            2,
            tag,
        );
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
    let (dir, home) = home();
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
    let (dir, home) = home();
    let old = "https://agora.xtec.cat/centres/ins-exemple";
    let new = "https://escola-nova.xtec.cat";
    for (tag, admin) in engines(test, dir.path()) {
        let tpl = Scratch::new(&admin, &format!("t_{tag}")).await;
        fixture_site(&home, tpl.url(), &[]);
        let site = Scratch::unborn(&admin, &format!("c_{tag}"));
        let clone = ["db", "clone", "--template", tpl.url(), "--to", site.url()];
        exits(&home, &clone, 0, tag);
        // Again: refused, the target exists.
        exits(&home, &clone, 2, tag);
        verify(&home, tpl.url(), site.url(), 0, tag);

        let replaced = db_json(
            &home,
            &[
                "replace",
                "--db",
                site.url(),
                "--search",
                old,
                "--replace",
                new,
            ],
        );
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

        exits(
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
            0,
            tag,
        );
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

        verify(&home, tpl.url(), site.url(), 1, tag);
        site.drop().await;
        tpl.drop().await;
    }
}

#[tokio::test]
async fn a_fixture_site_writes_a_moodledata_that_matches_its_files_table() {
    let (dir, home) = home();
    let db = Locator::new(format!("sqlite://{}", dir.path().join("site.db").display()));
    let data = dir.path().join("moodledata");
    let args = ["--files", data.to_str().unwrap(), "--seed", "7"];
    fixture_site(&home, db.expose(), &args);
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
    let (dir, home) = home();
    let src = Scratch::new(&admin, "ks").await;
    fixture_site(&home, src.url(), &[]);
    let stage = dir.path().join("stage");
    let stage = stage.to_str().unwrap();
    export(&home, src.url(), stage, "100", &[]);
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
    let verify = db_json(&home, &["verify", "--from", src.url(), "--to", dst.url()]);
    assert_eq!(verify["equal"], true, "{verify:#}");
    dst.drop().await;
    src.drop().await;
}

#[test]
fn agoras_m2_prefix_is_taken_everywhere() {
    let (dir, home) = home();
    let url = |n: &str| format!("sqlite://{}", dir.path().join(n).display());
    let (src, dst) = (url("usu1.db"), url("usu1-copy.db"));
    fixture_site(&home, &src, &["--prefix", "m2"]);
    let copy = db_json(
        &home,
        &["copy", "--from", &src, "--to", &dst, "--prefix", "m2"],
    );
    assert_eq!(copy["export"]["tables"], 15);
    let verify = db_json(
        &home,
        &["verify", "--from", &src, "--to", &dst, "--prefix", "m2"],
    );
    assert_eq!(verify["equal"], true);
    assert!(
        verify["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["table"] == "m2config")
    );
    // With the default prefix there is nothing to move.
    let none = db_json(&home, &["verify", "--from", &src, "--to", &dst]);
    assert_eq!(none["tables"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budgeted_export_goes_on_run_after_run_and_imports_whole() {
    let test = "a_budgeted_export_goes_on_run_after_run_and_imports_whole";
    let (dir, home) = home();
    for (tag, admin) in engines(test, dir.path()) {
        let src = Scratch::new(&admin, &format!("b_{tag}")).await;
        let dst = format!(
            "sqlite://{}",
            dir.path().join(format!("dst-{tag}.db")).display()
        );
        fixture_site(&home, src.url(), &["--extras"]);
        let whole = dir.path().join(format!("whole-{tag}"));
        let one = export(&home, src.url(), whole.to_str().unwrap(), "100", &[]);
        let stage = dir.path().join(format!("budgeted-{tag}"));
        let stage = stage.to_str().unwrap();
        let early_db = format!("sqlite://{}", dir.path().join("early.db").display());
        let mut runs = 0;
        let last = loop {
            runs += 1;
            assert!(runs < 200, "{tag}: the budgeted export never ends");
            let r = export(&home, src.url(), stage, "100", &["--max-chunks", "4"]);
            if r["complete"] == true {
                break r;
            }
            // Until complete, the stage holds no importable export.
            exits(
                &home,
                &["db", "import", "--stage", stage, "--to", &early_db],
                2,
                tag,
            );
        };
        assert!(runs > 3, "{tag}: a budget of 4 chunks takes several runs");
        assert_eq!(last["rows"], one["rows"], "{tag}");
        assert_eq!(
            last["chunks"], one["chunks"],
            "{tag}: the same chunks, cut at the same keys"
        );
        let im = db_json(&home, &["import", "--stage", stage, "--to", &dst]);
        assert_eq!(im["rows"], one["rows"], "{tag}");
        let verify = db_json(&home, &["verify", "--from", src.url(), "--to", &dst]);
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

    let (dir, home) = home();
    let url = |n: &str| format!("sqlite://{}", dir.path().join(n).display());
    let (src, dst, dst2) = (url("src.db"), url("dst.db"), url("dst2.db"));
    fixture_site(&home, &src, &["--extras"]);
    export(&home, &src, &stage, "200", &[]);
    db_json(&home, &["import", "--stage", &stage, "--to", &dst]);
    let verify = db_json(&home, &["verify", "--from", &src, "--to", &dst]);
    assert_eq!(verify["equal"], true, "{verify:#}");
    // And `copy` through the same bucket.
    let copy = db_json(
        &home,
        &[
            "copy", "--from", &src, "--to", &dst2, "--stage", &stage, "--verify",
        ],
    );
    assert_eq!(copy["verify"]["equal"], true);
}

/// A replacement that would make a char column's value longer than the column allows
/// leaves those rows alone and names them: the table, the column, the count and the first
/// ten row ids, in the text and in the JSON, with exit 1. A text column takes the longer
/// address whatever its length, and a char row that fits is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_that_does_not_fit_names_the_table_column_and_row_ids() {
    use a2a_dbmove::Value::Text;
    let test = "a_replacement_that_does_not_fit_names_the_table_column_and_row_ids";
    let (dir, home) = home();
    let old = "https://agora.xtec.cat/centres/ins-exemple";
    let new = "https://agora.xtec.cat/centres/ins-nou-exemple";
    // At the column's limit: the new address, 4 characters longer, cannot fit.
    let full = format!("{}{old}", "x".repeat(50 - old.len()));
    for (tag, admin) in engines(test, dir.path()) {
        let site = Scratch::new(&admin, &format!("rw_{tag}")).await;
        let db = Db::connect(&site.url, true).await.unwrap();
        db.exec("CREATE TABLE mdl_tamper (id BIGINT PRIMARY KEY, short VARCHAR(50), note TEXT)")
            .await
            .unwrap();
        // Rows 101..=112 are full; row 113 has room. Inserted out of order: the ids are
        // still named in key order.
        for id in (101..=113).rev() {
            let short = if id == 113 { old } else { full.as_str() };
            let note = format!("{}{old}", "y".repeat(300));
            // The test's own text, with no quote in it.
            db.exec(&format!(
                "INSERT INTO mdl_tamper (id, short, note) VALUES ({id}, '{short}', '{note}')"
            ))
            .await
            .unwrap();
        }
        drop(db);
        let args = [
            "db",
            "replace",
            "--db",
            site.url(),
            "--search",
            old,
            "--replace",
            new,
        ];
        let out = exits(&home, &args, 1, tag);
        let named = "mdl_tamper.short (50 characters): 12 rows, id 101, 102, 103, 104, 105, \
                     106, 107, 108, 109, 110 and 2 more";
        assert!(text(&out).contains(named), "{tag}: {}", text(&out));
        let mut json = args.to_vec();
        json.push("--json");
        let out = exits(&home, &json, 1, tag);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let left = &report["too_long"][0];
        assert_eq!(
            (&left["table"], &left["column"], &left["rows"], &left["key"]),
            (
                &Value::from("mdl_tamper"),
                &Value::from("short"),
                &Value::from(12),
                &Value::from("id")
            ),
            "{tag}: {report}"
        );
        let ids: Vec<String> = (101..=110).map(|n| n.to_string()).collect();
        assert_eq!(left["ids"], serde_json::json!(ids), "{tag}: {report}");
        assert_eq!(
            report["too_long"].as_array().unwrap().len(),
            1,
            "{tag}: {report}"
        );
        // What was left and what was replaced.
        let like = |s: &str| Text(format!("%{s}%"));
        let q = "SELECT COUNT(*) FROM mdl_tamper WHERE short LIKE {}";
        assert_eq!(count(&site.url, q, &[like(new)]).await, 1, "{tag}: row 113");
        let q = "SELECT COUNT(*) FROM mdl_tamper WHERE short = {}";
        assert_eq!(
            count(&site.url, q, &[Text(full.clone())]).await,
            12,
            "{tag}"
        );
        let q = "SELECT COUNT(*) FROM mdl_tamper WHERE note LIKE {}";
        assert_eq!(count(&site.url, q, &[like(new)]).await, 13, "{tag}: text");
        site.drop().await;
    }
}

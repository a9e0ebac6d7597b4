//! End-to-end tests of the `a2a` binary: exit codes, messages and reports as an operator
//! sees them.

mod common;
use common::a2a;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use a2a_core::{Instance, InstanceKind, InstanceStore, Status, Wave};
use a2a_testkit::{code, service_url, unique_name};
use chrono::Utc;
use serde_json::Value;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("stdout is one JSON object")
}

#[test]
fn status_on_an_empty_home_prints_zero_counts_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("fresh");
    let report = json_of(&a2a(&home, &["status", "--json"]));
    assert_eq!(report["instances"], 0);
    assert_eq!(report["by_wave"], serde_json::json!({}));
    assert_eq!(report["failed"], serde_json::json!([]));
    let by_status = report["by_status"].as_object().unwrap();
    assert_eq!(by_status.len(), Status::ALL.len());
    assert!(by_status.values().all(|v| v == 0));
    assert!(
        !home.exists(),
        "a read-only command must not create the home"
    );

    let text = a2a(&home, &["status"]);
    assert_eq!(text.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&text.stdout).contains("instances: 0"));
}

/// Registers a few instances, one failed with an error, in `store`.
async fn seed(store: Arc<dyn InstanceStore>) {
    let now = Utc::now();
    for (n, wave) in [(1, 1), (2, 1), (3, 2)] {
        store
            .register(&Instance::new(
                code(n),
                InstanceKind::Migrate,
                format!("Institut {n}"),
                Wave(wave),
                now,
            ))
            .await
            .unwrap();
    }
    let mut i = store.get(&code(3)).await.unwrap().unwrap();
    for s in [Status::Queued, Status::Running, Status::Failed] {
        i.move_to(s, now).unwrap();
    }
    i.last_error = Some("export mdl_logstore_standard_log: connection reset".into());
    store.save(&i).await.unwrap();
}

fn assert_seeded(report: &Value) {
    assert_eq!(report["instances"], 3);
    assert_eq!(report["by_status"]["registered"], 2);
    assert_eq!(report["by_status"]["failed"], 1);
    assert_eq!(report["by_wave"], serde_json::json!({"1": 2, "2": 1}));
    assert_eq!(report["failed"][0]["school_code"], "08000003");
    assert_eq!(report["failed"][0]["attempt"], 1);
    assert_eq!(
        report["failed"][0]["last_error"],
        "export mdl_logstore_standard_log: connection reset"
    );
}

#[tokio::test]
async fn status_counts_what_the_sqlite_store_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = a2a_local::SqliteStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    seed(Arc::new(store)).await;
    assert_seeded(&json_of(&a2a(dir.path(), &["status", "--json"])));
    let text = a2a(dir.path(), &["status"]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(
        out.contains("08000003 wave 2 attempt 1 Institut 3: export"),
        "{out}"
    );
}

#[tokio::test]
async fn status_counts_what_the_dynamodb_store_holds() {
    let Some(_) = service_url(
        "AWS_ENDPOINT_URL",
        "status_counts_what_the_dynamodb_store_holds",
    ) else {
        return;
    };
    let table = unique_name("a2a-cli");
    let conf = a2a_aws::config::sdk_config().await;
    let client = a2a_aws::aws_sdk_dynamodb::Client::new(&conf);
    a2a_aws::DynamoDbStore::create_table(&client, &table)
        .await
        .unwrap();
    seed(Arc::new(a2a_aws::DynamoDbStore::new(client, &table))).await;
    let dir = tempfile::tempdir().unwrap();
    let state = format!("dynamodb:{table}");
    assert_seeded(&json_of(&a2a(
        dir.path(),
        &["--state", &state, "status", "--json"],
    )));

    // The console's other commands read and move the deployed table the same way: a retry
    // sends its start message to the deployed queue.
    let sqs = a2a_aws::aws_sdk_sqs::Client::new(&conf);
    let url = a2a_aws::SqsQueue::create_plain(&sqs, &unique_name("a2a-cli"))
        .await
        .unwrap();
    let queue = format!("sqs:{url}");
    let o = a2a(
        dir.path(),
        &["--state", &state, "--queue", &queue, "retry", "08000003"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("08000003: queued for attempt 2"));
    let got = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = got.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let msg: Value = serde_json::from_str(bodies[0]).unwrap();
    assert_eq!(
        (msg["school_code"].as_str(), msg["attempt"].as_u64()),
        (Some("08000003"), Some(2))
    );
    let h = json_of(&a2a(
        dir.path(),
        &["--state", &state, "history", "08000003", "--json"],
    ));
    assert_eq!(h["status"], "queued", "{h}");
    assert!(
        h.to_string().contains(a2a_schedule::OPERATOR_RETRY_STEP),
        "{h}"
    );
    let html = dir.path().join("r.html");
    let o = a2a(
        dir.path(),
        &[
            "--state",
            &state,
            "report",
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&html).unwrap().contains("08000003"));
}

#[test]
fn every_bad_config_is_refused_with_file_and_line() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let bytes = std::fs::read(&path).unwrap();
        let first = String::from_utf8_lossy(bytes.split(|&b| b == b'\n').next().unwrap());
        let line: usize = first
            .strip_prefix("# expect-line: ")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: first line must be `# expect-line: N`", path.display()));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a2a.toml"), &bytes).unwrap();
        let out = a2a(dir.path(), &["status", "--json"]);
        let err = stderr(&out);
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        let at = if line == 0 {
            "a2a.toml: ".to_owned()
        } else {
            format!("a2a.toml:{line}")
        };
        assert!(err.contains(&at), "{name}: expected {at:?} in: {err}");
        assert!(err.contains("hint:"), "{name}: says what to do: {err}");
        assert!(out.stdout.is_empty(), "{name}: no report on bad input");
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "{name}: nothing written");
    }
    assert!(seen >= 8, "the corpus is there");
}

#[test]
fn bad_flags_and_a_file_as_home_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = a2a(dir.path(), &["--state", "dynamo:x", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--state \"dynamo:x\""),
        "{}",
        stderr(&out)
    );

    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let out = a2a(&file, &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not a folder"));

    let out = a2a(dir.path(), &["statu"]);
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");
}

#[test]
fn an_unreachable_endpoint_is_an_environment_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::command(dir.path())
        .args(["--state", "dynamodb:a2a-state", "status"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "not-to-be-printed")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("a2a-state"), "names the table: {err}");
    assert!(!err.contains("not-to-be-printed"), "never prints a secret");
}

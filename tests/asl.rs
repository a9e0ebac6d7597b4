//! End-to-end tests of `a2a asl`: the invalid-definition corpus, and runs of a 12-state
//! workflow driven by a Step Functions Local mock configuration, through the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asl")
}

fn a2a(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    common::command(home.path())
        .arg("asl")
        .args(args)
        .output()
        .expect("the a2a binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn report(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}); stderr: {}", stderr(o)))
}

/// `expect: state=X field=Y`, from the fixture's top-level Comment.
fn expectation(path: &Path) -> (String, String) {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let c = v["Comment"]
        .as_str()
        .expect("each fixture says what it expects");
    let rest = c
        .strip_prefix("expect: state=")
        .expect("expect: state=X field=Y");
    let (state, field) = rest.split_once(" field=").expect("expect: state=X field=Y");
    (state.to_owned(), field.to_owned())
}

fn invalid_corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
        .collect();
    files.sort();
    files
}

/// Writes the definition `text` as `name` in a new folder, and gives the folder (removed
/// when dropped) and the file's path.
fn definition(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn validate_rejects_every_broken_definition_naming_state_and_field() {
    let files = invalid_corpus();
    assert!(
        files.len() >= 20,
        "the corpus holds {} definitions",
        files.len()
    );
    for f in &files {
        let out = a2a(&["validate", f.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", f.display());
        assert!(!err.contains("panicked"), "{}: {err}", f.display());
        let (state, field) = expectation(f);
        let want = format!("state \"{state}\", field \"{field}\"");
        assert!(
            err.contains(&want),
            "{}: expected {want} in\n{err}",
            f.display()
        );
    }
}

#[test]
fn validate_reports_every_file_and_exits_2_when_any_is_bad() {
    let good = fixtures().join("migrate-demo.asl.json");
    let bad = fixtures().join("invalid/next-target-missing.asl.json");
    let out = a2a(&[
        "validate",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--substitution",
        "PreflightFunction=a2a-preflight",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrate-demo.asl.json: ok (12 states)"));
    assert!(stderr(&out).contains("1 of 2 definition(s) are invalid"));

    let out = a2a(&[
        "validate",
        good.to_str().unwrap(),
        "--substitution",
        "PreflightFunction=x",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Without the substitution the placeholder is unfilled: an error naming where it is.
    let out = a2a(&["validate", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("state \"Preflight\", field \"Parameters\""),
        "{}",
        stderr(&out)
    );
    let out = a2a(&["validate", "/nonexistent/x.asl.json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn validate_binds_the_projects_own_state_machines_from_template_yaml() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, machine) in [
        ("migrate-instance.asl.json", "MigrateStateMachine"),
        ("provision-instance.asl.json", "ProvisionStateMachine"),
    ] {
        let path = root.join("statemachines").join(file);
        let out = a2a(&["validate", path.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        assert!(
            stdout.contains(&format!("placeholders bound from {machine}")),
            "{file}: {stdout}"
        );
    }

    // Outside a template, a whole-Resource placeholder is checked as a stand-in and said.
    let text = r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${Freeze}", "End": true}}}"#;
    let (dir, lone) = definition("lone.asl.json", text);
    let out = a2a(&["validate", lone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("${Freeze} is unbound"),
        "{}",
        stderr(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 unbound"));
    // A template that does not parse is named.
    let bad = dir.path().join("template.yaml");
    std::fs::write(&bad, "Resources: [").unwrap();
    let out = a2a(&["validate", lone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not YAML"), "{}", stderr(&out));
}

fn run_case(case: &str, extra: &[&str]) -> Output {
    let def = fixtures().join("migrate-demo.asl.json");
    let mock = fixtures().join("migrate-demo.mock.json");
    let mut args = vec![
        "run",
        def.to_str().unwrap(),
        "--substitution",
        "PreflightFunction=a2a-preflight",
        "--mock-config",
        mock.to_str().unwrap(),
        "--test-case",
        case,
        "--clock",
        "virtual",
        "--input",
        r#"{"school_code": "08012345"}"#,
    ];
    args.extend_from_slice(extra);
    a2a(&args)
}

#[test]
fn run_succeeds_on_the_happy_path_and_retries_with_mocks() {
    for case in ["HappyPath", "ImportRetries"] {
        let out = run_case(case, &[]);
        assert_eq!(out.status.code(), Some(0), "{case}: {}", stderr(&out));
        assert_eq!(
            report(&out),
            json!({"status": "SUCCEEDED", "output": {"url": "https://agora.xtec.cat/08012345/"}})
        );
    }
}

#[test]
fn run_reports_failures_with_exit_1_and_history_on_request() {
    for case in ["VerifyFails", "ExportBreaks"] {
        let out = run_case(case, &["--history"]);
        assert_eq!(out.status.code(), Some(1), "{case}: {}", stderr(&out));
        let r = report(&out);
        assert_eq!(r["status"], "FAILED");
        assert_eq!(r["error"], "Migration.Failed");
        assert_eq!(r["cause"], "school 08012345 did not migrate");
        let types: Vec<&str> = common::strings(&r["history"], "type");
        assert_eq!(types.first(), Some(&"ExecutionStarted"));
        assert_eq!(types.last(), Some(&"ExecutionFailed"));
        assert!(types.contains(&"FailStateEntered"));
        if case == "ExportBreaks" {
            assert!(types.contains(&"MapIterationFailed"), "{types:?}");
            assert!(types.contains(&"ParallelStateFailed"), "{types:?}");
        }
    }
    let out = run_case("HappyPath", &["--history"]);
    let r = report(&out);
    let entered: Vec<&str> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "TaskStateEntered")
        .map(|e| e["stateEnteredEventDetails"]["name"].as_str().unwrap())
        .collect();
    // Preflight, Freeze, 3 tables, SyncFiles, Import, Verify, Switch.
    assert_eq!(entered.len(), 9, "{entered:?}");
}

#[test]
fn run_times_out_on_the_virtual_clock_with_exit_1() {
    let text = r#"{"StartAt": "W", "TimeoutSeconds": 60, "States": {"W": {"Type": "Wait", "Seconds": 604800, "End": true}}}"#;
    let (_dir, def) = definition("slow.asl.json", text);
    let out = a2a(&["run", def.to_str().unwrap(), "--clock", "virtual"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["status"], "TIMED_OUT");
    assert_eq!(r["error"], "States.Timeout");
}

#[test]
fn run_refuses_bad_input_definitions_and_mocks_with_exit_2() {
    let def = fixtures().join("migrate-demo.asl.json");
    let def = def.to_str().unwrap();
    let sub = "PreflightFunction=x";
    // `a2a run` of the demo definition, with `more` arguments.
    let run = |more: &[&str]| {
        let mut args = vec!["run", def, "--substitution", sub];
        args.extend_from_slice(more);
        a2a(&args)
    };
    let out = run(&["--input", "{nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--input is not JSON"),
        "{}",
        stderr(&out)
    );
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    std::fs::write(&big, json!({"blob": "x".repeat(300_000)}).to_string()).unwrap();
    let out = run(&["--input-file", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("at most 262144"), "{}", stderr(&out));
    let bad = fixtures().join("invalid/unknown-state-type.asl.json");
    let out = a2a(&["run", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("state \"X\", field \"Type\""));
    let mock = fixtures().join("migrate-demo.mock.json");
    let out = run(&[
        "--mock-config",
        mock.to_str().unwrap(),
        "--test-case",
        "NoSuchCase",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("NoSuchCase"), "{}", stderr(&out));
    let out = run(&["--mock-config", def, "--test-case", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = a2a(&["run", def, "--substitution", "novalue"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("panicked"));
}

#[test]
fn run_without_mocks_fails_the_task_as_an_unknown_function() {
    let text = r#"{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:a2a-export", "End": true}}}"#;
    let (_dir, def) = definition("one.asl.json", text);
    let out = a2a(&["run", def.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report(&out)["error"], "Lambda.ResourceNotFoundException");
}

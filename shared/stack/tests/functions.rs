//! `a2a_stack::functions` with real binaries, built through `functions::build` as the
//! stack builds them: `stack-testfn` (the test Lambda of `shared/stack/testfn`, whose
//! event says what it does) and `step-allocate-target` of `functions/steps`, built from
//! the workspace's root as SAM's builder builds it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use a2a_stack::functions::{
    self, EXITED, INVALID_ENTRYPOINT, NOT_FOUND, SERVICE, THROTTLED, TIMED_OUT,
};
use a2a_stack::{FunctionSpec, Functions};
use serde_json::{Value, json};

/// The test Lambda, built once per test process through `build` in its package's
/// directory (where cargo finds a binary of a member that is not a default one).
fn testfn() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let built = functions::build(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("testfn"),
            &["stack-testfn".to_owned()],
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let bin = built["stack-testfn"].clone();
        assert!(bin.is_file(), "{}", bin.display());
        bin
    })
    .clone()
}

fn spec(name: &str, timeout: Duration, reserved: Option<u32>) -> FunctionSpec {
    FunctionSpec {
        name: name.to_owned(),
        binary: testfn(),
        env: BTreeMap::from([("A2A_FROM_TEMPLATE".to_owned(), "yes".to_owned())]),
        timeout,
        memory_mb: 256,
        reserved_concurrency: reserved,
    }
}

/// What the stack gives every function: here an endpoint nothing listens on.
fn base() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "AWS_ENDPOINT_URL".to_owned(),
            "http://127.0.0.1:9".to_owned(),
        ),
        ("AWS_REGION".to_owned(), "eu-west-1".to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
    ])
}

fn one(spec: FunctionSpec) -> Functions {
    Functions::new(vec![spec], base())
}

fn pid(v: &Value) -> u32 {
    v["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("no pid in {v}"))
}

fn alive(pid: u32) -> bool {
    // Signal 0 checks that the process exists; a reaped one does not.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Waits until `name` has `n` instances handling an invocation, and returns their pids.
async fn busy(fns: &Functions, name: &str, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pids = fns.busy_pids(name);
        if pids.len() >= n {
            return pids;
        }
        assert!(Instant::now() < deadline, "{name}: {pids:?} busy, not {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_instances_are_reused_and_each_concurrent_one_is_a_cold_start() {
    let name = "a2a-test-warm";
    let fns = one(spec(name, Duration::from_secs(30), None));
    let first = fns.invoke(name, json!({"hello": 1})).await.unwrap();
    assert_eq!(first["echo"], json!({"hello": 1}));
    assert_eq!(fns.cold_starts(name), 1);
    let again = fns.invoke(name, json!({"hello": 2})).await.unwrap();
    assert_eq!(pid(&again), pid(&first), "an idle instance is reused");
    assert_eq!(fns.cold_starts(name), 1);

    // Three at once: the idle one and two new ones, one invocation each.
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let fns = fns.clone();
            tokio::spawn(async move { fns.invoke(name, json!({"sleep_ms": 800})).await })
        })
        .collect();
    let mut pids = BTreeSet::new();
    for c in calls {
        pids.insert(pid(&c.await.unwrap().unwrap()));
    }
    assert_eq!(pids.len(), 3, "one instance per concurrent invocation");
    assert!(pids.contains(&pid(&first)));
    assert_eq!(fns.cold_starts(name), 3);
    assert!(pids.iter().all(|p| alive(*p)), "idle instances wait");

    fns.shutdown().await;
    assert!(!pids.iter().any(|p| alive(*p)), "shutdown ends every one");
    let after = fns.invoke(name, json!({})).await.unwrap_err();
    assert_eq!(after.error_type, SERVICE, "{after}");
    let unknown = fns.invoke("a2a-test-none", json!({})).await.unwrap_err();
    assert_eq!(unknown.error_type, NOT_FOUND, "{unknown}");
    assert!(
        unknown.message.contains("function:a2a-test-none"),
        "{unknown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_is_the_templates_the_stacks_and_lambdas_only() {
    let name = "a2a-test-env";
    let mut s = spec(name, Duration::from_secs(30), None);
    // A reserved key is Lambda's to set: the configuration's value never reaches it.
    s.env
        .insert("AWS_LAMBDA_FUNCTION_NAME".to_owned(), "spoofed".to_owned());
    assert_eq!(s.reserved_keys(), ["AWS_LAMBDA_FUNCTION_NAME"]);
    // SAFETY: set before any thread of this test reads the environment; the function
    // must not see it, since its environment is cleared.
    unsafe { std::env::set_var("A2A_TEST_LEAK", "from the test process") };
    let fns = one(s);
    let got = fns.invoke(name, json!({"env": true})).await.unwrap();
    let keys: BTreeSet<&str> = got["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut expected: BTreeSet<&str> = [
        // The template's.
        "A2A_FROM_TEMPLATE",
        // The stack's.
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        // Lambda's.
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "_HANDLER",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "TZ",
        "LANG",
        "PATH",
    ]
    .into_iter()
    .collect();
    // The runtime client itself sets the trace id for each event, as on Lambda.
    if keys.contains("_X_AMZN_TRACE_ID") {
        expected.insert("_X_AMZN_TRACE_ID");
    }
    assert_eq!(keys, expected);
    assert_eq!(got["name"], name);
    assert_eq!(got["memory"], "256");
    // Its own empty directory, which is also where its code is said to be.
    assert_eq!(got["cwd_entries"], json!([]));
    assert_eq!(got["task_root"], got["cwd"]);
    let cwd = PathBuf::from(got["cwd"].as_str().unwrap());
    assert_ne!(cwd, std::env::current_dir().unwrap());
    // The deadline given with the event is its timeout after it was handed out.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let left = got["deadline_ms"].as_u64().unwrap().saturating_sub(now_ms);
    assert!((25_000..=30_000).contains(&left), "{left} ms left");

    // A second, concurrent instance has a directory of its own, removed with it.
    let slow = {
        let fns = fns.clone();
        tokio::spawn(async move { fns.invoke(name, json!({"sleep_ms": 1000})).await })
    };
    busy(&fns, name, 1).await;
    let other = fns.invoke(name, json!({"env": true})).await.unwrap();
    slow.await.unwrap().unwrap();
    assert_ne!(other["cwd"], got["cwd"]);
    assert_eq!(fns.cold_starts(name), 2);
    fns.shutdown().await;
    assert!(!cwd.exists(), "{} outlived its instance", cwd.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_timeout_an_instance_is_killed_and_the_invoke_times_out() {
    let name = "a2a-test-timeout";
    let fns = one(spec(name, Duration::from_secs(1), None));
    let warm = fns.invoke(name, json!({})).await.unwrap();
    let started = Instant::now();
    let e = fns
        .invoke(name, json!({"sleep_ms": 20_000}))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.error_type, TIMED_OUT, "{e}");
    assert!(
        e.message.contains("Task timed out after 1.00 seconds"),
        "{e}"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(!alive(pid(&warm)), "the timed-out instance is killed");
    // The cause Step Functions records is the error payload.
    let cause: Value = serde_json::from_str(&e.cause()).unwrap();
    assert_eq!(cause["errorType"], TIMED_OUT);
    let next = fns.invoke(name, json!({})).await.unwrap();
    assert_ne!(pid(&next), pid(&warm));
    assert_eq!(fns.cold_starts(name), 2, "the next invoke starts anew");
    fns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_concurrency_throttles_the_invoke_beyond_it() {
    let name = "a2a-test-reserved";
    let fns = one(spec(name, Duration::from_secs(30), Some(2)));
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let fns = fns.clone();
            tokio::spawn(async move { fns.invoke(name, json!({"sleep_ms": 1500})).await })
        })
        .collect();
    busy(&fns, name, 2).await;
    let e = fns.invoke(name, json!({})).await.unwrap_err();
    assert_eq!(e.error_type, THROTTLED, "{e}");
    assert_eq!(
        e.cause(),
        e.message,
        "a service error's cause is its message"
    );
    for c in calls {
        c.await.unwrap().unwrap();
    }
    // Once they are done, an instance is free again: no third one was ever started.
    fns.invoke(name, json!({})).await.unwrap();
    assert_eq!(fns.cold_starts(name), 2);

    let none = "a2a-test-reserved-0";
    let zero = one(spec(none, Duration::from_secs(30), Some(0)));
    let e = zero.invoke(none, json!({})).await.unwrap_err();
    assert_eq!(e.error_type, THROTTLED, "{e}");
    assert_eq!(zero.cold_starts(none), 0);
    fns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_invocation_fails_it_and_the_next_starts_anew() {
    let name = "a2a-test-kill";
    let fns = one(spec(name, Duration::from_secs(30), None));
    let call = {
        let fns = fns.clone();
        tokio::spawn(async move { fns.invoke(name, json!({"sleep_ms": 20_000})).await })
    };
    let pids = busy(&fns, name, 1).await;
    // Let the event reach it, so that it dies working on it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    unsafe { libc::kill(pids[0] as libc::pid_t, libc::SIGKILL) };
    let e = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the invoke fails when its process dies, not at its timeout")
        .unwrap()
        .unwrap_err();
    assert_eq!(e.error_type, EXITED, "{e}");
    assert!(
        e.message
            .contains("Runtime exited with error: signal: killed"),
        "{e}"
    );
    assert!(fns.busy_pids(name).is_empty());
    let next = fns.invoke(name, json!({"after": "kill"})).await.unwrap();
    assert_eq!(next["echo"], json!({"after": "kill"}));
    assert_ne!(pid(&next), pids[0]);
    assert_eq!(fns.cold_starts(name), 2);

    // A function that ends itself without answering fails the same way.
    let e = fns.invoke(name, json!({"exit": 3})).await.unwrap_err();
    assert_eq!(e.error_type, EXITED, "{e}");
    assert!(e.message.contains("exit status 3"), "{e}");
    fns.invoke(name, json!({})).await.unwrap();
    assert_eq!(fns.cold_starts(name), 3);
    fns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_error_keeps_its_type_and_its_instance() {
    let name = "a2a-test-error";
    let fns = one(spec(name, Duration::from_secs(30), None));
    let e = fns
        .invoke(
            name,
            json!({"fail": {"type": "A2A.Permanent.Input", "message": "08x: not a school code"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.error_type, "A2A.Permanent.Input");
    assert_eq!(e.message, "08x: not a school code");
    let cause: Value = serde_json::from_str(&e.cause()).unwrap();
    assert_eq!(
        cause,
        json!({"errorType": "A2A.Permanent.Input", "errorMessage": "08x: not a school code"})
    );
    let task = a2a_asl::TaskError::from(e);
    assert_eq!(task.error, "A2A.Permanent.Input");
    // The instance that reported it serves the next invoke.
    fns.invoke(name, json!({})).await.unwrap();
    assert_eq!(fns.cold_starts(name), 1);

    let missing = "a2a-test-missing";
    let mut s = spec(missing, Duration::from_secs(30), None);
    s.binary = PathBuf::from("/nonexistent/bootstrap");
    let gone = one(s);
    let e = gone.invoke(missing, json!({})).await.unwrap_err();
    assert_eq!(e.error_type, INVALID_ENTRYPOINT, "{e}");
    assert!(gone.busy_pids(missing).is_empty());
    fns.shutdown().await;
}

/// A step binary as the template deploys it: built from the workspace's root, started
/// without its configuration (its start fails, `/init/error`, named), then with it and an
/// event it refuses (a malformed school code): the step's own error name reaches the
/// invoke, as the state machines' Catch sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_binarys_own_errors_reach_the_invoke() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let built = functions::build(&root, &["step-allocate-target".to_owned()], false)
        .unwrap_or_else(|e| panic!("{e}"));
    let binary = built["step-allocate-target"].clone();
    let name = "a2a-test-AllocateTarget";
    let spec = |env: BTreeMap<String, String>| FunctionSpec {
        name: name.to_owned(),
        binary: binary.clone(),
        env,
        timeout: Duration::from_secs(120),
        memory_mb: 256,
        reserved_concurrency: None,
    };

    let unset = one(spec(BTreeMap::new()));
    let e = unset
        .invoke(name, json!({"school_code": "08000013"}))
        .await
        .unwrap_err();
    assert_eq!(e.error_type, "A2A.Init", "{e}");
    assert!(e.message.contains("A2A_TABLE"), "{e}");
    unset.shutdown().await;

    let site = json!({
        "host": "eix.example.cat",
        "old_wwwroot": "https://agora.example.cat/{dns}/moodle",
        "prefix": "mdl_",
        "shards": [{"name": "shard-1", "db": "sqlite:///nonexistent/shard-1", "capacity": 10}],
        "templates": {"primary": {"db": "sqlite:///nonexistent/primary.db", "files": "primary",
            "wwwroot": "https://eix.example.cat/primary/moodle"}},
    });
    let fns = one(spec(BTreeMap::from([
        ("A2A_TABLE".to_owned(), "a2a-test-none".to_owned()),
        ("A2A_BUCKET".to_owned(), "a2a-test-none".to_owned()),
        ("A2A_SITE".to_owned(), site.to_string()),
    ])));
    let e = fns
        .invoke(name, json!({"school_code": "0800001x"}))
        .await
        .unwrap_err();
    assert_eq!(e.error_type, "A2A.Permanent.Input", "{e}");
    assert!(e.message.contains("0800001x"), "{e}");
    assert_eq!(fns.cold_starts(name), 1);
    fns.shutdown().await;
}

/// A function killed mid-invocation fails as [`EXITED`]; the deployed state machines
/// must retry that at every Lambda Task (one with no `HeartbeatSeconds`: an activity's
/// worker death is `States.HeartbeatTimeout`), since every step is idempotent.
#[test]
fn every_lambda_task_retries_a_killed_function() {
    fn walk(v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if m.get("Type") == Some(&json!("Task")) && !m.contains_key("HeartbeatSeconds") {
                    let retried = m["Retry"].as_array().into_iter().flatten().any(|r| {
                        r["ErrorEquals"]
                            .as_array()
                            .is_some_and(|e| e.contains(&json!(EXITED)))
                    });
                    if !retried {
                        out.push(format!("{at} ({})", m["Resource"]));
                    }
                }
                for (k, x) in m {
                    walk(x, &format!("{at}.{k}"), out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, at, out)),
            _ => {}
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../statemachines");
    let mut tasks = 0;
    let mut missing = Vec::new();
    for name in ["migrate-instance", "provision-instance"] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.asl.json"))).unwrap();
        let asl: Value = serde_json::from_str(&text).unwrap();
        tasks += text.matches("\"Type\": \"Task\"").count();
        walk(&asl, name, &mut missing);
    }
    assert!(tasks > 10, "{tasks} Tasks");
    assert!(missing.is_empty(), "no Retry names {EXITED}: {missing:#?}");
}

/// `build` looks where SAM's builder looks: from the workspace's root, only in the default
/// members, so a binary of another member is refused there (as `sam build` would refuse
/// it) and found from its package's directory ([`testfn`]).
#[test]
fn build_finds_binaries_where_sams_builder_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let e = functions::build(&root, &["stack-testfn".to_owned()], false)
        .expect_err("stack-testfn is no default member");
    assert!(e.to_string().contains("--bin stack-testfn"), "{e}");
    assert!(testfn().is_file());
    assert!(
        functions::build(&root, &[], false).unwrap().is_empty(),
        "nothing asked, nothing built"
    );
}

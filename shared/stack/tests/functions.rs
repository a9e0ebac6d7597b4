//! `a2a_stack::functions` with real binaries, built through `functions::build` as the
//! stack builds them: `stack-testfn` (the test Lambda of `shared/stack/testfn`, whose
//! event says what it does) and, when moto is there, a step binary of `functions/steps`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use a2a_stack::functions;
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

fn base() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "AWS_ENDPOINT_URL".to_owned(),
            "http://127.0.0.1:9".to_owned(),
        ),
        ("AWS_REGION".to_owned(), "eu-west-1".to_owned()),
    ])
}

fn pid(v: &Value) -> u64 {
    v["pid"].as_u64().unwrap_or_else(|| panic!("no pid in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_instances_are_reused_and_each_concurrent_one_is_a_cold_start() {
    let fns = Functions::new(
        vec![spec("a2a-test-warm", Duration::from_secs(30), None)],
        base(),
    );
    let name = "a2a-test-warm";
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
    let mut pids = Vec::new();
    for c in calls {
        pids.push(pid(&c.await.unwrap().unwrap()));
    }
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 3, "one instance per concurrent invocation");
    assert!(pids.contains(&pid(&first)));
    assert_eq!(fns.cold_starts(name), 3);
    fns.shutdown().await;
    let after = fns.invoke(name, json!({})).await.unwrap_err();
    assert_eq!(after.error_type, functions::SERVICE, "{after}");
}

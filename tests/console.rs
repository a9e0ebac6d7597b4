//! The operator's console on a state filled by a real run: `a2a history`.

mod common;

use a2a_core::{ListFilter, list_all};
use common::{a2a, text};
use serde_json::Value;

#[test]
fn history_shows_each_attempt_with_its_execution_and_every_step() {
    let home = tempfile::tempdir().unwrap();
    let o = a2a(home.path(), &["demo", "--migrations", "1", "--eix", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let instances = rt.block_on(async {
        let store = a2a_local::SqliteStore::open(&home.path().join("state.db"))
            .await
            .unwrap();
        list_all(&store, ListFilter::default()).await.unwrap()
    });
    assert_eq!(instances.len(), 2);
    for i in &instances {
        let code = i.code.to_string();
        let o = a2a(home.path(), &["history", &code, "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["status"], "active", "{v}");
        let attempts = v["attempts"].as_array().unwrap();
        // The demo starts each execution itself (no enqueue before it): one attempt.
        assert_eq!(attempts.len(), 1, "{v}");
        let first = &attempts[0];
        assert_eq!(first["attempt"], 1, "{v}");
        assert_eq!(
            first["execution"],
            a2a_core::execution_name(&i.code, i.kind, 1),
            "{v}"
        );
        let steps = first["steps"].as_array().unwrap();
        let names: Vec<&str> = a2a_steps::STEPS
            .iter()
            .filter(|s| s.workflow == i.kind)
            .map(|s| s.name)
            .collect();
        assert!(steps.len() >= 5, "{code}: {steps:?}");
        for s in steps {
            assert_eq!(s["outcome"], "succeeded", "{code}: {s}");
            assert!(s["duration_ms"].as_i64().unwrap() >= 0, "{s}");
        }
        if i.kind == a2a_core::InstanceKind::Migrate {
            assert!(
                steps.iter().any(|s| s["rows"].as_u64().unwrap_or(0) > 0),
                "a migration moves rows: {steps:?}"
            );
        }
        assert!(!names.is_empty());

        let o = a2a(home.path(), &["history", &code]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(&format!(
                "attempt 1: execution {}",
                first["execution"].as_str().unwrap()
            )),
            "{out}"
        );
    }

    // A malformed code and an unknown one: exit 2, each named.
    let o = a2a(home.path(), &["history", "0801"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = a2a(home.path(), &["history", "08999999"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("school 08999999 is not in the state"),
        "{}",
        text(&o)
    );
}

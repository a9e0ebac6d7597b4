//! Test support shared by every crate: the environment URLs of real services, and one
//! conformance suite per port, written once and run against every adapter.
//!
//! A suite is a set of plain async functions, each taking a fresh adapter; the
//! `*_conformance!` macros turn them into one `#[tokio::test]` each, so a failure names the
//! rule that broke.

#![warn(missing_docs)]

pub mod activity_suite;
pub mod blob;
mod http;
pub mod lambda;
#[cfg(feature = "aws")]
pub mod moto;
pub mod queue;
pub mod secrets;
pub mod store;

use a2a_core::{
    Instance, InstanceKind, InstanceStore, Locator, PortError, SchoolCode, Status, Wave,
};

/// Reads the URL of a real service from `var`. When it is unset, prints a loud SKIP line
/// and returns `None`; under `CI=true` an unset URL fails the test instead, because CI sets
/// them all and nothing may skip there.
pub fn service_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {var} is not set, and CI=true forbids skipping; .ci/run sets it");
            }
            // Straight to stderr, not through eprintln!: the test harness captures the
            // macros' output of passing tests, and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n######## SKIP {test}: {var} is not set; export it to run this test ########\n"
            );
            None
        }
    }
}

/// Checks that `message` holds each of `parts`; a failure lists every part it lacks.
pub fn assert_contains_all(message: &str, parts: &[&str]) {
    let missing: Vec<&str> = parts
        .iter()
        .copied()
        .filter(|p| !message.contains(p))
        .collect();
    assert!(missing.is_empty(), "{missing:?} not in {message}");
}

/// A valid school code made from a number, for tests: `code(7)` is `08000007`.
pub fn code(n: u32) -> SchoolCode {
    SchoolCode::parse(&format!("08{n:06}")).expect("08 + six digits is a valid code")
}

/// A name unique to this process and call, for tables, queues and buckets that tests
/// create in a shared emulator: lower-case letters, digits and '-'.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Registers a new instance of `code` and `kind` ("Escola", wave 1) in `store` and moves
/// it to `queued` by a versioned save, as the scheduler leaves a school for the dispatcher.
/// Returns it as saved.
pub async fn register_queued(
    store: &dyn InstanceStore,
    code: SchoolCode,
    kind: InstanceKind,
) -> Result<Instance, PortError> {
    let now = chrono::Utc::now();
    let mut i = Instance::new(code, kind, "Escola", Wave(1), now);
    store.register(&i).await?;
    i.move_to(Status::Queued, now)
        .map_err(|e| PortError::Invalid(e.to_string()))?;
    store.save(&i).await
}

/// The database engines a test can pair, each with a tag and an admin URL: SQLite always
/// (its databases as files under `dir`), PostgreSQL and MariaDB when `A2A_TEST_PG_URL` and
/// `A2A_TEST_MYSQL_URL` are set (read by [`service_url`], so a missing one is a loud SKIP).
pub fn engines(test: &str, dir: &std::path::Path) -> Vec<(&'static str, Locator)> {
    let mut out = vec![("lite", Locator::new(format!("sqlite://{}", dir.display())))];
    if let Some(u) = service_url("A2A_TEST_PG_URL", test) {
        out.push(("pg", Locator::new(u)));
    }
    if let Some(u) = service_url("A2A_TEST_MYSQL_URL", test) {
        out.push(("my", Locator::new(u)));
    }
    out
}

/// A database name unique to this process and call (see [`unique_name`]): `a2a_<tag>_…`,
/// with '_' where a name of every engine may not have '-'.
pub fn db_name(tag: &str) -> String {
    unique_name(&format!("a2a_{tag}")).replace('-', "_")
}

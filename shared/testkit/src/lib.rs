//! Test support shared by every crate: the environment URLs of real services, and one
//! conformance suite per port, written once and run against every adapter.
//!
//! A suite is a set of plain async functions, each taking a fresh adapter; the
//! `*_conformance!` macros turn them into one `#[tokio::test]` each, so a failure names the
//! rule that broke.

pub mod blob;
pub mod lambda;
pub mod queue;
pub mod store;

use a2a_core::SchoolCode;

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

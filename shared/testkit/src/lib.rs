//! Test support shared by every crate: the environment URLs of real services, and one
//! conformance suite per port, written once and run against every adapter.
//!
//! A suite is a set of plain async functions, each taking a fresh adapter; the
//! `conformance!` macro turns them into one `#[tokio::test]` each, so a failure names the
//! rule that broke.

#![warn(missing_docs)]

pub mod activity_suite;
pub mod blob;
pub mod lambda;
#[cfg(feature = "aws")]
pub mod moto;
pub mod queue;
pub mod secrets;
pub mod store;

/// Defines one `#[tokio::test]` per rule of a port's conformance suite, so that a failure
/// names the rule that broke: `conformance!(SUITE, MAKE)`, where `MAKE` is an async
/// expression giving `None` (skipped, already said) or the adapter under test:
/// `store`, an `Arc<dyn InstanceStore>`; `upload`, `(Arc<dyn UploadLedger>, Arc<dyn
/// InstanceStore>)`, both views of one store; `blob`, an `Arc<dyn BlobStore>`; `queue`, an
/// `Arc<dyn WorkQueue>`; `activities`, an [`activity_suite::Bench`].
#[macro_export]
macro_rules! conformance {
    (store, $make:expr) => {
        $crate::__suite!($make; $crate::store; register_is_idempotent, register_all_is_register_each,
            save_is_versioned, racing_writers_one_wins, list_pages_by_status_and_wave,
            history_is_ordered);
    };
    (upload, $make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn uploads_are_recorded_once() {
            if let Some((ledger, store)) = $make.await {
                $crate::store::uploads_are_recorded_once(ledger, store).await;
            }
        }
    };
    (blob, $make:expr) => {
        $crate::__suite!($make; $crate::blob; put_get_head_delete, files_stream_with_checksums,
            list_by_prefix_in_pages, copy_within_the_store, put_file_sha1_checks_the_content,
            head_sum_gives_the_content_checksum);
    };
    (queue, $make:expr) => {
        $crate::__suite!($make; $crate::queue; send_receive_delete, visibility_timeout_redelivers,
            dead_letter_after_max_receives);
    };
    (activities, $make:expr) => {
        $crate::__suite!($make; $crate::activity_suite; an_empty_poll_is_none,
            a_task_reaches_its_poller_and_its_success_comes_back,
            a_failure_comes_back_with_its_name_and_cause, each_task_goes_to_one_poller,
            an_abandoned_task_is_not_found_by_its_worker, an_unknown_token_is_not_found);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __suite {
    ($make:expr; $module:path; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                use $module as suite;
                if let Some(adapter) = $make.await {
                    suite::$name(adapter).await;
                }
            }
        )+
    };
}

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

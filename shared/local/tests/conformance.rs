//! The shared port suites, run against the embedded adapters.
//!
//! SQLite and the folder store each get a fresh temporary folder per test. The suites take
//! the adapter as an `Arc<dyn …>`, so the folder is kept alive by a small wrapper that owns
//! both and forwards every call; it is removed when the test drops the adapter.

use std::path::Path;
use std::sync::Arc;

use a2a_core::{
    BlobKey, BlobMeta, BlobStore, Instance, InstanceStore, ListFilter, Page, PortError, SchoolCode,
    StepEvent, UploadLedger,
};
use a2a_local::{FsBlob, MemQueue, SqliteStore};
use async_trait::async_trait;
use bytes::Bytes;
use tempfile::TempDir;

/// An adapter together with the temporary folder it lives in.
struct InTemp<T> {
    adapter: T,
    _dir: TempDir,
}

#[async_trait]
impl InstanceStore for InTemp<SqliteStore> {
    async fn register(&self, i: &Instance) -> Result<bool, PortError> {
        self.adapter.register(i).await
    }
    async fn register_all(&self, all: &[Instance]) -> Result<Vec<bool>, PortError> {
        self.adapter.register_all(all).await
    }
    async fn get(&self, c: &SchoolCode) -> Result<Option<Instance>, PortError> {
        self.adapter.get(c).await
    }
    async fn save(&self, i: &Instance) -> Result<Instance, PortError> {
        self.adapter.save(i).await
    }
    async fn list(
        &self,
        f: ListFilter,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page<Instance>, PortError> {
        self.adapter.list(f, limit, cursor).await
    }
    async fn record(&self, c: &SchoolCode, e: &StepEvent) -> Result<(), PortError> {
        self.adapter.record(c, e).await
    }
    async fn history(&self, c: &SchoolCode) -> Result<Vec<StepEvent>, PortError> {
        self.adapter.history(c).await
    }
}

#[async_trait]
impl BlobStore for InTemp<FsBlob> {
    async fn put(&self, k: &BlobKey, body: Bytes) -> Result<BlobMeta, PortError> {
        self.adapter.put(k, body).await
    }
    async fn put_file(&self, k: &BlobKey, p: &Path) -> Result<BlobMeta, PortError> {
        self.adapter.put_file(k, p).await
    }
    async fn put_file_sha1(
        &self,
        k: &BlobKey,
        p: &Path,
        sha1: &str,
    ) -> Result<BlobMeta, PortError> {
        self.adapter.put_file_sha1(k, p, sha1).await
    }
    async fn get(&self, k: &BlobKey) -> Result<Bytes, PortError> {
        self.adapter.get(k).await
    }
    async fn get_to_file(&self, k: &BlobKey, p: &Path) -> Result<BlobMeta, PortError> {
        self.adapter.get_to_file(k, p).await
    }
    async fn head(&self, k: &BlobKey) -> Result<Option<BlobMeta>, PortError> {
        self.adapter.head(k).await
    }
    async fn head_sum(
        &self,
        k: &BlobKey,
        a: a2a_core::SumAlgo,
    ) -> Result<Option<BlobMeta>, PortError> {
        self.adapter.head_sum(k, a).await
    }
    async fn list(
        &self,
        prefix: &str,
        cursor: Option<String>,
    ) -> Result<Page<BlobMeta>, PortError> {
        self.adapter.list(prefix, cursor).await
    }
    async fn copy(&self, from: &BlobKey, to: &BlobKey) -> Result<(), PortError> {
        self.adapter.copy(from, to).await
    }
    async fn delete(&self, k: &BlobKey) -> Result<(), PortError> {
        self.adapter.delete(k).await
    }
    async fn flush(&self) -> Result<(), PortError> {
        self.adapter.flush().await
    }
}

async fn sqlite() -> Option<Arc<dyn InstanceStore>> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let adapter = SqliteStore::open(&dir.path().join("state/a2a.sqlite"))
        .await
        .expect("open the store");
    Some(Arc::new(InTemp { adapter, _dir: dir }))
}

async fn sqlite_in_memory() -> Option<Arc<dyn InstanceStore>> {
    Some(Arc::new(
        SqliteStore::open_in_memory().await.expect("open the store"),
    ))
}

async fn folder() -> Option<Arc<dyn BlobStore>> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let adapter = FsBlob::new(dir.path().join("blobs")).expect("make the store");
    Some(Arc::new(InTemp { adapter, _dir: dir }))
}

async fn queue() -> Option<Arc<dyn a2a_core::WorkQueue>> {
    Some(Arc::new(MemQueue::new(
        a2a_testkit::queue::DEAD_LETTER_AFTER,
    )))
}

mod sqlite_file {
    a2a_testkit::conformance!(store, super::sqlite());
}

mod sqlite_memory {
    a2a_testkit::conformance!(store, super::sqlite_in_memory());
}

mod fs_blob {
    a2a_testkit::conformance!(blob, super::folder());
}

/// The upload ledger on a fresh SQLite file, seen as a ledger and as a store.
async fn sqlite_ledger() -> Option<(Arc<dyn UploadLedger>, Arc<dyn InstanceStore>)> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let adapter = SqliteStore::open(&dir.path().join("state/a2a.sqlite"))
        .await
        .expect("open the store");
    let store = Arc::new(InTemp {
        adapter: adapter.clone(),
        _dir: dir,
    });
    Some((Arc::new(adapter), store))
}

mod sqlite_uploads {
    a2a_testkit::conformance!(upload, super::sqlite_ledger());
}

mod mem_queue {
    a2a_testkit::conformance!(queue, super::queue());
}

#[tokio::test]
async fn file_secrets_conform() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Arc::new(a2a_local::FileSecrets::new(dir.path().join("secrets")));
    a2a_testkit::secrets::the_first_secret_stands(store, "08012345").await;
}

/// The local engine's side of `MemActivities`: a task scheduled as a Task state's handler
/// schedules it, its answer awaited in its own task, abandoned by dropping that.
struct Loopback {
    acts: Arc<a2a_local::MemActivities>,
    waiting: std::sync::Mutex<
        std::collections::HashMap<
            String,
            tokio::task::JoinHandle<Result<serde_json::Value, a2a_local::TaskError>>,
        >,
    >,
    next: std::sync::atomic::AtomicU64,
}

const LOOPBACK_ACTIVITY: &str = "arn:aws:states:eu-west-1:000000000000:activity:Suite";

#[async_trait]
impl a2a_testkit::activity_suite::TaskSource for Loopback {
    fn activity(&self) -> String {
        LOOPBACK_ACTIVITY.to_owned()
    }

    async fn schedule(&self, input: serde_json::Value) -> String {
        let id = self
            .next
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            .to_string();
        let answer = tokio::spawn(self.acts.schedule(LOOPBACK_ACTIVITY, input, || {}));
        self.waiting.lock().unwrap().insert(id.clone(), answer);
        id
    }

    async fn answer(
        &self,
        id: &str,
        within: std::time::Duration,
    ) -> Option<a2a_testkit::activity_suite::Answer> {
        let handle = self.waiting.lock().unwrap().remove(id)?;
        let r = tokio::time::timeout(within, handle).await.ok()?.ok()?;
        Some(r.map_err(|e| (e.error, e.message)))
    }

    async fn abandon(&self, id: &str) {
        if let Some(h) = self.waiting.lock().unwrap().remove(id) {
            h.abort();
        }
    }
}

async fn loopback() -> Option<a2a_testkit::activity_suite::Bench> {
    let acts = Arc::new(a2a_local::MemActivities::new(
        std::time::Duration::from_millis(300),
    ));
    Some(a2a_testkit::activity_suite::Bench {
        port: acts.clone(),
        source: Arc::new(Loopback {
            acts,
            waiting: Default::default(),
            next: Default::default(),
        }),
    })
}

mod mem_activities {
    a2a_testkit::conformance!(activities, super::loopback());
}

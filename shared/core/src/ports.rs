//! The ports: what the steps need from the outside world, as traits.
//!
//! Every adapter (SQLite, folder and in-process queue in `a2a-local`; DynamoDB, S3, SQS
//! and Step Functions in `a2a-aws`) implements these, and one conformance suite per port
//! (in `a2a-testkit`) runs against every adapter.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Instance, InstanceKind, SchoolCode, Status, StepEvent, Wave};

/// What can go wrong behind a port. The variants are what callers act on: a `Conflict`
/// is lost race to re-read and re-decide, `Unavailable` is the environment (exit 3),
/// `Invalid` is the caller's input (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// A versioned update lost: someone else moved the record first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The thing asked for is not there.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request itself is wrong (a bad key, a bad argument).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The backend could not be reached or refused us: network, credentials, disk.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Data came back that does not make sense: a corrupt record, a checksum mismatch.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("{0}")]
    Backend(String),
}

/// What a port's call gives: its value, or the [`PortError`] a caller branches on.
pub type PortResult<T> = Result<T, PortError>;

/// One page of a listing. `next` is an opaque cursor for the following page; `None`
/// means the listing is complete. A page may hold fewer items than asked, even none,
/// while `next` is still set.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Cursor of the next page.
    pub next: Option<String>,
}

/// Which instances to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this status. With a status set, items come ordered by wave, then code.
    pub status: Option<Status>,
    /// Only this wave.
    pub wave: Option<Wave>,
}

impl ListFilter {
    /// Every instance of `status`, in any wave.
    pub fn status(status: Status) -> Self {
        ListFilter {
            status: Some(status),
            wave: None,
        }
    }

    /// Refuses a page limit of 0, which every adapter would otherwise read as "no limit"
    /// or "nothing", each differently.
    pub fn check_limit(limit: usize) -> Result<(), PortError> {
        if limit == 0 {
            return Err(PortError::Invalid(
                "a listing page must hold at least one instance".into(),
            ));
        }
        Ok(())
    }
}

/// Instances and their step history.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Stores a new instance at version 0. Idempotent: if the code is already there,
    /// nothing changes and `Ok(false)` comes back; `Ok(true)` means it was created.
    async fn register(&self, instance: &Instance) -> Result<bool, PortError>;

    /// Registers many instances, each as [`InstanceStore::register`] does, and says per
    /// instance whether it was created. For intake, which registers whole school lists:
    /// adapters override it to save round trips (one transaction per batch in SQLite,
    /// concurrent conditional puts in DynamoDB). On an error some may be registered, and
    /// calling it again finishes the work.
    async fn register_all(&self, instances: &[Instance]) -> Result<Vec<bool>, PortError> {
        let mut created = Vec::with_capacity(instances.len());
        for i in instances {
            created.push(self.register(i).await?);
        }
        Ok(created)
    }

    /// The instance, if registered.
    async fn get(&self, code: &SchoolCode) -> Result<Option<Instance>, PortError>;

    /// Writes `instance` if the stored version is still `instance.version`, and returns
    /// it with the version bumped. Otherwise `Conflict` (or `NotFound`), and nothing is
    /// written: of two writers that read the same version, exactly one wins.
    async fn save(&self, instance: &Instance) -> Result<Instance, PortError>;

    /// One page of instances matching `filter`, at most `limit` of them.
    async fn list(
        &self,
        filter: ListFilter,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page<Instance>, PortError>;

    /// Appends a step event to the instance's history. Recording the same event twice
    /// keeps one copy.
    async fn record(&self, code: &SchoolCode, event: &StepEvent) -> Result<(), PortError>;

    /// The instance's step history, oldest first.
    async fn history(&self, code: &SchoolCode) -> Result<Vec<StepEvent>, PortError>;
}

/// Walks every page of a listing. For reports over the whole store (`a2a status`).
pub async fn list_all(
    store: &dyn InstanceStore,
    filter: ListFilter,
) -> Result<Vec<Instance>, PortError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(filter, 100, cursor).await?;
        out.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// A blob key: a relative, `/`-separated path with no empty, `.` or `..` segment, no
/// backslash and no control character. It cannot name anything outside its store.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobKey(String);

/// Why a string is not a blob key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blob key {key:?} {why}")]
pub struct KeyError {
    /// The rejected key.
    pub key: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl BlobKey {
    /// Parses a key.
    pub fn parse(key: &str) -> Result<Self, KeyError> {
        let bad = |why| {
            Err(KeyError {
                key: key.chars().take(200).collect(),
                why,
            })
        };
        if key.is_empty() {
            return bad("is empty");
        }
        if key.len() > 1024 {
            return bad("is longer than 1024 bytes");
        }
        if key.starts_with('/') {
            return bad("starts with '/'; keys are relative");
        }
        if key.contains('\\') {
            return bad("holds a backslash");
        }
        if key.chars().any(char::is_control) {
            return bad("holds a control character");
        }
        for seg in key.split('/') {
            match seg {
                "" => return bad("has an empty segment ('//' or a trailing '/')"),
                "." | ".." => return bad("has a '.' or '..' segment"),
                _ => {}
            }
        }
        Ok(Self(key.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BlobKey {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<BlobKey> for String {
    fn from(k: BlobKey) -> Self {
        k.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobKey({})", self.0)
    }
}

/// What a store knows of one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// Its key.
    pub key: BlobKey,
    /// Its size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of its content, where the store knows it.
    pub sha256: Option<String>,
    /// Lower-case hex SHA-1 of its content, where the store knows it (S3: the additional
    /// checksum of a content-addressed upload, read by [`BlobStore::head_sum`]).
    pub sha1: Option<String>,
}

/// A content checksum that a store can keep with a blob: SHA-1 for `filedir` files (Moodle
/// names them by it), SHA-256 for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SumAlgo {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl SumAlgo {
    /// The checksum of this algorithm in `meta`, if the store gave one.
    pub fn of(self, meta: &BlobMeta) -> Option<&str> {
        match self {
            Self::Sha1 => meta.sha1.as_deref(),
            Self::Sha256 => meta.sha256.as_deref(),
        }
    }
}

impl fmt::Display for SumAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sha1 => "SHA-1",
            Self::Sha256 => "SHA-256",
        })
    }
}

/// Keyed blobs: staged database chunks, moodledata files, reports.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Writes `body` under `key`, replacing what was there. Readers see the old blob or
    /// the new one, never a part. Returns the blob's size and SHA-256.
    async fn put(&self, key: &BlobKey, body: Bytes) -> Result<BlobMeta, PortError>;

    /// Like `put`, streaming from a local file instead of memory.
    async fn put_file(&self, key: &BlobKey, path: &Path) -> Result<BlobMeta, PortError>;

    /// Like `put_file`, for a content-addressed file whose content must have the SHA-1
    /// `sha1` (40 lower-case hex digits, as Moodle names `filedir` files). A file that does
    /// not match is `Corrupt`, and nothing is written. Adapters check while the bytes stream
    /// and, where the backend can (S3), send the checksum so that the server checks it too.
    ///
    async fn put_file_sha1(&self, key: &BlobKey, path: &Path, sha1: &str) -> PortResult<BlobMeta>;

    /// The whole blob; `NotFound` if there is none.
    async fn get(&self, key: &BlobKey) -> Result<Bytes, PortError>;

    /// Streams the blob into a local file (written whole or not at all) and returns its
    /// size and SHA-256. Where the store knows the checksum, a mismatch is `Corrupt`.
    async fn get_to_file(&self, key: &BlobKey, path: &Path) -> Result<BlobMeta, PortError>;

    /// Size and checksum, or `None` if there is no such blob.
    async fn head(&self, key: &BlobKey) -> Result<Option<BlobMeta>, PortError>;

    /// Like `head`, with the content's checksum in `algo` filled in (`sha1` or `sha256`)
    /// as the store holds it, without the caller downloading the blob: S3 reads the
    /// checksum stored at upload (`HeadObject` in checksum mode); the folder store, which
    /// keeps none, hashes the file again. The field stays `None` when the store holds no
    /// such checksum for this blob (one written without it): a caller checking content
    /// must count that as unverified, never as equal.
    async fn head_sum(&self, key: &BlobKey, algo: SumAlgo) -> PortResult<Option<BlobMeta>>;

    /// One page of the blobs whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str, cursor: Option<String>)
    -> Result<Page<BlobMeta>, PortError>;

    /// Copies a blob inside the store, without its bytes passing through the caller
    /// where the backend allows it.
    async fn copy(&self, from: &BlobKey, to: &BlobKey) -> Result<(), PortError>;

    /// Deletes a blob. Deleting what is not there is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<(), PortError>;

    /// Makes every blob written so far by `put_file`, `put_file_sha1` and `copy` durable.
    /// A store may acknowledge those before their bytes are on disk (the folder store
    /// does, so that many files cost one batch of disk syncs instead of one sync each);
    /// readers still see a blob whole or not at all. Call it before recording that blobs
    /// are there (a manifest), so that the record is never ahead of the disk. `put` is
    /// durable when it returns. The default does nothing, for stores whose writes are
    /// durable when acknowledged (S3); a store that wraps another must pass it on.
    async fn flush(&self) -> Result<(), PortError> {
        Ok(())
    }
}

/// Reads a SHA-1 given as 40 hex digits (either case); anything else is `Invalid`.
pub fn parse_sha1(hex_sha1: &str) -> Result<[u8; 20], PortError> {
    let bad = || PortError::Invalid(format!("{hex_sha1:?} is not a SHA-1 (40 hex digits)"));
    let raw = hex_sha1.as_bytes();
    if raw.len() != 40 {
        return Err(bad());
    }
    let mut out = [0u8; 20];
    for (i, pair) in raw.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The `Corrupt` error of a file whose content is not the SHA-1 it should have.
pub fn sha1_mismatch(path: &Path, want: &str, got: &[u8; 20]) -> PortError {
    let got: String = got.iter().map(|b| format!("{b:02x}")).collect();
    PortError::Corrupt(format!(
        "{}: content SHA-1 is {got}, but it must be {want}",
        path.display()
    ))
}

/// A message taken from a queue. It stays invisible for the visibility timeout, then comes
/// back unless deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What was sent.
    pub body: String,
    /// The handle that deletes this delivery.
    pub receipt: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

/// The fan-out queue.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Sends messages, batched as the backend allows.
    async fn send(&self, bodies: &[String]) -> Result<(), PortError>;

    /// Takes up to `max` visible messages and hides them for `visibility`. A message
    /// received more often than the queue's limit goes to the dead-letter queue instead.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Message>, PortError>;

    /// Deletes a delivered message: the work is done.
    async fn delete(&self, receipt: &str) -> Result<(), PortError>;

    /// Takes up to `max` messages from the dead-letter queue (and deletes them there).
    async fn dead_letters(&self, max: usize) -> Result<Vec<Message>, PortError>;
}

/// What a start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// A new execution, with its id (ARN in AWS).
    Started(String),
    /// An execution of that name already ran or runs: nothing new was started.
    AlreadyExists(String),
}

/// How an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Still working.
    Running,
    /// Ended well.
    Succeeded,
    /// Ended in a failure.
    Failed,
    /// Ran past its time-out.
    TimedOut,
    /// Stopped from outside.
    Aborted,
}

/// What the workflow engine says of one execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionInfo {
    /// Its id (ARN in AWS).
    pub id: String,
    /// How it stands.
    pub status: ExecutionStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it stopped, if it has.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Its output, on success.
    pub output: Option<serde_json::Value>,
    /// The error name, on failure.
    pub error: Option<String>,
    /// The error's cause, on failure.
    pub cause: Option<String>,
}

/// The workflow engine: Step Functions in AWS, the local ASL interpreter on one machine.
#[async_trait]
pub trait Workflows: Send + Sync {
    /// Starts the state machine of `kind` under `name`. Idempotent by name.
    async fn start(
        &self,
        kind: InstanceKind,
        name: &str,
        input: serde_json::Value,
    ) -> Result<StartOutcome, PortError>;

    /// How an execution stands.
    async fn describe(&self, id: &str) -> Result<ExecutionInfo, PortError>;

    /// Stops a running execution, recording why.
    async fn stop(&self, id: &str, error: &str, cause: &str) -> Result<(), PortError>;
}

/// One task of an activity, as a worker receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityTask {
    /// The token that heartbeats and the answer name it by. Opaque; never logged whole.
    pub token: String,
    /// The Task state's effective input.
    pub input: serde_json::Value,
}

/// Step Functions activities, from the worker's side: the source steps run on premises,
/// where the sources are, and are handed out this way (Step Functions in AWS, an
/// in-process queue on one machine).
#[async_trait]
pub trait Activities: Send + Sync {
    /// Waits for a task of the activity `activity` (its ARN), at most a while (a minute in
    /// AWS); `None` when none came. `worker` names the poller in the history.
    async fn poll(&self, activity: &str, worker: &str) -> Result<Option<ActivityTask>, PortError>;

    /// Reports that the task is still being worked on. `NotFound`: the task is no longer
    /// wanted (it timed out, or its execution ended), and its work can stop.
    async fn heartbeat(&self, token: &str) -> Result<(), PortError>;

    /// Ends the task with `output`. `NotFound`: the task is no longer wanted.
    async fn succeed(&self, token: &str, output: &serde_json::Value) -> Result<(), PortError>;

    /// Ends the task with the error `error` (the name Retry and Catch match) and `cause`.
    async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<(), PortError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_keys_cannot_escape() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/",
            "a/./b",
            "a\\..\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(BlobKey::parse(bad).is_err(), "{bad:?} must be refused");
        }
        for good in [
            "instances/08012345/filedir/ab/cd/abcd",
            "uploads/list 2026.csv",
            "a..b/c",
            ".hidden",
        ] {
            assert_eq!(BlobKey::parse(good).unwrap().as_str(), good);
        }
    }
}

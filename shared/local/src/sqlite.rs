//! [`SqliteStore`]: the instance store in one SQLite file.
//!
//! The layout mirrors the DynamoDB single table: `instances` holds one row per school with
//! the whole [`Instance`] as a JSON document, plus the columns that are queried (status,
//! wave, `wave#code` sort key, version); `events` holds the step history under
//! `(code, StepEvent::sort_key)`. The index on `(status, sort_key)` plays the GSI.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use a2a_core::{
    Instance, InstanceStore, ListFilter, Page, PortError, SchoolCode, StepEvent, UploadLedger,
    UploadRecord,
};
use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use crate::blocking;

/// The schema this build writes; kept in `PRAGMA user_version`.
const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Entry `i` brings the schema from version `i` to `i + 1`. Append, never edit: a file
/// made by an older build is brought forward by running the entries it has not seen.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE IF NOT EXISTS instances (
        code     TEXT PRIMARY KEY NOT NULL,
        status   TEXT NOT NULL,
        wave     INTEGER NOT NULL,
        sort_key TEXT NOT NULL,
        version  INTEGER NOT NULL,
        doc      TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS instances_status_sort ON instances (status, sort_key);
    CREATE INDEX IF NOT EXISTS instances_sort ON instances (sort_key);
    CREATE TABLE IF NOT EXISTS events (
        code     TEXT NOT NULL,
        sort_key TEXT NOT NULL,
        doc      TEXT NOT NULL,
        PRIMARY KEY (code, sort_key)
    ) WITHOUT ROWID;
",
    "
    CREATE TABLE IF NOT EXISTS uploads (
        sha256   TEXT PRIMARY KEY NOT NULL,
        name     TEXT NOT NULL,
        taken_at INTEGER NOT NULL,
        doc      TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS uploads_name ON uploads (name, taken_at);
",
];

/// How long a statement waits for another process's lock before giving up as `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Instances per transaction in `register_all`.
const REGISTER_BATCH: usize = 1000;

/// The largest page `list` returns, whatever the caller asks: bounds memory per call.
const MAX_PAGE: usize = 1000;

/// The [`InstanceStore`] in one SQLite file (or in memory, for tests).
///
/// One connection behind a mutex: calls from this process are serialised, and other
/// processes on the same file are kept out by SQLite's own locking (WAL mode, with a busy
/// timeout). Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    /// The file path as shown in errors.
    label: String,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.label)
            .finish()
    }
}

impl SqliteStore {
    /// Opens the store in the file at `path`, creating its parent folders, the file and
    /// the schema as needed (idempotent), and bringing an older schema forward. Any
    /// failure is `Unavailable` naming the file, also for a file that is not an SQLite
    /// database or was written by a newer build.
    pub async fn open(path: &Path) -> Result<SqliteStore, PortError> {
        let path = path.to_path_buf();
        blocking("open the state store", move || {
            let label = path.display().to_string();
            let fail = |what: &str, e: &dyn fmt::Display| {
                PortError::Unavailable(format!("state store {label}: {what}: {e}"))
            };
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| fail("cannot create its folder", &e))?;
            }
            let conn = Connection::open(&path).map_err(|e| fail("cannot open", &e))?;
            setup(&conn, true).map_err(|e| match e {
                Setup::Db(e) => fail("cannot open", &e),
                Setup::Newer(v) => fail(
                    "cannot open",
                    &format!(
                        "the file has schema version {v}, which this a2a does not know (it \
                         knows up to {SCHEMA_VERSION}); was it written by a newer a2a?"
                    ),
                ),
            })?;
            Ok(SqliteStore::from_conn(conn, label))
        })
        .await
    }

    /// A fresh store that lives in memory and is gone when dropped. For tests.
    pub async fn open_in_memory() -> Result<SqliteStore, PortError> {
        blocking("open an in-memory state store", || {
            let fail = |e: &dyn fmt::Display| {
                PortError::Unavailable(format!("in-memory state store: cannot open: {e}"))
            };
            let conn = Connection::open_in_memory().map_err(|e| fail(&e))?;
            setup(&conn, false).map_err(|e| match e {
                Setup::Db(e) => fail(&e),
                Setup::Newer(v) => fail(&format!("schema version {v}")),
            })?;
            Ok(SqliteStore::from_conn(conn, ":memory:".to_owned()))
        })
        .await
    }

    fn from_conn(conn: Connection, label: String) -> SqliteStore {
        SqliteStore {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                label,
            }),
        }
    }

    /// Runs `f` on the connection, on a blocking thread.
    async fn run<T, F>(&self, what: &'static str, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> Result<T, PortError> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(what, move || {
            // A panic elsewhere while holding the lock leaves the connection usable:
            // SQLite rolls back an unfinished statement or transaction itself.
            let conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn, &inner.label)
        })
        .await
    }
}

enum Setup {
    Db(rusqlite::Error),
    Newer(i64),
}

impl From<rusqlite::Error> for Setup {
    fn from(e: rusqlite::Error) -> Self {
        Setup::Db(e)
    }
}

/// Connection settings and schema migration, run at every open.
fn setup(conn: &Connection, file: bool) -> Result<(), Setup> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if file {
        // WAL lets readers (a second `a2a status`) work while a run writes. The answer is
        // the mode in force; a file system that cannot do WAL keeps its mode, which is
        // slower but still correct, so it is not an error.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        // In WAL mode NORMAL never corrupts; at worst the last commits before a power cut
        // are lost.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    // IMMEDIATE takes the write lock first, so two processes opening a new file at once
    // do not both migrate it.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let start = usize::try_from(current).map_err(|_| Setup::Newer(current))?;
    if start > SCHEMA_VERSION {
        return Err(Setup::Newer(current));
    }
    for sql in &MIGRATIONS[start..] {
        tx.execute_batch(sql)?;
    }
    if start < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION as i64)?;
    }
    tx.commit()?;
    Ok(())
}

/// Sorts an SQLite error into the port's kinds, naming the file.
fn db_err(label: &str, e: rusqlite::Error) -> PortError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => PortError::Unavailable(
            format!("state store {label} is locked by another process, try again: {e}"),
        ),
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::NoLargeFileSupport
            | ErrorCode::OutOfMemory,
        ) => PortError::Unavailable(format!("state store {label}: {e}")),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            PortError::Corrupt(format!("state store {label} is damaged: {e}"))
        }
        _ => PortError::Backend(format!("state store {label}: {e}")),
    }
}

fn to_i64(what: &str, code: &SchoolCode, n: u64) -> Result<i64, PortError> {
    i64::try_from(n)
        .map_err(|_| PortError::Invalid(format!("school {code}: {what} {n} is too large")))
}

fn encode<T: serde::Serialize>(code: &SchoolCode, v: &T) -> Result<String, PortError> {
    serde_json::to_string(v)
        .map_err(|e| PortError::Invalid(format!("school {code}: cannot encode: {e}")))
}

/// An `instances` row back into an [`Instance`], checked against its own columns.
fn decode_instance(code: Value, version: Value, doc: Value) -> Result<Instance, PortError> {
    let code = match code {
        Value::Text(s) => s,
        other => format!("{other:?}"),
    };
    let corrupt = |why: String| PortError::Corrupt(format!("school {code}: stored instance {why}"));
    let Value::Text(doc) = doc else {
        return Err(corrupt("is not JSON text".into()));
    };
    let inst: Instance =
        serde_json::from_str(&doc).map_err(|e| corrupt(format!("does not decode: {e}")))?;
    if inst.code.as_str() != code {
        return Err(corrupt(format!("names another school, {}", inst.code)));
    }
    match version {
        Value::Integer(v) if u64::try_from(v) == Ok(inst.version) => Ok(inst),
        other => Err(corrupt(format!(
            "has version {} in its document but {other:?} in its row",
            inst.version
        ))),
    }
}

/// The query of one listing page and its arguments. Every listing goes in `wave#code`
/// order, and the cursor is the last sort key returned: unique per instance, so no row is
/// skipped or repeated. One row more than `limit` is asked for, to tell whether another
/// page follows.
fn list_query(filter: ListFilter, limit: usize, cursor: Option<String>) -> (String, Vec<Value>) {
    let mut sql =
        String::from("SELECT code, version, doc, sort_key FROM instances WHERE sort_key > ?1");
    let mut args = vec![Value::Text(cursor.unwrap_or_default())];
    if let Some(status) = filter.status {
        args.push(Value::Text(status.as_str().to_owned()));
        sql.push_str(&format!(" AND status = ?{}", args.len()));
    }
    if let Some(wave) = filter.wave {
        args.push(Value::Integer(i64::from(wave.0)));
        sql.push_str(&format!(" AND wave = ?{}", args.len()));
    }
    args.push(Value::Integer(
        i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1,
    ));
    sql.push_str(&format!(" ORDER BY sort_key LIMIT ?{}", args.len()));
    (sql, args)
}

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn register(&self, instance: &Instance) -> Result<bool, PortError> {
        let mut stored = instance.clone();
        stored.version = 0;
        let doc = encode(&stored.code, &stored)?;
        let sort_key = stored.wave.sort_key(&stored.code);
        self.run("register an instance", move |conn, label| {
            let n = conn
                .prepare_cached(
                    "INSERT INTO instances (code, status, wave, sort_key, version, doc)
                     VALUES (?1, ?2, ?3, ?4, 0, ?5)
                     ON CONFLICT (code) DO NOTHING",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        stored.code.as_str(),
                        stored.status.as_str(),
                        i64::from(stored.wave.0),
                        sort_key,
                        doc
                    ])
                })
                .map_err(|e| db_err(label, e))?;
            Ok(n == 1)
        })
        .await
    }

    /// One transaction per [`REGISTER_BATCH`] instances: a whole list costs a few commits,
    /// not one per school, and the write lock is never held for long.
    async fn register_all(&self, instances: &[Instance]) -> Result<Vec<bool>, PortError> {
        let mut rows = Vec::with_capacity(instances.len());
        for i in instances {
            let mut stored = i.clone();
            stored.version = 0;
            let doc = encode(&stored.code, &stored)?;
            rows.push((
                stored.code.to_string(),
                stored.status.as_str(),
                i64::from(stored.wave.0),
                stored.wave.sort_key(&stored.code),
                doc,
            ));
        }
        let mut created = Vec::with_capacity(rows.len());
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(REGISTER_BATCH));
            let batch = std::mem::replace(&mut rows, rest);
            let mut done = self
                .run("register instances", move |conn, label| {
                    let db = |e| db_err(label, e);
                    let tx =
                        rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                            .map_err(db)?;
                    let mut out = Vec::with_capacity(batch.len());
                    {
                        let mut st = tx
                            .prepare_cached(
                                "INSERT INTO instances (code, status, wave, sort_key, version, doc)
                                 VALUES (?1, ?2, ?3, ?4, 0, ?5)
                                 ON CONFLICT (code) DO NOTHING",
                            )
                            .map_err(db)?;
                        for (code, status, wave, sort_key, doc) in &batch {
                            let n = st
                                .execute(params![code, status, wave, sort_key, doc])
                                .map_err(db)?;
                            out.push(n == 1);
                        }
                    }
                    tx.commit().map_err(db)?;
                    Ok(out)
                })
                .await?;
            created.append(&mut done);
        }
        Ok(created)
    }

    async fn get(&self, code: &SchoolCode) -> Result<Option<Instance>, PortError> {
        let code = code.clone();
        self.run("read an instance", move |conn, label| {
            let row = conn
                .prepare_cached("SELECT code, version, doc FROM instances WHERE code = ?1")
                .and_then(|mut st| {
                    st.query_row([code.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .map_err(|e| db_err(label, e))?;
            row.map(|(c, v, d)| decode_instance(c, v, d)).transpose()
        })
        .await
    }

    async fn save(&self, instance: &Instance) -> Result<Instance, PortError> {
        let code = instance.code.clone();
        let read = to_i64("version", &code, instance.version)?;
        let mut next = instance.clone();
        next.version = instance.version.checked_add(1).ok_or_else(|| {
            PortError::Invalid(format!("school {code}: version {} is too large", read))
        })?;
        let written = to_i64("version", &code, next.version)?;
        let doc = encode(&code, &next)?;
        let sort_key = next.wave.sort_key(&code);
        self.run("save an instance", move |conn, label| {
            let db = |e| db_err(label, e);
            let n = conn
                .prepare_cached(
                    "UPDATE instances SET status = ?2, wave = ?3, sort_key = ?4, version = ?5, doc = ?6
                     WHERE code = ?1 AND version = ?7",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        code.as_str(),
                        next.status.as_str(),
                        i64::from(next.wave.0),
                        sort_key,
                        written,
                        doc,
                        read
                    ])
                })
                .map_err(db)?;
            if n == 1 {
                return Ok(next);
            }
            // Nothing written: say whether it lost a race or was never there.
            let stored: Option<i64> = conn
                .prepare_cached("SELECT version FROM instances WHERE code = ?1")
                .and_then(|mut st| st.query_row([code.as_str()], |r| r.get(0)).optional())
                .map_err(db)?;
            Err(match stored {
                Some(v) => PortError::Conflict(format!(
                    "school {code}: saved from version {read}, but the store is at version {v}; \
                     read it again"
                )),
                None => PortError::NotFound(format!("school {code} is not registered")),
            })
        })
        .await
    }

    async fn list(
        &self,
        filter: ListFilter,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page<Instance>, PortError> {
        ListFilter::check_limit(limit)?;
        let limit = limit.min(MAX_PAGE);
        self.run("list instances", move |conn, label| {
            let (sql, args) = list_query(filter, limit, cursor);
            let db = |e| db_err(label, e);
            let mut st = conn.prepare_cached(&sql).map_err(db)?;
            let rows = st
                .query_map(rusqlite::params_from_iter(args), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
                })
                .map_err(db)?;
            let mut items = Vec::new();
            let mut last = None;
            let mut more = false;
            for row in rows {
                let (c, v, d, sk) = row.map_err(db)?;
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(decode_instance(c, v, d)?);
                last = Some(sk);
            }
            Ok(Page {
                items,
                next: if more { last } else { None },
            })
        })
        .await
    }

    /// Recording an event whose sort key (time, step, outcome) is already there replaces
    /// it, as a DynamoDB `PutItem` does: one copy stays.
    async fn record(&self, code: &SchoolCode, event: &StepEvent) -> Result<(), PortError> {
        let code = code.clone();
        let doc = encode(&code, event)?;
        let sort_key = event.sort_key();
        self.run("record a step event", move |conn, label| {
            conn.prepare_cached(
                "INSERT INTO events (code, sort_key, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (code, sort_key) DO UPDATE SET doc = excluded.doc",
            )
            .and_then(|mut st| st.execute(params![code.as_str(), sort_key, doc]))
            .map_err(|e| db_err(label, e))?;
            Ok(())
        })
        .await
    }

    async fn history(&self, code: &SchoolCode) -> Result<Vec<StepEvent>, PortError> {
        let code = code.clone();
        self.run("read step history", move |conn, label| {
            let db = |e| db_err(label, e);
            let mut st = conn
                .prepare_cached(
                    "SELECT sort_key, doc FROM events WHERE code = ?1 ORDER BY sort_key",
                )
                .map_err(db)?;
            let rows = st
                .query_map([code.as_str()], |r| Ok((r.get::<_, Value>(0)?, r.get(1)?)))
                .map_err(db)?;
            let mut out = Vec::new();
            for row in rows {
                let (sk, doc): (Value, Value) = row.map_err(db)?;
                let event = match doc {
                    Value::Text(doc) => serde_json::from_str(&doc).map_err(|e| e.to_string()),
                    _ => Err("is not JSON text".to_owned()),
                };
                out.push(event.map_err(|why| {
                    PortError::Corrupt(format!("school {code}: stored step event {sk:?} {why}"))
                })?);
            }
            Ok(out)
        })
        .await
    }
}

/// Uploads live in their own table: `PK=UPLOAD#<sha256>` of the single-table design.
#[async_trait]
impl UploadLedger for SqliteStore {
    async fn record_upload(&self, upload: &UploadRecord) -> Result<bool, PortError> {
        let doc = serde_json::to_string(upload).map_err(|e| {
            PortError::Invalid(format!("upload {}: cannot encode: {e}", upload.sha256))
        })?;
        let (sha, name) = (upload.sha256.clone(), upload.name.clone());
        // Nanoseconds since 1970 order the versions of one list (they fit until 2262).
        let at = upload.taken_at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        self.run("record an upload", move |conn, label| {
            let n = conn
                .prepare_cached(
                    "INSERT INTO uploads (sha256, name, taken_at, doc) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (sha256) DO NOTHING",
                )
                .and_then(|mut st| st.execute(params![sha, name, at, doc]))
                .map_err(|e| db_err(label, e))?;
            Ok(n == 1)
        })
        .await
    }

    async fn upload(&self, sha256: &str) -> Result<Option<UploadRecord>, PortError> {
        let sha = sha256.to_owned();
        self.run("read an upload", move |conn, label| {
            let doc: Option<String> = conn
                .prepare_cached("SELECT doc FROM uploads WHERE sha256 = ?1")
                .and_then(|mut st| st.query_row([sha.as_str()], |r| r.get(0)).optional())
                .map_err(|e| db_err(label, e))?;
            doc.map(|d| decode_upload(&sha, &d)).transpose()
        })
        .await
    }

    async fn latest_upload(&self, name: &str) -> Result<Option<UploadRecord>, PortError> {
        let name = name.to_owned();
        self.run("read the latest upload", move |conn, label| {
            let row: Option<(String, String)> = conn
                .prepare_cached(
                    "SELECT sha256, doc FROM uploads WHERE name = ?1
                     ORDER BY taken_at DESC, sha256 DESC LIMIT 1",
                )
                .and_then(|mut st| {
                    st.query_row([name.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(|e| db_err(label, e))?;
            row.map(|(sha, d)| decode_upload(&sha, &d)).transpose()
        })
        .await
    }
}

fn decode_upload(sha: &str, doc: &str) -> Result<UploadRecord, PortError> {
    serde_json::from_str(doc)
        .map_err(|e| PortError::Corrupt(format!("stored upload {sha} does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use a2a_core::{InstanceKind, Status, UploadLedger, Wave};
    use chrono::{TimeZone, Utc};

    fn code(n: u32) -> SchoolCode {
        SchoolCode::parse(&format!("08{n:06}")).unwrap()
    }

    fn instance(n: u32, wave: u32) -> Instance {
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 21, 0, 0).unwrap();
        Instance::new(code(n), InstanceKind::Migrate, "Escola", Wave(wave), t)
    }

    fn user_version(path: &Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn reopening_a_file_keeps_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/er/state.sqlite");
        let store = SqliteStore::open(&path).await.unwrap();
        let mut i = instance(1, 2);
        store.register(&i).await.unwrap();
        i.move_to(Status::Queued, Utc::now()).unwrap();
        let saved = store.save(&i).await.unwrap();
        let event = StepEvent::started("preflight", Utc::now());
        store.record(&i.code, &event).await.unwrap();
        drop(store);

        let again = SqliteStore::open(&path).await.unwrap();
        assert_eq!(again.get(&i.code).await.unwrap(), Some(saved));
        assert_eq!(again.history(&i.code).await.unwrap(), vec![event]);
    }

    #[tokio::test]
    async fn schema_creation_is_idempotent_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let a = SqliteStore::open(&path).await.unwrap();
        a.register(&instance(1, 1)).await.unwrap();
        // A second open while the first is still in use, then a third after.
        let b = SqliteStore::open(&path).await.unwrap();
        assert!(b.get(&code(1)).await.unwrap().is_some());
        drop((a, b));
        let c = SqliteStore::open(&path).await.unwrap();
        assert!(c.get(&code(1)).await.unwrap().is_some());
        drop(c);
        assert_eq!(user_version(&path), SCHEMA_VERSION as i64);
        let conn = Connection::open(&path).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_file_of_the_first_schema_gains_the_uploads_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = SqliteStore::open(&path).await.unwrap();
        store.register(&instance(1, 1)).await.unwrap();
        drop(store);
        // Back to how the first build left it.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE uploads; PRAGMA user_version = 1;")
            .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.get(&code(1)).await.unwrap().is_some());
        assert_eq!(store.upload(&"a".repeat(64)).await.unwrap(), None);
        assert_eq!(user_version(&path), SCHEMA_VERSION as i64);
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        drop(SqliteStore::open(&path).await.unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        match SqliteStore::open(&path).await {
            Err(PortError::Unavailable(m)) => {
                assert!(m.contains(&path.display().to_string()), "{m}");
                assert!(m.contains("99"), "{m}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_file_that_is_no_database_is_unavailable_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(
            &path,
            "this is not a database, only some text. ".repeat(100),
        )
        .unwrap();
        match SqliteStore::open(&path).await {
            Err(PortError::Unavailable(m)) => assert!(m.contains("notes.txt"), "{m}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        // A folder where the file should be.
        match SqliteStore::open(dir.path()).await {
            Err(PortError::Unavailable(m)) => {
                assert!(m.contains(&dir.path().display().to_string()), "{m}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_undecodable_document_is_corrupt_naming_the_school() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = SqliteStore::open(&path).await.unwrap();
        store.register(&instance(42, 1)).await.unwrap();
        store.register(&instance(43, 1)).await.unwrap();
        Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE instances SET doc = '{\"code\": 1}' WHERE code = '08000042'",
                [],
            )
            .unwrap();
        for r in [
            store.get(&code(42)).await.map(|_| ()),
            store
                .list(ListFilter::default(), 10, None)
                .await
                .map(|_| ()),
        ] {
            match r {
                Err(PortError::Corrupt(m)) => assert!(m.contains("08000042"), "{m}"),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
        assert!(store.get(&code(43)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn register_stores_version_zero_and_save_refuses_the_unregistered() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let mut i = instance(5, 1);
        i.version = 7;
        assert!(store.register(&i).await.unwrap());
        assert_eq!(store.get(&i.code).await.unwrap().unwrap().version, 0);
        assert!(matches!(
            store.save(&instance(6, 1)).await,
            Err(PortError::NotFound(m)) if m.contains("08000006")
        ));
    }

    #[tokio::test]
    async fn listing_without_status_goes_by_wave_then_code_and_refuses_empty_pages() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        for (n, w) in [(1, 3), (2, 1), (3, 2), (4, 1), (5, 10)] {
            store.register(&instance(n, w)).await.unwrap();
        }
        let mut got = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list(ListFilter::default(), 2, cursor.take())
                .await
                .unwrap();
            got.extend(page.items.into_iter().map(|i| i.code));
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(got, [2, 4, 3, 1, 5].map(code));
        // An exact last page says it is the last.
        let page = store.list(ListFilter::default(), 5, None).await.unwrap();
        assert_eq!((page.items.len(), page.next), (5, None));
        assert!(matches!(
            store.list(ListFilter::default(), 0, None).await,
            Err(PortError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn listing_by_status_uses_the_status_index() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let filter = ListFilter {
            status: Some(Status::Queued),
            wave: Some(Wave(2)),
        };
        let (sql, args) = list_query(filter, 10, None);
        let plan = store
            .run("plan", move |conn, _| {
                let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                let rows = st
                    .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                    .unwrap();
                Ok(rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("\n"))
            })
            .await
            .unwrap();
        assert!(plan.contains("instances_status_sort"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort step: {plan}");
    }
}

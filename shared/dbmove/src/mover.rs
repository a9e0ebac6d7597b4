//! Export to staged chunks, and import from them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use a2a_core::BlobStore;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::DbError;
use crate::engine::{Db, Engine, LEDGER_TABLE, Load, RawChunk};
use crate::pgcopy::Tuples;
use crate::schema::{Row, Table};
use crate::stage::{
    ChunkFormat, ChunkInfo, ChunkWriter, ExportIndex, ExportTables, Manifest, chunk_key,
    decode_chunk_as, index_key, manifest_key, open_native, partial_key, tables_key,
};

/// How big a chunk may grow.
#[derive(Debug, Clone, Copy)]
pub struct CopyLimits {
    /// Rows in one chunk (and in one keyset page).
    pub chunk_rows: usize,
    /// Uncompressed bytes in one chunk (a single bigger row still makes one chunk).
    pub chunk_bytes: usize,
    /// Stage chunks in the source engine's own bulk format: PostgreSQL's binary `COPY`
    /// stream, MySQL's `LOAD DATA` text (a target of the same engine loads them as they
    /// are); SQLite has none. `false`: JSON Lines, from every source.
    pub native: bool,
    /// Source bytes under which a workflow's export part reads a table it begins in one
    /// scan, in the engine's order; a bigger one is read in key-ordered pages, and its
    /// manifest is published as it goes, so that the import follows it chunk by chunk.
    pub whole_read: u64,
}

impl Default for CopyLimits {
    fn default() -> Self {
        Self {
            chunk_rows: 20_000,
            // Up to three chunks per connection are in memory as values (read, waiting,
            // loading), several times their raw size: 4 MB keeps a copy under 300 MB.
            chunk_bytes: 4 << 20,
            native: true,
            whole_read: WHOLE_READ,
        }
    }
}

impl CopyLimits {
    /// The chunk format of a new export from `src`.
    fn format(&self, src: &Db) -> ChunkFormat {
        match src.engine() {
            Engine::Postgres if self.native => ChunkFormat::PgCopy,
            Engine::MySql if self.native => ChunkFormat::MyTsv,
            _ => ChunkFormat::JsonLines,
        }
    }
}

/// Hears how a long run goes (the CLI draws bars from it).
pub trait Progress: Send + Sync {
    /// A table's work starts; `what` is `export`, `import` or `verify`.
    fn table(&self, _what: &str, _table: &str) {}
    /// Rows done since the last call.
    fn rows(&self, _n: u64) {}
    /// A phase of the whole run is over (`copy`: `introspect`, `target`, `data`, `done`):
    /// for a profile of where the time goes.
    fn phase(&self, _what: &str) {}
}

/// Hears nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// How much one run may do before it stops cleanly, to be resumed by the next (a
/// Lambda's 15 minutes): at most a number of chunks, and no chunk started after a
/// deadline. A run always gets its first chunk, so that every run makes progress.
#[derive(Debug)]
pub struct Budget {
    chunks: Option<AtomicU64>,
    until: Option<Instant>,
    started: AtomicBool,
}

impl Budget {
    /// No limit: the run goes to the end.
    pub fn unlimited() -> Self {
        Self::new(None, None)
    }

    /// At most `max_chunks` chunks (at least one), and none started after `time`.
    pub fn new(max_chunks: Option<u64>, time: Option<Duration>) -> Self {
        Self {
            chunks: max_chunks.map(|n| AtomicU64::new(n.max(1))),
            until: time.map(|t| Instant::now() + t),
            started: AtomicBool::new(false),
        }
    }

    /// Whether another chunk may start.
    fn left(&self) -> bool {
        if !self.started.load(Relaxed) {
            return true;
        }
        self.until.is_none_or(|u| Instant::now() < u)
            && self.chunks.as_ref().is_none_or(|c| c.load(Relaxed) > 0)
    }

    /// Whether it caps the number of chunks (`--max-chunks` or a step's `max_chunks`).
    fn capped(&self) -> bool {
        self.chunks.is_some()
    }

    /// Whether the time is up, first chunk or not: a run that waits for chunks to load
    /// stops waiting then.
    fn time_up(&self) -> bool {
        self.until.is_some_and(|u| Instant::now() >= u)
    }

    /// Takes one chunk before starting it; `false` (nothing taken) when none is left.
    fn take(&self) -> bool {
        let first = !self.started.swap(true, Relaxed);
        if !first && self.until.is_some_and(|u| Instant::now() >= u) {
            return false;
        }
        match &self.chunks {
            None => true,
            Some(c) => c
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    /// Counts one chunk done after the fact; whether another may follow.
    fn spend(&self) -> bool {
        self.started.store(true, Relaxed);
        if let Some(c) = &self.chunks {
            let _ = c.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
        }
        self.left()
    }
}

/// What an export did.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Tables staged.
    pub tables: usize,
    /// Rows staged.
    pub rows: u64,
    /// Chunks written.
    pub chunks: u64,
    /// Compressed bytes written.
    pub bytes: u64,
    /// Whether the export is whole (`false`: a budgeted export stopped; run it again).
    pub complete: bool,
}

/// Runs `f` over `items` on a pool of workers (connections, or pairs of them), each
/// taking the next item when free. Results come back in the items' order.
pub(crate) async fn pool<'a, W, T, R, F, Fut>(
    workers: &[W],
    items: &'a [T],
    f: F,
) -> Result<Vec<R>, DbError>
where
    W: Copy,
    F: Fn(W, &'a T) -> Fut,
    Fut: std::future::Future<Output = Result<R, DbError>>,
{
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (next, f) = (&next, &f);
    let running = workers.iter().map(|&w| async move {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return Ok::<_, DbError>(out);
            };
            out.push((i, f(w, item).await?));
        }
    });
    let mut all: Vec<(usize, R)> = futures::future::try_join_all(running)
        .await?
        .into_iter()
        .flatten()
        .collect();
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

/// A table smaller than this on disk (as the engine estimates it) is copied in a group
/// with other small ones; a staged table of one chunk smaller than [`SMALL_STAGED`]
/// compressed bytes is imported in one. A real Moodle has about 500 tables, most nearly
/// empty: alone, each would pay its own transactions, commits and index DDL.
pub const SMALL_TABLE: u64 = 1 << 20;
/// See [`SMALL_TABLE`].
const SMALL_STAGED: u64 = 256 << 10;
/// [`CopyLimits::whole_read`]'s default. A scan in the engine's order is a fifth cheaper
/// than key-ordered pages on PostgreSQL, but a run stopped inside it starts the table over
/// and nothing of it can be imported before it is whole: worth it for the many tables
/// staged within seconds, not for the few big ones that an import should follow.
pub const WHOLE_READ: u64 = 64 << 20;
/// A keyed export publishes its table's manifest every so many chunks.
const PUBLISH_EVERY: usize = 8;
/// At most so many tables in one group, so that the groups spread over the connections.
const GROUP_TABLES: usize = 48;
/// Rows of a group held back for one transaction (staged bytes, uncompressed).
const GROUP_LOAD_BYTES: u64 = 4 << 20;

/// What one connection (or pair) takes at a time: a big table alone, or small ones
/// together.
enum Work<T> {
    One(T),
    Group(Vec<T>),
}

impl<T: Copy> Work<T> {
    fn items(&self) -> Vec<T> {
        match self {
            Work::One(t) => vec![*t],
            Work::Group(ts) => ts.clone(),
        }
    }
}

/// The order of work: the big items first, biggest first, so that the longest starts
/// at once and the others fill the free connections; then the small ones in groups.
fn plan<T: Copy>(items: &[T], size: impl Fn(T) -> u64, small: impl Fn(T) -> bool) -> Vec<Work<T>> {
    let mut big: Vec<T> = items.iter().copied().filter(|&t| !small(t)).collect();
    big.sort_by_key(|&t| std::cmp::Reverse(size(t)));
    let little: Vec<T> = items.iter().copied().filter(|&t| small(t)).collect();
    let mut out: Vec<Work<T>> = big.into_iter().map(Work::One).collect();
    out.extend(little.chunks(GROUP_TABLES).map(|g| Work::Group(g.to_vec())));
    out
}

/// Whether a staged table is imported in a group ([`SMALL_STAGED`]); [`begin_import`]
/// then creates it with its indexes.
fn small_manifest(m: &Manifest) -> bool {
    m.chunks.len() <= 1 && m.chunks.iter().map(|c| c.bytes).sum::<u64>() < SMALL_STAGED
}

/// Where chunks go into a target: at once (`hold` 0), or held back until `hold` bytes
/// are waiting, to share one transaction and one ledger statement with the next
/// tables' chunks.
struct Loader<'a> {
    dst: &'a Db,
    hold: u64,
    pending: std::sync::Mutex<(Vec<Load<'a>>, u64)>,
}

impl<'a> Loader<'a> {
    fn new(dst: &'a Db, hold: u64) -> Self {
        Self {
            dst,
            hold,
            pending: std::sync::Mutex::new((Vec::new(), 0)),
        }
    }

    /// Takes chunk `n` of `t` (`bytes` big), as rows or as staged bytes the target loads
    /// as they are; loads what is held once there is enough.
    async fn add(
        &self,
        t: &'a Table,
        n: u64,
        rows: Vec<Row>,
        raw: Option<RawChunk>,
        bytes: u64,
    ) -> Result<(), DbError> {
        let ready = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.0.push(Load {
                table: t,
                rows,
                raw,
                ledger: Some(n as i64),
            });
            p.1 += bytes;
            (p.1 >= self.hold).then(|| std::mem::take(&mut *p).0)
        };
        match ready {
            Some(parts) => self.dst.load_many(parts).await,
            None => Ok(()),
        }
    }

    /// Loads what is held.
    async fn flush(&self) -> Result<(), DbError> {
        let parts = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner())).0;
        self.dst.load_many(parts).await
    }
}

/// Exports every table of `prefix` from `src` into `store`, in one consistent snapshot.
/// Every column is mapped before anything is written: an unmappable type stops it first.
///
/// `jobs` tables are read at once, on connections that share one snapshot
/// ([`Db::begin_shared_snapshot`]: PostgreSQL, and MySQL with the privilege of a global
/// read lock); elsewhere the export stays on one connection.
pub async fn export(
    src: &Db,
    store: &dyn BlobStore,
    prefix: &str,
    limits: CopyLimits,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<ExportReport, DbError> {
    let tables = src.introspect(prefix).await?;
    let dbs = src
        .begin_shared_snapshot(jobs.clamp(1, tables.len().max(1)) - 1)
        .await?;
    let r = export_in_snapshot(src, &dbs, store, prefix, &tables, limits, progress).await;
    for db in &dbs {
        db.end_snapshot().await?;
    }
    let end = src.end_snapshot().await;
    let r = r?;
    end?;
    Ok(r)
}

async fn export_in_snapshot(
    src: &Db,
    helpers: &[Db],
    store: &dyn BlobStore,
    prefix: &str,
    tables: &[Table],
    limits: CopyLimits,
    progress: &dyn Progress,
) -> Result<ExportReport, DbError> {
    // An old index would claim a complete export while this one runs.
    store.delete(&index_key()?).await?;
    store.delete(&partial_key()?).await?;
    let export_id = new_export_id();
    let export_id = export_id.as_str();
    let mut report = ExportReport {
        tables: tables.len(),
        rows: 0,
        chunks: 0,
        bytes: 0,
        complete: true,
    };
    let dbs: Vec<&Db> = std::iter::once(src).chain(helpers).collect();
    let manifests = pool(&dbs, tables, |db, t| async move {
        progress.table("export", &t.name);
        let mut m = export_table(db, store, t, limits, progress, None, Resume::default()).await?;
        m.export_id = export_id.to_owned();
        put_manifest(store, &m).await?;
        Ok(m)
    })
    .await?;
    for m in &manifests {
        report.rows += m.rows;
        report.chunks += m.chunks.len() as u64;
        report.bytes += m.chunks.iter().map(|c| c.bytes).sum::<u64>();
    }
    let index = export_index(
        src,
        prefix,
        tables,
        limits,
        export_id.to_owned(),
        report.rows,
    );
    let body = serde_json::to_vec_pretty(&index).map_err(|e| DbError::Backend(e.to_string()))?;
    store.put(&index_key()?, Bytes::from(body)).await?;
    Ok(report)
}

/// Exports one table into chunks. With `load`, each chunk is also loaded into that target
/// (with its ledger row) while the next one is read: `copy`'s pipeline.
async fn export_table<'t>(
    src: &Db,
    store: &dyn BlobStore,
    t: &'t Table,
    limits: CopyLimits,
    progress: &dyn Progress,
    load: Option<&Loader<'t>>,
    resume: Resume<'_>,
) -> Result<Manifest, DbError> {
    let pk = t.pk_positions();
    // A table goes on in the format it was begun in.
    let format = match resume.from {
        Some(m) => ChunkFormat::of(&m.format, &format!("manifest of {}", t.name))?,
        None => limits.format(src),
    };
    let (start_after, chunks0, rows0) = match resume.from {
        Some(m) => {
            let key = match &m.resume_after {
                Some(k) => Some(crate::stage::decode_key(t, k)?),
                None => None,
            };
            (key, m.chunks.clone(), m.rows)
        }
        None => (None, Vec::new(), 0),
    };
    // A budget only cuts a keyed table: one without a key cannot be resumed inside.
    let budget = if pk.is_empty() { None } else { resume.budget };
    let (rtx, mut rrx) = mpsc::channel::<Vec<Row>>(4);
    let (ttx, mut trx) = mpsc::channel::<Tuples>(4);
    // One chunk waits for the loader while the next is built: memory stays two chunks.
    let (ltx, mut lrx) = mpsc::channel::<Loaded>(1);
    // Key order and pages only where a run may stop inside the table and go on after its
    // last key; otherwise one query in the engine's own order (PostgreSQL: a sequential
    // scan instead of an index scan a page), as the snapshot keeps it consistent.
    let keyed = budget.is_some() || start_after.is_some();
    let producer = async move {
        let page = limits.chunk_rows;
        let r = match format {
            ChunkFormat::JsonLines | ChunkFormat::MyTsv => {
                src.stream_rows(t, keyed, page, start_after, &rtx).await
            }
            ChunkFormat::PgCopy => src.stream_tuples(t, keyed, page, start_after, &ttx).await,
        };
        drop((rtx, ttx));
        r
    };
    // A target that takes the chunk's format gets it as it is (no rows kept, nothing
    // encoded twice); another, its rows.
    let raw_to_load = load.is_some_and(|l| l.dst.takes_as_is(format));
    let rows_to_load = load.is_some() && !raw_to_load;
    let pk = &pk;
    let consumer = async move {
        let mut c = Chunker {
            store,
            table: &t.name,
            limits,
            w: ChunkWriter::with(format, raw_to_load, room(limits))?,
            keep_raw: raw_to_load,
            kept: Vec::new(),
            chunks: chunks0,
            rows: 0,
            ltx: load.map(|_| ltx),
            budget,
            publish: budget.and(resume.publish).map(|id| (t, id, rows0)),
        };
        // Out of budget: the rows after the last chunk are read again next time, after
        // its last key.
        let stopped = |c: Chunker<'_>, key: Row| Ok::<_, DbError>((c.chunks, c.rows, Some(key)));
        loop {
            let batch = match format {
                ChunkFormat::JsonLines | ChunkFormat::MyTsv => rrx.recv().await.map(Ok),
                ChunkFormat::PgCopy => trx.recv().await.map(Err),
            };
            match batch {
                None => break,
                Some(Ok(rows)) => {
                    progress.rows(rows.len() as u64);
                    for row in rows {
                        c.w.push(&row)?;
                        let key: Option<Row> =
                            budget.map(|_| pk.iter().map(|&i| row[i].clone()).collect());
                        if rows_to_load {
                            c.kept.push(row);
                        }
                        let key_now = || {
                            key.clone()
                                .ok_or_else(|| DbError::Backend("a keyed read without key".into()))
                        };
                        if !c.row_done(key_now).await?
                            && let Some(key) = key
                        {
                            return stopped(c, key);
                        }
                    }
                }
                Some(Err(tuples)) => {
                    progress.rows(tuples.len() as u64);
                    for tuple in tuples.iter() {
                        c.w.push_tuple(tuple)?;
                        if rows_to_load {
                            c.kept.push(crate::pgcopy::decode_tuple(t, tuple)?);
                        }
                        if !c
                            .row_done(|| crate::pgcopy::decode_key(t, pk, tuple))
                            .await?
                        {
                            let key = crate::pgcopy::decode_key(t, pk, tuple)?;
                            return stopped(c, key);
                        }
                    }
                }
            }
        }
        c.end().await?;
        Ok::<_, DbError>((c.chunks, c.rows, None))
    };
    let loader = async move {
        while let Some((n, rows, raw, bytes)) = lrx.recv().await {
            if let Some(dst) = load {
                dst.add(t, n, rows, raw, bytes).await?;
            }
        }
        Ok::<_, DbError>(())
    };
    let (produced, consumed, loaded) = tokio::join!(producer, consumer, loader);
    // The loader's, then the consumer's error is the cause when several failed (the
    // others then saw a closed channel).
    loaded?;
    let (chunks, rows, stopped_after) = consumed?;
    if let Some(key) = stopped_after {
        // The reader was stopped on purpose: its "reader stopped" error is expected.
        return Ok(Manifest {
            format: format.tag().into(),
            export_id: String::new(),
            table: t.clone(),
            chunks,
            rows: rows0 + rows,
            complete: false,
            resume_after: Some(crate::stage::encode_key(&key)),
        });
    }
    let sent = produced?;
    if sent != rows {
        return Err(DbError::Backend(format!(
            "{}: {sent} rows read but {rows} staged",
            t.name
        )));
    }
    Ok(Manifest {
        format: format.tag().into(),
        export_id: String::new(),
        table: t.clone(),
        chunks,
        rows: rows0 + rows,
        complete: true,
        resume_after: None,
    })
}

/// A chunk on its way to the loader: its number, its rows (or none), its staged bytes for
/// a target that takes them as they are (or none), its uncompressed size.
type Loaded = (u64, Vec<Row>, Option<RawChunk>, u64);

/// Cuts one table's rows into chunks as they come: each full chunk is written to the
/// stage and recorded, and handed to the loader if there is one.
struct Chunker<'a> {
    store: &'a dyn BlobStore,
    table: &'a str,
    limits: CopyLimits,
    w: ChunkWriter,
    keep_raw: bool,
    /// The rows of the chunk being built, for the loader.
    kept: Vec<Row>,
    chunks: Vec<ChunkInfo>,
    rows: u64,
    ltx: Option<mpsc::Sender<Loaded>>,
    budget: Option<&'a Budget>,
    /// Where the manifest is published as the table goes: the table, its export's id,
    /// the rows staged before this run.
    publish: Option<(&'a Table, &'a str, u64)>,
}

impl Chunker<'_> {
    /// After a row went into the writer: cuts the chunk once full, and every
    /// [`PUBLISH_EVERY`] chunks publishes the manifest, to resume after `key`, this row's
    /// key. `false`: the budget is spent, stop after this row.
    async fn row_done(
        &mut self,
        key: impl FnOnce() -> Result<Row, DbError>,
    ) -> Result<bool, DbError> {
        self.rows += 1;
        if (self.w.rows as usize) < self.limits.chunk_rows
            && (self.w.raw_bytes as usize) < self.limits.chunk_bytes
        {
            return Ok(true);
        }
        self.cut().await?;
        if let Some((t, export_id, rows0)) = self.publish
            && self.chunks.len().is_multiple_of(PUBLISH_EVERY)
        {
            // Every chunk it lists is final: a rerun goes on after its key.
            let m = Manifest {
                format: self.w.format.tag().into(),
                export_id: export_id.to_owned(),
                table: t.clone(),
                chunks: self.chunks.clone(),
                rows: rows0 + self.rows,
                complete: false,
                resume_after: Some(crate::stage::encode_key(&key()?)),
            };
            put_manifest(self.store, &m).await?;
        }
        Ok(self.budget.is_none_or(Budget::spend))
    }

    async fn cut(&mut self) -> Result<(), DbError> {
        let next = ChunkWriter::with(self.w.format, self.keep_raw, room(self.limits))?;
        let full = std::mem::replace(&mut self.w, next);
        let (raw_bytes, format, count) = (full.raw_bytes, full.format, full.rows);
        let (n, raw) = flush(self.store, self.table, full, &mut self.chunks).await?;
        if let Some(ltx) = &self.ltx {
            let rows = std::mem::take(&mut self.kept);
            let raw = raw.map(|b| RawChunk {
                format,
                bytes: Bytes::from(b),
                rows: count,
            });
            ltx.send((n, rows, raw, raw_bytes))
                .await
                .map_err(|_| DbError::Backend("the loader stopped".into()))?;
        }
        Ok(())
    }

    /// Writes the last chunk, if it has rows, and lets the loader finish.
    async fn end(&mut self) -> Result<(), DbError> {
        if self.w.rows > 0 {
            self.cut().await?;
            if let Some(b) = self.budget {
                b.spend();
            }
        }
        self.ltx = None;
        Ok(())
    }
}

/// Writes a table's manifest to the stage.
async fn put_manifest(store: &dyn BlobStore, m: &Manifest) -> Result<(), DbError> {
    let body = serde_json::to_vec_pretty(m).map_err(|e| DbError::Backend(e.to_string()))?;
    store
        .put(&manifest_key(&m.table.name)?, Bytes::from(body))
        .await?;
    Ok(())
}

/// The room a chunk's writer takes at once: the chunk's size and a row past it.
fn room(limits: CopyLimits) -> usize {
    limits.chunk_bytes + (64 << 10)
}

/// Where a table's export starts and how many chunks it may still write.
#[derive(Default, Clone, Copy)]
struct Resume<'a> {
    /// The partial manifest of an earlier run of this export.
    from: Option<&'a Manifest>,
    /// What this run may still do.
    budget: Option<&'a Budget>,
    /// The export's id, to publish the table's manifest as it goes (a keyed read only).
    publish: Option<&'a str>,
}

/// Writes one finished chunk to the stage and records it: its number, and its
/// uncompressed bytes if the writer kept them.
async fn flush(
    store: &dyn BlobStore,
    table: &str,
    w: ChunkWriter,
    chunks: &mut Vec<ChunkInfo>,
) -> Result<(u64, Option<Vec<u8>>), DbError> {
    let n = chunks.len() as u64 + 1;
    let key = chunk_key(table, n, w.format)?;
    let count = w.rows;
    let crate::stage::Finished { body, sha256, raw } = w.finish()?;
    let bytes = body.len() as u64;
    // A run killed after writing this chunk and before recording it left the very same
    // bytes (the same rows, from the same key, of a frozen source): not sent again. A
    // store that keeps no checksum (a folder) is written again.
    let there = store.head(&key).await?;
    let same = there.is_some_and(|m| m.size == bytes && m.sha256.as_deref() == Some(&sha256));
    if !same {
        store.put(&key, Bytes::from(body)).await?;
    }
    chunks.push(ChunkInfo {
        n,
        key: key.to_string(),
        rows: count,
        bytes,
        sha256,
    });
    Ok((n, raw))
}

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Drop the target's tables of the prefix first, instead of refusing them.
    pub replace: bool,
    /// Stop after committing this many chunks (a Lambda's time budget); a rerun resumes.
    pub max_chunks: Option<u64>,
    /// Tables loaded at once, each on its own connection (SQLite: always one).
    pub jobs: usize,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Tables in the export.
    pub tables: usize,
    /// Rows loaded by this run.
    pub rows: u64,
    /// Chunks loaded by this run.
    pub chunks: u64,
    /// Chunks found already committed (a resumed import).
    pub chunks_skipped: u64,
    /// Whether the import is complete (indexes built, sequences carried, ledger gone).
    pub complete: bool,
    /// Whether this run resumed an earlier one.
    pub resumed: bool,
}

/// Reads the export index of a stage.
pub async fn read_index(store: &dyn BlobStore) -> Result<ExportIndex, DbError> {
    let body = store.get(&index_key()?).await.map_err(|e| match e {
        a2a_core::PortError::NotFound(_) => DbError::Input(
            "the stage holds no complete export (dbmove/export.json is missing)".into(),
        ),
        e => DbError::Stage(e),
    })?;
    let index: ExportIndex =
        serde_json::from_slice(&body).map_err(|e| DbError::Corrupt(format!("export.json: {e}")))?;
    ChunkFormat::of(&index.format, "export.json")?;
    Ok(index)
}

async fn read_manifest(store: &dyn BlobStore, table: &str) -> Result<Manifest, DbError> {
    let body = store.get(&manifest_key(table)?).await?;
    let m: Manifest = serde_json::from_slice(&body)
        .map_err(|e| DbError::Corrupt(format!("manifest of {table}: {e}")))?;
    ChunkFormat::of(&m.format, &format!("manifest of {table}"))?;
    Ok(m)
}

/// The manifests of `tables`, in their order, a few read at once: a Moodle has about 500
/// tables, and one read after the other from an object store is seconds of round trips.
pub(crate) async fn read_manifests(
    store: &dyn BlobStore,
    tables: impl IntoIterator<Item = &String>,
) -> Result<Vec<Manifest>, DbError> {
    use futures::{StreamExt, TryStreamExt};
    // Owned names: a closure over borrowed ones makes the future not `Send` for tokio.
    let names: Vec<String> = tables.into_iter().cloned().collect();
    futures::stream::iter(names)
        .map(|t| async move { read_manifest(store, &t).await })
        .buffered(16)
        .try_collect()
        .await
}

/// Creates `tables` (flagged as for [`Db::create_tables`]) in groups spread over `dbs`,
/// connections to one database: DDL for about 500 tables is seconds on one connection.
async fn create_tables_on(dbs: &[&Db], tables: &[(&Table, bool)]) -> Result<(), DbError> {
    let groups: Vec<&[(&Table, bool)]> = tables.chunks(GROUP_TABLES).collect();
    pool(dbs, &groups, |db, group| db.create_tables(group)).await?;
    Ok(())
}

/// A connection to `dst` of its own to create the `small` tables on beside the loads
/// (none where there are none, or where the engine takes one writer: SQLite).
async fn ddl_connection(dst: &Db, small: &[(&Table, bool)]) -> Result<Option<Db>, DbError> {
    if dst.engine() == Engine::Sqlite || small.is_empty() {
        return Ok(None);
    }
    let db = Db::connect(dst.locator(), false).await?;
    db.relax_durability().await?;
    Ok(Some(db))
}

/// Connections that [`begin_import`] creates tables on: MariaDB pays a disk sync per
/// `CREATE TABLE`, so more at once help while an export runs beside (5.6 s with 4 for
/// 556 tables, 8.2 s with 2).
const DDL_JOBS: usize = 4;

/// The ledger as a table, to load its first row like any other.
fn ledger_table() -> Table {
    let col = |name: &str, ty| crate::schema::Column {
        name: name.into(),
        ty,
        nullable: false,
        default: None,
        auto_increment: false,
    };
    Table {
        name: LEDGER_TABLE.into(),
        columns: vec![
            col("tbl", crate::schema::ColType::Char { len: 255 }),
            col("chunk", crate::schema::ColType::Int { bytes: 8 }),
        ],
        primary_key: vec!["tbl".into(), "chunk".into()],
        indexes: vec![],
        next_id: None,
    }
}

fn ledger_mark(index: &ExportIndex) -> Row {
    vec![
        crate::schema::Value::Text(format!("export:{}", index.export_id)),
        crate::schema::Value::Int(0),
    ]
}

/// Imports a staged export into `dst`. Refuses a target that holds tables of the prefix
/// (unless `replace`, which also abandons an interrupted import), before changing
/// anything. Resumes where a killed import of the same export stopped: the ledger in the
/// target says which chunks are committed.
///
/// It is [`begin_import`], [`import_part`] over every table, and [`finish_import`] once
/// every table is in.
pub async fn import(
    dst: &Db,
    store: &dyn BlobStore,
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport, DbError> {
    let begun = begin_import(dst, store, options.replace).await?;
    let budget = Budget::new(options.max_chunks, None);
    let mut report = import_part(dst, store, None, options.jobs, &budget, progress).await?;
    report.resumed = begun.resumed;
    if report.complete {
        finish_import(dst, store).await?;
    }
    Ok(report)
}

/// What [`begin_import`] found and made ready.
#[derive(Debug, Clone)]
pub struct ImportStart {
    /// The stage's complete export.
    pub index: ExportIndex,
    /// Whether an import of this export was already under way in the target.
    pub resumed: bool,
}

/// Makes `dst` ready for the import of the stage's complete export, or finds that import
/// under way: refuses a target that holds tables of the prefix and no ledger (unless
/// `replace`, which drops them, and any ledger, first) before changing anything; creates
/// the ledger, whose first row names the export, and every table with its primary key.
/// [`import_part`] then loads the tables, in parts that may run at once.
pub async fn begin_import(
    dst: &Db,
    store: &dyn BlobStore,
    replace: bool,
) -> Result<ImportStart, DbError> {
    let index = read_index(store).await?;
    let manifests = read_manifests(store, &index.tables).await?;
    let split = Split::of(store, &index.export_id).await?;
    let create: Vec<(&Table, bool)> = manifests
        .iter()
        .map(|m| (&m.table, split.small(m)))
        .collect();
    begin_on(dst, index, &create, replace).await
}

/// [`begin_import`] for an import that follows the export under way (or sealed since):
/// the tables come from what [`begin_export`] staged (`dbmove/tables.json`), none of
/// their manifests is needed. Only the tables loaded alone are created here; the small
/// ones, loaded in groups, are created with their indexes by the import part that loads
/// them, beside its big tables' rows, so that the parts start without waiting for
/// hundreds of `CREATE`s.
/// [`import_part_from`] ([`ImportFrom::Following`]) then loads each table's chunks as
/// its manifest lists them, and indexes it once whole.
pub async fn begin_import_following(
    dst: &Db,
    store: &dyn BlobStore,
    replace: bool,
) -> Result<ImportStart, DbError> {
    let index = followed_export(store).await?;
    let staged = staged_tables(store, &index).await?;
    let sizes = sizes_of(&staged);
    let mut create = Vec::with_capacity(index.tables.len());
    for name in &index.tables {
        let t = staged
            .tables
            .iter()
            .find(|t| &t.name == name)
            .ok_or_else(|| {
                DbError::Corrupt(format!(
                    "tables.json has no table {name}, which the export holds; export again"
                ))
            })?;
        if !source_small(&sizes, name) {
            create.push((t, false));
        }
    }
    begin_on(dst, index, &create, replace).await
}

/// What [`begin_import`] and [`begin_import_following`] share: the target checked (or
/// emptied), the ledger made with its first row naming `index`'s export, and `create`
/// (flagged as for [`Db::create_tables`]) created, but for those a resumed import made.
async fn begin_on(
    dst: &Db,
    index: ExportIndex,
    create: &[(&Table, bool)],
    replace: bool,
) -> Result<ImportStart, DbError> {
    let existing: HashSet<String> = dst.list_tables(&index.prefix).await?.into_iter().collect();
    let all: HashSet<String> = dst.list_tables("").await?.into_iter().collect();
    let mut resumed = all.contains(LEDGER_TABLE);
    if resumed && !replace && dst.ledger().await?.is_empty() {
        // A begin cut short between the ledger and its first row: nothing was loaded, and
        // no table made yet, so it begins again rather than refuse the empty ledger.
        resumed = false;
    }
    if resumed && replace {
        // Asked to start over: the ledger belongs to the import being replaced.
        dst.drop_table(LEDGER_TABLE).await?;
        resumed = false;
    }
    if !resumed {
        let mut ours: Vec<&String> = existing.iter().filter(|n| *n != LEDGER_TABLE).collect();
        ours.sort();
        if !ours.is_empty() {
            if !replace {
                return Err(DbError::NotEmpty(format!(
                    "{} already holds {} table(s) with prefix {:?} (e.g. {}); nothing was changed. \
                     Pass --replace to drop them first",
                    dst.locator(),
                    ours.len(),
                    index.prefix,
                    ours[0]
                )));
            }
            let ours: Vec<String> = ours.into_iter().cloned().collect();
            dst.drop_tables(&ours).await?;
        }
        dst.create_ledger().await?;
        // The ledger's first row names the export, so that a rerun resumes only it.
        dst.load(&ledger_table(), vec![ledger_mark(&index)], None)
            .await?;
    }
    check_ledger_export(dst, &index, &dst.ledger().await?)?;
    let present: HashSet<String> = if resumed { existing } else { HashSet::new() };
    // The tables imported in groups get their indexes now, the others after their rows.
    let create: Vec<(&Table, bool)> = create
        .iter()
        .filter(|(t, _)| !present.contains(&t.name))
        .copied()
        .collect();
    let helpers = helpers(dst, DDL_JOBS).await?;
    let dbs: Vec<&Db> = std::iter::once(dst).chain(&helpers).collect();
    create_tables_on(&dbs, &create).await?;
    Ok(ImportStart { index, resumed })
}

/// The export an import follows: the one under way, or, once sealed, the complete one.
pub async fn followed_export(store: &dyn BlobStore) -> Result<ExportIndex, DbError> {
    match under_way(store).await {
        Err(DbError::Input(_)) => read_index(store).await.map_err(|_| {
            DbError::Input(
                "the stage holds no export, neither under way (dbmove/export.partial.json) \
                 nor complete (dbmove/export.json); begin the export first"
                    .into(),
            )
        }),
        r => r,
    }
}

/// The tables staged for `index`'s export, which an import that follows it needs.
async fn staged_tables(
    store: &dyn BlobStore,
    index: &ExportIndex,
) -> Result<ExportTables, DbError> {
    read_tables(store, &index.export_id).await?.ok_or_else(|| {
        DbError::Input(format!(
            "the stage holds no table list of export {} (dbmove/tables.json), which an \
             import that follows the export needs; begin the export again to stage it",
            index.export_id
        ))
    })
}

fn sizes_of(staged: &ExportTables) -> HashMap<String, u64> {
    staged.sizes.iter().cloned().collect()
}

/// Whether a table of `sizes` (source sizes) is imported in a group, as [`copy`] decides;
/// one the catalog gives no size for is taken for a big one.
fn source_small(sizes: &HashMap<String, u64>, name: &str) -> bool {
    sizes.get(name).is_some_and(|&s| s < SMALL_TABLE)
}

/// Which tables of an import go in groups (created with their indexes): by their source
/// sizes when [`begin_export`] staged them for the export, else by their staged sizes.
/// [`begin_import`] and every [`import_part`] of one export decide alike, whichever way
/// the import began: a table is indexed once, either with the table or after its rows.
enum Split {
    Source(HashMap<String, u64>),
    Staged,
}

impl Split {
    async fn of(store: &dyn BlobStore, export_id: &str) -> Result<Self, DbError> {
        Ok(match read_tables(store, export_id).await? {
            Some(staged) => Split::Source(sizes_of(&staged)),
            None => Split::Staged,
        })
    }

    fn small(&self, m: &Manifest) -> bool {
        match self {
            Split::Source(_) => self.small_by_name(&m.table.name),
            Split::Staged => small_manifest(m),
        }
    }

    /// Whether the table `name` goes in a group, by its source size, before any manifest
    /// of it is there; a split by staged sizes cannot say yet (`false`).
    fn small_by_name(&self, name: &str) -> bool {
        matches!(self, Split::Source(sizes) if source_small(sizes, name))
    }
}

/// The ledger must be this export's: a target holding another export's interrupted
/// import is refused.
/// The ledger of the import under way in `dst`, checked to be of `index`'s export; with
/// none under way, an input error (ending with `then`, what to do).
async fn ledger_under_way(
    dst: &Db,
    index: &ExportIndex,
    then: &str,
) -> Result<HashSet<(String, i64)>, DbError> {
    let all: HashSet<String> = dst.list_tables("").await?.into_iter().collect();
    if !all.contains(LEDGER_TABLE) {
        return Err(DbError::Input(format!(
            "{} has no import under way (no {LEDGER_TABLE} table){then}",
            dst.locator()
        )));
    }
    let done = dst.ledger().await?;
    check_ledger_export(dst, index, &done)?;
    Ok(done)
}

fn check_ledger_export(
    dst: &Db,
    index: &ExportIndex,
    done: &HashSet<(String, i64)>,
) -> Result<(), DbError> {
    if done.contains(&(format!("export:{}", index.export_id), 0)) {
        return Ok(());
    }
    Err(DbError::NotEmpty(format!(
        "{} holds an interrupted import of another export; nothing was changed. \
         Resume it from its own stage, or pass --replace to start over",
        dst.locator()
    )))
}

/// Loads the tables `only` (every table of the export when `None`) of the import begun
/// by [`begin_import`], within `budget`, `jobs` tables at once (each on its own
/// connection; SQLite one). Each chunk commits with its ledger row, and the chunks the
/// ledger names are skipped, so a rerun goes on where a stopped or killed one ended. A
/// table whose chunks are all in then gets its indexes and its sequence, and its own
/// ledger row. `complete` says whether every table of the part is wholly in; if not, run
/// it again. Parts with different tables may run at once.
pub async fn import_part(
    dst: &Db,
    store: &dyn BlobStore,
    only: Option<&[String]>,
    jobs: usize,
    budget: &Budget,
    progress: &dyn Progress,
) -> Result<ImportReport, DbError> {
    import_part_from(ImportFrom::Sealed, dst, store, only, jobs, budget, progress).await
}

/// How long an import that follows the export waits before it reads the manifests of the
/// tables it waits for again.
pub const POLL: Duration = Duration::from_millis(500);

/// Which export an import part loads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFrom {
    /// The stage's complete export, begun by [`begin_import`]: [`import_part`].
    Sealed,
    /// The export under way (or sealed since), the import begun by
    /// [`begin_import_following`]: the small tables of the part are created, with their
    /// indexes, on a connection of their own as the part begins (SQLite: each once its
    /// manifest is there); each table is loaded as far as its
    /// manifest says this export staged it (a big table's manifest is published every
    /// few chunks while it is exported), and gets its indexes once staged whole; the
    /// manifests of the others are read again every [`POLL`] until they are, or until the
    /// budget's time is up: then `complete: false`, and a rerun goes on.
    Following,
}

/// [`import_part`] from the export `from` says.
pub async fn import_part_from(
    from: ImportFrom,
    dst: &Db,
    store: &dyn BlobStore,
    only: Option<&[String]>,
    jobs: usize,
    budget: &Budget,
    progress: &dyn Progress,
) -> Result<ImportReport, DbError> {
    let follow = from == ImportFrom::Following;
    let index = if follow {
        followed_export(store).await?
    } else {
        read_index(store).await?
    };
    let names: Vec<String> = match only {
        None => index.tables.clone(),
        Some(only) => {
            if let Some(missing) = only.iter().find(|n| !index.tables.contains(n)) {
                return Err(DbError::Input(format!(
                    "table {missing} is not part of the staged export"
                )));
            }
            index
                .tables
                .iter()
                .filter(|n| only.contains(n))
                .cloned()
                .collect()
        }
    };
    // Read before the ledger, so that a damaged stage is named before a target is touched.
    let manifests = if follow {
        Vec::new()
    } else {
        read_manifests(store, &names).await?
    };
    let done = ledger_under_way(dst, &index, "; begin one first").await?;
    // Following: what `begin_export` staged, the tables' schemas (for the small ones this
    // part makes) and source sizes, read once.
    let staged = if follow {
        Some(staged_tables(store, &index).await?)
    } else {
        None
    };
    let split = match &staged {
        Some(staged) => Split::Source(sizes_of(staged)),
        None => Split::of(store, &index.export_id).await?,
    };
    // SQLite takes one writer at a time: more connections would only wait on its lock.
    let jobs = if dst.engine() == Engine::Sqlite {
        1
    } else {
        jobs.clamp(1, names.len().max(1))
    };
    let helpers = helpers(dst, jobs).await?;
    let dbs: Vec<&Db> = std::iter::once(dst).chain(&helpers).collect();
    for db in &dbs {
        db.relax_durability().await?;
    }
    let tally = Tally::default();
    let run = Run {
        dbs: &dbs,
        store,
        split: &split,
        done: &done,
        budget,
        progress,
        tally: &tally,
    };
    if let Some(staged) = &staged {
        let mut made: HashSet<String> = dst.list_tables(&index.prefix).await?.into_iter().collect();
        // The small tables of the part (a rerun: those a stopped run did not make), made
        // with their indexes on a connection of their own while the big ones load, as
        // `copy` does; made in the loop below instead, as their manifests come, where the
        // engine takes one writer. A creation is whole or not there (one transaction, or
        // one `CREATE TABLE` with its indexes), so a rerun makes what a killed one did not.
        let small: Vec<(&Table, bool)> = staged
            .tables
            .iter()
            .filter(|t| names.contains(&t.name) && !made.contains(&t.name))
            .filter(|t| split.small_by_name(&t.name))
            .map(|t| (t, true))
            .collect();
        let ddl_db = ddl_connection(dst, &small).await?;
        let creator = ddl_db.is_some();
        let (created_tx, created_rx) = tokio::sync::watch::channel(!creator);
        let ddl = async {
            if let Some(db) = ddl_db {
                create_tables_on(&[&db], &small).await?;
                // Closed now, not held idle for the rest of the run.
                drop(db);
                let _ = created_tx.send(true);
            }
            Ok::<_, DbError>(())
        };
        let follow = async {
            let mut waiting = names.clone();
            // The last chunk handed to the loader, per table, in this run: a manifest read
            // again while its export goes on lists them again.
            let mut handed: HashMap<String, u64> = HashMap::new();
            while !waiting.is_empty() {
                let (ready_now, rest) = ready_manifests(store, &index.export_id, &waiting).await?;
                waiting = rest;
                let created = *created_rx.borrow();
                let mut ready = Vec::new();
                for mut m in ready_now {
                    let name = &m.table.name;
                    if !created && split.small(&m) && !made.contains(name) {
                        // Still being made: read again once it is.
                        if !waiting.contains(name) {
                            waiting.push(name.clone());
                        }
                        continue;
                    }
                    let last = handed.entry(name.clone()).or_default();
                    m.chunks.retain(|c| c.n > *last);
                    *last = m.chunks.last().map_or(*last, |c| c.n);
                    if m.complete || !m.chunks.is_empty() {
                        ready.push(m);
                    }
                }
                if !ready.is_empty() {
                    // Only where no connection of its own made them (SQLite).
                    let create: Vec<(&Table, bool)> = ready
                        .iter()
                        .filter(|m| !creator && split.small(m))
                        .filter(|m| !made.contains(&m.table.name))
                        .map(|m| (&m.table, true))
                        .collect();
                    if !create.is_empty() {
                        create_tables_on(&dbs, &create).await?;
                        made.extend(create.iter().map(|(t, _)| t.name.clone()));
                    }
                    run.load(&ready).await?;
                    if tally.stopped.load(Relaxed) {
                        break;
                    }
                } else if budget.time_up() || !budget.left() {
                    tally.stopped.store(true, Relaxed);
                    break;
                } else {
                    // A poll, or sooner the end of the tables' creation.
                    let mut rx = created_rx.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = rx.wait_for(|c| *c), if !created => {}
                    }
                }
            }
            Ok::<_, DbError>(())
        };
        // The creation's error stops the loading at once, and the other way round.
        tokio::try_join!(ddl, follow)?;
    } else {
        run.load(&manifests).await?;
    }
    Ok(ImportReport {
        tables: names.len(),
        rows: tally.rows.load(Relaxed),
        chunks: tally.chunks.load(Relaxed),
        chunks_skipped: tally.skipped.load(Relaxed),
        complete: !tally.stopped.load(Relaxed),
        resumed: false,
    })
}

/// The manifests of `tables` that export `export_id` has written, whole or as far as it
/// has gone, and the names of the tables not staged whole (not staged yet, staged in
/// part, or left by another export), a few read at once as [`read_manifests`] does.
async fn ready_manifests(
    store: &dyn BlobStore,
    export_id: &str,
    tables: &[String],
) -> Result<(Vec<Manifest>, Vec<String>), DbError> {
    use futures::{StreamExt, TryStreamExt};
    let found: Vec<Option<Manifest>> = futures::stream::iter(tables.to_vec())
        .map(|t| async move {
            match read_manifest(store, &t).await {
                Ok(m) => Ok(Some(m).filter(|m| m.export_id == export_id)),
                Err(DbError::Stage(a2a_core::PortError::NotFound(_))) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .buffered(16)
        .try_collect()
        .await?;
    let mut ready = Vec::new();
    let mut waiting = Vec::new();
    for (name, m) in tables.iter().zip(found) {
        if !m.as_ref().is_some_and(|m| m.complete) {
            waiting.push(name.clone());
        }
        ready.extend(m);
    }
    Ok((ready, waiting))
}

/// What the runs of one import part did, all rounds together.
#[derive(Default)]
struct Tally {
    rows: AtomicU64,
    chunks: AtomicU64,
    skipped: AtomicU64,
    /// The budget stopped it: `complete: false`.
    stopped: AtomicBool,
}

/// One import part's work: its connections, the stage, how its tables are split, the
/// ledger's rows when it began, its budget and its listener, and what it did so far.
struct Run<'a> {
    dbs: &'a [&'a Db],
    store: &'a dyn BlobStore,
    split: &'a Split,
    done: &'a HashSet<(String, i64)>,
    budget: &'a Budget,
    progress: &'a dyn Progress,
    tally: &'a Tally,
}

impl Run<'_> {
    /// Loads the tables of `manifests` over the connections, big ones alone, small ones in
    /// groups, and marks each table whose chunks are all in; stops, with `stopped` set in
    /// the tally, when the budget is spent.
    async fn load(&self, manifests: &[Manifest]) -> Result<(), DbError> {
        let Run {
            dbs,
            store,
            split,
            done,
            budget,
            progress,
            tally,
        } = *self;
        let refs: Vec<&Manifest> = manifests.iter().collect();
        let staged = |m: &Manifest| m.chunks.iter().map(|c| c.bytes).sum::<u64>();
        let work = plan(&refs, staged, |m| split.small(m));
        let (rows_r, chunks_r, skipped_r, stopped_r) =
            (&tally.rows, &tally.chunks, &tally.skipped, &tally.stopped);
        pool(dbs, &work, |db, w| async move {
            let group = matches!(w, Work::Group(_));
            let loader = Loader::new(db, if group { GROUP_LOAD_BYTES } else { 0 });
            // The next chunk is read and decoded while the one before loads: memory stays
            // three chunks (decoding, waiting, loading), as in `copy`.
            let (tx, rx) = mpsc::channel::<Staged>(1);
            let reader = async move {
                let gone = || DbError::Backend("the loader stopped".into());
                for m in w.items() {
                    let name = &m.table.name;
                    if done.contains(&(name.clone(), 0)) {
                        skipped_r.fetch_add(m.chunks.len() as u64, Relaxed);
                        continue;
                    }
                    progress.table("import", name);
                    for c in &m.chunks {
                        if done.contains(&(name.clone(), c.n as i64)) {
                            skipped_r.fetch_add(1, Relaxed);
                            progress.rows(c.rows);
                            continue;
                        }
                        if !budget.take() {
                            // Tables whole before the stop get their marks in the next run.
                            stopped_r.store(true, Relaxed);
                            return Ok::<_, DbError>(true);
                        }
                        let (batch, raw, bytes) = read_chunk(store, m, c, db).await?;
                        tx.send(Staged::Chunk(m, c, batch, raw, bytes))
                            .await
                            .map_err(|_| gone())?;
                    }
                    // A table still being exported is marked whole in a later load.
                    if m.complete {
                        tx.send(Staged::Whole(m)).await.map_err(|_| gone())?;
                    }
                }
                Ok(false)
            };
            let writer = async {
                // Owned: a failed load drops it, so that a reader waiting to hand over
                // the next chunk stops instead of waiting for ever.
                let mut rx = rx;
                let mut whole = Vec::new();
                while let Some(staged) = rx.recv().await {
                    match staged {
                        Staged::Chunk(m, c, batch, raw, bytes) => {
                            loader.add(&m.table, c.n, batch, raw, bytes).await?;
                            rows_r.fetch_add(c.rows, Relaxed);
                            chunks_r.fetch_add(1, Relaxed);
                            progress.rows(c.rows);
                        }
                        Staged::Whole(m) => whole.push(m),
                    }
                }
                loader.flush().await?;
                Ok::<_, DbError>(whole)
            };
            let (read, whole) = tokio::join!(reader, writer);
            // The writer's error is the cause when both failed (the reader then saw it stop).
            let whole = whole?;
            if read? {
                return Ok(());
            }
            for m in &whole {
                if !group {
                    progress.table("index", &m.table.name);
                    db.create_indexes(&m.table).await?;
                }
                db.carry_sequence(&m.table).await?;
            }
            // One ledger statement says each of these tables is wholly in: chunk 0 (chunks
            // count from 1) means every chunk, its indexes and its sequence.
            let marks = whole
                .iter()
                .map(|m| Load {
                    table: &m.table,
                    rows: Vec::new(),
                    raw: None,
                    ledger: Some(0),
                })
                .collect();
            db.load_many(marks).await
        })
        .await?;
        Ok(())
    }
}

/// What the reader of [`import_part`] hands its loader: a chunk's rows, or its staged bytes
/// as they are (and their weight in bytes), or the end of a table whose every chunk is
/// handed over.
enum Staged<'m> {
    Chunk(&'m Manifest, &'m ChunkInfo, Vec<Row>, Option<RawChunk>, u64),
    Whole(&'m Manifest),
}

/// Reads staged chunk `c` of `m` for target `to` and decodes it (checksum first) off the
/// async threads, while the loader of the chunk before goes on. Returns its rows, or, for
/// a target that takes its format as it is, its bytes (`open_native`: the load counts
/// them), and their weight.
async fn read_chunk(
    store: &dyn BlobStore,
    m: &Manifest,
    c: &ChunkInfo,
    to: &Db,
) -> Result<(Vec<Row>, Option<RawChunk>, u64), DbError> {
    let name = &m.table.name;
    let key = a2a_core::BlobKey::parse(&c.key)
        .map_err(|e| DbError::Corrupt(format!("manifest of {name}: {e}")))?;
    let body = store.get(&key).await?;
    let format = ChunkFormat::of(&m.format, &format!("manifest of {name}"))?;
    let as_is = to.takes_as_is(format);
    let (table, c) = (m.table.clone(), c.clone());
    tokio::task::spawn_blocking(move || {
        if as_is {
            let raw = open_native(format, &c, &body)?;
            let bytes = raw.len() as u64;
            let raw = RawChunk {
                format,
                bytes: Bytes::from(raw),
                rows: c.rows,
            };
            return Ok((Vec::new(), Some(raw), bytes));
        }
        let batch = decode_chunk_as(format, &table, &c, &body)?;
        let bytes = batch
            .iter()
            .flat_map(|r| r.iter().map(crate::schema::Value::weight))
            .sum::<usize>() as u64;
        Ok((batch, None, bytes))
    })
    .await
    .map_err(|e| DbError::Backend(format!("decoding a staged chunk of {name}: {e}")))?
}

/// Checks that every table of the stage's export is wholly in the target (its ledger row
/// is there); an input error names the first that is not.
pub async fn check_import(dst: &Db, store: &dyn BlobStore) -> Result<ExportIndex, DbError> {
    let index = read_index(store).await?;
    let done = ledger_under_way(dst, &index, "").await?;
    if let Some(t) = index
        .tables
        .iter()
        .find(|t| !done.contains(&((*t).clone(), 0)))
    {
        return Err(DbError::Input(format!(
            "table {t} is not wholly imported yet; run its part again"
        )));
    }
    Ok(index)
}

/// Ends an import whose every table is in ([`check_import`]): drops the ledger.
pub async fn finish_import(dst: &Db, store: &dyn BlobStore) -> Result<ExportIndex, DbError> {
    let index = check_import(dst, store).await?;
    dst.drop_table(LEDGER_TABLE).await?;
    Ok(index)
}

/// The index of the export of `tables` from `src` with `prefix`: `export_id`, `rows` in
/// all; its format is the chunks' (`limits`).
fn export_index(
    src: &Db,
    prefix: &str,
    tables: &[Table],
    limits: CopyLimits,
    export_id: String,
    rows: u64,
) -> ExportIndex {
    ExportIndex {
        format: limits.format(src).tag().into(),
        source: src.locator().to_string(),
        export_id,
        prefix: prefix.into(),
        tables: tables.iter().map(|t| t.name.clone()).collect(),
        rows,
    }
}

fn new_export_id() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// Opens `jobs - 1` more connections to `db`'s database (none for SQLite, which takes one
/// writer at a time).
async fn helpers(db: &Db, jobs: usize) -> Result<Vec<Db>, DbError> {
    let mut out = Vec::new();
    if db.engine() != Engine::Sqlite {
        for _ in 1..jobs {
            out.push(Db::connect(db.locator(), false).await?);
        }
    }
    Ok(out)
}

/// Copies every table of `prefix` from `src` to `dst` in one pass: each chunk is staged
/// in `store` (so the stage is a complete export afterwards) and loaded into the target
/// while the next one is read. Same snapshot, chunks, ledger, refusal and finishing as
/// [`export`] followed by [`import`]; an interrupted copy is started over with `replace`
/// (the resumable path is `export`, then `import`).
#[allow(clippy::too_many_arguments)]
pub async fn copy(
    src: &Db,
    dst: &Db,
    store: &dyn BlobStore,
    prefix: &str,
    limits: CopyLimits,
    jobs: usize,
    replace: bool,
    progress: &dyn Progress,
) -> Result<(ExportReport, ImportReport), DbError> {
    let tables = src.introspect(prefix).await?;
    progress.phase("introspect");
    let sizes: std::collections::HashMap<String, u64> = src
        .table_sizes()
        .await?
        .into_iter()
        .map(|(n, b)| (n, b.max(0) as u64))
        .collect();
    // A table the catalog gives no size for is taken for a big one.
    let size = |t: &Table| sizes.get(&t.name).copied().unwrap_or(u64::MAX);
    let refs: Vec<&Table> = tables.iter().collect();
    let work = plan(&refs, size, |t| size(t) < SMALL_TABLE);
    let mut index = export_index(src, prefix, &tables, limits, new_export_id(), 0);
    // The target: fresh, or emptied when asked; nothing changes before this check.
    let mut ours = dst.list_tables(prefix).await?;
    let ledger = dst.list_tables("").await?.iter().any(|n| n == LEDGER_TABLE);
    if !replace && (ledger || !ours.is_empty()) {
        return Err(DbError::NotEmpty(format!(
            "{} already holds {}; nothing was changed. Pass --replace to drop them first",
            dst.locator(),
            if ours.is_empty() {
                "an interrupted import".to_owned()
            } else {
                format!(
                    "{} table(s) with prefix {prefix:?} (e.g. {})",
                    ours.len(),
                    ours[0]
                )
            }
        )));
    }
    ours.push(LEDGER_TABLE.into());
    dst.drop_tables(&ours).await?;
    store.delete(&index_key()?).await?;
    dst.create_ledger().await?;
    dst.load(&ledger_table(), vec![ledger_mark(&index)], None)
        .await?;

    let jobs = jobs.clamp(1, tables.len().max(1));
    let dst_helpers = helpers(dst, jobs).await?;
    let dsts: Vec<&Db> = std::iter::once(dst).chain(&dst_helpers).collect();
    for db in &dsts {
        db.relax_durability().await?;
    }
    progress.phase("target");

    let src_helpers = src.begin_shared_snapshot(jobs - 1).await?;
    let srcs: Vec<&Db> = std::iter::once(src).chain(&src_helpers).collect();
    let pairs: Vec<(&Db, &Db)> = srcs.iter().copied().zip(dsts.iter().copied()).collect();
    let id = index.export_id.as_str();
    // The small tables (with their indexes) are created on a connection of their own,
    // beside the big tables' rows: hundreds of `CREATE`s that wait on the file system
    // more than they use the CPU, which before took the first or the last seconds of a
    // copy alone. Their groups, queued after the big tables, wait for it. A big table is
    // created by the piece of work that copies it (its indexes after its rows). SQLite,
    // one writer, creates each piece's tables in turn.
    let small: Vec<(&Table, bool)> = work
        .iter()
        .filter(|w| matches!(w, Work::Group(_)))
        .flat_map(|w| w.items())
        .map(|t| (t, true))
        .collect();
    let ddl_db = ddl_connection(dst, &small).await?;
    let (created_tx, created_rx) = tokio::sync::watch::channel(false);
    let ddl = async {
        // The sender goes with this future: a failed creation wakes the waiting groups.
        let created_tx = created_tx;
        if let Some(db) = &ddl_db {
            db.create_tables(&small).await?;
            let _ = created_tx.send(true);
        }
        Ok::<_, DbError>(())
    };
    let (ddl_db, created_rx) = (&ddl_db, &created_rx);
    let data = pool(&pairs, &work, |(s, d), w| async move {
        let group = matches!(w, Work::Group(_));
        if group && ddl_db.is_some() {
            created_rx
                .clone()
                .wait_for(|made| *made)
                .await
                .map_err(|_| DbError::Backend("the small tables were not created".into()))?;
        } else {
            let ddl: Vec<(&Table, bool)> = w.items().into_iter().map(|t| (t, group)).collect();
            d.create_tables(&ddl).await?;
        }
        let loader = Loader::new(d, if group { GROUP_LOAD_BYTES } else { 0 });
        let mut out = Vec::new();
        for t in w.items() {
            progress.table("copy", &t.name);
            let mut m = export_table(
                s,
                store,
                t,
                limits,
                progress,
                Some(&loader),
                Resume::default(),
            )
            .await?;
            m.export_id = id.to_owned();
            put_manifest(store, &m).await?;
            out.push(m);
        }
        loader.flush().await?;
        for t in w.items() {
            if !group {
                // After its rows, while the other connections go on with other tables.
                progress.table("index", &t.name);
                d.create_indexes(t).await?;
            }
            d.carry_sequence(t).await?;
        }
        Ok(out)
    });
    let (made, moved) = tokio::join!(ddl, data);
    for db in &src_helpers {
        db.end_snapshot().await?;
    }
    src.end_snapshot().await?;
    // The creation's error is the cause when both failed (the groups then saw it stop).
    made?;
    let manifests: Vec<Manifest> = moved?.into_iter().flatten().collect();
    progress.phase("data");
    drop(dst_helpers);
    dst.drop_table(LEDGER_TABLE).await?;

    let mut ex = ExportReport {
        tables: tables.len(),
        rows: 0,
        chunks: 0,
        bytes: 0,
        complete: true,
    };
    for m in &manifests {
        ex.rows += m.rows;
        ex.chunks += m.chunks.len() as u64;
        ex.bytes += m.chunks.iter().map(|c| c.bytes).sum::<u64>();
    }
    index.rows = ex.rows;
    let body = serde_json::to_vec_pretty(&index).map_err(|e| DbError::Backend(e.to_string()))?;
    store.put(&index_key()?, Bytes::from(body)).await?;
    progress.phase("done");
    let im = ImportReport {
        tables: tables.len(),
        rows: ex.rows,
        chunks: ex.chunks,
        chunks_skipped: 0,
        complete: true,
        resumed: false,
    };
    Ok((ex, im))
}

/// An export that fits a time budget (a Lambda's 15 minutes): it writes at most
/// `max_chunks` chunks, then stops with `complete: false`; run it again, and it goes on
/// after the last staged key, table by table, until the export is whole. Across runs
/// there is no snapshot: the workflow has frozen the site first. A table without a
/// primary key is always exported whole within one run.
///
/// It is [`begin_export`], [`export_part`] over every table, and [`seal_export`] once
/// the export is whole.
pub async fn export_budgeted(
    src: &Db,
    store: &dyn BlobStore,
    prefix: &str,
    limits: CopyLimits,
    max_chunks: u64,
    progress: &dyn Progress,
) -> Result<ExportReport, DbError> {
    begin_export(src, store, prefix).await?;
    let budget = Budget::new(Some(max_chunks), None);
    let report = export_part(src, store, prefix, None, limits, &budget, progress).await?;
    if report.complete {
        seal_export(store).await?;
    }
    Ok(report)
}

/// Starts a resumable export of `prefix` in the stage, or finds the one under way: the
/// marker `dbmove/export.partial.json` names it (its id and tables), and an older
/// complete `export.json` is removed. Every column is mapped first: an unmappable type
/// stops it before anything is written. The tables' schemas and source sizes go to
/// `dbmove/tables.json` ([`ExportTables`]), so that an import can follow the export
/// ([`begin_import_following`]). Returns the export's index and those staged tables
/// and sizes; [`export_part`] then stages the tables, in parts that may run at once.
pub async fn begin_export(
    src: &Db,
    store: &dyn BlobStore,
    prefix: &str,
) -> Result<(ExportIndex, ExportTables), DbError> {
    let tables = src.introspect(prefix).await?;
    let index = match store.get(&partial_key()?).await {
        Ok(body) => serde_json::from_slice::<ExportIndex>(&body)
            .map_err(|e| DbError::Corrupt(format!("export.partial.json: {e}")))?,
        Err(a2a_core::PortError::NotFound(_)) => {
            store.delete(&index_key()?).await?;
            let index = export_index(
                src,
                prefix,
                &tables,
                CopyLimits::default(),
                new_export_id(),
                0,
            );
            let body =
                serde_json::to_vec_pretty(&index).map_err(|e| DbError::Backend(e.to_string()))?;
            store.put(&partial_key()?, Bytes::from(body)).await?;
            index
        }
        Err(e) => return Err(e.into()),
    };
    if index.prefix != prefix {
        return Err(DbError::Input(format!(
            "the stage holds an export under way with prefix {:?}, not {prefix:?}",
            index.prefix
        )));
    }
    // Also for an export begun by a run cut short before it staged them.
    let staged = match read_tables(store, &index.export_id).await? {
        Some(staged) => staged,
        None => {
            let staged = ExportTables {
                export_id: index.export_id.clone(),
                tables,
                sizes: crate::plan::table_sizes(src, prefix).await?,
            };
            let body =
                serde_json::to_vec_pretty(&staged).map_err(|e| DbError::Backend(e.to_string()))?;
            store.put(&tables_key()?, Bytes::from(body)).await?;
            staged
        }
    };
    Ok((index, staged))
}

/// The tables that [`begin_export`] staged for export `export_id`; `None` when the stage
/// holds none, or those of another export.
pub async fn read_tables(
    store: &dyn BlobStore,
    export_id: &str,
) -> Result<Option<ExportTables>, DbError> {
    match store.get(&tables_key()?).await {
        Ok(body) => {
            let staged: ExportTables = serde_json::from_slice(&body)
                .map_err(|e| DbError::Corrupt(format!("tables.json: {e}")))?;
            Ok((staged.export_id == export_id).then_some(staged))
        }
        Err(a2a_core::PortError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The export under way in the stage (its `export.partial.json`).
async fn under_way(store: &dyn BlobStore) -> Result<ExportIndex, DbError> {
    match store.get(&partial_key()?).await {
        Ok(body) => serde_json::from_slice::<ExportIndex>(&body)
            .map_err(|e| DbError::Corrupt(format!("export.partial.json: {e}"))),
        Err(a2a_core::PortError::NotFound(_)) => Err(DbError::Input(
            "the stage has no export under way (dbmove/export.partial.json is missing); \
             begin one first"
                .into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Stages the tables `only` (every table of the export when `None`) of the export under
/// way ([`begin_export`]), within `budget`: a table already staged whole by this export
/// is kept, one staged in part goes on after its last staged key, with the same chunk
/// numbering. `complete` says whether every table of the part is whole; if not, run it
/// again. Parts with different tables may run at once. The export stays under way:
/// [`seal_export`] completes it. With a budget that caps only time, a table under
/// [`CopyLimits::whole_read`] is read in one scan; a bigger one is read in key order, its
/// manifest published every few chunks so that a following import can load them.
pub async fn export_part(
    src: &Db,
    store: &dyn BlobStore,
    prefix: &str,
    only: Option<&[String]>,
    limits: CopyLimits,
    budget: &Budget,
    progress: &dyn Progress,
) -> Result<ExportReport, DbError> {
    let index = under_way(store).await?;
    if index.prefix != prefix {
        return Err(DbError::Input(format!(
            "the stage holds an export under way with prefix {:?}, not {prefix:?}",
            index.prefix
        )));
    }
    let mut sizes = HashMap::new();
    let mut tables = match read_tables(store, &index.export_id).await? {
        // The schema staged when this export began: the site is frozen since, and each
        // part's every run introspecting it again (a second of catalog joins on MariaDB)
        // would only read the same. A table since dropped is still noticed.
        Some(staged) => {
            sizes = sizes_of(&staged);
            let present: HashSet<String> = src.list_tables(prefix).await?.into_iter().collect();
            staged
                .tables
                .into_iter()
                .filter(|t| present.contains(&t.name))
                .collect()
        }
        None => src.introspect(prefix).await?,
    };
    if let Some(only) = only {
        if let Some(missing) = only.iter().find(|n| !index.tables.contains(n)) {
            return Err(DbError::Input(format!(
                "table {missing} is not part of the export under way"
            )));
        }
        tables.retain(|t| only.contains(&t.name));
        // In the order given: a plan's part lists its biggest tables first.
        tables.sort_by_key(|t| only.iter().position(|n| *n == t.name));
        if let Some(gone) = only.iter().find(|n| !tables.iter().any(|t| &t.name == *n)) {
            return Err(DbError::Input(format!(
                "table {gone} is no longer in the source {}",
                src.locator()
            )));
        }
    }
    let mut report = ExportReport {
        tables: tables.len(),
        rows: 0,
        chunks: 0,
        bytes: 0,
        complete: tables.is_empty(),
    };
    src.begin_snapshot().await?;
    let mut result = Ok(());
    for t in &tables {
        let earlier = match store.get(&manifest_key(&t.name)?).await {
            Ok(body) => serde_json::from_slice::<Manifest>(&body)
                .ok()
                .filter(|m| m.export_id == index.export_id),
            Err(a2a_core::PortError::NotFound(_)) => None,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        };
        let m = match earlier {
            Some(m) if m.complete => m,
            _ if !budget.left() => break,
            earlier => {
                progress.table("export", &t.name);
                // A table begun in this run and under `whole_read` is read in one scan,
                // in the engine's order (PostgreSQL: a sequential scan, a fifth cheaper
                // than key-ordered pages); a run stopped inside it starts it over, as a
                // table without a key. A bigger one goes in key order, its manifest
                // published as it goes, for the import that follows it.
                let whole = earlier.is_none()
                    && !budget.capped()
                    && sizes.get(&t.name).is_some_and(|&s| s < limits.whole_read);
                let resume = Resume {
                    from: earlier.as_ref(),
                    budget: (!whole).then_some(budget),
                    publish: (!whole).then_some(index.export_id.as_str()),
                };
                let m = export_table(src, store, t, limits, progress, None, resume).await;
                if whole {
                    budget.spend();
                }
                let mut m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                };
                m.export_id = index.export_id.clone();
                put_manifest(store, &m).await?;
                m
            }
        };
        report.rows += m.rows;
        report.chunks += m.chunks.len() as u64;
        report.bytes += m.chunks.iter().map(|c| c.bytes).sum::<u64>();
        if !m.complete {
            break;
        }
        if t.name == tables[tables.len() - 1].name {
            report.complete = true;
        }
    }
    src.end_snapshot().await?;
    result?;
    Ok(report)
}

/// Completes the export under way once every table of it is staged whole: writes
/// `dbmove/export.json` (from then on the stage is a complete export) and removes the
/// marker. A stage already sealed returns its index again. A table not yet whole is an
/// input error naming it: run its part again first.
pub async fn seal_export(store: &dyn BlobStore) -> Result<ExportIndex, DbError> {
    let index = match under_way(store).await {
        Ok(index) => index,
        Err(DbError::Input(why)) => {
            return read_index(store).await.map_err(|_| DbError::Input(why));
        }
        Err(e) => return Err(e),
    };
    let mut rows = 0;
    let mut format = ChunkFormat::JsonLines;
    for t in &index.tables {
        let m = match store.get(&manifest_key(t)?).await {
            Ok(body) => serde_json::from_slice::<Manifest>(&body)
                .map_err(|e| DbError::Corrupt(format!("manifest of {t}: {e}")))?,
            Err(a2a_core::PortError::NotFound(_)) => {
                return Err(DbError::Input(format!(
                    "table {t} is not staged yet; the export is not whole"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if m.export_id != index.export_id || !m.complete {
            return Err(DbError::Input(format!(
                "table {t} is not staged whole yet; the export is not whole"
            )));
        }
        rows += m.rows;
        // A native format marks the index too: older readers refuse it.
        let f = ChunkFormat::of(&m.format, &format!("manifest of {t}"))?;
        if f != ChunkFormat::JsonLines {
            format = f;
        }
    }
    let whole = ExportIndex {
        rows,
        format: format.tag().into(),
        ..index
    };
    let body = serde_json::to_vec_pretty(&whole).map_err(|e| DbError::Backend(e.to_string()))?;
    store.put(&index_key()?, Bytes::from(body)).await?;
    store.delete(&partial_key()?).await?;
    Ok(whole)
}

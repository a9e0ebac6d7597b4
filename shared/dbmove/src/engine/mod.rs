//! The three engines behind one handle. [`Db`] holds a [`Driver`], the one trait each
//! engine implements in its own file (`postgres`, `mysql`, `sqlite`): connection,
//! introspection, reads, writes, DDL, row conversion, the creation and removal of
//! databases. What is the same for every engine (building the SQL of a keyset page, a
//! `CREATE TABLE`, a search-and-replace) is written once here, from the driver's dialect.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use a2a_core::Locator;
use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::DbError;
use crate::schema::{
    ColType, Column, Index, Row, Table, Value, normalize_decimal, normalize_timestamp,
    parse_default,
};
use crate::stage::ChunkFormat;

mod mysql;
mod postgres;
mod sqlite;
mod tls;
pub use tls::{BUNDLE, set_ca_bundle};

/// The table in the target that records committed chunks while an import runs.
pub const LEDGER_TABLE: &str = "a2a_import_ledger";

/// One table's part of a load: its rows, and the chunk number the ledger records with
/// them (`None`: not recorded). A part without rows records its ledger row alone.
pub struct Load<'a> {
    /// The table.
    pub table: &'a Table,
    /// Its rows.
    pub rows: Vec<Row>,
    /// Or its rows as a staged chunk in a native format, loaded as it is (by a target
    /// that takes that format: [`Db::takes_as_is`]).
    pub raw: Option<RawChunk>,
    /// The chunk number for the ledger.
    pub ledger: Option<i64>,
}

/// A staged chunk's uncompressed bytes in a native format, for a target that loads them
/// as they are.
pub struct RawChunk {
    /// Their format: PostgreSQL's binary `COPY` stream, or MySQL's `LOAD DATA` text.
    pub format: ChunkFormat,
    /// The bytes.
    pub bytes: bytes::Bytes,
    /// The rows in them, as their manifest counts them: the load checks that the server
    /// took as many.
    pub rows: u64,
}

impl Load<'_> {
    /// The ledger rows of `parts`, as (table, chunk) pairs.
    fn ledger_rows<'b>(parts: &'b [Load<'_>]) -> Vec<(&'b str, i64)> {
        parts
            .iter()
            .filter_map(|p| p.ledger.map(|n| (p.table.name.as_str(), n)))
            .collect()
    }
}

/// `INSERT INTO ledger (tbl, chunk) VALUES (m, m), …` for `n` rows; `mark(i)` writes the
/// `i`-th placeholder (from 1).
fn ledger_insert_sql(e: Engine, n: usize, mark: impl Fn(usize) -> String) -> String {
    let values: Vec<String> = (0..n)
        .map(|i| format!("({}, {})", mark(2 * i + 1), mark(2 * i + 2)))
        .collect();
    format!(
        "INSERT INTO {} ({}, {}) VALUES {}",
        e.quote(LEDGER_TABLE),
        e.quote("tbl"),
        e.quote("chunk"),
        values.join(", ")
    )
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows sent down a channel at once.
const BATCH_ROWS: usize = 512;
const BATCH_BYTES: usize = 1 << 20;

/// Which engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `postgres://…` or `postgresql://…`
    Postgres,
    /// `mysql://…` or `mariadb://…`
    MySql,
    /// `sqlite://PATH`
    Sqlite,
}

impl Engine {
    /// The engine of a URL, or an input error naming the schemes understood.
    pub fn of(loc: &Locator) -> Result<Engine, DbError> {
        let s = loc.expose();
        let scheme = s.split("://").next().unwrap_or("");
        match scheme {
            "postgres" | "postgresql" => Ok(Engine::Postgres),
            "mysql" | "mariadb" => Ok(Engine::MySql),
            "sqlite" => Ok(Engine::Sqlite),
            _ => Err(DbError::Input(format!(
                "{loc}: not a database URL; use postgres://…, mysql://… or sqlite://PATH"
            ))),
        }
    }

    /// Quotes an identifier for this engine.
    pub fn quote(self, ident: &str) -> String {
        match self {
            Engine::MySql => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    /// A string literal for DDL defaults (DDL cannot bind parameters).
    fn literal(self, s: &str) -> String {
        let mut v = s.replace('\'', "''");
        if self == Engine::MySql {
            v = v.replace('\\', "\\\\");
        }
        format!("'{v}'")
    }
}

/// What one engine does. SQL that differs between engines is written by the driver;
/// values always travel bound (`mark_*` writes a placeholder).
#[async_trait]
pub(crate) trait Driver: Send + Sync {
    /// The engine.
    fn engine(&self) -> Engine;
    /// The URL connected to.
    fn locator(&self) -> &Locator;
    /// The column type of a neutral column in `CREATE TABLE`.
    fn ddl_type(&self, c: &Column) -> String;
    /// Written after `NOT NULL` on an auto-increment column.
    fn auto_increment_clause(&self) -> &'static str {
        ""
    }
    /// A lone auto-increment key is written as the rowid alias (SQLite).
    fn rowid_alias(&self) -> bool {
        false
    }
    /// Written after a `CREATE TABLE`'s columns.
    fn table_options(&self) -> &'static str {
        ""
    }
    /// The placeholder of the `n`-th parameter (from 1), typed by column type.
    fn mark_type(&self, n: usize, ty: ColType) -> String;
    /// The placeholder of the `n`-th parameter (from 1), typed by value.
    fn mark_value(&self, n: usize, v: &Value) -> String;
    /// How a column is selected for export.
    fn select_expr(&self, c: &Column) -> String {
        self.engine().quote(&c.name)
    }
    /// How a key column is compared and ordered (text by bytes).
    fn key_expr(&self, c: &Column) -> String {
        self.engine().quote(&c.name)
    }
    /// The largest value of an integer column, as a 64-bit integer.
    fn max_expr(&self, column: &str) -> String {
        format!("MAX({})", self.engine().quote(column))
    }
    /// The SQL function for a text's length in characters.
    fn length_fn(&self) -> &'static str {
        "CHAR_LENGTH"
    }
    /// An aggregate of the values of `expr` over the rows, as text joined by commas.
    fn join_texts(&self, expr: &str) -> String {
        format!("group_concat(CAST({expr} AS TEXT), ',')")
    }
    /// A query of (table, bytes on disk) pairs for the current database.
    fn table_sizes_sql(&self) -> &'static str;
    /// `ROWS:SUM`: the table's row count and an order-free sum of a hash of each row,
    /// both computed by the server, so that two databases of the same engine compare
    /// without sending their rows; `None` where the engine has no hash function (SQLite).
    async fn digest(&self, _t: &Table) -> Result<Option<String>, DbError> {
        Ok(None)
    }
    /// Starts a read-only consistent snapshot.
    fn begin_snapshot_sql(&self) -> &'static str;

    /// Runs SQL with no parameters and no result.
    async fn exec(&self, sql: &str) -> Result<(), DbError>;
    /// Names of the base tables of the current database.
    async fn table_names(&self) -> Result<Vec<String>, DbError>;
    /// The neutral schema of the tables starting with `prefix`.
    async fn introspect(&self, prefix: &str) -> Result<Vec<Table>, DbError>;
    /// A query with no parameter whose rows are (text, 64-bit integer) pairs.
    async fn query_pairs(&self, sql: &str) -> Result<Vec<(String, i64)>, DbError>;
    /// A query of at most one row of one text column.
    async fn query_opt_text(&self, sql: &str, params: &[Value]) -> Result<Option<String>, DbError>;
    /// A query of at most one row of one integer column.
    async fn query_opt_i64(&self, sql: &str, params: &[Value]) -> Result<Option<i64>, DbError>;
    /// One statement with bound parameters; the rows it changed.
    async fn exec_params(&self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    /// Loads the rows of every part, and one ledger row per part that has a chunk
    /// number, in one transaction.
    async fn load_many(&self, parts: Vec<Load<'_>>) -> Result<(), DbError>;
    /// Whether a staged chunk of `format` loads as it is ([`Load::raw`]).
    fn takes_as_is(&self, _format: ChunkFormat) -> bool {
        false
    }
    /// Whether `CREATE TABLE` can declare secondary indexes (MySQL); elsewhere they are
    /// `CREATE INDEX` statements of their own.
    fn inline_indexes(&self) -> bool {
        false
    }
    /// Whether a table loaded before its indexes gets its primary key after its rows too
    /// (PostgreSQL, where the key is an index like any other: built by one sort instead
    /// of a logged insert per row). InnoDB and SQLite store rows in key order, so there
    /// the key is part of the table.
    fn primary_key_after_rows(&self) -> bool {
        false
    }
    /// Adds the primary key on `columns` to a table that has none yet (see
    /// [`Driver::primary_key_after_rows`]); a key already there is kept.
    async fn add_primary_key(&self, table: &str, _columns: &[String]) -> Result<(), DbError> {
        Err(DbError::Backend(format!(
            "{}: {table}: no primary key added after the rows on {:?}",
            self.locator(),
            self.engine()
        )))
    }
    /// The clause after a `CREATE TABLE`'s options that starts its auto-increment at
    /// `next` (MySQL; elsewhere the sequence is set after the load).
    fn next_id_clause(&self, _next: i64) -> Option<String> {
        None
    }
    /// Runs a `SELECT` of `t`'s columns and gives its rows to `sink`, which sends them
    /// on in batches; returns what it sent.
    async fn stream(&self, t: &Table, sql: String, params: Vec<Value>, sink: RowSink) -> Sent;
    /// Runs a `COPY … TO STDOUT (FORMAT binary)` and gives its stream to `sink`
    /// (PostgreSQL; elsewhere there is none).
    async fn copy_out(&self, _sql: &str, _sink: &mut TupleSink) -> Result<(), DbError> {
        Err(DbError::Backend(format!(
            "{}: no binary COPY stream on {:?}",
            self.locator(),
            self.engine()
        )))
    }
    /// Makes `next` the next id the auto-increment of `table.column` hands out.
    async fn set_next_id(&self, table: &str, column: &str, next: i64) -> Result<(), DbError>;
    /// Commits without waiting for the disk, where the engine can.
    async fn relax_durability(&self) -> Result<(), DbError> {
        Ok(())
    }
    /// Inside a snapshot: its id for other connections, where the engine can share it.
    async fn export_snapshot(&self) -> Result<Option<String>, DbError> {
        Ok(None)
    }
    /// Creates the secondary indexes of a table that are not there yet.
    async fn create_indexes(&self, table: &str, indexes: &[Index]) -> Result<(), DbError> {
        for i in indexes {
            self.exec(&create_index_sql(self.engine(), table, i, true))
                .await?;
        }
        Ok(())
    }
    /// A query counting the databases named by its one parameter (`{}`), on a server.
    fn database_count_sql(&self) -> Option<&'static str> {
        None
    }
    /// Whether a database of that name exists on this server (never, without a query).
    async fn database_exists(&self, name: &str) -> Result<bool, DbError> {
        let Some(template) = self.database_count_sql() else {
            return Ok(false);
        };
        let name = Value::Text(name.to_owned());
        let sql = template.replace("{}", &self.mark_value(1, &name));
        Ok(self.query_opt_i64(&sql, &[name]).await?.unwrap_or(0) > 0)
    }
    /// Creates a database on this server.
    async fn create_database(&self, name: &str) -> Result<(), DbError> {
        self.exec(&format!("CREATE DATABASE {}", self.engine().quote(name)))
            .await
    }
    /// Drops a database of this server if it is there.
    async fn drop_database(&self, name: &str) -> Result<(), DbError>;
}

/// A connection to one database.
pub struct Db {
    driver: Box<dyn Driver>,
}

fn backend(loc: &Locator, e: impl std::fmt::Display) -> DbError {
    DbError::Backend(format!("{loc}: {e}"))
}

/// An error with its chain of causes, each once (some drivers show only the outermost).
fn full(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

fn unreachable(loc: &Locator, e: &dyn std::fmt::Display) -> DbError {
    DbError::Unreachable(format!("cannot reach the database {loc}: {e}"))
}

impl Db {
    /// Connects. `create` lets a SQLite file be created (a target); a missing source file
    /// is unreachable. An unreachable server is [`DbError::Unreachable`] naming its URL,
    /// password hidden.
    pub async fn connect(loc: &Locator, create: bool) -> Result<Db, DbError> {
        let driver: Box<dyn Driver> = match Engine::of(loc)? {
            Engine::Postgres => Box::new(postgres::connect(loc).await?),
            Engine::MySql => Box::new(mysql::connect(loc).await?),
            Engine::Sqlite => Box::new(sqlite::connect(loc, create).await?),
        };
        Ok(Db { driver })
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.driver.engine()
    }

    /// The URL, password hidden when shown.
    pub fn locator(&self) -> &Locator {
        self.driver.locator()
    }

    fn q(&self, ident: &str) -> String {
        self.engine().quote(ident)
    }

    /// Runs SQL with no parameters and no result (DDL, transaction control).
    pub async fn exec(&self, sql: &str) -> Result<(), DbError> {
        self.driver.exec(sql).await
    }

    /// Names of the base tables whose name starts with `prefix` (the ledger included).
    pub async fn list_tables(&self, prefix: &str) -> Result<Vec<String>, DbError> {
        let mut names = self.driver.table_names().await?;
        names.retain(|n| n.starts_with(prefix));
        names.sort();
        Ok(names)
    }

    /// Reads the schema of every table starting with `prefix` (the ledger excluded). A
    /// column whose type cannot be mapped is [`DbError::Unmappable`].
    pub async fn introspect(&self, prefix: &str) -> Result<Vec<Table>, DbError> {
        let mut tables = self.driver.introspect(prefix).await?;
        tables.retain(|t| t.name != LEDGER_TABLE);
        Ok(tables)
    }

    /// Creates a table from its neutral schema, without its secondary indexes (those,
    /// and on PostgreSQL its primary key, come after the load: [`Db::create_indexes`]).
    pub async fn create_table(&self, t: &Table) -> Result<(), DbError> {
        self.create_tables(&[(t, false)]).await
    }

    /// Creates tables, each with its indexes when its flag says so (a small table:
    /// building them after its few rows gains nothing); without the flag, its secondary
    /// indexes and, where the engine builds it faster after the rows, its primary key come
    /// from [`Db::create_indexes`] once it is loaded.
    /// PostgreSQL and SQLite take them in transactions of many tables, each whole with its
    /// indexes; MySQL commits each DDL statement by itself, so there it is one per table
    /// (its indexes inline).
    pub async fn create_tables(&self, tables: &[(&Table, bool)]) -> Result<(), DbError> {
        let d = self.driver.as_ref();
        let e = self.engine();
        // Each table with its indexes, never split between two transactions: a table
        // that is there is whole, so a rerun that finds it need not make it again.
        let mut batch: Vec<String> = Vec::new();
        for (n, &(t, indexed)) in tables.iter().enumerate() {
            let inline = indexed && d.inline_indexes();
            let key = indexed || !d.primary_key_after_rows();
            batch.push(create_table_sql(d, t, inline, key));
            if indexed && !inline {
                batch.extend(
                    t.indexes
                        .iter()
                        .map(|i| create_index_sql(e, &t.name, i, true)),
                );
            }
            if e == Engine::MySql {
                // One `CREATE TABLE` with its indexes inline: whole by itself.
                for sql in batch.drain(..) {
                    self.exec(&sql).await?;
                }
            } else if batch.len() >= DDL_BATCH || n + 1 == tables.len() {
                self.in_transaction(&batch.join(";\n")).await?;
                batch.clear();
            }
        }
        Ok(())
    }

    /// Runs `sql` (several statements) in one transaction, rolled back on failure.
    async fn in_transaction(&self, sql: &str) -> Result<(), DbError> {
        self.exec("BEGIN").await?;
        match self.exec(sql).await {
            Ok(()) => self.exec("COMMIT").await,
            Err(e) => {
                // The cause is the statement's error; a failed rollback adds nothing to it.
                let _ = self.exec("ROLLBACK").await;
                Err(e)
            }
        }
    }

    /// Creates the table's indexes that come after its rows: its secondary indexes and,
    /// where the engine defers it, its primary key (idempotent: an index already there
    /// is kept).
    pub async fn create_indexes(&self, t: &Table) -> Result<(), DbError> {
        if self.driver.primary_key_after_rows() && !t.primary_key.is_empty() {
            self.driver.add_primary_key(&t.name, &t.primary_key).await?;
        }
        if t.indexes.is_empty() {
            return Ok(());
        }
        self.driver.create_indexes(&t.name, &t.indexes).await
    }

    /// Drops a table if it is there.
    pub async fn drop_table(&self, name: &str) -> Result<(), DbError> {
        self.drop_tables(&[name.to_owned()]).await
    }

    /// Drops the tables that are there, many to a statement.
    pub async fn drop_tables(&self, names: &[String]) -> Result<(), DbError> {
        for part in names.chunks(DDL_BATCH) {
            let list: Vec<String> = part.iter().map(|n| self.q(n)).collect();
            if self.engine() == Engine::Sqlite {
                // SQLite drops one table a statement.
                let each: Vec<String> = list
                    .iter()
                    .map(|n| format!("DROP TABLE IF EXISTS {n}"))
                    .collect();
                self.in_transaction(&each.join(";\n")).await?;
            } else {
                self.exec(&format!("DROP TABLE IF EXISTS {}", list.join(", ")))
                    .await?;
            }
        }
        Ok(())
    }

    /// Sets the table's sequence (or auto-increment) so that the next id handed out is
    /// `max(next_id, max(id) + 1)`: ids of deleted rows never come back. Returns the value set.
    pub async fn carry_sequence(&self, t: &Table) -> Result<Option<i64>, DbError> {
        let Some(col) = t.auto_column() else {
            return Ok(None);
        };
        let max_sql = format!(
            "SELECT {} FROM {}",
            self.driver.max_expr(&col.name),
            self.q(&t.name)
        );
        let max = self.driver.query_opt_i64(&max_sql, &[]).await?;
        let next = max
            .map(|m| m.saturating_add(1))
            .unwrap_or(1)
            .max(t.next_id.unwrap_or(1));
        self.driver.set_next_id(&t.name, &col.name, next).await?;
        Ok(Some(next))
    }

    /// Creates the import ledger if it is not there.
    pub async fn create_ledger(&self) -> Result<(), DbError> {
        self.exec(&format!(
            "CREATE TABLE IF NOT EXISTS {} ({} VARCHAR(255) NOT NULL, {} BIGINT NOT NULL, \
             PRIMARY KEY ({}, {}))",
            self.q(LEDGER_TABLE),
            self.q("tbl"),
            self.q("chunk"),
            self.q("tbl"),
            self.q("chunk")
        ))
        .await
    }

    /// The chunks the ledger records as committed.
    pub async fn ledger(&self) -> Result<HashSet<(String, i64)>, DbError> {
        let sql = format!(
            "SELECT {}, {} FROM {}",
            self.q("tbl"),
            self.q("chunk"),
            self.q(LEDGER_TABLE)
        );
        Ok(self.query_pairs(&sql).await?.into_iter().collect())
    }

    /// Runs a query with no parameter whose rows are (text, 64-bit integer) pairs.
    pub(crate) async fn query_pairs(&self, sql: &str) -> Result<Vec<(String, i64)>, DbError> {
        self.driver.query_pairs(sql).await
    }

    /// The (table, bytes on disk) pairs of the current database, as the engine reports them.
    pub(crate) async fn table_sizes(&self) -> Result<Vec<(String, i64)>, DbError> {
        self.driver.query_pairs(self.driver.table_sizes_sql()).await
    }

    /// Runs a query returning at most one row of one text column, with bound parameters
    /// (`{}` where each placeholder goes): `None` when there is no row (or it is NULL).
    pub(crate) async fn query_opt_text(
        &self,
        template: &str,
        params: &[Value],
    ) -> Result<Option<String>, DbError> {
        let sql = self.fill(template, params);
        self.driver.query_opt_text(&sql, params).await
    }

    /// Loads rows into `t` in one transaction; with `ledger`, also records
    /// `(table, chunk)` in the ledger inside that transaction, so a chunk is either
    /// loaded and recorded or neither. PostgreSQL loads through `COPY`; MySQL through
    /// multi-row `INSERT`s; SQLite through one prepared `INSERT`.
    pub async fn load(
        &self,
        t: &Table,
        rows: Vec<Row>,
        ledger: Option<i64>,
    ) -> Result<(), DbError> {
        self.load_many(vec![Load {
            table: t,
            rows,
            raw: None,
            ledger,
        }])
        .await
    }

    /// [`Db::load`] of several tables' rows in one transaction (with their ledger rows):
    /// many small tables pay for one commit.
    pub async fn load_many(&self, parts: Vec<Load<'_>>) -> Result<(), DbError> {
        if parts.is_empty() {
            return Ok(());
        }
        if let Some((p, raw)) = parts
            .iter()
            .filter_map(|p| p.raw.as_ref().map(|r| (p, r)))
            .find(|(_, r)| !self.takes_as_is(r.format))
        {
            return Err(DbError::Backend(format!(
                "{}: table {} came as a staged chunk of {}, which this target does not load \
                 as it is",
                self.locator(),
                p.table.name,
                raw.format.tag()
            )));
        }
        self.driver.load_many(parts).await
    }

    /// Whether a staged chunk of `format` loads into this target as it is: PostgreSQL
    /// takes its binary `COPY` stream, MySQL `LOAD DATA` text where `local_infile` is on.
    /// Other chunks are decoded into rows first.
    pub fn takes_as_is(&self, format: ChunkFormat) -> bool {
        self.driver.takes_as_is(format)
    }

    /// For a target: PostgreSQL commits without waiting for the disk flush. Safe here:
    /// a chunk and its ledger row commit together, so a crash loses both or neither, and
    /// the rerun loads the chunk again.
    pub async fn relax_durability(&self) -> Result<(), DbError> {
        self.driver.relax_durability().await
    }

    /// Starts a read-only consistent snapshot on this connection, where the engine has one.
    pub async fn begin_snapshot(&self) -> Result<(), DbError> {
        self.exec(self.driver.begin_snapshot_sql()).await
    }

    /// On PostgreSQL, inside a snapshot: its id, for other connections to share it.
    pub async fn export_snapshot(&self) -> Result<Option<String>, DbError> {
        self.driver.export_snapshot().await
    }

    /// Starts a read-only transaction on the snapshot `id` of another connection.
    pub async fn join_snapshot(&self, id: &str) -> Result<(), DbError> {
        // SET TRANSACTION SNAPSHOT binds no parameter; the id comes from PostgreSQL and
        // is checked to be hex digits and dashes.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(DbError::Backend(format!("unexpected snapshot id {id:?}")));
        }
        self.exec(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{id}'"
        ))
        .await
    }

    /// Starts a read-only consistent snapshot on this connection and on up to `more` new
    /// ones that share it, where the engine can; returns the new connections. PostgreSQL
    /// exports its snapshot to them. MySQL holds a global read lock for the instant it
    /// takes the snapshots (`FLUSH TABLES WITH READ LOCK`, as `mydumper` does; given up
    /// after 10 s of waiting for a running statement); without the privilege for it, the
    /// snapshot stays on this connection alone. End each with [`Db::end_snapshot`].
    pub async fn begin_shared_snapshot(&self, more: usize) -> Result<Vec<Db>, DbError> {
        let mut dbs = Vec::new();
        match self.engine() {
            Engine::Postgres if more > 0 => {
                self.begin_snapshot().await?;
                if let Some(id) = self.export_snapshot().await? {
                    for _ in 0..more {
                        let db = Db::connect(self.locator(), false).await?;
                        db.join_snapshot(&id).await?;
                        dbs.push(db);
                    }
                }
            }
            Engine::MySql if more > 0 => {
                for _ in 0..more {
                    dbs.push(Db::connect(self.locator(), false).await?);
                }
                let locked = match self.exec("SET SESSION lock_wait_timeout = 10").await {
                    Ok(()) => self.exec("FLUSH TABLES WITH READ LOCK").await,
                    Err(e) => Err(e),
                };
                if let Err(e) = locked {
                    tracing::info!(
                        "one connection reads the source, without a shared snapshot: {e}"
                    );
                    self.begin_snapshot().await?;
                    return Ok(Vec::new());
                }
                let mut begun = self.begin_snapshot().await;
                for db in &dbs {
                    if begun.is_ok() {
                        begun = db.begin_snapshot().await;
                    }
                }
                let unlocked = self.exec("UNLOCK TABLES").await;
                begun?;
                unlocked?;
            }
            _ => self.begin_snapshot().await?,
        }
        Ok(dbs)
    }

    /// Ends the snapshot.
    pub async fn end_snapshot(&self) -> Result<(), DbError> {
        self.exec("COMMIT").await
    }

    /// Streams the rows of `t` down `tx`, in batches. With a primary key and `keyed`,
    /// in key order (text keys by bytes), page by page with keyset pagination
    /// (`page_rows` rows a query), from just after the key `start_after` when given;
    /// otherwise the whole table in one query, in no order.
    pub async fn stream_rows(
        &self,
        t: &Table,
        keyed: bool,
        page_rows: usize,
        start_after: Option<Row>,
        tx: &mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, DbError> {
        let key = if keyed { t.pk_positions() } else { vec![] };
        if key.is_empty() {
            return Ok(self.stream_page(t, &[], None, None, tx).await?.0);
        }
        let mut after: Option<Row> = start_after;
        let mut total = 0;
        loop {
            let (n, last) = self
                .stream_page(t, &key, after.as_ref(), Some(page_rows), tx)
                .await?;
            total += n;
            if (n as usize) < page_rows {
                return Ok(total);
            }
            after = last;
        }
    }

    /// One query: rows after `after` (key values) in key order, at most `limit`.
    /// Returns how many were sent and the key of the last.
    async fn stream_page(
        &self,
        t: &Table,
        key: &[usize],
        after: Option<&Row>,
        limit: Option<usize>,
        tx: &mpsc::Sender<Vec<Row>>,
    ) -> Result<(u64, Option<Row>), DbError> {
        let d = self.driver.as_ref();
        let select: Vec<String> = t.columns.iter().map(|c| d.select_expr(c)).collect();
        let mut params = Vec::new();
        let sql = page_sql(d, t, &select, key, after, limit, &mut |ty, v| {
            params.push(v.clone());
            d.mark_type(params.len(), ty)
        });
        let sink = RowSink::new(tx.clone(), key.to_vec());
        self.driver.stream(t, sql, params, sink).await
    }

    /// [`Db::stream_rows`] as PostgreSQL's binary `COPY` stream: the tuples of `t` (its
    /// columns as they are) go down `tx` in batches, in pages of `page_rows` in key order
    /// after `start_after` when `keyed`, otherwise in one `COPY` in no order. Each page's
    /// last key is read from its last tuple. Returns the tuples sent.
    pub async fn stream_tuples(
        &self,
        t: &Table,
        keyed: bool,
        page_rows: usize,
        start_after: Option<Row>,
        tx: &mpsc::Sender<crate::pgcopy::Tuples>,
    ) -> Result<u64, DbError> {
        let d = self.driver.as_ref();
        let key = if keyed { t.pk_positions() } else { vec![] };
        let select: Vec<String> = t.columns.iter().map(|c| self.q(&c.name)).collect();
        let limit = (!key.is_empty()).then_some(page_rows);
        let mut after = start_after;
        let mut total = 0;
        loop {
            // COPY binds no parameters: the key goes in as literals of its columns' types.
            let sql = page_sql(d, t, &select, &key, after.as_ref(), limit, &mut |ty, v| {
                postgres::literal(v, ty)
            });
            let mut sink = TupleSink::new(tx.clone(), t);
            d.copy_out(
                &format!("COPY ({sql}) TO STDOUT (FORMAT binary)"),
                &mut sink,
            )
            .await?;
            let (n, last) = sink.finish().await?;
            total += n;
            match (limit, last) {
                (Some(page), Some(last)) if n as usize >= page => {
                    after = Some(crate::pgcopy::decode_key(t, &key, &last)?);
                }
                _ => return Ok(total),
            }
        }
    }

    /// Runs one statement with bound parameters, written with `{}` where each placeholder
    /// goes; returns the rows it changed.
    pub(crate) async fn exec_params(
        &self,
        template: &str,
        params: &[Value],
    ) -> Result<u64, DbError> {
        let sql = self.fill(template, params);
        self.driver.exec_params(&sql, params).await
    }

    /// The server-side digest of `t` ([`Driver::digest`]), or `None` where the engine
    /// computes none.
    pub async fn digest(&self, t: &Table) -> Result<Option<String>, DbError> {
        self.driver.digest(t).await
    }

    /// Runs a query returning one integer, with bound parameters: the SQL has `{}` where
    /// each placeholder goes (written per engine here), and no value of its own. No row,
    /// or NULL, is 0.
    pub async fn query_i64(&self, template: &str, params: &[Value]) -> Result<i64, DbError> {
        let sql = self.fill(template, params);
        Ok(self.driver.query_opt_i64(&sql, params).await?.unwrap_or(0))
    }

    fn fill(&self, template: &str, params: &[Value]) -> String {
        let mut out = String::with_capacity(template.len() + 8 * params.len());
        let mut parts = template.split("{}");
        if let Some(first) = parts.next() {
            out.push_str(first);
        }
        for (i, part) in parts.enumerate() {
            let v = params.get(i).unwrap_or(&Value::Null);
            out.push_str(&self.driver.mark_value(i + 1, v));
            out.push_str(part);
        }
        out
    }

    /// Whether a database of that name exists on this server (never, for SQLite).
    pub(crate) async fn exists_database(&self, name: &str) -> Result<bool, DbError> {
        self.driver.database_exists(name).await
    }

    /// Creates database `name` on this server.
    pub(crate) async fn create_database(&self, name: &str) -> Result<(), DbError> {
        self.driver.create_database(name).await
    }

    /// Drops database `name` of this server if it is there.
    pub(crate) async fn drop_database(&self, name: &str) -> Result<(), DbError> {
        self.driver.drop_database(name).await
    }

    /// SQLite: writes a consistent copy of the database to `path`.
    pub(crate) async fn vacuum_into(&self, path: &str) -> Result<(), DbError> {
        self.exec_params("VACUUM INTO {}", &[Value::Text(path.to_owned())])
            .await
            .map(|_| ())
    }

    /// Replaces `search` by `replace` in one column, in the rows whose value contains it
    /// (`pattern`: a LIKE pattern escaped with `!`). With `max_len`, rows whose new value
    /// would be longer are left alone: how many, and, with the table's `key` column, the
    /// keys of the first `ids` of them in key order.
    #[allow(clippy::too_many_arguments)] // one column's replacement, every part named
    pub(crate) async fn replace_in_column(
        &self,
        table: &str,
        column: &str,
        key: Option<&str>,
        max_len: Option<u32>,
        search: &str,
        replace: &str,
        pattern: &str,
        ids: usize,
    ) -> Result<ColumnReplaced, DbError> {
        let (t, c) = (self.q(table), self.q(column));
        let len_fn = self.driver.length_fn();
        let s = || Value::Text(search.to_owned());
        let r = || Value::Text(replace.to_owned());
        let p = || Value::Text(pattern.to_owned());
        let like = format!("{c} LIKE {{}} ESCAPE '!'");
        let Some(len) = max_len else {
            let changed = self
                .exec_params(
                    &format!("UPDATE {t} SET {c} = REPLACE({c}, {{}}, {{}}) WHERE {like}"),
                    &[s(), r(), p()],
                )
                .await?;
            return Ok(ColumnReplaced {
                changed,
                ..ColumnReplaced::default()
            });
        };
        let fits = format!("{len_fn}(REPLACE({c}, {{}}, {{}}))");
        let changed = self
            .exec_params(
                &format!(
                    "UPDATE {t} SET {c} = REPLACE({c}, {{}}, {{}}) WHERE {like} AND {fits} <= {{}}"
                ),
                &[s(), r(), p(), s(), r(), Value::Int(len.into())],
            )
            .await?;
        let too_long = format!("FROM {t} WHERE {like} AND {fits} > {{}}");
        let too_long_params = [p(), s(), r(), Value::Int(len.into())];
        let left = self
            .query_i64(&format!("SELECT COUNT(*) {too_long}"), &too_long_params)
            .await?
            .max(0) as u64;
        let mut keys = Vec::new();
        if let Some(k) = key.filter(|_| left > 0 && ids > 0) {
            let k = self.q(k);
            let joined = self.driver.join_texts("k");
            let listed = self
                .query_opt_text(
                    &format!(
                        "SELECT {joined} FROM (SELECT {k} AS k {too_long} ORDER BY {k} LIMIT {ids}) s"
                    ),
                    &too_long_params,
                )
                .await?;
            keys = listed
                .unwrap_or_default()
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect();
            // The aggregate keeps no order of its own: numbers in number order, else text.
            keys.sort_by_key(|k| (k.parse::<i64>().unwrap_or(i64::MAX), k.clone()));
        }
        Ok(ColumnReplaced {
            changed,
            left,
            keys,
        })
    }

    /// `UPDATE table SET col = value, … WHERE key = value`, all values bound; returns
    /// the rows changed.
    pub(crate) async fn update_row(
        &self,
        table: &str,
        sets: &[(&str, &str)],
        key: (&str, &str),
    ) -> Result<u64, DbError> {
        let assign: Vec<String> = sets
            .iter()
            .map(|(c, _)| format!("{} = {{}}", self.q(c)))
            .collect();
        let mut params: Vec<Value> = sets
            .iter()
            .map(|(_, v)| Value::Text((*v).to_owned()))
            .collect();
        let key_value = match key.1.parse::<i64>() {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Text(key.1.to_owned()),
        };
        params.push(key_value);
        self.exec_params(
            &format!(
                "UPDATE {} SET {} WHERE {} = {{}}",
                self.q(table),
                assign.join(", "),
                self.q(key.0)
            ),
            &params,
        )
        .await
    }
}

/// What a replacement did in one column.
#[derive(Debug, Default)]
pub(crate) struct ColumnReplaced {
    /// Rows changed.
    pub changed: u64,
    /// Rows left alone: the new text would not fit.
    pub left: u64,
    /// The keys of the first of those rows, in key order.
    pub keys: Vec<String>,
}

/// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON table (columns)`.
fn create_index_sql(e: Engine, table: &str, i: &Index, if_not_exists: bool) -> String {
    let cols: Vec<String> = i.columns.iter().map(|c| e.quote(c)).collect();
    format!(
        "CREATE {}INDEX {}{} ON {} ({})",
        if i.unique { "UNIQUE " } else { "" },
        if if_not_exists { "IF NOT EXISTS " } else { "" },
        e.quote(&i.name),
        e.quote(table),
        cols.join(", ")
    )
}

/// Statements (tables dropped or created) sent to the server at once.
const DDL_BATCH: usize = 100;

/// `CREATE TABLE` of a neutral table in the driver's dialect; with `key`, its primary key
/// (a rowid alias always is), with `inline`, its secondary indexes too.
fn create_table_sql(d: &dyn Driver, t: &Table, inline: bool, key: bool) -> String {
    let e = d.engine();
    let mut parts = Vec::new();
    let single_auto_pk =
        t.primary_key.len() == 1 && t.auto_column().is_some_and(|c| c.name == t.primary_key[0]);
    let rowid = d.rowid_alias() && single_auto_pk;
    for c in &t.columns {
        let mut def = format!("{} ", e.quote(&c.name));
        if c.auto_increment && rowid {
            // A rowid alias; AUTOINCREMENT so deleted ids are never handed out again.
            def.push_str("INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL");
            parts.push(def);
            continue;
        }
        def.push_str(&d.ddl_type(c));
        if !c.nullable {
            def.push_str(" NOT NULL");
        }
        if c.auto_increment {
            def.push_str(d.auto_increment_clause());
        }
        if let Some(v) = &c.default
            && !c.auto_increment
        {
            def.push_str(" DEFAULT ");
            def.push_str(&e.literal(v));
        }
        parts.push(def);
    }
    if key && !(t.primary_key.is_empty() || rowid) {
        let cols: Vec<String> = t.primary_key.iter().map(|k| e.quote(k)).collect();
        parts.push(format!("PRIMARY KEY ({})", cols.join(", ")));
    }
    if inline {
        for i in &t.indexes {
            let cols: Vec<String> = i.columns.iter().map(|c| e.quote(c)).collect();
            parts.push(format!(
                "{}INDEX {} ({})",
                if i.unique { "UNIQUE " } else { "" },
                e.quote(&i.name),
                cols.join(", ")
            ));
        }
    }
    let next = t
        .next_id
        .filter(|_| t.auto_column().is_some())
        .and_then(|n| d.next_id_clause(n))
        .unwrap_or_default();
    format!(
        "CREATE TABLE {} ({}){}{next}",
        e.quote(&t.name),
        parts.join(", "),
        d.table_options()
    )
}

/// The `SELECT` of `select` (one per column of `t`) for one keyset page of `t` (rows after
/// `after` in key order, at most `limit`); `mark` writes each value's place (a
/// placeholder, or a literal) given its column's type.
fn page_sql(
    d: &dyn Driver,
    t: &Table,
    select: &[String],
    key: &[usize],
    after: Option<&Row>,
    limit: Option<usize>,
    mark: &mut dyn FnMut(ColType, &Value) -> String,
) -> String {
    let key_expr = |i: usize| d.key_expr(&t.columns[i]);
    let mut sql = format!(
        "SELECT {} FROM {}",
        select.join(", "),
        d.engine().quote(&t.name)
    );
    if let Some(after) = after {
        let mut ors = Vec::new();
        for i in 0..key.len() {
            let mut ands = Vec::new();
            for (j, &col) in key.iter().enumerate().take(i) {
                let m = mark(t.columns[col].ty, &after[j]);
                ands.push(format!("{} = {m}", key_expr(col)));
            }
            let m = mark(t.columns[key[i]].ty, &after[i]);
            ands.push(format!("{} > {m}", key_expr(key[i])));
            ors.push(format!("({})", ands.join(" AND ")));
        }
        sql.push_str(&format!(" WHERE {}", ors.join(" OR ")));
    }
    if !key.is_empty() {
        let order: Vec<String> = key.iter().map(|&i| key_expr(i)).collect();
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    }
    if let Some(limit) = limit {
        let m = mark(ColType::Int { bytes: 8 }, &Value::Int(limit as i64));
        sql.push_str(&format!(" LIMIT {m}"));
    }
    sql
}

/// Where a binary `COPY` stream goes: split into tuples, sent on in batches, counted,
/// and the last one kept (where the next page starts).
pub(crate) struct TupleSink {
    split: crate::pgcopy::Splitter,
    tx: mpsc::Sender<crate::pgcopy::Tuples>,
    batch: crate::pgcopy::Tuples,
    sent: u64,
    last: Option<Vec<u8>>,
}

impl TupleSink {
    fn new(tx: mpsc::Sender<crate::pgcopy::Tuples>, t: &Table) -> Self {
        TupleSink {
            split: crate::pgcopy::Splitter::new(format!("COPY of {}", t.name), t),
            tx,
            batch: Default::default(),
            sent: 0,
            last: None,
        }
    }

    /// Takes the next piece of the stream.
    pub(crate) async fn feed(&mut self, piece: &[u8]) -> Result<(), DbError> {
        self.split.feed(piece, &mut self.batch)?;
        if self.batch.len() >= BATCH_ROWS || self.batch.bytes() >= BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), DbError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.last = self.batch.last().map(<[u8]>::to_vec);
        self.sent += self.batch.len() as u64;
        let batch = std::mem::take(&mut self.batch);
        self.tx.send(batch).await.map_err(|_| closed())
    }

    /// Checks the stream ended whole and sends what is left: how many tuples were sent,
    /// and the last.
    async fn finish(mut self) -> Result<(u64, Option<Vec<u8>>), DbError> {
        self.split.finish()?;
        self.flush().await?;
        Ok((self.sent, self.last))
    }
}

/// What a read sent: how many rows, and the key values of the last (where the next page
/// starts).
pub(crate) type Sent = Result<(u64, Option<Row>), DbError>;

/// Where a read puts its rows: gathered into batches before they go down the channel,
/// counted, and the key values of the last one kept. The same for every engine; the
/// `_blocking` calls serve a driver that reads on a blocking thread.
pub(crate) struct RowSink {
    tx: mpsc::Sender<Vec<Row>>,
    key: Vec<usize>,
    rows: Vec<Row>,
    bytes: usize,
    sent: u64,
    last: Option<Row>,
}

fn closed() -> DbError {
    DbError::Backend("the reader of the rows stopped".into())
}

impl RowSink {
    fn new(tx: mpsc::Sender<Vec<Row>>, key: Vec<usize>) -> Self {
        RowSink {
            tx,
            key,
            rows: Vec::new(),
            bytes: 0,
            sent: 0,
            last: None,
        }
    }

    /// Takes a row; whether the batch is full.
    fn add(&mut self, row: Row) -> bool {
        self.sent += 1;
        if !self.key.is_empty() {
            self.last = Some(self.key.iter().map(|&i| row[i].clone()).collect());
        }
        self.bytes += row.iter().map(Value::weight).sum::<usize>();
        self.rows.push(row);
        self.rows.len() >= BATCH_ROWS || self.bytes >= BATCH_BYTES
    }

    /// The batch so far, and the counters ready for the next.
    fn take(&mut self) -> Option<Vec<Row>> {
        self.bytes = 0;
        (!self.rows.is_empty()).then(|| std::mem::take(&mut self.rows))
    }

    async fn push(&mut self, row: Row) -> Result<(), DbError> {
        if self.add(row) {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), DbError> {
        if let Some(rows) = self.take() {
            self.tx.send(rows).await.map_err(|_| closed())?;
        }
        Ok(())
    }

    /// Sends what is left; what was sent.
    async fn finish(mut self) -> Sent {
        self.flush().await?;
        Ok((self.sent, self.last))
    }

    fn push_blocking(&mut self, row: Row) -> Result<(), DbError> {
        if self.add(row) {
            self.flush_blocking()?;
        }
        Ok(())
    }

    fn flush_blocking(&mut self) -> Result<(), DbError> {
        if let Some(rows) = self.take() {
            self.tx.blocking_send(rows).map_err(|_| closed())?;
        }
        Ok(())
    }

    /// [`RowSink::finish`], on a blocking thread.
    fn finish_blocking(mut self) -> Sent {
        self.flush_blocking()?;
        Ok((self.sent, self.last))
    }
}

fn push_column(tables: &mut BTreeMap<String, Table>, table: &str, col: Column) {
    tables
        .entry(table.to_owned())
        .or_insert_with(|| Table {
            name: table.to_owned(),
            columns: vec![],
            primary_key: vec![],
            indexes: vec![],
            next_id: None,
        })
        .columns
        .push(col);
}

/// A column as an engine's catalog describes it, before it is checked.
struct Described<'a> {
    table: &'a str,
    name: String,
    /// The neutral type the engine made of `declared`, if it has one.
    ty: Option<ColType>,
    /// The type as the catalog gives it, to name an unmappable one.
    declared: &'a str,
    nullable: bool,
    auto_increment: bool,
    /// The default expression as the catalog gives it.
    default: Option<&'a str>,
}

impl Described<'_> {
    /// The neutral column: an unmappable type or default is an error naming the column.
    /// An auto-increment column's default (its sequence) is not kept.
    fn column(self) -> Result<Column, DbError> {
        let ty = self.ty.ok_or_else(|| DbError::Unmappable {
            table: self.table.to_owned(),
            column: self.name.clone(),
            ty: self.declared.to_owned(),
        })?;
        let default = if self.auto_increment {
            None
        } else {
            column_default(self.table, &self.name, self.default)?
        };
        Ok(Column {
            name: self.name,
            ty,
            nullable: self.nullable,
            default,
            auto_increment: self.auto_increment,
        })
    }
}

fn column_default(table: &str, column: &str, raw: Option<&str>) -> Result<Option<String>, DbError> {
    match raw {
        None => Ok(None),
        Some(raw) => parse_default(raw).map_err(|()| DbError::Unmappable {
            table: table.to_owned(),
            column: column.to_owned(),
            ty: format!("with default expression {raw}"),
        }),
    }
}

/// The integer type of `bytes` storage bytes, as MySQL and SQLite declare it.
/// An engine's names of the neutral column types in `CREATE TABLE`, where engines differ
/// (`VARCHAR(n)` and `DATE` are everyone's). Each engine file holds its own.
pub(crate) struct TypeNames {
    /// An integer of so many bytes, auto-increment or not.
    int: fn(u8, bool) -> &'static str,
    /// A fixed-point number, written with its precision and scale.
    number: &'static str,
    float: &'static str,
    double: &'static str,
    text: &'static str,
    binary: &'static str,
    boolean: &'static str,
    timestamp: &'static str,
}

impl TypeNames {
    /// The column type of `c` in DDL.
    fn ddl(&self, c: &Column) -> String {
        match c.ty {
            ColType::Int { bytes } => (self.int)(bytes, c.auto_increment).into(),
            ColType::Number { precision, scale } => {
                format!("{}({precision},{scale})", self.number)
            }
            ColType::Float { double } => if double { self.double } else { self.float }.into(),
            ColType::Char { len } => format!("VARCHAR({len})"),
            ColType::Text => self.text.into(),
            ColType::Binary => self.binary.into(),
            ColType::Bool => self.boolean.into(),
            ColType::Date => "DATE".into(),
            ColType::Timestamp => self.timestamp.into(),
        }
    }
}

/// A nullable column `c` of type `ty`, for the engines' tests of their type mapping.
#[cfg(test)]
fn test_column(ty: ColType, auto_increment: bool) -> Column {
    Column {
        name: "c".into(),
        ty,
        nullable: true,
        default: None,
        auto_increment,
    }
}

/// The integer types of MySQL, which SQLite reads back too; an auto-increment is a clause
/// of its own there.
fn int_ddl(bytes: u8, _auto_increment: bool) -> &'static str {
    match bytes {
        1 => "TINYINT",
        2 => "SMALLINT",
        3 => "MEDIUMINT",
        4 => "INT",
        _ => "BIGINT",
    }
}

/// How an engine's bulk text format (PostgreSQL `COPY`, MySQL `LOAD DATA`) writes the
/// values where the two differ.
pub(crate) struct TsvStyle {
    /// `true` and `false`.
    pub(crate) bools: (&'static [u8], &'static [u8]),
    /// Written before the hex digits of a binary value.
    pub(crate) hex_prefix: &'static [u8],
}

/// Appends one row as a line of tab-separated fields: NULL as `\N`, backslash, tab,
/// newline, carriage return and NUL escaped with a backslash, binary values as hex.
pub(crate) fn tsv_line(row: &Row, style: &TsvStyle, out: &mut Vec<u8>) {
    use std::io::Write as _;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match v {
            Value::Null => out.extend_from_slice(b"\\N"),
            Value::Bool(b) => out.extend_from_slice(if *b { style.bools.0 } else { style.bools.1 }),
            Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Value::Float(f) => {
                if f.is_nan() {
                    out.extend_from_slice(b"NaN");
                } else if f.is_infinite() {
                    out.extend_from_slice(if *f > 0.0 { b"Infinity" } else { b"-Infinity" });
                } else {
                    // Shortest text that reads back to the same bits.
                    let _ = write!(out, "{f:?}");
                }
            }
            Value::Bytes(b) => {
                out.extend_from_slice(style.hex_prefix);
                out.reserve(2 * b.len());
                for x in b {
                    out.push(HEX[usize::from(x >> 4)]);
                    out.push(HEX[usize::from(x & 15)]);
                }
            }
            Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) => {
                // The runs between escapes are copied whole: most texts have none.
                let mut rest = s.as_bytes();
                while let Some(at) = rest
                    .iter()
                    .position(|b| matches!(b, b'\\' | b'\n' | b'\r' | b'\t' | 0))
                {
                    out.extend_from_slice(&rest[..at]);
                    out.extend_from_slice(match rest[at] {
                        b'\\' => b"\\\\",
                        b'\n' => b"\\n",
                        b'\r' => b"\\r",
                        b'\t' => b"\\t",
                        _ => b"\\0",
                    });
                    rest = &rest[at + 1..];
                }
                out.extend_from_slice(rest);
            }
        }
    }
    out.push(b'\n');
}

/// A value read as text, typed by its column.
fn typed_text(ty: ColType, s: String) -> Value {
    match ty {
        ColType::Number { .. } => Value::Decimal(normalize_decimal(&s)),
        ColType::Date => Value::Date(s),
        ColType::Timestamp => Value::Timestamp(normalize_timestamp(&s)),
        _ => Value::Text(s),
    }
}

/// The shapes (keywords in order) of the statements this process has sent to MySQL so far,
/// sorted; recorded in debug builds only. For the test that lists them.
#[doc(hidden)]
pub fn mysql_statement_shapes() -> Vec<String> {
    mysql::statements::seen()
}

/// The databases of a server, by engine: a folder of files for SQLite.
pub(crate) mod files {
    pub(crate) use super::sqlite::{create_folder, exists, in_folder, remove};
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Index;

    /// A creation that fails part way leaves every table it made whole, with all its
    /// indexes: a rerun that finds a table there does not make it again. The statements
    /// here fill more than one transaction, and the failure comes in the second.
    #[tokio::test]
    async fn tables_are_made_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&Locator::new(url), true).await.unwrap();
        let table = |n: usize| Table {
            name: format!("t{n}"),
            columns: vec![
                Column {
                    name: "a".into(),
                    ..test_column(ColType::Int { bytes: 8 }, false)
                },
                Column {
                    name: "b".into(),
                    ..test_column(ColType::Text, false)
                },
            ],
            primary_key: vec!["a".into()],
            indexes: ["a", "b"]
                .iter()
                .map(|c| Index {
                    name: format!("t{n}_{c}"),
                    columns: vec![(*c).into()],
                    unique: false,
                })
                .collect(),
            next_id: None,
        };
        // Three statements a table: the first transaction's 100th is a `CREATE TABLE`.
        let mut tables: Vec<Table> = (0..60).map(table).collect();
        tables[45].name = "t0".into();
        let flagged: Vec<(&Table, bool)> = tables.iter().map(|t| (t, true)).collect();
        assert!(db.create_tables(&flagged).await.is_err());
        let made = db.introspect("t").await.unwrap();
        assert!(!made.is_empty(), "the first transaction commits");
        for t in &made {
            assert_eq!(t.indexes.len(), 2, "{} without its indexes", t.name);
        }
    }
}

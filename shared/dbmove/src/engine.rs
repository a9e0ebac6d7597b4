//! The three engines behind one handle: connect, introspect, stream rows in key order,
//! create tables and indexes, load rows, carry sequences.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use a2a_core::Locator;
use futures::{SinkExt as _, StreamExt as _};
use mysql_async::prelude::Queryable as _;
use tokio::sync::mpsc;
use tokio_postgres::types::{ToSql, Type};

use crate::DbError;
use crate::schema::{
    ColType, Column, Index, Row, Table, Value, normalize_decimal, normalize_timestamp,
    parse_default,
};

/// The table in the target that records committed chunks while an import runs.
pub const LEDGER_TABLE: &str = "a2a_import_ledger";

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

enum Inner {
    Pg(tokio_postgres::Client),
    My(tokio::sync::Mutex<mysql_async::Conn>),
    Lite(Arc<Mutex<rusqlite::Connection>>),
}

/// A connection to one database.
pub struct Db {
    locator: Locator,
    engine: Engine,
    inner: Inner,
}

fn backend(loc: &Locator, e: impl std::fmt::Display) -> DbError {
    DbError::Backend(format!("{loc}: {e}"))
}

fn lite_path(loc: &Locator) -> Result<String, DbError> {
    let path = loc.expose().strip_prefix("sqlite://").unwrap_or("");
    if path.is_empty() {
        return Err(DbError::Input(format!(
            "{loc}: a SQLite URL names a file: sqlite:///abs/path.db or sqlite://rel.db"
        )));
    }
    Ok(path.to_owned())
}

impl Db {
    /// Connects. `create` lets a SQLite file be created (a target); a missing source file
    /// is unreachable. An unreachable server is [`DbError::Unreachable`] naming its URL,
    /// password hidden.
    pub async fn connect(loc: &Locator, create: bool) -> Result<Db, DbError> {
        let engine = Engine::of(loc)?;
        let unreachable = |e: &dyn std::fmt::Display| {
            DbError::Unreachable(format!("cannot reach the database {loc}: {e}"))
        };
        let inner = match engine {
            Engine::Postgres => {
                let mut config: tokio_postgres::Config = loc
                    .expose()
                    .parse()
                    .map_err(|e| DbError::Input(format!("{loc}: not a PostgreSQL URL: {e}")))?;
                config.connect_timeout(CONNECT_TIMEOUT);
                let (client, conn) =
                    tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tokio_postgres::NoTls))
                        .await
                        .map_err(|_| unreachable(&"timed out"))?
                        .map_err(|e| unreachable(&e))?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("postgres connection ended: {e}");
                    }
                });
                client
                    .batch_execute("SET DateStyle = ISO; SET client_encoding = 'UTF8'")
                    .await
                    .map_err(|e| backend(loc, e))?;
                Inner::Pg(client)
            }
            Engine::MySql => {
                let url = loc.expose().replacen("mariadb://", "mysql://", 1);
                let opts = mysql_async::Opts::from_url(&url)
                    .map_err(|e| DbError::Input(format!("{loc}: not a MySQL URL: {e}")))?;
                let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(opts))
                    .await
                    .map_err(|_| unreachable(&"timed out"))?
                    .map_err(|e| unreachable(&e))?;
                conn.query_drop("SET NAMES utf8mb4")
                    .await
                    .map_err(|e| backend(loc, e))?;
                Inner::My(tokio::sync::Mutex::new(conn))
            }
            Engine::Sqlite => {
                let path = lite_path(loc)?;
                let conn = tokio::task::spawn_blocking(move || {
                    use rusqlite::OpenFlags as F;
                    let mut flags = F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_NO_MUTEX;
                    if create {
                        flags |= F::SQLITE_OPEN_CREATE;
                    }
                    let c = rusqlite::Connection::open_with_flags(&path, flags)?;
                    c.busy_timeout(Duration::from_secs(30))?;
                    Ok::<_, rusqlite::Error>(c)
                })
                .await
                .map_err(|e| DbError::Backend(e.to_string()))?
                .map_err(|e| unreachable(&e))?;
                Inner::Lite(Arc::new(Mutex::new(conn)))
            }
        };
        Ok(Db {
            locator: loc.clone(),
            engine,
            inner,
        })
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The URL, password hidden when shown.
    pub fn locator(&self) -> &Locator {
        &self.locator
    }

    fn q(&self, ident: &str) -> String {
        self.engine.quote(ident)
    }

    fn err(&self, e: impl std::fmt::Display) -> DbError {
        backend(&self.locator, e)
    }

    /// Runs SQL with no parameters and no result (DDL, transaction control).
    pub async fn exec(&self, sql: &str) -> Result<(), DbError> {
        match &self.inner {
            Inner::Pg(c) => c.batch_execute(sql).await.map_err(|e| self.err(e)),
            Inner::My(c) => c
                .lock()
                .await
                .query_drop(sql)
                .await
                .map_err(|e| self.err(e)),
            Inner::Lite(c) => {
                let (c, sql) = (c.clone(), sql.to_owned());
                lite(&self.locator, move |c| c.execute_batch(&sql), c).await
            }
        }
    }

    /// Names of the base tables whose name starts with `prefix` (the ledger included).
    pub async fn list_tables(&self, prefix: &str) -> Result<Vec<String>, DbError> {
        let mut names: Vec<String> = match &self.inner {
            Inner::Pg(c) => c
                .query(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                    &[],
                )
                .await
                .map_err(|e| self.err(e))?
                .iter()
                .map(|r| r.get(0))
                .collect(),
            Inner::My(c) => c
                .lock()
                .await
                .query(
                    "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
                )
                .await
                .map_err(|e| self.err(e))?,
            Inner::Lite(c) => {
                lite(
                    &self.locator,
                    |c| {
                        let mut st = c.prepare(
                            "SELECT name FROM sqlite_master WHERE type = 'table' \
                             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                        )?;
                        st.query_map([], |r| r.get(0))?.collect()
                    },
                    c.clone(),
                )
                .await?
            }
        };
        names.retain(|n| n.starts_with(prefix));
        names.sort();
        Ok(names)
    }

    /// Reads the schema of every table starting with `prefix` (the ledger excluded). A
    /// column whose type cannot be mapped is [`DbError::Unmappable`].
    pub async fn introspect(&self, prefix: &str) -> Result<Vec<Table>, DbError> {
        let mut tables = match &self.inner {
            Inner::Pg(c) => self.pg_introspect(c, prefix).await?,
            Inner::My(c) => self.my_introspect(&mut *c.lock().await, prefix).await?,
            Inner::Lite(c) => {
                let prefix = prefix.to_owned();
                let c = c.clone();
                tokio::task::spawn_blocking(move || {
                    let c = c.lock().map_err(|e| DbError::Backend(e.to_string()))?;
                    lite_introspect(&c, &prefix)
                })
                .await
                .map_err(|e| DbError::Backend(e.to_string()))??
            }
        };
        tables.retain(|t| t.name != LEDGER_TABLE);
        Ok(tables)
    }

    async fn pg_introspect(
        &self,
        c: &tokio_postgres::Client,
        prefix: &str,
    ) -> Result<Vec<Table>, DbError> {
        let rows = c
            .query(
                "SELECT c.table_name::text, c.column_name::text, c.data_type::text, \
                        c.character_maximum_length::int4, c.numeric_precision::int4, \
                        c.numeric_scale::int4, c.is_nullable::text, c.column_default::text, \
                        c.is_identity::text \
                 FROM information_schema.columns c \
                 JOIN information_schema.tables t \
                   ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                 WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
                   AND left(c.table_name::text, length($1)) = $1 \
                 ORDER BY c.table_name, c.ordinal_position",
                &[&prefix],
            )
            .await
            .map_err(|e| self.err(e))?;
        let mut tables: BTreeMap<String, Table> = BTreeMap::new();
        for r in &rows {
            let table: String = r.get(0);
            let name: String = r.get(1);
            let dt: String = r.get(2);
            let len: Option<i32> = r.get(3);
            let prec: Option<i32> = r.get(4);
            let scale: Option<i32> = r.get(5);
            let default: Option<String> = r.get(7);
            let identity = r.get::<_, Option<String>>(8).as_deref() == Some("YES");
            let unmappable = || DbError::Unmappable {
                table: table.clone(),
                column: name.clone(),
                ty: dt.clone(),
            };
            let ty = match dt.as_str() {
                "smallint" => ColType::Int { bytes: 2 },
                "integer" => ColType::Int { bytes: 4 },
                "bigint" => ColType::Int { bytes: 8 },
                "numeric" => match (prec, scale) {
                    (Some(p), Some(s)) => ColType::Number {
                        precision: p as u32,
                        scale: s as u32,
                    },
                    _ => return Err(unmappable()),
                },
                "real" => ColType::Float { double: false },
                "double precision" => ColType::Float { double: true },
                "character varying" | "character" => match len {
                    Some(n) => ColType::Char { len: n as u32 },
                    None => ColType::Text,
                },
                "text" => ColType::Text,
                "bytea" => ColType::Binary,
                "boolean" => ColType::Bool,
                "date" => ColType::Date,
                "timestamp without time zone" => ColType::Timestamp,
                _ => return Err(unmappable()),
            };
            let auto = identity
                || default
                    .as_deref()
                    .is_some_and(|d| d.starts_with("nextval("));
            let default = if auto {
                None
            } else {
                column_default(&table, &name, default.as_deref())?
            };
            push_column(
                &mut tables,
                &table,
                Column {
                    name,
                    ty,
                    nullable: r.get::<_, String>(6) == "YES",
                    default,
                    auto_increment: auto,
                },
            );
        }
        let pks = c
            .query(
                "SELECT tc.table_name::text, kcu.column_name::text \
                 FROM information_schema.table_constraints tc \
                 JOIN information_schema.key_column_usage kcu \
                   ON kcu.constraint_name = tc.constraint_name \
                  AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name \
                 WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema() \
                   AND left(tc.table_name::text, length($1)) = $1 \
                 ORDER BY tc.table_name, kcu.ordinal_position",
                &[&prefix],
            )
            .await
            .map_err(|e| self.err(e))?;
        for r in &pks {
            if let Some(t) = tables.get_mut(&r.get::<_, String>(0)) {
                t.primary_key.push(r.get(1));
            }
        }
        let idx = c
            .query(
                "SELECT t.relname::text, i.relname::text, ix.indisunique, \
                        array_agg(a.attname::text ORDER BY k.n) \
                 FROM pg_index ix \
                 JOIN pg_class t ON t.oid = ix.indrelid \
                 JOIN pg_class i ON i.oid = ix.indexrelid \
                 JOIN pg_namespace ns ON ns.oid = t.relnamespace \
                 CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n) \
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                 WHERE ns.nspname = current_schema() AND NOT ix.indisprimary \
                   AND left(t.relname::text, length($1)) = $1 \
                 GROUP BY t.relname, i.relname, ix.indisunique ORDER BY 1, 2",
                &[&prefix],
            )
            .await
            .map_err(|e| self.err(e))?;
        for r in &idx {
            if let Some(t) = tables.get_mut(&r.get::<_, String>(0)) {
                t.indexes.push(Index {
                    name: r.get(1),
                    unique: r.get(2),
                    columns: r.get(3),
                });
            }
        }
        for t in tables.values_mut() {
            let Some(col) = t.auto_column().map(|c| c.name.clone()) else {
                continue;
            };
            let seq: Option<String> = c
                .query_one(
                    "SELECT pg_get_serial_sequence(format('%I', $1::text), $2::text)",
                    &[&t.name, &col],
                )
                .await
                .map_err(|e| self.err(e))?
                .get(0);
            let Some(seq) = seq else { continue };
            // `seq` is the catalog's own name, quoted by PostgreSQL (format %I.%I).
            let r = c
                .query_one(&format!("SELECT last_value, is_called FROM {seq}"), &[])
                .await
                .map_err(|e| self.err(e))?;
            let (last, called): (i64, bool) = (r.get(0), r.get(1));
            t.next_id = Some(if called { last.saturating_add(1) } else { last });
        }
        Ok(tables.into_values().collect())
    }

    async fn my_introspect(
        &self,
        c: &mut mysql_async::Conn,
        prefix: &str,
    ) -> Result<Vec<Table>, DbError> {
        type ColRow = (
            String,
            String,
            String,
            String,
            Option<u64>,
            Option<u64>,
            Option<u64>,
            String,
            Option<String>,
            String,
        );
        let rows: Vec<ColRow> = c
            .exec(
                "SELECT CAST(c.TABLE_NAME AS CHAR), CAST(c.COLUMN_NAME AS CHAR), \
                        CAST(c.DATA_TYPE AS CHAR), CAST(c.COLUMN_TYPE AS CHAR), \
                        c.CHARACTER_MAXIMUM_LENGTH, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, \
                        CAST(c.IS_NULLABLE AS CHAR), CAST(c.COLUMN_DEFAULT AS CHAR), \
                        CAST(c.EXTRA AS CHAR) \
                 FROM information_schema.COLUMNS c \
                 JOIN information_schema.TABLES t \
                   ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
                 WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' \
                   AND BINARY LEFT(c.TABLE_NAME, CHAR_LENGTH(?)) = BINARY ? \
                 ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
                (prefix, prefix),
            )
            .await
            .map_err(|e| self.err(e))?;
        let mut tables: BTreeMap<String, Table> = BTreeMap::new();
        for (table, name, dt, ct, len, prec, scale, nullable, default, extra) in rows {
            let unmappable = || DbError::Unmappable {
                table: table.clone(),
                column: name.clone(),
                ty: ct.clone(),
            };
            let unsigned = ct.contains("unsigned");
            let int = |bytes: u8| ColType::Int {
                bytes: if unsigned { (bytes * 2).min(8) } else { bytes },
            };
            let ty = match dt.as_str() {
                "tinyint" => int(1),
                "smallint" => int(2),
                "mediumint" => int(3),
                "int" | "integer" => int(4),
                "bigint" if !unsigned => int(8),
                "decimal" | "numeric" => ColType::Number {
                    precision: prec.unwrap_or(10) as u32,
                    scale: scale.unwrap_or(0) as u32,
                },
                "float" => ColType::Float { double: false },
                "double" | "real" => ColType::Float { double: true },
                "varchar" | "char" => ColType::Char {
                    len: len.unwrap_or(255) as u32,
                },
                "tinytext" | "text" | "mediumtext" | "longtext" => ColType::Text,
                "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                    ColType::Binary
                }
                "date" => ColType::Date,
                "datetime" | "timestamp" => ColType::Timestamp,
                _ => return Err(unmappable()),
            };
            let auto = extra.contains("auto_increment");
            let default = if auto {
                None
            } else {
                column_default(&table, &name, default.as_deref())?
            };
            push_column(
                &mut tables,
                &table,
                Column {
                    name,
                    ty,
                    nullable: nullable == "YES",
                    default,
                    auto_increment: auto,
                },
            );
        }
        let stats: Vec<(String, String, u64, String)> = c
            .exec(
                "SELECT CAST(TABLE_NAME AS CHAR), CAST(INDEX_NAME AS CHAR), NON_UNIQUE, \
                        CAST(COLUMN_NAME AS CHAR) \
                 FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() \
                   AND BINARY LEFT(TABLE_NAME, CHAR_LENGTH(?)) = BINARY ? \
                 ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
                (prefix, prefix),
            )
            .await
            .map_err(|e| self.err(e))?;
        for (table, index, non_unique, column) in stats {
            let Some(t) = tables.get_mut(&table) else {
                continue;
            };
            if index == "PRIMARY" {
                t.primary_key.push(column);
            } else if let Some(i) = t.indexes.iter_mut().find(|i| i.name == index) {
                i.columns.push(column);
            } else {
                t.indexes.push(Index {
                    name: index,
                    columns: vec![column],
                    unique: non_unique == 0,
                });
            }
        }
        let autos: Vec<(String, u64)> = c
            .query(
                "SELECT CAST(TABLE_NAME AS CHAR), AUTO_INCREMENT FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL",
            )
            .await
            .map_err(|e| self.err(e))?;
        for (table, next) in autos {
            if let Some(t) = tables.get_mut(&table)
                && t.auto_column().is_some()
            {
                t.next_id = i64::try_from(next).ok();
            }
        }
        Ok(tables.into_values().collect())
    }

    /// Creates a table from its neutral schema, with its primary key and without its
    /// secondary indexes (those come after the load).
    pub async fn create_table(&self, t: &Table) -> Result<(), DbError> {
        let e = self.engine;
        let mut parts = Vec::new();
        let single_auto_pk =
            t.primary_key.len() == 1 && t.auto_column().is_some_and(|c| c.name == t.primary_key[0]);
        for c in &t.columns {
            let mut def = format!("{} ", e.quote(&c.name));
            if c.auto_increment && e == Engine::Sqlite && single_auto_pk {
                // A rowid alias; AUTOINCREMENT so deleted ids are never handed out again.
                def.push_str("INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL");
                parts.push(def);
                continue;
            }
            def.push_str(&ddl_type(e, c));
            if !c.nullable {
                def.push_str(" NOT NULL");
            }
            if c.auto_increment && e == Engine::MySql {
                def.push_str(" AUTO_INCREMENT");
            }
            if let Some(d) = &c.default
                && !c.auto_increment
            {
                def.push_str(" DEFAULT ");
                def.push_str(&e.literal(d));
            }
            parts.push(def);
        }
        if !(t.primary_key.is_empty() || e == Engine::Sqlite && single_auto_pk) {
            let cols: Vec<String> = t.primary_key.iter().map(|k| e.quote(k)).collect();
            parts.push(format!("PRIMARY KEY ({})", cols.join(", ")));
        }
        let mut sql = format!("CREATE TABLE {} ({})", e.quote(&t.name), parts.join(", "));
        if e == Engine::MySql {
            sql.push_str(" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci");
        }
        self.exec(&sql).await
    }

    /// Creates the table's secondary indexes (idempotent: `IF NOT EXISTS`).
    pub async fn create_indexes(&self, t: &Table) -> Result<(), DbError> {
        for i in &t.indexes {
            let cols: Vec<String> = i.columns.iter().map(|c| self.q(c)).collect();
            let sql = format!(
                "CREATE {}INDEX IF NOT EXISTS {} ON {} ({})",
                if i.unique { "UNIQUE " } else { "" },
                self.q(&i.name),
                self.q(&t.name),
                cols.join(", ")
            );
            self.exec(&sql).await?;
        }
        Ok(())
    }

    /// Drops a table if it is there.
    pub async fn drop_table(&self, name: &str) -> Result<(), DbError> {
        self.exec(&format!("DROP TABLE IF EXISTS {}", self.q(name)))
            .await
    }

    /// Sets the table's sequence (or auto-increment) so that the next id handed out is
    /// `max(next_id, max(id) + 1)`: ids of deleted rows never come back. Returns the value set.
    pub async fn carry_sequence(&self, t: &Table) -> Result<Option<i64>, DbError> {
        let Some(col) = t.auto_column() else {
            return Ok(None);
        };
        let max_sql = format!(
            "SELECT {} FROM {}",
            match self.engine {
                Engine::Postgres => format!("MAX({})::int8", self.q(&col.name)),
                _ => format!("MAX({})", self.q(&col.name)),
            },
            self.q(&t.name)
        );
        let max: Option<i64> = match &self.inner {
            Inner::Pg(c) => c
                .query_one(&max_sql, &[])
                .await
                .map_err(|e| self.err(e))?
                .get(0),
            Inner::My(c) => c
                .lock()
                .await
                .query_first::<Option<i64>, _>(&max_sql)
                .await
                .map_err(|e| self.err(e))?
                .flatten(),
            Inner::Lite(c) => {
                lite(
                    &self.locator,
                    move |c| c.query_row(&max_sql, [], |r| r.get(0)),
                    c.clone(),
                )
                .await?
            }
        };
        let next = max
            .map(|m| m.saturating_add(1))
            .unwrap_or(1)
            .max(t.next_id.unwrap_or(1));
        match &self.inner {
            Inner::Pg(c) => {
                c.execute(
                    "SELECT setval(pg_get_serial_sequence(format('%I', $1::text), $2::text), \
                     $3::int8, false)",
                    &[&t.name, &col.name, &next],
                )
                .await
                .map_err(|e| self.err(e))?;
            }
            Inner::My(_) => {
                // DDL binds no parameters; `next` is an i64 computed here.
                self.exec(&format!(
                    "ALTER TABLE {} AUTO_INCREMENT = {next}",
                    self.q(&t.name)
                ))
                .await?;
            }
            Inner::Lite(c) => {
                let name = t.name.clone();
                lite(
                    &self.locator,
                    move |c| {
                        c.execute("DELETE FROM sqlite_sequence WHERE name = ?1", [&name])?;
                        c.execute(
                            "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                            rusqlite::params![name, next - 1],
                        )
                    },
                    c.clone(),
                )
                .await?;
            }
        }
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
        let sql = sql.to_owned();
        Ok(match &self.inner {
            Inner::Pg(c) => c
                .query(&sql, &[])
                .await
                .map_err(|e| self.err(e))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
            Inner::My(c) => c
                .lock()
                .await
                .query::<(String, i64), _>(&sql)
                .await
                .map_err(|e| self.err(e))?,
            Inner::Lite(c) => {
                lite(
                    &self.locator,
                    move |c| {
                        let mut st = c.prepare(&sql)?;
                        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
                    },
                    c.clone(),
                )
                .await?
            }
        })
    }

    /// Runs a query returning at most one row of one text column, with bound parameters
    /// (`{}` where each placeholder goes): `None` when there is no row (or it is NULL).
    pub(crate) async fn query_opt_text(
        &self,
        template: &str,
        params: &[Value],
    ) -> Result<Option<String>, DbError> {
        let sql = self.fill(template, params);
        match &self.inner {
            Inner::Pg(c) => {
                let pg: Vec<Box<dyn ToSql + Sync + Send>> = params.iter().map(to_pg).collect();
                let refs: Vec<&(dyn ToSql + Sync)> = pg
                    .iter()
                    .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                Ok(c.query_opt(&sql, &refs)
                    .await
                    .map_err(|e| self.err(e))?
                    .and_then(|r| r.get::<_, Option<String>>(0)))
            }
            Inner::My(c) => {
                let my: Vec<mysql_async::Value> = params.iter().map(to_my).collect();
                Ok(c.lock()
                    .await
                    .exec_first::<Option<String>, _, _>(sql, my)
                    .await
                    .map_err(|e| self.err(e))?
                    .flatten())
            }
            Inner::Lite(c) => {
                let params: Vec<rusqlite::types::Value> = params.iter().map(to_lite).collect();
                lite(
                    &self.locator,
                    move |c| {
                        let mut st = c.prepare(&sql)?;
                        let mut rows = st.query(rusqlite::params_from_iter(params))?;
                        match rows.next()? {
                            Some(r) => r.get::<_, Option<String>>(0),
                            None => Ok(None),
                        }
                    },
                    c.clone(),
                )
                .await
            }
        }
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
        match &self.inner {
            Inner::Pg(c) => {
                c.batch_execute("BEGIN").await.map_err(|e| self.err(e))?;
                let r = self.pg_load(c, t, &rows, ledger).await;
                let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
                let done = c.batch_execute(end).await.map_err(|e| self.err(e));
                r.and(done)
            }
            Inner::My(c) => {
                let mut c = c.lock().await;
                c.query_drop("START TRANSACTION")
                    .await
                    .map_err(|e| self.err(e))?;
                let r = self.my_load(&mut c, t, &rows, ledger).await;
                let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
                let done = c.query_drop(end).await.map_err(|e| self.err(e));
                r.and(done)
            }
            Inner::Lite(c) => {
                let q = |s: &str| Engine::Sqlite.quote(s);
                let cols: Vec<String> = t.columns.iter().map(|c| q(&c.name)).collect();
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                let insert = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    q(&t.name),
                    cols.join(", "),
                    marks.join(", ")
                );
                let ledger_sql = format!(
                    "INSERT INTO {} ({}, {}) VALUES (?1, ?2)",
                    q(LEDGER_TABLE),
                    q("tbl"),
                    q("chunk")
                );
                let name = t.name.clone();
                lite(
                    &self.locator,
                    move |c| {
                        let tx = c.transaction()?;
                        {
                            let mut st = tx.prepare_cached(&insert)?;
                            for row in &rows {
                                st.execute(rusqlite::params_from_iter(row.iter().map(to_lite)))?;
                            }
                        }
                        if let Some(n) = ledger {
                            tx.execute(&ledger_sql, rusqlite::params![name, n])?;
                        }
                        tx.commit()
                    },
                    c.clone(),
                )
                .await
            }
        }
    }

    async fn pg_load(
        &self,
        c: &tokio_postgres::Client,
        t: &Table,
        rows: &[Row],
        ledger: Option<i64>,
    ) -> Result<(), DbError> {
        let cols: Vec<String> = t.columns.iter().map(|c| self.q(&c.name)).collect();
        let sql = format!("COPY {} ({}) FROM STDIN", self.q(&t.name), cols.join(", "));
        let sink = c
            .copy_in::<_, bytes::Bytes>(&sql)
            .await
            .map_err(|e| self.err(e))?;
        futures::pin_mut!(sink);
        let mut buf = Vec::with_capacity(1 << 20);
        for row in rows {
            copy_line(row, &mut buf);
            if buf.len() >= 1 << 20 {
                let chunk = bytes::Bytes::from(std::mem::take(&mut buf));
                sink.send(chunk).await.map_err(|e| self.err(e))?;
            }
        }
        if !buf.is_empty() {
            sink.send(bytes::Bytes::from(buf))
                .await
                .map_err(|e| self.err(e))?;
        }
        sink.as_mut().finish().await.map_err(|e| self.err(e))?;
        if let Some(n) = ledger {
            c.execute(
                &format!(
                    "INSERT INTO {} ({}, {}) VALUES ($1, $2)",
                    self.q(LEDGER_TABLE),
                    self.q("tbl"),
                    self.q("chunk")
                ),
                &[&t.name, &n],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    async fn my_load(
        &self,
        c: &mut mysql_async::Conn,
        t: &Table,
        rows: &[Row],
        ledger: Option<i64>,
    ) -> Result<(), DbError> {
        let cols: Vec<String> = t.columns.iter().map(|c| self.q(&c.name)).collect();
        let one = format!("({})", vec!["?"; cols.len()].join(", "));
        let head = format!(
            "INSERT INTO {} ({}) VALUES ",
            self.q(&t.name),
            cols.join(", ")
        );
        // Under the 65,535 placeholders of a statement and well under max_allowed_packet.
        let max_rows = (60_000 / cols.len().max(1)).clamp(1, 1000);
        let mut start = 0;
        while start < rows.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < rows.len() && end - start < max_rows && (bytes < 4 << 20 || end == start) {
                bytes += rows[end].iter().map(Value::weight).sum::<usize>();
                end += 1;
            }
            let sql = format!("{head}{}", vec![one.as_str(); end - start].join(", "));
            let params: Vec<mysql_async::Value> = rows[start..end]
                .iter()
                .flat_map(|r| r.iter().map(to_my))
                .collect();
            c.exec_drop(sql, params).await.map_err(|e| self.err(e))?;
            start = end;
        }
        if let Some(n) = ledger {
            c.exec_drop(
                format!(
                    "INSERT INTO {} ({}, {}) VALUES (?, ?)",
                    self.q(LEDGER_TABLE),
                    self.q("tbl"),
                    self.q("chunk")
                ),
                (t.name.as_str(), n),
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// For a target: PostgreSQL commits without waiting for the disk flush. Safe here:
    /// a chunk and its ledger row commit together, so a crash loses both or neither, and
    /// the rerun loads the chunk again.
    pub async fn relax_durability(&self) -> Result<(), DbError> {
        match self.engine {
            Engine::Postgres => self.exec("SET synchronous_commit = off").await,
            _ => Ok(()),
        }
    }

    /// Starts a read-only consistent snapshot on this connection, where the engine has one.
    pub async fn begin_snapshot(&self) -> Result<(), DbError> {
        self.exec(match self.engine {
            Engine::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            Engine::MySql => "START TRANSACTION WITH CONSISTENT SNAPSHOT",
            Engine::Sqlite => "BEGIN",
        })
        .await
    }

    /// On PostgreSQL, inside a snapshot: its id, for other connections to share it.
    pub async fn export_snapshot(&self) -> Result<Option<String>, DbError> {
        match &self.inner {
            Inner::Pg(c) => Ok(Some(
                c.query_one("SELECT pg_export_snapshot()", &[])
                    .await
                    .map_err(|e| self.err(e))?
                    .get(0),
            )),
            _ => Ok(None),
        }
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
        let e = self.engine;
        let select: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                let q = e.quote(&c.name);
                match (e, c.ty) {
                    (
                        Engine::Postgres,
                        ColType::Number { .. } | ColType::Date | ColType::Timestamp,
                    ) => format!("{q}::text"),
                    _ => q,
                }
            })
            .collect();
        let key_expr = |i: usize| {
            let c = &t.columns[i];
            let q = e.quote(&c.name);
            match (e, c.ty) {
                (Engine::Postgres, ColType::Char { .. } | ColType::Text) => {
                    format!("{q} COLLATE \"C\"")
                }
                (Engine::MySql, ColType::Char { .. } | ColType::Text) => format!("BINARY {q}"),
                _ => q,
            }
        };
        let mut n_params = 0;
        let mut mark = |ty: ColType| {
            n_params += 1;
            match e {
                Engine::Postgres => format!(
                    "${n_params}{}",
                    match ty {
                        ColType::Int { .. } => "::int8",
                        ColType::Bool => "::bool",
                        ColType::Float { .. } => "::float8",
                        ColType::Number { .. } => "::text::numeric",
                        ColType::Char { .. } | ColType::Text => "::text",
                        ColType::Binary => "::bytea",
                        ColType::Date => "::text::date",
                        ColType::Timestamp => "::text::timestamp",
                    }
                ),
                Engine::MySql => "?".into(),
                Engine::Sqlite => format!("?{n_params}"),
            }
        };
        let mut params: Vec<Value> = Vec::new();
        let mut sql = format!("SELECT {} FROM {}", select.join(", "), e.quote(&t.name));
        if let Some(after) = after {
            let mut ors = Vec::new();
            for i in 0..key.len() {
                let mut ands = Vec::new();
                for (j, &col) in key.iter().enumerate().take(i) {
                    ands.push(format!("{} = {}", key_expr(col), mark(t.columns[col].ty)));
                    params.push(after[j].clone());
                }
                ands.push(format!(
                    "{} > {}",
                    key_expr(key[i]),
                    mark(t.columns[key[i]].ty)
                ));
                params.push(after[i].clone());
                ors.push(format!("({})", ands.join(" AND ")));
            }
            sql.push_str(&format!(" WHERE {}", ors.join(" OR ")));
        }
        if !key.is_empty() {
            let order: Vec<String> = key.iter().map(|&i| key_expr(i)).collect();
            sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
        }
        if let Some(limit) = limit {
            sql.push_str(&format!(" LIMIT {}", mark(ColType::Int { bytes: 8 })));
            params.push(Value::Int(limit as i64));
        }
        let key_of = |row: &Row| -> Row { key.iter().map(|&i| row[i].clone()).collect() };
        let mut batch = Batch::default();
        let mut sent = 0u64;
        let mut last: Option<Row> = None;
        match &self.inner {
            Inner::Pg(c) => {
                let pg: Vec<Box<dyn ToSql + Sync + Send>> = params.iter().map(to_pg).collect();
                let stream = c
                    .query_raw(&sql, pg.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)))
                    .await
                    .map_err(|e| self.err(e))?;
                futures::pin_mut!(stream);
                while let Some(r) = stream.next().await {
                    let r = r.map_err(|e| self.err(e))?;
                    let row = pg_row(t, &r).map_err(|e| self.err(e))?;
                    sent += 1;
                    if !key.is_empty() {
                        last = Some(key_of(&row));
                    }
                    batch.push(row, tx).await?;
                }
            }
            Inner::My(c) => {
                let mut c = c.lock().await;
                let my: Vec<mysql_async::Value> = params.iter().map(to_my).collect();
                let mut result = c.exec_iter(sql, my).await.map_err(|e| self.err(e))?;
                while let Some(r) = result.next().await.map_err(|e| self.err(e))? {
                    let row = my_row(t, r).map_err(|e| self.err(e))?;
                    sent += 1;
                    if !key.is_empty() {
                        last = Some(key_of(&row));
                    }
                    batch.push(row, tx).await?;
                }
            }
            Inner::Lite(c) => {
                let (c, t, tx, key) = (c.clone(), t.clone(), tx.clone(), key.to_vec());
                return tokio::task::spawn_blocking(move || {
                    let c = c.lock().map_err(|e| DbError::Backend(e.to_string()))?;
                    let lerr = |e: rusqlite::Error| DbError::Backend(e.to_string());
                    let mut st = c.prepare(&sql).map_err(lerr)?;
                    let mut rows = st
                        .query(rusqlite::params_from_iter(params.iter().map(to_lite)))
                        .map_err(lerr)?;
                    let mut batch = Batch::default();
                    let (mut sent, mut last) = (0u64, None);
                    while let Some(r) = rows.next().map_err(lerr)? {
                        let row = lite_row(&t, r)?;
                        sent += 1;
                        if !key.is_empty() {
                            last = Some(key.iter().map(|&i| row[i].clone()).collect());
                        }
                        batch.push_blocking(row, &tx)?;
                    }
                    batch.flush_blocking(&tx)?;
                    Ok((sent, last))
                })
                .await
                .map_err(|e| DbError::Backend(e.to_string()))?;
            }
        }
        batch.flush(tx).await?;
        Ok((sent, last))
    }
}

/// Rows gathered before they go down the channel.
#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    bytes: usize,
}

fn closed() -> DbError {
    DbError::Backend("the reader of the rows stopped".into())
}

impl Batch {
    fn add(&mut self, row: Row) -> bool {
        self.bytes += row.iter().map(Value::weight).sum::<usize>();
        self.rows.push(row);
        self.rows.len() >= BATCH_ROWS || self.bytes >= BATCH_BYTES
    }

    async fn push(&mut self, row: Row, tx: &mpsc::Sender<Vec<Row>>) -> Result<(), DbError> {
        if self.add(row) {
            self.flush(tx).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, tx: &mpsc::Sender<Vec<Row>>) -> Result<(), DbError> {
        if !self.rows.is_empty() {
            self.bytes = 0;
            tx.send(std::mem::take(&mut self.rows))
                .await
                .map_err(|_| closed())?;
        }
        Ok(())
    }

    fn push_blocking(&mut self, row: Row, tx: &mpsc::Sender<Vec<Row>>) -> Result<(), DbError> {
        if self.add(row) {
            self.flush_blocking(tx)?;
        }
        Ok(())
    }

    fn flush_blocking(&mut self, tx: &mpsc::Sender<Vec<Row>>) -> Result<(), DbError> {
        if !self.rows.is_empty() {
            self.bytes = 0;
            tx.blocking_send(std::mem::take(&mut self.rows))
                .map_err(|_| closed())?;
        }
        Ok(())
    }
}

async fn lite<T: Send + 'static>(
    loc: &Locator,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    c: Arc<Mutex<rusqlite::Connection>>,
) -> Result<T, DbError> {
    let loc2 = loc.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = c.lock().map_err(|e| DbError::Backend(e.to_string()))?;
        f(&mut c).map_err(|e| backend(&loc2, e))
    })
    .await
    .map_err(|e| DbError::Backend(e.to_string()))?
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

fn lite_introspect(c: &rusqlite::Connection, prefix: &str) -> Result<Vec<Table>, DbError> {
    let lerr = |e: rusqlite::Error| DbError::Backend(format!("sqlite: {e}"));
    let mut st = c
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
             AND substr(name, 1, length(?1)) = ?1 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY name",
        )
        .map_err(lerr)?;
    let names: Vec<(String, String)> = st
        .query_map([prefix], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            ))
        })
        .map_err(lerr)?
        .collect::<Result<_, _>>()
        .map_err(lerr)?;
    let mut out = Vec::new();
    for (name, create_sql) in names {
        if name == LEDGER_TABLE {
            continue;
        }
        let mut st = c
            .prepare(
                "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) \
                 ORDER BY cid",
            )
            .map_err(lerr)?;
        type Info = (String, String, bool, Option<String>, i64);
        let cols: Vec<Info> = st
            .query_map([&name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(lerr)?
            .collect::<Result<_, _>>()
            .map_err(lerr)?;
        let mut pk: Vec<(i64, String)> = cols
            .iter()
            .filter(|c| c.4 > 0)
            .map(|c| (c.4, c.0.clone()))
            .collect();
        pk.sort();
        let mut table = Table {
            name: name.clone(),
            columns: vec![],
            primary_key: pk.into_iter().map(|p| p.1).collect(),
            indexes: vec![],
            next_id: None,
        };
        for (cname, decl, notnull, dflt, _) in cols {
            let ty = lite_type(&decl).ok_or_else(|| DbError::Unmappable {
                table: name.clone(),
                column: cname.clone(),
                ty: if decl.is_empty() {
                    "(none declared)".into()
                } else {
                    decl.clone()
                },
            })?;
            let rowid = table.primary_key.len() == 1
                && table.primary_key[0] == cname
                && decl.eq_ignore_ascii_case("INTEGER");
            table.columns.push(Column {
                default: if rowid {
                    None
                } else {
                    column_default(&name, &cname, dflt.as_deref())?
                },
                name: cname,
                ty,
                nullable: !notnull && !rowid,
                auto_increment: rowid,
            });
        }
        if table.auto_column().is_some()
            && create_sql.to_ascii_uppercase().contains("AUTOINCREMENT")
        {
            table.next_id = c
                .query_row(
                    "SELECT seq + 1 FROM sqlite_sequence WHERE name = ?1",
                    [&name],
                    |r| r.get(0),
                )
                .ok();
        }
        let mut st = c
            .prepare("SELECT name, \"unique\", origin FROM pragma_index_list(?1) ORDER BY name")
            .map_err(lerr)?;
        let idx: Vec<(String, bool, String)> = st
            .query_map([&name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(lerr)?
            .collect::<Result<_, _>>()
            .map_err(lerr)?;
        for (iname, unique, origin) in idx {
            if origin == "pk" {
                continue;
            }
            let mut st = c
                .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                .map_err(lerr)?;
            let columns: Vec<String> = st
                .query_map([&iname], |r| r.get(0))
                .map_err(lerr)?
                .collect::<Result<_, _>>()
                .map_err(lerr)?;
            let iname = if origin == "u" {
                format!("{}_{}_uix", name, columns.join("_"))
            } else {
                iname
            };
            table.indexes.push(Index {
                name: iname,
                columns,
                unique,
            });
        }
        out.push(table);
    }
    Ok(out)
}

fn lite_type(decl: &str) -> Option<ColType> {
    let up = decl.trim().to_ascii_uppercase();
    let (base, args) = match up.split_once('(') {
        Some((b, a)) => (
            b.trim().to_owned(),
            Some(a.trim_end_matches(')').to_owned()),
        ),
        None => (up.clone(), None),
    };
    let nums: Vec<u32> = args
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(match base.as_str() {
        "TINYINT" => ColType::Int { bytes: 1 },
        "SMALLINT" => ColType::Int { bytes: 2 },
        "MEDIUMINT" => ColType::Int { bytes: 3 },
        "INT" => ColType::Int { bytes: 4 },
        "INTEGER" | "BIGINT" => ColType::Int { bytes: 8 },
        "BOOLEAN" | "BOOL" => ColType::Bool,
        "DECIMAL" | "NUMERIC" => match nums[..] {
            [p, s] => ColType::Number {
                precision: p,
                scale: s,
            },
            [p] => ColType::Number {
                precision: p,
                scale: 0,
            },
            _ => return None,
        },
        "FLOAT" => ColType::Float { double: false },
        "REAL" | "DOUBLE" | "DOUBLE PRECISION" => ColType::Float { double: true },
        "VARCHAR" | "CHAR" | "CHARACTER" | "CHARACTER VARYING" | "NVARCHAR" => match nums[..] {
            [n] => ColType::Char { len: n },
            _ => ColType::Text,
        },
        "TEXT" | "CLOB" | "LONGTEXT" | "MEDIUMTEXT" => ColType::Text,
        "BLOB" | "BYTEA" | "LONGBLOB" => ColType::Binary,
        "DATE" => ColType::Date,
        "DATETIME" | "TIMESTAMP" => ColType::Timestamp,
        _ => return None,
    })
}

fn ddl_type(e: Engine, c: &Column) -> String {
    match (e, c.ty) {
        (Engine::Postgres, ColType::Int { bytes }) => match (bytes, c.auto_increment) {
            (1 | 2, false) => "SMALLINT",
            (1 | 2, true) => "SMALLSERIAL",
            (3 | 4, false) => "INTEGER",
            (3 | 4, true) => "SERIAL",
            (_, false) => "BIGINT",
            (_, true) => "BIGSERIAL",
        }
        .into(),
        (Engine::MySql, ColType::Int { bytes }) => match bytes {
            1 => "TINYINT",
            2 => "SMALLINT",
            3 => "MEDIUMINT",
            4 => "INT",
            _ => "BIGINT",
        }
        .into(),
        (Engine::Sqlite, ColType::Int { bytes }) => match bytes {
            1 => "TINYINT",
            2 => "SMALLINT",
            3 => "MEDIUMINT",
            4 => "INT",
            _ => "BIGINT",
        }
        .into(),
        (Engine::Postgres, ColType::Number { precision, scale }) => {
            format!("NUMERIC({precision},{scale})")
        }
        (_, ColType::Number { precision, scale }) => format!("DECIMAL({precision},{scale})"),
        (Engine::Postgres, ColType::Float { double }) => {
            if double { "DOUBLE PRECISION" } else { "REAL" }.into()
        }
        (_, ColType::Float { double }) => if double { "DOUBLE" } else { "FLOAT" }.into(),
        (_, ColType::Char { len }) => format!("VARCHAR({len})"),
        (Engine::MySql, ColType::Text) => "LONGTEXT".into(),
        (_, ColType::Text) => "TEXT".into(),
        (Engine::Postgres, ColType::Binary) => "BYTEA".into(),
        (Engine::MySql, ColType::Binary) => "LONGBLOB".into(),
        (_, ColType::Binary) => "BLOB".into(),
        (Engine::MySql, ColType::Bool) => "TINYINT(1)".into(),
        (_, ColType::Bool) => "BOOLEAN".into(),
        (_, ColType::Date) => "DATE".into(),
        (Engine::Postgres, ColType::Timestamp) => "TIMESTAMP".into(),
        (Engine::MySql, ColType::Timestamp) => "DATETIME(6)".into(),
        (_, ColType::Timestamp) => "DATETIME".into(),
    }
}

fn to_pg(v: &Value) -> Box<dyn ToSql + Sync + Send> {
    match v.clone() {
        Value::Null => Box::new(Option::<String>::None),
        Value::Bool(b) => Box::new(b),
        Value::Int(i) => Box::new(i),
        Value::Float(f) => Box::new(f),
        Value::Bytes(b) => Box::new(b),
        Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) => Box::new(s),
    }
}

fn to_my(v: &Value) -> mysql_async::Value {
    use mysql_async::Value as M;
    match v {
        Value::Null => M::NULL,
        Value::Bool(b) => M::Int(i64::from(*b)),
        Value::Int(i) => M::Int(*i),
        Value::Float(f) => M::Double(*f),
        Value::Bytes(b) => M::Bytes(b.clone()),
        Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) => {
            M::Bytes(s.as_bytes().to_vec())
        }
    }
}

fn to_lite(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as L;
    match v {
        Value::Null => L::Null,
        Value::Bool(b) => L::Integer(i64::from(*b)),
        Value::Int(i) => L::Integer(*i),
        Value::Float(f) => L::Real(*f),
        Value::Bytes(b) => L::Blob(b.clone()),
        Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) => {
            L::Text(s.clone())
        }
    }
}

/// Appends one row in PostgreSQL's `COPY` text format.
fn copy_line(row: &Row, out: &mut Vec<u8>) {
    use std::io::Write as _;
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        let text = |out: &mut Vec<u8>, s: &str| {
            for b in s.bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    _ => out.push(b),
                }
            }
        };
        match v {
            Value::Null => out.extend_from_slice(b"\\N"),
            Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
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
                out.extend_from_slice(b"\\\\x");
                out.extend_from_slice(hex::encode(b).as_bytes());
            }
            Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) => {
                text(out, s)
            }
        }
    }
    out.push(b'\n');
}

fn typed_text(ty: ColType, s: String) -> Value {
    match ty {
        ColType::Number { .. } => Value::Decimal(normalize_decimal(&s)),
        ColType::Date => Value::Date(s),
        ColType::Timestamp => Value::Timestamp(normalize_timestamp(&s)),
        _ => Value::Text(s),
    }
}

fn pg_row(t: &Table, r: &tokio_postgres::Row) -> Result<Row, tokio_postgres::Error> {
    let mut row = Vec::with_capacity(t.columns.len());
    for (i, c) in t.columns.iter().enumerate() {
        let ty = r.columns()[i].type_().clone();
        let v = if ty == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?
                .map(|n| Value::Int(n.into()))
        } else if ty == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?
                .map(|n| Value::Int(n.into()))
        } else if ty == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if ty == Type::FLOAT4 {
            r.try_get::<_, Option<f32>>(i)?
                .map(|f| Value::Float(f.into()))
        } else if ty == Type::FLOAT8 {
            r.try_get::<_, Option<f64>>(i)?.map(Value::Float)
        } else if ty == Type::BOOL {
            r.try_get::<_, Option<bool>>(i)?.map(Value::Bool)
        } else if ty == Type::BYTEA {
            r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes)
        } else {
            r.try_get::<_, Option<String>>(i)?
                .map(|s| typed_text(c.ty, s))
        };
        row.push(v.unwrap_or(Value::Null));
    }
    Ok(row)
}

fn my_row(t: &Table, r: mysql_async::Row) -> Result<Row, String> {
    use mysql_async::Value as M;
    let vals = r.unwrap();
    let mut row = Vec::with_capacity(vals.len());
    for (v, c) in vals.into_iter().zip(&t.columns) {
        let bad = |v: &M| format!("{}.{}: unexpected value {v:?}", t.name, c.name);
        let text = |b: Vec<u8>| {
            String::from_utf8(b).map_err(|_| format!("{}.{}: text is not UTF-8", t.name, c.name))
        };
        row.push(match (c.ty, v) {
            (_, M::NULL) => Value::Null,
            (ColType::Int { .. } | ColType::Bool, M::Int(i)) => Value::Int(i),
            (ColType::Int { .. } | ColType::Bool, M::UInt(u)) => {
                Value::Int(i64::try_from(u).map_err(|_| bad(&M::UInt(u)))?)
            }
            (ColType::Float { double: false }, M::Float(f)) => Value::Float(f.into()),
            (ColType::Float { .. }, M::Double(f)) => Value::Float(f),
            (ColType::Float { .. }, M::Float(f)) => Value::Float(f.into()),
            (ColType::Binary, M::Bytes(b)) => Value::Bytes(b),
            (ColType::Date, M::Date(y, m, d, ..)) => Value::Date(format!("{y:04}-{m:02}-{d:02}")),
            (ColType::Timestamp, M::Date(y, mo, d, h, mi, s, us)) => {
                Value::Timestamp(normalize_timestamp(&format!(
                    "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
                )))
            }
            (ty, M::Bytes(b)) => {
                match ty {
                    ColType::Int { .. } | ColType::Bool => {
                        let s = text(b)?;
                        Value::Int(s.parse().map_err(|_| {
                            format!("{}.{}: {s:?} is not an integer", t.name, c.name)
                        })?)
                    }
                    _ => typed_text(ty, text(b)?),
                }
            }
            (_, v) => return Err(bad(&v)),
        });
    }
    Ok(row)
}

fn lite_row(t: &Table, r: &rusqlite::Row<'_>) -> Result<Row, DbError> {
    use rusqlite::types::ValueRef as L;
    let mut row = Vec::with_capacity(t.columns.len());
    for (i, c) in t.columns.iter().enumerate() {
        let v = r
            .get_ref(i)
            .map_err(|e| DbError::Backend(format!("sqlite: {e}")))?;
        let bad = || {
            DbError::Backend(format!(
                "{}.{}: a {:?} value in a {:?} column",
                t.name,
                c.name,
                v.data_type(),
                c.ty
            ))
        };
        let text = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| DbError::Backend(format!("{}.{}: text is not UTF-8", t.name, c.name)))
        };
        row.push(match (c.ty, v) {
            (_, L::Null) => Value::Null,
            (ColType::Int { .. }, L::Integer(n)) => Value::Int(n),
            (ColType::Bool, L::Integer(n)) => Value::Bool(n != 0),
            (ColType::Float { double }, L::Real(f)) => {
                Value::Float(if double { f } else { f64::from(f as f32) })
            }
            (ColType::Float { double }, L::Integer(n)) => {
                let f = n as f64;
                Value::Float(if double { f } else { f64::from(f as f32) })
            }
            (ColType::Number { .. }, L::Integer(n)) => Value::Decimal(n.to_string()),
            (ColType::Number { .. }, L::Real(f)) => {
                Value::Decimal(normalize_decimal(&format!("{f}")))
            }
            (ColType::Binary, L::Blob(b) | L::Text(b)) => Value::Bytes(b.to_vec()),
            (ty, L::Text(b)) => match ty {
                ColType::Int { .. } | ColType::Bool | ColType::Float { .. } => return Err(bad()),
                _ => typed_text(ty, text(b)?),
            },
            _ => return Err(bad()),
        });
    }
    Ok(row)
}

/// A scratch database on a server, for tests and benchmarks: created on a server the
/// admin URL reaches, and dropped again.
pub mod scratch {
    use super::*;

    /// The URL of database `name` on the server of `admin` (same user, host, options).
    pub fn with_database(admin: &Locator, name: &str) -> Locator {
        let s = admin.expose();
        let start = s.find("://").map(|i| i + 3).unwrap_or(0);
        let path = s[start..].find('/').map(|i| start + i).unwrap_or(s.len());
        let query = s[path..].find('?').map(|i| path + i).unwrap_or(s.len());
        Locator::new(format!("{}/{name}{}", &s[..path], &s[query..]))
    }

    fn check(name: &str) -> Result<(), DbError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(DbError::Input(format!(
                "{name:?}: a database name here is lower-case letters, digits and '_'"
            )));
        }
        Ok(())
    }

    /// Creates database `name` (PostgreSQL, MySQL) and returns its URL; for SQLite, `admin`
    /// is a folder URL (`sqlite:///tmp/x`) and the file `<name>.db` in it is the database.
    pub async fn create(admin: &Locator, name: &str) -> Result<Locator, DbError> {
        check(name)?;
        match Engine::of(admin)? {
            Engine::Sqlite => Ok(Locator::new(format!(
                "{}/{name}.db",
                admin.expose().trim_end_matches('/')
            ))),
            e => {
                let db = Db::connect(admin, false).await?;
                db.exec(&format!("CREATE DATABASE {}", e.quote(name)))
                    .await?;
                Ok(with_database(admin, name))
            }
        }
    }

    /// Drops database `name` if it is there.
    pub async fn drop(admin: &Locator, name: &str) -> Result<(), DbError> {
        check(name)?;
        match Engine::of(admin)? {
            Engine::Sqlite => Ok(()),
            e => {
                let db = Db::connect(admin, false).await?;
                let force = if e == Engine::Postgres {
                    " WITH (FORCE)"
                } else {
                    ""
                };
                db.exec(&format!("DROP DATABASE IF EXISTS {}{force}", e.quote(name)))
                    .await
            }
        }
    }
}

impl Db {
    /// A placeholder for the `n`-th parameter (from 1), typed for PostgreSQL.
    fn mark(&self, n: usize, v: &Value) -> String {
        match self.engine {
            Engine::Postgres => format!(
                "${n}{}",
                match v {
                    Value::Int(_) => "::int8",
                    Value::Bool(_) => "::bool",
                    Value::Float(_) => "::float8",
                    Value::Bytes(_) => "::bytea",
                    _ => "::text",
                }
            ),
            Engine::MySql => "?".into(),
            Engine::Sqlite => format!("?{n}"),
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
        match &self.inner {
            Inner::Pg(c) => {
                let pg: Vec<Box<dyn ToSql + Sync + Send>> = params.iter().map(to_pg).collect();
                let refs: Vec<&(dyn ToSql + Sync)> = pg
                    .iter()
                    .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                c.execute(&sql, &refs).await.map_err(|e| self.err(e))
            }
            Inner::My(c) => {
                let mut c = c.lock().await;
                let my: Vec<mysql_async::Value> = params.iter().map(to_my).collect();
                c.exec_drop(sql, my).await.map_err(|e| self.err(e))?;
                Ok(c.affected_rows())
            }
            Inner::Lite(c) => {
                let params: Vec<rusqlite::types::Value> = params.iter().map(to_lite).collect();
                lite(
                    &self.locator,
                    move |c| {
                        c.execute(&sql, rusqlite::params_from_iter(params))
                            .map(|n| n as u64)
                    },
                    c.clone(),
                )
                .await
            }
        }
    }

    /// Runs a query returning one integer, with bound parameters: the SQL has `{}` where
    /// each placeholder goes (written per engine here), and no value of its own.
    pub async fn query_i64(&self, template: &str, params: &[Value]) -> Result<i64, DbError> {
        let sql = self.fill(template, params);
        match &self.inner {
            Inner::Pg(c) => {
                let pg: Vec<Box<dyn ToSql + Sync + Send>> = params.iter().map(to_pg).collect();
                let refs: Vec<&(dyn ToSql + Sync)> = pg
                    .iter()
                    .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                Ok(c.query_one(&sql, &refs)
                    .await
                    .map_err(|e| self.err(e))?
                    .get(0))
            }
            Inner::My(c) => {
                let my: Vec<mysql_async::Value> = params.iter().map(to_my).collect();
                Ok(c.lock()
                    .await
                    .exec_first::<i64, _, _>(sql, my)
                    .await
                    .map_err(|e| self.err(e))?
                    .unwrap_or(0))
            }
            Inner::Lite(c) => {
                let params: Vec<rusqlite::types::Value> = params.iter().map(to_lite).collect();
                lite(
                    &self.locator,
                    move |c| c.query_row(&sql, rusqlite::params_from_iter(params), |r| r.get(0)),
                    c.clone(),
                )
                .await
            }
        }
    }

    fn fill(&self, template: &str, params: &[Value]) -> String {
        let mut out = String::with_capacity(template.len() + 8 * params.len());
        let mut parts = template.split("{}");
        if let Some(first) = parts.next() {
            out.push_str(first);
        }
        for (i, part) in parts.enumerate() {
            let v = params.get(i).unwrap_or(&Value::Null);
            out.push_str(&self.mark(i + 1, v));
            out.push_str(part);
        }
        out
    }

    /// `SELECT count(*)`-style query with one text parameter written as `$1` or `?`.
    pub(crate) async fn query_count(&self, sql: &str, param: &str) -> Result<i64, DbError> {
        let template = sql.replace("$1", "{}").replace('?', "{}");
        self.query_i64(&template, &[Value::Text(param.to_owned())])
            .await
    }

    /// The MySQL connection, if this is MySQL.
    pub(crate) fn mysql(&self) -> Option<&tokio::sync::Mutex<mysql_async::Conn>> {
        match &self.inner {
            Inner::My(c) => Some(c),
            _ => None,
        }
    }

    /// SQLite: writes a consistent copy of the database to `path`.
    pub(crate) async fn vacuum_into(&self, path: &str) -> Result<(), DbError> {
        self.exec_params("VACUUM INTO {}", &[Value::Text(path.to_owned())])
            .await
            .map(|_| ())
    }

    /// Replaces `search` by `replace` in one column, in the rows whose value contains it
    /// (`pattern`: a LIKE pattern escaped with `!`). With `max_len`, rows whose new value
    /// would be longer are left alone. Returns (rows changed, rows left alone).
    pub(crate) async fn replace_in_column(
        &self,
        table: &str,
        column: &str,
        max_len: Option<u32>,
        search: &str,
        replace: &str,
        pattern: &str,
    ) -> Result<(u64, u64), DbError> {
        let (t, c) = (self.q(table), self.q(column));
        let len_fn = match self.engine {
            Engine::Sqlite => "length",
            _ => "CHAR_LENGTH",
        };
        let s = || Value::Text(search.to_owned());
        let r = || Value::Text(replace.to_owned());
        let p = || Value::Text(pattern.to_owned());
        let like = format!("{c} LIKE {{}} ESCAPE '!'");
        match max_len {
            None => {
                let n = self
                    .exec_params(
                        &format!("UPDATE {t} SET {c} = REPLACE({c}, {{}}, {{}}) WHERE {like}"),
                        &[s(), r(), p()],
                    )
                    .await?;
                Ok((n, 0))
            }
            Some(len) => {
                let fits = format!("{len_fn}(REPLACE({c}, {{}}, {{}}))");
                let n = self
                    .exec_params(
                        &format!(
                            "UPDATE {t} SET {c} = REPLACE({c}, {{}}, {{}}) WHERE {like} AND {fits} <= {{}}"
                        ),
                        &[s(), r(), p(), s(), r(), Value::Int(len.into())],
                    )
                    .await?;
                let left = self
                    .query_i64(
                        &format!("SELECT COUNT(*) FROM {t} WHERE {like} AND {fits} > {{}}"),
                        &[p(), s(), r(), Value::Int(len.into())],
                    )
                    .await?;
                Ok((n, left.max(0) as u64))
            }
        }
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

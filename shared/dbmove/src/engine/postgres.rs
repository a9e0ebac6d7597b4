//! PostgreSQL: `tokio-postgres`, `COPY … FROM STDIN` for loads, rows streamed with
//! back-pressure, sequences by `setval`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use a2a_core::Locator;
use async_trait::async_trait;
use futures::{SinkExt as _, StreamExt as _};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::types::{ToSql, Type};

use super::{
    CONNECT_TIMEOUT, Described, Driver, Engine, Load, RowSink, Sent, TsvStyle, TupleSink,
    TypeNames, backend, full, ledger_insert_sql, push_column, tls, tsv_line, typed_text,
};
use crate::DbError;
use crate::schema::{ColType, Column, Index, Row, Table, Value};

/// A connection to one PostgreSQL database.
pub(super) struct Postgres {
    loc: Locator,
    client: tokio_postgres::Client,
    /// The server's `server_version_num` (150004 is 15.4).
    version: u32,
}

/// Connects, with TLS as the URL asks (`sslmode`, `sslrootcert`).
pub(super) async fn connect(loc: &Locator) -> Result<Postgres, DbError> {
    let (url, tls) = tls::split(loc, Engine::Postgres)?;
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| DbError::Input(format!("{loc}: not a PostgreSQL URL: {e}")))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_owned(),
    };
    let refused = |e: &dyn std::fmt::Display| tls::refused(loc, &host, &tls, e);
    let client = match tls::client_config(loc, &tls)? {
        None => {
            config.ssl_mode(SslMode::Disable);
            start(&config, tokio_postgres::NoTls).await
        }
        Some(rustls) => {
            config.ssl_mode(if tls.effective() == tls::Mode::Prefer {
                SslMode::Prefer
            } else {
                SslMode::Require
            });
            start(&config, MakeRustls(Arc::new(rustls))).await
        }
    }
    .map_err(|e| match e {
        None => refused(&"timed out"),
        Some(e) => refused(&full(&e)),
    })?;
    let set = client
        .simple_query("SET DateStyle = ISO; SET client_encoding = 'UTF8'; SHOW server_version_num")
        .await
        .map_err(|e| backend(loc, full(&e)))?;
    let version = set
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0)?.parse().ok(),
            _ => None,
        })
        .unwrap_or(0);
    Ok(Postgres {
        loc: loc.clone(),
        client,
        version,
    })
}

/// Connects within the timeout (`Err(None)` when it passed) and drives the connection
/// in the background.
async fn start<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> Result<tokio_postgres::Client, Option<tokio_postgres::Error>>
where
    T: MakeTlsConnect<Socket> + Send,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, conn) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls))
        .await
        .map_err(|_| None)?
        .map_err(Some)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("postgres connection ended: {e}");
        }
    });
    Ok(client)
}

/// tokio-postgres's TLS over rustls (`tokio-rustls`, already in the tree for the SDK).
#[derive(Clone)]
struct MakeRustls(Arc<rustls::ClientConfig>);

/// One TLS handshake to a named server.
struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

/// A TLS session to the server.
struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_owned())?,
        })
    }
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(RustlsStream)
        })
    }
}

impl tokio_postgres::tls::TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding ("n"): the server accepts it, and the certificate
        // is what the mode checks.
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The neutral type of an `information_schema.columns` row, or `None` if it has none.
fn column_type(
    data_type: &str,
    len: Option<i32>,
    prec: Option<i32>,
    scale: Option<i32>,
) -> Option<ColType> {
    Some(match data_type {
        "smallint" => ColType::Int { bytes: 2 },
        "integer" => ColType::Int { bytes: 4 },
        "bigint" => ColType::Int { bytes: 8 },
        "numeric" => match (prec, scale) {
            (Some(p), Some(s)) => ColType::Number {
                precision: p as u32,
                scale: s as u32,
            },
            _ => return None,
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
        _ => return None,
    })
}

/// An integer of so many bytes; an auto-increment one is a serial.
fn int_ddl(bytes: u8, auto_increment: bool) -> &'static str {
    match (bytes, auto_increment) {
        (1 | 2, false) => "SMALLINT",
        (1 | 2, true) => "SMALLSERIAL",
        (3 | 4, false) => "INTEGER",
        (3 | 4, true) => "SERIAL",
        (_, false) => "BIGINT",
        (_, true) => "BIGSERIAL",
    }
}

/// The column types in DDL.
const TYPES: TypeNames = TypeNames {
    int: int_ddl,
    number: "NUMERIC",
    float: "REAL",
    double: "DOUBLE PRECISION",
    text: "TEXT",
    binary: "BYTEA",
    boolean: "BOOLEAN",
    timestamp: "TIMESTAMP",
};

/// The cast that makes a bound value, or a literal, of a column's type.
fn cast(ty: ColType) -> &'static str {
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
}

/// A key value as a SQL literal of its column's type, for the `WHERE` of a `COPY (SELECT
/// …)`, which binds no parameters. Text goes in an escape string (`E'…'`, backslashes and
/// quotes doubled), so no value can end the literal.
pub(super) fn literal(v: &Value, ty: ColType) -> String {
    let text = |s: &str| format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
    let lit = match v {
        Value::Null => return "NULL".into(),
        Value::Bool(b) => return b.to_string(),
        Value::Int(i) => format!("({i})"),
        Value::Float(f) => text(&format!("{f:?}").replace("inf", "Infinity")),
        Value::Bytes(b) => text(&format!("\\x{}", hex::encode(b))),
        Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) => text(s),
    };
    format!("{lit}{}", cast(ty))
}

/// The column type of a neutral column in DDL.
fn ddl_type(c: &Column) -> String {
    TYPES.ddl(c)
}

/// Whether the table named by the parameter (in the current schema) has a primary key.
const HAS_PRIMARY_KEY_SQL: &str = "SELECT count(*) FROM pg_index \
     WHERE indrelid = to_regclass(quote_ident($1::text)) AND indisprimary";

fn quote(ident: &str) -> String {
    Engine::Postgres.quote(ident)
}

impl Postgres {
    fn err(&self, e: tokio_postgres::Error) -> DbError {
        backend(&self.loc, full(&e))
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

/// Bound parameters as the driver takes them.
fn pg_params(params: &[Value]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params.iter().map(to_pg).collect()
}

fn refs(pg: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    pg.iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

#[async_trait]
impl Driver for Postgres {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn locator(&self) -> &Locator {
        &self.loc
    }

    fn ddl_type(&self, c: &Column) -> String {
        ddl_type(c)
    }

    fn mark_type(&self, n: usize, ty: ColType) -> String {
        format!("${n}{}", cast(ty))
    }

    fn mark_value(&self, n: usize, v: &Value) -> String {
        let cast = match v {
            Value::Int(_) => "::int8",
            Value::Bool(_) => "::bool",
            Value::Float(_) => "::float8",
            Value::Bytes(_) => "::bytea",
            _ => "::text",
        };
        format!("${n}{cast}")
    }

    fn select_expr(&self, c: &Column) -> String {
        match c.ty {
            // Read as text and normalised, so every engine stages the same string.
            ColType::Number { .. } | ColType::Date | ColType::Timestamp => {
                format!("{}::text", quote(&c.name))
            }
            _ => quote(&c.name),
        }
    }

    fn key_expr(&self, c: &Column) -> String {
        match c.ty {
            ColType::Char { .. } | ColType::Text => format!("{} COLLATE \"C\"", quote(&c.name)),
            _ => quote(&c.name),
        }
    }

    fn join_texts(&self, expr: &str) -> String {
        format!("string_agg(CAST({expr} AS TEXT), ',')")
    }

    fn max_expr(&self, column: &str) -> String {
        format!("MAX({})::int8", quote(column))
    }

    fn table_sizes_sql(&self) -> &'static str {
        "SELECT c.relname::text, pg_total_relation_size(c.oid)::int8 FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
    }

    fn database_count_sql(&self) -> Option<&'static str> {
        Some("SELECT count(*) FROM pg_database WHERE datname = {}")
    }

    fn begin_snapshot_sql(&self) -> &'static str {
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    }

    async fn exec(&self, sql: &str) -> Result<(), DbError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.err(e))
    }

    async fn table_names(&self) -> Result<Vec<String>, DbError> {
        Ok(self
            .client
            .query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                &[],
            )
            .await
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn introspect(&self, prefix: &str) -> Result<Vec<Table>, DbError> {
        let c = &self.client;
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
            let default: Option<String> = r.get(7);
            let identity = r.get::<_, Option<String>>(8).as_deref() == Some("YES");
            let auto = identity
                || default
                    .as_deref()
                    .is_some_and(|d| d.starts_with("nextval("));
            let column = Described {
                table: &table,
                name,
                ty: column_type(&dt, r.get(3), r.get(4), r.get(5)),
                declared: &dt,
                nullable: r.get::<_, String>(6) == "YES",
                auto_increment: auto,
                default: default.as_deref(),
            };
            push_column(&mut tables, &table, column.column()?);
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
        // Every serial's sequence in one query, then their positions in a few more (one
        // query per table would be a round trip each, 500 on a Moodle).
        let owned = c
            .query(
                "SELECT t.relname::text, a.attname::text, format('%I.%I', sn.nspname, s.relname) \
                 FROM pg_depend d \
                 JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
                 JOIN pg_namespace sn ON sn.oid = s.relnamespace \
                 JOIN pg_class t ON t.oid = d.refobjid \
                 JOIN pg_namespace tn ON tn.oid = t.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
                 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
                   AND d.deptype IN ('a', 'i') AND tn.nspname = current_schema() \
                   AND left(t.relname::text, length($1)) = $1",
                &[&prefix],
            )
            .await
            .map_err(|e| self.err(e))?;
        let mut seqs: Vec<(String, String)> = Vec::new();
        for r in &owned {
            let (table, column): (String, String) = (r.get(0), r.get(1));
            let auto = tables
                .get(&table)
                .and_then(|t| t.auto_column())
                .is_some_and(|c| c.name == column);
            if auto {
                seqs.push((table, r.get(2)));
            }
        }
        for part in seqs.chunks(200) {
            // Each name is the catalog's own, quoted by PostgreSQL (format %I.%I); the
            // number is our index into `part`.
            let selects: Vec<String> = part
                .iter()
                .enumerate()
                .map(|(i, (_, seq))| format!("SELECT {i}::int8, last_value, is_called FROM {seq}"))
                .collect();
            let rows = c
                .query(&selects.join(" UNION ALL "), &[])
                .await
                .map_err(|e| self.err(e))?;
            for r in &rows {
                let (i, last, called): (i64, i64, bool) = (r.get(0), r.get(1), r.get(2));
                if let Some(t) = part
                    .get(i as usize)
                    .and_then(|(name, _)| tables.get_mut(name))
                {
                    t.next_id = Some(if called { last.saturating_add(1) } else { last });
                }
            }
        }
        Ok(tables.into_values().collect())
    }

    async fn query_pairs(&self, sql: &str) -> Result<Vec<(String, i64)>, DbError> {
        Ok(self
            .client
            .query(sql, &[])
            .await
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn query_opt_text(&self, sql: &str, params: &[Value]) -> Result<Option<String>, DbError> {
        self.query_opt(sql, params).await
    }

    async fn digest(&self, t: &Table) -> Result<Option<String>, DbError> {
        let sql = digest_sql(t, self.version);
        self.query_opt(&sql, &[]).await
    }

    async fn query_opt_i64(&self, sql: &str, params: &[Value]) -> Result<Option<i64>, DbError> {
        self.query_opt(sql, params).await
    }

    async fn exec_params(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let pg = pg_params(params);
        self.client
            .execute(sql, &refs(&pg))
            .await
            .map_err(|e| self.err(e))
    }

    async fn load_many(&self, parts: Vec<Load<'_>>) -> Result<(), DbError> {
        let c = &self.client;
        c.batch_execute("BEGIN").await.map_err(|e| self.err(e))?;
        let r = self.copy_many(&parts).await;
        let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let done = c.batch_execute(end).await.map_err(|e| self.err(e));
        r.and(done)
    }

    fn takes_as_is(&self, format: crate::stage::ChunkFormat) -> bool {
        format == crate::stage::ChunkFormat::PgCopy
    }

    async fn stream(&self, t: &Table, sql: String, params: Vec<Value>, mut sink: RowSink) -> Sent {
        let pg = pg_params(&params);
        let stream = self
            .client
            .query_raw(&sql, pg.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)))
            .await
            .map_err(|e| self.err(e))?;
        futures::pin_mut!(stream);
        while let Some(r) = stream.next().await {
            let r = r.map_err(|e| self.err(e))?;
            sink.push(pg_row(t, &r).map_err(|e| self.err(e))?).await?;
        }
        sink.finish().await
    }

    async fn copy_out(&self, sql: &str, sink: &mut TupleSink) -> Result<(), DbError> {
        let stream = self.client.copy_out(sql).await.map_err(|e| self.err(e))?;
        futures::pin_mut!(stream);
        while let Some(piece) = stream.next().await {
            sink.feed(&piece.map_err(|e| self.err(e))?).await?;
        }
        Ok(())
    }

    async fn set_next_id(&self, table: &str, column: &str, next: i64) -> Result<(), DbError> {
        self.client
            .execute(
                "SELECT setval(pg_get_serial_sequence(format('%I', $1::text), $2::text), \
                 $3::int8, false)",
                &[&table, &column, &next],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn relax_durability(&self) -> Result<(), DbError> {
        // And more memory for the index builds after the load than the default 64 MB,
        // so that a big table's index sorts in memory (this session only).
        self.exec("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
            .await
    }

    fn primary_key_after_rows(&self) -> bool {
        true
    }

    async fn add_primary_key(&self, table: &str, columns: &[String]) -> Result<(), DbError> {
        let there: Option<i64> = self
            .query_opt(HAS_PRIMARY_KEY_SQL, &[Value::Text(table.to_owned())])
            .await?;
        if there.unwrap_or(0) > 0 {
            return Ok(());
        }
        let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        self.exec(&format!(
            "ALTER TABLE {} ADD PRIMARY KEY ({})",
            quote(table),
            cols.join(", ")
        ))
        .await
    }

    async fn export_snapshot(&self) -> Result<Option<String>, DbError> {
        Ok(Some(
            self.client
                .query_one("SELECT pg_export_snapshot()", &[])
                .await
                .map_err(|e| self.err(e))?
                .get(0),
        ))
    }

    async fn drop_database(&self, name: &str) -> Result<(), DbError> {
        // FORCE: a worker that died may still hold a connection to it.
        let forced = self
            .exec(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote(name)
            ))
            .await;
        match forced {
            // FORCE may not end a process of another role (an autovacuum worker after a
            // load) without pg_signal_backend; a plain DROP stops autovacuum by itself.
            Err(e) if e.to_string().contains("pg_signal_backend") => {
                self.exec(&format!("DROP DATABASE IF EXISTS {}", quote(name)))
                    .await
            }
            r => r,
        }
    }
}

impl Postgres {
    /// At most one row of one column, NULL as `None`.
    async fn query_opt<T>(&self, sql: &str, params: &[Value]) -> Result<Option<T>, DbError>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        let pg = pg_params(params);
        Ok(self
            .client
            .query_opt(sql, &refs(&pg))
            .await
            .map_err(|e| self.err(e))?
            .and_then(|r| r.get::<_, Option<T>>(0)))
    }

    /// `COPY`s each part's rows in, then records their chunks in the ledger with one
    /// statement (inside the caller's transaction).
    async fn copy_many(&self, parts: &[Load<'_>]) -> Result<(), DbError> {
        for p in parts {
            if let Some(raw) = &p.raw {
                let took = self.copy_in_binary(p.table, raw.bytes.clone()).await?;
                // The stream's own count, which the client did not read (`open_native`):
                // a miscount rolls the chunk back with its ledger row.
                if took != raw.rows {
                    return Err(DbError::Corrupt(format!(
                        "{}: COPY took {took} rows from a staged chunk whose manifest says {}; \
                         the stage is damaged: export again",
                        p.table.name, raw.rows
                    )));
                }
            } else if !p.rows.is_empty() {
                self.copy_in(p.table, &p.rows).await?;
            }
        }
        let ledger = Load::ledger_rows(parts);
        if ledger.is_empty() {
            return Ok(());
        }
        let sql = ledger_insert_sql(Engine::Postgres, ledger.len(), |i| {
            format!("${i}{}", if i % 2 == 1 { "::text" } else { "::int8" })
        });
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(2 * ledger.len());
        for (t, n) in &ledger {
            params.push(t);
            params.push(n);
        }
        self.client
            .execute(&sql, &params)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// `COPY`s a binary `COPY` stream in as it is (inside the caller's transaction): the
    /// server parses it, the client does nothing per value. The rows the server took.
    async fn copy_in_binary(&self, t: &Table, stream: bytes::Bytes) -> Result<u64, DbError> {
        let cols: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
        let sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            quote(&t.name),
            cols.join(", ")
        );
        let sink = self
            .client
            .copy_in::<_, bytes::Bytes>(&sql)
            .await
            .map_err(|e| self.err(e))?;
        futures::pin_mut!(sink);
        sink.send(stream).await.map_err(|e| self.err(e))?;
        sink.as_mut().finish().await.map_err(|e| self.err(e))
    }

    /// `COPY`s the rows in (inside the caller's transaction).
    async fn copy_in(&self, t: &Table, rows: &[Row]) -> Result<(), DbError> {
        let c = &self.client;
        let cols: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
        let sql = format!("COPY {} ({}) FROM STDIN", quote(&t.name), cols.join(", "));
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
        Ok(())
    }
}

/// PostgreSQL's `COPY` text format: `t`/`f`, and `\\x` before a `bytea`'s hex (the
/// backslash itself escaped).
const COPY_TEXT: TsvStyle = TsvStyle {
    bools: (b"t", b"f"),
    hex_prefix: b"\\\\x",
};

/// Appends one row in PostgreSQL's `COPY` text format.
fn copy_line(row: &Row, out: &mut Vec<u8>) {
    tsv_line(row, &COPY_TEXT, out);
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

/// The query of [`Driver::digest`] for `t` on a server of `version`.
///
/// From PostgreSQL 14, each row's `hash_record_extended`: every value hashed by its type's
/// own 64-bit hash, no text made (4 times faster than an MD5 of the row's text here).
/// Numbers and floats are hashed as their text, because their hashes take 1.0 and 1.00
/// (or 0 and -0) for one value; texts in the "C" collation, hashed by their bytes. A
/// record's hash is a linear mix of its values' hashes, so a sum of them would not see
/// two rows trade a value: each is hashed again (as text, its 64 bits whole) before the
/// sum. Before 14, the first 64 bits of the MD5 of the record's text (which quotes each
/// value and leaves NULL empty). Sums are `numeric`: no overflow, and no order counts.
fn digest_sql(t: &Table, version: u32) -> String {
    let q = |n: &str| Engine::Postgres.quote(n);
    let sum = if version >= 140_000 {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| match c.ty {
                ColType::Number { .. } | ColType::Float { .. } => format!("{}::text", q(&c.name)),
                ColType::Char { .. } | ColType::Text => format!("{} COLLATE \"C\"", q(&c.name)),
                _ => q(&c.name),
            })
            .collect();
        format!(
            "sum(hashtextextended(hash_record_extended(ROW({}), 0)::text, 0))",
            cols.join(", ")
        )
    } else {
        let cols: Vec<String> = t.columns.iter().map(|c| q(&c.name)).collect();
        format!(
            "sum(('x' || substr(md5(ROW({})::text), 1, 16))::bit(64)::bigint::numeric)",
            cols.join(", ")
        )
    };
    format!(
        "SELECT count(*)::text || ':' || coalesce({sum}, 0)::text FROM {}",
        q(&t.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::engine::test_column as col;

    #[test]
    fn catalog_types_map_to_neutral_ones() {
        assert_eq!(
            column_type("integer", None, Some(32), Some(0)),
            Some(ColType::Int { bytes: 4 })
        );
        assert_eq!(
            column_type("numeric", None, Some(12), Some(5)),
            Some(ColType::Number {
                precision: 12,
                scale: 5
            })
        );
        assert_eq!(column_type("numeric", None, None, None), None, "unbounded");
        assert_eq!(
            column_type("character varying", Some(100), None, None),
            Some(ColType::Char { len: 100 })
        );
        assert_eq!(
            column_type("character varying", None, None, None),
            Some(ColType::Text)
        );
        assert_eq!(
            column_type("timestamp without time zone", None, None, None),
            Some(ColType::Timestamp)
        );
        for t in ["jsonb", "point", "timestamp with time zone", "uuid"] {
            assert_eq!(column_type(t, None, None, None), None, "{t}");
        }
    }

    #[test]
    fn ddl_types_round_trip_through_the_catalog() {
        for (ty, ddl, catalog) in [
            (ColType::Int { bytes: 2 }, "SMALLINT", "smallint"),
            (ColType::Int { bytes: 4 }, "INTEGER", "integer"),
            (ColType::Int { bytes: 8 }, "BIGINT", "bigint"),
            (ColType::Float { double: false }, "REAL", "real"),
            (
                ColType::Float { double: true },
                "DOUBLE PRECISION",
                "double precision",
            ),
            (ColType::Text, "TEXT", "text"),
            (ColType::Binary, "BYTEA", "bytea"),
            (ColType::Bool, "BOOLEAN", "boolean"),
            (ColType::Date, "DATE", "date"),
            (
                ColType::Timestamp,
                "TIMESTAMP",
                "timestamp without time zone",
            ),
        ] {
            assert_eq!(ddl_type(&col(ty, false)), ddl);
            assert_eq!(
                column_type(catalog, None, None, None),
                Some(ty),
                "{catalog}"
            );
        }
        assert_eq!(ddl_type(&col(ColType::Int { bytes: 1 }, false)), "SMALLINT");
        assert_eq!(ddl_type(&col(ColType::Int { bytes: 3 }, true)), "SERIAL");
        assert_eq!(ddl_type(&col(ColType::Int { bytes: 8 }, true)), "BIGSERIAL");
    }

    #[test]
    fn literals_cannot_end_their_quotes() {
        assert_eq!(
            literal(&Value::Text("a'b\\c".into()), ColType::Text),
            "E'a''b\\\\c'::text"
        );
        assert_eq!(
            literal(&Value::Int(-5), ColType::Int { bytes: 8 }),
            "(-5)::int8"
        );
        assert_eq!(
            literal(&Value::Bytes(vec![0, 255]), ColType::Binary),
            "E'\\\\x00ff'::bytea"
        );
    }

    #[test]
    fn copy_lines_escape_and_mark_null() {
        let mut out = Vec::new();
        copy_line(
            &vec![
                Value::Int(1),
                Value::Null,
                Value::Text("a\tb\\c\nd".into()),
                Value::Bytes(vec![0, 255]),
                Value::Bool(true),
                Value::Float(f64::NAN),
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1\t\\N\ta\\tb\\\\c\\nd\t\\\\x00ff\tt\tNaN\n"
        );
    }
}

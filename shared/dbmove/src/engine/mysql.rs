//! MySQL and MariaDB: `mysql_async`, multi-row `INSERT`s for loads, rows streamed one by
//! one, `AUTO_INCREMENT` carried by `ALTER TABLE`.

use std::collections::BTreeMap;

use a2a_core::Locator;
use async_trait::async_trait;
use mysql_async::prelude::Queryable as _;

use futures::StreamExt as _;

use super::{
    CONNECT_TIMEOUT, Described, Driver, Engine, Load, RowSink, Sent, TypeNames, backend, int_ddl,
    ledger_insert_sql, push_column, tls, typed_text,
};
use crate::DbError;
use crate::schema::{ColType, Column, Index, Row, Table, Value, normalize_timestamp};
use crate::stage::ChunkFormat;

/// A connection to one MySQL or MariaDB database.
pub(super) struct MySql {
    loc: Locator,
    conn: tokio::sync::Mutex<mysql_async::Conn>,
    /// Whether the server takes `LOAD DATA LOCAL INFILE` (MariaDB's default; MySQL 8
    /// turns it off): the bulk path for loads, multi-row `INSERT`s otherwise.
    local_infile: bool,
}

/// Connects, with TLS as the URL asks (`ssl-mode`, `ssl-ca`).
pub(super) async fn connect(loc: &Locator) -> Result<MySql, DbError> {
    let (url, tls) = tls::split(loc, Engine::MySql)?;
    let url = url.replacen("mariadb://", "mysql://", 1);
    let opts = mysql_async::Opts::from_url(&url)
        .map_err(|e| DbError::Input(format!("{loc}: not a MySQL URL: {e}")))?;
    let host = opts.ip_or_hostname().to_owned();
    let refused = |e: &dyn std::fmt::Display| tls::refused(loc, &host, &tls, e);
    let ssl = ssl_opts(loc, &tls)?;
    let with = |ssl: Option<mysql_async::SslOpts>| {
        mysql_async::Opts::from(mysql_async::OptsBuilder::from_opts(opts.clone()).ssl_opts(ssl))
    };
    let open = |opts: mysql_async::Opts| async move {
        tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(opts)).await
    };
    let mut conn = match open(with(ssl.clone())).await {
        // PREFERRED: a server without TLS is spoken to in plain text, as MySQL's client does.
        Ok(Err(mysql_async::Error::Driver(
            mysql_async::DriverError::NoClientSslFlagFromServer,
        ))) if tls.effective() == tls::Mode::Prefer => open(with(None)).await,
        r => r,
    }
    .map_err(|_| refused(&"timed out"))?
    .map_err(|e| refused(&e))?;
    check(loc, SET_NAMES_SQL)?;
    conn.query_drop(SET_NAMES_SQL)
        .await
        .map_err(|e| backend(loc, e))?;
    check(loc, LOCAL_INFILE_SQL)?;
    let local_infile = conn
        .query_first::<Option<i64>, _>(LOCAL_INFILE_SQL)
        .await
        .map_err(|e| backend(loc, e))?
        .flatten()
        == Some(1);
    Ok(MySql {
        loc: loc.clone(),
        conn: tokio::sync::Mutex::new(conn),
        local_infile,
    })
}

/// mysql_async's TLS options for a mode (its rustls backend): `None` for DISABLED.
fn ssl_opts(loc: &Locator, tls: &tls::Tls) -> Result<Option<mysql_async::SslOpts>, DbError> {
    let mode = tls.effective();
    if mode == tls::Mode::Disable {
        return Ok(None);
    }
    let mut ssl = mysql_async::SslOpts::default();
    if let Some(ca) = &tls.ca {
        // Read (and checked) here, so that a bad bundle is named as such.
        let (_, pem) = ca.read(loc)?;
        ssl = ssl
            .with_root_certs(vec![pem.into()])
            .with_disable_built_in_roots(true);
    }
    Ok(Some(match mode {
        tls::Mode::Prefer | tls::Mode::Require => ssl.with_danger_accept_invalid_certs(true),
        tls::Mode::VerifyCa => ssl.with_danger_skip_domain_validation(true),
        _ => ssl,
    }))
}

/// The base tables of the current database.
const TABLES_SQL: &str = "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'";
/// The columns of the tables of a prefix (bound twice).
const COLUMNS_SQL: &str = "SELECT CAST(c.TABLE_NAME AS CHAR), CAST(c.COLUMN_NAME AS CHAR), \
                        CAST(c.DATA_TYPE AS CHAR), CAST(c.COLUMN_TYPE AS CHAR), \
                        c.CHARACTER_MAXIMUM_LENGTH, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, \
                        CAST(c.IS_NULLABLE AS CHAR), CAST(c.COLUMN_DEFAULT AS CHAR), \
                        CAST(c.EXTRA AS CHAR) \
                 FROM information_schema.COLUMNS c \
                 JOIN information_schema.TABLES t \
                   ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
                 WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' \
                   AND BINARY LEFT(c.TABLE_NAME, CHAR_LENGTH(?)) = BINARY ? \
                 ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION";
/// The index columns of the tables of a prefix (bound twice).
const STATISTICS_SQL: &str = "SELECT CAST(TABLE_NAME AS CHAR), CAST(INDEX_NAME AS CHAR), NON_UNIQUE, \
                        CAST(COLUMN_NAME AS CHAR) \
                 FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() \
                   AND BINARY LEFT(TABLE_NAME, CHAR_LENGTH(?)) = BINARY ? \
                 ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX";
/// The next auto-increment value of every table that has one.
const AUTO_INCREMENT_SQL: &str = "SELECT CAST(TABLE_NAME AS CHAR), AUTO_INCREMENT FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL";
/// The next auto-increment value of one table.
const NEXT_ID_SQL: &str = "SELECT AUTO_INCREMENT FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?";
/// The names of one table's indexes.
const INDEXES_OF_SQL: &str = "SELECT DISTINCT CAST(INDEX_NAME AS CHAR) FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?";
/// Whether the server takes `LOAD DATA LOCAL INFILE`.
const LOCAL_INFILE_SQL: &str = "SELECT @@local_infile";
const SET_NAMES_SQL: &str = "SET NAMES utf8mb4";

fn quote(ident: &str) -> String {
    Engine::MySql.quote(ident)
}

/// The neutral type of an `information_schema.COLUMNS` row (`DATA_TYPE`, `COLUMN_TYPE`,
/// `CHARACTER_MAXIMUM_LENGTH`, `NUMERIC_PRECISION`, `NUMERIC_SCALE`), or `None`.
fn column_type(
    data_type: &str,
    column_type: &str,
    len: Option<u64>,
    prec: Option<u64>,
    scale: Option<u64>,
) -> Option<ColType> {
    let unsigned = column_type.contains("unsigned");
    // An unsigned integer needs the next signed size up.
    let int = |bytes: u8| ColType::Int {
        bytes: if unsigned { (bytes * 2).min(8) } else { bytes },
    };
    Some(match data_type {
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
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => ColType::Binary,
        "date" => ColType::Date,
        "datetime" | "timestamp" => ColType::Timestamp,
        _ => return None,
    })
}

/// The column types in DDL.
const TYPES: TypeNames = TypeNames {
    int: int_ddl,
    number: "DECIMAL",
    float: "FLOAT",
    double: "DOUBLE",
    text: "LONGTEXT",
    binary: "LONGBLOB",
    boolean: "TINYINT(1)",
    timestamp: "DATETIME(6)",
};

/// The column type of a neutral column in DDL.
fn ddl_type(c: &Column) -> String {
    TYPES.ddl(c)
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

fn my_params(params: &[Value]) -> Vec<mysql_async::Value> {
    params.iter().map(to_my).collect()
}

impl MySql {
    fn err(&self, e: impl std::fmt::Display) -> DbError {
        backend(&self.loc, e)
    }

    /// The connection, for the statements given: the one way to it, so that every
    /// statement sent passes [`check`].
    async fn session(
        &self,
        statements: &[&str],
    ) -> Result<tokio::sync::MutexGuard<'_, mysql_async::Conn>, DbError> {
        for sql in statements {
            check(&self.loc, sql)?;
        }
        Ok(self.conn.lock().await)
    }
}

/// Refuses a statement MySQL 8.0 would not accept (in debug builds, where every test's
/// statements pass here; see [`statements`]).
fn check(loc: &Locator, sql: &str) -> Result<(), DbError> {
    if cfg!(debug_assertions) {
        let shape = statements::record(sql);
        if let Some(what) = statements::mariadb_only(&shape) {
            return Err(DbError::Backend(format!(
                "{loc}: not MySQL 8.0 syntax ({what}): {shape}"
            )));
        }
    }
    Ok(())
}

#[async_trait]
impl Driver for MySql {
    fn engine(&self) -> Engine {
        Engine::MySql
    }

    fn locator(&self) -> &Locator {
        &self.loc
    }

    fn ddl_type(&self, c: &Column) -> String {
        ddl_type(c)
    }

    fn auto_increment_clause(&self) -> &'static str {
        " AUTO_INCREMENT"
    }

    fn table_options(&self) -> &'static str {
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
    }

    fn mark_type(&self, _n: usize, _ty: ColType) -> String {
        "?".into()
    }

    fn mark_value(&self, _n: usize, _v: &Value) -> String {
        "?".into()
    }

    fn join_texts(&self, expr: &str) -> String {
        format!("GROUP_CONCAT(CAST({expr} AS CHAR) SEPARATOR ',')")
    }

    fn key_expr(&self, c: &Column) -> String {
        match c.ty {
            ColType::Char { .. } | ColType::Text => format!("BINARY {}", quote(&c.name)),
            _ => quote(&c.name),
        }
    }

    fn table_sizes_sql(&self) -> &'static str {
        "SELECT CAST(TABLE_NAME AS CHAR), \
         CAST(COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS SIGNED) \
         FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
    }

    fn database_count_sql(&self) -> Option<&'static str> {
        Some("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}")
    }

    fn begin_snapshot_sql(&self) -> &'static str {
        "START TRANSACTION WITH CONSISTENT SNAPSHOT"
    }

    async fn exec(&self, sql: &str) -> Result<(), DbError> {
        self.session(&[sql])
            .await?
            .query_drop(sql)
            .await
            .map_err(|e| self.err(e))
    }

    async fn table_names(&self) -> Result<Vec<String>, DbError> {
        self.session(&[TABLES_SQL])
            .await?
            .query(TABLES_SQL)
            .await
            .map_err(|e| self.err(e))
    }

    async fn introspect(&self, prefix: &str) -> Result<Vec<Table>, DbError> {
        let mut c = self
            .session(&[COLUMNS_SQL, STATISTICS_SQL, AUTO_INCREMENT_SQL])
            .await?;
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
            .exec(COLUMNS_SQL, (prefix, prefix))
            .await
            .map_err(|e| self.err(e))?;
        let mut tables: BTreeMap<String, Table> = BTreeMap::new();
        for (table, name, dt, ct, len, prec, scale, nullable, default, extra) in rows {
            let column = Described {
                table: &table,
                name,
                ty: column_type(&dt, &ct, len, prec, scale),
                declared: &ct,
                nullable: nullable == "YES",
                auto_increment: extra.contains("auto_increment"),
                default: default.as_deref(),
            };
            push_column(&mut tables, &table, column.column()?);
        }
        let stats: Vec<(String, String, u64, String)> = c
            .exec(STATISTICS_SQL, (prefix, prefix))
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
        let autos: Vec<(String, u64)> =
            c.query(AUTO_INCREMENT_SQL).await.map_err(|e| self.err(e))?;
        for (table, next) in autos {
            if let Some(t) = tables.get_mut(&table)
                && t.auto_column().is_some()
            {
                t.next_id = i64::try_from(next).ok();
            }
        }
        Ok(tables.into_values().collect())
    }

    async fn query_pairs(&self, sql: &str) -> Result<Vec<(String, i64)>, DbError> {
        self.session(&[sql])
            .await?
            .query::<(String, i64), _>(sql)
            .await
            .map_err(|e| self.err(e))
    }

    async fn query_opt_text(&self, sql: &str, params: &[Value]) -> Result<Option<String>, DbError> {
        Ok(self
            .session(&[sql])
            .await?
            .exec_first::<Option<String>, _, _>(sql, my_params(params))
            .await
            .map_err(|e| self.err(e))?
            .flatten())
    }

    async fn query_opt_i64(&self, sql: &str, params: &[Value]) -> Result<Option<i64>, DbError> {
        Ok(self
            .session(&[sql])
            .await?
            .exec_first::<Option<i64>, _, _>(sql, my_params(params))
            .await
            .map_err(|e| self.err(e))?
            .flatten())
    }

    async fn digest(&self, t: &Table) -> Result<Option<String>, DbError> {
        // The server's own `CHECKSUM TABLE`: a sum over the rows of each row's CRC32 of
        // its null flags and values, without an expression evaluated per value (3 to 4
        // times faster than an MD5 of each row's text here). Its 32 bits let a differing
        // table pass at a chance of 1 in 4 billion; tables laid out differently (another
        // column order, nullability or temporal format) give other sums and are then
        // read row by row.
        let name = self.engine().quote(&t.name);
        let count = format!("SELECT COUNT(*) FROM {name}");
        let checksum = format!("CHECKSUM TABLE {name}");
        let mut c = self.session(&[&count, &checksum]).await?;
        let rows: Option<u64> = c.query_first(&count).await.map_err(|e| self.err(e))?;
        let sum: Option<(String, Option<u64>)> =
            c.query_first(&checksum).await.map_err(|e| self.err(e))?;
        Ok(match (rows, sum) {
            (Some(rows), Some((_, Some(sum)))) => Some(format!("{rows}:{sum}")),
            _ => None,
        })
    }

    async fn exec_params(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut c = self.session(&[sql]).await?;
        c.exec_drop(sql, my_params(params))
            .await
            .map_err(|e| self.err(e))?;
        Ok(c.affected_rows())
    }

    async fn load_many(&self, parts: Vec<Load<'_>>) -> Result<(), DbError> {
        let mut c = self
            .session(&["START TRANSACTION", "COMMIT", "ROLLBACK"])
            .await?;
        c.query_drop("START TRANSACTION")
            .await
            .map_err(|e| self.err(e))?;
        let r = self.insert_many(&mut c, &parts).await;
        let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let done = c.query_drop(end).await.map_err(|e| self.err(e));
        r.and(done)
    }

    fn takes_as_is(&self, format: ChunkFormat) -> bool {
        format == ChunkFormat::MyTsv && self.local_infile
    }

    fn inline_indexes(&self) -> bool {
        true
    }

    fn next_id_clause(&self, next: i64) -> Option<String> {
        // DDL binds no parameters; `next` is an i64, never text from outside.
        Some(format!(" AUTO_INCREMENT = {next}"))
    }

    async fn stream(&self, t: &Table, sql: String, params: Vec<Value>, mut sink: RowSink) -> Sent {
        let mut c = self.session(&[&sql]).await?;
        let mut result = c
            .exec_iter(sql, my_params(&params))
            .await
            .map_err(|e| self.err(e))?;
        while let Some(r) = result.next().await.map_err(|e| self.err(e))? {
            sink.push(my_row(t, r.unwrap()).map_err(|e| self.err(e))?)
                .await?;
        }
        sink.finish().await
    }

    async fn set_next_id(&self, table: &str, _column: &str, next: i64) -> Result<(), DbError> {
        // A table created with `AUTO_INCREMENT = n` moves its counter past every id loaded
        // by itself; the ALTER (a DDL commit, slow on InnoDB) is only for one behind.
        let now = self
            .query_opt_i64(NEXT_ID_SQL, &[Value::Text(table.to_owned())])
            .await?;
        if now.is_some_and(|n| n >= next) {
            return Ok(());
        }
        // DDL binds no parameters; `next` is an i64 computed by the caller.
        self.exec(&format!(
            "ALTER TABLE {} AUTO_INCREMENT = {next}",
            quote(table)
        ))
        .await
    }

    async fn create_indexes(&self, table: &str, indexes: &[Index]) -> Result<(), DbError> {
        let there: Vec<String> = self
            .session(&[INDEXES_OF_SQL])
            .await?
            .exec(INDEXES_OF_SQL, (table,))
            .await
            .map_err(|e| self.err(e))?;
        let adds: Vec<String> = indexes
            .iter()
            .filter(|i| !there.contains(&i.name))
            .map(|i| {
                let cols: Vec<String> = i.columns.iter().map(|c| quote(c)).collect();
                format!(
                    "ADD {}INDEX {} ({})",
                    if i.unique { "UNIQUE " } else { "" },
                    quote(&i.name),
                    cols.join(", ")
                )
            })
            .collect();
        if adds.is_empty() {
            return Ok(());
        }
        // One ALTER builds them all in one pass over the table (MySQL 8 has no
        // `CREATE INDEX IF NOT EXISTS`, hence the look first).
        self.exec(&format!("ALTER TABLE {} {}", quote(table), adds.join(", ")))
            .await
    }

    async fn drop_database(&self, name: &str) -> Result<(), DbError> {
        self.exec(&format!("DROP DATABASE IF EXISTS {}", quote(name)))
            .await
    }
}

impl MySql {
    /// Each part's rows (or its staged `LOAD DATA` text as it is), then every ledger row
    /// in one `INSERT` (inside the caller's transaction).
    async fn insert_many(
        &self,
        c: &mut mysql_async::Conn,
        parts: &[Load<'_>],
    ) -> Result<(), DbError> {
        for p in parts {
            if let Some(raw) = &p.raw {
                self.load_data(c, p.table, raw.bytes.clone(), raw.rows)
                    .await?;
            } else if !p.rows.is_empty() {
                self.insert(c, p.table, &p.rows).await?;
            }
        }
        let ledger = Load::ledger_rows(parts);
        for part in ledger.chunks(1000) {
            let sql = ledger_insert_sql(Engine::MySql, part.len(), |_| "?".into());
            check(&self.loc, &sql)?;
            let params: Vec<mysql_async::Value> = part
                .iter()
                .flat_map(|(t, n)| [mysql_async::Value::from(*t), mysql_async::Value::from(*n)])
                .collect();
            c.exec_drop(sql, params).await.map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// `rows` rows of `LOAD DATA` text ([`crate::mytsv`]) through `LOAD DATA LOCAL
    /// INFILE` (inside the caller's transaction): one tab-separated stream, which the
    /// server parses about twice as fast as the same rows in `INSERT`s.
    async fn load_data(
        &self,
        c: &mut mysql_async::Conn,
        t: &Table,
        data: bytes::Bytes,
        rows: u64,
    ) -> Result<(), DbError> {
        let (mut cols, mut sets) = (Vec::new(), Vec::new());
        for (i, col) in t.columns.iter().enumerate() {
            if col.ty == ColType::Binary {
                cols.push(format!("@b{i}"));
                sets.push(format!("{} = UNHEX(@b{i})", quote(&col.name)));
            } else {
                cols.push(quote(&col.name));
            }
        }
        let set = if sets.is_empty() {
            String::new()
        } else {
            format!(" SET {}", sets.join(", "))
        };
        let sql = format!(
            "LOAD DATA LOCAL INFILE 'a2a-chunk' INTO TABLE {} CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({}){set}",
            quote(&t.name),
            cols.join(", ")
        );
        check(&self.loc, &sql)?;
        c.set_infile_handler(async move {
            Ok(futures::stream::iter([Ok::<_, std::io::Error>(data)]).boxed())
        });
        c.query_drop(sql).await.map_err(|e| self.err(e))?;
        // LOCAL turns what would be errors (a duplicate key, a value that does not fit)
        // into warnings and skipped rows: any is a failed chunk here.
        let (loaded, warnings) = (c.affected_rows(), c.get_warnings());
        if loaded != rows || warnings > 0 {
            return Err(self.err(format!(
                "{}: LOAD DATA took {loaded} of {rows} rows with {warnings} warning(s); \
                 nothing of this chunk was committed",
                t.name
            )));
        }
        Ok(())
    }

    /// Multi-row `INSERT`s (inside the caller's transaction).
    async fn insert(
        &self,
        c: &mut mysql_async::Conn,
        t: &Table,
        rows: &[Row],
    ) -> Result<(), DbError> {
        if self.local_infile {
            let mut data = Vec::with_capacity(rows.len() * 64);
            for row in rows {
                crate::mytsv::line(row, &mut data);
            }
            return self.load_data(c, t, data.into(), rows.len() as u64).await;
        }
        let cols: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
        let one = format!("({})", vec!["?"; cols.len()].join(", "));
        let head = format!(
            "INSERT INTO {} ({}) VALUES ",
            quote(&t.name),
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
            check(&self.loc, &sql)?;
            c.exec_drop(sql, params).await.map_err(|e| self.err(e))?;
            start = end;
        }
        Ok(())
    }
}

/// One row as the server sent it, in neutral values.
fn my_row(t: &Table, vals: Vec<mysql_async::Value>) -> Result<Row, String> {
    use mysql_async::Value as M;
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

/// The statements sent to MySQL, by shape: their keywords in order, with identifiers,
/// literals and numbers left out (`` CREATE INDEX `i` ON `t` (`a`) `` is `CREATE INDEX ON`).
/// Debug builds record every shape sent, and refuse the syntax only MariaDB accepts.
pub(crate) mod statements {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

    /// MariaDB-only (or PostgreSQL-only) syntax, and what MySQL 8.0 wants instead.
    const NOT_MYSQL_8: &[(&str, &str)] = &[
        (
            "CREATE INDEX IF NOT EXISTS",
            "MariaDB only: check information_schema.STATISTICS",
        ),
        (
            "CREATE UNIQUE INDEX IF NOT EXISTS",
            "MariaDB only: check information_schema.STATISTICS",
        ),
        (
            "DROP INDEX IF EXISTS",
            "MariaDB only: check information_schema.STATISTICS",
        ),
        (
            "ADD COLUMN IF NOT EXISTS",
            "MariaDB only: check information_schema.COLUMNS",
        ),
        (
            "DROP COLUMN IF EXISTS",
            "MariaDB only: check information_schema.COLUMNS",
        ),
        (
            "ADD INDEX IF NOT EXISTS",
            "MariaDB only: check information_schema.STATISTICS",
        ),
        ("RETURNING", "MariaDB (and PostgreSQL) only"),
        ("CREATE OR REPLACE TABLE", "MariaDB only"),
        ("CREATE SEQUENCE", "MariaDB only: use AUTO_INCREMENT"),
        ("NEXTVAL", "MariaDB sequences only"),
        ("EXCEPT", "MySQL 8.0.31 and later only"),
        ("INTERSECT", "MySQL 8.0.31 and later only"),
        ("ILIKE", "PostgreSQL only"),
        ("FULL OUTER JOIN", "not in MySQL"),
        ("WITH FORCE", "PostgreSQL only"),
    ];

    /// The shape of a statement.
    pub(crate) fn shape(sql: &str) -> String {
        let b = sql.as_bytes();
        let mut words: Vec<String> = Vec::new();
        let push = |w: String, words: &mut Vec<String>| {
            if words.last() != Some(&w) {
                words.push(w);
            }
        };
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c == b'`' || c == b'\'' || c == b'"' {
                // A quoted identifier or literal, doubled quotes inside.
                i += 1;
                while i < b.len() {
                    if b[i] == b'\\' && c != b'`' {
                        i += 2;
                        continue;
                    }
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            } else if c.is_ascii_alphabetic() || c == b'_' {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                push(sql[start..i].to_ascii_uppercase(), &mut words);
            } else if c == b'?' {
                push("?".into(), &mut words);
                i += 1;
            } else {
                i += 1;
            }
        }
        words.join(" ")
    }

    /// What is wrong with a shape for MySQL 8.0, if anything.
    pub(crate) fn mariadb_only(shape: &str) -> Option<&'static str> {
        let padded = format!(" {shape} ");
        NOT_MYSQL_8
            .iter()
            .find(|(pattern, _)| padded.contains(&format!(" {pattern} ")))
            .map(|(_, why)| *why)
    }

    /// Records a statement sent; returns its shape.
    pub(crate) fn record(sql: &str) -> String {
        let shape = shape(sql);
        if let Ok(mut seen) = SEEN.lock() {
            seen.insert(shape.clone());
        }
        shape
    }

    /// Every shape sent by this process so far (debug builds), sorted.
    pub(crate) fn seen() -> Vec<String> {
        SEEN.lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: ColType) -> Column {
        crate::engine::test_column(ty, false)
    }

    #[test]
    fn catalog_types_map_to_neutral_ones() {
        let t = |dt: &str, ct: &str| column_type(dt, ct, Some(40), Some(10), Some(2));
        assert_eq!(t("int", "int(11)"), Some(ColType::Int { bytes: 4 }));
        assert_eq!(
            t("int", "int(10) unsigned"),
            Some(ColType::Int { bytes: 8 }),
            "unsigned goes one size up"
        );
        assert_eq!(t("bigint", "bigint(20) unsigned"), None, "no room above");
        assert_eq!(t("tinyint", "tinyint(1)"), Some(ColType::Int { bytes: 1 }));
        assert_eq!(t("varchar", "varchar(40)"), Some(ColType::Char { len: 40 }));
        assert_eq!(
            t("decimal", "decimal(10,2)"),
            Some(ColType::Number {
                precision: 10,
                scale: 2
            })
        );
        assert_eq!(t("mediumtext", "mediumtext"), Some(ColType::Text));
        assert_eq!(t("datetime", "datetime(6)"), Some(ColType::Timestamp));
        for dt in ["set", "enum", "point", "json", "bit", "year"] {
            assert_eq!(t(dt, dt), None, "{dt}");
        }
    }

    #[test]
    fn ddl_types_round_trip_through_the_catalog() {
        for (ty, ddl, dt) in [
            (ColType::Int { bytes: 1 }, "TINYINT", "tinyint"),
            (ColType::Int { bytes: 3 }, "MEDIUMINT", "mediumint"),
            (ColType::Int { bytes: 8 }, "BIGINT", "bigint"),
            (ColType::Float { double: false }, "FLOAT", "float"),
            (ColType::Float { double: true }, "DOUBLE", "double"),
            (ColType::Text, "LONGTEXT", "longtext"),
            (ColType::Binary, "LONGBLOB", "longblob"),
            (ColType::Date, "DATE", "date"),
            (ColType::Timestamp, "DATETIME(6)", "datetime"),
        ] {
            assert_eq!(ddl_type(&col(ty)), ddl);
            assert_eq!(column_type(dt, dt, None, None, None), Some(ty), "{dt}");
        }
        assert_eq!(ddl_type(&col(ColType::Bool)), "TINYINT(1)");
        assert_eq!(ddl_type(&col(ColType::Char { len: 255 })), "VARCHAR(255)");
    }

    #[test]
    fn server_values_become_neutral_values() {
        use mysql_async::Value as M;
        let t = Table {
            name: "t".into(),
            columns: vec![
                col(ColType::Int { bytes: 4 }),
                col(ColType::Timestamp),
                col(ColType::Number {
                    precision: 10,
                    scale: 2,
                }),
                col(ColType::Text),
            ],
            primary_key: vec![],
            indexes: vec![],
            next_id: None,
        };
        let row = my_row(
            &t,
            vec![
                M::Bytes(b"42".to_vec()),
                M::Date(2024, 2, 29, 23, 59, 1, 500),
                M::Bytes(b"1.50".to_vec()),
                M::NULL,
            ],
        )
        .unwrap();
        assert_eq!(row[0], Value::Int(42));
        assert!(matches!(&row[1], Value::Timestamp(s) if s.starts_with("2024-02-29 23:59:01")));
        assert!(matches!(&row[2], Value::Decimal(_)));
        assert_eq!(row[3], Value::Null);
        assert!(my_row(&t, vec![M::Bytes(b"x".to_vec()), M::NULL, M::NULL, M::NULL]).is_err());
    }

    #[test]
    fn shapes_keep_keywords_and_drop_names_and_values() {
        assert_eq!(
            statements::shape("CREATE UNIQUE INDEX `a``b` ON `t` (`x`, `y`)"),
            "CREATE UNIQUE INDEX ON"
        );
        assert_eq!(
            statements::shape("INSERT INTO `t` (`a`, `b`) VALUES (?, ?), (?, ?)"),
            "INSERT INTO VALUES ?"
        );
        assert_eq!(
            statements::shape("ALTER TABLE `t` AUTO_INCREMENT = 42"),
            "ALTER TABLE AUTO_INCREMENT"
        );
        assert_eq!(
            statements::shape("SELECT 'it''s \\' IF', x FROM `t`"),
            "SELECT X FROM"
        );
    }

    #[test]
    fn mariadb_only_syntax_is_flagged() {
        for bad in [
            "CREATE INDEX IF NOT EXISTS `i` ON `t` (`a`)",
            "CREATE UNIQUE INDEX IF NOT EXISTS `i` ON `t` (`a`)",
            "ALTER TABLE `t` ADD COLUMN IF NOT EXISTS `c` INT",
            "DELETE FROM `t` WHERE `id` = ? RETURNING `id`",
            "CREATE OR REPLACE TABLE `t` (`a` INT)",
            "DROP DATABASE IF EXISTS \"x\" WITH (FORCE)",
        ] {
            assert!(
                statements::mariadb_only(&statements::shape(bad)).is_some(),
                "{bad}"
            );
        }
        for good in [
            "CREATE TABLE IF NOT EXISTS `l` (`a` INT)",
            "DROP TABLE IF EXISTS `t`",
            "DROP DATABASE IF EXISTS `x`",
            "SELECT `returning_id` FROM `t`",
        ] {
            assert_eq!(
                statements::mariadb_only(&statements::shape(good)),
                None,
                "{good}"
            );
        }
    }

    /// Every statement this file writes for MySQL, and the shapes of what the shared code
    /// writes for it (keyset pages, `CREATE TABLE`, the ledger, search-and-replace): none
    /// is MariaDB-only. What a run sends is checked too, statement by statement, in every
    /// debug build (`check`), and listed by `tests/mysql8.rs` against a server.
    #[test]
    fn every_statement_shape_sent_to_mysql_is_mysql_8() {
        let index = Index {
            name: "i".into(),
            columns: vec!["a".into(), "b".into()],
            unique: true,
        };
        let statements = [
            TABLES_SQL.to_owned(),
            COLUMNS_SQL.to_owned(),
            STATISTICS_SQL.to_owned(),
            AUTO_INCREMENT_SQL.to_owned(),
            NEXT_ID_SQL.to_owned(),
            INDEXES_OF_SQL.to_owned(),
            "ALTER TABLE `t` ADD UNIQUE INDEX `i` (`a`, `b`), ADD INDEX `j` (`c`)".into(),
            "CREATE TABLE `t` (`id` BIGINT NOT NULL AUTO_INCREMENT, `a` INT NOT NULL, \
             PRIMARY KEY (`id`), UNIQUE INDEX `i` (`a`)) ENGINE=InnoDB AUTO_INCREMENT = 7"
                .into(),
            "DROP TABLE IF EXISTS `a`, `b`".into(),
            LOCAL_INFILE_SQL.into(),
            "SET SESSION lock_wait_timeout = 10".into(),
            "FLUSH TABLES WITH READ LOCK".into(),
            "UNLOCK TABLES".into(),
            "LOAD DATA LOCAL INFILE 'a2a-chunk' INTO TABLE `t` CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' \
             (`a`, @b1) SET `b` = UNHEX(@b1)"
                .into(),
            "INSERT INTO `l` (`tbl`, `chunk`) VALUES (?, ?), (?, ?)".into(),
            SET_NAMES_SQL.to_owned(),
            "START TRANSACTION".into(),
            "START TRANSACTION WITH CONSISTENT SNAPSHOT".into(),
            "COMMIT".into(),
            "ROLLBACK".into(),
            super::super::create_index_sql(Engine::MySql, "t", &index, false),
            "INSERT INTO `t` (`a`, `b`) VALUES (?, ?), (?, ?)".into(),
            "ALTER TABLE `t` AUTO_INCREMENT = 7".into(),
            "CREATE DATABASE `d`".into(),
            "DROP DATABASE IF EXISTS `d`".into(),
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?".into(),
        ];
        let mut shapes: Vec<String> = statements.iter().map(|s| statements::shape(s)).collect();
        shapes.sort();
        shapes.dedup();
        let bad: Vec<_> = shapes
            .iter()
            .filter_map(|s| statements::mariadb_only(s).map(|why| format!("{s}: {why}")))
            .collect();
        assert!(bad.is_empty(), "{bad:#?}");
        // And MariaDB's own form is what would be caught.
        let ifne = super::super::create_index_sql(Engine::MySql, "t", &index, true);
        assert!(statements::mariadb_only(&statements::shape(&ifne)).is_some());
        assert!(
            shapes.contains(&"CREATE UNIQUE INDEX ON".to_owned()),
            "{shapes:#?}"
        );
    }
}

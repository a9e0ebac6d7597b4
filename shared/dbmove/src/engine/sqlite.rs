//! SQLite: `rusqlite` on the blocking pool, one prepared `INSERT` for loads,
//! `sqlite_sequence` for auto-increment. A "server" is a folder; a database is a file in it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use a2a_core::Locator;
use async_trait::async_trait;

use super::{
    Described, Driver, Engine, LEDGER_TABLE, Load, RowSink, Sent, TypeNames, backend, int_ddl,
    ledger_insert_sql, typed_text, unreachable,
};
use crate::DbError;
use crate::schema::{ColType, Column, Index, Row, Table, Value, normalize_decimal};

/// A connection to one SQLite file.
pub(super) struct Sqlite {
    loc: Locator,
    conn: Arc<Mutex<rusqlite::Connection>>,
}

/// The file a `sqlite://PATH` URL names.
pub(super) fn path(loc: &Locator) -> Result<String, DbError> {
    let path = loc.expose().strip_prefix("sqlite://").unwrap_or("");
    if path.is_empty() {
        return Err(DbError::Input(format!(
            "{loc}: a SQLite URL names a file: sqlite:///abs/path.db or sqlite://rel.db"
        )));
    }
    Ok(path.to_owned())
}

/// Opens the file; `create` lets it be created (a target).
pub(super) async fn connect(loc: &Locator, create: bool) -> Result<Sqlite, DbError> {
    let path = path(loc)?;
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
    .map_err(|e| unreachable(loc, &e))?;
    Ok(Sqlite {
        loc: loc.clone(),
        conn: Arc::new(Mutex::new(conn)),
    })
}

/// The database `name` in the folder a `sqlite://DIR` URL names: the file `DIR/<name>.db`.
pub(crate) fn in_folder(folder: &Locator, name: &str) -> Locator {
    Locator::new(format!(
        "{}/{name}.db",
        folder.expose().trim_end_matches('/')
    ))
}

/// Makes the folder a `sqlite://DIR` URL names, for databases to be created in it.
pub(crate) async fn create_folder(folder: &Locator) -> Result<(), DbError> {
    let dir = folder.expose().trim_start_matches("sqlite://");
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| DbError::Unreachable(format!("{folder}: {e}")))
}

/// Removes a database file and the journal files SQLite keeps beside it; a missing file
/// is not an error.
pub(crate) async fn remove(db: &Locator) -> Result<(), DbError> {
    let path = db.expose().trim_start_matches("sqlite://");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        match tokio::fs::remove_file(format!("{path}{suffix}")).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DbError::Unreachable(format!("{db}: {e}"))),
        }
    }
    Ok(())
}

/// Whether the database file a `sqlite://FILE` URL names is there. A folder that cannot
/// be read is an error, not "absent".
pub(crate) async fn exists(db: &Locator) -> Result<bool, DbError> {
    let path = db.expose().trim_start_matches("sqlite://");
    tokio::fs::try_exists(path)
        .await
        .map_err(|e| DbError::Unreachable(format!("{db}: {e}")))
}

fn quote(ident: &str) -> String {
    Engine::Sqlite.quote(ident)
}

/// The neutral type of a declared SQLite column type, or `None`.
fn column_type(decl: &str) -> Option<ColType> {
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

/// The column types in DDL, declared so that introspection reads the same neutral type
/// back.
const TYPES: TypeNames = TypeNames {
    int: int_ddl,
    number: "DECIMAL",
    float: "FLOAT",
    double: "DOUBLE",
    text: "TEXT",
    binary: "BLOB",
    boolean: "BOOLEAN",
    timestamp: "DATETIME",
};

/// The column type of a neutral column in DDL.
fn ddl_type(c: &Column) -> String {
    TYPES.ddl(c)
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

fn lite_params(params: &[Value]) -> Vec<rusqlite::types::Value> {
    params.iter().map(to_lite).collect()
}

impl Sqlite {
    /// At most one row of one column, NULL as `None`.
    async fn query_opt<T>(&self, sql: &str, params: &[Value]) -> Result<Option<T>, DbError>
    where
        T: rusqlite::types::FromSql + Send + 'static,
    {
        let (sql, params) = (sql.to_owned(), lite_params(params));
        self.run(move |c| {
            let mut st = c.prepare(&sql)?;
            let mut rows = st.query(rusqlite::params_from_iter(params))?;
            match rows.next()? {
                Some(r) => r.get::<_, Option<T>>(0),
                None => Ok(None),
            }
        })
        .await
    }

    /// Runs `f` on the connection, on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, DbError> {
        let (loc, c) = (self.loc.clone(), self.conn.clone());
        tokio::task::spawn_blocking(move || {
            let mut c = c.lock().map_err(|e| DbError::Backend(e.to_string()))?;
            f(&mut c).map_err(|e| backend(&loc, e))
        })
        .await
        .map_err(|e| DbError::Backend(e.to_string()))?
    }
}

#[async_trait]
impl Driver for Sqlite {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn locator(&self) -> &Locator {
        &self.loc
    }

    fn ddl_type(&self, c: &Column) -> String {
        ddl_type(c)
    }

    fn rowid_alias(&self) -> bool {
        true
    }

    fn mark_type(&self, n: usize, _ty: ColType) -> String {
        format!("?{n}")
    }

    fn mark_value(&self, n: usize, _v: &Value) -> String {
        format!("?{n}")
    }

    fn length_fn(&self) -> &'static str {
        "length"
    }

    fn table_sizes_sql(&self) -> &'static str {
        "SELECT m.tbl_name, CAST(SUM(s.pgsize) AS INTEGER) FROM dbstat s \
         JOIN sqlite_master m ON m.name = s.name GROUP BY m.tbl_name"
    }

    fn begin_snapshot_sql(&self) -> &'static str {
        "BEGIN"
    }

    async fn exec(&self, sql: &str) -> Result<(), DbError> {
        let sql = sql.to_owned();
        self.run(move |c| c.execute_batch(&sql)).await
    }

    async fn table_names(&self) -> Result<Vec<String>, DbError> {
        self.run(|c| {
            let mut st = c.prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            )?;
            st.query_map([], |r| r.get(0))?.collect()
        })
        .await
    }

    async fn introspect(&self, prefix: &str) -> Result<Vec<Table>, DbError> {
        let (prefix, c) = (prefix.to_owned(), self.conn.clone());
        tokio::task::spawn_blocking(move || {
            let c = c.lock().map_err(|e| DbError::Backend(e.to_string()))?;
            introspect(&c, &prefix)
        })
        .await
        .map_err(|e| DbError::Backend(e.to_string()))?
    }

    async fn query_pairs(&self, sql: &str) -> Result<Vec<(String, i64)>, DbError> {
        let sql = sql.to_owned();
        self.run(move |c| {
            let mut st = c.prepare(&sql)?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
        .await
    }

    async fn query_opt_text(&self, sql: &str, params: &[Value]) -> Result<Option<String>, DbError> {
        self.query_opt(sql, params).await
    }

    async fn query_opt_i64(&self, sql: &str, params: &[Value]) -> Result<Option<i64>, DbError> {
        self.query_opt(sql, params).await
    }

    async fn exec_params(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let (sql, params) = (sql.to_owned(), lite_params(params));
        self.run(move |c| {
            c.execute(&sql, rusqlite::params_from_iter(params))
                .map(|n| n as u64)
        })
        .await
    }

    async fn load_many(&self, parts: Vec<Load<'_>>) -> Result<(), DbError> {
        // Owned for the blocking thread: each part's INSERT, rows and ledger row.
        let owned: Vec<(String, String, Vec<Row>, Option<i64>)> = parts
            .into_iter()
            .map(|p| {
                let cols: Vec<String> = p.table.columns.iter().map(|c| quote(&c.name)).collect();
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                let insert = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    quote(&p.table.name),
                    cols.join(", "),
                    marks.join(", ")
                );
                (p.table.name.clone(), insert, p.rows, p.ledger)
            })
            .collect();
        let ledger_sql = ledger_insert_sql(Engine::Sqlite, 1, |i| format!("?{i}"));
        self.run(move |c| {
            let tx = c.transaction()?;
            for (name, insert, rows, ledger) in &owned {
                if !rows.is_empty() {
                    let mut st = tx.prepare_cached(insert)?;
                    for row in rows {
                        st.execute(rusqlite::params_from_iter(row.iter().map(to_lite)))?;
                    }
                }
                if let Some(n) = ledger {
                    tx.execute(&ledger_sql, rusqlite::params![name, n])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn stream(&self, t: &Table, sql: String, params: Vec<Value>, mut sink: RowSink) -> Sent {
        let (c, t) = (self.conn.clone(), t.clone());
        tokio::task::spawn_blocking(move || {
            let c = c.lock().map_err(|e| DbError::Backend(e.to_string()))?;
            let lerr = |e: rusqlite::Error| DbError::Backend(e.to_string());
            let mut st = c.prepare(&sql).map_err(lerr)?;
            let mut rows = st
                .query(rusqlite::params_from_iter(params.iter().map(to_lite)))
                .map_err(lerr)?;
            while let Some(r) = rows.next().map_err(lerr)? {
                sink.push_blocking(lite_row(&t, r)?)?;
            }
            sink.finish_blocking()
        })
        .await
        .map_err(|e| DbError::Backend(e.to_string()))?
    }

    async fn set_next_id(&self, table: &str, _column: &str, next: i64) -> Result<(), DbError> {
        let name = table.to_owned();
        self.run(move |c| {
            c.execute("DELETE FROM sqlite_sequence WHERE name = ?1", [&name])?;
            c.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                rusqlite::params![name, next - 1],
            )
        })
        .await?;
        Ok(())
    }

    async fn create_database(&self, _name: &str) -> Result<(), DbError> {
        // A database is a file, created when first opened as a target.
        Ok(())
    }

    async fn drop_database(&self, _name: &str) -> Result<(), DbError> {
        Err(DbError::Input(format!(
            "{}: a SQLite database is a file; remove it instead",
            self.loc
        )))
    }
}

fn introspect(c: &rusqlite::Connection, prefix: &str) -> Result<Vec<Table>, DbError> {
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
            let rowid = table.primary_key.len() == 1
                && table.primary_key[0] == cname
                && decl.eq_ignore_ascii_case("INTEGER");
            let column = Described {
                table: &name,
                ty: column_type(&decl),
                name: cname,
                declared: if decl.is_empty() {
                    "(none declared)"
                } else {
                    &decl
                },
                nullable: !notnull && !rowid,
                auto_increment: rowid,
                default: dflt.as_deref(),
            };
            table.columns.push(column.column()?);
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

/// One row of a query, in neutral values (SQLite's dynamic types checked against the
/// declared ones).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: ColType) -> Column {
        crate::engine::test_column(ty, false)
    }

    #[test]
    fn declared_types_map_to_neutral_ones() {
        assert_eq!(column_type("integer"), Some(ColType::Int { bytes: 8 }));
        assert_eq!(column_type(" int "), Some(ColType::Int { bytes: 4 }));
        assert_eq!(
            column_type("decimal(10, 5)"),
            Some(ColType::Number {
                precision: 10,
                scale: 5
            })
        );
        assert_eq!(column_type("numeric"), None, "no precision");
        assert_eq!(column_type("varchar(30)"), Some(ColType::Char { len: 30 }));
        assert_eq!(column_type("varchar"), Some(ColType::Text));
        assert_eq!(column_type("clob"), Some(ColType::Text));
        for d in ["", "json", "point", "INTERVAL"] {
            assert_eq!(column_type(d), None, "{d:?}");
        }
    }

    #[test]
    fn ddl_types_read_back_as_themselves() {
        for ty in [
            ColType::Int { bytes: 1 },
            ColType::Int { bytes: 2 },
            ColType::Int { bytes: 3 },
            ColType::Int { bytes: 4 },
            ColType::Int { bytes: 8 },
            ColType::Number {
                precision: 12,
                scale: 3,
            },
            ColType::Float { double: false },
            ColType::Float { double: true },
            ColType::Char { len: 9 },
            ColType::Text,
            ColType::Binary,
            ColType::Bool,
            ColType::Date,
            ColType::Timestamp,
        ] {
            let ddl = ddl_type(&col(ty));
            assert_eq!(column_type(&ddl), Some(ty), "{ddl}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_refused() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let t = Table {
            name: "t".into(),
            columns: vec![col(ColType::Int { bytes: 4 }), col(ColType::Bool)],
            primary_key: vec![],
            indexes: vec![],
            next_id: None,
        };
        let read = |sql: &str| c.query_row(sql, [], |r| Ok(lite_row(&t, r))).unwrap();
        assert_eq!(
            read("SELECT 7, 1").unwrap(),
            vec![Value::Int(7), Value::Bool(true)]
        );
        let e = read("SELECT 'x', 0").unwrap_err().to_string();
        assert!(e.contains("t.c"), "{e}");
    }
}

//! EIX provisioning on the database side: clone the template database, search-and-replace
//! the old address in content, and customise the new site for its school.

use a2a_core::{Locator, Province, SchoolCode};
use serde::Serialize;

use crate::DbError;
use crate::engine::{Db, Engine};
use crate::schema::{ColType, Value};
use crate::server;

/// The database a URL names (its path), checked to be a plain name.
fn db_name(loc: &Locator) -> Result<String, DbError> {
    let s = loc.expose();
    let after = s.split_once("://").map(|x| x.1).unwrap_or("");
    let path = after.split_once('/').map(|x| x.1).unwrap_or("");
    let name = path.split(['?', '#']).next().unwrap_or("");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(DbError::Input(format!(
            "{loc}: name the database in the URL's path (letters, digits, '_', '-')"
        )));
    }
    Ok(name.to_owned())
}

/// The server part of a URL (scheme, user, host, port), to check two URLs share a server.
fn server(loc: &Locator) -> String {
    let s = loc.expose();
    let start = s.find("://").map(|i| i + 3).unwrap_or(0);
    let end = s[start..].find('/').map(|i| start + i).unwrap_or(s.len());
    let authority = &s[start..end];
    let host = authority.rsplit_once('@').map(|x| x.1).unwrap_or(authority);
    format!("{}{host}", &s[..start])
}

/// Clones the template database into a new one. PostgreSQL: `CREATE DATABASE … TEMPLATE`
/// (the template must have no open connection); MySQL/MariaDB: a new database and a
/// per-table copy on the server, auto-increment counters included; SQLite: `VACUUM INTO`.
/// The template and the clone live on one server (one folder for SQLite). An existing
/// target is refused.
pub async fn clone_database(template: &Locator, to: &Locator) -> Result<(), DbError> {
    let engine = Engine::of(template)?;
    if Engine::of(to)? != engine || (engine != Engine::Sqlite && server(template) != server(to)) {
        return Err(DbError::Input(format!(
            "{template} and {to}: a clone stays on the template's server; use `a2a db copy` across servers or engines"
        )));
    }
    match engine {
        Engine::Postgres => {
            let (tpl, new) = (db_name(template)?, db_name(to)?);
            let admin = Db::connect(&server::with_database(template, "postgres"), false).await?;
            if admin.exists_database(&new).await? {
                return Err(DbError::NotEmpty(format!(
                    "{to} already exists; nothing was changed"
                )));
            }
            let q = |s: &str| engine.quote(s);
            admin
                .exec(&format!("CREATE DATABASE {} TEMPLATE {}", q(&new), q(&tpl)))
                .await
        }
        Engine::MySql => {
            let (tpl, new) = (db_name(template)?, db_name(to)?);
            let db = Db::connect(template, false).await?;
            if db.exists_database(&new).await? {
                return Err(DbError::NotEmpty(format!(
                    "{to} already exists; nothing was changed"
                )));
            }
            let q = |s: &str| engine.quote(s);
            db.exec(&format!(
                "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
                q(&new)
            ))
            .await?;
            for t in db.list_tables("").await? {
                let (src, dst) = (
                    format!("{}.{}", q(&tpl), q(&t)),
                    format!("{}.{}", q(&new), q(&t)),
                );
                db.exec(&format!("CREATE TABLE {dst} LIKE {src}")).await?;
                db.exec(&format!("INSERT INTO {dst} SELECT * FROM {src}"))
                    .await?;
            }
            db.copy_auto_increments(&new).await
        }
        Engine::Sqlite => {
            let path = to.expose().trim_start_matches("sqlite://").to_owned();
            if std::path::Path::new(&path).exists() {
                return Err(DbError::NotEmpty(format!(
                    "{to} already exists; nothing was changed"
                )));
            }
            let db = Db::connect(template, false).await?;
            db.vacuum_into(&path).await
        }
    }
}

/// Moodle's `db_should_replace`: tables and columns its search-and-replace never touches.
pub fn should_replace(prefix: &str, table: &str, column: Option<&str>) -> bool {
    const SKIP: &[&str] = &[
        "config",
        "config_plugins",
        "filter_config",
        "sessions",
        "events_queue",
        "repository_instance_config",
        "block_instances",
        "files",
    ];
    let bare = table.strip_prefix(prefix).unwrap_or(table);
    if SKIP.contains(&bare) {
        return false;
    }
    // Never inside anything that looks like a log: /(^|_)logs?($|_)/.
    if bare.split('_').any(|part| part == "log" || part == "logs") {
        return false;
    }
    // Nor in anything that looks like a hash.
    !column.is_some_and(|c| c.ends_with("hash"))
}

/// What a search-and-replace changed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaceReport {
    /// Columns searched.
    pub columns: usize,
    /// Rows changed.
    pub rows: u64,
    /// Per char column, the rows left alone because the new text would not fit.
    pub too_long: Vec<TooLong>,
}

/// How many row ids a [`TooLong`] names at most.
pub const IDS_SHOWN: usize = 10;

/// The rows of one char column that a replacement would make longer than the column
/// allows, left alone (with their old text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TooLong {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// The column's length, in characters.
    pub max_len: u32,
    /// How many rows.
    pub rows: u64,
    /// The table's primary-key column that `ids` are values of; `None` when the table has
    /// no one-column key (then only the count is known).
    pub key: Option<String>,
    /// The key of the first [`IDS_SHOWN`] of those rows, in key order.
    pub ids: Vec<String>,
}

impl std::fmt::Display for TooLong {
    /// `mdl_course.fullname (254 characters): 12 rows, id 1, 2, …, 10 and 2 more`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rows = if self.rows == 1 { "row" } else { "rows" };
        write!(
            f,
            "{}.{} ({} characters): {} {rows}",
            self.table, self.column, self.max_len, self.rows
        )?;
        if let Some(key) = &self.key {
            write!(f, ", {key} {}", self.ids.join(", "))?;
            let more = self.rows.saturating_sub(self.ids.len() as u64);
            if more > 0 {
                write!(f, " and {more} more")?;
            }
        }
        Ok(())
    }
}

/// Replaces `search` by `replace` in every text and char column of the prefix's tables,
/// with Moodle's skip list (`admin/tool/replace`). A text column has no length limit, so
/// every row is replaced there. Where the new text would overflow a char column, the row
/// is left alone and reported by table, column and row ids (Moodle would cut it).
pub async fn replace_text(
    db: &Db,
    prefix: &str,
    search: &str,
    replace: &str,
) -> Result<ReplaceReport, DbError> {
    if search.is_empty() {
        return Err(DbError::Input("--search must not be empty".into()));
    }
    let mut report = ReplaceReport::default();
    // LIKE with '!' as escape, the same on every engine.
    let pattern = format!(
        "%{}%",
        search
            .replace('!', "!!")
            .replace('%', "!%")
            .replace('_', "!_")
    );
    for t in db.introspect(prefix).await? {
        if !should_replace(prefix, &t.name, None) {
            continue;
        }
        let key = match t.primary_key.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        };
        for c in &t.columns {
            let len = match c.ty {
                ColType::Text => None,
                ColType::Char { len } => Some(len),
                _ => continue,
            };
            if !should_replace(prefix, &t.name, Some(&c.name)) {
                continue;
            }
            report.columns += 1;
            let r = db
                .replace_in_column(
                    &t.name, &c.name, key, len, search, replace, &pattern, IDS_SHOWN,
                )
                .await?;
            report.rows += r.changed;
            if let (Some(max_len), true) = (len, r.left > 0) {
                report.too_long.push(TooLong {
                    table: t.name.clone(),
                    column: c.name.clone(),
                    max_len,
                    rows: r.left,
                    key: key.map(str::to_owned),
                    ids: r.keys,
                });
            }
        }
    }
    Ok(report)
}

/// The school's mailbox name: the code with its province digit as a letter, as XTEC
/// names school accounts (08… → a8…, 17… → b7…, 25… → c5…, 43… → e3…).
pub fn letter_code(code: &SchoolCode) -> String {
    let letter = match code.province() {
        Province::Barcelona => 'a',
        Province::Girona => 'b',
        Province::Lleida => 'c',
        Province::Tarragona => 'e',
    };
    format!("{letter}{}", &code.as_str()[1..])
}

/// Customises a cloned site as Àgora's enable-service script does: the site course (id 1)
/// gets the school's name as full name and `dns` as short name; the `admin` user gets the
/// school's name as institution and `<letter code>@xtec.cat` as e-mail. Returns the rows
/// changed (2 on a Moodle site).
pub async fn customise(
    db: &Db,
    prefix: &str,
    code: &SchoolCode,
    name: &str,
    dns: &str,
) -> Result<u64, DbError> {
    let mail = format!("{}@xtec.cat", letter_code(code));
    let course = db
        .update_row(
            &format!("{prefix}course"),
            &[("fullname", name), ("shortname", dns)],
            ("id", "1"),
        )
        .await?;
    let admin = db
        .update_row(
            &format!("{prefix}user"),
            &[("institution", name), ("email", &mail)],
            ("username", "admin"),
        )
        .await?;
    Ok(course + admin)
}

/// Sets the `admin` user's stored password to `hash` (already hashed as Moodle stores it);
/// returns the rows changed (1 on a Moodle site).
pub async fn set_admin_password(db: &Db, prefix: &str, hash: &str) -> Result<u64, DbError> {
    db.update_row(
        &format!("{prefix}user"),
        &[("password", hash)],
        ("username", "admin"),
    )
    .await
}

/// The `admin` user's stored password hash, if the site has an `admin`.
pub async fn admin_password_hash(db: &Db, prefix: &str) -> Result<Option<String>, DbError> {
    let q = |s: &str| db.engine().quote(s);
    db.query_opt_text(
        &format!(
            "SELECT {} FROM {} WHERE {} = {{}}",
            q("password"),
            q(&format!("{prefix}user")),
            q("username")
        ),
        &[Value::Text("admin".to_owned())],
    )
    .await
}

/// Moodle's maintenance-mode setting in `<prefix>config` (`'1'` on), the database half of
/// the maintenance switch; `climaintenance.html` in moodledata is the other.
pub const MAINTENANCE_SETTING: &str = "maintenance_enabled";

/// The value of setting `name` in the site's `<prefix>config` table; `None` when the
/// setting has no row (Moodle then takes its default).
pub async fn config_value(db: &Db, prefix: &str, name: &str) -> Result<Option<String>, DbError> {
    let q = |s: &str| db.engine().quote(s);
    db.query_opt_text(
        &format!(
            "SELECT {} FROM {} WHERE {} = {{}}",
            q("value"),
            q(&format!("{prefix}config")),
            q("name")
        ),
        &[Value::Text(name.to_owned())],
    )
    .await
}

/// Sets setting `name` of `<prefix>config` to `value`, inserting its row if there is
/// none; `None` deletes the row, as if it had never been set. Idempotent: returns whether
/// anything changed.
pub async fn set_config_value(
    db: &Db,
    prefix: &str,
    name: &str,
    value: Option<&str>,
) -> Result<bool, DbError> {
    let now = config_value(db, prefix, name).await?;
    if now.as_deref() == value {
        return Ok(false);
    }
    let q = |s: &str| db.engine().quote(s);
    let (table, n, v) = (q(&format!("{prefix}config")), q("name"), q("value"));
    let key = Value::Text(name.to_owned());
    match (value, now) {
        (Some(value), Some(_)) => {
            db.exec_params(
                &format!("UPDATE {table} SET {v} = {{}} WHERE {n} = {{}}"),
                &[Value::Text(value.to_owned()), key],
            )
            .await?
        }
        (Some(value), None) => {
            db.exec_params(
                &format!("INSERT INTO {table} ({n}, {v}) VALUES ({{}}, {{}})"),
                &[key, Value::Text(value.to_owned())],
            )
            .await?
        }
        (None, _) => {
            db.exec_params(&format!("DELETE FROM {table} WHERE {n} = {{}}"), &[key])
                .await?
        }
    };
    Ok(true)
}

impl Db {
    /// Sets each table of database `new` to the auto-increment counter of the same table
    /// in the current database (MySQL: `CREATE TABLE … LIKE` does not copy it).
    async fn copy_auto_increments(&self, new: &str) -> Result<(), DbError> {
        let autos = self
            .query_pairs(
                "SELECT CAST(TABLE_NAME AS CHAR), CAST(AUTO_INCREMENT AS SIGNED) \
                 FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL",
            )
            .await?;
        for (t, next) in autos {
            // DDL binds no parameters; `next` is an integer read from the server.
            self.exec(&format!(
                "ALTER TABLE {}.{} AUTO_INCREMENT = {next}",
                Engine::MySql.quote(new),
                Engine::MySql.quote(&t)
            ))
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skip_list_is_moodles() {
        assert!(should_replace("mdl_", "mdl_forum_posts", Some("message")));
        for t in [
            "mdl_config",
            "mdl_config_plugins",
            "mdl_sessions",
            "mdl_files",
            "mdl_block_instances",
        ] {
            assert!(!should_replace("mdl_", t, None), "{t}");
        }
        for t in [
            "mdl_log",
            "mdl_logstore_standard_log",
            "mdl_log_display",
            "mdl_stats_logs",
        ] {
            assert!(!should_replace("mdl_", t, None), "{t}");
        }
        assert!(
            should_replace("mdl_", "mdl_blog_entries", None),
            "blog is not log"
        );
        assert!(!should_replace("mdl_", "mdl_user", Some("pathnamehash")));
        assert!(!should_replace("m2", "m2config", None), "Àgora's prefix");
    }

    #[test]
    fn rows_too_long_are_named_by_table_column_and_the_first_ids() {
        let mut t = TooLong {
            table: "mdl_course".into(),
            column: "fullname".into(),
            max_len: 254,
            rows: 1,
            key: Some("id".into()),
            ids: vec!["1".into()],
        };
        assert_eq!(
            t.to_string(),
            "mdl_course.fullname (254 characters): 1 row, id 1"
        );
        t.rows = 12;
        t.ids = (1..=10).map(|n| n.to_string()).collect();
        assert_eq!(
            t.to_string(),
            "mdl_course.fullname (254 characters): 12 rows, id 1, 2, 3, 4, 5, 6, 7, 8, 9, \
             10 and 2 more"
        );
        t.key = None;
        t.ids.clear();
        assert_eq!(
            t.to_string(),
            "mdl_course.fullname (254 characters): 12 rows"
        );
    }

    #[test]
    fn letter_codes_follow_the_province() {
        let code = |s: &str| SchoolCode::parse(s).unwrap();
        assert_eq!(letter_code(&code("08012345")), "a8012345");
        assert_eq!(letter_code(&code("17001234")), "b7001234");
        assert_eq!(letter_code(&code("25001234")), "c5001234");
        assert_eq!(letter_code(&code("43001234")), "e3001234");
    }

    #[test]
    fn database_names_come_from_the_path() {
        let l = Locator::new("postgres://u:p@db:5432/m08012345?sslmode=require");
        assert_eq!(db_name(&l).unwrap(), "m08012345");
        assert!(db_name(&Locator::new("postgres://db:5432/")).is_err());
        assert!(db_name(&Locator::new("postgres://db/x;drop")).is_err());
        assert_eq!(server(&l), "postgres://db:5432");
    }
}

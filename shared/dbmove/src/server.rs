//! Databases on a server, reached through an admin URL: the URL of one, its creation and
//! its removal. A SQLite "server" is a folder (`sqlite:///path/to/dir`) and a database in
//! it is the file `<name>.db`. Used by the steps for target databases (through
//! [`crate::target`]), by the demo, the benchmark and the tests.

use a2a_core::Locator;

use crate::DbError;
use crate::engine::{Db, Engine, files};

/// The URL of database `name` on the server of `admin` (same user, host, options); for
/// SQLite, the file `<name>.db` in the folder `admin` names.
pub fn with_database(admin: &Locator, name: &str) -> Locator {
    if let Ok(Engine::Sqlite) = Engine::of(admin) {
        return files::in_folder(admin, name);
    }
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

/// Creates database `name` on the server of `admin` and returns its URL. For SQLite
/// nothing is made here: the file is created when first opened as a target, in a folder
/// that must exist ([`crate::target::prepare`] makes a shard's).
pub async fn create(admin: &Locator, name: &str) -> Result<Locator, DbError> {
    check(name)?;
    if Engine::of(admin)? != Engine::Sqlite {
        Db::connect(admin, false)
            .await?
            .create_database(name)
            .await?;
    }
    Ok(with_database(admin, name))
}

/// Whether database `name` is on the server of `admin`, asked of the server's catalogue
/// through the admin login (a SQLite folder: whether its file is there). A server that
/// cannot be reached, or a login it refuses, is an error: never taken for "absent".
pub async fn exists(admin: &Locator, name: &str) -> Result<bool, DbError> {
    check(name)?;
    let sql = match Engine::of(admin)? {
        Engine::Sqlite => return files::exists(&with_database(admin, name)).await,
        Engine::Postgres => "SELECT COUNT(*) FROM pg_database WHERE datname = {}",
        Engine::MySql => "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
    };
    let db = Db::connect(admin, false).await?;
    Ok(db
        .query_i64(sql, &[crate::Value::Text(name.into())])
        .await?
        > 0)
}

/// Drops database `name` if it is there: for SQLite, its file and the journal files
/// beside it.
pub async fn drop(admin: &Locator, name: &str) -> Result<(), DbError> {
    check(name)?;
    if Engine::of(admin)? == Engine::Sqlite {
        files::remove(&with_database(admin, name)).await
    } else {
        Db::connect(admin, false).await?.drop_database(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_keeps_the_server_and_its_options() {
        let admin = Locator::new("postgres://u:p@db:5432/postgres?sslmode=require");
        assert_eq!(
            with_database(&admin, "a2a_x").expose(),
            "postgres://u:p@db:5432/a2a_x?sslmode=require"
        );
        assert_eq!(
            with_database(&Locator::new("mysql://root@h"), "d").expose(),
            "mysql://root@h/d"
        );
        assert_eq!(
            with_database(&Locator::new("sqlite:///srv/dbs/"), "d").expose(),
            "sqlite:///srv/dbs/d.db"
        );
    }

    #[tokio::test]
    async fn names_that_could_escape_are_refused() {
        let admin = Locator::new("sqlite:///nowhere");
        for bad in ["", "A", "x;drop", "../x", "x y"] {
            assert!(
                matches!(create(&admin, bad).await, Err(DbError::Input(_))),
                "{bad:?}"
            );
            assert!(
                matches!(drop(&admin, bad).await, Err(DbError::Input(_))),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_sqlite_database_is_dropped_with_its_journal_files() {
        let dir = tempfile::tempdir().unwrap();
        let admin = Locator::new(format!("sqlite://{}/shard", dir.path().display()));
        crate::target::prepare(&admin).await.unwrap();
        let db = create(&admin, "d1").await.unwrap();
        Db::connect(&db, true)
            .await
            .unwrap()
            .exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x INT); INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        let path = dir.path().join("shard/d1.db");
        assert!(path.exists());
        std::fs::write(dir.path().join("shard/d1.db-journal"), b"x").unwrap();
        drop(&admin, "d1").await.unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path().join("shard"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
        drop(&admin, "d1").await.unwrap();
    }
}

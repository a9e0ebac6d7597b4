//! A school's target database on a shard: `a2a_<code>` on the shard's server, or the file
//! `a2a_<code>.db` in its SQLite folder. The one place that names it.

use a2a_core::{Locator, SchoolCode};

use crate::DbError;
use crate::engine::{Engine, files};
use crate::server;

/// The name of the school's target database.
pub fn name(code: &SchoolCode) -> String {
    format!("a2a_{code}")
}

/// The URL of the school's target database on `shard` (with the shard's credentials).
pub fn locator(shard: &Locator, code: &SchoolCode) -> Locator {
    server::with_database(shard, &name(code))
}

/// Makes `shard` ready to hold target databases: a SQLite shard's folder is created.
pub async fn prepare(shard: &Locator) -> Result<(), DbError> {
    match Engine::of(shard)? {
        Engine::Sqlite => files::create_folder(shard).await,
        _ => Ok(()),
    }
}

/// Creates the school's target database on `shard`; returns its URL.
pub async fn create(shard: &Locator, code: &SchoolCode) -> Result<Locator, DbError> {
    server::create(shard, &name(code)).await
}

/// Whether the school's target database is on `shard` ([`server::exists`]: a failed
/// login is an error, not "absent").
pub async fn exists(shard: &Locator, code: &SchoolCode) -> Result<bool, DbError> {
    server::exists(shard, &name(code)).await
}

/// Drops the target database `db` (the URL allocation recorded); a missing one is not an
/// error. A SQLite file goes with its journal files; on a server, the database is
/// dropped through `shard`, the configured shard that holds it (`None`: none does, and
/// nothing is dropped).
pub async fn drop(db: &Locator, shard: Option<&Locator>, code: &SchoolCode) -> Result<(), DbError> {
    if Engine::of(db)? == Engine::Sqlite {
        return files::remove(db).await;
    }
    let shard = shard
        .ok_or_else(|| DbError::Input(format!("{db} is on no configured shard; not dropped")))?;
    server::drop(shard, &name(code)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_named_after_its_school_on_each_engine() {
        let code = SchoolCode::parse("08012345").unwrap();
        assert_eq!(name(&code), "a2a_08012345");
        assert_eq!(
            locator(
                &Locator::new("postgres://a2a:pw@db:5432/postgres?sslmode=verify-full"),
                &code
            )
            .expose(),
            "postgres://a2a:pw@db:5432/a2a_08012345?sslmode=verify-full"
        );
        assert_eq!(
            locator(&Locator::new("sqlite:///srv/shard1"), &code).expose(),
            "sqlite:///srv/shard1/a2a_08012345.db"
        );
    }

    #[tokio::test]
    async fn a_server_target_on_no_shard_is_not_dropped() {
        let code = SchoolCode::parse("08012345").unwrap();
        let db = Locator::new("postgres://db/a2a_08012345");
        let e = drop(&db, None, &code).await.unwrap_err();
        assert!(
            matches!(e, DbError::Input(ref m) if m.contains("no configured shard")),
            "{e}"
        );
    }
}

//! A clone cut short is made again, never refused for good (issue 21): CloneTemplate
//! marks a clone whole only after its last table (and, on MySQL, its counters), and a
//! rerun keeps a target only when it is marked and every table still holds the
//! template's rows. Tampered with as a kill would leave it: a table missing under the
//! mark, and a target without the mark; each is dropped and cloned again. On SQLite, and
//! on MariaDB and PostgreSQL when their URLs are given.
//!
//! And VerifySite reads every row: a site row changed after Customise, in a table
//! Customise never touches or in a row it does, is caught, naming the table. And the
//! attempt's journal: a finished step is not run again, and once the catch path has begun
//! the attempt is only undone.

use std::path::Path;
use std::sync::Arc;

use a2a_core::{BlobKey, BlobStore, InstanceKind, InstanceStore, Locator, SchoolCode};
use a2a_dbmove::Db;
use a2a_local::{FsBlob, SqliteStore};
use a2a_steps::{StepContext, fixture};
use serde_json::json;

/// `step` run again as after a kill that cut it short after its work: the attempt's
/// journal, which would return its result, is dropped first.
async fn again(
    ctx: &StepContext,
    code: &SchoolCode,
    step: &str,
) -> Result<serde_json::Value, a2a_steps::StepError> {
    let root = format!("stage/{code}/journal/");
    for m in ctx.blob.list(&root, None).await.unwrap().items {
        ctx.blob.delete(&m.key).await.unwrap();
    }
    a2a_steps::call(ctx, step, json!({"school_code": code})).await
}

async fn rerun(ctx: &StepContext, code: &SchoolCode) -> serde_json::Value {
    again(ctx, code, "CloneTemplate").await.unwrap()
}

/// A template at `tpl` (made here), one shard at `shard`, the ports in `dir`, and the
/// provision `code` registered, bound for `dns`.
async fn provision(
    dir: &Path,
    tpl: Locator,
    shard: Locator,
    code: &str,
    dns: &str,
) -> (StepContext, SchoolCode) {
    let blob: Arc<dyn BlobStore> = Arc::new(FsBlob::new(dir.join("blobs")).unwrap());
    let store: Arc<dyn InstanceStore> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let template = fixture::primary_template(blob.clone(), dir, tpl)
        .await
        .unwrap();
    let ctx = StepContext {
        store,
        blob,
        site: Arc::new(fixture::eix_site(shard, 10, template)),
        secrets: Arc::new(a2a_local::FileSecrets::new(dir.join("secrets"))),
    };
    let code = SchoolCode::parse(code).unwrap();
    let i = fixture::school(&code, InstanceKind::Provision, dns, dir, None)
        .await
        .unwrap();
    assert!(ctx.store.register(&i).await.unwrap());
    (ctx, code)
}

/// Runs `steps` of `code` in order; the last one's result.
async fn run_steps(ctx: &StepContext, code: &SchoolCode, steps: &[&str]) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for step in steps {
        last = a2a_steps::call(ctx, step, json!({"school_code": code}))
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
    last
}

/// [`provision`] on SQLite in `dir`.
async fn on_sqlite(dir: &Path, code: &str, dns: &str) -> (StepContext, SchoolCode) {
    let tpl = Locator::new(format!("sqlite://{}/templates/primary.db", dir.display()));
    let shard = Locator::new(format!("sqlite://{}/shard-1", dir.display()));
    provision(dir, tpl, shard, code, dns).await
}

async fn count(db: &Db, table: &str) -> i64 {
    let q = db.engine().quote(table);
    db.query_i64(&format!("SELECT COUNT(*) FROM {q}"), &[])
        .await
        .unwrap()
}

/// Provisions `code`'s target from a template at `tpl` on a shard at `shard`, then
/// tampers with it twice and checks that each rerun makes it whole again.
async fn cut_short_clones_are_made_again(dir: &Path, tpl: Locator, shard: Locator, code: &str) {
    let (ctx, code) = provision(dir, tpl.clone(), shard, code, "escola-clone").await;
    let first = run_steps(&ctx, &code, &["AllocateTarget", "CloneTemplate"]).await;
    assert_eq!(first["kept"], false, "{first}");
    let target = a2a_steps::target_db(&ctx.site.shards[0], &code);
    let tables = Db::connect(&tpl, false)
        .await
        .unwrap()
        .list_tables("mdl_")
        .await
        .unwrap();
    let user_rows = count(&Db::connect(&tpl, false).await.unwrap(), "mdl_user").await;

    // Whole and marked: kept as it is.
    let again = rerun(&ctx, &code).await;
    assert_eq!(again["kept"], true, "{again}");

    // A table missing under the mark: not whole, made again.
    Db::connect(&target, false)
        .await
        .unwrap()
        .drop_table("mdl_user")
        .await
        .unwrap();
    let again = rerun(&ctx, &code).await;
    assert_eq!(again["kept"], false, "{again}");
    let db = Db::connect(&target, false).await.unwrap();
    assert_eq!(db.list_tables("mdl_").await.unwrap(), tables);
    assert_eq!(count(&db, "mdl_user").await, user_rows);
    drop(db);

    // Whole tables but no mark (cut short before it): dropped and made again, so a row
    // that no clone would have is gone.
    let db = Db::connect(&target, false).await.unwrap();
    let q = |s: &str| db.engine().quote(s);
    db.exec(&format!(
        "DELETE FROM {} WHERE {} = 'admin'",
        q("mdl_user"),
        q("username")
    ))
    .await
    .unwrap();
    assert_eq!(count(&db, "mdl_user").await, user_rows - 1);
    drop(db);
    ctx.blob
        .delete(&BlobKey::parse(&format!("stage/{code}/clone.json")).unwrap())
        .await
        .unwrap();
    let again = rerun(&ctx, &code).await;
    assert_eq!(again["kept"], false, "{again}");
    let db = Db::connect(&target, false).await.unwrap();
    assert_eq!(count(&db, "mdl_user").await, user_rows);
    // And the rerun marked it: whole now, so the next rerun keeps it.
    drop(db);
    assert_eq!(rerun(&ctx, &code).await["kept"], true);
}

#[tokio::test]
async fn verify_site_catches_a_row_changed_after_customise() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, code) = on_sqlite(tmp.path(), "08019004", "escola-rows").await;
    let steps = [
        "AllocateTarget",
        "CloneTemplate",
        "CopyTemplateFiles",
        "Customise",
        "VerifySite",
    ];
    run_steps(&ctx, &code, &steps).await;
    let target = a2a_steps::target_db(&ctx.site.shards[0], &code);
    let db = Db::connect(&target, false).await.unwrap();
    let q = |s: &str| a2a_dbmove::Engine::Sqlite.quote(s);
    // Whole: the check passes again.
    again(&ctx, &code, "VerifySite").await.unwrap();

    // A row Customise never touches, changed after it.
    let tables = db.list_tables("mdl_").await.unwrap();
    let forum = tables
        .iter()
        .find(|t| t.as_str() == "mdl_forum_posts")
        .expect("the fixture has forum posts");
    let set = |table: &str, column: &str, value: &str, key: &str, is: &str| {
        format!(
            "UPDATE {} SET {} = '{value}' WHERE {} = {is}",
            q(table),
            q(column),
            q(key)
        )
    };
    let before = format!(
        "SELECT COUNT(*) FROM {} WHERE {} = 'tampered'",
        q(forum),
        q("message")
    );
    db.exec(&set(
        forum,
        "message",
        "tampered",
        "id",
        "(SELECT MIN(id) FROM mdl_forum_posts)",
    ))
    .await
    .unwrap();
    assert_eq!(db.query_i64(&before, &[]).await.unwrap(), 1);
    let e = again(&ctx, &code, "VerifySite").await.unwrap_err();
    assert_eq!(e.name(), "A2A.Permanent.Verify", "{e}");
    assert!(e.to_string().contains("mdl_forum_posts"), "{e}");

    // Made again (the clone is no longer whole, so it is cloned anew), then a row that
    // Customise changed is given another value.
    drop(db);
    for step in ["CloneTemplate", "Customise", "VerifySite"] {
        again(&ctx, &code, step)
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
    let db = Db::connect(&target, false).await.unwrap();
    db.exec(&set(
        "mdl_user",
        "email",
        "someone@example.cat",
        "username",
        "'admin'",
    ))
    .await
    .unwrap();
    let e = again(&ctx, &code, "VerifySite").await.unwrap_err();
    assert!(
        e.to_string().contains("mdl_user") && e.to_string().contains("email"),
        "{e}"
    );
}

#[tokio::test]
async fn a_sqlite_clone_cut_short_is_made_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tpl = Locator::new(format!("sqlite://{}/templates/primary.db", dir.display()));
    let shard = Locator::new(format!("sqlite://{}/shard-1", dir.display()));
    cut_short_clones_are_made_again(dir, tpl, shard, "08019001").await;
}

async fn on_server(var: &str, test: &str, code: &str) {
    let Some(url) = a2a_testkit::service_url(var, test) else {
        return;
    };
    let admin = Locator::new(url);
    let code_ = SchoolCode::parse(code).unwrap();
    let target = a2a_dbmove::target::name(&code_);
    a2a_dbmove::server::drop(&admin, &target).await.unwrap();
    let name = a2a_testkit::db_name("clone_tpl");
    let tpl = a2a_dbmove::server::create(&admin, &name).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    cut_short_clones_are_made_again(tmp.path(), tpl, admin.clone(), code).await;
    a2a_dbmove::server::drop(&admin, &target).await.unwrap();
    a2a_dbmove::server::drop(&admin, &name).await.unwrap();
}

#[tokio::test]
async fn a_mariadb_clone_cut_short_is_made_again() {
    on_server(
        "A2A_TEST_MYSQL_URL",
        "a_mariadb_clone_cut_short_is_made_again",
        "17019002",
    )
    .await;
}

#[tokio::test]
async fn a_postgres_clone_cut_short_is_made_again() {
    on_server(
        "A2A_TEST_PG_URL",
        "a_postgres_clone_cut_short_is_made_again",
        "25019003",
    )
    .await;
}

/// A step finished in an attempt returns its journaled result and records nothing when
/// called again in it; once the catch path has begun, a forward step of the attempt fails
/// at once, so a resumed execution goes back to undoing.
#[tokio::test]
async fn a_finished_step_is_not_run_again_and_an_attempt_being_undone_is_only_undone() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, code) = on_sqlite(tmp.path(), "08019005", "escola-journal").await;
    let input = json!({"school_code": code});
    let started = |step: &'static str| {
        let ctx = ctx.clone();
        let code = code.clone();
        async move {
            ctx.store
                .history(&code)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.step == step && e.ended_at.is_none())
                .count()
        }
    };
    let first = run_steps(&ctx, &code, &["AllocateTarget", "CloneTemplate"]).await;
    let again = a2a_steps::call(&ctx, "CloneTemplate", input.clone())
        .await
        .unwrap();
    assert_eq!(again, first, "the journaled result");
    assert_eq!(started("clone-template").await, 1, "run once");
    let journal = format!("stage/{code}/journal/1/");
    assert_eq!(ctx.blob.list(&journal, None).await.unwrap().items.len(), 2);

    // Once the catch path has begun, the attempt is only undone: a forward step called
    // in it again (a resumed execution) fails at once, naming the error that was caught.
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, _) = on_sqlite(tmp.path(), "08019006", "escola-undo").await;
    let code = SchoolCode::parse("08019007").unwrap();
    let i = fixture::school(&code, InstanceKind::Migrate, "ins-undo", tmp.path(), None)
        .await
        .unwrap();
    assert!(ctx.store.register(&i).await.unwrap());
    run_steps(&ctx, &code, &["Preflight"]).await;
    let error = json!({"Error": "A2A.Permanent", "Cause": "for the test"});
    a2a_steps::call(
        &ctx,
        "RestoreSource",
        json!({"school_code": code, "error": error}),
    )
    .await
    .unwrap();
    let e = a2a_steps::call(&ctx, "Preflight", json!({"school_code": code}))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "A2A.Permanent", "{e}");
    assert!(e.to_string().contains("being undone"), "{e}");
    assert!(e.to_string().contains("for the test"), "{e}");
}

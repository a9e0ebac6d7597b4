//! The steps of `migrate-instance`: an existing site moved to its target shard.

use std::path::PathBuf;
use std::sync::Arc;

use a2a_core::{BlobStore, Instance, InstanceKind, Locator, SchoolCode, Status};
use a2a_dbmove::{CopyLimits, Db, ImportOptions};
use serde_json::{Value, json};

use crate::common::{
    Done, allocate, delete_prefix, delete_route, dns, exists, get_json, key, load, mark_failed,
    put_json, release_target, run, update, write_route,
};
use crate::provision::start;
use crate::{Prefixed, StepContext, StepError};

/// The maintenance page's message while a site moves.
const FROZEN: &str = "This site is moving to a new home. It will be back shortly.";

fn source_db(i: &Instance) -> Result<Locator, StepError> {
    if i.kind != InstanceKind::Migrate {
        return Err(StepError::Input(format!(
            "school {} is a {} instance, not a migration",
            i.code, i.kind
        )));
    }
    i.source
        .db
        .clone()
        .ok_or_else(|| StepError::Input(format!("school {}: no source database recorded", i.code)))
}

/// The source moodledata folder (a path, or a `file://` URL).
fn source_files(i: &Instance) -> Result<PathBuf, StepError> {
    let l =
        i.source.files.as_ref().ok_or_else(|| {
            StepError::Input(format!("school {}: no source files recorded", i.code))
        })?;
    Ok(PathBuf::from(
        l.expose().strip_prefix("file://").unwrap_or(l.expose()),
    ))
}

fn target(i: &Instance) -> Result<Locator, StepError> {
    i.target
        .db
        .clone()
        .ok_or_else(|| StepError::Input(format!("school {}: no target allocated", i.code)))
}

/// The school's own database stage, `stage/<code>/dbmove/…` in the data store.
fn stage(ctx: &StepContext, code: &SchoolCode) -> Arc<dyn BlobStore> {
    Arc::new(Prefixed::new(ctx.blob.clone(), format!("stage/{code}/")))
}

/// Marks an import as complete, so that a rerun does not load it again.
fn imported_key(code: &SchoolCode) -> Result<a2a_core::BlobKey, StepError> {
    key(&format!("stage/{code}/imported.json"))
}

/// Loads the instance, refuses an `active` one, checks the source database and files can
/// be reached, starts the run (`running`) and allocates the target.
pub async fn preflight(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "preflight", code, || async {
        let i = load(ctx, code).await?;
        let src = source_db(&i)?;
        let files = source_files(&i)?;
        dns(&i)?;
        if i.status == Status::Active {
            return Err(StepError::Input(format!(
                "school {code} is already active; it is not moved again"
            )));
        }
        if !files.is_dir() {
            return Err(StepError::Input(format!(
                "school {code}: the source moodledata {} is not a folder",
                files.display()
            )));
        }
        let tables = Db::connect(&src, false)
            .await?
            .list_tables(&ctx.site.prefix)
            .await?;
        if tables.is_empty() {
            return Err(StepError::Input(format!(
                "school {code}: the source database has no table of prefix {:?}",
                ctx.site.prefix
            )));
        }
        start(ctx, code).await?;
        let db = allocate(ctx, code).await?;
        Ok(
            Done::new(json!({"tables": tables.len(), "target": db.redacted()}))
                .rows(tables.len() as u64),
        )
    })
    .await
}

/// Puts the source site in maintenance mode (its `climaintenance.html`).
pub async fn freeze(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "freeze", code, || async {
        let files = source_files(&load(ctx, code).await?)?;
        let changed = a2a_files::maintenance::enable(&files, FROZEN)
            .map_err(|e| StepError::Input(format!("{}: {e}", files.display())))?;
        Ok(Done::new(json!({"frozen": true, "changed": changed})))
    })
    .await
}

/// Lifts the source's maintenance mode.
fn thaw(i: &Instance) -> Result<bool, StepError> {
    let files = source_files(i)?;
    a2a_files::maintenance::disable(&files)
        .map_err(|e| StepError::Transient(format!("{}: {e}", files.display())))
}

/// Exports the source database into the school's stage; a complete stage is kept.
pub async fn export_database(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "export-database", code, || async {
        let i = load(ctx, code).await?;
        let stage = stage(ctx, code);
        if let Ok(index) = a2a_dbmove::mover::read_index(stage.as_ref()).await {
            return Ok(Done::new(
                json!({"tables": index.tables.len(), "kept": true}),
            ));
        }
        let src = Db::connect(&source_db(&i)?, false).await?;
        let r = a2a_dbmove::export(
            &src,
            stage.as_ref(),
            &ctx.site.prefix,
            CopyLimits::default(),
            1,
            &a2a_dbmove::NoProgress,
        )
        .await?;
        Ok(Done::new(json!({"tables": r.tables, "chunks": r.chunks}))
            .rows(r.rows)
            .bytes(r.bytes))
    })
    .await
}

/// Syncs the source moodledata into the site's files (a rerun copies only what changed).
pub async fn sync_files(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "sync-files", code, || async {
        let files = source_files(&load(ctx, code).await?)?;
        let options = a2a_files::SyncOptions {
            jobs: 8,
            list_target: false,
        };
        let r = a2a_files::sync(
            &files,
            ctx.blob.clone(),
            code,
            &options,
            &a2a_files::NoProgress,
        )
        .await?;
        if let Some(p) = r.problems.first() {
            return Err(StepError::Input(format!(
                "school {code}: {} source file(s) cannot be copied, e.g. {p:?}",
                r.problems.len()
            )));
        }
        Ok(Done::new(json!({"files": r.files, "copied": r.copied_files})).bytes(r.bytes))
    })
    .await
}

/// Creates the target database on its shard, unless it is there already.
pub async fn provision_target_database(
    ctx: &StepContext,
    code: &SchoolCode,
) -> Result<Value, StepError> {
    run(ctx, "provision-target-database", code, || async {
        let db = target(&load(ctx, code).await?)?;
        let created = if exists(&db).await {
            false
        } else {
            let shard = crate::common::shard_of(ctx, code, &db)
                .ok_or_else(|| StepError::Input(format!("{db} is on no configured shard")))?;
            a2a_dbmove::engine::scratch::create(&shard.db, &format!("a2a_{code}")).await?;
            true
        };
        Ok(Done::new(json!({"created": created})))
    })
    .await
}

/// Imports the stage into the target (resuming an interrupted import); `running` →
/// `migrated`. A finished import is marked in the stage, and a rerun keeps it.
pub async fn import_database(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "import-database", code, || async {
        let i = load(ctx, code).await?;
        let mark = imported_key(code)?;
        let done = if let Some(v) = get_json::<Value>(ctx, &mark).await? {
            Done::new(json!({"kept": true, "import": v}))
        } else {
            let dst = Db::connect(&target(&i)?, true).await?;
            let options = ImportOptions {
                replace: false,
                max_chunks: None,
                jobs: 1,
            };
            let r = a2a_dbmove::import(
                &dst,
                stage(ctx, code).as_ref(),
                &options,
                &a2a_dbmove::NoProgress,
            )
            .await?;
            if !r.complete {
                return Err(StepError::Transient(format!(
                    "school {code}: the import stopped before the end; run it again"
                )));
            }
            put_json(ctx, &mark, &r).await?;
            Done::new(json!({"tables": r.tables, "chunks": r.chunks})).rows(r.rows)
        };
        update(ctx, code, Some(Status::Migrated), |_| {}).await?;
        Ok(done)
    })
    .await
}

/// Checks one part of the copy against the source: `database` (row counts and
/// checksums, table by table) or `files` (the manifest, every key and size). Run as a Map
/// over both parts, before the configuration is rewritten (the rewrite changes content on
/// purpose, so checksums after it could not match the source).
pub async fn verify(ctx: &StepContext, code: &SchoolCode, part: &str) -> Result<Value, StepError> {
    let step = format!("verify-{part}");
    run(ctx, &step, code, || async {
        let i = load(ctx, code).await?;
        match part {
            "database" => {
                let a = Db::connect(&source_db(&i)?, false).await?;
                let b = Db::connect(&target(&i)?, false).await?;
                let r =
                    a2a_dbmove::verify(&a, &b, &ctx.site.prefix, &a2a_dbmove::NoProgress).await?;
                if let Some(t) = r.differing().next() {
                    return Err(StepError::Verify(format!(
                        "school {code}: table {} differs ({})",
                        t.table,
                        t.difference.as_deref().unwrap_or("checksums differ")
                    )));
                }
                let rows = r.tables.iter().filter_map(|t| t.target_rows).sum();
                Ok(Done::new(json!({"part": part, "tables": r.tables.len()})).rows(rows))
            }
            "files" => {
                let files = source_files(&i)?;
                let r = a2a_files::verify(
                    &files,
                    ctx.blob.clone(),
                    code,
                    &a2a_files::VerifyOptions::default(),
                    &a2a_files::NoProgress,
                )
                .await?;
                if !r.equal {
                    return Err(StepError::Verify(format!(
                        "school {code}: files differ: {} missing, {} extra, {} different",
                        r.missing.len(),
                        r.extra.len(),
                        r.different.len()
                    )));
                }
                Ok(Done::new(json!({"part": part, "files": r.compared})).rows(r.compared))
            }
            other => Err(StepError::Input(format!(
                "verify part {other:?}: use \"database\" or \"files\""
            ))),
        }
    })
    .await
}

/// Rewrites the old address to the new one in the target's content, through the data
/// plane's Moodle-style search-and-replace; `migrated` → `verified` (the Map of checks
/// before it passed, or the run would have been caught).
pub async fn rewrite_config(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "rewrite-config", code, || async {
        let i = load(ctx, code).await?;
        let dns = dns(&i)?;
        let (old, new) = (ctx.site.old_wwwroot(&dns), ctx.site.wwwroot(&dns));
        let rows = if old == new {
            0
        } else {
            let db = Db::connect(&target(&i)?, false).await?;
            a2a_dbmove::site::replace_text(&db, &ctx.site.prefix, &old, &new)
                .await?
                .rows
        };
        update(ctx, code, Some(Status::Verified), |_| {}).await?;
        Ok(Done::new(json!({"wwwroot": new, "replaced": rows})).rows(rows))
    })
    .await
}

/// Points the site's address at the target: the route record.
pub async fn switch_route(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "switch-route", code, || async {
        let i = load(ctx, code).await?;
        let wwwroot = write_route(ctx, &i).await?;
        Ok(Done::new(json!({"wwwroot": wwwroot})))
    })
    .await
}

/// Lifts maintenance mode; `verified` → `active`.
pub async fn unfreeze(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "unfreeze", code, || async {
        let i = load(ctx, code).await?;
        let changed = thaw(&i)?;
        update(ctx, code, Some(Status::Active), |_| {}).await?;
        Ok(Done::new(json!({"frozen": false, "changed": changed})))
    })
    .await
}

/// The catch of `migrate-instance`: unfreezes the source (which was only ever read),
/// removes the route if it points here, abandons the target (its database dropped when it
/// can be reached, its import mark and allocation removed, an
/// `abandoned/<code>/<attempt>.json` record kept), deletes the stage, records the error and marks the
/// instance `failed`. An `active` site is left alone.
pub async fn rollback(
    ctx: &StepContext,
    code: &SchoolCode,
    error: &str,
) -> Result<Value, StepError> {
    run(ctx, "rollback", code, || async {
        let Some(i) = ctx.store.get(code).await? else {
            return Ok(Done::new(json!({"rolled_back": false})));
        };
        if i.status == Status::Active || i.kind != InstanceKind::Migrate {
            return Ok(Done::new(json!({"rolled_back": false})));
        }
        if i.source.files.is_some() {
            thaw(&i)?;
        }
        delete_route(ctx, &i).await?;
        // The stage goes too: the source is live again, so a retry exports afresh.
        delete_prefix(ctx, &format!("stage/{code}/")).await?;
        if let Some(db) = &i.target.db {
            let left = release_target(ctx, &i).await?;
            let record = json!({
                "school_code": code.as_str(),
                "attempt": i.attempt,
                "target": db.redacted(),
                "dropped": left.is_none(),
                "drop_error": left,
                "error": error,
            });
            put_json(
                ctx,
                &key(&format!("abandoned/{code}/{}.json", i.attempt))?,
                &record,
            )
            .await?;
        }
        mark_failed(ctx, code, error).await?;
        Ok(Done::new(json!({"rolled_back": true})))
    })
    .await
}

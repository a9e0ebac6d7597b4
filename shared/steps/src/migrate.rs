//! The steps of `migrate-instance`: an existing site moved to its target shard.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use a2a_core::{BlobKey, BlobStore, Instance, InstanceKind, Locator, SchoolCode, Status};
use a2a_dbmove::site::{MAINTENANCE_SETTING, config_value, set_config_value};
use a2a_dbmove::{Budget, CopyLimits, Db};
use a2a_files::layout;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::{
    Done, allocate, dns, get_json, load, put_json, refuse_duplicate, rewrite, run, start, target,
    undo_target_side, update, write_route,
};
use crate::{Prefixed, StepContext, StepError};

/// The school's source database, as recorded. A password that intake moved to the secret
/// store (or that the list named there, `secret:NAME`) is filled in from it now, so that
/// neither the state nor a log ever holds it.
async fn source_db(ctx: &StepContext, i: &Instance) -> Result<Locator, StepError> {
    if i.kind != InstanceKind::Migrate {
        return Err(StepError::Input(format!(
            "school {} is a {} instance, not a migration",
            i.code, i.kind
        )));
    }
    let db = i.source.db.clone().ok_or_else(|| {
        StepError::Input(format!("school {}: no source database recorded", i.code))
    })?;
    let (Some(name), Some((user, _))) = (db.secret_ref(), db.credentials()) else {
        return Ok(db);
    };
    let secret_name = a2a_core::SecretName::parse(&name)?;
    let password = ctx.secrets.get(&secret_name).await?.ok_or_else(|| {
        StepError::Input(format!(
            "school {}: the secret {name} that holds its source database's password is not \
             in the secret store; store it there, or take its list in again",
            i.code
        ))
    })?;
    Ok(db
        .without_password()
        .with_credentials(&user, password.expose()))
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

/// The school's own database stage, `stage/<code>/dbmove/…` in the data store.
fn stage(ctx: &StepContext, code: &SchoolCode) -> Arc<dyn BlobStore> {
    Arc::new(Prefixed::new(ctx.blob.clone(), layout::stage_root(code)))
}

/// A migration instance that `execution` may run: not `active`, and not under way in
/// another execution ([`refuse_duplicate`]).
fn movable(i: &Instance, execution: Option<&str>) -> Result<(), StepError> {
    if i.kind != InstanceKind::Migrate {
        return Err(StepError::Input(format!(
            "school {} is a {} instance, not a migration",
            i.code, i.kind
        )));
    }
    refuse_duplicate(i, execution)
}

/// The source side of the preflight: loads the instance, refuses a duplicate run (an
/// `active` school, or one another execution works on: [`refuse_duplicate`]), and
/// checks that the source database (with tables of the prefix) and the source moodledata
/// folder can be reached. Changes nothing.
pub async fn check_source(
    ctx: &StepContext,
    code: &SchoolCode,
    execution: Option<&str>,
) -> Result<Value, StepError> {
    run(ctx, "check-source", code, || async {
        let i = load(ctx, code).await?;
        movable(&i, execution)?;
        let src = source_db(ctx, &i).await?;
        let files = source_files(&i)?;
        dns(&i)?;
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
        Ok(Done::new(json!({"tables": tables.len()})).rows(tables.len() as u64))
    })
    .await
}

/// The target side of the preflight, after [`check_source`]: refuses a duplicate run,
/// starts the run (`running`, claimed by `execution`: [`start`]) and allocates the
/// target. Opens no source.
pub async fn preflight(
    ctx: &StepContext,
    code: &SchoolCode,
    execution: Option<&str>,
) -> Result<Value, StepError> {
    run(ctx, "preflight", code, || async {
        let i = load(ctx, code).await?;
        movable(&i, execution)?;
        dns(&i)?;
        start(ctx, code, execution).await?;
        let db = allocate(ctx, code).await?;
        Ok(Done::new(json!({"target": db.redacted()})))
    })
    .await
}

/// What the source's maintenance mode was before the freeze, both halves, kept in
/// `frozen/<code>.json` (and its own page, when it had one, in
/// `frozen/<code>/climaintenance.html`) until a rollback puts them back or the source is
/// retired.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Frozen {
    /// `maintenance_enabled` in the source's config table; `None`: no row.
    maintenance_enabled: Option<String>,
    /// Whether the source had its own `climaintenance.html` (its bytes are then kept at
    /// [`layout::frozen_page_key`]); `None`: a record written before this was kept, taken
    /// as "no page".
    #[serde(default)]
    page_before: Option<bool>,
    /// That page's permission bits.
    #[serde(default)]
    page_mode: Option<u32>,
}

/// The maintenance page of a site moving to `wwwroot`: it names the new address, and
/// stays up on the source after the switch, until the source is retired.
fn moving_page(wwwroot: &str) -> String {
    format!("This site is moving to {wwwroot} and will be available there shortly.")
}

/// The lock of `code`'s source in this process: [`freeze`] and [`restore_source`] hold it
/// while they change the source, so that a restore never runs beside a late freeze (one
/// whose execution was stopped while it ran, which its worker learns only at its next
/// heartbeat), and a freeze that gets it after a restore began refuses to run. It guards
/// the steps of one worker process (the local engine's, or one `a2a worker`); two
/// workers serving one school's source steps at once are not guarded.
fn source_lock(code: &SchoolCode) -> Arc<tokio::sync::Mutex<()>> {
    type Locks = Mutex<HashMap<SchoolCode, Arc<tokio::sync::Mutex<()>>>>;
    static LOCKS: LazyLock<Locks> = LazyLock::new(Locks::default);
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    locks.entry(code.clone()).or_default().clone()
}

/// Puts the source site in Moodle's maintenance mode, both halves: `maintenance_enabled`
/// = `1` in its config table and `climaintenance.html` in its moodledata, naming the new
/// address. What was there before (the setting, and the site's own page byte for byte)
/// is remembered first, once, so that a rerun never takes its own freeze for it and a
/// rollback puts the source back exactly.
pub async fn freeze(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "freeze", code, || async {
        let lock = source_lock(code);
        let _held = lock.lock().await;
        // A freeze that came late (its execution was stopped while it waited) leaves the
        // source alone once its rollback has begun.
        crate::journal::refuse_if_undoing_now(ctx, code).await?;
        let i = load(ctx, code).await?;
        let files = source_files(&i)?;
        let wwwroot = ctx.site.wwwroot(&dns(&i)?);
        let src = Db::connect(&source_db(ctx, &i).await?, false).await?;
        let k = layout::frozen_key(code);
        let before = match get_json::<Frozen>(ctx, &k).await? {
            Some(f) => f,
            None => {
                let page = a2a_files::maintenance::read(&files)
                    .map_err(|e| StepError::Transient(format!("{}: {e}", files.display())))?;
                if let Some((bytes, _)) = &page {
                    ctx.blob
                        .put(&layout::frozen_page_key(code), bytes.clone().into())
                        .await?;
                }
                // The record last: a record found means its page is kept too.
                let f = Frozen {
                    maintenance_enabled: config_value(&src, &ctx.site.prefix, MAINTENANCE_SETTING)
                        .await?,
                    page_before: Some(page.is_some()),
                    page_mode: page.map(|p| p.1),
                };
                put_json(ctx, &k, &f).await?;
                f
            }
        };
        let set = set_config_value(&src, &ctx.site.prefix, MAINTENANCE_SETTING, Some("1")).await?;
        let page = a2a_files::maintenance::enable(&files, &moving_page(&wwwroot))
            .map_err(|e| StepError::Input(format!("{}: {e}", files.display())))?;
        Ok(Done::new(json!({
            "frozen": true,
            "changed": set || page,
            "maintenance_enabled_before": before.maintenance_enabled,
            "page_before": before.page_before,
        })))
    })
    .await
}

/// Puts the source's maintenance setting back to its value before the freeze, when one is
/// remembered. The memory is kept: [`restore_source`] forgets it once the page is back too.
async fn restore_setting(ctx: &StepContext, i: &Instance) -> Result<bool, StepError> {
    let Some(before) = get_json::<Frozen>(ctx, &layout::frozen_key(&i.code)).await? else {
        return Ok(false);
    };
    let src = Db::connect(&source_db(ctx, i).await?, false).await?;
    Ok(set_config_value(
        &src,
        &ctx.site.prefix,
        MAINTENANCE_SETTING,
        before.maintenance_enabled.as_deref(),
    )
    .await?)
}

/// Puts the source's page back as it was before the freeze: its own page byte for byte
/// (with its permission bits), or none. With no memory of the freeze (a rerun after it
/// was forgotten), the page is left as it is.
async fn restore_page(ctx: &StepContext, i: &Instance) -> Result<bool, StepError> {
    let Some(before) = get_json::<Frozen>(ctx, &layout::frozen_key(&i.code)).await? else {
        return Ok(false);
    };
    let files = source_files(i)?;
    let io = |e: std::io::Error| StepError::Transient(format!("{}: {e}", files.display()));
    if before.page_before != Some(true) {
        return a2a_files::maintenance::disable(&files).map_err(io);
    }
    let k = layout::frozen_page_key(&i.code);
    let bytes = match ctx.blob.get(&k).await {
        Ok(b) => b,
        Err(a2a_core::PortError::NotFound(_)) => {
            return Err(StepError::Verify(format!(
                "school {}: the source's own maintenance page from before the freeze is not \
                 kept ({k}), though {} says it had one; put its climaintenance.html back by \
                 hand, then delete {}",
                i.code,
                layout::frozen_key(&i.code),
                layout::frozen_key(&i.code)
            )));
        }
        Err(e) => return Err(e.into()),
    };
    a2a_files::maintenance::restore(&files, &bytes, before.page_mode.unwrap_or(0o644)).map_err(io)
}

/// Forgets what the source was before the freeze: its page's copy, then the record (last,
/// so that a record found always has its page).
async fn forget_frozen(ctx: &StepContext, code: &SchoolCode) -> Result<(), StepError> {
    forget(ctx.blob.as_ref(), code).await
}

/// [`forget_frozen`] on a data store.
async fn forget(blob: &dyn BlobStore, code: &SchoolCode) -> Result<(), StepError> {
    blob.delete(&layout::frozen_page_key(code)).await?;
    blob.delete(&layout::frozen_key(code)).await?;
    Ok(())
}

/// The database work of one part fits a Lambda run (900 s): no new chunk starts after
/// this long, which leaves time for the chunk (at most 8 MiB raw) or the keyless table
/// (see [`KEYLESS_MAX`]) under way, and for the step's own bookkeeping.
pub(crate) const PART_TIME: Duration = a2a_dbmove::plan::PART_TIME;
/// A table without a primary key cannot be cut into chunk ranges across runs, so it must
/// be exported within one run: a bigger one is refused when the export is planned.
const KEYLESS_MAX: u64 = 512 << 20;
/// Parts of an export or import, unless the input says otherwise (the Map's
/// `MaxConcurrency` in `migrate-instance.asl.json` matches it).
const PARTS: usize = a2a_dbmove::plan::PARTS;
/// A check of one part (a verify) gives up after this long, naming the table it was in.
pub(crate) const CHECK_TIME: Duration = Duration::from_secs(840);
/// A file sync stops after this long and reports itself incomplete; the workflow runs
/// it again, and the rerun copies only what is missing.
pub(crate) const SYNC_TIME: Duration = Duration::from_secs(780);

/// The parts of a database, by table, as planned once per export or import.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    /// The export they belong to: a plan of another export is never used.
    export_id: String,
    /// The tables of each part.
    parts: Vec<Vec<String>>,
}

impl Plan {
    /// `kept`, a plan of export `export_id` stored at `key` before; or else a new one of
    /// `parts` groups, balanced by the table weights that `weights` reads, stored there.
    async fn keep_or_make(
        ctx: &StepContext,
        key: &BlobKey,
        kept: Option<Plan>,
        export_id: &str,
        parts: Option<usize>,
        weights: impl AsyncFnOnce() -> Result<Vec<(String, u64)>, StepError>,
    ) -> Result<Plan, StepError> {
        if let Some(plan) = kept.filter(|p| p.export_id == export_id) {
            return Ok(plan);
        }
        let plan = Plan {
            export_id: export_id.to_owned(),
            parts: a2a_dbmove::plan::balance(&weights().await?, parts.unwrap_or(PARTS)),
        };
        put_json(ctx, key, &plan).await?;
        Ok(plan)
    }
}

/// The numbers of a plan's parts: what the workflow's Map goes over.
fn part_numbers(plan: &Plan) -> Vec<usize> {
    (0..plan.parts.len()).collect()
}

/// The tables of part `part` of the plan `what`.
async fn part_tables(
    ctx: &StepContext,
    code: &SchoolCode,
    what: &str,
    part: usize,
) -> Result<(Plan, Vec<String>), StepError> {
    let plan: Plan = get_json(ctx, &layout::plan_key(code, what)?)
        .await?
        .ok_or_else(|| {
            StepError::Input(format!(
                "school {code}: no {what} plan in the stage; plan the {what} first"
            ))
        })?;
    let tables = plan.parts.get(part).cloned().ok_or_else(|| {
        StepError::Input(format!(
            "school {code}: the {what} plan has {} part(s), not a part {part}",
            plan.parts.len()
        ))
    })?;
    Ok((plan, tables))
}

/// How a part runs: the step input may narrow its budget and chunks (tests do).
#[derive(Debug, Clone, Copy, Default)]
pub struct PartInput {
    /// The part's number in its plan.
    pub part: usize,
    /// At most this many chunks in this run.
    pub max_chunks: Option<u64>,
    /// Rows in a chunk (the default is the data plane's).
    pub chunk_rows: Option<usize>,
    /// Seconds this run may take, if fewer than [`PART_TIME`]'s.
    pub seconds: Option<u64>,
}

impl PartInput {
    fn budget(&self) -> Budget {
        let time = self
            .seconds
            .map_or(PART_TIME, |s| Duration::from_secs(s).min(PART_TIME));
        Budget::new(self.max_chunks, Some(time))
    }

    fn limits(&self) -> CopyLimits {
        let d = CopyLimits::default();
        CopyLimits {
            chunk_rows: self.chunk_rows.unwrap_or(d.chunk_rows).max(1),
            ..d
        }
    }
}

/// Plans the export: begins it in the school's stage (or finds it under way) and splits
/// the source's tables into `parts` groups of about equal size on disk. A table without a
/// primary key bigger than [`KEYLESS_MAX`] is refused here, by name: it could only be
/// exported whole, and one Lambda run cannot be counted on for it. A sealed export, or a
/// plan of the export under way, is kept. Returns the part numbers for the Map.
pub async fn plan_export(
    ctx: &StepContext,
    code: &SchoolCode,
    parts: Option<usize>,
) -> Result<Value, StepError> {
    run(ctx, "plan-export", code, || async {
        let i = load(ctx, code).await?;
        let stage = stage(ctx, code);
        let k = layout::plan_key(code, "export")?;
        let old = get_json::<Plan>(ctx, &k).await?;
        if let Ok(index) = a2a_dbmove::mover::read_index(stage.as_ref()).await
            && let Some(plan) = old.as_ref().filter(|p| p.export_id == index.export_id)
        {
            return Ok(Done::new(
                json!({"parts": part_numbers(plan), "tables": index.tables.len(), "kept": true}),
            ));
        }
        let src = Db::connect(&source_db(ctx, &i).await?, false).await?;
        // The tables and their sizes, as `begin_export` staged them for the import.
        let (index, staged) =
            a2a_dbmove::begin_export(&src, stage.as_ref(), &ctx.site.prefix).await?;
        let sizes = staged.sizes;
        let size = |name: &str| sizes.iter().find(|s| s.0 == name).map(|s| s.1).unwrap_or(0);
        refuse_big_keyless(code, &staged.tables, size, KEYLESS_MAX)?;
        let weights = async || Ok(a2a_dbmove::plan::weights(&index.tables, &sizes));
        let plan = Plan::keep_or_make(ctx, &k, old, &index.export_id, parts, weights).await?;
        Ok(Done::new(json!({
            "parts": part_numbers(&plan),
            "tables": index.tables.len(),
            "bytes": sizes.iter().map(|s| s.1).sum::<u64>(),
        }))
        .rows(index.tables.len() as u64))
    })
    .await
}

/// The first table without a primary key that takes more than `max` bytes, as the input
/// error that names it, its size and what to do.
fn refuse_big_keyless(
    code: &SchoolCode,
    tables: &[a2a_dbmove::schema::Table],
    size: impl Fn(&str) -> u64,
    max: u64,
) -> Result<(), StepError> {
    match tables
        .iter()
        .find(|t| t.primary_key.is_empty() && size(&t.name) > max)
    {
        Some(t) => Err(StepError::Input(format!(
            "school {code}: table {} has no primary key and takes {} MiB (more than {} MiB): \
             it cannot be exported in pieces, and one Lambda run (15 minutes) cannot be \
             counted on for it whole; give it a primary key, or move this site with \
             `a2a db copy`",
            t.name,
            size(&t.name) >> 20,
            max >> 20
        ))),
        None => Ok(()),
    }
}

/// Exports one part of the planned export into the school's stage, within one run's
/// budget: `complete: false` means "run this part again", and the rerun goes on after
/// the last staged key (a table is cut into chunk ranges across runs). A sealed export
/// is kept.
pub async fn export_database(
    ctx: &StepContext,
    code: &SchoolCode,
    input: PartInput,
) -> Result<Value, StepError> {
    run(ctx, "export-database", code, || async {
        let part = input.part;
        let i = load(ctx, code).await?;
        let stage = stage(ctx, code);
        if a2a_dbmove::mover::read_index(stage.as_ref()).await.is_ok() {
            return Ok(Done::new(
                json!({"part": part, "complete": true, "kept": true}),
            ));
        }
        let (_, tables) = part_tables(ctx, code, "export", part).await?;
        let src = Db::connect(&source_db(ctx, &i).await?, false).await?;
        let r = a2a_dbmove::export_part(
            &src,
            stage.as_ref(),
            &ctx.site.prefix,
            Some(&tables),
            input.limits(),
            &input.budget(),
            &a2a_dbmove::NoProgress,
        )
        .await?;
        Ok(Done::new(json!({
            "part": part,
            "complete": r.complete,
            "tables": r.tables,
            "chunks": r.chunks,
        }))
        .rows(r.rows)
        .bytes(r.bytes))
    })
    .await
}

/// Seals the export once every part is staged: the stage is then a complete export. A
/// table not staged whole is a permanent error naming it.
pub async fn seal_export(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "seal-export", code, || async {
        // Loaded first, so that an unknown school is named, not a missing stage.
        load(ctx, code).await?;
        let index = a2a_dbmove::seal_export(stage(ctx, code).as_ref()).await?;
        Ok(Done::new(json!({"tables": index.tables.len(), "rows": index.rows})).rows(index.rows))
    })
    .await
}

/// Syncs the source moodledata into the site's files (a rerun copies only what changed).
/// A sync that would outlast one Lambda run stops after `time` (by default
/// [`SYNC_TIME`]) with `complete: false`, and the workflow runs it again.
pub async fn sync_files(
    ctx: &StepContext,
    code: &SchoolCode,
    time: Option<Duration>,
) -> Result<Value, StepError> {
    let sync_time = time.unwrap_or(SYNC_TIME);
    run(ctx, "sync-files", code, || async {
        let i = load(ctx, code).await?;
        let files = source_files(&i)?;
        // A retry lists the target rather than trust an earlier attempt's manifest: what
        // happened to the copy since (a rollback, a lost object) is then seen. The sync
        // deletes the keys of files the source no longer has.
        let options = a2a_files::SyncOptions {
            jobs: 8,
            list_target: i.attempt > 1,
        };
        let sync = a2a_files::sync(
            &files,
            ctx.blob.clone(),
            code,
            &options,
            &a2a_files::NoProgress,
        );
        // Cut short, the sync is resumable: the workflow runs this step again.
        let Ok(r) = tokio::time::timeout(sync_time, sync).await else {
            return Ok(Done::new(json!({"complete": false})));
        };
        let r = r?;
        if let Some(p) = r.problems.first() {
            return Err(StepError::Input(format!(
                "school {code}: {} source file(s) cannot be copied, e.g. {p:?}",
                r.problems.len()
            )));
        }
        Ok(
            Done::new(json!({"complete": true, "files": r.files, "copied": r.copied_files}))
                .bytes(r.bytes),
        )
    })
    .await
}

/// Creates the target database on its shard, unless the shard's server says it is there
/// already. A server that cannot be reached or refuses the login is an error (retried as
/// transient), never taken for "absent": a `CREATE DATABASE` is only ever sent for a
/// database the server has just said it does not have.
pub async fn provision_target_database(
    ctx: &StepContext,
    code: &SchoolCode,
) -> Result<Value, StepError> {
    run(ctx, "provision-target-database", code, || async {
        let db = target(ctx, &load(ctx, code).await?)?;
        let mut created = !crate::common::target_exists(ctx, code, &db).await?;
        if created {
            let shard = crate::common::shard_for(ctx, code, &db)?;
            if let Err(e) = a2a_dbmove::target::create(&shard.db, code).await {
                // A create cut short by a kill may still finish on the server after the
                // check above (PostgreSQL then refuses a second one as a duplicate key):
                // the school's database being there now is the same as finding it.
                if !crate::common::target_exists(ctx, code, &db).await? {
                    return Err(e.into());
                }
                tracing::warn!(school_code = %code, "the target database appeared while it was being created: kept");
                created = false;
            }
        }
        Ok(Done::new(json!({"created": created})))
    })
    .await
}

/// Plans the import, which follows the export under way: takes the export plan's parts
/// (import part `n` loads the tables that export part `n` stages) and makes the target
/// ready (refused if it holds the prefix's tables and no import under way; the ledger
/// and the tables loaded alone created, from the tables the export staged when it began;
/// the import parts create the small ones). Needs the
/// target provisioned and the export planned, not sealed. A finished import, or a plan of
/// this export, is kept. Returns the part numbers for the Map.
pub async fn plan_import(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "plan-import", code, || async {
        let i = load(ctx, code).await?;
        let stage = stage(ctx, code);
        let k = layout::plan_key(code, "import")?;
        let index = a2a_dbmove::mover::followed_export(stage.as_ref()).await?;
        let old = get_json::<Plan>(ctx, &k)
            .await?
            .filter(|p| p.export_id == index.export_id);
        if get_json::<Value>(ctx, &layout::imported_key(code))
            .await?
            .is_some()
            && let Some(plan) = &old
        {
            return Ok(Done::new(
                json!({"parts": part_numbers(plan), "kept": true}),
            ));
        }
        let plan = match old {
            Some(plan) => plan,
            None => {
                let plan: Plan = get_json(ctx, &layout::plan_key(code, "export")?)
                    .await?
                    .ok_or_else(|| {
                        StepError::Input(format!(
                            "school {code}: no export plan in the stage; plan the export first"
                        ))
                    })?;
                if plan.export_id != index.export_id {
                    return Err(StepError::Input(format!(
                        "school {code}: the export plan is of export {}, not of the export \
                         {} in the stage; plan the export again",
                        plan.export_id, index.export_id
                    )));
                }
                put_json(ctx, &k, &plan).await?;
                plan
            }
        };
        let dst = Db::connect(&target(ctx, &i)?, true).await?;
        let begun = a2a_dbmove::begin_import_following(&dst, stage.as_ref(), false).await?;
        Ok(Done::new(json!({
            "parts": part_numbers(&plan),
            "tables": index.tables.len(),
            "resumed": begun.resumed,
        })))
    })
    .await
}

/// Imports one part of the planned import into the target while its export part runs,
/// within one run's budget: creates its small tables with their indexes (on a connection
/// of their own, while the big ones load), loads each
/// table's chunks as its manifest lists them (indexing it once whole), and waits for the
/// others. `complete: false` means "run this part again" (time ran out, or
/// the chunks of the budget), and the rerun skips the chunks the target's ledger holds. A
/// finished import is kept.
pub async fn import_database(
    ctx: &StepContext,
    code: &SchoolCode,
    input: PartInput,
) -> Result<Value, StepError> {
    run(ctx, "import-database", code, || async {
        let part = input.part;
        let i = load(ctx, code).await?;
        if get_json::<Value>(ctx, &layout::imported_key(code))
            .await?
            .is_some()
        {
            return Ok(Done::new(
                json!({"part": part, "complete": true, "kept": true}),
            ));
        }
        let (_, tables) = part_tables(ctx, code, "import", part).await?;
        let dst = Db::connect(&target(ctx, &i)?, false).await?;
        let r = a2a_dbmove::import_part_from(
            a2a_dbmove::ImportFrom::Following,
            &dst,
            stage(ctx, code).as_ref(),
            Some(&tables),
            1,
            &input.budget(),
            &a2a_dbmove::NoProgress,
        )
        .await?;
        Ok(Done::new(json!({
            "part": part,
            "complete": r.complete,
            "chunks": r.chunks,
            "skipped": r.chunks_skipped,
        }))
        .rows(r.rows))
    })
    .await
}

/// Ends the import once every part is in: marks it finished in the stage, drops the
/// target's ledger, and moves `running` → `migrated`. Returns the checks that Verify
/// maps over: `files`, and `database:<n>` for each part of the import plan. A finished
/// import is kept.
pub async fn finish_import(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "finish-import", code, || async {
        let i = load(ctx, code).await?;
        let stage = stage(ctx, code);
        let mark = layout::imported_key(code);
        let dst = Db::connect(&target(ctx, &i)?, false).await?;
        let kept = get_json::<Value>(ctx, &mark).await?.is_some();
        let mut rows = 0;
        if !kept {
            let index = a2a_dbmove::check_import(&dst, stage.as_ref()).await?;
            rows = index.rows;
            // Marked before the ledger goes: a rerun then knows the import is whole.
            put_json(
                ctx,
                &mark,
                &json!({"tables": index.tables.len(), "rows": index.rows}),
            )
            .await?;
        }
        dst.drop_table(a2a_dbmove::LEDGER_TABLE).await?;
        update(ctx, code, Some(Status::Migrated), |_| {}).await?;
        let plan = get_json::<Plan>(ctx, &layout::plan_key(code, "import")?).await?;
        let mut checks: Vec<String> = match &plan {
            Some(p) => (0..p.parts.len())
                .map(|n| format!("database:{n}"))
                .collect(),
            None => vec!["database".into()],
        };
        checks.push("files".into());
        Ok(Done::new(json!({"kept": kept, "checks": checks})).rows(rows))
    })
    .await
}

/// Remembers the table a long run is in, to name it if the run is cut short.
#[derive(Default)]
struct Current(Mutex<String>);

impl a2a_dbmove::Progress for Current {
    fn table(&self, _what: &str, table: &str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = table.to_owned();
    }
}

impl Current {
    fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `check` of `code`, given up after `limit` with the permanent error that names the table
/// it was in (`current`) and the command that checks a site of any size.
async fn within<T>(
    limit: Duration,
    code: &SchoolCode,
    current: &Current,
    check: impl std::future::Future<Output = T>,
) -> Result<T, StepError> {
    tokio::time::timeout(limit, check).await.map_err(|_| {
        StepError::Permanent(format!(
            "school {code}: checking table {} did not end within {} s, too long for one \
             Lambda run; check this site with `a2a db verify`",
            current.get(),
            limit.as_secs()
        ))
    })
}

/// A verify part: `database` (every table), `database:<n>` (the tables of import part
/// `n`) or `files`; the name of its record in the stage (`database`, `database-<n>`,
/// `files`) and its step name in the history.
enum Part {
    Database(Option<usize>),
    Files,
}

impl Part {
    fn parse(part: &str) -> Result<Part, StepError> {
        let bad = || {
            StepError::Input(format!(
                "verify part {part:?}: use \"database\", \"database:<n>\" or \"files\""
            ))
        };
        match part {
            "files" => Ok(Part::Files),
            "database" => Ok(Part::Database(None)),
            p => p
                .strip_prefix("database:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(|n| Part::Database(Some(n)))
                .ok_or_else(bad),
        }
    }

    fn record(&self) -> String {
        match self {
            Part::Database(None) => "database".into(),
            Part::Database(Some(n)) => format!("database-{n}"),
            Part::Files => "files".into(),
        }
    }

    fn step(&self, side: &str) -> String {
        match self {
            Part::Database(_) => format!("verify{side}-database"),
            Part::Files => format!("verify{side}-files"),
        }
    }
}

/// The tables a database part checks: the import plan's part, or every one.
async fn only_tables(
    ctx: &StepContext,
    code: &SchoolCode,
    part: &Part,
) -> Result<Option<Vec<String>>, StepError> {
    match part {
        Part::Database(Some(n)) => Ok(Some(part_tables(ctx, code, "import", *n).await?.1)),
        _ => Ok(None),
    }
}

/// The source side of one verify part: sums the source's tables of a `database` part
/// (row counts and checksums, read from the source database itself), or hashes the source
/// moodledata for `files` (every key, size and checksum: SHA-1 for `filedir`, which must
/// be the name, SHA-256 for the rest; streamed, within [`CHECK_TIME`]), and writes what it
/// found to the stage (`stage/<code>/source/<part>.json`) for [`verify`] to compare. Run before each
/// [`verify`] of the same part, while the source is still frozen.
pub async fn verify_source(
    ctx: &StepContext,
    code: &SchoolCode,
    part: &str,
) -> Result<Value, StepError> {
    let which = Part::parse(part)?;
    run(ctx, &which.step("-source"), code, || async {
        let i = load(ctx, code).await?;
        let key = layout::source_check_key(code, &which.record())?;
        match &which {
            Part::Database(_) => {
                let only = only_tables(ctx, code, &which).await?;
                let src = Db::connect(&source_db(ctx, &i).await?, false).await?;
                let tables = src.introspect(&ctx.site.prefix).await?;
                let current = Current::default();
                let sums = async {
                    let mut sums = Vec::new();
                    for t in &tables {
                        if only.as_ref().is_some_and(|o| !o.contains(&t.name)) {
                            continue;
                        }
                        a2a_dbmove::Progress::table(&current, "verify", &t.name);
                        sums.push(crate::checks::table_sum(&src, t).await?);
                    }
                    Ok::<_, a2a_dbmove::DbError>(sums)
                };
                let sums = within(CHECK_TIME, code, &current, sums).await??;
                let rows = sums.iter().map(|s| s.rows).sum();
                let found = crate::checks::SourceTables {
                    all: tables.iter().map(|t| t.name.clone()).collect(),
                    sums,
                };
                put_json(ctx, &key, &found).await?;
                Ok(Done::new(json!({"part": part, "tables": found.sums.len()})).rows(rows))
            }
            Part::Files => {
                let files = source_files(&i)?;
                let hashing = a2a_files::sums::source_sums(&files, crate::checks::HASH_JOBS);
                let found = tokio::time::timeout(CHECK_TIME, hashing)
                    .await
                    .map_err(|_| {
                        StepError::Permanent(format!(
                            "school {code}: hashing the source moodledata did not end within \
                             {} s; check this site with `a2a files verify --rehash`",
                            CHECK_TIME.as_secs()
                        ))
                    })??;
                // The sync refused these already; one here appeared or broke since.
                if let Some(p) = found.problems.first() {
                    return Err(StepError::Verify(format!(
                        "school {code}: {} source file(s) cannot be checked, e.g. {}: {}",
                        found.problems.len(),
                        p.path,
                        p.what
                    )));
                }
                let list = found.files;
                let bytes = list.values().map(|f| f.size).sum();
                put_json(ctx, &key, &list).await?;
                Ok(Done::new(json!({"part": part, "files": list.len()}))
                    .rows(list.len() as u64)
                    .bytes(bytes))
            }
        }
    })
    .await
}

/// The target side of one verify part, after [`verify_source`]: compares the source's
/// sums (from the stage) with the target database's, table by table, or the source's
/// file hashes with the copy's keys, sizes and stored checksums (read with the store's
/// `head_sum`: S3's `HeadObject` in checksum mode, no download; the folder store
/// rehashes), and the copy's manifest is there. Opens no source. Run as a Map over the
/// parts, before the configuration is rewritten (the rewrite changes content on purpose,
/// so checksums after it could not match).
pub async fn verify(ctx: &StepContext, code: &SchoolCode, part: &str) -> Result<Value, StepError> {
    let which = Part::parse(part)?;
    run(ctx, &which.step(""), code, || async {
        let i = load(ctx, code).await?;
        let key = layout::source_check_key(code, &which.record())?;
        let missing = || {
            StepError::Input(format!(
                "school {code}: the source side of verify part {part:?} wrote nothing to \
                 the stage ({key}); run VerifySource first"
            ))
        };
        match &which {
            Part::Database(_) => {
                let source: crate::checks::SourceTables =
                    get_json(ctx, &key).await?.ok_or_else(missing)?;
                let b = Db::connect(&target(ctx, &i)?, false).await?;
                let tables = b.introspect(&ctx.site.prefix).await?;
                if let Some(t) = source
                    .all
                    .iter()
                    .find(|t| !tables.iter().any(|x| &x.name == *t))
                {
                    return Err(StepError::Verify(format!(
                        "school {code}: table {t} is missing in the target"
                    )));
                }
                if let Some(t) = tables.iter().find(|t| !source.all.contains(&t.name)) {
                    return Err(StepError::Verify(format!(
                        "school {code}: table {} is in the target only",
                        t.name
                    )));
                }
                let current = Current::default();
                let check = async {
                    let mut rows = 0;
                    for s in &source.sums {
                        a2a_dbmove::Progress::table(&current, "verify", &s.table);
                        let Some(t) = tables.iter().find(|t| t.name == s.table) else {
                            return Err(StepError::Verify(format!(
                                "school {code}: table {} is missing in the target",
                                s.table
                            )));
                        };
                        let t = crate::checks::aligned(t, s).map_err(|why| {
                            StepError::Verify(format!("school {code}: table {}: {why}", s.table))
                        })?;
                        let mine = crate::checks::table_sum(&b, &t).await?;
                        if mine.rows != s.rows {
                            return Err(StepError::Verify(format!(
                                "school {code}: table {} differs (source {} rows, target {})",
                                s.table, s.rows, mine.rows
                            )));
                        }
                        if mine.checksum != s.checksum {
                            return Err(StepError::Verify(format!(
                                "school {code}: table {} differs (checksums differ; \
                                 `a2a db verify` names the first differing row)",
                                s.table
                            )));
                        }
                        rows += mine.rows;
                    }
                    Ok(rows)
                };
                let rows = within(CHECK_TIME, code, &current, check).await??;
                Ok(Done::new(json!({"part": part, "tables": source.sums.len()})).rows(rows))
            }
            Part::Files => {
                let source: crate::checks::FileList =
                    get_json(ctx, &key).await?.ok_or_else(missing)?;
                if ctx.blob.head(&layout::manifest_key(code)).await?.is_none() {
                    return Err(StepError::Verify(format!(
                        "school {code}: files differ: the copy has no manifest ({})",
                        layout::manifest_key(code)
                    )));
                }
                // The copy's own stored checksums against the source's hashes: never the
                // manifest, which the same sync wrote.
                let checking = a2a_files::sums::check_copy(
                    ctx.blob.clone(),
                    code,
                    &source,
                    crate::checks::HEAD_JOBS,
                );
                let found = tokio::time::timeout(CHECK_TIME, checking)
                    .await
                    .map_err(|_| {
                        StepError::Permanent(format!(
                            "school {code}: reading the copy's checksums did not end within \
                             {} s; check this site with `a2a files verify`",
                            CHECK_TIME.as_secs()
                        ))
                    })??;
                let n = crate::checks::compare_files(code, &found)?;
                Ok(Done::new(json!({"part": part, "files": n})).rows(n))
            }
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
        let db = Db::connect(&target(ctx, &i)?, false).await?;
        let rows = if old == new {
            0
        } else {
            rewrite(ctx, code, &db, &old, &new).await?
        };
        // The export was taken frozen: the target's maintenance setting goes back to the
        // source's own from before the freeze.
        // The memory is forgotten only by Unfreeze, after this step has set the target's
        // setting: a rerun then finds it set already. This side never reads the source.
        let before = match get_json::<Frozen>(ctx, &layout::frozen_key(code)).await? {
            Some(f) => {
                set_config_value(
                    &db,
                    &ctx.site.prefix,
                    MAINTENANCE_SETTING,
                    f.maintenance_enabled.as_deref(),
                )
                .await?;
                f.maintenance_enabled
            }
            None if matches!(i.status, Status::Verified | Status::Active) => {
                config_value(&db, &ctx.site.prefix, MAINTENANCE_SETTING).await?
            }
            None => {
                return Err(StepError::Input(format!(
                    "school {code}: the source's maintenance setting from before the freeze \
                     is not recorded ({}); unfreeze the source and run the migration again",
                    layout::frozen_key(code)
                )));
            }
        };
        update(ctx, code, Some(Status::Verified), |_| {}).await?;
        Ok(Done::new(json!({
            "wwwroot": new,
            "replaced": rows,
            "maintenance_enabled": before,
        }))
        .rows(rows))
    })
    .await
}

/// Points the site's address at the target (the route record); `verified` → `active`.
/// The source stays frozen: its maintenance page names the new address and its setting
/// stays on, so that nobody writes to the old site after its export; only a rollback
/// unfreezes it, and [`retire`] records, after a waiting period, that it may go.
pub async fn switch_route(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "switch-route", code, || async {
        let i = load(ctx, code).await?;
        let wwwroot = write_route(ctx, &i).await?;
        update(ctx, code, Some(Status::Active), |_| {}).await?;
        Ok(Done::new(json!({"wwwroot": wwwroot})))
    })
    .await
}

/// The source side of the catch of `migrate-instance`: puts the source back exactly as it
/// was before the freeze (it was otherwise only read): the site's own maintenance page
/// byte for byte, or none, and the setting. It always ends: what it could not do (a
/// source database out of reach keeps its setting, and the memory of the freeze, which
/// the next freeze keeps) is in its answer for [`rollback`] to act on. The memory is
/// forgotten only once both halves are back. An `active` site, or a school not
/// registered, is left alone.
pub async fn restore_source(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "restore-source", code, || async {
        // After a freeze still under way (its execution stopped, its worker not told
        // yet): what it remembers and changes is then all there to be put back.
        let lock = source_lock(code);
        let _held = lock.lock().await;
        let Some(i) = ctx.store.get(code).await? else {
            return Ok(Done::new(json!({"restored": false})));
        };
        if i.status == Status::Active || i.kind != InstanceKind::Migrate || i.source.files.is_none()
        {
            return Ok(Done::new(json!({"restored": false})));
        }
        // The page first: it needs no database, so a source database out of reach still
        // gets its own page back.
        let page = restore_page(ctx, &i)
            .await
            .err()
            .map(|e| format!("the source's maintenance page was not put back: {e}"));
        let setting = restore_setting(ctx, &i)
            .await
            .err()
            .map(|e| format!("the source's {MAINTENANCE_SETTING} setting was not put back: {e}"));
        let left: Vec<String> = page.into_iter().chain(setting).collect();
        if left.is_empty() {
            forget_frozen(ctx, code).await?;
        }
        let left = (!left.is_empty()).then(|| left.join("; "));
        Ok(Done::new(json!({
            "restored": left.is_none(),
            "maintenance_setting_error": left,
        })))
    })
    .await
}

/// The target side of the catch of `migrate-instance`, after [`restore_source`]: the
/// route, the stage, the copied files and the target database removed, in batches within
/// `time`, and the instance `rolled_back` with the error
/// ([`crate::common::undo_target_side`], which `Deprovision` shares). A source that
/// `restore_source` could not put back (`source_left`) is an error once the target side
/// is gone, so that reconciliation runs the cleanup again. Idempotent.
pub async fn rollback(
    ctx: &StepContext,
    code: &SchoolCode,
    error: &str,
    source_left: Option<String>,
    time: Option<Duration>,
) -> Result<Value, StepError> {
    let kind = InstanceKind::Migrate;
    undo_target_side(ctx, "rollback", kind, code, error, source_left, time).await
}

/// The history step of an operator's retirement of a migrated school's source.
pub const RETIRE_STEP: &str = "operator.retire";

/// What [`retire`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retired {
    /// When the school became active (its route was switched).
    pub active_since: chrono::DateTime<chrono::Utc>,
    /// Whether it was retired before (nothing done now).
    pub already: bool,
}

/// Records that the source of an `active` migration may be retired, once `wait` has
/// passed since its route was switched: the memory of the source from before the freeze
/// (`frozen/<code>.json` and its page's copy) is deleted, so that nothing can unfreeze
/// it any more, and the history gets an [`RETIRE_STEP`] event. It changes nothing on
/// the source, which stays frozen (its page names the new address) until someone takes
/// it down. Idempotent.
pub async fn retire(
    store: &dyn a2a_core::InstanceStore,
    blob: &dyn BlobStore,
    code: &SchoolCode,
    wait: chrono::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Retired, StepError> {
    let i = store
        .get(code)
        .await?
        .ok_or_else(|| StepError::Input(format!("school {code} is not registered")))?;
    if i.kind != InstanceKind::Migrate || i.status != Status::Active {
        return Err(StepError::Input(format!(
            "school {code} is a {} instance that is {}: only the source of an active \
             migration is retired",
            i.kind, i.status
        )));
    }
    let history = store.history(code).await?;
    let switched = history
        .iter()
        .filter(|e| e.step == "switch-route" && e.outcome == a2a_core::Outcome::Succeeded)
        .filter_map(|e| e.ended_at)
        .max()
        .unwrap_or(i.updated_at);
    if history.iter().any(|e| e.step == RETIRE_STEP) {
        return Ok(Retired {
            active_since: switched,
            already: true,
        });
    }
    if now < switched + wait {
        return Err(StepError::Input(format!(
            "school {code} is active since {switched}: its source may be retired from {} \
             (a waiting period of {} days); wait, or give a shorter waiting period",
            switched + wait,
            wait.num_days()
        )));
    }
    forget(blob, code).await?;
    let mut e = a2a_core::StepEvent::started(RETIRE_STEP, now);
    e.ended_at = Some(now);
    e.outcome = a2a_core::Outcome::Succeeded;
    store.record(code, &e).await?;
    Ok(Retired {
        active_since: switched,
        already: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use a2a_dbmove::Progress;

    fn table(name: &str, key: &[&str]) -> a2a_dbmove::schema::Table {
        a2a_dbmove::schema::Table {
            name: name.into(),
            columns: Vec::new(),
            primary_key: key.iter().map(|k| k.to_string()).collect(),
            indexes: Vec::new(),
            next_id: None,
        }
    }

    #[test]
    fn a_big_table_without_a_key_is_refused_by_name_and_size() {
        let code = SchoolCode::parse("08000013").unwrap();
        let tables = [
            table("mdl_user", &["id"]),
            table("mdl_log_small", &[]),
            table("mdl_log_big", &[]),
        ];
        let size = |name: &str| match name {
            "mdl_user" => 2048 << 20,
            "mdl_log_small" => 512 << 20,
            _ => 600 << 20,
        };
        // A keyed table of any size, and a keyless one at the limit, pass.
        assert!(refuse_big_keyless(&code, &tables[..2], size, KEYLESS_MAX).is_ok());
        let err = refuse_big_keyless(&code, &tables, size, KEYLESS_MAX).unwrap_err();
        let StepError::Input(m) = &err else {
            panic!("not an input error: {err:?}");
        };
        assert!(
            m.contains("08000013") && m.contains("mdl_log_big") && m.contains("600 MiB"),
            "{m}"
        );
        assert!(
            m.contains("primary key") && m.contains("a2a db copy"),
            "{m}"
        );
        assert!(!m.contains("  "), "a message of one line: {m:?}");
    }

    #[tokio::test]
    async fn a_check_past_its_time_names_the_table_it_was_in() {
        // The step's limit is CHECK_TIME; one second stands for it here.
        let limit = Duration::from_secs(1);
        let code = SchoolCode::parse("08000013").unwrap();
        let current = Current::default();
        let check = async {
            current.table("verify", "mdl_logstore_standard_log");
            std::future::pending::<()>().await
        };
        let err = within(limit, &code, &current, check).await.unwrap_err();
        let StepError::Permanent(m) = &err else {
            panic!("not a permanent error: {err:?}");
        };
        assert!(
            m.contains("08000013") && m.contains("mdl_logstore_standard_log"),
            "{m}"
        );
        assert!(
            m.contains("within 1 s") && m.contains("a2a db verify"),
            "{m}"
        );
        // In time, the check's own result comes back.
        let done = within(limit, &code, &current, async { 7 }).await;
        assert_eq!(done.unwrap(), 7);
    }
}

//! What every step shares: the history events, versioned status moves, target allocation,
//! routes, and small JSON blobs.

use std::future::Future;
use std::time::Duration;

use a2a_core::{
    BlobKey, Instance, InstanceKind, Locator, Outcome, SchoolCode, Status, StepEvent,
    execution_name_of,
};
use a2a_dbmove::Db;
use a2a_files::layout;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{Shard, StepContext, StepError};

/// What a step did, for its end event and its result.
pub(crate) struct Done {
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub result: Value,
}

impl Done {
    pub fn new(result: Value) -> Self {
        Self {
            rows: None,
            bytes: None,
            result,
        }
    }
    pub fn rows(mut self, n: u64) -> Self {
        self.rows = Some(n);
        self
    }
    pub fn bytes(mut self, n: u64) -> Self {
        self.bytes = Some(n);
        self
    }
}

/// Runs one step's work between its start and end events.
pub(crate) async fn run<F, Fut>(
    ctx: &StepContext,
    step: &str,
    code: &SchoolCode,
    work: F,
) -> Result<Value, StepError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Done, StepError>>,
{
    let started = a2a_core::clock::now();
    ctx.store
        .record(code, &StepEvent::started(step, started))
        .await?;
    let mut r = work().await;
    // The result is journaled before the end event: a step recorded as finished is one
    // that a rerun of the attempt passes over.
    if let Ok(d) = &r
        && let Err(e) = crate::journal::keep(ctx, code, &d.result).await
    {
        r = Err(e);
    }
    let mut end = StepEvent::started(step, started);
    end.ended_at = Some(a2a_core::clock::now());
    match &r {
        Ok(d) => {
            end.outcome = Outcome::Succeeded;
            end.rows = d.rows;
            end.bytes = d.bytes;
        }
        Err(e) => {
            end.outcome = Outcome::Failed;
            end.error = Some(format!("{}: {e}", e.name()));
        }
    }
    ctx.store.record(code, &end).await?;
    r.map(|d| d.result)
}

/// The instance, which must be registered.
pub(crate) async fn load(ctx: &StepContext, code: &SchoolCode) -> Result<Instance, StepError> {
    ctx.store
        .get(code)
        .await?
        .ok_or_else(|| StepError::Input(format!("school {code} is not registered")))
}

/// Refuses, as a duplicate, a run of a school that is `active`, or that another execution
/// than `execution` (this run's `$$.Execution.Id`) works on now. `None`: a caller that
/// does not name its run, checked for `active` only.
pub(crate) fn refuse_duplicate(i: &Instance, execution: Option<&str>) -> Result<(), StepError> {
    let code = &i.code;
    if i.status == Status::Active {
        return Err(StepError::Duplicate(format!(
            "school {code} is already active; it is not moved again"
        )));
    }
    let under_way = matches!(rank(i.status), Some(1..=3));
    if let (true, Some(theirs), Some(ours)) = (under_way, i.execution.as_deref(), execution)
        && execution_name_of(theirs) != execution_name_of(ours)
    {
        return Err(StepError::Duplicate(format!(
            "school {code} is {} under execution {theirs} (attempt {}); this run changed \
             nothing: let that one end, or cancel it first (a2a cancel {code})",
            i.status, i.attempt
        )));
    }
    Ok(())
}

/// Moves the instance to `running` and claims it for `execution`, in one versioned save:
/// a `registered`, `failed` or `rolled_back` instance (a start by hand) goes through
/// `queued` as the dispatcher's start would; a `running` one (the dispatcher moved it)
/// is claimed if no execution is recorded yet. Of two executions started for one school
/// at once, one claims it and the other is refused as a duplicate ([`refuse_duplicate`]);
/// so are `active` schools: A2A never moves a live site again.
pub(crate) async fn start(
    ctx: &StepContext,
    code: &SchoolCode,
    execution: Option<&str>,
) -> Result<Instance, StepError> {
    for _ in 0..8 {
        let i = load(ctx, code).await?;
        refuse_duplicate(&i, execution)?;
        let now = a2a_core::clock::now();
        let mut next = i.clone();
        match i.status {
            Status::Running => {}
            Status::Registered | Status::Failed | Status::RolledBack | Status::Queued => {
                if i.status != Status::Queued {
                    next.move_to(Status::Queued, now)?;
                }
                next.move_to(Status::Running, now)?;
                next.last_error = None;
                // The last attempt's execution is not this one's; this one's, recorded by
                // whoever started it, is kept as the engine names it.
                let ours = |e: &str| {
                    execution.is_some_and(|x| execution_name_of(e) == execution_name_of(x))
                };
                if !next.execution.as_deref().is_some_and(ours) {
                    next.execution = None;
                }
            }
            s => {
                return Err(StepError::Input(format!(
                    "school {code} is {s}: a run is already past its start"
                )));
            }
        }
        if next.execution.is_none() {
            next.execution = execution.map(str::to_owned);
        }
        if next == i {
            return Ok(i);
        }
        next.updated_at = now;
        match ctx.store.save(&next).await {
            Ok(saved) => return Ok(saved),
            Err(a2a_core::PortError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StepError::Transient(format!(
        "school {code}: the instance kept changing under this step"
    )))
}

/// Where a status stands on the way of a run, to tell a rerun of an earlier step (which
/// must not move the instance back) from a step whose move is due.
fn rank(s: Status) -> Option<u8> {
    match s {
        Status::Queued => Some(0),
        Status::Running => Some(1),
        Status::Migrated | Status::Provisioned => Some(2),
        Status::Verified => Some(3),
        Status::Active => Some(4),
        _ => None,
    }
}

fn at_or_past(now: Status, to: Status) -> bool {
    now == to || matches!((rank(now), rank(to)), (Some(a), Some(b)) if a >= b)
}

/// Applies `change` and, when `to` is given and the instance is not there yet, the move
/// to `to`; saves with the version read, and reads again on a lost race. An instance
/// already at or past `to` is only changed by `change`, so a rerun moves nothing.
pub(crate) async fn update(
    ctx: &StepContext,
    code: &SchoolCode,
    to: Option<Status>,
    change: impl Fn(&mut Instance),
) -> Result<Instance, StepError> {
    for _ in 0..8 {
        let mut i = load(ctx, code).await?;
        let before = i.clone();
        change(&mut i);
        if let Some(to) = to
            && !at_or_past(i.status, to)
        {
            i.move_to(to, a2a_core::clock::now())?;
        }
        if i == before {
            return Ok(i);
        }
        i.updated_at = a2a_core::clock::now();
        match ctx.store.save(&i).await {
            Ok(saved) => return Ok(saved),
            Err(a2a_core::PortError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StepError::Transient(format!(
        "school {code}: the instance kept changing under this step"
    )))
}

/// The target database of `code` on `shard`: `a2a_<code>` on its server, or
/// `a2a_<code>.db` in its SQLite folder.
pub fn target_db(shard: &Shard, code: &SchoolCode) -> Locator {
    a2a_dbmove::target::locator(&shard.db, code)
}

/// The route record of the site address `dns` ([`a2a_files::layout::route_key`]).
pub fn route_key(dns: &str) -> Result<BlobKey, StepError> {
    Ok(layout::route_key(dns)?)
}

pub(crate) async fn put_json(
    ctx: &StepContext,
    k: &BlobKey,
    v: &impl Serialize,
) -> Result<(), StepError> {
    let body = serde_json::to_vec_pretty(v).map_err(|e| StepError::Permanent(e.to_string()))?;
    ctx.blob.put(k, Bytes::from(body)).await?;
    Ok(())
}

pub(crate) async fn get_json<T: DeserializeOwned>(
    ctx: &StepContext,
    k: &BlobKey,
) -> Result<Option<T>, StepError> {
    match ctx.blob.get(k).await {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StepError::Verify(format!("{k}: {e}"))),
        Err(a2a_core::PortError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// How many blobs start with `prefix`.
pub(crate) async fn count(ctx: &StepContext, prefix: &str) -> Result<usize, StepError> {
    let mut n = 0;
    let mut cursor = None;
    loop {
        let page = ctx.blob.list(prefix, cursor).await?;
        n += page.items.len();
        match page.next {
            Some(c) => cursor = Some(c),
            None => return Ok(n),
        }
    }
}

/// Gives the instance a target database on the shard with the most room, once: an
/// instance that has one keeps it. Each shard's sites are counted by their markers
/// `shards/<shard>/<code>` in the data store. The instance records the database without
/// its password, which comes from the shard's configuration at each use ([`login`]), so
/// the state table holds no password and a rotated one reaches every school.
pub(crate) async fn allocate(ctx: &StepContext, code: &SchoolCode) -> Result<Locator, StepError> {
    let i = load(ctx, code).await?;
    if let Some(db) = i.target.db {
        return Ok(login(ctx, code, &db));
    }
    let mut best: Option<(&Shard, i64)> = None;
    for s in &ctx.site.shards {
        let room = i64::from(s.capacity) - count(ctx, &layout::shard_root(&s.name)).await? as i64;
        if room > 0 && best.is_none_or(|(_, r)| room > r) {
            best = Some((s, room));
        }
    }
    let (shard, _) =
        best.ok_or_else(|| StepError::Permanent("no target shard has room left".into()))?;
    a2a_dbmove::target::prepare(&shard.db)
        .await
        .map_err(|e| StepError::Transient(format!("shard {}: {e}", shard.name)))?;
    let db = target_db(shard, code);
    ctx.blob
        .put(&layout::allocation_key(&shard.name, code)?, Bytes::new())
        .await?;
    let chosen = db.without_password();
    let i = update(ctx, code, None, |i| {
        if i.target.db.is_none() {
            i.target.db = Some(chosen.clone());
        }
    })
    .await?;
    // A racing run may have chosen first: its choice stands.
    let db = i
        .target
        .db
        .ok_or_else(|| StepError::Permanent(format!("school {code}: allocation lost")))?;
    Ok(login(ctx, code, &db))
}

/// The shard whose server or folder holds `db`, compared without passwords: a record
/// holds none (or, written before, maybe an old one).
pub(crate) fn shard_of<'a>(
    ctx: &'a StepContext,
    code: &SchoolCode,
    db: &Locator,
) -> Option<&'a Shard> {
    let db = db.without_password();
    ctx.site
        .shards
        .iter()
        .find(|s| target_db(s, code).without_password() == db)
}

/// The recorded target `db` with the credentials its shard is configured with now; as
/// recorded when no configured shard holds it.
pub(crate) fn login(ctx: &StepContext, code: &SchoolCode, db: &Locator) -> Locator {
    shard_of(ctx, code, db).map_or_else(|| db.clone(), |s| target_db(s, code))
}

/// The allocated target database of `i`, logged in to with its shard's credentials of now:
/// the record holds no password, so every step that connects comes through here.
pub(crate) fn target(ctx: &StepContext, i: &Instance) -> Result<Locator, StepError> {
    i.target
        .db
        .as_ref()
        .map(|db| login(ctx, &i.code, db))
        .ok_or_else(|| StepError::Input(format!("school {}: no target allocated", i.code)))
}

/// The configured shard that holds the school's target database `db`.
pub(crate) fn shard_for<'a>(
    ctx: &'a StepContext,
    code: &SchoolCode,
    db: &Locator,
) -> Result<&'a Shard, StepError> {
    shard_of(ctx, code, db)
        .ok_or_else(|| StepError::Input(format!("{db} is on no configured shard")))
}

/// Whether the school's target database `db` is there, as its shard's server says: a
/// server that cannot be reached or refuses the login is an error, never "absent".
pub(crate) async fn target_exists(
    ctx: &StepContext,
    code: &SchoolCode,
    db: &Locator,
) -> Result<bool, StepError> {
    let shard = shard_for(ctx, code, db)?;
    Ok(a2a_dbmove::target::exists(&shard.db, code).await?)
}

/// Drops a target database; a missing one is not an error.
pub(crate) async fn drop_db(
    ctx: &StepContext,
    code: &SchoolCode,
    db: &Locator,
) -> Result<(), StepError> {
    let shard = shard_of(ctx, code, db).map(|s| &s.db);
    a2a_dbmove::target::drop(db, shard, code).await?;
    Ok(())
}

/// Deletes at most this many blobs at once.
const DELETES: usize = 32;

/// Deletes the blobs under `prefix` a listed page at a time, [`DELETES`] at once, until
/// none is left or `deadline` has passed (looked at between batches, after at least one,
/// so that every call gets somewhere): how many it deleted, and whether none is left.
pub(crate) async fn delete_prefix_until(
    ctx: &StepContext,
    prefix: &str,
    deadline: Option<std::time::Instant>,
) -> Result<(u64, bool), StepError> {
    let mut removed = 0;
    loop {
        let page = ctx.blob.list(prefix, None).await?;
        if page.items.is_empty() {
            return Ok((removed, true));
        }
        for batch in page.items.chunks(DELETES) {
            if removed > 0 && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok((removed, false));
            }
            let mut deletes = tokio::task::JoinSet::new();
            for m in batch {
                let (blob, key) = (ctx.blob.clone(), m.key.clone());
                deletes.spawn(async move { blob.delete(&key).await });
            }
            while let Some(done) = deletes.join_next().await {
                done.map_err(|e| StepError::Transient(format!("a delete under {prefix}: {e}")))??;
                removed += 1;
            }
        }
    }
}

/// Abandons the target of `i`: its database dropped (one that cannot be dropped is an
/// error, and the target stays recorded, for a rerun to drop), its allocation marker
/// deleted, and the instance's target cleared so that a retry allocates anew. Whether
/// there was a target.
pub(crate) async fn abandon_target(ctx: &StepContext, i: &Instance) -> Result<bool, StepError> {
    let Some(db) = &i.target.db else {
        return Ok(false);
    };
    drop_db(ctx, &i.code, &login(ctx, &i.code, db)).await?;
    forget_target(ctx, i, db).await?;
    Ok(true)
}

/// Deletes the allocation marker of `i`'s target `db` and clears its target.
async fn forget_target(ctx: &StepContext, i: &Instance, db: &Locator) -> Result<(), StepError> {
    if let Some(shard) = shard_of(ctx, &i.code, db) {
        ctx.blob
            .delete(&layout::allocation_key(&shard.name, &i.code)?)
            .await?;
    }
    update(ctx, &i.code, None, |i| i.target.db = None).await?;
    Ok(())
}

/// A rollback starts no new batch of deletes after this long: it answers
/// `complete: false`, and the workflow runs it again (its Task times out at 120 s).
pub(crate) const ROLLBACK_TIME: Duration = Duration::from_secs(60);

/// The target side of an attempt's catch, written once for both workflows (`Rollback`
/// after `RestoreSource` for a migration, `Deprovision` for a provision), recorded as
/// `step`: removes the route if it points here, the stage and the site's files
/// (`instances/<code>/`, so that a retry starts from an empty target side), in batches
/// within `time` (by default [`ROLLBACK_TIME`]; `complete: false` means "run it again",
/// and the rerun goes on), then drops the target database (its allocation removed, an
/// `abandoned/<code>/<attempt>.json` record kept) and moves the instance to
/// `rolled_back` with the error. Idempotent. What it cannot do is an error, the instance
/// left where it is, so that reconciliation runs the cleanup again (and after its last
/// cleanup marks it `failed`, the failed step in the history naming what is left): a
/// target that cannot be dropped, or a source that was not put back (`source_left`,
/// recorded as the instance's last error). Opens no source. An `active` site, or one of
/// another kind, is left alone.
pub(crate) async fn undo_target_side(
    ctx: &StepContext,
    step: &str,
    kind: InstanceKind,
    code: &SchoolCode,
    error: &str,
    source_left: Option<String>,
    time: Option<Duration>,
) -> Result<Value, StepError> {
    let deadline = std::time::Instant::now() + time.unwrap_or(ROLLBACK_TIME);
    run(ctx, step, code, || async {
        let Some(i) = ctx.store.get(code).await? else {
            return Ok(Done::new(json!({"rolled_back": false, "complete": true})));
        };
        if i.status == Status::Active || i.kind != kind {
            return Ok(Done::new(json!({"rolled_back": false, "complete": true})));
        }
        if i.status == Status::RolledBack {
            return Ok(Done::new(
                json!({"rolled_back": true, "complete": true, "kept": true}),
            ));
        }
        delete_route(ctx, &i).await?;
        let mut removed = 0;
        for prefix in [layout::stage_root(code), layout::site_root(code)] {
            let (n, whole) = delete_prefix_until(ctx, &prefix, Some(deadline)).await?;
            removed += n;
            if !whole {
                return Ok(Done::new(json!({
                    "rolled_back": false,
                    "complete": false,
                    "removed": removed,
                }))
                .rows(removed));
            }
        }
        if let Some(db) = &i.target.db {
            abandon_target(ctx, &i).await.map_err(|e| {
                e.within(&format!(
                    "school {code}: the route and the files are removed, but the target \
                     database {} is left",
                    db.redacted()
                ))
            })?;
            let record = json!({
                "school_code": code.as_str(),
                "attempt": i.attempt,
                "target": db.redacted(),
                "dropped": true,
                "error": error,
            });
            put_json(ctx, &layout::abandoned_key(code, i.attempt), &record).await?;
        }
        if let Some(left) = &source_left {
            let why = format!("{error} (rolled back on the target side, but {left})");
            update(ctx, code, None, |i| i.last_error = Some(why.clone())).await?;
            return Err(StepError::Permanent(format!(
                "school {code}: the target side is removed, but {left}; the cleanup runs \
                 again at the next reconciliation"
            )));
        }
        let to = [Status::RolledBack, Status::Failed]
            .into_iter()
            .find(|s| i.status.can_move(*s, i.kind));
        let error = error.to_owned();
        update(ctx, code, to, |i| i.last_error = Some(error.clone())).await?;
        Ok(
            Done::new(json!({"rolled_back": true, "complete": true, "removed": removed}))
                .rows(removed),
        )
    })
    .await
}

/// The route record: how the site's address reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub(crate) struct Route {
    pub school_code: String,
    pub wwwroot: String,
    pub shard: Option<String>,
}

/// Writes the route of `i`; refuses an address routed to another school.
pub(crate) async fn write_route(ctx: &StepContext, i: &Instance) -> Result<String, StepError> {
    let dns = dns(i)?;
    let k = route_key(&dns)?;
    if let Some(old) = get_json::<Route>(ctx, &k).await?
        && old.school_code != i.code.as_str()
    {
        return Err(StepError::Input(format!(
            "the address {dns} is routed to school {} already",
            old.school_code
        )));
    }
    let wwwroot = ctx.site.wwwroot(&dns);
    let route = Route {
        school_code: i.code.to_string(),
        wwwroot: wwwroot.clone(),
        shard: i
            .target
            .db
            .as_ref()
            .and_then(|db| shard_of(ctx, &i.code, db))
            .map(|s| s.name.clone()),
    };
    put_json(ctx, &k, &route).await?;
    Ok(wwwroot)
}

/// Deletes the route of `i`, if it is this school's.
pub(crate) async fn delete_route(ctx: &StepContext, i: &Instance) -> Result<(), StepError> {
    let Some(dns) = i.target.dns.as_deref() else {
        return Ok(());
    };
    let k = route_key(dns)?;
    if let Some(old) = get_json::<Route>(ctx, &k).await?
        && old.school_code == i.code.as_str()
    {
        ctx.blob.delete(&k).await?;
    }
    Ok(())
}

/// The site's short name in its address, which intake records.
/// Replaces `old` by `new` in every text and char column of the site at `db` (a text
/// column takes any length) and returns the rows changed; rows whose char column the new
/// text would overflow fail the step with `A2A.Permanent.Verify`, naming the table, the
/// column and the row ids (the replacement is never silently partial). A rerun replaces
/// nothing more and fails the same, so the workflow's Catch rolls the site back.
pub(crate) async fn rewrite(
    ctx: &StepContext,
    code: &SchoolCode,
    db: &Db,
    old: &str,
    new: &str,
) -> Result<u64, StepError> {
    let r = a2a_dbmove::site::replace_text(db, &ctx.site.prefix, old, new).await?;
    if r.too_long.is_empty() {
        return Ok(r.rows);
    }
    let left: Vec<String> = r.too_long.iter().map(ToString::to_string).collect();
    Err(StepError::Verify(format!(
        "school {code}: the new address {new} does not fit in {} (rows left with the old \
         address {old}); widen those columns on the target, or shorten the address",
        left.join("; ")
    )))
}

pub(crate) fn dns(i: &Instance) -> Result<String, StepError> {
    i.target.dns.clone().ok_or_else(|| {
        StepError::Input(format!("school {}: no site address (dns) recorded", i.code))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use a2a_core::{InstanceKind, InstanceStore, Wave};

    use super::*;
    use crate::SiteConfig;

    #[test]
    fn a_run_is_refused_beside_another_known_by_arn_or_name() {
        let code = SchoolCode::parse("08000001").unwrap();
        let now = a2a_core::clock::now();
        let mut i = Instance::new(code, InstanceKind::Migrate, "x", Wave(1), now);
        let arn = "arn:aws:states:eu-west-1:1:execution:migrate-instance:08000001-migrate-1";
        // Not under way: any run may claim it.
        assert_eq!(refuse_duplicate(&i, Some(arn)), Ok(()));
        i.move_to(Status::Queued, now).unwrap();
        i.move_to(Status::Running, now).unwrap();
        i.execution = Some("08000001-migrate-1".into());
        assert_eq!(refuse_duplicate(&i, Some(arn)), Ok(()), "the same run");
        assert_eq!(
            refuse_duplicate(&i, None),
            Ok(()),
            "a caller that names no run"
        );
        let e = refuse_duplicate(&i, Some("by-hand")).unwrap_err();
        assert_eq!(e.name(), crate::error::DUPLICATE);
        assert!(
            e.to_string().contains("under execution 08000001-migrate-1"),
            "{e}"
        );
        i.move_to(Status::Migrated, now).unwrap();
        i.move_to(Status::Verified, now).unwrap();
        i.move_to(Status::Active, now).unwrap();
        let e = refuse_duplicate(&i, Some(arn)).unwrap_err();
        assert_eq!(e.name(), crate::error::DUPLICATE);
        assert!(e.to_string().contains("already active"), "{e}");
    }

    fn site(shard_db: &str) -> Arc<SiteConfig> {
        Arc::new(SiteConfig {
            host: "eix.example.cat".into(),
            old_wwwroot: "https://agora.example.cat/{dns}/moodle".into(),
            prefix: "mdl_".into(),
            shards: vec![Shard {
                name: "s1".into(),
                db: Locator::new(shard_db),
                capacity: 10,
            }],
            templates: BTreeMap::new(),
        })
    }

    #[tokio::test]
    async fn the_record_keeps_no_password_and_a_rotated_one_reaches_the_school() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(a2a_local::SqliteStore::open_in_memory().await.unwrap());
        let blob = Arc::new(a2a_local::FsBlob::new(tmp.path().join("blobs")).unwrap());
        let code = SchoolCode::parse("08012345").unwrap();
        let i = Instance::new(
            code.clone(),
            InstanceKind::Provision,
            "Escola",
            Wave(1),
            chrono::Utc::now(),
        );
        store.register(&i).await.unwrap();
        let mut ctx = StepContext {
            store: store.clone(),
            blob,
            site: site("mysql://a2a:old%40pw@10.0.0.1:3306/mysql"),
            secrets: Arc::new(a2a_local::FileSecrets::new(tmp.path().join("secrets"))),
        };

        let db = allocate(&ctx, &code).await.unwrap();
        assert_eq!(
            db.expose(),
            "mysql://a2a:old%40pw@10.0.0.1:3306/a2a_08012345"
        );
        let recorded = store.get(&code).await.unwrap().unwrap().target.db.unwrap();
        assert_eq!(recorded.expose(), "mysql://a2a@10.0.0.1:3306/a2a_08012345");

        // The password changes in the configuration (a rotated secret): the school's target
        // is logged in to with the new one, and is still on its shard.
        ctx.site = site("mysql://a2a:new@10.0.0.1:3306/mysql");
        let db = allocate(&ctx, &code).await.unwrap();
        assert_eq!(db.expose(), "mysql://a2a:new@10.0.0.1:3306/a2a_08012345");
        assert_eq!(
            shard_of(&ctx, &code, &recorded).map(|s| s.name.as_str()),
            Some("s1")
        );
        // A record written before, password and all, still finds its shard.
        let old = Locator::new("mysql://a2a:old%40pw@10.0.0.1:3306/a2a_08012345");
        assert_eq!(login(&ctx, &code, &old).expose(), db.expose());
    }
}

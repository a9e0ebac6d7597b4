//! The steps of `provision-instance`: a new EIX site from a template.

use a2a_core::{BlobMeta, Instance, InstanceKind, SchoolCode, Status};
use a2a_dbmove::{Db, Value as V};
use a2a_files::layout;
use serde_json::{Value, json};

use crate::common::{
    Done, allocate, delete_prefix, delete_route, dns, drop_db, exists, get_json, load, mark_failed,
    put_json, release_target, rewrite, run, target, update, write_route,
};
use crate::{StepContext, StepError, Template, checks};

/// The template an instance was registered with (`template:primary`), from configuration.
fn template<'a>(ctx: &'a StepContext, i: &Instance) -> Result<&'a Template, StepError> {
    if i.kind != InstanceKind::Provision {
        return Err(StepError::Input(format!(
            "school {} is a {} instance, not a provision",
            i.code, i.kind
        )));
    }
    let name = i
        .source
        .db
        .as_ref()
        .and_then(|l| l.expose().strip_prefix("template:").map(str::to_owned))
        .unwrap_or_else(|| "primary".into());
    ctx.site
        .templates
        .get(&name)
        .ok_or_else(|| StepError::Input(format!("no template named {name:?} is configured")))
}

/// Starts the run (`queued` → `running`; a console start of a `registered` or `failed`
/// instance plays the dispatcher's part and queues it first) and allocates the target
/// database on the shard with the most room.
pub async fn allocate_target(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "allocate-target", code, || async {
        let i = load(ctx, code).await?;
        template(ctx, &i)?;
        dns(&i)?;
        start(ctx, code).await?;
        let db = allocate(ctx, code).await?;
        Ok(Done::new(json!({"target": db.redacted()})))
    })
    .await
}

/// Moves the instance to `running`, through `queued` when a person started it by hand.
/// `active` is refused: A2A never moves a live site again.
pub(crate) async fn start(ctx: &StepContext, code: &SchoolCode) -> Result<Instance, StepError> {
    let i = load(ctx, code).await?;
    match i.status {
        Status::Active => Err(StepError::Input(format!(
            "school {code} is already active; it is not moved again"
        ))),
        Status::Running => Ok(i),
        Status::Registered | Status::Failed | Status::RolledBack => {
            update(ctx, code, Some(Status::Queued), |_| {}).await?;
            update(ctx, code, Some(Status::Running), |i| i.last_error = None).await
        }
        Status::Queued => update(ctx, code, Some(Status::Running), |i| i.last_error = None).await,
        s => Err(StepError::Input(format!(
            "school {code} is {s}: a run is already past its start"
        ))),
    }
}

/// Clones the template database into the target, and then marks the clone whole
/// ([`layout::clone_key`]): after the last table and, on MySQL, its auto-increment
/// counters. A rerun keeps a marked target only if every table still has the template's
/// rows (count and checksum); a target without the mark (a clone cut short by a kill or a
/// timeout) or no longer whole is dropped and made again.
pub async fn clone_template(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "clone-template", code, || async {
        let i = load(ctx, code).await?;
        let tpl = template(ctx, &i)?;
        let to = target(ctx, &i)?;
        let mark = layout::clone_key(code);
        let marked = get_json::<Value>(ctx, &mark).await?.is_some();
        let kept = if marked && exists(&to).await {
            let a = Db::connect(&tpl.db, false).await?;
            let b = Db::connect(&to, false).await?;
            match first_difference(&a, &b, "").await? {
                None => true,
                Some(why) => {
                    tracing::warn!(school_code = %code, why, "the marked clone is not whole: made again");
                    false
                }
            }
        } else {
            false
        };
        if !kept {
            // The mark goes first: a clone cut short from here on has none.
            match ctx.blob.delete(&mark).await {
                Ok(()) | Err(a2a_core::PortError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            if exists(&to).await {
                tracing::warn!(school_code = %code, target = %to, "a clone without its mark of completion: dropped and made again");
                drop_db(ctx, code, &to).await?;
            }
            a2a_dbmove::site::clone_database(&tpl.db, &to).await?;
            put_json(ctx, &mark, &json!({"template": tpl.files, "target": to.redacted()})).await?;
        }
        let tables = Db::connect(&to, false)
            .await?
            .list_tables(&ctx.site.prefix)
            .await?;
        Ok(Done::new(json!({"tables": tables.len(), "kept": kept})).rows(tables.len() as u64))
    })
    .await
}

/// The first table of `prefix` whose rows differ between `a` and `b` (names, columns, row
/// count or content checksum, as `a2a_dbmove::verify` sums them), named; `None` when
/// every table holds the same rows.
async fn first_difference(a: &Db, b: &Db, prefix: &str) -> Result<Option<String>, StepError> {
    let (ta, tb) = (a.introspect(prefix).await?, b.introspect(prefix).await?);
    let names =
        |t: &[a2a_dbmove::schema::Table]| t.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    if names(&ta) != names(&tb) {
        return Ok(Some(format!(
            "{} tables, the template {}",
            tb.len(),
            ta.len()
        )));
    }
    for (x, y) in ta.iter().zip(&tb) {
        let sx = checks::table_sum(a, x).await?;
        let y = match checks::aligned(y, &sx) {
            Ok(y) => y,
            Err(why) => return Ok(Some(format!("table {}: {why}", x.name))),
        };
        let sy = checks::table_sum(b, &y).await?;
        if (sx.rows, &sx.checksum) != (sy.rows, &sy.checksum) {
            return Ok(Some(format!(
                "table {}: {} rows, the template {} (or their content differs)",
                x.name, sy.rows, sx.rows
            )));
        }
    }
    Ok(None)
}

/// Copies the template's files to the site (a rerun skips what is there).
pub async fn copy_template_files(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "copy-template-files", code, || async {
        let i = load(ctx, code).await?;
        let tpl = template(ctx, &i)?;
        let root = a2a_files::template_root(&tpl.files).map_err(StepError::Input)?;
        let r =
            a2a_files::copy_site(ctx.blob.clone(), &root, code, 8, &a2a_files::NoProgress).await?;
        Ok(Done::new(json!({"files": r.files, "copied": r.copied_files})).bytes(r.bytes))
    })
    .await
}

/// Customises the clone for its school (names, mailbox) and replaces the template's
/// address by the site's in content; `running` → `provisioned`.
pub async fn customise(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "customise", code, || async {
        let i = load(ctx, code).await?;
        let tpl = template(ctx, &i)?;
        let dns = dns(&i)?;
        let db = Db::connect(&target(ctx, &i)?, false).await?;
        let p = &ctx.site.prefix;
        let changed = a2a_dbmove::site::customise(&db, p, code, &i.name, &dns).await?
            + own_secrets(ctx, code, &db).await?;
        let wwwroot = ctx.site.wwwroot(&dns);
        let replaced = rewrite(ctx, code, &db, &tpl.wwwroot, &wwwroot).await?;
        update(ctx, code, Some(Status::Provisioned), |_| {}).await?;
        Ok(
            Done::new(json!({"customised": changed, "replaced": replaced}))
                .rows(changed + replaced),
        )
    })
    .await
}

/// Gives the site its own secrets instead of the template's: an admin password (its hash
/// in the site, its plain text only in the secret store), and, where the template has them,
/// its own `siteidentifier` and cron password. Returns the rows changed.
async fn own_secrets(ctx: &StepContext, code: &SchoolCode, db: &Db) -> Result<u64, StepError> {
    use crate::secrets::{moodle_hash, new_password, new_site_identifier, site_secret};
    use a2a_core::SecretName;
    use a2a_dbmove::site::{config_value, set_admin_password, set_config_value};
    let p = &ctx.site.prefix;
    let password = site_secret(ctx, code, &SecretName::admin_password(code), new_password).await?;
    let mut changed = set_admin_password(db, p, &moodle_hash(&password)?).await?;
    if config_value(db, p, "siteidentifier").await?.is_some() {
        let name = SecretName::of(code, "site-identifier")?;
        let id = site_secret(ctx, code, &name, || new_site_identifier(&ctx.site.host)).await?;
        changed += u64::from(set_config_value(db, p, "siteidentifier", Some(id.expose())).await?);
    }
    if config_value(db, p, "cronremotepassword")
        .await?
        .is_some_and(|v| !v.is_empty())
    {
        let name = SecretName::of(code, "cron-password")?;
        let cron = site_secret(ctx, code, &name, new_password).await?;
        changed +=
            u64::from(set_config_value(db, p, "cronremotepassword", Some(cron.expose())).await?);
    }
    Ok(changed)
}

fn text(s: &str) -> V {
    V::Text(s.to_owned())
}

/// Counts rows of `table` where every `(column, value)` matches.
async fn count_where(db: &Db, table: &str, filters: &[(&str, V)]) -> Result<i64, StepError> {
    let q = |s: &str| db.engine().quote(s);
    let cond: Vec<String> = filters
        .iter()
        .map(|(c, _)| format!("{} = {{}}", q(c)))
        .collect();
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {}",
        q(table),
        cond.join(" AND ")
    );
    let params: Vec<V> = filters.iter().map(|(_, v)| v.clone()).collect();
    Ok(db.query_i64(&sql, &params).await?)
}

/// Every blob of a site's or template's files, by key relative to its root, with sizes.
async fn files_of(ctx: &StepContext, root: &str) -> Result<Vec<(String, u64)>, StepError> {
    let mut out = Vec::new();
    for part in ["filedir/", "moodledata/"] {
        let mut cursor = None;
        loop {
            let page = ctx.blob.list(&format!("{root}{part}"), cursor).await?;
            out.extend(
                page.items
                    .into_iter()
                    .map(|m: BlobMeta| (m.key.as_str()[root.len()..].to_owned(), m.size)),
            );
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Checks the new site: every template table is there, the school's names are in place,
/// and its files are the template's; `provisioned` → `verified`.
pub async fn verify_site(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "verify-site", code, || async {
        let i = load(ctx, code).await?;
        let tpl = template(ctx, &i)?;
        let dns = dns(&i)?;
        let p = &ctx.site.prefix;
        let db = Db::connect(&target(ctx, &i)?, false).await?;
        let tpl_db = Db::connect(&tpl.db, false).await?;
        let want = tpl_db.list_tables(p).await?;
        let have = db.list_tables(p).await?;
        if want != have {
            return Err(StepError::Verify(format!(
                "school {code}: the site has {} tables, the template {}",
                have.len(),
                want.len()
            )));
        }
        let course = count_where(
            &db,
            &format!("{p}course"),
            &[
                ("id", V::Int(1)),
                ("fullname", text(&i.name)),
                ("shortname", text(&dns)),
            ],
        )
        .await?;
        let mail = format!("{}@xtec.cat", a2a_dbmove::site::letter_code(code));
        let admin = count_where(
            &db,
            &format!("{p}user"),
            &[
                ("username", text("admin")),
                ("institution", text(&i.name)),
                ("email", text(&mail)),
            ],
        )
        .await?;
        // The admin's password is the site's own: a PHP bcrypt hash, not the template's.
        let hash = a2a_dbmove::site::admin_password_hash(&db, p).await?;
        let template_hash = a2a_dbmove::site::admin_password_hash(&tpl_db, p).await?;
        if !hash.as_deref().is_some_and(|h| h.starts_with("$2y$")) || hash == template_hash {
            return Err(StepError::Verify(format!(
                "school {code}: the admin's password is not the site's own (Customise sets it)"
            )));
        }
        if course != 1 || admin != 1 {
            return Err(StepError::Verify(format!(
                "school {code}: customisation missing (site course: {course}, admin: {admin})"
            )));
        }
        let root = a2a_files::template_root(&tpl.files).map_err(StepError::Input)?;
        let from = files_of(ctx, &root).await?;
        let to = files_of(ctx, &layout::site_root(code)).await?;
        if from != to {
            return Err(StepError::Verify(format!(
                "school {code}: {} files, the template {}",
                to.len(),
                from.len()
            )));
        }
        update(ctx, code, Some(Status::Verified), |_| {}).await?;
        let bytes = to.iter().map(|f| f.1).sum();
        Ok(Done::new(json!({"tables": have.len(), "files": to.len()}))
            .rows(have.len() as u64)
            .bytes(bytes))
    })
    .await
}

/// Registers the route of the site's address; `verified` → `active`.
pub async fn register_route(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "register-route", code, || async {
        let i = load(ctx, code).await?;
        let wwwroot = write_route(ctx, &i).await?;
        update(ctx, code, Some(Status::Active), |_| {}).await?;
        Ok(Done::new(json!({"wwwroot": wwwroot})))
    })
    .await
}

/// The catch of `provision-instance`: removes what was made (route, files, database),
/// records the error, and marks the instance `failed`. An `active` site is left alone.
pub async fn deprovision(
    ctx: &StepContext,
    code: &SchoolCode,
    error: &str,
) -> Result<Value, StepError> {
    run(ctx, "deprovision", code, || async {
        let Some(i) = ctx.store.get(code).await? else {
            return Ok(Done::new(json!({"deprovisioned": false})));
        };
        if i.status == Status::Active {
            return Ok(Done::new(json!({"deprovisioned": false})));
        }
        delete_route(ctx, &i).await?;
        let removed = delete_prefix(ctx, &layout::site_root(code)).await?;
        let left = release_target(ctx, &i).await?;
        let error = match &left {
            Some(e) => format!("{error} (the target database could not be dropped: {e})"),
            None => error.to_owned(),
        };
        mark_failed(ctx, code, &error).await?;
        Ok(Done::new(
            json!({"deprovisioned": true, "files": removed, "drop_error": left}),
        ))
    })
    .await
}

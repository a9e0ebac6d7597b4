//! The steps of `provision-instance`: a new EIX site from a template.

use a2a_core::{BlobMeta, Instance, InstanceKind, SchoolCode, Status};
use a2a_dbmove::{ColType, Db, DbError, Row, Table, Value as V};
use a2a_files::layout;
use serde_json::{Value, json};

use crate::common::{
    Done, allocate, dns, drop_db, get_json, load, put_json, refuse_duplicate, rewrite, run, start,
    target, target_exists, undo_target_side, update, write_route,
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
/// instance plays the dispatcher's part and queues it first), claimed by `execution`
/// ([`start`]), and allocates the target database on the shard with the most room.
pub async fn allocate_target(
    ctx: &StepContext,
    code: &SchoolCode,
    execution: Option<&str>,
) -> Result<Value, StepError> {
    run(ctx, "allocate-target", code, || async {
        let i = load(ctx, code).await?;
        refuse_duplicate(&i, execution)?;
        template(ctx, &i)?;
        dns(&i)?;
        start(ctx, code, execution).await?;
        let db = allocate(ctx, code).await?;
        Ok(Done::new(json!({"target": db.redacted()})))
    })
    .await
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
        let kept = if marked && target_exists(ctx, code, &to).await? {
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
            if target_exists(ctx, code, &to).await? {
                tracing::warn!(school_code = %code, target = %to, "a clone without its mark of completion: dropped and made again");
                drop_db(ctx, code, &to).await?;
            }
            if let Err(e) = a2a_dbmove::site::clone_database(&tpl.db, &to).await {
                // There after all (a clone of a killed run that the server finished after
                // the check above: PostgreSQL then says "already exists"): it has no mark,
                // so it goes, and the clone is made again.
                let there = matches!(e, DbError::NotEmpty(_))
                    || target_exists(ctx, code, &to).await?;
                if !there {
                    return Err(e.into());
                }
                tracing::warn!(school_code = %code, target = %to, "a clone appeared while it was being made: dropped and made again");
                drop_db(ctx, code, &to).await?;
                a2a_dbmove::site::clone_database(&tpl.db, &to).await?;
            }
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

/// A row that Customise changes: the table (without prefix), the column and value that
/// find it, and the columns it sets with the value each must have now (`None`: the
/// admin's own password hash, checked against the password in the secret store).
struct Changed {
    table: &'static str,
    by: (&'static str, V),
    set: Vec<(&'static str, Option<String>)>,
}

/// What Customise changed in school `i`'s clone of the template `tpl_db`, with the values
/// it must hold (the site's own secrets from the secret store).
async fn customised(
    ctx: &StepContext,
    i: &Instance,
    dns: &str,
    tpl_db: &Db,
) -> Result<Vec<Changed>, StepError> {
    use a2a_core::SecretName;
    use a2a_dbmove::site::config_value;
    let code = &i.code;
    let mail = format!("{}@xtec.cat", a2a_dbmove::site::letter_code(code));
    let mut out = vec![
        Changed {
            table: "course",
            by: ("id", V::Int(1)),
            set: vec![
                ("fullname", Some(i.name.clone())),
                ("shortname", Some(dns.to_owned())),
            ],
        },
        Changed {
            table: "user",
            by: ("username", text("admin")),
            set: vec![
                ("institution", Some(i.name.clone())),
                ("email", Some(mail)),
                ("password", None),
            ],
        },
    ];
    let p = &ctx.site.prefix;
    for (setting, what, only_if_set) in [
        ("siteidentifier", "site-identifier", false),
        ("cronremotepassword", "cron-password", true),
    ] {
        let before = config_value(tpl_db, p, setting).await?;
        if before.is_none() || (only_if_set && before.as_deref() == Some("")) {
            continue;
        }
        let name = SecretName::of(code, what)?;
        let own = ctx.secrets.get(&name).await?.ok_or_else(|| {
            StepError::Verify(format!(
                "school {code}: the site's secret {name} is not in the secret store \
                 (Customise stores it)"
            ))
        })?;
        out.push(Changed {
            table: "config",
            by: ("name", text(setting)),
            set: vec![("value", Some(own.expose().to_owned()))],
        });
    }
    Ok(out)
}

/// Every row of `t` in `db`: in key order, or, for a table without a key, sorted.
async fn rows_of(db: &Db, t: &Table) -> Result<Vec<Row>, StepError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Row>>(4);
    let read = async move {
        let r = db.stream_rows(t, true, 10_000, None, &tx).await;
        drop(tx);
        r
    };
    let gather = async {
        let mut all = Vec::new();
        while let Some(batch) = rx.recv().await {
            all.extend(batch);
        }
        all
    };
    let (read, mut all) = tokio::join!(read, gather);
    read?;
    if t.pk_positions().is_empty() {
        all.sort_by_cached_key(|r| format!("{r:?}"));
    }
    Ok(all)
}

/// Compares every table of the site with the template's, row by row and value by value:
/// the same tables, the same number of rows, and each row the template's as Customise
/// leaves it (the template's address replaced by the site's where Moodle's replace
/// reaches, and the rows of `changed` with their new values; the admin's password is the
/// hash of the site's own). Returns the rows compared; the first difference is an error
/// naming the table, the row's key and the column.
async fn compare_with_template(
    ctx: &StepContext,
    code: &SchoolCode,
    site: &Db,
    tpl_db: &Db,
    (old, new): (&str, &str),
    changed: &[Changed],
) -> Result<u64, StepError> {
    let p = &ctx.site.prefix;
    let want = tpl_db.introspect(p).await?;
    let have = site.list_tables(p).await?;
    let names: Vec<String> = want.iter().map(|t| t.name.clone()).collect();
    if names != have {
        return Err(StepError::Verify(format!(
            "school {code}: the site has {} tables, the template {}{}",
            have.len(),
            want.len(),
            names
                .iter()
                .find(|n| !have.contains(n))
                .map(|n| format!(" ({n} is missing)"))
                .unwrap_or_default()
        )));
    }
    let password = ctx
        .secrets
        .get(&a2a_core::SecretName::admin_password(code))
        .await?;
    let mut compared = 0;
    for t in &want {
        let bare = t.name.strip_prefix(p.as_str()).unwrap_or(&t.name);
        let col = |name: &str| t.columns.iter().position(|c| c.name == name);
        let mut expected = rows_of(tpl_db, t).await?;
        // Moodle's replace, as Customise ran it: text columns outside the skip list.
        let replaced: Vec<usize> = t
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.ty, ColType::Text | ColType::Char { .. }))
            .filter(|(_, c)| a2a_dbmove::site::should_replace(p, &t.name, Some(&c.name)))
            .map(|(n, _)| n)
            .collect();
        // The admin's password cell, checked by hash rather than by value.
        let mut own_hash: Option<(usize, usize)> = None;
        for (r, row) in expected.iter_mut().enumerate() {
            if a2a_dbmove::site::should_replace(p, &t.name, None) {
                for &n in &replaced {
                    if let V::Text(s) = &mut row[n]
                        && s.contains(old)
                    {
                        *s = s.replace(old, new);
                    }
                }
            }
            for c in changed.iter().filter(|c| c.table == bare) {
                if col(c.by.0).is_none_or(|n| row[n] != c.by.1) {
                    continue;
                }
                for (name, value) in &c.set {
                    let Some(n) = col(name) else { continue };
                    match value {
                        Some(v) => row[n] = V::Text(v.clone()),
                        None => own_hash = Some((r, n)),
                    }
                }
            }
        }
        if t.pk_positions().is_empty() {
            expected.sort_by_cached_key(|r| format!("{r:?}"));
        }
        let got = rows_of(site, t).await?;
        if got.len() != expected.len() {
            return Err(StepError::Verify(format!(
                "school {code}: table {} has {} rows, the template {}",
                t.name,
                got.len(),
                expected.len()
            )));
        }
        let key = |row: &Row| -> String {
            let k = t.pk_positions();
            if k.is_empty() {
                "a row without a key".into()
            } else {
                k.iter()
                    .map(|&n| format!("{}={:?}", t.columns[n].name, row[n]))
                    .collect::<Vec<_>>()
                    .join(",")
            }
        };
        for (r, (e, g)) in expected.iter().zip(&got).enumerate() {
            for (n, (ev, gv)) in e.iter().zip(g).enumerate() {
                let ok = if own_hash == Some((r, n)) {
                    match (gv, &password) {
                        (V::Text(h), Some(pw)) => {
                            h.starts_with("$2y$") && crate::secrets::verifies(pw.expose(), h)
                        }
                        _ => false,
                    }
                } else {
                    ev == gv
                };
                if !ok {
                    return Err(StepError::Verify(format!(
                        "school {code}: table {} row {}: column {} is not what the template \
                         and Customise make it",
                        t.name,
                        key(g),
                        t.columns[n].name
                    )));
                }
            }
        }
        compared += got.len() as u64;
    }
    Ok(compared)
}

/// Checks the new site against its template: every table, row and value is the
/// template's as Customise leaves it (its address replaced, the school's names, mailbox
/// and own secrets in their rows), and its files are the template's; `provisioned` →
/// `verified`.
pub async fn verify_site(ctx: &StepContext, code: &SchoolCode) -> Result<Value, StepError> {
    run(ctx, "verify-site", code, || async {
        let i = load(ctx, code).await?;
        let tpl = template(ctx, &i)?;
        let dns = dns(&i)?;
        let db = Db::connect(&target(ctx, &i)?, false).await?;
        let tpl_db = Db::connect(&tpl.db, false).await?;
        let changed = customised(ctx, &i, &dns, &tpl_db).await?;
        let wwwroot = ctx.site.wwwroot(&dns);
        let rows =
            compare_with_template(ctx, code, &db, &tpl_db, (&tpl.wwwroot, &wwwroot), &changed)
                .await?;
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
        Ok(Done::new(json!({"rows": rows, "files": to.len()}))
            .rows(rows)
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

/// The catch of `provision-instance`, as [`crate::migrate::rollback`] is the target side
/// of a migration's (one function serves both: [`crate::common::undo_target_side`]):
/// the route, the stage, the site's files (in batches within `time`; `complete: false`
/// and the state machine runs it again) and the target database removed, and the
/// instance `rolled_back` with the error. A database it cannot drop is an error, the
/// instance left in flight for reconciliation to run it again. Idempotent; an `active`
/// site is left alone.
pub async fn deprovision(
    ctx: &StepContext,
    code: &SchoolCode,
    error: &str,
    time: Option<std::time::Duration>,
) -> Result<Value, StepError> {
    let kind = InstanceKind::Provision;
    undo_target_side(ctx, "deprovision", kind, code, error, None, time).await
}

//! The EIX world the steps are tested in, written once for the in-process workflow tests
//! and the step binaries' tests: the `primary` template (a fixture database and fixture
//! files in the data store), a site of one shard over it, and schools to register, each a
//! provision from the template or a migration from a fixture source of its own.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use a2a_core::{BlobStore, Instance, InstanceKind, Locator, SchoolCode, Wave};
use a2a_dbmove::fixture::site_db;
use a2a_files::fixture::{install_template, small};
use chrono::Utc;

use crate::{Shard, SiteConfig, StepError, Template};

/// The `primary` template's own address, which its clones replace.
pub const TEMPLATE_WWWROOT: &str = "https://plantilla.xtec.cat/eix/moodle";

/// Where the fixture sources used to live, `{dns}` standing for each school's name.
pub const OLD_WWWROOT: &str = "https://agora.xtec.cat/{dns}/moodle";

/// The error of writing fixture files at `path`.
fn made(path: &Path, e: std::io::Error) -> StepError {
    StepError::Permanent(format!("fixture files in {}: {e}", path.display()))
}

/// Makes the `primary` template: a fixture database at `db` and fixture files, written
/// under `dir/templates/` and installed under `templates/primary/` of `blob`.
pub async fn primary_template(
    blob: Arc<dyn BlobStore>,
    dir: &Path,
    db: Locator,
) -> Result<Template, StepError> {
    // A SQLite template lives in this folder too.
    let folder = dir.join("templates");
    std::fs::create_dir_all(&folder).map_err(|e| made(&folder, e))?;
    site_db(&db, TEMPLATE_WWWROOT, 7).await?;
    let files = folder.join("primary-moodledata");
    small(&files, 99).map_err(|e| made(&files, e))?;
    install_template(blob, &files, "primary").await?;
    Ok(Template {
        db,
        files: "primary".into(),
        wwwroot: TEMPLATE_WWWROOT.into(),
    })
}

/// The EIX site: new addresses under `eix.example.cat`, one shard `shard-1` at `shard`
/// for up to `capacity` sites, and `template` as `primary`.
pub fn eix_site(shard: Locator, capacity: u32, template: Template) -> SiteConfig {
    SiteConfig {
        host: "eix.example.cat".into(),
        old_wwwroot: OLD_WWWROOT.into(),
        prefix: "mdl_".into(),
        shards: vec![Shard {
            name: "shard-1".into(),
            db: shard,
            capacity,
        }],
        templates: BTreeMap::from([("primary".to_owned(), template)]),
    }
}

/// School `code`, of `kind`, named `Escola <dns>` in wave 1 and bound for `dns`, ready to
/// register. A provision comes from the `primary` template. A migration comes from a
/// fixture site made now: its database at `source_db` (by default a SQLite file under
/// `dir/sources/`) and its files under `dir/sources/`.
pub async fn school(
    code: &SchoolCode,
    kind: InstanceKind,
    dns: &str,
    dir: &Path,
    source_db: Option<Locator>,
) -> Result<Instance, StepError> {
    let mut i = Instance::new(
        code.clone(),
        kind,
        format!("Escola {dns}"),
        Wave(1),
        Utc::now(),
    );
    i.target.dns = Some(dns.into());
    if kind == InstanceKind::Provision {
        i.source.db = Some(Locator::new("template:primary"));
        i.source.files = Some(Locator::new("template:primary"));
        return Ok(i);
    }
    let sources = dir.join("sources");
    std::fs::create_dir_all(&sources).map_err(|e| made(&sources, e))?;
    let db = source_db
        .unwrap_or_else(|| Locator::new(format!("sqlite://{}/{code}.db", sources.display())));
    site_db(&db, &OLD_WWWROOT.replace("{dns}", dns), 3).await?;
    let files = sources.join(format!("{code}-moodledata"));
    small(&files, 5).map_err(|e| made(&files, e))?;
    i.source.db = Some(db);
    i.source.files = Some(Locator::new(files.display().to_string()));
    Ok(i)
}

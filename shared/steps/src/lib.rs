//! The steps of the two workflows, `migrate-instance` and `provision-instance`: one async
//! function per step, written against the ports (`InstanceStore`, `BlobStore`) and the
//! database and files data planes. Each step takes the minimal input
//! `{"school_code": "08012345"}`, looks everything else up in the state store, records a
//! start and an end [`StepEvent`], moves the instance's status with a versioned save, and
//! can be run again with the same result.
//!
//! [`LocalWorkflows`] runs `statemachines/*.asl.json` on the local ASL engine with each
//! `${Name}` resolved to the in-process step of that name.

#![warn(missing_docs)]

mod common;
pub mod error;
mod local;
mod migrate;
mod prefixed;
mod provision;
pub mod secrets;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use a2a_core::{BlobStore, InstanceStore, Locator, SchoolCode, SecretStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use common::{route_key, target_db};
pub use error::StepError;
pub use local::{LocalWorkflows, substitutions};
pub use migrate::PartInput;
pub use prefixed::Prefixed;

/// One target shard: a database server (or, for SQLite, a folder) that holds sites.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shard {
    /// Its name, as recorded in routes and allocation markers.
    pub name: String,
    /// The server's admin URL (`postgres://…/postgres`, `mysql://…/mysql`) or a SQLite
    /// folder (`sqlite:///path/to/folder`). Each site gets database `a2a_<code>` on it.
    pub db: Locator,
    /// How many sites it may hold.
    pub capacity: u32,
}

/// An EIX template: the site every new one is cloned from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Template {
    /// Its database; clones are made on the same server.
    pub db: Locator,
    /// Its files in the data store, under `templates/<files>/`.
    pub files: String,
    /// The template's own address, replaced by the new site's in content.
    pub wwwroot: String,
}

/// What the steps need to know besides the state store: where sites go and come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteConfig {
    /// The host of new addresses: `https://<host>/<dns>/moodle`.
    pub host: String,
    /// The old address of a migrated site, with `{dns}` standing for its short name.
    pub old_wwwroot: String,
    /// The Moodle table prefix.
    pub prefix: String,
    /// The target shards.
    pub shards: Vec<Shard>,
    /// The EIX templates by name (`primary`, `secondary`).
    pub templates: BTreeMap<String, Template>,
}

impl SiteConfig {
    /// The new address of the site `dns`.
    pub fn wwwroot(&self, dns: &str) -> String {
        format!("https://{}/{dns}/moodle", self.host)
    }

    /// The old address of the migrated site `dns`.
    pub fn old_wwwroot(&self, dns: &str) -> String {
        self.old_wwwroot.replace("{dns}", dns)
    }

    /// This configuration with `user` and `password` filled into every shard's and every
    /// template's database URL that has no password of its own
    /// ([`Locator::with_credentials`]; SQLite folders stay as they are). The sites'
    /// databases are derived from their shard's URL, so they log in the same way. Source
    /// databases are not here: they come with each school.
    pub fn with_credentials(mut self, user: &str, password: &str) -> SiteConfig {
        for shard in &mut self.shards {
            shard.db = shard.db.with_credentials(user, password);
        }
        for template in self.templates.values_mut() {
            template.db = template.db.with_credentials(user, password);
        }
        self
    }
}

/// What every step works with: the ports and the site configuration.
#[derive(Clone)]
pub struct StepContext {
    /// The state store.
    pub store: Arc<dyn InstanceStore>,
    /// The data store: sites' files, stages, routes, allocation markers.
    pub blob: Arc<dyn BlobStore>,
    /// Where sites go and come from.
    pub site: Arc<SiteConfig>,
    /// Where each site's own secrets go (its admin password): the only place their plain
    /// text is kept.
    pub secrets: Arc<dyn SecretStore>,
}

/// The steps of `provision-instance`, by the name their `${…}` substitution uses.
pub const PROVISION_STEPS: &[&str] = &[
    "AllocateTarget",
    "CloneTemplate",
    "CopyTemplateFiles",
    "Customise",
    "VerifySite",
    "RegisterRoute",
    "Deprovision",
];

/// The steps of `migrate-instance`, by the name their `${…}` substitution uses.
pub const MIGRATE_STEPS: &[&str] = &[
    "Preflight",
    "Freeze",
    "PlanExport",
    "ExportDatabase",
    "SealExport",
    "SyncFiles",
    "ProvisionTargetDatabase",
    "PlanImport",
    "ImportDatabase",
    "FinishImport",
    "Verify",
    "RewriteConfig",
    "SwitchRoute",
    "Unfreeze",
    "Rollback",
];

/// Runs the step `name` on `input` and returns its result. The input is
/// `{"school_code": …}`, plus: `part` (a number) for `ExportDatabase` and
/// `ImportDatabase`, with optional `max_chunks` and `chunk_rows`; optional `parts` for
/// `PlanExport` and `PlanImport`; `part` (`database`, `database:<n>`, `files`) for
/// `Verify`; optional `seconds` for `SyncFiles`; `error` for the rollbacks.
pub async fn call(ctx: &StepContext, name: &str, input: Value) -> Result<Value, StepError> {
    let code = school_code(&input)?;
    match name {
        "AllocateTarget" => provision::allocate_target(ctx, &code).await,
        "CloneTemplate" => provision::clone_template(ctx, &code).await,
        "CopyTemplateFiles" => provision::copy_template_files(ctx, &code).await,
        "Customise" => provision::customise(ctx, &code).await,
        "VerifySite" => provision::verify_site(ctx, &code).await,
        "RegisterRoute" => provision::register_route(ctx, &code).await,
        "Deprovision" => provision::deprovision(ctx, &code, &failure(&input)).await,
        "Preflight" => migrate::preflight(ctx, &code).await,
        "Freeze" => migrate::freeze(ctx, &code).await,
        "PlanExport" => migrate::plan_export(ctx, &code, number(&input, "parts")?).await,
        "ExportDatabase" => migrate::export_database(ctx, &code, part_input(&input)?).await,
        "SealExport" => migrate::seal_export(ctx, &code).await,
        "SyncFiles" => {
            let seconds = number(&input, "seconds")?.map(|s| Duration::from_secs(s as u64));
            migrate::sync_files(ctx, &code, seconds).await
        }
        "ProvisionTargetDatabase" => migrate::provision_target_database(ctx, &code).await,
        "PlanImport" => migrate::plan_import(ctx, &code, number(&input, "parts")?).await,
        "ImportDatabase" => migrate::import_database(ctx, &code, part_input(&input)?).await,
        "FinishImport" => migrate::finish_import(ctx, &code).await,
        "Verify" => {
            let part = input.get("part").and_then(Value::as_str).unwrap_or("");
            migrate::verify(ctx, &code, part).await
        }
        "RewriteConfig" => migrate::rewrite_config(ctx, &code).await,
        "SwitchRoute" => migrate::switch_route(ctx, &code).await,
        "Unfreeze" => migrate::unfreeze(ctx, &code).await,
        "Rollback" => migrate::rollback(ctx, &code, &failure(&input)).await,
        other => Err(StepError::Input(format!("no step is named {other:?}"))),
    }
}

/// An optional whole number of a step's input.
fn number(input: &Value, field: &str) -> Result<Option<usize>, StepError> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                StepError::Input(format!("the input's {field:?} is {v}, not a whole number"))
            }),
    }
}

/// The part a Map iteration works on, and its optional limits.
fn part_input(input: &Value) -> Result<PartInput, StepError> {
    Ok(PartInput {
        part: number(input, "part")?.ok_or_else(|| {
            StepError::Input("the input has no \"part\" number (the Map's item)".into())
        })?,
        max_chunks: number(input, "max_chunks")?.map(|n| n as u64),
        chunk_rows: number(input, "chunk_rows")?,
    })
}

/// The school code of a step's input, checked.
fn school_code(input: &Value) -> Result<SchoolCode, StepError> {
    let raw = input
        .get("school_code")
        .and_then(Value::as_str)
        .ok_or_else(|| StepError::Input("the input has no \"school_code\" string".into()))?;
    SchoolCode::parse(raw).map_err(|e| StepError::Input(e.to_string()))
}

/// The failure a rollback was caught with (`{"Error", "Cause"}` under `error`), as text.
fn failure(input: &Value) -> String {
    let e = input.get("error");
    let name = e
        .and_then(|e| e.get("Error"))
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let cause = e
        .and_then(|e| e.get("Cause"))
        .and_then(Value::as_str)
        .unwrap_or("");
    // A Lambda-style cause is JSON with the message inside.
    let message = serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| cause.to_owned());
    format!("{name}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_reach_every_shard_and_template_but_not_a_password_of_its_own() {
        let site: SiteConfig = serde_json::from_value(serde_json::json!({
            "host": "eix.example.cat",
            "old_wwwroot": "https://agora.example.cat/{dns}/moodle",
            "prefix": "mdl_",
            "shards": [
                {"name": "a", "db": "mysql://10.0.0.1:3306/mysql", "capacity": 1},
                {"name": "b", "db": "postgres://own:pw@10.0.0.2/postgres", "capacity": 1},
                {"name": "c", "db": "sqlite:///srv/shard-c", "capacity": 1}
            ],
            "templates": {
                "primary": {"db": "mysql://10.0.0.1:3306/tpl_primary", "files": "p",
                            "wwwroot": "https://t/p"}
            }
        }))
        .unwrap();
        let site = site.with_credentials("a2a", "p@ss/w:rd");
        let dbs: Vec<&str> = site.shards.iter().map(|s| s.db.expose()).collect();
        assert_eq!(
            dbs,
            [
                "mysql://a2a:p%40ss%2Fw%3Ard@10.0.0.1:3306/mysql",
                "postgres://own:pw@10.0.0.2/postgres",
                "sqlite:///srv/shard-c",
            ]
        );
        assert_eq!(
            site.templates["primary"].db.expose(),
            "mysql://a2a:p%40ss%2Fw%3Ard@10.0.0.1:3306/tpl_primary"
        );
        // A site's database keeps the shard's login.
        let code = SchoolCode::parse("08012345").unwrap();
        assert_eq!(
            target_db(&site.shards[0], &code).expose(),
            "mysql://a2a:p%40ss%2Fw%3Ard@10.0.0.1:3306/a2a_08012345"
        );
        let shown = format!("{site:?}");
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );
    }
}

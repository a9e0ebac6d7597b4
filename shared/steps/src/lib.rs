//! The steps of the two workflows, `migrate-instance` and `provision-instance`: one async
//! function per step, written against the ports (`InstanceStore`, `BlobStore`) and the
//! database and files data planes. Each step takes the minimal input
//! `{"school_code": "08012345"}`, looks everything else up in the state store, records a
//! start and an end [`StepEvent`], moves the instance's status with a versioned save, and
//! can be run again with the same result. The step table ([`STEPS`]) lists them, with
//! their workflow, side, budget, memory and timeout, and [`call`] dispatches through it.
//!
//! The local `Workflows` adapter that runs them in-process is `a2a_local::AslWorkflows`,
//! with [`call`] as its task callback.

#![warn(missing_docs)]

mod checks;
mod common;
pub mod error;
pub mod fixture;
mod journal;
mod migrate;
mod prefixed;
mod provision;
pub mod secrets;
mod table;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use a2a_core::{BlobStore, InstanceStore, Locator, SecretStore};
use serde::{Deserialize, Serialize};

pub use common::{route_key, target_db};
pub use error::StepError;
pub use migrate::{PartInput, RETIRE_STEP, Retired, retire};
pub use prefixed::Prefixed;
pub use table::{
    HEARTBEAT, STEPS, Side, Step, StepFuture, bin_name, call, names, names_on, step, steps_of,
};

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

/// What is wrong with a site configuration, by its key (`shards[1].capacity`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("site.{key}: {why}")]
pub struct SiteError {
    /// The key at fault, under `site.`: `host`, `shards[0].db`, `templates.primary.files`.
    pub key: String,
    /// Why, and what would do.
    pub why: String,
}

/// A name of a-z, 0-9 and '-' (at most 63), as templates are named.
fn lower_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl SiteConfig {
    /// Checks what can be checked without connecting: the host, the old address's
    /// `{dns}`, the table prefix, at least one shard, each with a unique name that can
    /// name its allocations, room for a site and a database URL of a known engine, and
    /// each template's name, files and database URL. The CLI's `[site]` and the step
    /// Lambdas' `A2A_SITE` are checked by this one function.
    pub fn check(&self) -> Result<(), SiteError> {
        let bad = |key: String, why: String| Err(SiteError { key, why });
        if self.host.is_empty() || self.host.contains(['/', ' ']) {
            return bad("host".into(), format!("{:?} is not a host name", self.host));
        }
        if !self.old_wwwroot.contains("{dns}") {
            return bad(
                "old_wwwroot".into(),
                "must hold {dns}, which stands for each site's short name".into(),
            );
        }
        let prefix_ok = !self.prefix.is_empty()
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !prefix_ok {
            return bad(
                "prefix".into(),
                format!(
                    "{:?} is not a table prefix (letters, digits, '_')",
                    self.prefix
                ),
            );
        }
        if self.shards.is_empty() {
            return bad("shards".into(), "no shard: sites could go nowhere".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (n, shard) in self.shards.iter().enumerate() {
            let key = |k: &str| format!("shards[{n}].{k}");
            let name_ok = !shard.name.is_empty()
                && shard
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return bad(
                    key("name"),
                    format!(
                        "{:?}: a shard name is letters, digits, '-' and '_'",
                        shard.name
                    ),
                );
            }
            if !names.insert(&shard.name) {
                return bad(key("name"), format!("{:?} is named twice", shard.name));
            }
            if shard.capacity == 0 {
                return bad(key("capacity"), "0: the shard could hold no site".into());
            }
            if let Err(e) = a2a_dbmove::Engine::of(&shard.db) {
                return bad(key("db"), e.to_string());
            }
        }
        for (name, t) in &self.templates {
            if !lower_name(name) {
                return bad(
                    format!("templates.{name}"),
                    "a template name is lower-case letters, digits and '-'".into(),
                );
            }
            if !lower_name(&t.files) {
                return bad(
                    format!("templates.{name}.files"),
                    format!(
                        "{:?}: the files' name is lower-case letters, digits and '-'",
                        t.files
                    ),
                );
            }
            if let Err(e) = a2a_dbmove::Engine::of(&t.db) {
                return bad(format!("templates.{name}.db"), e.to_string());
            }
        }
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn good_site() -> SiteConfig {
        serde_json::from_value(serde_json::json!({
            "host": "eix.example.cat",
            "old_wwwroot": "https://agora.example.cat/{dns}/moodle",
            "prefix": "mdl_",
            "shards": [{"name": "a", "db": "sqlite:///srv/a", "capacity": 5}],
            "templates": {"primary": {"db": "mysql://10.0.0.1:3306/tpl", "files": "primary",
                                      "wwwroot": "https://t/p"}}
        }))
        .unwrap()
    }

    #[test]
    fn a_site_is_checked_key_by_key() {
        good_site().check().unwrap();
        type Spoil = fn(&mut SiteConfig);
        let cases: Vec<(Spoil, &str)> = vec![
            (|s| s.host = "a b".into(), "host"),
            (|s| s.host.clear(), "host"),
            (|s| s.old_wwwroot = "https://x/moodle".into(), "old_wwwroot"),
            (|s| s.prefix = "mdl;".into(), "prefix"),
            (|s| s.shards.clear(), "shards"),
            (|s| s.shards[0].capacity = 0, "shards[0].capacity"),
            (
                |s| s.shards[0].db = Locator::new("oracle://x/y"),
                "shards[0].db",
            ),
            (|s| s.shards[0].name = "../a".into(), "shards[0].name"),
            (
                |s| {
                    let again = s.shards[0].clone();
                    s.shards.push(again)
                },
                "shards[1].name",
            ),
            (
                |s| {
                    let t = s.templates.remove("primary").unwrap();
                    s.templates.insert("Primary".into(), t);
                },
                "templates.Primary",
            ),
            (
                |s| s.templates.get_mut("primary").unwrap().files = "../x".into(),
                "templates.primary.files",
            ),
            (
                |s| s.templates.get_mut("primary").unwrap().db = Locator::new("x"),
                "templates.primary.db",
            ),
        ];
        for (spoil, key) in cases {
            let mut site = good_site();
            spoil(&mut site);
            let e = site.check().unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.to_string().starts_with(&format!("site.{key}: ")), "{e}");
        }
    }

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
        let code = a2a_core::SchoolCode::parse("08012345").unwrap();
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

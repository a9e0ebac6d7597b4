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

mod common;
pub mod error;
mod migrate;
mod prefixed;
mod provision;
mod table;

use std::collections::BTreeMap;
use std::sync::Arc;

use a2a_core::{BlobStore, InstanceStore, Locator};
use serde::{Deserialize, Serialize};

pub use common::{route_key, target_db};
pub use error::StepError;
pub use migrate::PartInput;
pub use prefixed::Prefixed;
pub use table::{STEPS, Side, Step, StepFuture, bin_name, call, names, step, steps_of};

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

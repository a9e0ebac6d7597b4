//! The backend choices (`sqlite` | `dynamodb:TABLE`, `dir` | `s3://BUCKET/PREFIX`,
//! `memory` | `sqs:URL`) and [`Backends`], the one place that opens them as ports (and
//! reads the deployed stack's outputs, `--stack`), with [`Local`], the embedded backends
//! of the local engine.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use a2a_core::{BlobStore, InstanceStore, Locator, Snapshots, UploadLedger, WorkQueue, Workflows};

use crate::{CliError, Config};

/// Which state store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StateSpec {
    /// SQLite, in `<home>/state.db`.
    #[default]
    Sqlite,
    /// A DynamoDB table of the single-table design.
    DynamoDb {
        /// The table's name.
        table: String,
    },
}

/// Which blob store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BlobSpec {
    /// A folder, `<home>/blobs`.
    #[default]
    Dir,
    /// An S3 bucket, keys under a prefix.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without slashes at either end; may be empty.
        prefix: String,
    },
}

/// Which work queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueueSpec {
    /// In-process: it lives as long as the command.
    #[default]
    Memory,
    /// An SQS queue, by URL.
    Sqs {
        /// The queue URL.
        url: String,
    },
}

impl StateSpec {
    /// Parses `sqlite` or `dynamodb:TABLE`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "sqlite" {
            return Ok(Self::Sqlite);
        }
        let Some(table) = s.strip_prefix("dynamodb:") else {
            return Err("expected \"sqlite\" or \"dynamodb:TABLE\"".into());
        };
        let ok_len = (3..=255).contains(&table.len());
        let ok_chars = table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok_len || !ok_chars {
            return Err(format!(
                "{table:?} is not a DynamoDB table name (3 to 255 of a-z A-Z 0-9 _ . -)"
            ));
        }
        Ok(Self::DynamoDb {
            table: table.into(),
        })
    }
}

impl StateSpec {
    /// The store as messages name it: `state (sqlite)`, `state (dynamodb:TABLE)`.
    pub fn label(&self) -> String {
        format!("state ({self})")
    }
}

impl BlobSpec {
    /// Parses `dir` or `s3://BUCKET[/PREFIX]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "dir" {
            return Ok(Self::Dir);
        }
        let Some(rest) = s.strip_prefix("s3://") else {
            return Err("expected \"dir\" or \"s3://BUCKET/PREFIX\"".into());
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let ok_len = (3..=63).contains(&bucket.len());
        let ok_chars = bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-".contains(&b));
        if !ok_len || !ok_chars {
            return Err(format!(
                "{bucket:?} is not an S3 bucket name (3 to 63 of a-z 0-9 . -)"
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            a2a_core::BlobKey::parse(prefix).map_err(|e| format!("prefix: {e}"))?;
        }
        Ok(Self::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        })
    }
}

impl QueueSpec {
    /// Parses `memory` or `sqs:URL`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "memory" {
            return Ok(Self::Memory);
        }
        match s.strip_prefix("sqs:") {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Ok(Self::Sqs { url: url.into() })
            }
            Some(url) => Err(format!("{url:?} is not a queue URL (http:// or https://)")),
            None => Err("expected \"memory\" or \"sqs:QUEUE_URL\"".into()),
        }
    }
}

impl fmt::Display for StateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite => f.write_str("sqlite"),
            Self::DynamoDb { table } => write!(f, "dynamodb:{table}"),
        }
    }
}

impl fmt::Display for BlobSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir => f.write_str("dir"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl fmt::Display for QueueSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Sqs { url } => write!(f, "sqs:{url}"),
        }
    }
}

/// The embedded state store's file, in the home.
pub(crate) const STATE_DB: &str = "state.db";
/// The folder blob store's folder, in the home.
pub(crate) const BLOBS_DIR: &str = "blobs";
/// The sites' own secrets, under the home (`a2a secret show`).
pub(crate) const SECRETS_DIR: &str = "secrets";
/// Deliveries of one message before the in-process queue dead-letters it: many, since a
/// deferred message comes back every round while the cap on executions is full.
const MEMORY_MAX_RECEIVES: u32 = 1000;

/// The one place the CLI opens its ports: state, blobs, queue, workflows and snapshots, on
/// the embedded backends or on AWS. The SDK configuration is loaded once, at the first AWS
/// backend a command opens, and shared by every client after it, so a command on the
/// embedded backends never touches AWS (nor its credential chain).
#[derive(Default)]
pub struct Backends {
    sdk: tokio::sync::OnceCell<a2a_aws::config::SdkConfig>,
    stack: tokio::sync::OnceCell<a2a_aws::stack::DeployedStack>,
}

impl Backends {
    /// Nothing opened yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The SDK configuration, loaded on first use.
    async fn sdk(&self) -> &a2a_aws::config::SdkConfig {
        self.sdk.get_or_init(a2a_aws::config::sdk_config).await
    }

    /// The state store, as a store and as the upload ledger (one backend). With `create`
    /// false, an embedded store that does not exist yet is `None`, so read-only commands
    /// leave an empty home as they found it.
    pub async fn state_and_ledger(
        &self,
        config: &Config,
        create: bool,
    ) -> Result<Option<(Arc<dyn InstanceStore>, Arc<dyn UploadLedger>)>, CliError> {
        match &config.state {
            StateSpec::Sqlite => {
                if !create && !config.home.join(STATE_DB).exists() {
                    return Ok(None);
                }
                let s = open_sqlite(&config.home).await?;
                Ok(Some((Arc::new(s.clone()), Arc::new(s))))
            }
            StateSpec::DynamoDb { table } => {
                let s = a2a_aws::DynamoDbStore::from_conf(self.sdk().await, table);
                Ok(Some((Arc::new(s.clone()), Arc::new(s))))
            }
        }
    }

    /// The state store, opened (and, embedded, created) if missing.
    pub async fn state(&self, config: &Config) -> Result<Arc<dyn InstanceStore>, CliError> {
        self.state_and_ledger(config, true)
            .await?
            .map(|(store, _)| store)
            .ok_or_else(|| CliError::Failed("the state store did not open".into()))
    }

    /// The state store if there is one: an embedded store not made yet is `None`.
    pub async fn existing_state(
        &self,
        config: &Config,
    ) -> Result<Option<Arc<dyn InstanceStore>>, CliError> {
        Ok(self
            .state_and_ledger(config, false)
            .await?
            .map(|(store, _)| store))
    }

    /// The blob store of the configuration, and how to show a key of it to a person (the
    /// text put before the key).
    pub async fn blobs(&self, config: &Config) -> Result<(Arc<dyn BlobStore>, String), CliError> {
        match &config.blobs {
            BlobSpec::Dir => {
                let root = config.home.join(BLOBS_DIR);
                Ok((
                    Arc::new(open_dir(&config.home)?),
                    format!("{}/", root.display()),
                ))
            }
            BlobSpec::S3 { bucket, prefix } => {
                let shown = if prefix.is_empty() {
                    format!("s3://{bucket}/")
                } else {
                    format!("s3://{bucket}/{prefix}/")
                };
                Ok((Arc::new(self.s3(bucket, prefix).await), shown))
            }
        }
    }

    /// A blob store named on the command line by `flag` (`--stage`, `--to`): a folder or
    /// `s3://BUCKET/PREFIX`; `role` names a folder in messages (`stage`, `target`). With the
    /// store comes a label for messages: the URL, or `folder DIR`.
    pub async fn blob_arg(
        &self,
        flag: &str,
        arg: &str,
        role: &str,
    ) -> Result<(Arc<dyn BlobStore>, String), CliError> {
        if arg.starts_with("s3://") {
            let spec = BlobSpec::parse(arg).map_err(|e| {
                CliError::input(format!("{flag} {arg:?}: {e}"), "use s3://BUCKET/PREFIX")
            })?;
            let BlobSpec::S3 { bucket, prefix } = spec else {
                unreachable!("an s3:// spec parses to S3");
            };
            return Ok((Arc::new(self.s3(&bucket, &prefix).await), arg.to_owned()));
        }
        if arg.contains("://") {
            return Err(CliError::input(
                format!("{flag} {arg:?}: only folders and s3:// are supported"),
                "use a folder path or s3://BUCKET/PREFIX",
            ));
        }
        let store = a2a_local::FsBlob::new(Path::new(arg))
            .map_err(|e| CliError::from_port(&format!("{role} folder {arg}"), e))?;
        Ok((Arc::new(store), format!("folder {arg}")))
    }

    async fn s3(&self, bucket: &str, prefix: &str) -> a2a_aws::S3Blob {
        a2a_aws::S3Blob::from_conf(self.sdk().await, bucket, prefix)
    }

    /// The work queue of `spec`. The in-process one lives as long as the command.
    pub async fn queue(&self, spec: &QueueSpec) -> Arc<dyn WorkQueue> {
        match spec {
            QueueSpec::Memory => Arc::new(a2a_local::MemQueue::new(MEMORY_MAX_RECEIVES)),
            QueueSpec::Sqs { url } => Arc::new(a2a_aws::SqsQueue::from_conf(self.sdk().await, url)),
        }
    }

    /// The deployed Step Functions state machines, by ARN.
    pub async fn step_functions(&self, migrate: String, provision: String) -> Arc<dyn Workflows> {
        Arc::new(a2a_aws::SfnWorkflows::from_conf(
            self.sdk().await,
            migrate,
            provision,
        ))
    }

    /// The deployed stack `name`'s outputs (`--stack`), read from CloudFormation at the
    /// first call and kept for the command's other ports.
    pub async fn stack(&self, name: &str) -> Result<a2a_aws::stack::DeployedStack, CliError> {
        let sdk = self.sdk().await;
        let stack = self
            .stack
            .get_or_try_init(|| crate::deployed::describe(sdk, name))
            .await?;
        if stack.name == name {
            Ok(stack.clone())
        } else {
            crate::deployed::describe(sdk, name).await
        }
    }

    /// Step Functions' activities, as the on-premises worker takes their tasks.
    pub async fn activities(&self) -> Arc<dyn a2a_core::Activities> {
        Arc::new(a2a_aws::SfnActivities::from_conf(self.sdk().await))
    }

    /// Snapshots of the RDS cluster `cluster`, taken before each wave.
    pub async fn snapshots(&self, cluster: String) -> Arc<dyn Snapshots> {
        Arc::new(a2a_aws::RdsSnapshots::from_conf(self.sdk().await, cluster))
    }

    /// The sites' own secrets: Secrets Manager under `prefix` when `aws` is given, else the
    /// home's private folder. The label names the backend in messages.
    pub async fn secrets(
        &self,
        config: &Config,
        aws: Option<&str>,
    ) -> (Arc<dyn a2a_core::SecretStore>, &'static str) {
        match aws {
            Some(prefix) => (
                Arc::new(a2a_aws::SmSecrets::from_conf(self.sdk().await, prefix)),
                "secrets (Secrets Manager)",
            ),
            None => (Arc::new(open_secrets(&config.home)), "secrets (home)"),
        }
    }
}

/// The home's secret folder (made, 0700, at the first secret).
fn open_secrets(home: &Path) -> a2a_local::FileSecrets {
    a2a_local::FileSecrets::new(home.join(SECRETS_DIR))
}

/// The embedded state store of `home` (created if missing).
async fn open_sqlite(home: &Path) -> Result<a2a_local::SqliteStore, CliError> {
    a2a_local::SqliteStore::open(&home.join(STATE_DB))
        .await
        .map_err(|e| CliError::from_port("state (sqlite)", e))
}

/// The folder blob store of `home`.
fn open_dir(home: &Path) -> Result<a2a_local::FsBlob, CliError> {
    a2a_local::FsBlob::new(home.join(BLOBS_DIR)).map_err(|e| CliError::from_port("blobs (dir)", e))
}

/// The embedded backends of the local engine (`a2a demo`, `a2a run`, a local `a2a start`),
/// and where the sites' databases go.
pub(crate) struct Local {
    /// The state store (and upload ledger).
    pub(crate) store: Arc<a2a_local::SqliteStore>,
    /// The folder blob store.
    pub(crate) blob: Arc<dyn BlobStore>,
    /// The sites' own secrets, `<home>/secrets/` (files 0600).
    pub(crate) secrets: Arc<dyn a2a_core::SecretStore>,
    /// `<home>/demo`, where generated sites and SQLite targets go.
    pub(crate) demo: PathBuf,
    /// The `--db` server, if given.
    pub(crate) server: Option<Locator>,
    /// The `[site]` of a2a.toml, if any.
    pub(crate) spec: Option<crate::config::SiteSpec>,
}

impl Local {
    /// Opens the embedded backends for `what` (a command, in messages): refused when the
    /// configuration names other backends, or when `db` is not a server URL or clashes with
    /// the `[site]` of a2a.toml.
    pub(crate) async fn open(
        config: &Config,
        db: Option<&str>,
        what: &str,
    ) -> Result<Local, CliError> {
        if config.state != StateSpec::Sqlite || config.blobs != BlobSpec::Dir {
            return Err(CliError::input(
                format!("{what} runs on the embedded backends only"),
                "drop --state/--blobs (or the [backends] of a2a.toml)",
            ));
        }
        if db.is_some() && config.site.is_some() {
            return Err(CliError::input(
                format!("{what}: --db and the [site] of a2a.toml both say where sites go"),
                "drop --db to use [site], or run with a home whose a2a.toml has no [site]",
            ));
        }
        let server = db.map(Locator::new);
        if let Some(s) = &server
            && !matches!(
                a2a_dbmove::Engine::of(s),
                Ok(a2a_dbmove::Engine::Postgres | a2a_dbmove::Engine::MySql)
            )
        {
            return Err(CliError::input(
                format!("--db {s}: not a PostgreSQL or MySQL/MariaDB URL"),
                "use postgres://USER@HOST/postgres or mysql://USER@HOST/mysql",
            ));
        }
        let home = &config.home;
        let demo = home.join("demo");
        std::fs::create_dir_all(&demo)
            .map_err(|e| CliError::Failed(format!("demo: creating the demo folder: {e}")))?;
        Ok(Local {
            store: Arc::new(open_sqlite(home).await?),
            blob: Arc::new(open_dir(home)?),
            secrets: Arc::new(open_secrets(home)),
            demo,
            server,
            spec: config.site.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_embedded_backends_never_load_the_sdk() {
        use clap::Parser as _;
        let home = tempfile::tempdir().unwrap();
        let home_arg = home.path().display().to_string();
        let cli = crate::Cli::try_parse_from(["a2a", "--home", &home_arg, "status"]).unwrap();
        let config = Config::resolve(&cli).unwrap();
        let ports = Backends::new();
        assert!(ports.existing_state(&config).await.unwrap().is_none());
        assert!(
            !home.path().join(STATE_DB).exists(),
            "reading made no store"
        );
        ports.state(&config).await.unwrap();
        assert!(home.path().join(STATE_DB).exists());
        let (_, shown) = ports.blobs(&config).await.unwrap();
        assert!(shown.ends_with("/blobs/"), "{shown}");
        ports.queue(&config.queue).await;
        let stage = home.path().join("stage").display().to_string();
        let (_, label) = ports.blob_arg("--stage", &stage, "stage").await.unwrap();
        assert_eq!(label, format!("folder {stage}"));
        assert!(ports.sdk.get().is_none(), "no AWS backend, no SDK config");
        let e = ports
            .blob_arg("--stage", "ftp://host/x", "stage")
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("only folders and s3://"), "{e}");
    }

    #[test]
    fn specs_parse_and_print_back() {
        for s in ["sqlite", "dynamodb:a2a-state"] {
            assert_eq!(StateSpec::parse(s).unwrap().to_string(), s);
        }
        for s in ["dir", "s3://agora-a2a/staging/eix"] {
            assert_eq!(BlobSpec::parse(s).unwrap().to_string(), s);
        }
        for s in ["memory", "sqs:https://sqs.eu-west-1.amazonaws.com/1/q"] {
            assert_eq!(QueueSpec::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn bad_specs_say_what_is_expected() {
        assert!(
            StateSpec::parse("dynamo")
                .unwrap_err()
                .contains("dynamodb:TABLE")
        );
        assert!(StateSpec::parse("dynamodb:a b").is_err());
        assert!(StateSpec::parse("dynamodb:").is_err());
        assert!(BlobSpec::parse("s3://Agora").is_err());
        assert!(BlobSpec::parse("s3://agora/../x").is_err());
        assert!(BlobSpec::parse("/tmp").is_err());
        assert!(QueueSpec::parse("sqs:queue-name").is_err());
    }
}

//! Where the CLI's settings come from: the flags, then `<home>/a2a.toml`, then defaults.

use std::path::{Path, PathBuf};

use a2a_core::Window;
use serde::Deserialize;

use crate::backends::{BlobSpec, QueueSpec, StateSpec};
use crate::{Cli, CliError};

/// The settings one command runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The A2A home folder.
    pub home: PathBuf,
    /// The state store.
    pub state: StateSpec,
    /// The blob store.
    pub blobs: BlobSpec,
    /// The work queue.
    pub queue: QueueSpec,
    /// The scheduler's and the dispatcher's settings (`[schedule]`).
    pub schedule: Schedule,
    /// The deployed AWS resources (`[aws]`).
    pub aws: Aws,
    /// Where sites go and the EIX templates (`[site]`); `None`: the embedded default.
    pub site: Option<SiteSpec>,
}

/// `[site]`: the target shards and the EIX templates of a real run, as `a2a run` and a
/// local `a2a start` use them instead of the generated ones of `a2a demo`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    /// The host of new addresses: `https://<host>/<dns>/moodle`.
    pub host: String,
    /// The old address of a migrated site, with `{dns}` for its short name.
    pub old_wwwroot: String,
    /// The Moodle table prefix (default `mdl_`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The target shards (`[[site.shards]]`).
    pub shards: Vec<ShardSpec>,
    /// The EIX templates by name (`[site.templates.primary]`).
    #[serde(default)]
    pub templates: std::collections::BTreeMap<String, TemplateSpec>,
}

/// One target shard of `[site]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSpec {
    /// Its name, as routes and allocation markers record it.
    pub name: String,
    /// The server's admin URL, or `sqlite:///folder` for SQLite files.
    pub db: String,
    /// How many sites it may hold.
    pub capacity: u32,
}

/// One EIX template of `[site]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// Its database.
    pub db: String,
    /// Its moodledata folder, copied into the data store on first use.
    pub files: PathBuf,
    /// Its own address, replaced by each new site's.
    pub wwwroot: String,
}

fn default_prefix() -> String {
    a2a_dbmove::DEFAULT_PREFIX.to_owned()
}

impl SiteSpec {
    /// Checks what can be checked without connecting, as the step Lambdas check
    /// `A2A_SITE` (`a2a_steps::SiteConfig::check`); the error names the key.
    fn check(&self, path: &Path) -> Result<(), CliError> {
        let shard = |s: &ShardSpec| a2a_steps::Shard {
            name: s.name.clone(),
            db: a2a_core::Locator::new(s.db.clone()),
            capacity: s.capacity,
        };
        // Each template's files are named after it once installed (its folder is checked
        // when it is).
        let template = |(name, t): (&String, &TemplateSpec)| {
            let db = a2a_core::Locator::new(t.db.clone());
            let (files, wwwroot) = (name.clone(), t.wwwroot.clone());
            let t = a2a_steps::Template { db, files, wwwroot };
            (name.clone(), t)
        };
        let site = a2a_steps::SiteConfig {
            host: self.host.clone(),
            old_wwwroot: self.old_wwwroot.clone(),
            prefix: self.prefix.clone(),
            shards: self.shards.iter().map(shard).collect(),
            templates: self.templates.iter().map(template).collect(),
        };
        site.check().map_err(|e| {
            CliError::input(
                format!("{}: {e}", path.display()),
                format!("fix [site] in {}", path.display()),
            )
        })
    }
}

/// `[schedule]`: when and how much work may start.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Migration windows (`windows = ["Mon-Fri 21:00-06:00 Europe/Madrid"]`, the default).
    pub windows: Vec<Window>,
    /// New instances enqueued per night at most (default 150).
    pub nightly_quota: usize,
    /// Executions in flight at most (default 25).
    pub max_running: usize,
    /// Runs per instance at most (default 3).
    pub max_attempts: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            windows: vec![Window::parse(Schedule::DEFAULT_WINDOW).expect("the default parses")],
            nightly_quota: 150,
            max_running: 25,
            max_attempts: 3,
        }
    }
}

impl Schedule {
    /// The window used when `a2a.toml` names none: school nights in Catalonia.
    pub const DEFAULT_WINDOW: &'static str = "Mon-Fri 21:00-06:00 Europe/Madrid";
}

/// `[aws]`: the state machines of the deployed stack.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aws {
    /// The ARN of `migrate-instance`.
    pub migrate_state_machine: Option<String>,
    /// The ARN of `provision-instance`.
    pub provision_state_machine: Option<String>,
    /// The RDS cluster of the targets, snapshotted before each wave starts.
    pub target_cluster: Option<String>,
}

/// `a2a.toml` as written. Unknown keys are errors: a misspelt key silently ignored would
/// send a migration to the wrong backend.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    backends: FileBackends,
    #[serde(default)]
    schedule: FileSchedule,
    #[serde(default)]
    aws: FileAws,
    site: Option<SiteSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchedule {
    windows: Option<Vec<toml::Spanned<String>>>,
    nightly_quota: Option<u32>,
    max_running: Option<u32>,
    max_attempts: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAws {
    migrate_state_machine: Option<String>,
    provision_state_machine: Option<String>,
    target_cluster: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackends {
    state: Option<toml::Spanned<String>>,
    blobs: Option<toml::Spanned<String>>,
    queue: Option<toml::Spanned<String>>,
}

impl Config {
    /// The file name of the configuration inside the home.
    pub const FILE: &'static str = "a2a.toml";

    /// Resolves the settings for `cli`: a flag wins over the file, the file over the
    /// default. Reads nothing but the configuration file and writes nothing.
    pub fn resolve(cli: &Cli) -> Result<Self, CliError> {
        // Absolute from here on: paths under the home end up in school lists and in the
        // state, which take absolute folders only, and must not change with the cwd.
        let home = std::path::absolute(&cli.home).map_err(|e| {
            CliError::input(
                format!("the A2A home {}: {e}", cli.home.display()),
                "pass --home with an absolute folder, or set A2A_HOME",
            )
        })?;
        if home.exists() && !home.is_dir() {
            return Err(CliError::input(
                format!("the A2A home {} is not a folder", home.display()),
                "pass --home with a folder (it is created when needed), or set A2A_HOME",
            ));
        }
        let path = home.join(Self::FILE);
        let (file, text) = read_file(&path)?;
        let state = choose(
            "state",
            &cli.state,
            &file.backends.state,
            StateSpec::parse,
            &path,
            &text,
        )?;
        let blobs = choose(
            "blobs",
            &cli.blobs,
            &file.backends.blobs,
            BlobSpec::parse,
            &path,
            &text,
        )?;
        let queue = choose(
            "queue",
            &cli.queue,
            &file.backends.queue,
            QueueSpec::parse,
            &path,
            &text,
        )?;
        let schedule = schedule(&file.schedule, &path, &text)?;
        let aws = Aws {
            migrate_state_machine: file.aws.migrate_state_machine.clone(),
            provision_state_machine: file.aws.provision_state_machine.clone(),
            target_cluster: file.aws.target_cluster.clone(),
        };
        if let Some(site) = &file.site {
            site.check(&path)?;
        }
        Ok(Self {
            home,
            state,
            blobs,
            queue,
            schedule,
            aws,
            site: file.site,
        })
    }
}

/// `[schedule]` with its defaults; a bad window is named with its line.
fn schedule(file: &FileSchedule, path: &Path, text: &str) -> Result<Schedule, CliError> {
    let mut s = Schedule::default();
    if let Some(windows) = &file.windows {
        s.windows = windows
            .iter()
            .map(|w| {
                Window::parse(w.get_ref()).map_err(|e| {
                    CliError::input(
                        format!(
                            "{}:{}: schedule.windows: {e}",
                            path.display(),
                            line_of(text, w.span().start)
                        ),
                        format!("fix {}", path.display()),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        if s.windows.is_empty() {
            return Err(CliError::input(
                format!(
                    "{}: schedule.windows is empty: nothing could ever start",
                    path.display()
                ),
                format!(
                    "name at least one window, such as {:?}",
                    Schedule::DEFAULT_WINDOW
                ),
            ));
        }
    }
    let positive = |key: &str, v: Option<u32>| -> Result<Option<u32>, CliError> {
        match v {
            Some(0) => Err(CliError::input(
                format!(
                    "{}: schedule.{key} = 0: nothing could ever start",
                    path.display()
                ),
                format!("set schedule.{key} to 1 or more in {}", path.display()),
            )),
            v => Ok(v),
        }
    };
    if let Some(n) = positive("nightly_quota", file.nightly_quota)? {
        s.nightly_quota = n as usize;
    }
    if let Some(n) = positive("max_running", file.max_running)? {
        s.max_running = n as usize;
    }
    if let Some(n) = positive("max_attempts", file.max_attempts)? {
        s.max_attempts = n;
    }
    Ok(s)
}

/// One backend's spec: the flag if given, else the file's value, else the default. A bad
/// value is named with where it came from: the flag, or the file and its line.
fn choose<T: Default>(
    key: &str,
    flag: &Option<String>,
    file: &Option<toml::Spanned<String>>,
    parse: fn(&str) -> Result<T, String>,
    path: &Path,
    text: &str,
) -> Result<T, CliError> {
    if let Some(v) = flag {
        return parse(v).map_err(|why| {
            CliError::input(
                format!("--{key} {v:?}: {why}"),
                format!("see `a2a --help` for the forms --{key} takes"),
            )
        });
    }
    let Some(v) = file else {
        return Ok(T::default());
    };
    parse(v.get_ref()).map_err(|why| {
        CliError::input(
            format!(
                "{}:{}: backends.{key} = {:?}: {why}",
                path.display(),
                line_of(text, v.span().start),
                v.get_ref()
            ),
            format!("fix {} or override it with --{key}", path.display()),
        )
    })
}

/// Reads and parses the file; a missing file is an empty configuration.
fn read_file(path: &Path) -> Result<(File, String), CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((File::default(), String::new()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(CliError::input(
                format!("{}: not UTF-8 text", path.display()),
                "save a2a.toml as UTF-8",
            ));
        }
        Err(e) => {
            return Err(CliError::environment(
                format!("cannot read {}: {e}", path.display()),
                "check the file's permissions",
            ));
        }
    };
    let file: File = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| line_of(&text, s.start));
        let at = line.map(|l| format!(":{l}")).unwrap_or_default();
        CliError::input(
            format!("{}{at}: {}", path.display(), e.message()),
            format!(
                "{} is TOML with the tables [backends] (state, blobs, queue), [schedule] \
                 (windows, nightly_quota, max_running, max_attempts), [aws] \
                 (migrate_state_machine, provision_state_machine, target_cluster) and [site] (host, \
                 old_wwwroot, prefix, [[site.shards]], [site.templates.NAME])",
                path.display()
            ),
        )
    })?;
    Ok((file, text))
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(home: &Path, extra: &[&str]) -> Cli {
        let mut args = vec!["a2a", "--home", home.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push("status");
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn defaults_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::resolve(&cli(dir.path(), &[])).unwrap();
        assert_eq!(c.state, StateSpec::Sqlite);
        assert_eq!(c.blobs, BlobSpec::Dir);
        assert_eq!(c.queue, QueueSpec::Memory);
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a2a.toml"),
            "[backends]\nstate = \"dynamodb:a2a-state\"\nblobs = \"s3://agora-a2a/eix\"\n",
        )
        .unwrap();
        let c = Config::resolve(&cli(dir.path(), &[])).unwrap();
        assert_eq!(
            c.state,
            StateSpec::DynamoDb {
                table: "a2a-state".into()
            }
        );
        assert_eq!(
            c.blobs,
            BlobSpec::S3 {
                bucket: "agora-a2a".into(),
                prefix: "eix".into()
            }
        );
        let c = Config::resolve(&cli(dir.path(), &["--state", "sqlite"])).unwrap();
        assert_eq!(c.state, StateSpec::Sqlite);
    }

    #[test]
    fn a_bad_value_names_the_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a2a.toml"),
            "# A2A\n[backends]\nstate = \"sqlite\"\nqueue = \"rabbit\"\n",
        )
        .unwrap();
        let e = Config::resolve(&cli(dir.path(), &[])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("a2a.toml:4: backends.queue = \"rabbit\""),
            "{msg}"
        );
    }

    #[test]
    fn a_site_is_checked_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(Config::FILE);
        let good = "[site]\nhost = \"eix.example.cat\"\nold_wwwroot = \"https://a/{dns}/moodle\"\n\
                    [[site.shards]]\nname = \"a\"\ndb = \"sqlite:///srv/a\"\ncapacity = 5\n";
        std::fs::write(&f, good).unwrap();
        let c = Config::resolve(&cli(dir.path(), &[])).unwrap();
        let site = c.site.unwrap();
        assert_eq!((site.shards.len(), site.prefix.as_str()), (1, "mdl_"));
        for (bad, key) in [
            (good.replace("{dns}", "x"), "site.old_wwwroot"),
            (
                good.replace("capacity = 5", "capacity = 0"),
                "site.shards[0].capacity",
            ),
            (
                good.replace("sqlite:///srv/a", "oracle://x/y"),
                "site.shards[0].db",
            ),
            (good.replace("eix.example.cat", "a b"), "site.host"),
            (
                format!(
                    "{good}[[site.shards]]\nname = \"a\"\ndb = \"sqlite:///b\"\ncapacity = 1\n"
                ),
                "site.shards[1].name",
            ),
        ] {
            std::fs::write(&f, &bad).unwrap();
            let e = Config::resolve(&cli(dir.path(), &[])).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn schedule_and_aws_keys_with_defaults_and_bad_windows_named() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::resolve(&cli(dir.path(), &[])).unwrap();
        assert_eq!(c.schedule, Schedule::default());
        assert_eq!(c.aws, Aws::default());
        let f = dir.path().join("a2a.toml");
        std::fs::write(
            &f,
            "[schedule]\nwindows = [\"Sat 08:00-20:00 Europe/Madrid\", \"daily 01:00-05:00 UTC\"]\n\
             nightly_quota = 40\nmax_running = 5\n\n[aws]\n\
             provision_state_machine = \"arn:aws:states:eu-west-1:1:stateMachine:p\"\n",
        )
        .unwrap();
        let c = Config::resolve(&cli(dir.path(), &[])).unwrap();
        assert_eq!(c.schedule.windows.len(), 2);
        assert_eq!((c.schedule.nightly_quota, c.schedule.max_running), (40, 5));
        assert_eq!(c.schedule.max_attempts, 3);
        assert_eq!(c.aws.migrate_state_machine, None);
        assert!(c.aws.provision_state_machine.unwrap().ends_with(":p"));

        std::fs::write(
            &f,
            "[schedule]\nwindows = [\n  \"Mon-Fri 21:00-06:00 Europe/Barcelona\",\n]\n",
        )
        .unwrap();
        let e = Config::resolve(&cli(dir.path(), &[])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("a2a.toml:3: schedule.windows"),
            "{e}"
        );
        std::fs::write(&f, "[schedule]\nmax_running = 0\n").unwrap();
        assert_eq!(
            Config::resolve(&cli(dir.path(), &[]))
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn broken_toml_and_unknown_keys_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a2a.toml");
        std::fs::write(&f, "[backends]\nstate = \"sqlite\nblobs = 3\n").unwrap();
        let e = Config::resolve(&cli(dir.path(), &[])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("a2a.toml:2"), "{e}");

        std::fs::write(&f, "[backends]\n\nstat = \"sqlite\"\n").unwrap();
        let e = Config::resolve(&cli(dir.path(), &[])).unwrap_err();
        assert!(e.to_string().contains("a2a.toml:3"), "{e}");
        assert!(e.to_string().contains("stat"), "{e}");
    }
}

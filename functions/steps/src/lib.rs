//! The step Lambdas of both workflows. Each binary under `src/bin/` is one row of the step
//! table (`a2a_steps::STEPS`), named by `a2a_steps::bin_name`, and only calls [`run`] with
//! its name; everything else is here, written once.
//!
//! [`run`] builds the step context from the environment once per cold start
//! ([`Steps::from_env`]: the DynamoDB state table, the S3 data bucket and the site
//! configuration), then hands every event to [`Steps::call`], which runs the step as
//! [`handle`] does (a plain async function that tests call without the Lambda runtime) and
//! follows a rotated database secret. A failed step comes back as a [`StepFailure`], whose
//! `errorType` is the step error's name (`A2A.Transient`, `A2A.Permanent.Input`, …): the
//! name that the state machines' Retry and Catch match.
//!
//! Environment ([`StepEnv`], checked whole before the first event, every problem named by
//! its variable; `A2A_SITE` checked as the CLI checks `[site]`, by [`SiteConfig::check`]):
//! `A2A_TABLE` (the state table), `A2A_BUCKET` (the data bucket) and
//! `A2A_SITE` (the [`SiteConfig`] as JSON), all required; optionally `A2A_PREFIX` (a key
//! prefix inside the bucket) and `A2A_DB_SECRET` (the ARN or name of a Secrets Manager
//! secret `{"username", "password"}` whose user and password log in to every shard and
//! template database of `A2A_SITE` that has no password of its own) and `A2A_DB_CA_KEY`
//! (the key, in the data store, of the CA bundle that a database URL names with
//! `sslrootcert=bundle` or `ssl-ca=bundle`; read once at the cold start, [`load_ca_bundle`]).

#![warn(missing_docs)]

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use a2a_aws::{DbCredentials, DbSecret};
use a2a_core::{BlobKey, BlobStore};
use a2a_steps::{SiteConfig, StepContext, StepError};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::Instrument;

/// A step that failed, as the Lambda runtime reports it: `errorType` is the error's name.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {error}")]
pub struct StepFailure {
    /// The step's name.
    pub step: String,
    /// Why it failed.
    pub error: StepError,
}

impl StepFailure {
    /// The error name that Retry and Catch match.
    pub fn error_type(&self) -> &'static str {
        self.error.name()
    }
}

impl From<StepFailure> for Diagnostic {
    fn from(f: StepFailure) -> Self {
        Diagnostic {
            error_type: f.error_type().to_owned(),
            error_message: f.to_string(),
        }
    }
}

/// Runs step `step` on `input` (the state's input: `{"school_code": …}`, plus `part` or
/// `error` for some steps) and returns its result.
pub async fn handle(step: &str, input: Value, ctx: &StepContext) -> Result<Value, StepFailure> {
    a2a_steps::call(ctx, step, input)
        .await
        .map_err(|error| StepFailure {
            step: step.to_owned(),
            error,
        })
}

/// The site configuration of `A2A_SITE`, parsed and checked as the CLI checks its `[site]`
/// ([`SiteConfig::check`]); the error names the variable and the key.
pub fn site_from_json(json: &str) -> Result<SiteConfig, String> {
    let site: SiteConfig = serde_json::from_str(json)
        .map_err(|e| format!("A2A_SITE: not a site configuration: {e}"))?;
    site.check().map_err(|e| format!("A2A_SITE: {e}"))?;
    Ok(site)
}

/// The environment of a step Lambda, checked whole: every problem is reported at once,
/// each naming its variable.
#[derive(Debug)]
pub struct StepEnv {
    /// `A2A_TABLE`: the DynamoDB state table.
    pub table: String,
    /// `A2A_BUCKET`: the S3 data bucket.
    pub bucket: String,
    /// `A2A_PREFIX`: a key prefix inside the bucket (optional; empty: the bucket's root).
    pub prefix: String,
    /// `A2A_SITE`: the site configuration, checked.
    pub site: SiteConfig,
    /// `A2A_DB_SECRET`: the database secret's ARN or name (optional).
    pub db_secret: Option<String>,
    /// `A2A_SECRET_PREFIX`: the prefix of the sites' own secrets, named
    /// `<prefix>a2a/<code>/…` (the template's stack name; optional).
    pub secret_prefix: String,
    /// `A2A_DB_CA_KEY`: the key of the databases' CA bundle in the data store (optional).
    pub db_ca_key: Option<BlobKey>,
}

impl StepEnv {
    /// The process environment, checked.
    pub fn from_env() -> Result<StepEnv, String> {
        StepEnv::from_vars(a2a_fn_bootstrap::var)
    }

    /// The environment that `var` gives (a variable set but blank counts as unset).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<StepEnv, String> {
        let mut problems = Vec::new();
        let mut required = |name: &str| {
            let v = var(name).filter(|v| !v.trim().is_empty());
            if v.is_none() {
                problems.push(format!("{name} is not set"));
            }
            v.unwrap_or_default()
        };
        let table = required("A2A_TABLE");
        let bucket = required("A2A_BUCKET");
        let site = required("A2A_SITE");
        let prefix = var("A2A_PREFIX").unwrap_or_default().trim().to_owned();
        let inner = prefix.trim_matches('/');
        if !inner.is_empty() && inner.split('/').any(|s| matches!(s, "" | "." | "..")) {
            problems.push(format!(
                "A2A_PREFIX: {prefix:?} is not a key prefix (folders joined by '/', no '.' or '..')"
            ));
        }
        let site = if site.is_empty() {
            None
        } else {
            site_from_json(&site).map_err(|e| problems.push(e)).ok()
        };
        let db_secret = var("A2A_DB_SECRET")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let secret_prefix = var("A2A_SECRET_PREFIX").unwrap_or_default();
        let db_ca_key = var("A2A_DB_CA_KEY")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .and_then(|k| {
                BlobKey::parse(&k)
                    .map_err(|e| problems.push(format!("A2A_DB_CA_KEY: {k:?}: {e}")))
                    .ok()
            });
        match site {
            Some(site) if problems.is_empty() => Ok(StepEnv {
                table,
                bucket,
                prefix,
                site,
                db_secret,
                secret_prefix,
                db_ca_key,
            }),
            _ => Err(problems.join("; ")),
        }
    }
}

/// The step context of the environment: DynamoDB table `A2A_TABLE`, S3 bucket `A2A_BUCKET`
/// (under `A2A_PREFIX`), and the site configuration of `A2A_SITE`.
///
/// With `A2A_DB_SECRET` set, the secret's user and password are fetched here and filled
/// into the shards' and templates' database URLs ([`SiteConfig::with_credentials`]). A
/// secret that cannot be read fails the start, naming the variable. The context returned
/// is fixed: a password rotated later reaches it only through [`Steps`], which [`run`]
/// uses and which reads the secret again when a step fails as transient.
pub async fn context_from_env() -> Result<StepContext, String> {
    Ok(StepContext::clone(&Steps::from_env().await?.context()))
}

/// Reads the databases' CA bundle (PEM) at `key` of the data store and makes it the one a
/// database URL names with `sslrootcert=bundle` or `ssl-ca=bundle`, for the rest of the
/// process ([`a2a_dbmove::set_ca_bundle`]). `shown` names it in messages (its S3 URL).
/// Returns how many certificates it holds. An unreadable key, or an object that holds no
/// certificate, is an error naming `A2A_DB_CA_KEY` and the object: the function fails its
/// start rather than every connection later.
pub async fn load_ca_bundle(
    blob: &dyn BlobStore,
    key: &BlobKey,
    shown: &str,
) -> Result<usize, String> {
    let pem = blob
        .get(key)
        .await
        .map_err(|e| format!("A2A_DB_CA_KEY: cannot read the CA bundle {shown}: {e}"))?;
    let n = a2a_dbmove::set_ca_bundle(shown, &pem).map_err(|e| format!("A2A_DB_CA_KEY: {e}"))?;
    tracing::info!(
        bundle = shown,
        certificates = n,
        "database CA bundle loaded"
    );
    Ok(n)
}

/// How long a warm function waits before reading the database secret again after a read
/// that found it unchanged or failed: a flapping network makes every step fail as
/// transient, and must not turn each failure into a Secrets Manager call.
pub const SECRET_RECHECK_INTERVAL: Duration = Duration::from_secs(30);

/// The step context of a function for its whole life, following a rotated database secret.
///
/// The secret is read once at the start; when it is rotated later (RDS rotates its managed
/// secrets every seven days), a warm function would keep the old password, every login
/// would fail as `A2A.Transient`, and the state machine's Retry would come back to the same
/// container. So when a step fails as transient and `A2A_DB_SECRET` is set, the secret is
/// read again (at most once per [`SECRET_RECHECK_INTERVAL`] while it stays unchanged); if
/// its user or password differ from those in use, the site configuration is rebuilt from
/// `A2A_SITE` with them, swapped in, and the step run once more (steps are idempotent).
/// Otherwise the step's failure is returned as it was.
pub struct Steps {
    current: RwLock<Arc<StepContext>>,
    secret: Option<SecretReload>,
}

/// What reading the secret again needs.
struct SecretReload {
    secret: DbSecret,
    /// `A2A_SITE` as given, before any credentials were filled in.
    site: SiteConfig,
    state: Mutex<ReloadState>,
}

/// The credentials in use, and when the secret may be read next.
struct ReloadState {
    creds: DbCredentials,
    limit: RecheckLimit,
}

/// When the secret may be read again.
///
/// Only a read that found the credentials unchanged (or failed) holds the next one back,
/// for `interval`. After a change the next transient failure may read at once: the new
/// password may itself be stale by then, and a test can check the unchanged case right
/// after a rotation without waiting. A change being a rotation, reads stay bounded: one
/// per rotation, plus one per interval.
#[derive(Debug)]
struct RecheckLimit {
    interval: Duration,
    /// When the last read that did not find a change started.
    held_since: Option<Instant>,
}

impl RecheckLimit {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            held_since: None,
        }
    }

    /// Whether a read may start at `now`. A read that starts holds the next ones back
    /// until [`RecheckLimit::changed`], so that failures at the same time read only once.
    fn try_start(&mut self, now: Instant) -> bool {
        if self
            .held_since
            .is_some_and(|t| now.saturating_duration_since(t) < self.interval)
        {
            return false;
        }
        self.held_since = Some(now);
        true
    }

    /// The read that started found new credentials: the next may come at once.
    fn changed(&mut self) {
        self.held_since = None;
    }
}

impl Steps {
    /// The context of the environment ([`StepEnv::from_env`]). With
    /// `A2A_DB_SECRET` set, the secret is read here; one that cannot be read fails the
    /// start, naming the variable.
    pub async fn from_env() -> Result<Steps, String> {
        let env = StepEnv::from_env()?;
        let site = env.site;
        let conf = a2a_aws::config::lambda_sdk_config().await?;
        let (site_in_use, secret) = match env.db_secret {
            None => (site, None),
            Some(id) => {
                let secret = DbSecret::from_conf(&conf, &id);
                let creds = secret
                    .fetch()
                    .await
                    .map_err(|e| format!("A2A_DB_SECRET: {e}"))?;
                let in_use = site
                    .clone()
                    .with_credentials(creds.username(), creds.password());
                let state = ReloadState {
                    creds,
                    limit: RecheckLimit::new(SECRET_RECHECK_INTERVAL),
                };
                let reload = SecretReload {
                    secret,
                    site,
                    state: Mutex::new(state),
                };
                (in_use, Some(reload))
            }
        };
        let blob = a2a_aws::S3Blob::from_conf(&conf, &env.bucket, &env.prefix);
        if let Some(key) = &env.db_ca_key {
            let shown = match env.prefix.trim_matches('/') {
                "" => format!("s3://{}/{key}", env.bucket),
                p => format!("s3://{}/{p}/{key}", env.bucket),
            };
            load_ca_bundle(&blob, key, &shown).await?;
        }
        let ctx = StepContext {
            store: Arc::new(a2a_aws::DynamoDbStore::from_conf(&conf, env.table)),
            blob: Arc::new(blob),
            site: Arc::new(site_in_use),
            secrets: Arc::new(a2a_aws::SmSecrets::from_conf(&conf, env.secret_prefix)),
        };
        Ok(Steps {
            current: RwLock::new(Arc::new(ctx)),
            secret,
        })
    }

    /// The context in use now.
    pub fn context(&self) -> Arc<StepContext> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs step `step` on `input` as [`handle`] does, once more if it failed as transient
    /// and the database secret has changed ([`Steps::retry_after_reload`]).
    pub async fn call(&self, step: &str, input: Value) -> Result<Value, StepFailure> {
        self.retry_after_reload(|ctx| {
            let input = input.clone();
            // Boxed: nested in `run`'s future it would pass the compiler's layout depth limit.
            async move { Box::pin(a2a_steps::call(&ctx, step, input)).await }
        })
        .await
        .map_err(|error| StepFailure {
            step: step.to_owned(),
            error,
        })
    }

    /// Runs `op` on the context in use. When it fails as [`StepError::Transient`] and
    /// the database secret now holds another user or password, runs it once more on a
    /// context with them, which stays in use; otherwise returns the failure as it was.
    pub async fn retry_after_reload<T, F, Fut>(&self, mut op: F) -> Result<T, StepError>
    where
        F: FnMut(Arc<StepContext>) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let error = match op(self.context()).await {
            Err(e) if e.is_transient() => e,
            done => return done,
        };
        match self.reload().await {
            Some(ctx) => op(ctx).await,
            None => Err(error),
        }
    }

    /// Reads the secret again, unless there is none or the limit holds the read back. When
    /// its credentials differ from those in use, swaps in a context with them and returns it.
    async fn reload(&self) -> Option<Arc<StepContext>> {
        let reload = self.secret.as_ref()?;
        if !reload.lock().limit.try_start(Instant::now()) {
            return None;
        }
        // Errors name the secret, never its content.
        let creds = match reload.secret.fetch().await {
            Ok(creds) => creds,
            Err(e) => {
                tracing::warn!("could not read the database secret again: {e}");
                return None;
            }
        };
        let mut state = reload.lock();
        if state.creds == creds {
            tracing::debug!(
                secret = reload.secret.id(),
                "the database secret is unchanged"
            );
            return None;
        }
        let now = self.context();
        let site = reload
            .site
            .clone()
            .with_credentials(creds.username(), creds.password());
        let ctx = Arc::new(StepContext {
            store: now.store.clone(),
            blob: now.blob.clone(),
            site: Arc::new(site),
            secrets: now.secrets.clone(),
        });
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = ctx.clone();
        state.creds = creds;
        state.limit.changed();
        tracing::info!(
            secret = reload.secret.id(),
            "the database secret changed: credentials reloaded"
        );
        Some(ctx)
    }
}

impl SecretReload {
    /// The state, even if a panic poisoned it: it is replaced whole, never half-written.
    fn lock(&self) -> std::sync::MutexGuard<'_, ReloadState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The whole Lambda of step `step`: logging, the context from the environment, then
/// [`Steps::call`] for every event, each in a span with the school code and the request id.
pub async fn run(step: &'static str) -> Result<(), lambda_runtime::Error> {
    a2a_fn_bootstrap::init_logging();
    let steps = Arc::new(
        a2a_fn_bootstrap::init(async {
            // A binary whose name is not in the step table fails its start, not each event;
            // so does a source-side step's: no Lambda opens a source.
            match a2a_steps::step(step) {
                None => return Err(format!("no step of a2a_steps::STEPS is named {step:?}")),
                Some(s) if s.side == a2a_steps::Side::Source => {
                    return Err(format!(
                        "step {step} is a source-side step: `a2a worker` runs it, next to \
                         the sources, never a Lambda"
                    ));
                }
                Some(_) => {}
            }
            Steps::from_env().await
        })
        .await?,
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let steps = steps.clone();
        async move {
            let code = event
                .payload
                .get("school_code")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let span = tracing::info_span!(
                "step",
                step,
                school_code = %code,
                request_id = %event.context.request_id
            );
            // On a worker thread, beside the database connections' tasks, as `a2a` runs
            // its commands: from the runtime's own thread, each message a connection
            // received woke it across threads.
            let payload = event.payload;
            let call = tokio::spawn(
                async move { steps.call(step, payload).await }.instrument(span.clone()),
            );
            let result = match call.await {
                Ok(result) => result,
                // A panic stays the handler's, for the runtime to report.
                Err(e) => match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(e) => Err(StepFailure {
                        step: step.to_owned(),
                        error: StepError::Transient(format!("the step stopped: {e}")),
                    }),
                },
            };
            span.in_scope(|| match &result {
                Ok(_) => tracing::info!("done"),
                Err(f) => tracing::warn!(error_type = f.error_type(), "{f}"),
            });
            result
        }
    }))
    .await
}

#[cfg(test)]
mod ca_tests;

#[cfg(test)]
mod tests {
    /// An environment of `pairs` only, for `StepEnv::from_vars`.
    pub(crate) fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    use super::*;
    use a2a_steps::STEPS;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// The `[[bin]]`s of Cargo.toml, the files of `src/bin/` and the step table agree:
    /// one binary per target-side row, named `step-<kebab name>`, calling `run` with the
    /// row's name; none for a source-side row.
    #[test]
    fn every_step_has_a_binary_and_every_binary_a_step() {
        let manifest: toml::Table = toml::from_str(include_str!("../Cargo.toml")).unwrap();
        let bins: BTreeMap<&str, &str> = manifest["bin"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["name"].as_str().unwrap(), b["path"].as_str().unwrap()))
            .collect();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut problems = Vec::new();
        for step in STEPS {
            let name = step.bin_name();
            if step.side == a2a_steps::Side::Source {
                if bins.contains_key(name.as_str()) {
                    problems.push(format!(
                        "[[bin]] {name}: step {} is source-side, run by `a2a worker`, not a Lambda",
                        step.name
                    ));
                }
                continue;
            }
            let Some(path) = bins.get(name.as_str()) else {
                problems.push(format!(
                    "step {}: no [[bin]] in functions/steps/Cargo.toml; add\n[[bin]]\nname = \"{name}\"\npath = \"src/bin/{name}.rs\"\ntest = false",
                    step.name
                ));
                continue;
            };
            let call = format!("a2a_fn_steps::run(\"{}\")", step.name);
            match std::fs::read_to_string(dir.join(path)) {
                Ok(main) if main.contains(&call) => {}
                Ok(_) => problems.push(format!("{path}: does not call {call}")),
                Err(e) => problems.push(format!("{path} (step {}): {e}", step.name)),
            }
        }
        for name in bins.keys() {
            if !STEPS
                .iter()
                .any(|s| s.bin_name() == *name && s.side == a2a_steps::Side::Target)
            {
                problems.push(format!("[[bin]] {name}: no step of a2a_steps::STEPS"));
            }
        }
        for e in std::fs::read_dir(dir.join("src/bin")).unwrap().flatten() {
            let file = format!("src/bin/{}", e.file_name().to_string_lossy());
            if !bins.values().any(|p| *p == file) {
                problems.push(format!("{file}: no [[bin]] names it"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    async fn context(dir: &std::path::Path) -> StepContext {
        StepContext {
            store: Arc::new(a2a_local::SqliteStore::open_in_memory().await.unwrap()),
            blob: Arc::new(a2a_local::FsBlob::new(dir.join("blobs")).unwrap()),
            secrets: Arc::new(a2a_local::FileSecrets::new(dir.join("secrets"))),
            site: Arc::new(site_from_json(SITE).unwrap()),
        }
    }

    #[tokio::test]
    async fn a_bad_input_fails_with_the_name_catch_matches() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path()).await;
        let failure = handle("Preflight", json!({"school": 1}), &ctx)
            .await
            .unwrap_err();
        assert_eq!(failure.error_type(), "A2A.Permanent.Input");
        let d = Diagnostic::from(failure);
        assert_eq!(d.error_type, "A2A.Permanent.Input");
        assert!(
            d.error_message.starts_with("Preflight: "),
            "{}",
            d.error_message
        );
    }

    #[tokio::test]
    async fn an_unknown_instance_is_a_permanent_error() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path()).await;
        let failure = handle("Preflight", json!({"school_code": "08012345"}), &ctx)
            .await
            .unwrap_err();
        assert!(
            failure.error_type().starts_with("A2A.Permanent"),
            "{failure:?}"
        );
    }

    #[test]
    fn the_secret_is_read_again_once_per_interval_while_unchanged() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut limit = RecheckLimit::new(s(30));
        assert!(limit.try_start(t0), "the first read");
        // Unchanged: held back for the interval, failures at the same time included.
        assert!(!limit.try_start(t0));
        assert!(!limit.try_start(t0 + s(29)));
        assert!(limit.try_start(t0 + s(30)));
        // That read found new credentials: the next failure may read at once…
        limit.changed();
        assert!(limit.try_start(t0 + s(31)));
        // …and, unchanged again, holds the next back.
        assert!(!limit.try_start(t0 + s(32)));
        assert!(!limit.try_start(t0 + s(60)));
        assert!(limit.try_start(t0 + s(61)));
        assert_eq!(SECRET_RECHECK_INTERVAL, s(30));
    }

    const SITE: &str = r#"{"host": "eix.example.cat", "old_wwwroot": "https://agora.example.cat/{dns}/moodle",
        "prefix": "mdl_", "shards": [{"name": "a", "db": "sqlite:///a2a-nowhere/a", "capacity": 1}],
        "templates": {}}"#;

    #[test]
    fn a_bad_site_configuration_is_named() {
        let err = site_from_json("{}").unwrap_err();
        assert!(err.starts_with("A2A_SITE"), "{err}");
        // Checked as the CLI checks [site]: the key is named.
        let err = site_from_json(&SITE.replace("\"capacity\": 1", "\"capacity\": 0")).unwrap_err();
        assert_eq!(
            err,
            "A2A_SITE: site.shards[0].capacity: 0: the shard could hold no site"
        );
    }

    #[test]
    fn the_whole_environment_is_checked_at_once() {
        let env = StepEnv::from_vars(vars(&[
            ("A2A_TABLE", "t"),
            ("A2A_BUCKET", "b"),
            ("A2A_SITE", SITE),
            ("A2A_PREFIX", "runs/2026/"),
            ("A2A_DB_SECRET", " arn:secret "),
        ]))
        .unwrap();
        assert_eq!((env.table.as_str(), env.bucket.as_str()), ("t", "b"));
        assert_eq!(
            (env.prefix.as_str(), env.db_secret.as_deref()),
            ("runs/2026/", Some("arn:secret"))
        );
        assert_eq!(env.site.shards[0].name, "a");

        let err = StepEnv::from_vars(vars(&[
            ("A2A_BUCKET", " "),
            ("A2A_PREFIX", "runs/../x"),
            ("A2A_SITE", r#"{"host": "x"}"#),
        ]))
        .unwrap_err();
        a2a_testkit::assert_contains_all(
            &err,
            &[
                "A2A_TABLE is not set",
                "A2A_BUCKET is not set",
                "A2A_PREFIX",
                "A2A_SITE: not a site configuration",
            ],
        );
        let err = StepEnv::from_vars(vars(&[("A2A_TABLE", "t"), ("A2A_BUCKET", "b")])).unwrap_err();
        assert_eq!(err, "A2A_SITE is not set");
    }
}

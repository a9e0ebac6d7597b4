//! The step Lambdas of both workflows. Each binary under `src/bin/` is one step of
//! `a2a_steps::PROVISION_STEPS` or `MIGRATE_STEPS`, and only calls [`run`] with its name;
//! everything else is here, written once.
//!
//! [`run`] builds the [`StepContext`] from the environment once per cold start
//! ([`context_from_env`]: the DynamoDB state table, the S3 data bucket and the site
//! configuration), then hands every event to [`handle`], a plain async function that tests
//! call without the Lambda runtime. A failed step comes back as a [`StepFailure`], whose
//! `errorType` is the step error's name (`A2A.Transient`, `A2A.Permanent.Input`, …): the
//! name that the state machines' Retry and Catch match.
//!
//! Environment: `A2A_TABLE` (the state table), `A2A_BUCKET` (the data bucket) and
//! `A2A_SITE` (the [`SiteConfig`] as JSON), all required; optionally `A2A_PREFIX` (a key
//! prefix inside the bucket) and `A2A_DB_SECRET` (the ARN or name of a Secrets Manager
//! secret `{"username", "password"}` whose user and password log in to every shard and
//! template database of `A2A_SITE` that has no password of its own).

#![warn(missing_docs)]

use std::sync::Arc;

use a2a_steps::{SiteConfig, StepContext, StepError};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::Instrument;

/// The binary of step `step`: `step-` and the name in kebab case
/// (`ProvisionTargetDatabase` → `step-provision-target-database`).
pub fn bin_name(step: &str) -> String {
    let mut out = String::from("step");
    for c in step.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

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

/// The site configuration of `A2A_SITE`, parsed.
pub fn site_from_json(json: &str) -> Result<SiteConfig, String> {
    serde_json::from_str(json).map_err(|e| format!("A2A_SITE: not a site configuration: {e}"))
}

/// The step context of the environment: DynamoDB table `A2A_TABLE`, S3 bucket `A2A_BUCKET`
/// (under `A2A_PREFIX`), and the site configuration of `A2A_SITE`.
///
/// With `A2A_DB_SECRET` set, the secret's user and password are fetched here, once per
/// cold start, and filled into the shards' and templates' database URLs
/// ([`SiteConfig::with_credentials`]): a password rotated later reaches the function at
/// its next cold start. A secret that cannot be read fails the start, naming the variable.
pub async fn context_from_env() -> Result<StepContext, String> {
    let table = a2a_fn_bootstrap::required("A2A_TABLE")?;
    let bucket = a2a_fn_bootstrap::required("A2A_BUCKET")?;
    let prefix = a2a_fn_bootstrap::var("A2A_PREFIX").unwrap_or_default();
    let mut site = site_from_json(&a2a_fn_bootstrap::required("A2A_SITE")?)?;
    let conf = a2a_aws::config::lambda_sdk_config().await?;
    if let Some(secret) = a2a_fn_bootstrap::var("A2A_DB_SECRET") {
        let creds = a2a_aws::DbSecret::from_conf(&conf, secret.trim())
            .fetch()
            .await
            .map_err(|e| format!("A2A_DB_SECRET: {e}"))?;
        site = site.with_credentials(creds.username(), creds.password());
    }
    Ok(StepContext {
        store: Arc::new(a2a_aws::DynamoDbStore::from_conf(&conf, table)),
        blob: Arc::new(a2a_aws::S3Blob::from_conf(&conf, bucket, prefix)),
        site: Arc::new(site),
    })
}

/// The whole Lambda of step `step`: logging, the context from the environment, then
/// [`handle`] for every event, each in a span with the school code and the request id.
pub async fn run(step: &'static str) -> Result<(), lambda_runtime::Error> {
    a2a_fn_bootstrap::init_logging();
    let ctx = Arc::new(a2a_fn_bootstrap::init(context_from_env()).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let ctx = ctx.clone();
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
            let result = handle(step, event.payload, &ctx)
                .instrument(span.clone())
                .await;
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
mod tests {
    use super::*;
    use a2a_steps::{MIGRATE_STEPS, PROVISION_STEPS};
    use serde_json::json;

    #[test]
    fn every_step_has_a_binary() {
        let manifest: toml::Table = toml::from_str(include_str!("../Cargo.toml")).unwrap();
        let bins: Vec<(&str, &str)> = manifest["bin"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["name"].as_str().unwrap(), b["path"].as_str().unwrap()))
            .collect();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for step in PROVISION_STEPS.iter().chain(MIGRATE_STEPS) {
            let name = bin_name(step);
            let (_, path) = bins
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no [[bin]] {name} for step {step}"));
            let main = std::fs::read_to_string(dir.join(path)).unwrap();
            assert!(
                main.contains(&format!("a2a_fn_steps::run(\"{step}\")")),
                "{path} does not run step {step}"
            );
        }
        assert_eq!(bins.len(), PROVISION_STEPS.len() + MIGRATE_STEPS.len());
    }

    #[test]
    fn binary_names_are_kebab_case() {
        assert_eq!(
            bin_name("ProvisionTargetDatabase"),
            "step-provision-target-database"
        );
        assert_eq!(bin_name("Verify"), "step-verify");
    }

    async fn context(dir: &std::path::Path) -> StepContext {
        StepContext {
            store: Arc::new(a2a_local::SqliteStore::open_in_memory().await.unwrap()),
            blob: Arc::new(a2a_local::FsBlob::new(dir.join("blobs")).unwrap()),
            site: Arc::new(
                site_from_json(
                    r#"{"host": "eix.example.cat", "old_wwwroot": "https://agora.example.cat/{dns}/moodle",
                        "prefix": "mdl_", "shards": [], "templates": {}}"#,
                )
                .unwrap(),
            ),
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
    fn a_bad_site_configuration_is_named() {
        let err = site_from_json("{}").unwrap_err();
        assert!(err.starts_with("A2A_SITE"), "{err}");
    }
}

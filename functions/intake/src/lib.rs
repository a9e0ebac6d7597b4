//! The intake Lambda's handler: for each S3 `ObjectCreated` record of a school list under
//! `uploads/`, read the object as a stream (up to the size limit), take it in with the
//! very code `a2a upload` runs (`a2a_intake::take_list`), and write the reports beside it,
//! under `reports/` of the same bucket.
//!
//! The object is read, and the reports written, through the `BlobStore` port
//! ([`S3Blob`]). A plain async function over an [`S3Event`], so tests call it without the
//! Lambda runtime; `main.rs` only wires it to `lambda_runtime`. [`Config::from_env`] reads
//! and checks the whole environment before any client is built.

#![warn(missing_docs)]

use std::sync::Arc;

use a2a_aws::S3Blob;
use a2a_core::{
    BlobKey, BlobStore, InstanceKind, InstanceStore, PortError, SecretStore, UploadLedger,
};
use a2a_fn_bootstrap::{Env, EnvError, FromEnv};
use a2a_intake::{Intake, Options, TakeError};
use aws_lambda_events::event::s3::S3Event;
use serde::Serialize;

/// Where lists are uploaded; other keys are ignored.
pub const UPLOADS: &str = "uploads/";

/// What happened to one record of the event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum RecordOutcome {
    /// Not a school list (outside `uploads/`, or not `.csv`), or not an object event.
    Ignored {
        /// The bucket.
        bucket: String,
        /// The key, decoded.
        key: String,
        /// Why.
        why: String,
    },
    /// The file was refused as a whole; the error report says why.
    Refused {
        /// The bucket.
        bucket: String,
        /// The key, decoded.
        key: String,
        /// Why.
        why: String,
        /// The error report's key.
        report: String,
    },
    /// The same content was taken in before: nothing changed.
    Already {
        /// The bucket.
        bucket: String,
        /// The key, decoded.
        key: String,
        /// The content's SHA-256 (of the list as kept: without passwords).
        sha256: String,
        /// Whether the object held passwords and was replaced by a copy without them.
        redacted: bool,
    },
    /// Taken in now.
    TakenIn {
        /// The bucket.
        bucket: String,
        /// The key, decoded.
        key: String,
        /// Rows accepted.
        accepted: usize,
        /// Rows rejected.
        rejected: usize,
        /// The error report's key.
        report: String,
        /// The summary's key.
        summary: String,
        /// Whether the object held passwords and was replaced by a copy without them.
        redacted: bool,
    },
}

/// A record that could not be handled because of the environment (S3, DynamoDB). The
/// event fails so that Lambda retries it; records taken in already say so on the retry.
#[derive(Debug, thiserror::Error)]
#[error("{bucket}/{key}: {message}")]
pub struct RecordError {
    /// The bucket.
    pub bucket: String,
    /// The key, decoded.
    pub key: String,
    /// What failed.
    pub message: String,
    /// The Lambda `errorType`: named after the port error's kind
    /// ([`a2a_fn_bootstrap::Failure::from_port`]), so a missing object is told from an
    /// unreachable service.
    pub error_type: &'static str,
}

impl RecordError {
    fn new(bucket: &str, key: &str, error: &PortError) -> Self {
        Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message: error.to_string(),
            error_type: a2a_fn_bootstrap::Failure::from_port(error).error_type,
        }
    }
}

impl From<RecordError> for lambda_runtime::Diagnostic {
    fn from(e: RecordError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// Decodes an S3 event key: S3 URL-encodes it, with `+` for a space and `%XX` for other
/// bytes (accents come as their UTF-8 bytes).
pub fn decode_key(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("key {raw:?} has a bad %-escape at byte {i}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("key {raw:?} does not decode to UTF-8"))
}

/// The intake's environment: `A2A_TABLE` (the state table, required), `A2A_SECRET_PREFIX`
/// (the prefix of the secrets that source database passwords are moved into; default
/// none), and the planning
/// options: `A2A_INTAKE_KIND` (`migrate` or `provision`, the default) for lists that do not
/// say, `A2A_WAVE_SIZE` (default 50), `A2A_MAX_MB` (default 50).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The state table.
    pub table: String,
    /// The prefix of the secrets' names in Secrets Manager.
    pub secret_prefix: String,
    /// How lists are planned.
    pub options: Options,
}

impl FromEnv for Config {
    fn read(mut env: Env) -> Result<Config, EnvError> {
        let table = env.required("A2A_TABLE");
        let secret_prefix = env.optional("A2A_SECRET_PREFIX").unwrap_or_default();
        let mut options = Options::default();
        let kind = env.parsed("A2A_INTAKE_KIND", |k| match k {
            "migrate" => Ok(InstanceKind::Migrate),
            "provision" => Ok(InstanceKind::Provision),
            _ => Err("expected migrate or provision"),
        });
        if let Some(kind) = kind {
            options.kind = kind;
        }
        if let Some(n) = env.whole("A2A_WAVE_SIZE", 1u32) {
            options.wave_size = n;
        }
        if let Some(mb) = env.whole("A2A_MAX_MB", 1u64) {
            options.max_bytes = mb.saturating_mul(1_000_000);
        }
        env.finish(Config {
            table,
            secret_prefix,
            options,
        })
    }
}

/// The handler and what it needs: S3 for the objects and the reports, the state store.
pub struct Handler {
    s3: S3Blob,
    store: Arc<dyn InstanceStore>,
    ledger: Arc<dyn UploadLedger>,
    secrets: Arc<dyn SecretStore>,
    opts: Options,
}

impl Handler {
    /// A handler over `store` (the state, and its upload ledger) and `secrets`, planning
    /// with `opts`. `s3` is an S3 store on any bucket: each record is read from, and
    /// reported to, the bucket it names.
    pub fn new<S>(s3: S3Blob, store: Arc<S>, secrets: Arc<dyn SecretStore>, opts: Options) -> Self
    where
        S: InstanceStore + UploadLedger + 'static,
    {
        Self {
            s3,
            store: store.clone(),
            ledger: store,
            secrets,
            opts,
        }
    }

    /// The handler of the environment ([`Config::from_env`]), with the three clients it
    /// uses, DynamoDB, S3 and Secrets Manager (for source passwords), and nothing else.
    pub async fn from_env() -> Result<Handler, String> {
        let config = Config::from_env()?;
        let conf = a2a_aws::config::lambda_sdk_config().await?;
        let store = Arc::new(a2a_aws::DynamoDbStore::from_conf(&conf, config.table));
        // No bucket yet: each record names its own (see `S3Blob::in_bucket`).
        let s3 = S3Blob::from_conf(&conf, "", "");
        let secrets = Arc::new(a2a_aws::SmSecrets::from_conf(&conf, config.secret_prefix));
        Ok(Handler::new(s3, store, secrets, config.options))
    }

    /// Handles every record of the event. Records are independent: one that fails does
    /// not stop the others; if any failed, the event fails after all were tried.
    pub async fn handle(&self, event: S3Event) -> Result<Vec<RecordOutcome>, RecordError> {
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for record in event.records {
            let bucket = record.s3.bucket.name.clone().unwrap_or_default();
            let raw_key = record.s3.object.key.clone().unwrap_or_default();
            let name = record.event_name.clone().unwrap_or_default();
            // The version this notification is about, in a versioned bucket.
            let version = record
                .s3
                .object
                .version_id
                .clone()
                .filter(|v| !v.is_empty() && v != "null");
            match self.one(&bucket, &raw_key, &name, version.as_deref()).await {
                Ok(outcome) => {
                    tracing::info!(bucket, key = raw_key, outcome = ?outcome, "record handled");
                    done.push(outcome);
                }
                Err(e) => {
                    tracing::error!(bucket, key = raw_key, error = %e, "record failed");
                    failed.push(e);
                }
            }
        }
        match failed.len() {
            0 => Ok(done),
            1 => Err(failed.remove(0)),
            n => {
                let first = failed.remove(0);
                Err(RecordError {
                    message: format!("{} (and {} more records failed)", first.message, n - 1),
                    ..first
                })
            }
        }
    }

    async fn one(
        &self,
        bucket: &str,
        raw_key: &str,
        event_name: &str,
        version: Option<&str>,
    ) -> Result<RecordOutcome, RecordError> {
        let ignored = |key: &str, why: &str| {
            tracing::info!(bucket, key, "ignored: {why}");
            Ok(RecordOutcome::Ignored {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                why: why.to_owned(),
            })
        };
        let key = match decode_key(raw_key) {
            Ok(k) => k,
            Err(why) => return ignored(raw_key, &why),
        };
        if !event_name.is_empty() && !event_name.starts_with("ObjectCreated") {
            return ignored(
                &key,
                &format!("event {event_name} is not an object creation"),
            );
        }
        let is_csv = key.len() > 4 && key[key.len() - 4..].eq_ignore_ascii_case(".csv");
        if !key.starts_with(UPLOADS) || !is_csv {
            return ignored(&key, "not a school list (uploads/*.csv)");
        }
        let blob_key = match BlobKey::parse(&key) {
            Ok(k) => k,
            Err(e) => return ignored(&key, &e.to_string()),
        };
        let fail = |error: &PortError| RecordError::new(bucket, &key, error);
        let blobs = self.s3.in_bucket(bucket);
        let bytes = match version {
            // This very version: the object may have been replaced since.
            Some(v) => match blobs.get_version(&blob_key, v).await {
                Ok(b) if b.len() as u64 > self.opts.max_bytes => {
                    let refusal = a2a_intake::Refusal {
                        file: format!("s3://{bucket}/{key}"),
                        reason: a2a_intake::Reason::TooLarge {
                            size: b.len() as u64,
                            limit: self.opts.max_bytes,
                        },
                    };
                    return self.refuse(&blobs, bucket, &key, refusal, None).await;
                }
                Ok(b) => b.to_vec(),
                Err(PortError::NotFound(_)) => {
                    return ignored(
                        &key,
                        &format!("version {v} is gone (replaced by a copy without passwords)"),
                    );
                }
                Err(error) => return Err(fail(&error)),
            },
            None => match self.read(&blobs, &blob_key, bucket).await {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(refusal)) => return self.refuse(&blobs, bucket, &key, refusal, None).await,
                Err(error) => return Err(fail(&error)),
            },
        };
        let shown = format!("s3://{bucket}/{key}");
        let refused = |r| {
            let sha = a2a_intake::sha256_hex(&bytes);
            self.refuse(&blobs, bucket, &key, r, Some(sha))
        };
        let plan = match a2a_intake::plan_bytes(&shown, &bytes, &self.opts) {
            Ok(p) => p,
            Err(r) => return refused(r).await,
        };
        // The passwords go to Secrets Manager first; the list taken in is the one that
        // names them, and it replaces the object (below).
        let taken = a2a_intake::take_list(
            &key,
            plan,
            &bytes,
            &self.opts,
            a2a_intake::Ports {
                store: &*self.store,
                ledger: &*self.ledger,
                blobs: &blobs,
                secrets: &*self.secrets,
            },
            chrono::Utc::now(),
        )
        .await;
        let taken = match taken {
            Ok(t) => t,
            Err(TakeError::Refused(r)) => return refused(r).await,
            Err(TakeError::State(error)) => {
                return Err(RecordError {
                    message: format!("state store: {error}"),
                    ..fail(&error)
                });
            }
            Err(TakeError::Secrets(error)) => {
                return Err(RecordError {
                    message: format!("secret store: {error}"),
                    ..fail(&error)
                });
            }
            Err(TakeError::Blobs { key: report, error }) => {
                return Err(RecordError {
                    message: format!("writing {report}: {error}"),
                    ..fail(&error)
                });
            }
        };
        let redacted = taken.redacted.is_some();
        if let Some(r) = &taken.redacted {
            replace(&blobs, &blob_key, version, &r.bytes)
                .await
                .map_err(|e| RecordError {
                    message: format!("replacing the list by a copy without passwords: {e}"),
                    ..fail(&e)
                })?;
            tracing::info!(
                bucket,
                key,
                moved = r.moved,
                dropped = r.dropped,
                "the list's source passwords moved to the secret store; the object replaced by \
                 a copy that names them, and the version that held them deleted"
            );
        }
        Ok(match taken.intake {
            Intake::Already { record, .. } => RecordOutcome::Already {
                bucket: bucket.to_owned(),
                key,
                sha256: record.sha256,
                redacted,
            },
            Intake::New {
                plan,
                errors_key,
                summary_key,
                ..
            } => RecordOutcome::TakenIn {
                bucket: bucket.to_owned(),
                accepted: plan.schools.len(),
                rejected: plan.rejected(),
                key,
                report: errors_key,
                summary: summary_key,
                redacted,
            },
        })
    }

    /// Reads the object: refused without reading when its size is past the limit, and
    /// refused if it grew past it before it was read. The outer error is the environment;
    /// the inner one a refusal of the file.
    async fn read(
        &self,
        blobs: &S3Blob,
        key: &BlobKey,
        bucket: &str,
    ) -> Result<Result<Vec<u8>, a2a_intake::Refusal>, PortError> {
        let shown = format!("s3://{bucket}/{key}");
        let max = self.opts.max_bytes;
        let too_large = |size: u64| a2a_intake::Refusal {
            file: shown.clone(),
            reason: a2a_intake::Reason::TooLarge { size, limit: max },
        };
        let Some(meta) = blobs.head(key).await? else {
            return Err(PortError::NotFound(format!("{shown}: no such object")));
        };
        if meta.size > max {
            return Ok(Err(too_large(meta.size)));
        }
        let bytes = blobs.get(key).await?;
        if bytes.len() as u64 > max {
            return Ok(Err(too_large(bytes.len() as u64)));
        }
        Ok(Ok(bytes.to_vec()))
    }

    /// Writes the one-row error report of a refused file.
    async fn refuse(
        &self,
        blobs: &S3Blob,
        bucket: &str,
        key: &str,
        refusal: a2a_intake::Refusal,
        sha: Option<String>,
    ) -> Result<RecordOutcome, RecordError> {
        // A file too large to read has no hash: its report is named by its size instead.
        let id = sha.unwrap_or_else(|| match &refusal.reason {
            a2a_intake::Reason::TooLarge { size, .. } => format!("{size:012}"),
            _ => "000000000000".into(),
        });
        let (report, _) = a2a_intake::report_keys(key, &id);
        tracing::warn!(bucket, key, report, "refused: {refusal}");
        let put = async {
            let k = BlobKey::parse(&report).map_err(|e| PortError::Invalid(e.to_string()))?;
            blobs
                .put(&k, a2a_intake::refusal_csv(&refusal).into())
                .await
        };
        put.await.map_err(|e| RecordError {
            message: format!("writing {report}: {e}"),
            ..RecordError::new(bucket, key, &e)
        })?;
        Ok(RecordOutcome::Refused {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            why: refusal.to_string(),
            report,
        })
    }
}

/// Puts the list without passwords at `key` and deletes the version that held them
/// (`version`, or else the current one, read before the put): in a versioned bucket, an
/// overwrite alone would keep the old version. A newer upload of the same key, made
/// meanwhile, stays the current object; only this notification's version goes.
async fn replace(
    blobs: &S3Blob,
    key: &BlobKey,
    version: Option<&str>,
    redacted: &[u8],
) -> Result<(), PortError> {
    let current = blobs.current_version(key).await?;
    if version.is_none() || current.as_deref() == version {
        blobs.put(key, redacted.to_vec().into()).await?;
    }
    if let Some(old) = version.map(str::to_owned).or(current) {
        blobs.delete_version(key, &old).await?;
    }
    Ok(())
}

#[cfg(test)]
mod redact_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_read_whole() {
        let c = Config::read(Env::from_pairs(&[("A2A_TABLE", "t")])).unwrap();
        assert_eq!(c.table, "t");
        assert_eq!(c.options, Options::default());
        let c = Config::read(Env::from_pairs(&[
            ("A2A_TABLE", "t"),
            ("A2A_INTAKE_KIND", " migrate "),
            ("A2A_WAVE_SIZE", "7"),
            ("A2A_MAX_MB", "2"),
        ]))
        .unwrap();
        assert_eq!(c.options.kind, InstanceKind::Migrate);
        assert_eq!((c.options.wave_size, c.options.max_bytes), (7, 2_000_000));
        let e = Config::read(Env::from_pairs(&[
            ("A2A_INTAKE_KIND", "both"),
            ("A2A_WAVE_SIZE", "0"),
            ("A2A_MAX_MB", "lots"),
        ]))
        .unwrap_err()
        .to_string();
        for name in [
            "A2A_TABLE is not set",
            "A2A_INTAKE_KIND=\"both\"",
            "A2A_WAVE_SIZE",
            "A2A_MAX_MB",
        ] {
            assert!(e.contains(name), "{name} not in {e}");
        }
    }

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(
            decode_key("uploads/llista+escola+%C3%B2+2026.csv").unwrap(),
            "uploads/llista escola ò 2026.csv"
        );
        assert_eq!(decode_key("uploads/a%2Bb.csv").unwrap(), "uploads/a+b.csv");
        assert_eq!(decode_key("plain/key").unwrap(), "plain/key");
        assert!(decode_key("bad%2").is_err());
        assert!(decode_key("bad%zz").is_err());
        assert!(decode_key("bad%C3").is_err(), "half a UTF-8 character");
    }
}

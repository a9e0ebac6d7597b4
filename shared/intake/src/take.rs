//! One upload taken in, start to end, as both the CLI and the Lambda run it: plan, check
//! the ledger, write the error report, register, write the summary, record the upload.

use a2a_core::{
    BlobKey, BlobStore, InstanceStore, PortError, SecretStore, UploadLedger, UploadRecord,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::plan::{Options, Plan};
use crate::read::Refusal;
use crate::register::{self, Registration};
use crate::report::{Summary, errors_csv};

/// How an upload went.
#[derive(Clone, Debug)]
pub enum Intake {
    /// This very content was taken in before: nothing changed, no report rewritten.
    Already {
        /// The plan of the file (the same as then).
        plan: Plan,
        /// The earlier record.
        record: UploadRecord,
    },
    /// Taken in now.
    New {
        /// The plan.
        plan: Plan,
        /// What registering did.
        registration: Registration,
        /// The summary, as written.
        summary: Box<Summary>,
        /// Where the error report went.
        errors_key: String,
        /// Where the summary went.
        summary_key: String,
    },
}

/// Why an upload could not be taken in.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    /// The file as a whole; nothing was registered or written.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The state store failed.
    #[error("state store: {0}")]
    State(PortError),
    /// A source database's password could not be put in the secret store; nothing was
    /// registered.
    #[error("secret store: {0}")]
    Secrets(PortError),
    /// A report could not be written.
    #[error("writing {key}: {error}")]
    Blobs {
        /// The report's key.
        key: String,
        /// What went wrong.
        error: PortError,
    },
}

/// The ports an intake reads and writes: the state, its upload ledger, the data store
/// (the reports) and the secret store (the sources' passwords).
#[derive(Clone, Copy)]
pub struct Ports<'a> {
    /// The instances.
    pub store: &'a dyn InstanceStore,
    /// The uploads taken in, by SHA-256.
    pub ledger: &'a dyn UploadLedger,
    /// Where the reports go.
    pub blobs: &'a dyn BlobStore,
    /// Where the sources' passwords go.
    pub secrets: &'a dyn SecretStore,
}

async fn put(blobs: &dyn BlobStore, key: &str, body: String) -> Result<(), TakeError> {
    let blob = |error| TakeError::Blobs {
        key: key.to_owned(),
        error,
    };
    let k = BlobKey::parse(key).map_err(|e| blob(PortError::Invalid(e.to_string())))?;
    blobs.put(&k, Bytes::from(body)).await.map_err(blob)?;
    Ok(())
}

/// Takes in the list `bytes`, named `name` (the ledger's name of the list: the file name,
/// or the S3 key) and shown as `file` in messages: [`take_list`] of its plan.
pub async fn take_in(
    name: &str,
    file: &str,
    bytes: &[u8],
    opts: &Options,
    ports: Ports<'_>,
    now: DateTime<Utc>,
) -> Result<Intake, TakeError> {
    let plan = crate::plan_bytes(file, bytes, opts)?;
    Ok(take_list(name, plan, bytes, opts, ports, now).await?.intake)
}

/// A list taken in by [`take_list`].
#[derive(Clone, Debug)]
pub struct Taken {
    /// How the intake went.
    pub intake: Intake,
    /// The list rewritten without its passwords ([`crate::redact()`]), which is what was
    /// taken in and what must be kept in place of the original; `None` when the list held
    /// no password and was taken in as it is.
    pub redacted: Option<crate::Redacted>,
}

/// [`take_planned`] after the list's passwords are moved to the secret store: the list
/// taken in (and recorded in the ledger by its SHA-256) is the rewritten one, so the same
/// rewritten list arriving later (an upload's notification) is already taken in. `plan`
/// is the plan of `bytes`. What `a2a upload`, `a2a run` and the intake Lambda call.
pub async fn take_list(
    name: &str,
    plan: Plan,
    bytes: &[u8],
    opts: &Options,
    ports: Ports<'_>,
    now: DateTime<Utc>,
) -> Result<Taken, TakeError> {
    let redacted = crate::redact(&plan, bytes, ports.secrets).await?;
    let (plan, sha) = match &redacted {
        None => (plan, crate::sha256_hex(bytes)),
        Some(r) => (
            crate::plan_bytes(&plan.file, &r.bytes, opts)?,
            crate::sha256_hex(&r.bytes),
        ),
    };
    let intake = take_planned(name, plan, &sha, ports, now).await?;
    Ok(Taken { intake, redacted })
}

/// A list already planned, and with no password left in it ([`crate::redact()`]), taken
/// in: `sha` is the SHA-256 of its bytes.
///
/// The upload is recorded last, after the registrations and both reports: a run cut short
/// records nothing, and the next run does it all again (every step is idempotent).
pub(crate) async fn take_planned(
    name: &str,
    plan: Plan,
    sha: &str,
    ports: Ports<'_>,
    now: DateTime<Utc>,
) -> Result<Intake, TakeError> {
    let Ports {
        store,
        ledger,
        blobs,
        ..
    } = ports;
    if let Some(record) = register::already(ledger, sha)
        .await
        .map_err(TakeError::State)?
    {
        return Ok(Intake::Already { plan, record });
    }
    let existing = register::existing(store).await.map_err(TakeError::State)?;
    let mut plan = plan;
    plan.avoid_taken(&existing);
    let (errors_key, summary_key) = crate::report_keys(name, sha);
    put(blobs, &errors_key, errors_csv(&plan.errors)).await?;
    let registration = register::apply(&plan, name, store, ledger, &existing, now)
        .await
        .map_err(TakeError::State)?;
    let summary = Summary::new(&plan, sha, &registration, &errors_key);
    let json = serde_json::to_string_pretty(&summary).map_err(|e| TakeError::Blobs {
        key: summary_key.clone(),
        error: PortError::Invalid(e.to_string()),
    })?;
    put(blobs, &summary_key, json).await?;
    if !register::record(&plan, name, sha, ledger, now)
        .await
        .map_err(TakeError::State)?
        && let Some(record) = register::already(ledger, sha)
            .await
            .map_err(TakeError::State)?
    {
        // Another run took the same content in meanwhile; both registered the same.
        return Ok(Intake::Already { plan, record });
    }
    Ok(Intake::New {
        plan,
        registration,
        summary: Box::new(summary),
        errors_key,
        summary_key,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use a2a_local::{FileSecrets, FsBlob, SqliteStore};

    /// The ports of a test: `store` is its own ledger.
    pub(crate) fn ports<'a>(
        store: &'a SqliteStore,
        blobs: &'a FsBlob,
        secrets: &'a FileSecrets,
    ) -> Ports<'a> {
        Ports {
            store,
            ledger: store,
            blobs,
            secrets,
        }
    }

    /// A state in memory, a data store and a secret store in a folder of its own.
    struct Home {
        dir: tempfile::TempDir,
        store: SqliteStore,
        blobs: FsBlob,
        secrets: FileSecrets,
    }

    impl Home {
        async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            Self {
                store: SqliteStore::open_in_memory().await.unwrap(),
                blobs: FsBlob::new(dir.path().join("blobs")).unwrap(),
                secrets: FileSecrets::new(dir.path().join("secrets")),
                dir,
            }
        }

        /// `text` taken in as the list `name`, with the default options.
        async fn take(&self, name: &str, text: &[u8]) -> Result<Intake, TakeError> {
            let ports = ports(&self.store, &self.blobs, &self.secrets);
            take_in(name, name, text, &Options::default(), ports, Utc::now()).await
        }

        async fn blob(&self, key: &str) -> Option<Bytes> {
            let key = BlobKey::parse(key).unwrap();
            match self.blobs.head(&key).await.unwrap() {
                Some(_) => Some(self.blobs.get(&key).await.unwrap()),
                None => None,
            }
        }
    }

    #[tokio::test]
    async fn an_upload_writes_both_reports_then_records_and_a_repeat_writes_nothing() {
        let home = Home::new().await;
        let text = b"school_code,name\n08000013,A\n=1+1,B\n";
        let Intake::New {
            errors_key,
            summary_key,
            summary,
            ..
        } = home.take("l.csv", text).await.unwrap()
        else {
            panic!("new")
        };
        assert_eq!((summary.accepted, summary.rejected), (1, 1));
        let csv = home.blob(&errors_key).await.unwrap();
        assert!(String::from_utf8_lossy(&csv).contains("3,'=1+1,school_code"));
        assert!(home.blob(&summary_key).await.is_some());

        let errors = BlobKey::parse(&errors_key).unwrap();
        home.blobs.delete(&errors).await.unwrap();
        let again = home.take("l.csv", text).await.unwrap();
        assert!(matches!(again, Intake::Already { .. }));
        assert!(
            home.blob(&errors_key).await.is_none(),
            "a repeat writes nothing"
        );

        let refused = home.take("e.csv", b"").await;
        assert!(matches!(refused, Err(TakeError::Refused(_))));
    }

    /// A source URL's password goes to the secret store and the state keeps a reference;
    /// a new list's password replaces it; a list's own `secret:NAME` is kept as named; and
    /// neither the state nor the reports hold the password.
    #[tokio::test]
    async fn source_passwords_move_to_the_secret_store() {
        use a2a_core::SecretName;
        let home = Home::new().await;
        let list = |pw: &str| {
            format!(
                "school_code,name,kind,source_db,source_files,dns\n\
                 08000013,A,migrate,mysql://moodle:{pw}@db.internal/m08000013,/srv/md/a,a\n\
                 17000014,B,migrate,mysql://moodle:secret:agora%2Fsrc@db.internal/m17000014,/srv/md/b,b\n"
            )
        };
        let take = |text: String| {
            let home = &home;
            async move { home.take("l.csv", text.as_bytes()).await.unwrap() }
        };
        take(list("Xq9-one%40pw")).await;
        let code = a2a_core::SchoolCode::parse("08000013").unwrap();
        let name = SecretName::of(&code, "source-db-password").unwrap();
        let stored = |c: &str| {
            let store = &home.store;
            let c = a2a_core::SchoolCode::parse(c).unwrap();
            async move { store.get(&c).await.unwrap().unwrap().source.db.unwrap() }
        };
        let secret = |name| {
            let secrets = &home.secrets;
            async move {
                secrets
                    .get(&name)
                    .await
                    .unwrap()
                    .map(|s| s.expose().to_owned())
            }
        };
        let db = stored("08000013").await;
        assert_eq!(db.secret_ref().as_deref(), Some(name.as_str()));
        assert_eq!(secret(name.clone()).await.as_deref(), Some("Xq9-one@pw"));
        // A list's own secret stays as named, and nothing is stored for it.
        let own = stored("17000014").await;
        assert_eq!(own.secret_ref().as_deref(), Some("agora/src"));
        let other = a2a_core::SchoolCode::parse("17000014").unwrap();
        let none = SecretName::of(&other, "source-db-password").unwrap();
        assert_eq!(secret(none).await, None);
        // The password given again, changed, replaces the stored one.
        take(list("Kd7-two")).await;
        assert_eq!(secret(name.clone()).await.as_deref(), Some("Kd7-two"));
        assert_eq!(stored("08000013").await, db);
        // The state records the URL as exposed here: no password in it; nor in a report.
        for pw in ["Xq9-one", "Kd7-two"] {
            assert!(!db.expose().contains(pw), "{}", db.expose());
            for e in std::fs::read_dir(home.dir.path().join("blobs/reports")).unwrap() {
                let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
                assert!(!text.contains(pw), "{text}");
            }
        }
        // A secret's name that could leave the store rejects the row.
        let bad = "school_code,name,kind,source_db,source_files,dns\n\
                   25000015,C,migrate,mysql://u:secret:..%2Fx@db/m,/srv/md/c,c\n";
        let Intake::New { plan, .. } = take(bad.into()).await else {
            panic!("new")
        };
        assert_eq!(plan.rejected(), 1);
        assert_eq!(plan.errors[0].field, "source_db");
    }

    #[tokio::test]
    async fn the_summary_says_first_when_most_rows_fail_on_one_field() {
        let home = Home::new().await;
        let text = "id,tipus,nom,codi\n1,ESC,Escola A,08000013\n2,INS,Institut B,08000021\n";
        let Intake::New { summary_key, .. } = home.take("m.csv", text.as_bytes()).await.unwrap()
        else {
            panic!("new")
        };
        let body = home.blob(&summary_key).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.trim_start().starts_with("{\n  \"warnings\": ["),
            "the warnings come first: {body}"
        );
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let w = &json["warnings"];
        assert_eq!(w[0]["field"], "school_code");
        assert_eq!(w[0]["column"], "id");
        assert_eq!(w[0]["could_use"], serde_json::json!(["codi"]));
        assert_eq!(w[1]["field"], "kind", "then the tipus set aside");
        assert_eq!(json["rejected"], 2);
    }
}

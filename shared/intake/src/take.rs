//! One upload taken in, start to end, as both the CLI and the Lambda run it: plan, check
//! the ledger, write the error report, register, write the summary, record the upload.

use a2a_core::{
    BlobKey, BlobStore, InstanceStore, PortError, Secret, SecretName, SecretStore, UploadLedger,
    UploadRecord,
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

/// Moves the password of every source database URL into the secret store, as the secret
/// `a2a/<code>/source-db-password`, and leaves a reference to it in the URL
/// (`user:secret:NAME@`): the state records no password, and the step that connects to the
/// source fills it in from the store. A password given again in a new list replaces the
/// stored one. A URL that already names a secret is kept as it is.
async fn keep_source_passwords(
    plan: &mut Plan,
    secrets: &dyn SecretStore,
) -> Result<(), TakeError> {
    for p in &mut plan.schools {
        let Some(db) = &p.school.source_db else {
            continue;
        };
        let Some((_, password)) = db.credentials() else {
            continue;
        };
        if db.secret_ref().is_some() {
            continue;
        }
        let name = SecretName::of(&p.school.code, crate::redact::SOURCE_PASSWORD)
            .map_err(TakeError::Secrets)?;
        secrets
            .put(&name, &Secret::new(password))
            .await
            .map_err(TakeError::Secrets)?;
        p.school.source_db = Some(db.with_secret_ref(name.as_str()));
    }
    Ok(())
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
/// or the S3 key) and shown as `file` in messages.
///
/// The upload is recorded last, after the registrations and both reports: a run cut short
/// records nothing, and the next run does it all again (every step is idempotent).
#[allow(clippy::too_many_arguments)]
pub async fn take_in(
    name: &str,
    file: &str,
    bytes: &[u8],
    opts: &Options,
    store: &dyn InstanceStore,
    ledger: &dyn UploadLedger,
    blobs: &dyn BlobStore,
    secrets: &dyn SecretStore,
    now: DateTime<Utc>,
) -> Result<Intake, TakeError> {
    let plan = crate::plan_bytes(file, bytes, opts)?;
    take_planned(
        name,
        plan,
        &crate::sha256_hex(bytes),
        store,
        ledger,
        blobs,
        secrets,
        now,
    )
    .await
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
#[allow(clippy::too_many_arguments)]
pub async fn take_list(
    name: &str,
    plan: Plan,
    bytes: &[u8],
    opts: &Options,
    store: &dyn InstanceStore,
    ledger: &dyn UploadLedger,
    blobs: &dyn BlobStore,
    secrets: &dyn SecretStore,
    now: DateTime<Utc>,
) -> Result<Taken, TakeError> {
    let redacted = crate::redact(&plan, bytes, secrets).await?;
    let (plan, sha) = match &redacted {
        None => (plan, crate::sha256_hex(bytes)),
        Some(r) => (
            crate::plan_bytes(&plan.file, &r.bytes, opts)?,
            crate::sha256_hex(&r.bytes),
        ),
    };
    let intake = take_planned(name, plan, &sha, store, ledger, blobs, secrets, now).await?;
    Ok(Taken { intake, redacted })
}

/// [`take_in`] for a list already planned; `sha` is the SHA-256 of its bytes.
#[allow(clippy::too_many_arguments)]
pub async fn take_planned(
    name: &str,
    plan: Plan,
    sha: &str,
    store: &dyn InstanceStore,
    ledger: &dyn UploadLedger,
    blobs: &dyn BlobStore,
    secrets: &dyn SecretStore,
    now: DateTime<Utc>,
) -> Result<Intake, TakeError> {
    if let Some(record) = register::already(ledger, sha)
        .await
        .map_err(TakeError::State)?
    {
        return Ok(Intake::Already { plan, record });
    }
    let existing = register::existing(store).await.map_err(TakeError::State)?;
    let mut plan = plan;
    keep_source_passwords(&mut plan, secrets).await?;
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
mod tests {
    use super::*;
    use a2a_local::{FsBlob, SqliteStore};

    #[tokio::test]
    async fn an_upload_writes_both_reports_then_records_and_a_repeat_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in_memory().await.unwrap();
        let blobs = FsBlob::new(dir.path()).unwrap();
        let secrets = a2a_local::FileSecrets::new(dir.path().join("secrets"));
        let text = b"school_code,name\n08000013,A\n=1+1,B\n";
        let opts = Options::default();
        let run = || {
            take_in(
                "l.csv",
                "l.csv",
                text,
                &opts,
                &store,
                &store,
                &blobs,
                &secrets,
                Utc::now(),
            )
        };
        let Intake::New {
            errors_key,
            summary_key,
            summary,
            ..
        } = run().await.unwrap()
        else {
            panic!("new")
        };
        assert_eq!((summary.accepted, summary.rejected), (1, 1));
        let csv = blobs
            .get(&BlobKey::parse(&errors_key).unwrap())
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&csv).contains("3,'=1+1,school_code"));
        assert!(
            blobs
                .head(&BlobKey::parse(&summary_key).unwrap())
                .await
                .unwrap()
                .is_some()
        );

        blobs
            .delete(&BlobKey::parse(&errors_key).unwrap())
            .await
            .unwrap();
        assert!(matches!(run().await.unwrap(), Intake::Already { .. }));
        assert!(
            blobs
                .head(&BlobKey::parse(&errors_key).unwrap())
                .await
                .unwrap()
                .is_none(),
            "a repeat writes nothing"
        );

        let refused = take_in(
            "e.csv",
            "e.csv",
            b"",
            &opts,
            &store,
            &store,
            &blobs,
            &secrets,
            Utc::now(),
        );
        assert!(matches!(refused.await, Err(TakeError::Refused(_))));
    }

    /// A source URL's password goes to the secret store and the state keeps a reference;
    /// a new list's password replaces it; a list's own `secret:NAME` is kept as named; and
    /// neither the state nor the reports hold the password.
    #[tokio::test]
    async fn source_passwords_move_to_the_secret_store() {
        use a2a_core::{SecretName, SecretStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in_memory().await.unwrap();
        let blobs = FsBlob::new(dir.path().join("blobs")).unwrap();
        let secrets = a2a_local::FileSecrets::new(dir.path().join("secrets"));
        let list = |pw: &str| {
            format!(
                "school_code,name,kind,source_db,source_files,dns\n\
                 08000013,A,migrate,mysql://moodle:{pw}@db.internal/m08000013,/srv/md/a,a\n\
                 17000014,B,migrate,mysql://moodle:secret:agora%2Fsrc@db.internal/m17000014,/srv/md/b,b\n"
            )
        };
        let take = |text: String| {
            let (store, blobs, secrets) = (&store, &blobs, &secrets);
            async move {
                take_in(
                    "l.csv",
                    "l.csv",
                    text.as_bytes(),
                    &Options::default(),
                    store,
                    store,
                    blobs,
                    secrets,
                    Utc::now(),
                )
                .await
                .unwrap()
            }
        };
        take(list("Xq9-one%40pw")).await;
        let code = a2a_core::SchoolCode::parse("08000013").unwrap();
        let name = SecretName::of(&code, "source-db-password").unwrap();
        let stored = |c: &str| {
            let store = &store;
            let c = a2a_core::SchoolCode::parse(c).unwrap();
            async move { store.get(&c).await.unwrap().unwrap().source.db.unwrap() }
        };
        let db = stored("08000013").await;
        assert_eq!(db.secret_ref().as_deref(), Some(name.as_str()));
        assert_eq!(
            secrets.get(&name).await.unwrap().unwrap().expose(),
            "Xq9-one@pw"
        );
        // A list's own secret stays as named, and nothing is stored for it.
        let own = stored("17000014").await;
        assert_eq!(own.secret_ref().as_deref(), Some("agora/src"));
        let other = a2a_core::SchoolCode::parse("17000014").unwrap();
        let none = SecretName::of(&other, "source-db-password").unwrap();
        assert_eq!(secrets.get(&none).await.unwrap(), None);
        // The password given again, changed, replaces the stored one.
        take(list("Kd7-two")).await;
        assert_eq!(
            secrets.get(&name).await.unwrap().unwrap().expose(),
            "Kd7-two"
        );
        assert_eq!(stored("08000013").await, db);
        // The state records the URL as exposed here: no password in it; nor in a report.
        for pw in ["Xq9-one", "Kd7-two"] {
            assert!(!db.expose().contains(pw), "{}", db.expose());
            for e in std::fs::read_dir(dir.path().join("blobs/reports")).unwrap() {
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
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in_memory().await.unwrap();
        let blobs = FsBlob::new(dir.path()).unwrap();
        let secrets = a2a_local::FileSecrets::new(dir.path().join("secrets"));
        let text = "id,tipus,nom,codi\n1,ESC,Escola A,08000013\n2,INS,Institut B,08000021\n";
        let opts = Options::default();
        let taken = take_in(
            "m.csv",
            "m.csv",
            text.as_bytes(),
            &opts,
            &store,
            &store,
            &blobs,
            &secrets,
            Utc::now(),
        );
        let Intake::New { summary_key, .. } = taken.await.unwrap() else {
            panic!("new")
        };
        let body = blobs
            .get(&BlobKey::parse(&summary_key).unwrap())
            .await
            .unwrap();
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

//! The intake Lambda against moto with a list that carries a source database password, in a
//! versioned bucket as the template makes it: the password goes to Secrets Manager, the
//! object is replaced by a list that names the secret, the version that held the password
//! is deleted, and the notification of the replacement (and a retry of the first one)
//! changes nothing. Needs `AWS_ENDPOINT_URL` (a moto server); without it, a SKIP line.

use a2a_aws::SmSecrets;
use a2a_aws::aws_sdk_s3::primitives::ByteStream;
use a2a_aws::aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use a2a_core::{SchoolCode, SecretName};
use a2a_testkit::moto::Moto;
use a2a_testkit::{service_url, unique_name};
use aws_lambda_events::event::s3::S3EventRecord;

use super::*;

const PASSWORD: &str = "Rd7-moto%40pw";
const PLAIN: &str = "Rd7-moto@pw";

/// The S3 records of keys under `uploads/` (the template's filter; the reports notify too)
/// that reach the queue, until `want` came.
async fn notifications(moto: &Moto, url: &str, want: usize) -> Vec<S3EventRecord> {
    let upload = |r: &serde_json::Value| {
        r["s3"]["object"]["key"]
            .as_str()
            .and_then(|k| decode_key(k).ok())
            .is_some_and(|k| k.starts_with(UPLOADS))
    };
    let records = moto.s3_records(url, want, upload).await.unwrap();
    records
        .into_iter()
        .map(|r| serde_json::from_value(r).unwrap())
        .collect()
}

fn event(records: Vec<S3EventRecord>) -> S3Event {
    let mut e = S3Event::default();
    e.records = records;
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_with_a_password_is_replaced_by_one_naming_its_secret_and_the_old_version_goes() {
    let test =
        "a_list_with_a_password_is_replaced_by_one_naming_its_secret_and_the_old_version_goes";
    if service_url("AWS_ENDPOINT_URL", test).is_none() {
        return;
    }
    let moto = Moto::new().await;
    let s3 = moto.s3.clone();
    let bucket = moto.bucket("a2a-redact").await.unwrap();
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let store = Arc::new(moto.state_table().await.unwrap());
    let queue_url = moto.notified_queue(&bucket, "a2a-redact").await.unwrap();

    let key = "uploads/migracions 2026.csv";
    let list = format!(
        "school_code,name,kind,source_db,source_files,dns\n\
         08000013,Escola Bertí,migrate,mysql://moodle:{PASSWORD}@db.internal/m08000013,/srv/md/a,ceip-berti\n\
         17000014,Institut B,migrate,mysql://moodle:secret:agora%2Fsrc@db.internal/m17000014,/srv/md/b,ins-b\n"
    );
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from(list.clone().into_bytes()))
        .send()
        .await
        .unwrap();
    let first = notifications(&moto, &queue_url, 1).await;
    assert_eq!(first.len(), 1, "the upload's notification");

    let prefix = unique_name("t");
    let secrets = Arc::new(SmSecrets::from_conf(&moto.conf, prefix));
    let handler = Handler::new(
        S3Blob::from_conf(&moto.conf, "", ""),
        store.clone(),
        secrets.clone(),
        Options::default(),
    );
    let out = handler.handle(event(first.clone())).await.unwrap();
    let RecordOutcome::TakenIn {
        accepted, redacted, ..
    } = &out[0]
    else {
        panic!("taken in: {out:?}")
    };
    assert_eq!((*accepted, *redacted), (2, true));

    // The password is in Secrets Manager, and the state names it.
    let code = SchoolCode::parse("08000013").unwrap();
    let name = SecretName::of(&code, "source-db-password").unwrap();
    assert_eq!(secrets.get(&name).await.unwrap().unwrap().expose(), PLAIN);
    let berti = store.get(&code).await.unwrap().unwrap();
    assert_eq!(
        berti.source.db.unwrap().secret_ref().as_deref(),
        Some(name.as_str())
    );

    // One version of the list is left, and it names the secret instead.
    let versions = s3
        .list_object_versions()
        .bucket(&bucket)
        .prefix(key)
        .send()
        .await
        .unwrap();
    let left: Vec<_> = versions
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .collect();
    assert_eq!(left.len(), 1, "{versions:?}");
    assert!(versions.delete_markers().is_empty(), "{versions:?}");
    let kept = S3Blob::from_conf(&moto.conf, &bucket, "")
        .get(&BlobKey::parse(key).unwrap())
        .await
        .unwrap();
    let kept = String::from_utf8(kept.to_vec()).unwrap();
    assert!(!kept.contains("Rd7-moto"), "{kept}");
    assert!(
        kept.contains("mysql://moodle:secret%3Aa2a%2F08000013%2Fsource-db-password@db.internal/"),
        "{kept}"
    );
    assert!(kept.contains("secret:agora%2Fsrc"), "{kept}");
    // Nor is it anywhere else in the bucket (the reports).
    let all = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let blobs = S3Blob::from_conf(&moto.conf, &bucket, "");
    for o in all.contents() {
        let body = blobs
            .get(&BlobKey::parse(o.key().unwrap()).unwrap())
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&body).contains("Rd7-moto"),
            "{:?}",
            o.key()
        );
    }

    // The replacement's own notification is a list already taken in: nothing changes.
    let before = store.get(&code).await.unwrap();
    let second = notifications(&moto, &queue_url, 1).await;
    assert_eq!(second.len(), 1, "the replacement's notification");
    let out = handler.handle(event(second)).await.unwrap();
    assert!(
        matches!(&out[0], RecordOutcome::Already { redacted: false, sha256, .. }
            if *sha256 == a2a_intake::sha256_hex(kept.as_bytes())),
        "{out:?}"
    );
    // The first notification again (a retry): its version is gone, so it is ignored.
    let out = handler.handle(event(first)).await.unwrap();
    assert!(
        matches!(
            &out[0],
            RecordOutcome::Ignored { .. } | RecordOutcome::Already { .. }
        ),
        "{out:?}"
    );
    assert_eq!(store.get(&code).await.unwrap(), before);
}

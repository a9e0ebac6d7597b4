//! The port conformance suites, run against moto (or real AWS) at `AWS_ENDPOINT_URL`, plus
//! the AWS-only behaviours: multipart uploads, checksum mismatches, missing resources, and
//! an unreachable endpoint failing fast.
//!
//! Run: `cargo test -p a2a-aws --all-features` with `AWS_ENDPOINT_URL` (and test
//! credentials) set; without the URL each suite test prints a SKIP line, and under
//! `CI=true` it fails instead.

#[cfg(not(all(feature = "dynamodb", feature = "s3", feature = "sqs")))]
compile_error!(
    "a2a-aws's tests need all of its features: run `cargo test -p a2a-aws --all-features` \
     (or `cargo test --workspace`, where the CLI turns them on)"
);

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use a2a_aws::aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use a2a_aws::{DynamoDbStore, S3Blob, SqsQueue, aws_sdk_dynamodb, aws_sdk_s3, aws_sdk_sqs};
use a2a_core::{BlobKey, BlobStore, InstanceStore, PortError, WorkQueue};
use a2a_testkit::unique_name;
use aws_config::SdkConfig;
use bytes::Bytes;

/// Test credentials, only when the environment gives none: moto takes any, and without
/// them the default chain would wait on the instance metadata service.
fn with_test_credentials(conf: SdkConfig) -> SdkConfig {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() || std::env::var_os("AWS_PROFILE").is_some()
    {
        return conf;
    }
    conf.into_builder()
        .credentials_provider(test_credentials())
        .build()
}

/// Static test credentials, which moto accepts.
fn test_credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new("test", "test", None, None, "a2a-tests"))
}

/// The SDK configuration for `AWS_ENDPOINT_URL`, or `None` (skip, already said).
async fn conf(test: &str) -> Option<SdkConfig> {
    Some(with_test_credentials(common::conf(test).await?))
}

async fn store(test: &str) -> Option<DynamoDbStore> {
    let conf = conf(test).await?;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let table = unique_name("a2a-state");
    DynamoDbStore::create_table(&client, &table)
        .await
        .expect("create the table");
    // Twice: creating is idempotent.
    DynamoDbStore::create_table(&client, &table)
        .await
        .expect("create the table again");
    Some(DynamoDbStore::from_conf(&conf, table))
}

async fn blob(test: &str, prefix: &str) -> Option<S3Blob> {
    let conf = conf(test).await?;
    let store = S3Blob::from_conf(&conf, unique_name("a2a-blob"), prefix);
    // The plain client has no path style: create through one that has.
    let path_style = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    S3Blob::create_bucket(&path_style, store.bucket())
        .await
        .expect("create the bucket");
    S3Blob::create_bucket(&path_style, store.bucket())
        .await
        .expect("create the bucket again");
    Some(store)
}

async fn queue(test: &str) -> Option<SqsQueue> {
    let conf = conf(test).await?;
    let client = aws_sdk_sqs::Client::new(&conf);
    let made = SqsQueue::create_with_dead_letter(
        &client,
        &unique_name("a2a-work"),
        a2a_testkit::queue::DEAD_LETTER_AFTER,
    )
    .await
    .expect("create the queues");
    // A queue that must find its dead-letter queue from the RedrivePolicy by itself.
    Some(SqsQueue::from_conf(&conf, made.queue_url()))
}

mod store_conformance {
    use super::*;
    a2a_testkit::conformance!(store, async {
        store("a2a-aws store conformance")
            .await
            .map(|s| Arc::new(s) as Arc<dyn InstanceStore>)
    });
}

mod upload_conformance {
    use super::*;
    a2a_testkit::conformance!(upload, async {
        store("a2a-aws upload conformance").await.map(|s| {
            let s = Arc::new(s);
            (
                s.clone() as Arc<dyn a2a_core::UploadLedger>,
                s as Arc<dyn InstanceStore>,
            )
        })
    });
}

mod blob_conformance {
    use super::*;
    a2a_testkit::conformance!(blob, async {
        blob("a2a-aws blob conformance", "tenant/a2a")
            .await
            .map(|s| Arc::new(s) as Arc<dyn BlobStore>)
    });
}

mod blob_conformance_bucket_root {
    use super::*;
    a2a_testkit::conformance!(blob, async {
        blob("a2a-aws blob conformance (bucket root)", "")
            .await
            .map(|s| Arc::new(s) as Arc<dyn BlobStore>)
    });
}

mod queue_conformance {
    use super::*;
    a2a_testkit::conformance!(queue, async {
        queue("a2a-aws queue conformance")
            .await
            .map(|q| Arc::new(q) as Arc<dyn WorkQueue>)
    });
}

fn key(s: &str) -> BlobKey {
    BlobKey::parse(s).unwrap()
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_files_go_up_in_parts_and_keep_their_sha256() {
    let Some(store) = blob("a2a-aws multipart", "mp").await else {
        return;
    };
    let store = store.with_part_size(5 * 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    // Three parts: two of 5 MiB and a short last one.
    let data: Vec<u8> = (0..(10 * 1024 * 1024 + 12_345u32))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let k = key("staging/08012345/big.bin");
    let put = store.put_file(&k, &src).await.unwrap();
    assert_eq!(put.size, data.len() as u64);
    assert_eq!(put.sha256.as_deref(), Some(sha(&data).as_str()));

    let head = store.head(&k).await.unwrap().expect("present");
    assert_eq!(head.size, data.len() as u64);
    assert_eq!(
        head.sha256.as_deref(),
        Some(sha(&data).as_str()),
        "the content's SHA-256, not the multipart checksum of checksums"
    );
    let dst = dir.path().join("back.bin");
    let got = store.get_to_file(&k, &dst).await.unwrap();
    assert_eq!(got.sha256, put.sha256);
    assert_eq!(std::fs::read(&dst).unwrap(), data);

    let copy = key("instances/08012345/big.bin");
    store.copy(&k, &copy).await.unwrap();
    assert_eq!(store.head(&copy).await.unwrap().unwrap().sha256, put.sha256);
}

/// The checksums S3 keeps are S3's additional checksums, read back by `HeadObject` in
/// checksum mode (not only our metadata): SHA-1 for a content-addressed put, SHA-256 for
/// the rest. An object overwritten behind the adapter without them has no stored checksum
/// of either kind, so a content check can never take it for the original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_carry_s3_additional_checksums_that_head_sum_reads() {
    use a2a_core::SumAlgo;
    use aws_sdk_s3::types::ChecksumMode;
    use base64::Engine as _;
    use sha1::Digest as _;
    let test = "a2a-aws additional checksums";
    let Some(conf) = conf(test).await else {
        return;
    };
    let Some(store) = blob(test, "").await else {
        return;
    };
    let raw = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let b64 = |raw: &[u8]| base64::engine::general_purpose::STANDARD.encode(raw);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f");
    std::fs::write(&src, b"Bon dia").unwrap();
    let sha1 = hex::encode(sha1::Sha1::digest(b"Bon dia"));
    let k1 = key(&format!(
        "instances/17000002/filedir/{}/{}/{sha1}",
        &sha1[..2],
        &sha1[2..4]
    ));
    store.put_file_sha1(&k1, &src, &sha1).await.unwrap();
    let k2 = key("instances/17000002/moodledata/lang/ca/x.php");
    store.put_file(&k2, &src).await.unwrap();

    let head = |k: &BlobKey| {
        raw.head_object()
            .bucket(store.bucket())
            .key(k.as_str())
            .checksum_mode(ChecksumMode::Enabled)
            .send()
    };
    let h1 = head(&k1).await.unwrap();
    assert_eq!(
        h1.checksum_sha1(),
        Some(b64(&sha1::Sha1::digest(b"Bon dia")).as_str()),
        "S3 keeps the SHA-1 of a content-addressed upload"
    );
    let h2 = head(&k2).await.unwrap();
    assert_eq!(
        h2.checksum_sha256(),
        Some(b64(&sha2::Sha256::digest(b"Bon dia")).as_str()),
        "S3 keeps the SHA-256 of any other upload"
    );

    // Overwritten behind the adapter, same size, no checksum or metadata of ours.
    for k in [&k1, &k2] {
        raw.put_object()
            .bucket(store.bucket())
            .key(k.as_str())
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"Bon diA"))
            .send()
            .await
            .unwrap();
    }
    let m1 = store.head_sum(&k1, SumAlgo::Sha1).await.unwrap().unwrap();
    let m2 = store.head_sum(&k2, SumAlgo::Sha256).await.unwrap().unwrap();
    assert_eq!((m1.size, m1.sha1), (7, None));
    assert_eq!((m2.size, m2.sha256), (7, None));
}

#[tokio::test]
async fn an_empty_file_round_trips() {
    let Some(store) = blob("a2a-aws empty file", "e").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("empty");
    std::fs::write(&src, b"").unwrap();
    let k = key("empty");
    let put = store.put_file(&k, &src).await.unwrap();
    assert_eq!(put.size, 0);
    assert_eq!(put.sha256.as_deref(), Some(sha(b"").as_str()));
    let dst = dir.path().join("back");
    assert_eq!(store.get_to_file(&k, &dst).await.unwrap(), put);
    assert_eq!(std::fs::read(&dst).unwrap(), b"");
    assert_eq!(store.get(&k).await.unwrap(), Bytes::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksum_mismatch_is_corrupt_and_leaves_no_file() {
    let Some(conf) = conf("a2a-aws corrupt blob").await else {
        return;
    };
    let Some(store) = blob("a2a-aws corrupt blob", "").await else {
        return;
    };
    // Written behind the adapter's back, with a wrong recorded SHA-256.
    let raw = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    raw.put_object()
        .bucket(store.bucket())
        .key("bad/blob")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"tampered"))
        .metadata("sha256", sha(b"original"))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("blob");
    match store.get_to_file(&key("bad/blob"), &dst).await {
        Err(PortError::Corrupt(m)) => assert!(m.contains("bad/blob"), "{m}"),
        other => panic!("want Corrupt, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file left"
    );
    assert!(matches!(
        store.get(&key("bad/blob")).await,
        Err(PortError::Corrupt(_))
    ));
}

#[tokio::test]
async fn missing_resources_are_unavailable_and_say_what_to_create() {
    let Some(conf) = conf("a2a-aws missing resources").await else {
        return;
    };
    let store = DynamoDbStore::from_conf(&conf, unique_name("a2a-no-such-table"));
    match store.get(&a2a_testkit::code(1)).await {
        Err(PortError::Unavailable(m)) => assert!(m.contains("does not exist"), "{m}"),
        other => panic!("want Unavailable, got {other:?}"),
    }
    let blobs = S3Blob::from_conf(&conf, unique_name("a2a-no-such-bucket"), "");
    match blobs.put(&key("x"), Bytes::from_static(b"x")).await {
        Err(PortError::Unavailable(m)) => assert!(m.contains("does not exist"), "{m}"),
        other => panic!("want Unavailable, got {other:?}"),
    }
    let client = aws_sdk_sqs::Client::new(&conf);
    let url = client
        .create_queue()
        .queue_name(unique_name("a2a-no-dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let lone = SqsQueue::from_conf(&conf, url);
    match lone.dead_letters(1).await {
        Err(PortError::Unavailable(m)) => assert!(m.contains("RedrivePolicy"), "{m}"),
        other => panic!("want Unavailable, got {other:?}"),
    }
}

/// Needs no emulator: nothing listens on port 9, and nothing else is asked (static test
/// credentials; the region comes from the environment or the fallback).
#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_within_seconds() {
    // The bounded timeouts and retries come from sdk_config; the endpoint is set per
    // service, as a service-level setting wins over AWS_ENDPOINT_URL in the environment.
    let conf = a2a_aws::config::sdk_config()
        .await
        .into_builder()
        .credentials_provider(test_credentials())
        .build();
    let nowhere = "http://127.0.0.1:9";
    let started = Instant::now();
    let store = DynamoDbStore::new(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&conf)
                .endpoint_url(nowhere)
                .build(),
        ),
        "a2a-state",
    );
    let blobs = S3Blob::new(
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .endpoint_url(nowhere)
                .force_path_style(true)
                .build(),
        ),
        "a2a-bucket",
        "",
    );
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&conf)
                .endpoint_url(nowhere)
                .build(),
        ),
        format!("{nowhere}/123456789012/a2a-work"),
        None,
    );
    let (code, k) = (a2a_testkit::code(1), key("x"));
    let (s, b, q) = tokio::join!(
        store.get(&code),
        blobs.head(&k),
        queue.receive(1, Duration::from_secs(1)),
    );
    let elapsed = started.elapsed();
    for (what, r) in [
        ("DynamoDB", s.map(|_| ())),
        ("S3", b.map(|_| ())),
        ("SQS", q.map(|_| ())),
    ] {
        match r {
            Err(PortError::Unavailable(m)) => {
                assert!(m.contains(what), "{m}");
                assert!(m.contains("AWS_ENDPOINT_URL"), "{m}");
                assert!(!m.contains("test"), "no credentials in messages: {m}");
            }
            other => panic!("{what}: want Unavailable, got {other:?}"),
        }
    }
    assert!(
        elapsed < Duration::from_secs(15),
        "failing took {elapsed:?}"
    );
}

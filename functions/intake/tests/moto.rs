//! The intake Lambda against moto: school lists go into S3, S3's own notification goes to an
//! SQS queue (with the key URL-encoded, as AWS does), the handler takes the event from the
//! queue, and DynamoDB items and the S3 reports come out.
//!
//! Needs `AWS_ENDPOINT_URL` (a moto server); without it the test prints a SKIP line.

use std::sync::Arc;

use a2a_aws::S3Blob;
use a2a_aws::aws_sdk_s3::primitives::ByteStream;
use a2a_core::{BlobKey, BlobStore, InstanceStore, SchoolCode, UploadLedger};
use a2a_fn_intake::{Handler, RecordOutcome};
use a2a_intake::Options;
use a2a_testkit::moto::Moto;
use a2a_testkit::unique_name;
use aws_lambda_events::event::s3::{S3Event, S3EventRecord};

const LIST: &str = "Codi centre;Denominació completa;EPRI;Web\n\
                    08000013;Escola Bertí;EPRI;https://agora.xtec.cat/ceip-berti/moodle/\n\
                    08000021;Institut Nou;;\n\
                    0800003X;Escola Trencada;EPRI;\n\
                    17000034;Escola del Mar;EPRI;\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_to_s3_becomes_instances_and_reports() {
    let Some(moto) = Moto::for_test("an_upload_to_s3_becomes_instances_and_reports").await else {
        return;
    };
    let s3 = moto.s3.clone();
    let bucket = moto.bucket("a2a-intake").await.unwrap();
    let store = Arc::new(moto.state_table().await.unwrap());
    let queue_url = moto.notified_queue(&bucket, "a2a-uploads").await.unwrap();

    let list_key = "uploads/llista escola ò 2026.csv";
    for (key, body) in [
        (list_key, LIST.as_bytes().to_vec()),
        ("uploads/readme.txt", b"not a list".to_vec()),
        ("elsewhere/list.csv", LIST.as_bytes().to_vec()),
        ("uploads/empty.csv", Vec::new()),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }
    let records: Vec<S3EventRecord> = moto
        .s3_records(&queue_url, 4, |_| true)
        .await
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_value(r).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "one notification per object");
    let raw: Vec<String> = records
        .iter()
        .map(|r| r.s3.object.key.clone().unwrap())
        .collect();
    assert!(
        raw.iter().any(|k| k.contains('+') && k.contains("%C3%B2")),
        "the key arrives URL-encoded: {raw:?}"
    );

    let handler = Handler::new(
        S3Blob::from_conf(&moto.conf, "", ""),
        store.clone(),
        Arc::new(a2a_aws::SmSecrets::from_conf(&moto.conf, unique_name("t"))),
        Options::default(),
    );
    // All four records in one event.
    let mut event = S3Event::default();
    event.records = records.clone();
    let outcomes = handler.handle(event).await.unwrap();
    let mut taken = None;
    let mut ignored = 0;
    let mut refused = None;
    for o in &outcomes {
        match o {
            RecordOutcome::TakenIn {
                key,
                accepted,
                rejected,
                report,
                summary,
                ..
            } => {
                assert_eq!(key, list_key);
                assert_eq!((*accepted, *rejected), (3, 1));
                taken = Some((report.clone(), summary.clone()));
            }
            RecordOutcome::Ignored { .. } => ignored += 1,
            RecordOutcome::Refused { key, report, .. } => {
                assert_eq!(key, "uploads/empty.csv");
                refused = Some(report.clone());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ignored, 2, "{outcomes:?}");
    let (report, summary) = taken.expect("the list was taken in");

    // DynamoDB items: the instances and the upload record.
    let berti = store
        .get(&SchoolCode::parse("08000013").unwrap())
        .await
        .unwrap()
        .expect("registered");
    assert_eq!(berti.name, "Escola Bertí");
    assert_eq!(berti.target.dns.as_deref(), Some("ceip-berti"));
    assert!(
        store
            .get(&SchoolCode::parse("17000034").unwrap())
            .await
            .unwrap()
            .is_some()
    );
    let sha = a2a_intake::sha256_hex(LIST.as_bytes());
    let upload = store.upload(&sha).await.unwrap().expect("upload recorded");
    assert_eq!(upload.name, list_key);
    assert_eq!((upload.accepted, upload.rejected), (3, 1));

    // The S3 reports, beside the upload.
    let blob = S3Blob::from_conf(&moto.conf, &bucket, "");
    let get = |key: String| {
        let blob = blob.clone();
        async move {
            let body = blob.get(&BlobKey::parse(&key).unwrap()).await.unwrap();
            String::from_utf8(body.to_vec()).unwrap()
        }
    };
    assert!(
        report.starts_with("reports/llista_escola___2026.csv."),
        "{report}"
    );
    let csv = get(report).await;
    assert!(
        csv.starts_with("line,school_code,field,value,message"),
        "{csv}"
    );
    assert!(csv.contains("4,0800003X,school_code"), "{csv}");
    let summary: serde_json::Value = serde_json::from_str(&get(summary).await).unwrap();
    assert_eq!(summary["accepted"], 3);
    assert_eq!(summary["sha256"], sha);
    let refused = get(refused.expect("the empty list was refused")).await;
    assert!(
        refused.contains("file") && refused.contains("empty"),
        "{refused}"
    );

    // The same event again: already taken in, nothing changes.
    let before = store
        .get(&SchoolCode::parse("08000013").unwrap())
        .await
        .unwrap();
    let mut event = S3Event::default();
    event.records = records;
    let again = handler.handle(event).await.unwrap();
    assert!(
        again
            .iter()
            .any(|o| matches!(o, RecordOutcome::Already { sha256, .. } if *sha256 == sha)),
        "{again:?}"
    );
    assert_eq!(
        store
            .get(&SchoolCode::parse("08000013").unwrap())
            .await
            .unwrap(),
        before
    );
}

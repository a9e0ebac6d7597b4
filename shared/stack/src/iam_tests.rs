//! The action table against the adapters' sources and the template, and the proxy against
//! the emulator with the project's own SDK adapters.

use std::collections::BTreeSet;
use std::path::PathBuf;

use a2a_aws::{DynamoDbStore, S3Blob, aws_sdk_dynamodb, aws_sdk_s3};
use a2a_core::{BlobStore, InstanceStore, ListFilter};

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `list_objects_v2` → `ListObjectsV2`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn every_sdk_call_of_the_adapters_has_its_actions() {
    let files = [
        ("dynamodb.rs", "dynamodb"),
        ("s3.rs", "s3"),
        ("sqs.rs", "sqs"),
        ("sfn.rs", "states"),
        ("secrets.rs", "secretsmanager"),
        ("rds.rs", "rds"),
        ("stack.rs", "cloudformation"),
    ];
    let mut seen = 0;
    for (file, service) in files {
        let text = std::fs::read_to_string(root().join("shared/aws/src").join(file)).unwrap();
        // The adapters call the SDK as `client.operation()` across lines.
        let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for (at, _) in flat.match_indices("client.") {
            let rest = &flat[at + "client.".len()..];
            let Some(name) = rest.split_once("()").map(|(n, _)| n) else {
                continue;
            };
            if matches!(name, "clone" | "config")
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                continue;
            }
            let op = pascal(name);
            let known = OPERATIONS
                .iter()
                .any(|(s, o, _)| *s == service && o.eq_ignore_ascii_case(&op));
            assert!(
                known,
                "{file}: {service} {op} has no IAM actions in iam::OPERATIONS"
            );
            seen += 1;
        }
    }
    // The scan finds the calls (a rename of `client` would make it see none).
    assert!(seen > 30, "only {seen} SDK calls found");
}

fn template() -> Yaml {
    yaml_serde::from_str(&std::fs::read_to_string(root().join("template.yaml")).unwrap()).unwrap()
}

fn policies_of<'a>(t: &'a Yaml, id: &str) -> &'a Yaml {
    &t["Resources"][id]["Properties"]["Policies"]
}

#[test]
fn every_functions_policies_are_read_and_the_two_fan_out_functions_differ() {
    let t = template();
    let Yaml::Mapping(resources) = &t["Resources"] else {
        panic!("no Resources")
    };
    let mut functions = 0;
    for (id, r) in resources {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let g = granted(&r["Properties"]["Policies"]).unwrap_or_else(|e| panic!("{id:?}: {e}"));
        assert!(
            allows(&g, "dynamodb:PutItem"),
            "{id:?} cannot write the state table"
        );
        functions += 1;
    }
    assert!(functions >= 19, "{functions} functions");
    let scheduler = granted(policies_of(&t, "SchedulerFunction")).unwrap();
    let dispatcher = granted(policies_of(&t, "DispatcherFunction")).unwrap();
    for a in [
        "states:StartExecution",
        "states:StopExecution",
        "sqs:SendMessage",
        "rds:CreateDBClusterSnapshot",
    ] {
        assert!(allows(&scheduler, a), "scheduler: {a}");
    }
    assert!(allows(&dispatcher, "states:StartExecution"));
    assert!(!allows(&dispatcher, "states:StopExecution"));
    assert!(!allows(&dispatcher, "s3:GetObject"));
}

#[test]
fn wildcards_and_unknown_policies() {
    let g: BTreeSet<String> = ["sqs:SendMessage*".to_owned()].into();
    assert!(allows(&g, "sqs:SendMessage"));
    assert!(allows(&g, "sqs:sendmessagebatch"));
    assert!(!allows(&g, "sqs:ReceiveMessage"));
    let managed: Yaml = yaml_serde::from_str("- AmazonS3FullAccess").unwrap();
    assert!(
        granted(&managed)
            .unwrap_err()
            .contains("AmazonS3FullAccess")
    );
    let unknown: Yaml = yaml_serde::from_str("- KMSDecryptPolicy: {KeyId: x}").unwrap();
    assert!(granted(&unknown).unwrap_err().contains("KMSDecryptPolicy"));
}

#[tokio::test]
async fn the_proxy_records_forwards_and_refuses_what_is_not_granted() {
    let Some(moto) = a2a_testkit::moto::Moto::for_test(
        "the_proxy_records_forwards_and_refuses_what_is_not_granted",
    )
    .await
    else {
        return;
    };
    let upstream = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let bucket = moto.bucket("a2a-iam").await.unwrap();
    let table = moto.state_table().await.unwrap().table().to_owned();

    let recorder = Recorder::default();
    // The data plane of a step, without DeleteObject.
    let policies: Yaml = yaml_serde::from_str(
        "- DynamoDBCrudPolicy: {TableName: t}\n\
         - Statement:\n    - Effect: Allow\n      Action: [s3:GetObject, s3:PutObject, s3:ListBucket]\n      Resource: '*'\n",
    )
    .unwrap();
    let url = recorder
        .proxy("a2a-step-x", &upstream, granted(&policies).unwrap())
        .await
        .unwrap();
    // On each service's own configuration: the environment's AWS_ENDPOINT_URL (the
    // emulator) would win over the shared one's.
    let conf = a2a_aws::config::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&conf)
        .endpoint_url(&url)
        .build();
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::from_conf(dynamodb), &table);
    let i = a2a_core::Instance::new(
        a2a_testkit::code(990_001),
        a2a_core::InstanceKind::Provision,
        "Escola IAM",
        a2a_core::Wave(1),
        chrono::Utc::now(),
    );
    assert!(store.register(&i).await.unwrap());
    assert_eq!(store.get(&i.code).await.unwrap().unwrap().code, i.code);
    store.list(ListFilter::default(), 10, None).await.unwrap();

    let s3 = aws_sdk_s3::config::Builder::from(&conf)
        .endpoint_url(&url)
        .force_path_style(true)
        .build();
    let blob = S3Blob::new(aws_sdk_s3::Client::from_conf(s3), &bucket, "p");
    let key = a2a_core::BlobKey::parse("stage/x.json").unwrap();
    blob.put(&key, bytes::Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert!(blob.head(&key).await.unwrap().is_some());
    let refused = blob.delete(&key).await;
    assert!(
        refused.is_err(),
        "a delete the policies do not grant went through: {:?}",
        recorder.usages()
    );
    // The emulator never saw it: the object is still there.
    assert!(blob.head(&key).await.unwrap().is_some());

    let usage = recorder.usages().remove("a2a-step-x").unwrap();
    for a in [
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
    ] {
        assert!(usage.used.contains(a), "{a} not recorded: {usage:?}");
    }
    assert_eq!(
        usage.denied,
        BTreeSet::from(["s3:DeleteObject".to_owned()]),
        "{usage:?}"
    );
}

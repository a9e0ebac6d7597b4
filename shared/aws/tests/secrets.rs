//! `DbSecret` against Secrets Manager on moto (or AWS) at `AWS_ENDPOINT_URL`.

#[cfg(not(feature = "secretsmanager"))]
compile_error!(
    "this test needs a2a-aws's `secretsmanager` feature: run `cargo test -p a2a-aws \
     --all-features` (or `cargo test --workspace`)"
);

mod common;

use a2a_aws::{DbSecret, aws_sdk_secretsmanager};
use a2a_core::PortError;
use a2a_testkit::unique_name;

#[tokio::test]
async fn credentials_come_from_a_secret_and_a_bad_or_missing_one_is_named() {
    let Some(conf) =
        common::conf("credentials_come_from_a_secret_and_a_bad_or_missing_one_is_named").await
    else {
        return;
    };
    let client = aws_sdk_secretsmanager::Client::new(&conf);
    let password = format!("p@ss:w/rd%{}", unique_name("x"));

    // The RDS format, with keys of its own that are not ours.
    let good = unique_name("a2a-db");
    let made = client
        .create_secret()
        .name(&good)
        .secret_string(
            serde_json::json!({
                "engine": "mysql", "host": "db.internal", "port": 3306,
                "username": "a2a_admin", "password": password,
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let arn = made.arn().unwrap().to_owned();
    for id in [&good, &arn] {
        let creds = DbSecret::from_conf(&conf, id).fetch().await.unwrap();
        assert_eq!(creds.username(), "a2a_admin");
        assert_eq!(creds.password(), password);
        assert!(!format!("{creds:?}").contains("p@ss"), "{creds:?}");
    }

    // No password: an Invalid error that names the secret and the field, not the value.
    let partial = unique_name("a2a-db-nopw");
    client
        .create_secret()
        .name(&partial)
        .secret_string(r#"{"username": "a2a_admin", "host": "hunter2-host"}"#)
        .send()
        .await
        .unwrap();
    let err = DbSecret::from_conf(&conf, &partial)
        .fetch()
        .await
        .unwrap_err();
    let m = err.to_string();
    assert!(matches!(err, PortError::Invalid(_)), "{m}");
    assert!(m.contains(&partial) && m.contains("\"password\""), "{m}");
    assert!(!m.contains("hunter2"), "{m}");

    // A binary secret has no text to read.
    let binary = unique_name("a2a-db-bin");
    client
        .create_secret()
        .name(&binary)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(b"\x00\x01"))
        .send()
        .await
        .unwrap();
    let err = DbSecret::from_conf(&conf, &binary)
        .fetch()
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Invalid(_)), "{err}");
    assert!(err.to_string().contains(&binary), "{err}");

    // No such secret: NotFound, naming it and the variable to check.
    let missing = unique_name("a2a-db-missing");
    let err = DbSecret::from_conf(&conf, &missing)
        .fetch()
        .await
        .unwrap_err();
    let m = err.to_string();
    assert!(matches!(err, PortError::NotFound(_)), "{m}");
    assert!(m.contains(&missing) && m.contains("A2A_DB_SECRET"), "{m}");

    for id in [&good, &partial, &binary] {
        client
            .delete_secret()
            .secret_id(id)
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn secrets_manager_is_a_secret_store() {
    let Some(conf) = common::conf("secrets_manager_is_a_secret_store").await else {
        return;
    };
    // A prefix of its own, so a rerun on the same emulator starts with no secrets.
    let store = a2a_aws::SmSecrets::from_conf(&conf, format!("{}/", unique_name("t")));
    a2a_testkit::secrets::the_first_secret_stands(std::sync::Arc::new(store), "17000123").await;
}

//! The databases' CA bundle the Lambda's way: uploaded to the data bucket (moto), loaded by
//! [`load_ca_bundle`] as a step function's cold start does, and named by a URL with
//! `sslrootcert=bundle`, against the TLS-only PostgreSQL of `.ci/tls-postgres.sh`. Needs
//! `AWS_ENDPOINT_URL`, `A2A_TEST_PG_TLS_URL`, `A2A_TEST_PG_TLS_CA` and
//! `A2A_TEST_PG_TLS_OTHER_CA`; without them, a SKIP line.

use a2a_aws::S3Blob;
use a2a_core::Locator;
use a2a_dbmove::{Db, DbError};
use a2a_testkit::moto::Moto;
use a2a_testkit::service_url;

use super::*;
use crate::tests::vars;

/// The URL with its `sslrootcert=PATH` replaced by `sslrootcert=bundle`.
fn naming_the_bundle(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("sslrootcert="))
        .map(str::to_owned)
        .collect();
    pairs.push(format!("sslrootcert={}", a2a_dbmove::BUNDLE));
    format!("{base}?{}", pairs.join("&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundle_from_the_data_bucket_verifies_the_server_and_a_wrong_one_is_refused() {
    let test = "the_bundle_from_the_data_bucket_verifies_the_server_and_a_wrong_one_is_refused";
    let (Some(url), Some(ca), Some(other), Some(_)) = (
        service_url("A2A_TEST_PG_TLS_URL", test),
        service_url("A2A_TEST_PG_TLS_CA", test),
        service_url("A2A_TEST_PG_TLS_OTHER_CA", test),
        service_url("AWS_ENDPOINT_URL", test),
    ) else {
        return;
    };
    let moto = Moto::new().await;
    let bucket = moto.bucket("a2a-ca").await.unwrap();
    let blob = S3Blob::from_conf(&moto.conf, &bucket, "");
    let key = |k: &str| BlobKey::parse(k).unwrap();
    for (k, path) in [("config/db-ca.pem", &ca), ("config/wrong-ca.pem", &other)] {
        blob.put(&key(k), std::fs::read(path).unwrap().into())
            .await
            .unwrap();
    }
    blob.put(&key("config/junk.pem"), "not a certificate\n".into())
        .await
        .unwrap();
    let bundled = Locator::new(naming_the_bundle(&url));
    assert!(
        bundled.expose().contains("sslmode=verify-full") && !bundled.expose().contains(".pem"),
        "{bundled}"
    );

    // The right bundle: the server's certificate verifies, host name included.
    let shown = format!("s3://{bucket}/config/db-ca.pem");
    assert_eq!(
        load_ca_bundle(&blob, &key("config/db-ca.pem"), &shown).await,
        Ok(1)
    );
    let db = Db::connect(&bundled, false).await;
    let db = match db {
        Ok(db) => db,
        Err(e) => panic!("the bundle should verify the server: {e}"),
    };
    db.list_tables("mdl_").await.unwrap();

    // A wrong one: refused, naming the host and the bundle, and not the password.
    let shown = format!("s3://{bucket}/config/wrong-ca.pem");
    load_ca_bundle(&blob, &key("config/wrong-ca.pem"), &shown)
        .await
        .unwrap();
    match Db::connect(&bundled, false).await {
        Ok(_) => panic!("a certificate that does not verify was accepted"),
        Err(e @ DbError::Unreachable(_)) => {
            let m = e.to_string();
            assert!(
                m.contains("127.0.0.1")
                    && m.contains("wrong-ca.pem")
                    && m.contains("does not verify"),
                "{m}"
            );
            let password = Locator::new(url.clone())
                .credentials()
                .map(|c| c.1)
                .unwrap_or_default();
            assert!(!m.contains(&password), "{m}");
        }
        Err(e) => panic!("not an Unreachable: {e}"),
    }

    // A start with a bundle that is not there, or not PEM, fails naming the variable.
    for (k, why) in [
        ("config/none.pem", "none.pem"),
        ("config/junk.pem", "no PEM certificate"),
    ] {
        let e = load_ca_bundle(&blob, &key(k), &format!("s3://{bucket}/{k}"))
            .await
            .unwrap_err();
        assert!(e.starts_with("A2A_DB_CA_KEY") && e.contains(why), "{e}");
    }
}

#[test]
fn the_bundles_key_is_read_with_the_environment() {
    let site = r#"{"host": "eix.example.cat", "old_wwwroot": "https://agora.example.cat/{dns}/moodle",
        "prefix": "mdl_", "shards": [{"name": "a", "db": "sqlite:///a2a-nowhere/a", "capacity": 1}],
        "templates": {}}"#;
    let base = [("A2A_TABLE", "t"), ("A2A_BUCKET", "b"), ("A2A_SITE", site)];
    let env = StepEnv::from_vars(vars(&base)).unwrap();
    assert_eq!(env.db_ca_key, None);
    let mut with = base.to_vec();
    with.push(("A2A_DB_CA_KEY", " config/rds-ca.pem "));
    let env = StepEnv::from_vars(vars(&with)).unwrap();
    assert_eq!(
        env.db_ca_key.as_ref().map(BlobKey::as_str),
        Some("config/rds-ca.pem")
    );
    with.pop();
    with.push(("A2A_DB_CA_KEY", "../rds-ca.pem"));
    let e = StepEnv::from_vars(vars(&with)).unwrap_err();
    assert!(e.contains("A2A_DB_CA_KEY"), "{e}");
}

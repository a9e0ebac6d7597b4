//! The `SecretStore` conformance suite, one plain async function run against every adapter.

use std::sync::Arc;

use a2a_core::{Secret, SecretName, SecretStore};

/// A secret that is not there reads as `None`; the first one stored stands, so a rerun
/// (or a racing run) gets back the secret that was made first; secrets of two schools
/// stay apart. Give each run a school code of its own.
pub async fn the_first_secret_stands(store: Arc<dyn SecretStore>, code: &str) {
    let code = a2a_core::SchoolCode::parse(code).unwrap();
    let name = SecretName::admin_password(&code);
    let other = SecretName::of(&code, "cron-password").unwrap();
    assert_eq!(store.get(&name).await.unwrap(), None);

    let first = Secret::new("Zx8-first-secret-of-twenty");
    assert_eq!(store.put_new(&name, &first).await.unwrap(), first);
    let second = Secret::new("second-one-never-stored");
    assert_eq!(
        store.put_new(&name, &second).await.unwrap(),
        first,
        "a rerun gets the secret made first"
    );
    assert_eq!(store.get(&name).await.unwrap(), Some(first.clone()));
    assert_eq!(store.get(&other).await.unwrap(), None);
    store.put_new(&other, &second).await.unwrap();
    assert_eq!(store.get(&other).await.unwrap(), Some(second.clone()));
    assert_eq!(store.get(&name).await.unwrap(), Some(first.clone()));

    // `put` replaces, and makes a secret that is not there yet.
    store.put(&name, &second).await.unwrap();
    assert_eq!(store.get(&name).await.unwrap(), Some(second.clone()));
    let named = SecretName::parse(&format!("operator/{}/source-db", code.as_str())).unwrap();
    store.put(&named, &first).await.unwrap();
    assert_eq!(store.get(&named).await.unwrap(), Some(first));
}

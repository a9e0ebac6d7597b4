//! Every EIX site gets its own admin password: random, kept in plain text only in the
//! secret store (`a2a secret show`), stored in the site as Moodle stores passwords, so
//! PHP's own `password_verify` accepts it. No password shows anywhere else.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use a2a_core::{InstanceKind, ListFilter, Locator};
use common::{a2a, files_containing, text};

/// Whether PHP runs here; under `CI=true` its absence fails the test instead.
fn php() -> bool {
    let ok = Command::new("php")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "php-cli is missing, and CI must run every test: .ci/run installs it"
        );
        eprintln!("SKIP: php-cli is not installed; the password_verify check is not run");
    }
    ok
}

fn password_verify(password: &str, hash: &str) -> bool {
    let o = Command::new("php")
        .args([
            "-r",
            "exit(password_verify($argv[1], $argv[2]) ? 0 : 1);",
            "--",
            password,
            hash,
        ])
        .output()
        .expect("php runs");
    o.status.success()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_eix_site_has_its_own_admin_password_and_only_the_secret_store_knows_it() {
    let home = tempfile::tempdir().unwrap();
    let demo = a2a(home.path(), &["demo", "--migrations", "1", "--eix", "3"]);
    assert_eq!(demo.status.code(), Some(0), "{}", text(&demo));

    let store = a2a_local::SqliteStore::open(&home.path().join("state.db"))
        .await
        .unwrap();
    let sites: Vec<_> = a2a_core::list_all(&store, ListFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.kind == InstanceKind::Provision)
        .collect();
    assert_eq!(sites.len(), 3);

    let mut seen = Vec::new();
    for site in &sites {
        let code = site.code.as_str();
        let shown = a2a(home.path(), &["secret", "show", code]);
        assert_eq!(shown.status.code(), Some(0), "{}", text(&shown));
        let password = String::from_utf8(shown.stdout).unwrap().trim().to_owned();
        assert!(
            password.len() >= 20,
            "{code}: {} characters",
            password.len()
        );

        let db: &Locator = site.target.db.as_ref().expect("a target");
        let db = a2a_dbmove::Db::connect(db, false).await.unwrap();
        let hash = a2a_dbmove::site::admin_password_hash(&db, "mdl_")
            .await
            .unwrap()
            .expect("the site has an admin");
        assert!(hash.starts_with("$2y$10$"), "{code}: {hash}");
        if php() {
            assert!(password_verify(&password, &hash), "{code}: PHP refuses");
            assert!(!password_verify("not-the-password-at-all", &hash));
        }
        let file = home
            .path()
            .join(format!("secrets/a2a/{code}/admin-password"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
        seen.push((password, hash));
    }
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        assert_ne!(seen[a].0, seen[b].0, "two sites share a password");
        assert_ne!(seen[a].1, seen[b].1, "two sites share a hash");
    }

    // The plain text is nowhere but in the secret store: not in what the demo printed,
    // not in the state (instances and their histories), not in the blobs or the sites.
    let secrets = home.path().join("secrets");
    for (password, _) in &seen {
        let leaks: Vec<String> = files_containing(home.path(), password.as_bytes())
            .into_iter()
            .filter(|f| !std::path::Path::new(f).starts_with(&secrets))
            .collect();
        assert!(leaks.is_empty(), "an admin password is in {leaks:?}");
    }
    let printed = text(&demo);
    assert!(seen.iter().all(|(p, _)| !printed.contains(p.as_str())));

    // Asking for a secret a site does not have says so; a bad code is refused.
    let o = a2a(home.path(), &["secret", "show", "08999999"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = a2a(home.path(), &["secret", "show", "8x"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

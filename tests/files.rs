//! End-to-end tests of `a2a files`: the real binary on a generated moodledata, against a
//! folder target and, when `AWS_ENDPOINT_URL` names a moto server, against S3.
//!
//! The moodledata comes from `a2a_files::fixture` (the `a2a fixture site --files` command
//! of the fixtures issue does not exist yet).

mod common;
use common::{a2a, text};

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;

use a2a_aws::S3Blob;
use a2a_core::{BlobKey, BlobStore};
use a2a_files::fixture::{self, Spec};
use a2a_testkit::{service_url, unique_name};
use serde_json::Value;

const SCHOOL: &str = "08012345";

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

/// Where a test copies to.
enum Target {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Target {
    fn arg(&self) -> String {
        match self {
            Target::Dir(p) => p.display().to_string(),
            Target::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }

    async fn store(&self) -> Arc<dyn BlobStore> {
        match self {
            Target::Dir(p) => Arc::new(a2a_local::FsBlob::new(p).unwrap()),
            Target::S3 { bucket, prefix } => {
                let conf = a2a_aws::config::sdk_config().await;
                Arc::new(S3Blob::from_conf(&conf, bucket, prefix))
            }
        }
    }
}

/// A folder target always; an S3 bucket on moto too when the emulator is set.
async fn targets(test: &str, dir: &Path) -> Vec<Target> {
    let mut out = vec![Target::Dir(dir.join("copy"))];
    if service_url("AWS_ENDPOINT_URL", test).is_some() {
        let conf = a2a_aws::config::sdk_config().await;
        let s3 = a2a_aws::aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build();
        let client = a2a_aws::aws_sdk_s3::Client::from_conf(s3);
        let bucket = unique_name("a2a-files");
        S3Blob::create_bucket(&client, &bucket).await.unwrap();
        out.push(Target::S3 {
            bucket,
            prefix: "agora/prod".into(),
        });
    }
    out
}

fn moodledata(dir: &Path, files: usize) -> (PathBuf, fixture::Generated) {
    let md = dir.join("moodledata");
    let spec = Spec {
        files,
        ..Spec::default()
    };
    let generated = fixture::generate(&md, &spec).unwrap();
    (md, generated)
}

fn filedir_key(sha1: &str) -> String {
    format!(
        "instances/{SCHOOL}/filedir/{}/{}/{sha1}",
        &sha1[..2],
        &sha1[2..4]
    )
}

fn sync(home: &Path, md: &Path, t: &Target, extra: &[&str]) -> Output {
    let mut args = vec!["files", "sync", "--from", md.to_str().unwrap()];
    let to = t.arg();
    args.extend(["--to", &to, "--school", SCHOOL]);
    args.extend(extra);
    a2a(home, &args)
}

fn verify(home: &Path, md: &Path, t: &Target, extra: &[&str]) -> Output {
    let mut args = vec!["files", "verify", "--from", md.to_str().unwrap()];
    let to = t.arg();
    args.extend(["--to", &to, "--school", SCHOOL]);
    args.extend(extra);
    a2a(home, &args)
}

#[tokio::test]
async fn sync_verify_equal_then_a_second_sync_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (md, generated) = moodledata(dir.path(), 60);
    let kept = (generated.filedir.len() + generated.others.len()) as u64;
    for t in targets("files: sync then verify", dir.path()).await {
        let first = sync(dir.path(), &md, &t, &["--json", "--jobs", "8"]);
        assert_eq!(first.status.code(), Some(0), "{}", text(&first));
        let report = json(&first);
        assert_eq!(report["files"], kept);
        assert_eq!(report["copied_files"], kept);
        assert_eq!(report["bytes"], generated.bytes);
        assert_eq!(report["excluded_files"], 7);
        assert_eq!(report["problems"], serde_json::json!([]));

        for rehash in [&[][..], &["--rehash"][..]] {
            let v = verify(dir.path(), &md, &t, rehash);
            assert_eq!(v.status.code(), Some(0), "{}", text(&v));
            assert!(String::from_utf8_lossy(&v.stdout).contains("equal"));
        }

        let second = sync(dir.path(), &md, &t, &["--json"]);
        assert_eq!(second.status.code(), Some(0), "{}", text(&second));
        let report = json(&second);
        assert_eq!(report["copied_files"], 0, "a second sync copies nothing");
        assert_eq!(report["skipped_files"], kept);

        // Spaces, apostrophes and Catalan accents survive the round trip, byte for byte.
        let store = t.store().await;
        for rel in &generated.others {
            let key = BlobKey::parse(&format!("instances/{SCHOOL}/moodledata/{rel}")).unwrap();
            let got = store.get(&key).await.unwrap();
            assert_eq!(got, std::fs::read(md.join(rel)).unwrap(), "{rel}");
        }
        let (rel, sha1) = &generated.filedir[0];
        let got = store
            .get(&BlobKey::parse(&filedir_key(sha1)).unwrap())
            .await
            .unwrap();
        assert_eq!(got, std::fs::read(md.join(rel)).unwrap());
        for skipped in [
            "cache/core/x.cache",
            "sessions/sess_abc",
            "climaintenance.html",
        ] {
            let key = BlobKey::parse(&format!("instances/{SCHOOL}/moodledata/{skipped}")).unwrap();
            assert_eq!(
                store.head(&key).await.unwrap(),
                None,
                "{skipped} is left out"
            );
        }
    }
}

#[tokio::test]
async fn a_corrupted_source_file_is_reported_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (md, generated) = moodledata(dir.path(), 12);
    let (rel, sha1) = &generated.filedir[4];
    std::fs::write(md.join(rel), b"no longer the content its name says").unwrap();
    for t in targets("files: corrupted source", dir.path()).await {
        let out = sync(dir.path(), &md, &t, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("problem {rel}")), "{}", text(&out));
        assert!(stdout.contains("does not match its name"), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(SCHOOL));
        let store = t.store().await;
        assert_eq!(
            store
                .head(&BlobKey::parse(&filedir_key(sha1)).unwrap())
                .await
                .unwrap(),
            None
        );

        let v = verify(dir.path(), &md, &t, &["--json"]);
        assert_eq!(v.status.code(), Some(1), "{}", text(&v));
        assert_eq!(json(&v)["missing"], serde_json::json!([filedir_key(sha1)]));
    }
}

#[tokio::test]
async fn a_deleted_target_object_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (md, generated) = moodledata(dir.path(), 12);
    for t in targets("files: deleted target object", dir.path()).await {
        let out = sync(dir.path(), &md, &t, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let store = t.store().await;
        let gone = filedir_key(&generated.filedir[7].1);
        store.delete(&BlobKey::parse(&gone).unwrap()).await.unwrap();
        let accented = format!("instances/{SCHOOL}/moodledata/{}", generated.others[3]);
        store
            .delete(&BlobKey::parse(&accented).unwrap())
            .await
            .unwrap();

        let v = verify(dir.path(), &md, &t, &[]);
        assert_eq!(v.status.code(), Some(1), "{}", text(&v));
        let stdout = String::from_utf8_lossy(&v.stdout);
        assert!(stdout.contains(&format!("missing {gone}")), "{}", text(&v));
        assert!(
            stdout.contains(&format!("missing {accented}")),
            "{}",
            text(&v)
        );
        assert!(stdout.contains("2 missing"), "{}", text(&v));

        // The manifest that verify found wrong is trusted no more: a plain sync lists the
        // target and puts both back, with no flag (with no manifest, the few files outside
        // `filedir` are sent again whole, as after a first sync cut short).
        assert!(stdout.contains("manifest"), "{}", text(&v));
        let plain = sync(dir.path(), &md, &t, &["--json"]);
        let again = 1 + generated.others.len();
        assert_eq!(json(&plain)["copied_files"], again, "{}", text(&plain));
        assert_eq!(verify(dir.path(), &md, &t, &[]).status.code(), Some(0));
    }
}

/// A folder copy is read, not only listed: a target object whose bytes changed behind the
/// manifest (same size, in `filedir` and elsewhere) is caught by a plain verify, and the
/// next plain sync puts the source's bytes back. A file removed from the source has its
/// copy deleted by the next sync.
#[tokio::test]
async fn a_target_object_changed_behind_the_manifest_is_caught_and_mended() {
    let dir = tempfile::tempdir().unwrap();
    let test = "files: changed behind the manifest";
    for (n, t) in targets(test, dir.path()).await.into_iter().enumerate() {
        let home = dir.path().join(format!("source-{n}"));
        std::fs::create_dir_all(&home).unwrap();
        let (md, generated) = moodledata(&home, 12);
        changed_behind_the_manifest(dir.path(), &md, &generated, &t).await;
    }
}

/// Same-size other bytes put behind the manifest into the copy `t` of `md`, a `filedir`
/// object and another: verify finds both by content (a folder copy re-hashed; an S3 copy
/// by the checksums S3 keeps, without `--rehash`), and a plain sync mends them.
async fn changed_behind_the_manifest(
    home: &Path,
    md: &Path,
    generated: &fixture::Generated,
    t: &Target,
) {
    let out = sync(home, md, t, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let store = t.store().await;
    let (rel, sha1) = &generated.filedir[2];
    let hashed = filedir_key(sha1);
    let other = format!("instances/{SCHOOL}/moodledata/{}", generated.others[1]);
    for key in [&hashed, &other] {
        let k = BlobKey::parse(key).unwrap();
        let mut bytes = store.get(&k).await.unwrap().to_vec();
        assert!(!bytes.is_empty(), "{key}");
        bytes[0] ^= 0xff;
        store.put(&k, bytes.into()).await.unwrap();
    }
    let v = verify(home, md, t, &["--json"]);
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    let report = json(&v);
    assert_eq!(
        report["rehashed"],
        matches!(t, Target::Dir(_)),
        "a folder copy is always re-hashed; an S3 one is not downloaded"
    );
    assert_eq!(report["manifest_dropped"], true);
    let different: Vec<&str> = common::strings(&report["different"], "key");
    assert!(different.contains(&hashed.as_str()), "{report}");
    assert!(different.contains(&other.as_str()), "{report}");

    let plain = sync(home, md, t, &["--json"]);
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain));
    let again = 1 + generated.others.len();
    assert_eq!(json(&plain)["copied_files"], again, "{}", text(&plain));
    assert_eq!(
        store.get(&BlobKey::parse(&hashed).unwrap()).await.unwrap(),
        std::fs::read(md.join(rel)).unwrap()
    );
    let v = verify(home, md, t, &[]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));

    // Removed from the source: its copy goes with the next sync, manifest trusted or not.
    let removed = &generated.others[4];
    std::fs::remove_file(md.join(removed)).unwrap();
    let next = sync(home, md, t, &["--json"]);
    assert_eq!(next.status.code(), Some(0), "{}", text(&next));
    assert_eq!(json(&next)["deleted_files"], 1, "{}", text(&next));
    let gone = BlobKey::parse(&format!("instances/{SCHOOL}/moodledata/{removed}")).unwrap();
    assert_eq!(store.head(&gone).await.unwrap(), None);
    let v = verify(home, md, t, &[]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

#[tokio::test]
async fn a_sync_killed_midway_completes_on_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("moodledata");
    let spec = Spec {
        files: 600,
        max_size: 16 * 1024,
        ..Spec::default()
    };
    fixture::generate(&md, &spec).unwrap();
    for t in targets("files: killed midway", dir.path()).await {
        let store = t.store().await;
        let to = t.arg();
        let mut child = common::command(dir.path())
            .args(["files", "sync", "--from", md.to_str().unwrap()])
            .args(["--to", &to, "--school", SCHOOL, "--jobs", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it as soon as the first files have landed.
        let prefix = format!("instances/{SCHOOL}/filedir/");
        loop {
            let page = store.list(&prefix, None).await.unwrap();
            if page.items.len() >= 5 || child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let manifest = BlobKey::parse(&format!("instances/{SCHOOL}/manifest.json")).unwrap();
        assert_eq!(
            store.head(&manifest).await.unwrap(),
            None,
            "the sync was stopped before its end (the manifest is written last)"
        );
        let v = verify(dir.path(), &md, &t, &[]);
        assert_eq!(v.status.code(), Some(1), "a half copy does not verify");

        let rerun = sync(dir.path(), &md, &t, &["--json"]);
        assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun));
        let report = json(&rerun);
        assert!(report["skipped_files"].as_u64().unwrap() >= 5, "{report}");
        let v = verify(dir.path(), &md, &t, &["--rehash"]);
        assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_out_of_the_tree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (md, _) = moodledata(dir.path(), 5);
    std::fs::write(dir.path().join("shadow"), "root:x:0:0").unwrap();
    std::os::unix::fs::symlink(dir.path().join("shadow"), md.join("lang/ca/shadow.php")).unwrap();
    // A link to a file inside the tree is fine: it is copied as the file.
    std::os::unix::fs::symlink(md.join("muc/config.php"), md.join("muc/alias.php")).unwrap();
    for t in targets("files: symlink out of the tree", dir.path()).await {
        let out = sync(dir.path(), &md, &t, &["--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let report = json(&out);
        let problems = report["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{report}");
        assert_eq!(problems[0]["path"], "lang/ca/shadow.php");
        assert!(
            problems[0]["what"]
                .as_str()
                .unwrap()
                .contains("outside the moodledata folder")
        );
        let store = t.store().await;
        let leaked =
            BlobKey::parse(&format!("instances/{SCHOOL}/moodledata/lang/ca/shadow.php")).unwrap();
        assert_eq!(store.head(&leaked).await.unwrap(), None);
        let alias =
            BlobKey::parse(&format!("instances/{SCHOOL}/moodledata/muc/alias.php")).unwrap();
        assert!(store.head(&alias).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn a_template_copies_to_a_new_site_server_side() {
    let dir = tempfile::tempdir().unwrap();
    let (md, generated) = moodledata(dir.path(), 20);
    let kept = (generated.filedir.len() + generated.others.len()) as u64;
    for t in targets("files: template copy", dir.path()).await {
        assert_eq!(sync(dir.path(), &md, &t, &[]).status.code(), Some(0));
        let to = t.arg();
        let copy = |extra: &[&str]| {
            let mut args = vec!["files", "copy-template", "--to", &to, "--template", SCHOOL];
            args.extend(["--school", "17000001", "--json"]);
            args.extend(extra);
            a2a(dir.path(), &args)
        };
        let first = copy(&[]);
        assert_eq!(first.status.code(), Some(0), "{}", text(&first));
        assert_eq!(json(&first)["copied_files"], kept);
        let again = copy(&["--jobs", "2"]);
        assert_eq!(json(&again)["copied_files"], 0, "a rerun copies nothing");
        let v = a2a(
            dir.path(),
            &[
                "files",
                "verify",
                "--from",
                md.to_str().unwrap(),
                "--to",
                &to,
                "--school",
                "17000001",
                "--rehash",
            ],
        );
        assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    }
}

#[test]
fn the_maintenance_switch_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().to_str().unwrap();
    let on = a2a(
        dir.path(),
        &["files", "maintenance", "--moodledata", md, "on"],
    );
    assert_eq!(on.status.code(), Some(0), "{}", text(&on));
    assert!(dir.path().join("climaintenance.html").is_file());
    let again = a2a(
        dir.path(),
        &["files", "maintenance", "--moodledata", md, "on"],
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("already so"));
    let off = a2a(
        dir.path(),
        &["files", "maintenance", "--moodledata", md, "off"],
    );
    assert_eq!(off.status.code(), Some(0));
    assert!(!dir.path().join("climaintenance.html").exists());
}

#[test]
fn bad_input_exits_2_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let (md, _) = moodledata(dir.path(), 2);
    let to = dir.path().join("copy");
    let to = to.to_str().unwrap();
    let md = md.to_str().unwrap();
    let bad_school = a2a(
        dir.path(),
        &[
            "files", "sync", "--from", md, "--to", to, "--school", "8012345",
        ],
    );
    assert_eq!(bad_school.status.code(), Some(2), "{}", text(&bad_school));
    assert!(String::from_utf8_lossy(&bad_school.stderr).contains("--school \"8012345\""));
    let missing = dir.path().join("no-such-moodledata");
    let no_source = a2a(
        dir.path(),
        &[
            "files",
            "sync",
            "--from",
            missing.to_str().unwrap(),
            "--to",
            to,
            "--school",
            SCHOOL,
        ],
    );
    assert_eq!(no_source.status.code(), Some(2), "{}", text(&no_source));
    assert!(String::from_utf8_lossy(&no_source.stderr).contains("no-such-moodledata"));
    let bad_to = a2a(
        dir.path(),
        &[
            "files", "verify", "--from", md, "--to", "s3://B/x", "--school", SCHOOL,
        ],
    );
    assert_eq!(bad_to.status.code(), Some(2), "{}", text(&bad_to));
    let inside = format!("{md}/copy");
    let nested = a2a(
        dir.path(),
        &[
            "files", "sync", "--from", md, "--to", &inside, "--school", SCHOOL,
        ],
    );
    assert_eq!(nested.status.code(), Some(2), "{}", text(&nested));
    assert!(String::from_utf8_lossy(&nested.stderr).contains("inside the moodledata folder"));
    assert!(!Path::new(&inside).exists(), "nothing was made");
    let jobs = a2a(
        dir.path(),
        &[
            "files", "sync", "--from", md, "--to", to, "--school", SCHOOL, "--jobs", "0",
        ],
    );
    assert_eq!(jobs.status.code(), Some(2));
}

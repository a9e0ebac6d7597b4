//! The data plane against the folder store: sync, resume, verify, template copy.

use std::path::Path;
use std::sync::Arc;

use a2a_core::{BlobKey, BlobStore, SchoolCode};
use a2a_files::fixture::{self, Spec};
use a2a_files::{NoProgress, SyncOptions, VerifyOptions, copy_site, sync, template_root, verify};
use a2a_local::FsBlob;

fn school() -> SchoolCode {
    SchoolCode::parse("08012345").unwrap()
}

fn setup(files: usize) -> (tempfile::TempDir, fixture::Generated, Arc<dyn BlobStore>) {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec {
        files,
        ..Spec::default()
    };
    let generated = fixture::generate(&dir.path().join("moodledata"), &spec).unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(FsBlob::new(dir.path().join("target")).unwrap());
    (dir, generated, store)
}

async fn run_sync(md: &Path, store: &Arc<dyn BlobStore>, jobs: usize) -> a2a_files::SyncReport {
    sync(
        md,
        store.clone(),
        &school(),
        &SyncOptions {
            jobs,
            ..SyncOptions::default()
        },
        &NoProgress,
    )
    .await
    .unwrap()
}

async fn run_verify(
    md: &Path,
    store: &Arc<dyn BlobStore>,
    rehash: bool,
) -> a2a_files::VerifyReport {
    let opts = VerifyOptions {
        rehash,
        ..VerifyOptions::default()
    };
    verify(md, store.clone(), &school(), &opts, &NoProgress)
        .await
        .unwrap()
}

#[tokio::test]
async fn sync_then_verify_is_equal_and_a_rerun_copies_nothing() {
    let (dir, generated, store) = setup(40);
    let md = dir.path().join("moodledata");
    let first = run_sync(&md, &store, 4).await;
    let kept = generated.filedir.len() + generated.others.len();
    assert_eq!(first.files, kept as u64);
    assert_eq!(first.copied_files, kept as u64);
    assert_eq!(first.bytes, generated.bytes);
    assert_eq!(first.excluded_files, 7);
    assert!(first.problems.is_empty(), "{:?}", first.problems);

    // The objectfs layout, and nothing of what Moodle rebuilds.
    let (rel, sha1) = &generated.filedir[0];
    let key = BlobKey::parse(&format!(
        "instances/08012345/filedir/{}/{}/{sha1}",
        &sha1[..2],
        &sha1[2..4]
    ))
    .unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        std::fs::read(md.join(rel)).unwrap()
    );
    let accented = BlobKey::parse(
        "instances/08012345/moodledata/repository/Fitxers de l'escola/Programació didàctica 2026.txt",
    )
    .unwrap();
    assert!(store.head(&accented).await.unwrap().is_some());
    for gone in [
        "instances/08012345/moodledata/cache/core/x.cache",
        "instances/08012345/moodledata/climaintenance.html",
    ] {
        assert!(
            store
                .head(&BlobKey::parse(gone).unwrap())
                .await
                .unwrap()
                .is_none()
        );
    }

    for rehash in [false, true] {
        let v = run_verify(&md, &store, rehash).await;
        assert!(v.equal, "{v:?}");
        assert_eq!(v.compared, kept as u64);
    }

    let second = run_sync(&md, &store, 4).await;
    assert_eq!(second.copied_files, 0);
    assert_eq!(second.skipped_files, kept as u64);
}

#[tokio::test]
async fn a_damaged_source_file_is_reported_not_copied() {
    let (dir, generated, store) = setup(10);
    let md = dir.path().join("moodledata");
    let (rel, sha1) = &generated.filedir[3];
    std::fs::write(md.join(rel), b"not what the name says").unwrap();
    let report = run_sync(&md, &store, 2).await;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(&report.problems[0].path, rel);
    assert!(report.problems[0].what.contains("does not match"));
    let key = format!(
        "instances/08012345/filedir/{}/{}/{sha1}",
        &sha1[..2],
        &sha1[2..4]
    );
    assert!(
        store
            .head(&BlobKey::parse(&key).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let v = run_verify(&md, &store, false).await;
    assert!(!v.equal);
    assert_eq!(v.missing, [key]);
}

#[tokio::test]
async fn damage_after_a_sync_is_caught_by_the_next_sync_and_verify() {
    let (dir, generated, store) = setup(10);
    let md = dir.path().join("moodledata");
    run_sync(&md, &store, 2).await;
    let (rel, _) = &generated.filedir[5];
    let len = std::fs::metadata(md.join(rel)).unwrap().len() as usize;
    // Same size, new content: only the quick check (mtime) and the hash can tell.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(md.join(rel), vec![b'x'; len]).unwrap();
    let again = run_sync(&md, &store, 2).await;
    assert_eq!(again.problems.len(), 1, "{:?}", again.problems);
    assert!(again.problems[0].what.contains("damaged"));
    let v = run_verify(&md, &store, false).await;
    assert!(!v.equal);
    assert_eq!(v.problems.len(), 1);
}

#[tokio::test]
async fn verify_names_missing_extra_and_different_keys() {
    let (dir, generated, store) = setup(10);
    let md = dir.path().join("moodledata");
    run_sync(&md, &store, 3).await;
    let (_, sha1) = &generated.filedir[0];
    let deleted = format!(
        "instances/08012345/filedir/{}/{}/{sha1}",
        &sha1[..2],
        &sha1[2..4]
    );
    store
        .delete(&BlobKey::parse(&deleted).unwrap())
        .await
        .unwrap();
    let extra = "instances/08012345/moodledata/stray.txt";
    store
        .put(&BlobKey::parse(extra).unwrap(), "x".into())
        .await
        .unwrap();
    // Same size, other bytes: seen by content, the stored checksum (here the folder
    // store's re-hash) as well as a download.
    let (_, sha1b) = &generated.filedir[1];
    let damaged = format!(
        "instances/08012345/filedir/{}/{}/{sha1b}",
        &sha1b[..2],
        &sha1b[2..4]
    );
    let k = BlobKey::parse(&damaged).unwrap();
    let len = store.get(&k).await.unwrap().len();
    store.put(&k, vec![0u8; len].into()).await.unwrap();

    let quick = run_verify(&md, &store, false).await;
    assert!(!quick.equal);
    assert!(!quick.rehashed);
    assert_eq!(quick.missing, std::slice::from_ref(&deleted));
    assert_eq!(quick.extra, [extra]);
    assert_eq!(quick.different.len(), 1, "{:?}", quick.different);
    assert_eq!(quick.different[0].key, damaged);
    assert!(
        quick.different[0]
            .why
            .starts_with("content: the copy's SHA-1"),
        "{:?}",
        quick.different
    );
    // Found wrong, the manifest is trusted no more, and the damaged blob is deleted with
    // it: its size would pass a listing.
    assert!(quick.manifest_dropped);
    assert_eq!(store.head(&k).await.unwrap(), None);
    let manifest = "instances/08012345/manifest.json".to_owned();

    // Damaged once more, for the download's turn.
    store.put(&k, vec![0u8; len].into()).await.unwrap();
    let deep = run_verify(&md, &store, true).await;
    assert_eq!(deep.missing, [deleted.clone(), manifest]);
    assert_eq!(deep.different.len(), 1);
    assert_eq!(deep.different[0].key, damaged);
    assert_eq!(store.head(&k).await.unwrap(), None);

    // A plain rerun lists the target: both blobs are put back, the stray key deleted.
    let mended = run_sync(&md, &store, 2).await;
    assert!(mended.copied_files >= 2, "{mended:?}");
    assert_eq!(mended.deleted_files, 1, "{mended:?}");
    let after = run_verify(&md, &store, true).await;
    assert!(after.equal, "{after:?}");
}

#[tokio::test]
async fn an_interrupted_sync_resumes() {
    let (dir, generated, store) = setup(30);
    let md = dir.path().join("moodledata");
    // Half the filedir already copied and no manifest: as after a kill.
    for (rel, sha1) in generated.filedir.iter().step_by(2) {
        let key = format!(
            "instances/08012345/filedir/{}/{}/{sha1}",
            &sha1[..2],
            &sha1[2..4]
        );
        store
            .put_file(&BlobKey::parse(&key).unwrap(), &md.join(rel))
            .await
            .unwrap();
    }
    let report = run_sync(&md, &store, 4).await;
    let half = generated.filedir.len().div_ceil(2) as u64;
    assert_eq!(report.skipped_files, half);
    assert_eq!(report.copied_files, report.files - half);
    assert!(run_verify(&md, &store, true).await.equal);
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_out_of_the_tree_is_refused() {
    let (dir, _, store) = setup(3);
    let md = dir.path().join("moodledata");
    std::fs::write(dir.path().join("secret.txt"), "root:x:0:0").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), md.join("lang/leak.txt")).unwrap();
    let report = run_sync(&md, &store, 2).await;
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].path, "lang/leak.txt");
    let key = BlobKey::parse("instances/08012345/moodledata/lang/leak.txt").unwrap();
    assert!(store.head(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_template_copies_to_a_new_site_and_resumes() {
    let (dir, generated, store) = setup(12);
    let md = dir.path().join("moodledata");
    run_sync(&md, &store, 3).await;
    let new_site = SchoolCode::parse("17000001").unwrap();
    let from = template_root("08012345").unwrap();
    let first = copy_site(store.clone(), &from, &new_site, 4, &NoProgress)
        .await
        .unwrap();
    let kept = (generated.filedir.len() + generated.others.len()) as u64;
    assert_eq!(first.files, kept);
    assert_eq!(first.copied_files, kept);
    // The copy is the same site under the new code: verify it against the same source.
    let v = verify(
        &md,
        store.clone(),
        &new_site,
        &VerifyOptions {
            rehash: true,
            jobs: 4,
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(v.equal, "{v:?}");
    let m = a2a_files::Manifest::load(store.as_ref(), &new_site)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.school, "17000001");
    assert_eq!(m.copied_from.as_deref(), Some("instances/08012345/"));

    // A partial copy resumes: remove some, copy again.
    let (_, sha1) = &generated.filedir[2];
    let k = format!(
        "instances/17000001/filedir/{}/{}/{sha1}",
        &sha1[..2],
        &sha1[2..4]
    );
    store.delete(&BlobKey::parse(&k).unwrap()).await.unwrap();
    let again = copy_site(store.clone(), &from, &new_site, 4, &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.copied_files, 1);
    assert_eq!(again.skipped_files, kept - 1);
    assert!(template_root("Not a name").is_err());
    assert_eq!(
        template_root("eix-primaria").unwrap(),
        "templates/eix-primaria/"
    );
}

//! The `BlobStore` conformance suite.

use std::sync::Arc;

use a2a_core::{BlobKey, BlobStore, PortError};
use bytes::Bytes;
use sha2::{Digest, Sha256};

fn key(s: &str) -> BlobKey {
    BlobKey::parse(s).unwrap()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// What is put comes back, with its size and SHA-256; a second put replaces the first.
pub async fn put_get_head_delete(store: Arc<dyn BlobStore>) {
    let k = key("instances/08012345/moodledata/lang/ca/langconfig.php");
    let body = Bytes::from_static("<?php $string['thislanguage'] = 'Català';".as_bytes());
    let meta = store.put(&k, body.clone()).await.unwrap();
    assert_eq!(meta.key, k);
    assert_eq!(meta.size, body.len() as u64);
    assert_eq!(meta.sha256.as_deref(), Some(sha(&body).as_str()));
    assert_eq!(store.get(&k).await.unwrap(), body);
    let head = store.head(&k).await.unwrap().expect("present");
    assert_eq!(head.size, body.len() as u64);
    if let Some(h) = head.sha256 {
        assert_eq!(h, sha(&body));
    }

    let newer = Bytes::from_static(b"replaced");
    store.put(&k, newer.clone()).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), newer);

    store.delete(&k).await.unwrap();
    assert_eq!(store.head(&k).await.unwrap(), None);
    assert!(matches!(store.get(&k).await, Err(PortError::NotFound(_))));
    store
        .delete(&k)
        .await
        .expect("deleting a missing blob is fine");
}

/// Files stream in and out whole, with checksums; a failed download leaves no file.
pub async fn files_stream_with_checksums(store: Arc<dyn BlobStore>) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("chunk.bin");
    // 6 MiB of varied bytes: over the 5 MiB multipart threshold of S3.
    let data: Vec<u8> = (0..6 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let k = key("staging/08012345/mdl_user/000001.arrow.zst");
    let put = store.put_file(&k, &src).await.unwrap();
    assert_eq!(put.size, data.len() as u64);
    assert_eq!(put.sha256.as_deref(), Some(sha(&data).as_str()));

    let dst = dir.path().join("out/copy.bin");
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    let got = store.get_to_file(&k, &dst).await.unwrap();
    assert_eq!(got.size, data.len() as u64);
    assert_eq!(got.sha256.as_deref(), Some(sha(&data).as_str()));
    assert_eq!(std::fs::read(&dst).unwrap(), data);

    let missing = dir.path().join("out/missing.bin");
    assert!(matches!(
        store.get_to_file(&key("staging/none"), &missing).await,
        Err(PortError::NotFound(_))
    ));
    assert!(!missing.exists(), "a failed download leaves no file");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
}

/// Listing is by prefix, in key order, and pages through everything once.
pub async fn list_by_prefix_in_pages(store: Arc<dyn BlobStore>) {
    let mut want = Vec::new();
    for i in 0..1050u32 {
        let k = key(&format!("instances/08000001/filedir/{:02x}/{i:05}", i % 7));
        want.push(k.as_str().to_owned());
    }
    // Neighbours that share a string prefix but not the folder.
    store
        .put(&key("instances/08000001x/other"), Bytes::from_static(b"no"))
        .await
        .unwrap();
    store
        .put(&key("instances/0800000"), Bytes::from_static(b"no"))
        .await
        .unwrap();
    // Put in parallel, 32 at a time: 1050 sequential round trips would be slow on S3.
    for chunk in want.chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for k in chunk {
            let store = store.clone();
            let k = key(k);
            set.spawn(async move { store.put(&k, Bytes::from(k.as_str().to_owned())).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
    }
    want.sort();

    let mut got = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list("instances/08000001/", cursor.take())
            .await
            .unwrap();
        pages += 1;
        got.extend(page.items.into_iter().map(|m| {
            assert_eq!(m.size, m.key.as_str().len() as u64);
            m.key.as_str().to_owned()
        }));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "listing never ended");
    }
    assert_eq!(got, want);
    assert!(pages >= 2, "1050 keys take more than one page");
    assert!(
        store.list("nothing/", None).await.unwrap().items.is_empty(),
        "an unknown prefix lists nothing"
    );
}

/// Copy makes an equal blob under the new key and leaves the old one.
pub async fn copy_within_the_store(store: Arc<dyn BlobStore>) {
    let from = key("templates/primary/filedir/ab/cd/abcdef");
    let to = key("instances/17000001/filedir/ab/cd/abcdef");
    let body = Bytes::from(vec![7u8; 70_000]);
    store.put(&from, body.clone()).await.unwrap();
    store.copy(&from, &to).await.unwrap();
    store.copy(&from, &to).await.expect("copy is idempotent");
    assert_eq!(store.get(&to).await.unwrap(), body);
    assert_eq!(store.get(&from).await.unwrap(), body);
    assert!(matches!(
        store.copy(&key("templates/none"), &to).await,
        Err(PortError::NotFound(_))
    ));
}

/// A content-addressed put stores a file whose SHA-1 is the one named, and refuses, writing
/// nothing, a file that does not match; one larger than an S3 part goes too.
pub async fn put_file_sha1_checks_the_content(store: Arc<dyn BlobStore>) {
    use sha1::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::write(&small, "Bon dia, Català!").unwrap();
    let small_sha1 = hex::encode(sha1::Sha1::digest(b"Bon dia, Catal\xc3\xa0!"));
    let k = key(&format!(
        "instances/08012345/filedir/{}/{}/{small_sha1}",
        &small_sha1[..2],
        &small_sha1[2..4]
    ));
    let meta = store.put_file_sha1(&k, &small, &small_sha1).await.unwrap();
    assert_eq!(meta.size, "Bon dia, Català!".len() as u64);
    assert_eq!(
        meta.sha256.as_deref(),
        Some(sha("Bon dia, Català!".as_bytes()).as_str())
    );
    assert_eq!(store.get(&k).await.unwrap(), "Bon dia, Català!".as_bytes());
    store
        .put_file_sha1(&k, &small, &small_sha1.to_ascii_uppercase())
        .await
        .expect("the SHA-1 may be given in upper case");

    let liar = key("instances/08012345/filedir/00/00/0000");
    let wrong = "0".repeat(40);
    assert!(matches!(
        store.put_file_sha1(&liar, &small, &wrong).await,
        Err(PortError::Corrupt(_))
    ));
    assert_eq!(
        store.head(&liar).await.unwrap(),
        None,
        "a mismatch writes nothing"
    );
    assert!(matches!(
        store.put_file_sha1(&liar, &small, "not-a-sha1").await,
        Err(PortError::Invalid(_))
    ));

    // Over S3's part size: multipart, each part checked by SHA-1.
    let big = dir.path().join("big");
    let data: Vec<u8> = (0..9 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    let big_sha1 = hex::encode(sha1::Sha1::digest(&data));
    let kb = key(&format!("instances/08012345/filedir/{big_sha1}"));
    let meta = store.put_file_sha1(&kb, &big, &big_sha1).await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(meta.sha256.as_deref(), Some(sha(&data).as_str()));
    assert_eq!(store.get(&kb).await.unwrap(), data);
    let mut bad = data.clone();
    bad[5 * 1024 * 1024] ^= 1;
    std::fs::write(&big, &bad).unwrap();
    let kb2 = key("instances/08012345/filedir/big-bad");
    assert!(matches!(
        store.put_file_sha1(&kb2, &big, &big_sha1).await,
        Err(PortError::Corrupt(_))
    ));
    assert_eq!(store.head(&kb2).await.unwrap(), None);
}

/// `head_sum` gives the checksum of what the blob holds now, without a download: SHA-256
/// of any put, SHA-1 of a content-addressed one, one-piece or over S3's part size, and a
/// blob replaced by other bytes of the same size has another checksum.
pub async fn head_sum_gives_the_content_checksum(store: Arc<dyn BlobStore>) {
    use a2a_core::SumAlgo;
    use sha1::Digest as _;
    let sha1 = |b: &[u8]| hex::encode(sha1::Sha1::digest(b));
    let dir = tempfile::tempdir().unwrap();

    let k = key("instances/08012345/moodledata/lang/ca/langconfig.php");
    let body = Bytes::from_static("Català".as_bytes());
    store.put(&k, body.clone()).await.unwrap();
    let head = store.head_sum(&k, SumAlgo::Sha256).await.unwrap().unwrap();
    assert_eq!(head.size, body.len() as u64);
    assert_eq!(SumAlgo::Sha256.of(&head), Some(sha(&body).as_str()));
    // Same size, other bytes: the checksum follows the content.
    let other = Bytes::from_static("Catalá".as_bytes());
    assert_eq!(other.len(), body.len());
    store.put(&k, other.clone()).await.unwrap();
    let head = store.head_sum(&k, SumAlgo::Sha256).await.unwrap().unwrap();
    assert_eq!(head.sha256.as_deref(), Some(sha(&other).as_str()));

    let small = dir.path().join("small");
    std::fs::write(&small, "Bon dia").unwrap();
    let h = sha1(b"Bon dia");
    let ks = key(&format!(
        "instances/08012345/filedir/{}/{}/{h}",
        &h[..2],
        &h[2..4]
    ));
    let put = store.put_file_sha1(&ks, &small, &h).await.unwrap();
    assert_eq!(put.sha1.as_deref(), Some(h.as_str()));
    let head = store.head_sum(&ks, SumAlgo::Sha1).await.unwrap().unwrap();
    assert_eq!(SumAlgo::Sha1.of(&head), Some(h.as_str()));

    // Over S3's part size (9 MiB against 8): a multipart upload, whose own SHA checksum is
    // a checksum of the parts' checksums, not the content's.
    let big = dir.path().join("big");
    let data: Vec<u8> = (0..9 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    let hb = sha1(&data);
    let kb = key(&format!(
        "instances/08012345/filedir/{}/{}/{hb}",
        &hb[..2],
        &hb[2..4]
    ));
    store.put_file_sha1(&kb, &big, &hb).await.unwrap();
    let head = store.head_sum(&kb, SumAlgo::Sha1).await.unwrap().unwrap();
    assert_eq!(
        (head.size, head.sha1.as_deref()),
        (data.len() as u64, Some(hb.as_str()))
    );
    let kp = key("instances/08012345/moodledata/big.bin");
    store.put_file(&kp, &big).await.unwrap();
    let head = store.head_sum(&kp, SumAlgo::Sha256).await.unwrap().unwrap();
    assert_eq!(head.sha256.as_deref(), Some(sha(&data).as_str()));

    assert_eq!(
        store
            .head_sum(&key("instances/08012345/none"), SumAlgo::Sha1)
            .await
            .unwrap(),
        None
    );
}

//! `BlobStore` on one S3 bucket, under an optional key prefix.
//!
//! Every put sends an S3 additional checksum of the body, which S3 checks on arrival and
//! keeps: SHA-1 for a content-addressed file (`put_file_sha1`), SHA-256 for the rest. The
//! whole content's hash is also stored, hex, as the object's `sha256` (and `sha1`) metadata:
//! a multipart object's own SHA checksum is a checksum of part checksums, not of the
//! content (S3 has full-object checksums of multipart uploads for CRC types only), so for
//! those the metadata, written from the same read pass whose part checksums S3 checked, is
//! the content's hash that `head_sum` reports.

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use a2a_core::{BlobKey, BlobMeta, BlobStore, Page, PortError, PortResult, SumAlgo};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    BucketLocationConstraint, ChecksumAlgorithm, ChecksumMode, ChecksumType,
    CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::timeout_config;
use crate::error::{Call, chain, classify};

const SERVICE: &str = "S3";
/// The user metadata key (`x-amz-meta-sha256`) holding the hex SHA-256 of the content.
const SHA_META: &str = "sha256";
/// The user metadata key (`x-amz-meta-sha1`) holding the hex SHA-1 of a content-addressed
/// upload's content.
const SHA1_META: &str = "sha1";
/// Default part size, and files larger than one part go multipart.
const DEFAULT_PART: u64 = 8 * 1024 * 1024;
/// S3's smallest part (all but the last) and largest part.
const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
/// S3's most parts in one upload.
const MAX_PARTS: u64 = 10_000;
/// Parts uploaded at once.
const PART_CONCURRENCY: usize = 4;
/// One S3 attempt may carry a whole part: longer than the default attempt timeout, so a
/// slow link still gets 8 MiB through. The connect timeout stays short.
const S3_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// The [`BlobStore`] on S3.
#[derive(Clone, Debug)]
pub struct S3Blob {
    client: Client,
    bucket: String,
    /// Without leading or trailing '/'; empty for the bucket's root.
    prefix: String,
    part_size: u64,
}

impl S3Blob {
    /// A store on `bucket`, keys under `prefix/` (an empty prefix is the bucket's root).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_owned(),
            part_size: DEFAULT_PART,
        }
    }

    /// A store with a client made from `conf`: path-style addressing (needed by emulators,
    /// harmless on AWS) and a longer attempt timeout for part uploads.
    pub fn from_conf(
        conf: &SdkConfig,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        let timeouts = conf
            .timeout_config()
            .cloned()
            .unwrap_or_else(timeout_config)
            .to_builder()
            .operation_attempt_timeout(S3_ATTEMPT_TIMEOUT)
            .build();
        let s3 = aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .timeout_config(timeouts)
            .build();
        Self::new(Client::from_conf(s3), bucket, prefix)
    }

    /// Sets the multipart part size (clamped to S3's 5 MiB..5 GiB): `put_file` uploads a
    /// file larger than one part in parts. The default is 8 MiB.
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes.clamp(MIN_PART, MAX_PART);
        self
    }

    /// The same store (client, prefix, part size) on another bucket: one client serves
    /// every bucket an event names (the intake Lambda).
    pub fn in_bucket(&self, bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            ..self.clone()
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The version id of the current version of `key`: `None` when there is no object, or
    /// the bucket keeps no versions. For the intake, which replaces an uploaded list.
    pub async fn current_version(&self, key: &BlobKey) -> Result<Option<String>, PortError> {
        let full = self.full_key(key);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(o) => Ok(o.version_id().filter(|v| *v != "null").map(str::to_owned)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(classify(
                &e,
                Call::new(SERVICE, "HeadObject", &self.resource(&full)),
            )),
        }
    }

    /// One version of `key`, checked against its stored SHA-256 as [`BlobStore::get`] is;
    /// `NotFound` when that version is gone.
    pub async fn get_version(&self, key: &BlobKey, version: &str) -> Result<Bytes, PortError> {
        let full = self.full_key(key);
        let resource = format!("{} version {version:?}", self.resource(&full));
        let call = Call::new(SERVICE, "GetObject", &resource);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .version_id(version)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| classify(&e, call))?;
        let expected = stored_sum(
            SumAlgo::Sha256,
            out.checksum_sha256(),
            out.checksum_type(),
            out.metadata(),
        );
        checked(out.body, expected, call).await
    }

    /// Deletes one version of `key` for good (a plain delete in a versioned bucket only
    /// hides the object behind a marker, and keeps every version).
    pub async fn delete_version(&self, key: &BlobKey, version: &str) -> Result<(), PortError> {
        let full = self.full_key(key);
        let resource = format!("{} version {version:?}", self.resource(&full));
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .version_id(version)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "DeleteObject", &resource)))?;
        Ok(())
    }

    /// Creates `bucket` in the client's region. Idempotent: a bucket this account already
    /// owns is fine. For tests and setup; production buckets come from the SAM template.
    pub async fn create_bucket(client: &Client, bucket: &str) -> Result<(), PortError> {
        let resource = format!("bucket {bucket:?}");
        let mut req = client.create_bucket().bucket(bucket);
        // us-east-1 takes no location constraint; every other region needs one.
        if let Some(region) = client.config().region().map(|r| r.as_ref().to_owned())
            && region != "us-east-1"
        {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let svc = e.as_service_error();
                if svc.is_some_and(|s| s.is_bucket_already_owned_by_you()) {
                    return Ok(());
                }
                if svc.is_some_and(|s| s.is_bucket_already_exists()) {
                    // Someone's bucket: ours only if we can reach it.
                    return client
                        .head_bucket()
                        .bucket(bucket)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|_| {
                            PortError::Unavailable(format!(
                                "S3 CreateBucket on {resource}: the name is taken by another \
                                 account; choose another bucket name"
                            ))
                        });
                }
                Err(classify(&e, Call::new(SERVICE, "CreateBucket", &resource)))
            }
        }
    }

    fn full_key(&self, key: &BlobKey) -> String {
        if self.prefix.is_empty() {
            key.as_str().to_owned()
        } else {
            format!("{}/{}", self.prefix, key)
        }
    }

    fn resource(&self, key: &str) -> String {
        format!("bucket {:?} key {key:?}", self.bucket)
    }

    /// Uploads a file already read once into `digest`: in one piece, or in parts.
    async fn put_digested(
        &self,
        key: &BlobKey,
        path: &Path,
        digest: &FileDigest,
    ) -> Result<BlobMeta, PortError> {
        if digest.parts.is_empty() {
            self.put_single(key, path, digest).await?;
        } else {
            self.put_multipart(key, path, digest).await?;
        }
        Ok(BlobMeta {
            key: key.clone(),
            size: digest.size,
            sha256: Some(hex::encode(digest.sha)),
            sha1: digest.sha1.map(hex::encode),
        })
    }

    async fn put_single(
        &self,
        key: &BlobKey,
        path: &Path,
        digest: &FileDigest,
    ) -> Result<(), PortError> {
        let full = self.full_key(key);
        let body = ByteStream::read_from()
            .path(path)
            .length(Length::Exact(digest.size))
            .build()
            .await
            .map_err(|e| local_error("read", path, &chain(&e)))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .body(body)
            .content_length(size_i64(digest.size)?)
            // One checksum per request: the SHA-1 where the caller named one, so that S3
            // itself checks the content against a content-addressed name. Naming the
            // algorithm too makes the value the one S3 keeps (and emulators store it).
            .checksum_algorithm(digest.algo.algorithm())
            .set_checksum_sha256(
                (digest.algo == PartSum::Sha256).then(|| STANDARD.encode(digest.sha)),
            )
            .set_checksum_sha1(digest.sha1.map(|h| STANDARD.encode(h)))
            .set_metadata(Some(digest.metadata()))
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "PutObject", &self.resource(&full))))?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &BlobKey,
        path: &Path,
        digest: &FileDigest,
    ) -> Result<(), PortError> {
        let full = self.full_key(key);
        let resource = self.resource(&full);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_algorithm(digest.algo.algorithm())
            .set_metadata(Some(digest.metadata()))
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "CreateMultipartUpload", &resource)))?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(PortError::Backend(format!(
                "S3 CreateMultipartUpload on {resource}: no upload id came back"
            )));
        };
        let done = self.upload_parts(&full, &upload_id, path, digest).await;
        let result = match done {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    classify(&e, Call::new(SERVICE, "CompleteMultipartUpload", &resource))
                }),
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Best effort: an upload left open costs storage until a lifecycle rule ends it.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        full: &str,
        upload_id: &str,
        path: &Path,
        digest: &FileDigest,
    ) -> Result<Vec<CompletedPart>, PortError> {
        let mut set = tokio::task::JoinSet::new();
        let mut parts = Vec::with_capacity(digest.parts.len());
        for (i, part_sha) in digest.parts.iter().enumerate() {
            if set.len() >= PART_CONCURRENCY
                && let Some(joined) = set.join_next().await
            {
                parts.push(joined_part(joined)?);
            }
            let offset = i as u64 * digest.part_size;
            let len = digest.part_size.min(digest.size - offset);
            let job = PartJob {
                client: self.client.clone(),
                bucket: self.bucket.clone(),
                key: full.to_owned(),
                upload_id: upload_id.to_owned(),
                number: i32::try_from(i + 1).map_err(|_| {
                    PortError::Invalid(format!("{}: too many parts", path.display()))
                })?,
                path: path.to_owned(),
                offset,
                len,
                sha: STANDARD.encode(part_sha),
                algo: digest.algo,
            };
            set.spawn(job.run());
        }
        while let Some(joined) = set.join_next().await {
            parts.push(joined_part(joined)?);
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    /// The blob's bytes, checked against its stored SHA-256 where there is one.
    async fn fetch(
        &self,
        key: &BlobKey,
    ) -> Result<(ByteStream, Option<String>, String), PortError> {
        let full = self.full_key(key);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "GetObject", &self.resource(&full))))?;
        let expected = stored_sum(
            SumAlgo::Sha256,
            out.checksum_sha256(),
            out.checksum_type(),
            out.metadata(),
        );
        Ok((out.body, expected, full))
    }
}

/// One part of a multipart upload, owned so that it can run on its own task.
struct PartJob {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    number: i32,
    path: PathBuf,
    offset: u64,
    len: u64,
    /// Base64 checksum of the part, in `algo`.
    sha: String,
    algo: PartSum,
}

impl PartJob {
    async fn run(self) -> Result<CompletedPart, PortError> {
        let body = ByteStream::read_from()
            .path(&self.path)
            .offset(self.offset)
            .length(Length::Exact(self.len))
            .build()
            .await
            .map_err(|e| local_error("read", &self.path, &chain(&e)))?;
        let resource = format!(
            "bucket {:?} key {:?} part {}",
            self.bucket, self.key, self.number
        );
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(self.number)
            .body(body)
            .content_length(size_i64(self.len)?)
            .set_checksum_sha256((self.algo == PartSum::Sha256).then(|| self.sha.clone()))
            .set_checksum_sha1((self.algo == PartSum::Sha1).then(|| self.sha.clone()))
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "UploadPart", &resource)))?;
        let part = CompletedPart::builder()
            .part_number(self.number)
            .set_e_tag(out.e_tag().map(str::to_owned));
        Ok(match self.algo {
            PartSum::Sha256 => part.checksum_sha256(out.checksum_sha256().unwrap_or(&self.sha)),
            PartSum::Sha1 => part.checksum_sha1(out.checksum_sha1().unwrap_or(&self.sha)),
        }
        .build())
    }
}

fn joined_part(
    joined: Result<Result<CompletedPart, PortError>, tokio::task::JoinError>,
) -> Result<CompletedPart, PortError> {
    joined.map_err(|e| PortError::Backend(format!("a part upload task failed: {e}")))?
}

/// The checksum that S3 gets with each part (and with a one-piece upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartSum {
    Sha256,
    /// For content-addressed files, whose name is their SHA-1.
    Sha1,
}

impl PartSum {
    fn algorithm(self) -> ChecksumAlgorithm {
        match self {
            Self::Sha256 => ChecksumAlgorithm::Sha256,
            Self::Sha1 => ChecksumAlgorithm::Sha1,
        }
    }

    fn hasher(self) -> PartHasher {
        match self {
            Self::Sha256 => PartHasher::Sha256(Sha256::new()),
            Self::Sha1 => PartHasher::Sha1(sha1::Sha1::new()),
        }
    }
}

enum PartHasher {
    Sha256(Sha256),
    Sha1(sha1::Sha1),
}

impl PartHasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Sha1(h) => h.update(bytes),
        }
    }

    fn finalize_reset(&mut self) -> Vec<u8> {
        match self {
            Self::Sha256(h) => h.finalize_reset().to_vec(),
            Self::Sha1(h) => h.finalize_reset().to_vec(),
        }
    }
}

/// What one pass over a file tells: its size, its SHA-256 (and SHA-1 when the parts are
/// checked by SHA-1), and each part's checksum.
struct FileDigest {
    size: u64,
    sha: [u8; 32],
    sha1: Option<[u8; 20]>,
    part_size: u64,
    algo: PartSum,
    /// Empty when the file goes up in one piece.
    parts: Vec<Vec<u8>>,
}

impl FileDigest {
    /// The object's metadata: the whole content's hashes, hex.
    fn metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::from([(SHA_META.to_owned(), hex::encode(self.sha))]);
        if let Some(sha1) = self.sha1 {
            m.insert(SHA1_META.to_owned(), hex::encode(sha1));
        }
        m
    }
}

/// Hashes a file in one pass, on a blocking thread: the whole, and each part if it is
/// larger than one part.
async fn digest_file(path: &Path, part_size: u64, algo: PartSum) -> Result<FileDigest, PortError> {
    let owned = path.to_owned();
    let joined = tokio::task::spawn_blocking(move || -> std::io::Result<FileDigest> {
        let mut file = std::fs::File::open(&owned)?;
        let size = file.metadata()?.len();
        // Enough parts to stay under S3's limit of 10,000.
        let part_size = part_size.max(size.div_ceil(MAX_PARTS)).min(MAX_PART);
        let multipart = size > part_size;
        let mut whole = Sha256::new();
        let mut whole1 = (algo == PartSum::Sha1).then(sha1::Sha1::new);
        let mut part = algo.hasher();
        let mut in_part = 0u64;
        let mut parts = Vec::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            // Never read across a part boundary, so each part hash is exact.
            let want = (part_size - in_part).min(buf.len() as u64) as usize;
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            whole.update(&buf[..n]);
            if let Some(h) = &mut whole1 {
                h.update(&buf[..n]);
            }
            total += n as u64;
            if multipart {
                part.update(&buf[..n]);
                in_part += n as u64;
                if in_part == part_size {
                    parts.push(part.finalize_reset());
                    in_part = 0;
                }
            }
        }
        if multipart && in_part > 0 {
            parts.push(part.finalize_reset());
        }
        Ok(FileDigest {
            size: total,
            sha: whole.finalize().into(),
            sha1: whole1.map(|h| h.finalize().into()),
            part_size,
            algo,
            parts: if total > part_size { parts } else { Vec::new() },
        })
    })
    .await;
    match joined {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(io_error("read", path, &e)),
        Err(e) => Err(PortError::Backend(format!(
            "hashing {} failed: {e}",
            path.display()
        ))),
    }
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> PortError {
    if e.kind() == ErrorKind::NotFound {
        PortError::NotFound(format!("cannot {what} {}: {e}", path.display()))
    } else {
        local_error(what, path, &e.to_string())
    }
}

fn local_error(what: &str, path: &Path, e: &str) -> PortError {
    PortError::Unavailable(format!("cannot {what} {}: {e}", path.display()))
}

fn size_i64(n: u64) -> Result<i64, PortError> {
    i64::try_from(n).map_err(|_| PortError::Invalid(format!("{n} bytes is too large")))
}

/// The content's checksum in `algo`, hex, as the object holds it: S3's own checksum when
/// S3 marks it `FULL_OBJECT` (it computed and checked it over the whole content); else our
/// metadata (`sha256`, `sha1`), which every blob this store wrote has; else S3's checksum
/// when nothing marks it as a multipart one. A multipart object's checksum is a checksum of
/// part checksums: S3 marks it `COMPOSITE` and suffixes it `-N` (moto does not always, hence
/// the metadata before an unmarked checksum).
fn stored_sum(
    algo: SumAlgo,
    checksum: Option<&str>,
    checksum_type: Option<&ChecksumType>,
    metadata: Option<&HashMap<String, String>>,
) -> Option<String> {
    let (meta_key, len) = match algo {
        SumAlgo::Sha1 => (SHA1_META, 20),
        SumAlgo::Sha256 => (SHA_META, 32),
    };
    let whole = || {
        checksum
            .filter(|c| !c.contains('-') && checksum_type != Some(&ChecksumType::Composite))
            .and_then(|c| STANDARD.decode(c).ok())
            .filter(|raw| raw.len() == len)
            .map(hex::encode)
    };
    if checksum_type == Some(&ChecksumType::FullObject)
        && let Some(h) = whole()
    {
        return Some(h);
    }
    let from_metadata = metadata
        .and_then(|m| m.get(meta_key))
        .map(|h| h.to_ascii_lowercase())
        .filter(|h| h.len() == 2 * len && h.bytes().all(|b| b.is_ascii_hexdigit()));
    from_metadata.or_else(whole)
}

/// A broken body stream: a checksum the SDK found wrong is `Corrupt`, anything else the
/// network.
fn body_error(call: Call<'_>, e: &aws_sdk_s3::primitives::ByteStreamError) -> PortError {
    let text = chain(e);
    if text.to_ascii_lowercase().contains("checksum") {
        PortError::Corrupt(format!("{call}: {text}"))
    } else {
        PortError::Unavailable(format!("{call}: the download broke off ({text})"))
    }
}

/// A whole body, checked against the SHA-256 stored with it, if any.
async fn checked(
    body: ByteStream,
    expected: Option<String>,
    call: Call<'_>,
) -> Result<Bytes, PortError> {
    let bytes = body
        .collect()
        .await
        .map_err(|e| body_error(call, &e))?
        .into_bytes();
    if let Some(want) = expected {
        let got = hex::encode(Sha256::digest(&bytes));
        if got != want {
            return Err(mismatch(call, &want, &got));
        }
    }
    Ok(bytes)
}

fn mismatch(call: Call<'_>, expected: &str, got: &str) -> PortError {
    PortError::Corrupt(format!(
        "{call}: content SHA-256 is {got}, but the stored checksum is {expected}"
    ))
}

/// Percent-encodes a `bucket/key` for `x-amz-copy-source`, keeping '/' as is.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    for b in format!("{bucket}/{key}").bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl BlobStore for S3Blob {
    async fn put(&self, key: &BlobKey, body: Bytes) -> Result<BlobMeta, PortError> {
        let full = self.full_key(key);
        let sha: [u8; 32] = Sha256::digest(&body).into();
        let size = body.len() as u64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .body(ByteStream::from(body))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(STANDARD.encode(sha))
            .metadata(SHA_META, hex::encode(sha))
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "PutObject", &self.resource(&full))))?;
        Ok(BlobMeta {
            key: key.clone(),
            size,
            sha256: Some(hex::encode(sha)),
            sha1: None,
        })
    }

    async fn put_file(&self, key: &BlobKey, path: &Path) -> Result<BlobMeta, PortError> {
        let digest = digest_file(path, self.part_size, PartSum::Sha256).await?;
        self.put_digested(key, path, &digest).await
    }

    async fn put_file_sha1(&self, key: &BlobKey, path: &Path, sha1: &str) -> PortResult<BlobMeta> {
        let want = a2a_core::ports::parse_sha1(sha1)?;
        let digest = digest_file(path, self.part_size, PartSum::Sha1).await?;
        let got = digest.sha1.unwrap_or_default();
        if got != want {
            return Err(a2a_core::ports::sha1_mismatch(path, sha1, &got));
        }
        // S3 checks the SHA-1 of a one-piece upload, and of each part of a multipart one,
        // so a file that changes after this pass is refused there.
        self.put_digested(key, path, &digest).await
    }

    async fn get(&self, key: &BlobKey) -> Result<Bytes, PortError> {
        let (body, expected, full) = self.fetch(key).await?;
        let resource = self.resource(&full);
        checked(body, expected, Call::new(SERVICE, "GetObject", &resource)).await
    }

    async fn get_to_file(&self, key: &BlobKey, path: &Path) -> Result<BlobMeta, PortError> {
        // Ask first, so that a missing blob leaves nothing behind.
        let (mut body, expected, full) = self.fetch(key).await?;
        let resource = self.resource(&full);
        let call = Call::new(SERVICE, "GetObject", &resource);

        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".a2a-download-").suffix(".part");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A normal file's mode (less the umask), not the temp file's 0600.
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        // Next to the destination, so the final rename stays on one file system. Dropped
        // on any error below, which deletes it.
        let tmp = builder
            .tempfile_in(&dir)
            .map_err(|e| local_error("create a file in", &dir, &e.to_string()))?;
        let std_file = tmp
            .as_file()
            .try_clone()
            .map_err(|e| local_error("write", tmp.path(), &e.to_string()))?;
        let mut file = tokio::fs::File::from_std(std_file);

        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| body_error(call, &e))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| local_error("write", tmp.path(), &e.to_string()))?;
        }
        file.flush()
            .await
            .map_err(|e| local_error("write", tmp.path(), &e.to_string()))?;
        file.sync_all()
            .await
            .map_err(|e| local_error("write", tmp.path(), &e.to_string()))?;
        drop(file);

        let got = hex::encode(hasher.finalize());
        if let Some(want) = &expected
            && *want != got
        {
            return Err(mismatch(call, want, &got));
        }
        tmp.persist(path)
            .map_err(|e| local_error("move the download to", path, &e.error.to_string()))?;
        Ok(BlobMeta {
            key: key.clone(),
            size,
            sha256: Some(got),
            sha1: None,
        })
    }

    async fn head(&self, key: &BlobKey) -> Result<Option<BlobMeta>, PortError> {
        let full = self.full_key(key);
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => {
                return Err(classify(
                    &e,
                    Call::new(SERVICE, "HeadObject", &self.resource(&full)),
                ));
            }
        };
        Ok(Some(BlobMeta {
            key: key.clone(),
            size: out
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            sha256: stored_sum(
                SumAlgo::Sha256,
                out.checksum_sha256(),
                out.checksum_type(),
                out.metadata(),
            ),
            sha1: stored_sum(
                SumAlgo::Sha1,
                out.checksum_sha1(),
                out.checksum_type(),
                out.metadata(),
            ),
        }))
    }

    // HeadObject in checksum mode already reads both stored checksums.
    async fn head_sum(&self, key: &BlobKey, _algo: SumAlgo) -> PortResult<Option<BlobMeta>> {
        self.head(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<String>,
    ) -> Result<Page<BlobMeta>, PortError> {
        let full_prefix = if self.prefix.is_empty() {
            prefix.to_owned()
        } else {
            format!("{}/{prefix}", self.prefix)
        };
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full_prefix)
            .set_continuation_token(cursor)
            .send()
            .await
            .map_err(|e| {
                classify(
                    &e,
                    Call::new(
                        SERVICE,
                        "ListObjectsV2",
                        &format!("bucket {:?} prefix {full_prefix:?}", self.bucket),
                    ),
                )
            })?;
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut items = Vec::new();
        for o in out.contents() {
            let Some(full) = o.key() else { continue };
            let Some(rel) = full.get(strip..) else {
                continue;
            };
            let key = BlobKey::parse(rel).map_err(|e| {
                PortError::Corrupt(format!(
                    "bucket {:?} holds an object whose key is not a blob key: {e}",
                    self.bucket
                ))
            })?;
            items.push(BlobMeta {
                key,
                size: o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                // ListObjectsV2 gives no checksum values.
                sha256: None,
                sha1: None,
            });
        }
        let next = if out.is_truncated() == Some(true) {
            out.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn copy(&self, from: &BlobKey, to: &BlobKey) -> Result<(), PortError> {
        let src = self.full_key(from);
        let dst = self.full_key(to);
        let resource = format!("bucket {:?} key {src:?} to {dst:?}", self.bucket);
        // Server-side; the metadata (our sha256) comes along, and S3 checksums the copy.
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(&dst)
            .copy_source(copy_source(&self.bucket, &src))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "CopyObject", &resource)))?;
        Ok(())
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), PortError> {
        let full = self.full_key(key);
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| {
                classify(
                    &e,
                    Call::new(SERVICE, "DeleteObject", &self.resource(&full)),
                )
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encodes_all_but_the_path() {
        assert_eq!(
            copy_source("b", "uploads/list 2026.csv"),
            "b/uploads/list%202026.csv"
        );
        assert_eq!(copy_source("b", "a/Català+x"), "b/a/Catal%C3%A0%2Bx");
    }

    #[test]
    fn stored_sum_prefers_a_full_object_checksum_then_our_metadata() {
        let sha = Sha256::digest(b"x");
        let b64 = STANDARD.encode(sha);
        let hex_sha = hex::encode(sha);
        let s256 =
            |c: Option<&str>, t: Option<&ChecksumType>, m| stored_sum(SumAlgo::Sha256, c, t, m);
        let meta: HashMap<_, _> = [(SHA_META.to_owned(), "AB".repeat(32))].into();
        assert_eq!(
            s256(Some(&b64), None, Some(&meta)),
            Some("ab".repeat(32)),
            "an unmarked checksum may be a multipart one: the metadata first"
        );
        assert_eq!(
            s256(Some(&b64), Some(&ChecksumType::FullObject), Some(&meta)),
            Some(hex_sha.clone()),
            "S3's full-object checksum over what anyone wrote as metadata"
        );
        assert_eq!(s256(Some(&b64), None, None), Some(hex_sha.clone()));
        assert_eq!(
            s256(Some(&format!("{b64}-3")), None, None),
            None,
            "a multipart checksum is not the content's"
        );
        assert_eq!(s256(Some(&b64), Some(&ChecksumType::Composite), None), None);
        assert_eq!(s256(None, None, None), None);
        let junk: HashMap<_, _> = [(SHA_META.to_owned(), "nope".to_owned())].into();
        assert_eq!(s256(Some("!!"), None, Some(&junk)), None);

        // SHA-1: its own metadata key and length; a SHA-256 is not taken for one.
        let s1 = sha1::Sha1::digest(b"x");
        let b64_1 = STANDARD.encode(s1);
        let meta1: HashMap<_, _> = [(SHA1_META.to_owned(), hex::encode(s1))].into();
        assert_eq!(
            stored_sum(
                SumAlgo::Sha1,
                Some(&b64_1),
                Some(&ChecksumType::FullObject),
                None
            ),
            Some(hex::encode(s1))
        );
        assert_eq!(
            stored_sum(SumAlgo::Sha1, None, None, Some(&meta1)),
            Some(hex::encode(s1))
        );
        assert_eq!(
            stored_sum(SumAlgo::Sha1, Some(&b64), None, Some(&meta)),
            None
        );
    }

    /// A one-shot HTTP server that answers 200 to every request and hands back the
    /// request heads it saw.
    fn capture_server() -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&lower);
                }
                let mut body = vec![0u8; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                let _ = tx.send(head);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            }
        });
        (url, rx)
    }

    #[tokio::test]
    async fn a_content_addressed_put_sends_the_sha1_for_s3_to_check() {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let (url, heads) = capture_server();
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(url)
            .force_path_style(true)
            .build();
        let store = S3Blob::new(Client::from_conf(conf), "bucket", "p");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        // SHA-1 of "hello".
        let sha1 = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";
        let key = BlobKey::parse(&format!("filedir/aa/f4/{sha1}")).unwrap();
        store.put_file_sha1(&key, &path, sha1).await.unwrap();
        let head = heads.recv().unwrap();
        let b64 = STANDARD
            .encode(hex::decode(sha1).unwrap())
            .to_ascii_lowercase();
        assert!(
            head.contains(&format!("x-amz-checksum-sha1: {b64}")),
            "{head}"
        );
        assert!(
            !head.contains("x-amz-checksum-sha256"),
            "one checksum per request: {head}"
        );
    }

    #[tokio::test]
    async fn digest_splits_parts_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..(2 * MIN_PART + 3)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let d = digest_file(&p, MIN_PART, PartSum::Sha256).await.unwrap();
        assert_eq!(d.size, data.len() as u64);
        assert_eq!(d.sha, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(d.parts.len(), 3);
        let mp = MIN_PART as usize;
        assert_eq!(d.parts[2], Sha256::digest(&data[2 * mp..]).to_vec());
        let small = digest_file(&p, MAX_PART, PartSum::Sha256).await.unwrap();
        assert!(small.parts.is_empty());
        assert!(matches!(
            digest_file(&dir.path().join("none"), MIN_PART, PartSum::Sha256).await,
            Err(PortError::NotFound(_))
        ));
    }
}

//! The moodledata data plane: copy a site's `moodledata` folder into a [`BlobStore`] in the
//! content-addressed layout of Moodle's `tool_objectfs`, check the copy, copy a template's
//! files to a new site, and switch Moodle's maintenance page.
//!
//! Everything works against the [`BlobStore`] port: S3 in AWS, a folder on one machine.
//!
//! [`BlobStore`]: a2a_core::BlobStore

#![warn(missing_docs)]

pub mod fixture;
pub mod layout;
pub mod maintenance;
pub mod manifest;
pub mod sums;
mod sync;
mod template;
mod verify;
pub mod walk;

use std::path::{Path, PathBuf};

use a2a_core::{BlobMeta, BlobStore, PortError, SchoolCode, SumAlgo};

pub use manifest::{Entry, Manifest};
pub use sync::{SyncOptions, SyncReport, sync};
pub use template::{CopyReport, copy_site, template_root};
pub use verify::{Difference, VerifyOptions, VerifyReport, verify};
pub use walk::Problem;

/// Why a run could not be done at all. Problems with single files are not errors: they are
/// listed in the report.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The moodledata folder cannot be used (missing, not a folder, unreadable).
    #[error("moodledata folder {}: {why}", path.display())]
    Source {
        /// The folder given.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The blob store failed in a way that stops the run (unreachable, refused).
    #[error("school {school}: {what}: {source}")]
    Store {
        /// The school code of the run.
        school: String,
        /// What was being done.
        what: String,
        /// The store's error.
        #[source]
        source: PortError,
    },
}

impl FilesError {
    /// A store failure during `what`, for school `school`.
    pub fn store(school: &SchoolCode, what: &str, source: PortError) -> Self {
        Self::Store {
            school: school.to_string(),
            what: what.to_owned(),
            source,
        }
    }
}

/// Told how a long run advances, to draw progress bars. Called from several tasks.
pub trait Progress: Send + Sync {
    /// The work ahead: files and bytes.
    fn start(&self, files: u64, bytes: u64);
    /// Some of it is done.
    fn advance(&self, files: u64, bytes: u64);
    /// All is done.
    fn finish(&self);
}

/// A [`Progress`] that shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: u64, _: u64) {}
    fn advance(&self, _: u64, _: u64) {}
    fn finish(&self) {}
}

/// Default number of files in flight at once.
pub const DEFAULT_JOBS: usize = 16;

/// Every blob under `prefix`, all pages.
pub(crate) async fn list_all(
    store: &dyn BlobStore,
    prefix: &str,
) -> Result<Vec<BlobMeta>, PortError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(prefix, cursor).await?;
        out.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// The copy of `school` (its `filedir/` and `moodledata/` blobs) by key under the site
/// root.
pub(crate) async fn list_copy(
    store: &dyn BlobStore,
    school: &SchoolCode,
) -> Result<std::collections::BTreeMap<String, BlobMeta>, FilesError> {
    let root = layout::site_root(school);
    let mut copy = std::collections::BTreeMap::new();
    for part in ["filedir/", "moodledata/"] {
        let listed = list_all(store, &format!("{root}{part}"))
            .await
            .map_err(|e| FilesError::store(school, "listing the copy", e))?;
        for m in listed {
            if let Some(rel) = m.key.as_str().strip_prefix(&root) {
                copy.insert(rel.to_owned(), m);
            }
        }
    }
    Ok(copy)
}

/// Whether a port error stops the whole run (the store is unreachable or refuses us) rather
/// than being a problem with one file.
pub(crate) fn is_fatal(e: &PortError) -> bool {
    matches!(e, PortError::Unavailable(_) | PortError::Backend(_))
}

/// Size, SHA-1 and SHA-256 (hex) of a local file, read once on a blocking thread.
pub(crate) async fn hash_file(path: &Path) -> std::io::Result<(u64, String, String)> {
    use sha1::Digest as _;
    let (size, (s1, s256)) = read_into(path, (sha1::Sha1::new(), sha2::Sha256::new())).await?;
    Ok((
        size,
        hex::encode(s1.finalize()),
        hex::encode(s256.finalize()),
    ))
}

/// Size and checksum in `algo` (hex) of a local file, streamed on a blocking thread (never
/// the whole file in memory).
pub async fn sum_file(path: &Path, algo: SumAlgo) -> std::io::Result<(u64, String)> {
    use sha1::Digest as _;
    Ok(match algo {
        SumAlgo::Sha1 => {
            let (size, h) = read_into(path, sha1::Sha1::new()).await?;
            (size, hex::encode(h.finalize()))
        }
        SumAlgo::Sha256 => {
            let (size, h) = read_into(path, sha2::Sha256::new()).await?;
            (size, hex::encode(h.finalize()))
        }
    })
}

/// Something fed a file's bytes in order: a hasher, or two.
trait Feed: Send + 'static {
    fn feed(&mut self, bytes: &[u8]);
}

impl Feed for sha1::Sha1 {
    fn feed(&mut self, bytes: &[u8]) {
        sha1::Digest::update(self, bytes);
    }
}

impl Feed for sha2::Sha256 {
    fn feed(&mut self, bytes: &[u8]) {
        sha2::Digest::update(self, bytes);
    }
}

impl<A: Feed, B: Feed> Feed for (A, B) {
    fn feed(&mut self, bytes: &[u8]) {
        self.0.feed(bytes);
        self.1.feed(bytes);
    }
}

/// Reads a local file in chunks on a blocking thread into `sink`: (size, sink).
async fn read_into<F: Feed>(path: &Path, mut sink: F) -> std::io::Result<(u64, F)> {
    use std::io::Read as _;
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&owned)?;
        // Sized to the file: zeroing a whole 1 MiB for each small file costs more than
        // reading it.
        let len = file.metadata()?.len();
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).clamp(1, 1 << 20)];
        let mut size = 0u64;
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    sink.feed(&buf[..n]);
                    size += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((size, sink))
    })
    .await
    .map_err(std::io::Error::other)?
}

//! Verify: compare a moodledata folder with its copy, by manifest and listing, and by
//! content: each copy's stored checksum (`BlobStore::head_sum`), or with `rehash` every
//! copied blob downloaded and hashed.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use a2a_core::{BlobKey, BlobStore, PortError, SchoolCode, SumAlgo};
use futures::StreamExt as _;
use serde::Serialize;

use crate::layout::{Place, key_under, manifest_key, site_root};
use crate::manifest::{Entry, Manifest};
use crate::walk::{Problem, SourceFile, walk_blocking};
use crate::{FilesError, Progress, hash_file, is_fatal, list_copy};

/// Why a key whose copy is right differs: the manifest does not list it.
const NOT_IN_MANIFEST: &str = "not in the manifest";

/// How to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Download every blob and hash it: SHA-1 against the name for `filedir`, SHA-256
    /// against the source for the rest. Without it, the checksum the store keeps with
    /// each blob is compared the same way (S3: no download).
    pub rehash: bool,
    /// Blobs re-hashed at once.
    pub jobs: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            rehash: false,
            jobs: crate::DEFAULT_JOBS,
        }
    }
}

/// A key whose copy differs from its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The full key.
    pub key: String,
    /// How it differs.
    pub why: String,
}

/// What verify found. `equal` is true when every list is empty.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The school code.
    pub school: String,
    /// Source and copy hold the same files.
    pub equal: bool,
    /// Source files compared.
    pub compared: u64,
    /// Whether blobs were downloaded and hashed.
    pub rehashed: bool,
    /// Keys that the source has and the copy lacks (or the manifest, if it is missing).
    pub missing: Vec<String>,
    /// Keys in the copy with no source file.
    pub extra: Vec<String>,
    /// Keys whose copy differs.
    pub different: Vec<Difference>,
    /// Source files that cannot be copied at all.
    pub problems: Vec<Problem>,
    /// The copy was found wrong (a key missing, extra or different), so the manifest,
    /// which vouched for it, was deleted, and so was every `filedir` blob whose bytes are
    /// not its name's: the next sync lists the target and puts back what is wrong,
    /// without `--list-target`.
    pub manifest_dropped: bool,
}

/// Compares the moodledata folder `source` with its copy in `store`.
pub async fn verify(
    source: &Path,
    store: Arc<dyn BlobStore>,
    school: &SchoolCode,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport, FilesError> {
    let store_err = |what: &str, source: PortError| FilesError::store(school, what, source);
    let root = site_root(school);
    let walked = walk_blocking(source).await?;
    let mut missing = Vec::new();
    let mut different = Vec::new();
    let mut problems = walked.problems;

    let manifest = match Manifest::load(store.as_ref(), school).await {
        Ok(m) => m,
        Err(PortError::Corrupt(m)) => {
            different.push(Difference {
                key: manifest_key(school).to_string(),
                why: m,
            });
            None
        }
        Err(e) => return Err(store_err("reading the manifest", e)),
    };
    if manifest.is_none() && different.is_empty() {
        missing.push(manifest_key(school).to_string());
    }
    let recorded: HashMap<String, Entry> = manifest
        .map(|m| m.entries.into_iter().map(|e| (e.key.clone(), e)).collect())
        .unwrap_or_default();

    let in_target = list_copy(store.as_ref(), school).await?;

    let mut expected = BTreeSet::new();
    let mut checks = Vec::new();
    let compared = walked.files.len() as u64;
    for file in walked.files {
        let (rel_key, sha1) = match &file.place {
            Place::Filedir { sha1, rel_key } => (rel_key.clone(), Some(sha1.clone())),
            Place::Other { rel_key } => (rel_key.clone(), None),
            Place::Misplaced => {
                problems.push(Problem {
                    path: file.rel.clone(),
                    what: "named like a content hash, but not in filedir/<h0h1>/<h2h3>/".into(),
                });
                continue;
            }
            Place::Skipped => continue,
        };
        let Ok(key) = key_under(&root, &rel_key) else {
            problems.push(Problem {
                path: file.rel.clone(),
                what: "its path cannot be a key".into(),
            });
            continue;
        };
        expected.insert(rel_key.clone());
        let Some(size) = in_target.get(&rel_key).map(|m| m.size) else {
            missing.push(key.to_string());
            continue;
        };
        if size != file.size {
            different.push(Difference {
                key: key.to_string(),
                why: format!("size: source {} bytes, copy {size}", file.size),
            });
            continue;
        }
        let entry = recorded.get(&rel_key).cloned();
        match &entry {
            None if !recorded.is_empty() => different.push(Difference {
                key: key.to_string(),
                why: NOT_IN_MANIFEST.into(),
            }),
            _ => {}
        }
        let changed = entry
            .as_ref()
            .is_some_and(|e| e.size != file.size || e.mtime_ns != file.mtime_ns);
        // Every copy of the right size has its content checked: downloaded with `rehash`,
        // else by the checksum the store keeps (`head_sum`: no download from S3).
        checks.push(Check {
            file,
            key,
            sha1,
            entry,
            changed,
            download: options.rehash,
        });
    }
    let extra: Vec<String> = in_target
        .keys()
        .filter(|k| !expected.contains(*k))
        .map(|k| format!("{root}{k}"))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let bytes = checks.iter().map(|c| c.file.size).sum();
    progress.start(checks.len() as u64, bytes);
    let scratch = tempfile::tempdir().map_err(|e| FilesError::Store {
        school: school.to_string(),
        what: "making a scratch folder for downloads".into(),
        source: PortError::Unavailable(e.to_string()),
    })?;
    let mut results = futures::stream::iter(checks.into_iter().enumerate())
        .map(|(i, c)| {
            let dl = scratch.path().join(format!("{i}"));
            let store = store.clone();
            async move {
                let size = c.file.size;
                (check(store.as_ref(), c, &dl).await, size)
            }
        })
        .buffer_unordered(options.jobs.max(1));
    while let Some((found, size)) = results.next().await {
        progress.advance(1, size);
        match found {
            Ok(None) => {}
            Ok(Some(Found::Different(d))) => different.push(d),
            Ok(Some(Found::Problem(p))) => problems.push(p),
            Err(e) => {
                progress.finish();
                return Err(store_err("re-hashing the copy", e));
            }
        }
    }
    drop(results);
    progress.finish();

    missing.sort();
    different.sort_by(|a, b| a.key.cmp(&b.key));
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest_dropped = if missing.is_empty() && extra.is_empty() && different.is_empty() {
        false
    } else {
        distrust(store.as_ref(), school, &different)
            .await
            .map_err(|e| store_err("dropping the manifest found wrong", e))?;
        true
    };
    Ok(VerifyReport {
        school: school.to_string(),
        equal: missing.is_empty()
            && extra.is_empty()
            && different.is_empty()
            && problems.is_empty(),
        compared,
        rehashed: options.rehash,
        missing,
        extra,
        different,
        problems,
        manifest_dropped,
    })
}

/// A manifest proved wrong is never trusted again: it is deleted, so that the next sync
/// lists the target instead. A `filedir` blob that differs is deleted too: a listing would
/// take it for its name's bytes by its size, and its name is all it had to be.
async fn distrust(
    store: &dyn BlobStore,
    school: &SchoolCode,
    different: &[Difference],
) -> Result<(), PortError> {
    let filedir = format!("{}filedir/", site_root(school));
    let wrong_bytes = |d: &&Difference| d.key.starts_with(&filedir) && d.why != NOT_IN_MANIFEST;
    for d in different.iter().filter(wrong_bytes) {
        if let Ok(key) = BlobKey::parse(&d.key) {
            gone(store.delete(&key).await)?;
        }
    }
    gone(store.delete(&manifest_key(school)).await)
}

/// A delete of something already gone is done.
fn gone(r: Result<(), PortError>) -> Result<(), PortError> {
    match r {
        Err(PortError::NotFound(_)) => Ok(()),
        other => other,
    }
}

/// One file to look at more closely.
struct Check {
    file: SourceFile,
    key: BlobKey,
    sha1: Option<String>,
    entry: Option<Entry>,
    /// The source's size or time moved since the manifest.
    changed: bool,
    /// Download and hash the copy (else its stored checksum is read).
    download: bool,
}

enum Found {
    Different(Difference),
    Problem(Problem),
}

/// Re-hashes the source where needed, and checks the copy's content (downloaded and
/// hashed, or its stored checksum): `None` when all agree.
async fn check(
    store: &dyn BlobStore,
    c: Check,
    scratch: &Path,
) -> Result<Option<Found>, PortError> {
    let differ = |why: String| {
        Ok(Some(Found::Different(Difference {
            key: c.key.to_string(),
            why,
        })))
    };
    // An unchanged `filedir` file's content is its name: the source need not be read.
    if !c.download
        && !c.changed
        && let Some(want) = &c.sha1
    {
        return stored(store, &c.key, SumAlgo::Sha1, want).await;
    }
    let (_, src1, src256) = match hash_file(&c.file.path).await {
        Ok(h) => h,
        Err(e) => {
            return Ok(Some(Found::Problem(Problem {
                path: c.file.rel.clone(),
                what: format!("cannot read it: {e}"),
            })));
        }
    };
    if let Some(want) = &c.sha1
        && *want != src1
    {
        return Ok(Some(Found::Problem(Problem {
            path: c.file.rel.clone(),
            what: format!(
                "content SHA-1 is {src1}, but its name says {want}: the source file is damaged"
            ),
        })));
    }
    if c.sha1.is_none()
        && let Some(recorded) = c.entry.as_ref().and_then(|e| e.sha256.as_ref())
        && *recorded != src256
    {
        return differ("the source changed since it was copied (SHA-256)".into());
    }
    if !c.download {
        return match &c.sha1 {
            Some(want) => stored(store, &c.key, SumAlgo::Sha1, want).await,
            None => stored(store, &c.key, SumAlgo::Sha256, &src256).await,
        };
    }
    let got = match store.get_to_file(&c.key, scratch).await {
        Ok(m) => m,
        Err(PortError::NotFound(_)) => return differ("gone from the copy".into()),
        Err(PortError::Corrupt(m)) => return differ(format!("the copy is damaged: {m}")),
        Err(e) if is_fatal(&e) => return Err(e),
        Err(e) => return differ(format!("cannot read the copy: {e}")),
    };
    let (_, got1, got256) = hash_file(scratch).await.map_err(|e| {
        PortError::Unavailable(format!(
            "cannot read the download {}: {e}",
            scratch.display()
        ))
    })?;
    let _ = std::fs::remove_file(scratch);
    if got.size != c.file.size {
        return differ(format!(
            "the copy has {} bytes, the source {}",
            got.size, c.file.size
        ));
    }
    match &c.sha1 {
        Some(want) if got1 != *want => differ(format!("the copy's SHA-1 is {got1}, not {want}")),
        None if got256 != src256 => differ(format!(
            "the copy's SHA-256 is {got256}, the source's {src256}"
        )),
        _ => Ok(None),
    }
}

/// Compares the copy's stored checksum in `algo` with `want`: `None` when equal. A copy
/// with no such checksum differs (unverified is never equal).
async fn stored(
    store: &dyn BlobStore,
    key: &BlobKey,
    algo: SumAlgo,
    want: &str,
) -> Result<Option<Found>, PortError> {
    let differ = |why: String| {
        Ok(Some(Found::Different(Difference {
            key: key.to_string(),
            why,
        })))
    };
    match store.head_sum(key, algo).await {
        Ok(None) => differ("gone from the copy".into()),
        Ok(Some(m)) => match algo.of(&m) {
            None => differ(format!("the copy has no stored {algo} checksum")),
            Some(h) if !h.eq_ignore_ascii_case(want) => differ(format!(
                "content: the copy's {algo} is {h}, the source's {want}"
            )),
            Some(_) => Ok(None),
        },
        Err(e) if is_fatal(&e) => Err(e),
        Err(e) => differ(format!("cannot read the copy's checksum: {e}")),
    }
}

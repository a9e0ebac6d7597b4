//! Sync: a moodledata folder into a blob store, content-addressed, in parallel, resumable.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use a2a_core::{BlobKey, BlobStore, PortError, SchoolCode};
use futures::StreamExt as _;
use serde::Serialize;

use crate::layout::{Place, key_under, site_root};
use crate::manifest::{Entry, Manifest};
use crate::walk::{Problem, SourceFile, walk_blocking};
use crate::{FilesError, Progress, hash_file, is_fatal, list_all};

/// How to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Files in flight at once (at least 1). Memory stays bounded by this: files stream,
    /// and S3 sends a large one in parts, a few at a time.
    pub jobs: usize,
    /// Compare with a listing of the target even when there is a manifest of the last
    /// sync: for a target that something else has changed since.
    pub list_target: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            jobs: crate::DEFAULT_JOBS,
            list_target: false,
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// The school code.
    pub school: String,
    /// Files kept from the source (copied or already there).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files copied by this run.
    pub copied_files: u64,
    /// Their bytes.
    pub copied_bytes: u64,
    /// Files already in the target, left as they were.
    pub skipped_files: u64,
    /// Files left out on purpose (caches, sessions, temp, the maintenance page).
    pub excluded_files: u64,
    /// Keys of the copy deleted because the source no longer has their file.
    pub deleted_files: u64,
    /// Source files not copied, and why. Any makes the run a failure.
    pub problems: Vec<Problem>,
    /// The manifest's key.
    pub manifest: String,
}

/// One file still to do.
enum Job {
    /// Upload it; with the SHA-1 its content must have, for `filedir`.
    Put {
        file: SourceFile,
        key: BlobKey,
        rel_key: String,
        sha1: Option<String>,
    },
    /// Already in the target, but the source changed since the last sync: a `filedir` file
    /// never should, so its content is checked against its name again.
    Recheck {
        file: SourceFile,
        rel_key: String,
        sha1: String,
        /// The entry of the last manifest, kept if the source is found damaged: the copy
        /// is still the good one.
        last: Entry,
    },
}

/// What became of one job.
enum Done {
    Copied(Entry),
    Kept(Entry),
    Problem(Problem),
    /// The copy stays as it was, but the source is wrong.
    KeptDespite(Entry, Problem),
}

/// Copies the moodledata folder `source` of school `school` into `store`, under
/// `instances/<school>/`, and writes the manifest there.
///
/// What is already in the store is known from the manifest of the last sync, or, when
/// there is none (a first or interrupted sync) or `list_target` asks, from a listing. A file
/// already there with the same size is not copied again when the last manifest shows the
/// source file unchanged (same size and modification time), or, for `filedir`, in any case:
/// its key is the hash of its content. So a rerun copies only what is missing or changed,
/// reads no source file that did not change, and an interrupted sync resumes. A blob
/// deleted or changed behind the manifest's back is found by `verify`, which then deletes
/// the manifest (and a changed `filedir` blob), so the next sync lists the target and puts
/// it back. A key whose source file is gone (listed, or in the last manifest) is deleted.
/// Each `filedir` file's content is
/// checked against its name while it is sent; one that does not match is a problem, and
/// is not copied.
///
/// The manifest is the commit point: it is written after [`BlobStore::flush`], so every
/// blob it lists is durable, and a rerun may trust it. Blobs of an interrupted run are not
/// in a manifest; the rerun lists them and trusts a `filedir` blob of the right size (its
/// name is its hash). After a crash of the machine, a blob whose bytes had not reached a
/// folder store's disk comes back short or empty on ext4, XFS and btrfs, so it is copied
/// again; on a file system that can leave it at full size, `verify --rehash` finds it.
pub async fn sync(
    source: &Path,
    store: Arc<dyn BlobStore>,
    school: &SchoolCode,
    options: &SyncOptions,
    progress: &dyn Progress,
) -> Result<SyncReport, FilesError> {
    let store_err = |what: &str, source: PortError| FilesError::store(school, what, source);
    let root = site_root(school);
    let walked = walk_blocking(source).await?;

    // A manifest that does not parse only costs the quick check.
    let previous = match Manifest::load(store.as_ref(), school).await {
        Ok(m) => m,
        Err(PortError::Corrupt(_)) => None,
        Err(e) => return Err(store_err("reading the last manifest", e)),
    };
    let previous_entries = previous.as_ref().map(|m| m.by_key());
    // Listing is what makes an unchanged rerun slow (every key, a page at a time), so the
    // last manifest stands for the target when there is one.
    let in_target: Option<HashMap<String, u64>> = if options.list_target || previous.is_none() {
        let listed = list_all(store.as_ref(), &root)
            .await
            .map_err(|e| store_err("listing the target", e))?;
        Some(
            listed
                .into_iter()
                .filter_map(|m| {
                    let rel = m.key.as_str().strip_prefix(&root)?.to_owned();
                    Some((rel, m.size))
                })
                .collect(),
        )
    } else {
        None
    };

    let mut problems = walked.problems;
    // Every key a source file maps to, copied or not: the others are the source's no more.
    let mut expected: HashSet<String> = HashSet::with_capacity(walked.files.len());
    let mut entries = Vec::with_capacity(walked.files.len());
    let mut jobs = Vec::new();
    let mut skipped = 0u64;
    for file in walked.files {
        let (rel_key, sha1) = match &file.place {
            Place::Filedir { sha1, rel_key } => (rel_key.clone(), Some(sha1.clone())),
            Place::Other { rel_key } => (rel_key.clone(), None),
            Place::Misplaced => {
                problems.push(Problem {
                    path: file.rel.clone(),
                    what: "named like a content hash, but not in filedir/<h0h1>/<h2h3>/: \
                           Moodle cannot find it; not copied"
                        .into(),
                });
                continue;
            }
            Place::Skipped => continue,
        };
        let key = match key_under(&root, &rel_key) {
            Ok(k) => k,
            Err(e) => {
                problems.push(Problem {
                    path: file.rel.clone(),
                    what: format!("cannot be a key: {e}"),
                });
                continue;
            }
        };
        expected.insert(rel_key.clone());
        let last = previous_entries
            .as_ref()
            .and_then(|p| p.get(rel_key.as_str()).copied());
        let there = match &in_target {
            Some(listed) => listed.get(&rel_key) == Some(&file.size),
            None => last.is_some_and(|e| e.size == file.size),
        };
        let unchanged = last.is_some_and(|e| e.size == file.size && e.mtime_ns == file.mtime_ns);
        match (there, last, sha1) {
            (true, Some(last), _) if unchanged => {
                let mut entry = last.clone();
                entry.path = file.rel.clone();
                entries.push(entry);
                skipped += 1;
            }
            // Content-addressed and there: the same bytes, unless the source was damaged
            // since it was copied, which the manifest's quick check tells.
            (true, Some(last), Some(sha1)) => jobs.push(Job::Recheck {
                file,
                rel_key,
                sha1,
                last: last.clone(),
            }),
            (true, None, Some(sha1)) => {
                entries.push(Entry {
                    key: rel_key,
                    path: file.rel.clone(),
                    size: file.size,
                    mtime_ns: file.mtime_ns,
                    sha1: Some(sha1),
                    sha256: None,
                });
                skipped += 1;
            }
            (_, _, sha1) => jobs.push(Job::Put {
                file,
                key,
                rel_key,
                sha1,
            }),
        }
    }

    let job_bytes = jobs
        .iter()
        .map(|j| match j {
            Job::Put { file, .. } | Job::Recheck { file, .. } => file.size,
        })
        .sum();
    progress.start(jobs.len() as u64, job_bytes);
    let mut copied_files = 0u64;
    let mut copied_bytes = 0u64;
    let mut results = futures::stream::iter(jobs)
        .map(|job| run_job(store.as_ref(), job))
        .buffer_unordered(options.jobs.max(1));
    while let Some(done) = results.next().await {
        match done {
            Ok((Done::Copied(entry), size)) => {
                copied_files += 1;
                copied_bytes += entry.size;
                entries.push(entry);
                progress.advance(1, size);
            }
            Ok((Done::Kept(entry), size)) => {
                skipped += 1;
                entries.push(entry);
                progress.advance(1, size);
            }
            Ok((Done::Problem(p), size)) => {
                problems.push(p);
                progress.advance(1, size);
            }
            Ok((Done::KeptDespite(entry, p), size)) => {
                skipped += 1;
                entries.push(entry);
                problems.push(p);
                progress.advance(1, size);
            }
            // The store is gone: stop, dropping the jobs in flight. What was copied stays,
            // and the rerun skips it.
            Err(e) => {
                progress.finish();
                return Err(store_err("copying files", e));
            }
        }
    }
    drop(results);
    progress.finish();

    // What the target holds (listed, or as the last manifest says) that no source file
    // maps to any more: the source removed it.
    let stale: BTreeSet<String> = match (&in_target, &previous) {
        (Some(listed), _) => listed.keys().cloned().collect(),
        (None, Some(m)) => m.entries.iter().map(|e| e.key.clone()).collect(),
        (None, None) => BTreeSet::new(),
    }
    .into_iter()
    .filter(|k| {
        (k.starts_with("filedir/") || k.starts_with("moodledata/")) && !expected.contains(k)
    })
    .collect();
    for rel in &stale {
        let key = key_under(&root, rel).map_err(|e| {
            store_err(
                "deleting a removed file's copy",
                PortError::Invalid(e.to_string()),
            )
        })?;
        match store.delete(&key).await {
            Ok(()) | Err(PortError::NotFound(_)) => {}
            Err(e) => return Err(store_err("deleting a removed file's copy", e)),
        }
    }

    drop(previous_entries);
    // The manifest is the commit point: what it lists must be on disk before it is
    // written (a folder store syncs the whole batch here rather than file by file).
    // Flushed even when the manifest is unchanged, as a rerun may have put back a blob.
    store
        .flush()
        .await
        .map_err(|e| store_err("making the copied files durable", e))?;
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = Manifest::new(school, entries, problems);
    // Rewritten only when it changes, so that an unchanged rerun writes nothing.
    if previous.as_ref() != Some(&manifest) {
        manifest
            .store(store.as_ref(), school)
            .await
            .map_err(|e| store_err("writing the manifest", e))?;
    }
    Ok(SyncReport {
        school: school.to_string(),
        files: manifest.files,
        bytes: manifest.bytes,
        copied_files,
        copied_bytes,
        skipped_files: skipped,
        excluded_files: walked.excluded,
        deleted_files: stale.len() as u64,
        problems: manifest.problems,
        manifest: crate::layout::manifest_key(school).to_string(),
    })
}

/// Does one job. `Err` only for what stops the run; a bad file is a `Problem`.
async fn run_job(store: &dyn BlobStore, job: Job) -> Result<(Done, u64), PortError> {
    match job {
        Job::Put {
            file,
            key,
            rel_key,
            sha1,
        } => {
            let put = match &sha1 {
                Some(h) => store.put_file_sha1(&key, &file.path, h).await,
                None => store.put_file(&key, &file.path).await,
            };
            let size = file.size;
            match put {
                Ok(meta) => Ok((
                    Done::Copied(Entry {
                        key: rel_key,
                        path: file.rel,
                        size: meta.size,
                        mtime_ns: file.mtime_ns,
                        sha1,
                        sha256: meta.sha256,
                    }),
                    size,
                )),
                Err(e) if is_fatal(&e) => Err(e),
                Err(e) => Ok((Done::Problem(file_problem(&file.rel, &file.path, e)), size)),
            }
        }
        Job::Recheck {
            file,
            rel_key,
            sha1,
            last,
        } => {
            let size = file.size;
            match hash_file(&file.path).await {
                Ok((n, got1, got256)) if got1 == sha1 => Ok((
                    Done::Kept(Entry {
                        key: rel_key,
                        path: file.rel,
                        size: n,
                        mtime_ns: file.mtime_ns,
                        sha1: Some(sha1),
                        sha256: Some(got256),
                    }),
                    size,
                )),
                Ok((_, got1, _)) => Ok((
                    Done::KeptDespite(
                        last,
                        Problem {
                            path: file.rel,
                            what: format!(
                                "content SHA-1 is {got1}, but its name says {sha1}: the source \
                             file is damaged (the copy already in the target is left as it is)"
                            ),
                        },
                    ),
                    size,
                )),
                Err(e) => Ok((
                    Done::Problem(Problem {
                        path: file.rel,
                        what: format!("cannot read it: {e}"),
                    }),
                    size,
                )),
            }
        }
    }
}

/// A per-file error as a problem, worded for the operator.
fn file_problem(rel: &str, path: &Path, e: PortError) -> Problem {
    let what = match e {
        PortError::Corrupt(m) => {
            format!("content does not match its name, so it was not copied ({m})")
        }
        PortError::NotFound(_) => {
            format!("vanished before it could be copied ({})", path.display())
        }
        other => format!("not copied: {other}"),
    };
    Problem {
        path: rel.to_owned(),
        what,
    }
}

//! [`FsBlob`]: the blob store over a local folder.
//!
//! A key `a/b/c` is the file `<root>/a/b/c`. Every write goes to a temporary file in the
//! destination's own folder (named `.a2a-tmp-…`, so it never shows in a listing), then is
//! renamed over the target: a reader sees the old blob or the new one, never a part.
//!
//! Durability is batched for whole files. `put` (small records: manifests, indexes) syncs
//! its file before the rename, as before. `put_file`, `put_file_sha1` and `copy` do not:
//! one disk sync per file is what made a folder-to-folder sync slower than `rsync`. They
//! count the file instead, and [`BlobStore::flush`] makes them all durable at once (one
//! `syncfs` on Linux; elsewhere each file, then its folder, in parallel). A caller that
//! records "these blobs are there" (the moodledata manifest) flushes first, so the record
//! is never ahead of the disk.
//!
//! After a crash of the machine (not of the process: the kernel still holds what a killed
//! process wrote), a blob renamed into place before its bytes reached the disk may come
//! back short or empty. ext4 (in its default `data=ordered` mode), XFS and btrfs raise a
//! file's size on disk only once its data is written, so such a blob has the wrong size
//! and a rerun of the sync copies it again; `verify --rehash` reads every blob back, for a
//! file system without that guarantee.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use a2a_core::{BlobKey, BlobMeta, BlobStore, Page, PortError, PortResult, SumAlgo};
use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::blocking;

/// Names of temporary files start with this. A key with a segment that starts with it is
/// refused, so a listing can skip such files without hiding a blob.
const TMP_PREFIX: &str = ".a2a-tmp-";

/// Read and write size when streaming: large enough for few system calls, small enough
/// to stay out of the way.
const CHUNK: usize = 1 << 20;

/// Keys per listing page, as S3 gives.
const PAGE: usize = 1000;

/// The [`BlobStore`] over a local folder.
///
/// Files are created readable by their owner only (blobs hold school data). A folder
/// cannot hold a file and a folder of the same name, so unlike S3 a key cannot be both a
/// blob and the folder part of another key (`a` and `a/b`): that write is `Invalid`.
/// Listing does not follow symbolic links; reading or writing through one is allowed only
/// while it leads to a place inside the root folder.
#[derive(Debug, Clone)]
pub struct FsBlob {
    /// Canonical (symlink-free, absolute), so that "inside" is a plain prefix test.
    root: Arc<PathBuf>,
    /// The root folder, open since the store was made: `syncfs` on it flushes its file
    /// system, and reports a failed write-back of our files even if it happened earlier.
    root_dir: Arc<File>,
    /// Whole files renamed into place and not yet synced, for the next flush. Shared by
    /// the clones, which are one store.
    unsynced: Arc<Mutex<Unsynced>>,
}

/// Whole files renamed into place since the last flush, not yet synced to disk.
#[derive(Debug, Default)]
struct Unsynced {
    /// How many: a flush with none has nothing to do.
    count: usize,
    /// Which, where there is no `syncfs` to sync the whole file system in one call.
    #[cfg(not(target_os = "linux"))]
    paths: Vec<PathBuf>,
}

/// When a committed blob must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durable {
    /// Before it is renamed into place (`put`: records others rely on at once).
    Now,
    /// By the next flush (whole files, many at a time).
    AtFlush,
}

impl FsBlob {
    /// A store over the folder `root`, which is created if missing.
    pub fn new(root: impl Into<PathBuf>) -> Result<FsBlob, PortError> {
        let root = root.into();
        let fail = |what: &str, e: io::Error| {
            PortError::Unavailable(format!("blob folder {}: {what}: {e}", root.display()))
        };
        fs::create_dir_all(&root).map_err(|e| fail("cannot create it", e))?;
        let canonical = root
            .canonicalize()
            .map_err(|e| fail("cannot resolve it", e))?;
        if !canonical.is_dir() {
            return Err(fail(
                "cannot use it",
                io::Error::new(ErrorKind::NotADirectory, "not a folder"),
            ));
        }
        let root_dir = File::open(&canonical).map_err(|e| fail("cannot open it", e))?;
        Ok(FsBlob {
            root: Arc::new(canonical),
            root_dir: Arc::new(root_dir),
            unsynced: Arc::default(),
        })
    }

    /// The folder the blobs live in, as resolved when the store was made.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`, once checked that it stays inside the root.
    fn path_of(&self, key: &BlobKey) -> Result<PathBuf, PortError> {
        let mut path = PathBuf::clone(&self.root);
        for seg in key.as_str().split('/') {
            if seg.starts_with(TMP_PREFIX) {
                return Err(PortError::Invalid(format!(
                    "blob key {key}: a segment may not start with {TMP_PREFIX:?}, \
                     which marks temporary files"
                )));
            }
            path.push(seg);
        }
        self.check_inside(key, &path)?;
        Ok(path)
    }

    /// Refuses a path that a symbolic link leads out of the root. The deepest part of the
    /// path that exists is resolved: what does not exist yet will be made by us, inside it.
    fn check_inside(&self, key: &BlobKey, path: &Path) -> Result<(), PortError> {
        let mut existing = path;
        loop {
            if existing == self.root.as_path() {
                return Ok(());
            }
            match fs::symlink_metadata(existing) {
                Ok(_) => break,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    match existing.parent() {
                        Some(p) => existing = p,
                        None => return Ok(()),
                    }
                }
                Err(e) => return Err(self.io_err(key, existing, "inspect", e)),
            }
        }
        match existing.canonicalize() {
            Ok(real) if real.starts_with(self.root.as_path()) => Ok(()),
            Ok(real) => Err(PortError::Invalid(format!(
                "blob key {key} leads out of the blob folder {} through a symbolic link (to {})",
                self.root.display(),
                real.display()
            ))),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(PortError::Invalid(format!(
                "blob key {key} goes through a symbolic link that leads nowhere ({})",
                existing.display()
            ))),
            Err(e) => Err(self.io_err(key, existing, "resolve", e)),
        }
    }

    /// Sorts an I/O error on a blob's file into the port's kinds.
    fn io_err(&self, key: &BlobKey, path: &Path, what: &str, e: io::Error) -> PortError {
        match e.kind() {
            ErrorKind::NotFound => PortError::NotFound(format!("blob {key}")),
            ErrorKind::InvalidFilename => PortError::Invalid(format!(
                "blob key {key}: the file system refuses the name: {e}"
            )),
            // A folder where a file should be, or a file where a folder should be.
            ErrorKind::NotADirectory | ErrorKind::IsADirectory | ErrorKind::AlreadyExists => {
                PortError::Invalid(format!(
                    "blob key {key} clashes with another key: in a folder store a key cannot \
                     be both a blob and the folder of other blobs ({e})"
                ))
            }
            _ => PortError::Unavailable(format!(
                "blob folder {}: cannot {what} {}: {e}",
                self.root.display(),
                path.display()
            )),
        }
    }

    /// Opens the file of a blob for reading; a missing key or a folder is `NotFound`.
    fn open_blob(&self, key: &BlobKey, path: &Path) -> Result<File, PortError> {
        let not_found = || PortError::NotFound(format!("blob {key}"));
        let file = File::open(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound | ErrorKind::NotADirectory => not_found(),
            _ => self.io_err(key, path, "open", e),
        })?;
        let meta = file
            .metadata()
            .map_err(|e| self.io_err(key, path, "inspect", e))?;
        if meta.is_file() {
            Ok(file)
        } else {
            Err(not_found())
        }
    }

    /// A temporary file in the folder of `path`, making the folder as needed.
    fn temp_for(&self, key: &BlobKey, path: &Path) -> Result<NamedTempFile, PortError> {
        let dir = path.parent().unwrap_or(self.root.as_path());
        let mut tries = 0;
        loop {
            tries += 1;
            let made = fs::create_dir_all(dir).and_then(|()| temp_in(dir));
            match made {
                // A concurrent delete may just have removed the folder as empty.
                Err(e) if e.kind() == ErrorKind::NotFound && tries < 5 => continue,
                Err(e) => return Err(self.io_err(key, dir, "write in", e)),
                Ok(tmp) => return Ok(tmp),
            }
        }
    }

    /// Renames a finished temporary file over `path`, synced first or noted for the next
    /// flush as `durable` says.
    fn commit(
        &self,
        key: &BlobKey,
        tmp: NamedTempFile,
        path: &Path,
        durable: Durable,
    ) -> Result<(), PortError> {
        if durable == Durable::Now {
            tmp.as_file()
                .sync_all()
                .map_err(|e| self.io_err(key, tmp.path(), "sync", e))?;
        }
        // On failure the temporary file comes back inside the error and is removed with it.
        tmp.persist(path)
            .map_err(|e| self.io_err(key, path, "write", e.error))?;
        if durable == Durable::AtFlush {
            let mut unsynced = self.lock_unsynced();
            unsynced.count += 1;
            #[cfg(not(target_os = "linux"))]
            unsynced.paths.push(path.to_owned());
        }
        Ok(())
    }

    /// The count of unsynced files (a panic elsewhere cannot leave it half-updated).
    fn lock_unsynced(&self) -> MutexGuard<'_, Unsynced> {
        self.unsynced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Syncs every whole file written since the last flush. What fails stays for the next.
    fn flush_blocking(&self) -> Result<(), PortError> {
        let taken = std::mem::take(&mut *self.lock_unsynced());
        if taken.count == 0 {
            return Ok(());
        }
        self.sync_to_disk(&taken).map_err(|e| {
            let err = PortError::Unavailable(format!(
                "blob folder {}: cannot sync {} written file(s) to disk: {e}",
                self.root.display(),
                taken.count
            ));
            let mut unsynced = self.lock_unsynced();
            unsynced.count += taken.count;
            #[cfg(not(target_os = "linux"))]
            unsynced.paths.extend(taken.paths);
            err
        })
    }

    /// One `syncfs`: data, inodes and folders of the whole batch in one pass, which writes
    /// each shared metadata block once (four times faster than a sync per file and per
    /// folder for 20,000 files on ext4 here). It also flushes what other programs wrote
    /// to that file system.
    #[cfg(target_os = "linux")]
    fn sync_to_disk(&self, _: &Unsynced) -> io::Result<()> {
        rustix::fs::syncfs(&*self.root_dir).map_err(io::Error::from)
    }

    /// Without `syncfs`: each file, then the folders that hold their new names.
    #[cfg(not(target_os = "linux"))]
    fn sync_to_disk(&self, unsynced: &Unsynced) -> io::Result<()> {
        let mut dirs: Vec<&Path> = unsynced.paths.iter().filter_map(|f| f.parent()).collect();
        dirs.sort_unstable();
        dirs.dedup();
        let failed = sync_all_parallel(&unsynced.paths);
        let failed = if failed.is_empty() {
            sync_all_parallel(&dirs)
        } else {
            failed
        };
        match failed.into_iter().next() {
            None => Ok(()),
            Some((path, e)) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }

    /// `put_file`, with the SHA-1 the content must have (raw and as given), if any.
    async fn put_file_checked(
        &self,
        key: &BlobKey,
        path: &Path,
        expect: Option<([u8; 20], String)>,
    ) -> Result<BlobMeta, PortError> {
        let this = self.clone();
        let key = key.clone();
        let src = path.to_path_buf();
        blocking("put a file as a blob", move || {
            let local = |e: io::Error| match e.kind() {
                ErrorKind::NotFound => PortError::NotFound(format!("local file {}", src.display())),
                _ => PortError::Unavailable(format!("cannot read {}: {e}", src.display())),
            };
            let mut file = File::open(&src).map_err(local)?;
            if file.metadata().map_err(local)?.is_dir() {
                return Err(PortError::Invalid(format!(
                    "{} is a folder, not a file",
                    src.display()
                )));
            }
            let dst = this.path_of(&key)?;
            let mut tmp = this.temp_for(&key, &dst)?;
            // Read and write errors are told apart by where they happen: a read error
            // names the source.
            let mut reader = ReadErr {
                inner: &mut file,
                err: None,
            };
            // Only hashed when asked for: plain puts do not pay for it.
            let mut sha1 = expect.as_ref().map(|_| sha1::Sha1::default());
            let copied = copy_hashing_also(&mut reader, tmp.as_file_mut(), &mut sha1);
            if let Some(e) = reader.err {
                return Err(local(e));
            }
            let (size, sha) = copied.map_err(|e| this.io_err(&key, tmp.path(), "write", e))?;
            // Checked before the commit: a mismatch drops the temporary file, writing nothing.
            if let (Some((want, want_hex)), Some(sha1)) = (&expect, sha1) {
                let got: [u8; 20] = sha1::Digest::finalize(sha1).into();
                if got != *want {
                    return Err(a2a_core::ports::sha1_mismatch(&src, want_hex, &got));
                }
            }
            this.commit(&key, tmp, &dst, Durable::AtFlush)?;
            Ok(BlobMeta {
                key,
                size,
                sha256: Some(sha),
                sha1: expect.map(|(_, h)| h.to_ascii_lowercase()),
            })
        })
        .await
    }

    /// Removes the folders of a deleted blob that are now empty, up to the root.
    fn prune(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root.as_path() || !d.starts_with(self.root.as_path()) {
                break;
            }
            // Fails, and so stops, at the first folder that still holds something.
            if fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    fn list_blocking(&self, prefix: &str, cursor: &str) -> Result<Page<BlobMeta>, PortError> {
        // Start in the deepest folder that the prefix names whole: "a/b/c" starts in a/b.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "",
        };
        let mut start = PathBuf::clone(&self.root);
        if !dir_part.is_empty() {
            for seg in dir_part[..dir_part.len() - 1].split('/') {
                if !listable_segment(seg) {
                    // No key has such a segment.
                    return Ok(Page {
                        items: Vec::new(),
                        next: None,
                    });
                }
                start.push(seg);
                match fs::symlink_metadata(&start) {
                    Ok(m) if m.is_dir() => {}
                    // Missing, a file, or a symbolic link (which listing does not follow).
                    Ok(_) => {
                        return Ok(Page {
                            items: Vec::new(),
                            next: None,
                        });
                    }
                    Err(e)
                        if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
                    {
                        return Ok(Page {
                            items: Vec::new(),
                            next: None,
                        });
                    }
                    Err(e) => return Err(self.list_err(&start, e)),
                }
            }
        }
        let mut walk = Walk {
            store: self,
            prefix,
            cursor,
            out: Vec::new(),
        };
        walk.dir(&start, dir_part)?;
        let mut items = walk.out;
        let next = if items.len() > PAGE {
            items.truncate(PAGE);
            items.last().map(|m| m.key.as_str().to_owned())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    fn list_err(&self, path: &Path, e: io::Error) -> PortError {
        PortError::Unavailable(format!(
            "blob folder {}: cannot list {}: {e}",
            self.root.display(),
            path.display()
        ))
    }
}

/// Whether a file name can be a segment of a key (and is not a temporary file).
fn listable_segment(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with(TMP_PREFIX)
        && !name.contains('\\')
        && !name.chars().any(char::is_control)
}

/// Syncs each path (a file or a folder) to disk, on up to 32 threads (a sync mostly
/// waits on the disk); the ones that failed, with why. A path that is gone is not a
/// failure: deleted, or replaced by a later write that counts itself.
#[cfg(any(not(target_os = "linux"), test))]
fn sync_all_parallel<P: AsRef<Path> + Sync>(paths: &[P]) -> Vec<(&Path, io::Error)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let one = |path: &Path| -> io::Result<()> {
        match File::open(path) {
            Ok(f) => f.sync_all(),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    };
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(i) else { break };
            if let Err(e) = one(path.as_ref()) {
                failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((path.as_ref(), e));
            }
        }
    };
    let threads = paths.len().min(32);
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    failed.into_inner().unwrap_or_else(PoisonError::into_inner)
}

fn temp_in(dir: &Path) -> io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .rand_bytes(12)
        .tempfile_in(dir)
}

/// Copies `from` into `to` in chunks, hashing on the way: (size, hex SHA-256).
fn copy_hashing(from: &mut impl Read, to: &mut impl Write) -> io::Result<(u64, String)> {
    copy_hashing_also(from, to, &mut None::<sha1::Sha1>)
}

/// A second hash fed alongside SHA-256 while copying.
trait AlsoHash {
    fn update(&mut self, bytes: &[u8]);
}

impl<T: AlsoHash> AlsoHash for Option<T> {
    fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = self {
            h.update(bytes);
        }
    }
}

impl AlsoHash for sha1::Sha1 {
    fn update(&mut self, bytes: &[u8]) {
        sha1::Digest::update(self, bytes);
    }
}

/// [`copy_hashing`], feeding `also` the same bytes.
fn copy_hashing_also(
    from: &mut impl Read,
    to: &mut impl Write,
    also: &mut impl AlsoHash,
) -> io::Result<(u64, String)> {
    with_chunk(|buf| {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = match from.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            also.update(&buf[..n]);
            to.write_all(&buf[..n])?;
            size += n as u64;
        }
        to.flush()?;
        Ok((size, hex::encode(hasher.finalize())))
    })
}

thread_local! {
    /// One copy buffer per thread, made once: zeroing a fresh [`CHUNK`] for every file
    /// cost more than copying the small files themselves (most of moodledata).
    static CHUNK_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's [`CHUNK`]-sized buffer (a fresh one if it is in use).
fn with_chunk<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    CHUNK_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() != CHUNK {
                buf.resize(CHUNK, 0);
            }
            f(&mut buf)
        }
        Err(_) => f(&mut vec![0u8; CHUNK]),
    })
}

/// A depth-first walk that yields keys in byte order and stops after one more than a page.
struct Walk<'a> {
    store: &'a FsBlob,
    prefix: &'a str,
    cursor: &'a str,
    out: Vec<BlobMeta>,
}

impl Walk<'_> {
    /// Walks `dir`, whose keys all start with `key_prefix`. True once the page is full.
    fn dir(&mut self, dir: &Path, key_prefix: &str) -> Result<bool, PortError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            // Removed since we looked (a delete pruned it): nothing there.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.store.list_err(dir, e)),
        };
        // A folder's name sorts with its '/', so that sorting names here gives the byte
        // order of the full keys: "a-b" < "a/…" < "a0".
        let mut names: Vec<(String, bool)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.store.list_err(dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !listable_segment(&name) {
                continue;
            }
            // file_type does not follow symbolic links, which are skipped.
            let ft = entry
                .file_type()
                .map_err(|e| self.store.list_err(&entry.path(), e))?;
            if ft.is_dir() {
                names.push((format!("{key_prefix}{name}/"), true));
            } else if ft.is_file() {
                names.push((format!("{key_prefix}{name}"), false));
            }
        }
        names.sort_unstable();
        for (key, is_dir) in names {
            let name = &key[key_prefix.len()..];
            if is_dir {
                // Descend only where keys can match the prefix and come after the cursor.
                let can_match = key.starts_with(self.prefix) || self.prefix.starts_with(&key);
                let after = key.as_str() > self.cursor || self.cursor.starts_with(&key);
                if can_match && after && self.dir(&dir.join(name.trim_end_matches('/')), &key)? {
                    return Ok(true);
                }
                continue;
            }
            if !key.starts_with(self.prefix) || key.as_str() <= self.cursor {
                continue;
            }
            let Ok(blob_key) = BlobKey::parse(&key) else {
                continue;
            };
            let path = dir.join(name);
            let size = match fs::symlink_metadata(&path) {
                Ok(m) => m.len(),
                // Deleted since the folder was read.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(self.store.list_err(&path, e)),
            };
            self.out.push(BlobMeta {
                key: blob_key,
                size,
                sha256: None,
                sha1: None,
            });
            if self.out.len() > PAGE {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[async_trait]
impl BlobStore for FsBlob {
    async fn put(&self, key: &BlobKey, body: Bytes) -> Result<BlobMeta, PortError> {
        let this = self.clone();
        let key = key.clone();
        blocking("put a blob", move || {
            let path = this.path_of(&key)?;
            let mut tmp = this.temp_for(&key, &path)?;
            let sha = hex::encode(Sha256::digest(&body));
            tmp.write_all(&body)
                .map_err(|e| this.io_err(&key, tmp.path(), "write", e))?;
            this.commit(&key, tmp, &path, Durable::Now)?;
            Ok(BlobMeta {
                key,
                size: body.len() as u64,
                sha256: Some(sha),
                sha1: None,
            })
        })
        .await
    }

    async fn put_file(&self, key: &BlobKey, path: &Path) -> Result<BlobMeta, PortError> {
        self.put_file_checked(key, path, None).await
    }

    async fn put_file_sha1(&self, key: &BlobKey, path: &Path, sha1: &str) -> PortResult<BlobMeta> {
        let want = a2a_core::ports::parse_sha1(sha1)?;
        self.put_file_checked(key, path, Some((want, sha1.to_owned())))
            .await
    }

    async fn get(&self, key: &BlobKey) -> Result<Bytes, PortError> {
        let this = self.clone();
        let key = key.clone();
        blocking("get a blob", move || {
            let path = this.path_of(&key)?;
            let mut file = this.open_blob(&key, &path)?;
            // Sized once: a chunk read by doubling its buffer was copied several times.
            let size = file.metadata().map_or(0, |m| m.len() as usize);
            let mut buf = Vec::with_capacity(size);
            file.read_to_end(&mut buf)
                .map_err(|e| this.io_err(&key, &path, "read", e))?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn get_to_file(&self, key: &BlobKey, path: &Path) -> Result<BlobMeta, PortError> {
        let this = self.clone();
        let key = key.clone();
        let dst = path.to_path_buf();
        blocking("get a blob into a file", move || {
            let src_path = this.path_of(&key)?;
            // Open the blob first: a missing key must leave nothing behind.
            let mut src = this.open_blob(&key, &src_path)?;
            let local = |what: &str, e: io::Error| match e.kind() {
                ErrorKind::IsADirectory => {
                    PortError::Invalid(format!("{} is a folder, not a file", dst.display()))
                }
                _ => PortError::Unavailable(format!("cannot {what} {}: {e}", dst.display())),
            };
            let dir = match dst.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            fs::create_dir_all(dir).map_err(|e| local("make the folder of", e))?;
            let mut tmp = temp_in(dir).map_err(|e| local("write", e))?;
            let mut reader = ReadErr {
                inner: &mut src,
                err: None,
            };
            let copied = copy_hashing(&mut reader, tmp.as_file_mut());
            if let Some(e) = reader.err {
                return Err(this.io_err(&key, &src_path, "read", e));
            }
            let (size, sha) = copied.map_err(|e| local("write", e))?;
            tmp.as_file().sync_all().map_err(|e| local("write", e))?;
            tmp.persist(&dst).map_err(|e| local("write", e.error))?;
            Ok(BlobMeta {
                key,
                size,
                sha256: Some(sha),
                sha1: None,
            })
        })
        .await
    }

    async fn head(&self, key: &BlobKey) -> Result<Option<BlobMeta>, PortError> {
        let this = self.clone();
        let key = key.clone();
        blocking("look up a blob", move || {
            let path = this.path_of(&key)?;
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => Ok(Some(BlobMeta {
                    key,
                    size: m.len(),
                    // Hashing here would read the whole blob; callers that need it have
                    // the checksum from put or get, or ask `head_sum`.
                    sha256: None,
                    sha1: None,
                })),
                Ok(_) => Ok(None),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    Ok(None)
                }
                Err(e) => Err(this.io_err(&key, &path, "inspect", e)),
            }
        })
        .await
    }

    // A folder keeps no checksums: the file is read and hashed again, so what is on disk
    // now is what is checked.
    async fn head_sum(&self, key: &BlobKey, algo: SumAlgo) -> PortResult<Option<BlobMeta>> {
        let this = self.clone();
        let key = key.clone();
        blocking("hash a blob", move || {
            let path = this.path_of(&key)?;
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(this.io_err(&key, &path, "read", e)),
            };
            if !file
                .metadata()
                .map_err(|e| this.io_err(&key, &path, "inspect", e))?
                .is_file()
            {
                return Ok(None);
            }
            let mut sha1 = (algo == SumAlgo::Sha1).then(sha1::Sha1::default);
            let (size, sha) = copy_hashing_also(&mut file, &mut io::sink(), &mut sha1)
                .map_err(|e| this.io_err(&key, &path, "read", e))?;
            Ok(Some(BlobMeta {
                key,
                size,
                sha256: Some(sha),
                sha1: sha1.map(|h| hex::encode(sha1::Digest::finalize(h))),
            }))
        })
        .await
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<String>,
    ) -> Result<Page<BlobMeta>, PortError> {
        let this = self.clone();
        let prefix = prefix.to_owned();
        blocking("list blobs", move || {
            this.list_blocking(&prefix, cursor.as_deref().unwrap_or(""))
        })
        .await
    }

    async fn copy(&self, from: &BlobKey, to: &BlobKey) -> Result<(), PortError> {
        let this = self.clone();
        let (from, to) = (from.clone(), to.clone());
        blocking("copy a blob", move || {
            let src_path = this.path_of(&from)?;
            let dst_path = this.path_of(&to)?;
            let mut src = this.open_blob(&from, &src_path)?;
            let mut tmp = this.temp_for(&to, &dst_path)?;
            // io::copy between two files uses copy_file_range where the kernel has it.
            io::copy(&mut src, tmp.as_file_mut())
                .map_err(|e| this.io_err(&to, &dst_path, "copy into", e))?;
            this.commit(&to, tmp, &dst_path, Durable::AtFlush)
        })
        .await
    }

    async fn flush(&self) -> Result<(), PortError> {
        let this = self.clone();
        blocking("sync blobs to disk", move || this.flush_blocking()).await
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), PortError> {
        let this = self.clone();
        let key = key.clone();
        blocking("delete a blob", move || {
            let path = this.path_of(&key)?;
            match fs::remove_file(&path) {
                Ok(()) => {
                    this.prune(&path);
                    Ok(())
                }
                // No blob by that key (nothing, or only a folder of other blobs).
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
                    ) =>
                {
                    Ok(())
                }
                Err(e) => Err(this.io_err(&key, &path, "delete", e)),
            }
        })
        .await
    }
}

/// A reader that keeps its own error aside, so that a copy can tell a failed read of the
/// source from a failed write of the destination.
struct ReadErr<'a, R> {
    inner: &'a mut R,
    err: Option<io::Error>,
}

impl<R: Read> Read for ReadErr<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != ErrorKind::Interrupted {
                self.err = Some(io::Error::new(e.kind(), e.to_string()));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn key(s: &str) -> BlobKey {
        BlobKey::parse(s).unwrap()
    }

    /// Every name in the tree under `dir`, relative, sorted.
    fn tree(dir: &Path) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if p.is_dir() && !p.is_symlink() {
                    walk(base, &p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    async fn keys(store: &FsBlob, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list(prefix, cursor.take()).await.unwrap();
            out.extend(page.items.into_iter().map(|m| m.key.as_str().to_owned()));
            match page.next {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    #[tokio::test]
    async fn symlinks_out_of_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "do not read").unwrap();
        let store = FsBlob::new(dir.path().join("root")).unwrap();
        let root = store.root().to_path_buf();
        symlink(&outside, root.join("out")).unwrap();
        symlink(outside.join("secret"), root.join("secret-link")).unwrap();
        symlink(dir.path().join("nowhere"), root.join("dangling")).unwrap();

        let invalid = |r: Result<(), PortError>, what: &str| {
            assert!(
                matches!(r, Err(PortError::Invalid(_))),
                "{what} must be Invalid, got {r:?}"
            )
        };
        for k in [
            "out/secret",
            "out/new",
            "out/deeper/new",
            "secret-link",
            "dangling/x",
        ] {
            let k = key(k);
            invalid(
                store.put(&k, Bytes::from_static(b"x")).await.map(|_| ()),
                "put",
            );
            invalid(store.get(&k).await.map(|_| ()), "get");
            invalid(store.head(&k).await.map(|_| ()), "head");
            invalid(store.delete(&k).await, "delete");
            invalid(store.copy(&k, &key("inside")).await, "copy from");
            invalid(
                store
                    .get_to_file(&k, &dir.path().join("dl"))
                    .await
                    .map(|_| ()),
                "get_to_file",
            );
        }
        invalid(
            store
                .put_file(&key("out/f"), &outside.join("secret"))
                .await
                .map(|_| ()),
            "put_file",
        );
        assert_eq!(tree(&outside), ["secret"], "nothing written outside");
        assert_eq!(
            fs::read_to_string(outside.join("secret")).unwrap(),
            "do not read"
        );
        assert!(!dir.path().join("nowhere").exists());
        assert!(!dir.path().join("dl").exists());
        // Listing does not follow links at all.
        assert!(keys(&store, "").await.is_empty());

        // A link that stays inside the root is fine.
        fs::create_dir(root.join("real")).unwrap();
        symlink(root.join("real"), root.join("alias")).unwrap();
        store
            .put(&key("alias/a"), Bytes::from_static(b"in"))
            .await
            .unwrap();
        assert_eq!(fs::read(root.join("real/a")).unwrap(), b"in");
        assert_eq!(store.get(&key("real/a")).await.unwrap(), "in");
    }

    #[tokio::test]
    async fn temporary_files_are_invisible_and_cannot_be_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlob::new(dir.path()).unwrap();
        store
            .put(&key("a/b"), Bytes::from_static(b"1"))
            .await
            .unwrap();
        // What a crash in the middle of a write leaves behind.
        fs::write(dir.path().join("a/.a2a-tmp-crashed"), "half").unwrap();
        fs::write(dir.path().join(".a2a-tmp-x"), "half").unwrap();
        fs::create_dir(dir.path().join(".a2a-tmp-dir")).unwrap();
        fs::write(dir.path().join(".a2a-tmp-dir/f"), "half").unwrap();
        assert_eq!(keys(&store, "").await, ["a/b"]);
        assert_eq!(keys(&store, "a/").await, ["a/b"]);
        for k in [".a2a-tmp-x", "a/.a2a-tmp-crashed", ".a2a-tmp-dir/f"] {
            assert!(matches!(
                store.get(&key(k)).await,
                Err(PortError::Invalid(_))
            ));
        }
        // Keys merely like it are fine.
        store
            .put(&key("a/.a2a-tmpx"), Bytes::from_static(b"2"))
            .await
            .unwrap();
        assert_eq!(keys(&store, "a/").await, ["a/.a2a-tmpx", "a/b"]);
    }

    #[tokio::test]
    async fn readers_never_see_a_partial_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FsBlob::new(dir.path()).unwrap());
        let k = key("big/blob");
        let size = 2 << 20;
        store.put(&k, Bytes::from(vec![b'a'; size])).await.unwrap();
        let writer = {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                for i in 0..20u8 {
                    let b = if i % 2 == 0 { b'b' } else { b'a' };
                    store.put(&k, Bytes::from(vec![b; size])).await.unwrap();
                }
            })
        };
        for _ in 0..40 {
            let got = store.get(&k).await.unwrap();
            assert_eq!(got.len(), size);
            assert!(got.iter().all(|&b| b == got[0]), "a torn read");
            assert!(
                keys(&store, "big/").await == ["big/blob"],
                "only the blob is listed"
            );
        }
        writer.await.unwrap();
        assert_eq!(
            tree(dir.path()),
            ["big", "big/blob"],
            "no temporary file left"
        );
    }

    #[tokio::test]
    async fn failed_reads_and_writes_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlob::new(dir.path().join("root")).unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();

        let missing = out.join("sub/missing.bin");
        assert!(matches!(
            store.get_to_file(&key("none"), &missing).await,
            Err(PortError::NotFound(_))
        ));
        assert!(tree(&out).is_empty(), "{:?}", tree(&out));

        // A key that is the folder of another key: refused, no temporary file left.
        store
            .put(&key("a/b"), Bytes::from_static(b"1"))
            .await
            .unwrap();
        assert!(matches!(
            store.put(&key("a"), Bytes::from_static(b"2")).await,
            Err(PortError::Invalid(_))
        ));
        assert!(matches!(
            store.put(&key("a/b/c"), Bytes::from_static(b"3")).await,
            Err(PortError::Invalid(_))
        ));
        assert!(matches!(
            store.get(&key("a")).await,
            Err(PortError::NotFound(_))
        ));
        assert_eq!(store.head(&key("a")).await.unwrap(), None);
        assert_eq!(store.head(&key("a/b/c")).await.unwrap(), None);
        store.delete(&key("a")).await.unwrap();

        // A source file that is not there.
        assert!(matches!(
            store.put_file(&key("x"), &dir.path().join("nope")).await,
            Err(PortError::NotFound(_))
        ));
        assert_eq!(tree(store.root()), ["a", "a/b"]);
    }

    #[tokio::test]
    async fn listing_follows_key_byte_order_and_cursors() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlob::new(dir.path()).unwrap();
        let all = ["a-b", "a/b", "a/c/d", "a0", "b", "é/x"];
        for k in all.iter().rev() {
            store.put(&key(k), Bytes::from_static(b"x")).await.unwrap();
        }
        assert_eq!(keys(&store, "").await, all);
        assert_eq!(keys(&store, "a").await, ["a-b", "a/b", "a/c/d", "a0"]);
        assert_eq!(keys(&store, "a/").await, ["a/b", "a/c/d"]);
        assert_eq!(keys(&store, "a/c").await, ["a/c/d"]);
        assert!(keys(&store, "a//").await.is_empty());
        assert!(keys(&store, "../").await.is_empty());
        // A cursor inside a folder resumes after it.
        let page = store.list("", Some("a/b".into())).await.unwrap();
        let got: Vec<_> = page.items.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(got, ["a/c/d", "a0", "b", "é/x"]);
        assert_eq!(page.next, None);
    }

    #[tokio::test]
    async fn whole_files_are_synced_by_flush_and_records_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlob::new(dir.path().join("root")).unwrap();
        let noted = |s: &FsBlob| s.lock_unsynced().count;
        let src = dir.path().join("src");
        fs::write(&src, "Bon dia").unwrap();
        let sha1 = hex::encode(sha1::Digest::finalize(sha1::Digest::chain_update(
            sha1::Sha1::default(),
            b"Bon dia",
        )));
        store.put_file(&key("a/one"), &src).await.unwrap();
        store
            .put_file_sha1(&key("b/two"), &src, &sha1)
            .await
            .unwrap();
        store.copy(&key("a/one"), &key("c/three")).await.unwrap();
        // A record is synced before it is renamed into place, so it is not noted.
        store
            .put(&key("manifest.json"), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        // Visible at once, whole, before any flush.
        assert_eq!(store.get(&key("b/two")).await.unwrap(), "Bon dia");
        assert_eq!(noted(&store), 3);
        // A clone is the same store: its flush covers what the other wrote.
        let clone = store.clone();
        // A noted file deleted before the flush needs nothing, and fails nothing.
        store.delete(&key("c/three")).await.unwrap();
        clone.flush().await.unwrap();
        assert_eq!(noted(&store), 0);
        clone.flush().await.expect("an empty flush is fine");
        assert_eq!(store.get(&key("a/one")).await.unwrap(), "Bon dia");
        // A failed put notes nothing.
        assert!(
            store
                .put_file_sha1(&key("d/x"), &src, &"0".repeat(40))
                .await
                .is_err()
        );
        assert_eq!(noted(&store), 0);
    }

    #[test]
    fn syncing_in_parallel_reports_what_failed_and_skips_what_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths: Vec<PathBuf> = (0..100).map(|i| dir.path().join(format!("f{i}"))).collect();
        for p in &paths {
            fs::write(p, "x").unwrap();
        }
        paths.push(dir.path().join("gone"));
        paths.push(dir.path().to_path_buf());
        assert!(sync_all_parallel(&paths).is_empty());
        // A path through a file cannot be opened: a failure, named.
        let bad = dir.path().join("f1/below");
        let one = [bad.as_path()];
        let failed = sync_all_parallel(&one);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, bad.as_path());
    }

    #[tokio::test]
    async fn head_does_not_hash_and_delete_prunes_empty_folders() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlob::new(dir.path()).unwrap();
        store
            .put(&key("x/y/z"), Bytes::from_static(b"12345"))
            .await
            .unwrap();
        store
            .put(&key("x/keep"), Bytes::from_static(b"k"))
            .await
            .unwrap();
        let head = store.head(&key("x/y/z")).await.unwrap().unwrap();
        assert_eq!((head.size, head.sha256), (5, None));
        store.delete(&key("x/y/z")).await.unwrap();
        assert_eq!(tree(dir.path()), ["x", "x/keep"]);
        store.delete(&key("x/keep")).await.unwrap();
        assert!(tree(dir.path()).is_empty());
        assert!(dir.path().is_dir(), "the root stays");
    }
}

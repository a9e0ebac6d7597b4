//! A generated moodledata folder, for tests and the benchmark: content-addressed files in
//! `filedir`, plain files with spaces and Catalan accents in their names, and the folders
//! that sync leaves out (the `a2a fixture site --files` command of the fixtures issue can
//! call this); and such a folder installed as a template in a blob store.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use a2a_core::{BlobKey, BlobStore, PortError, SchoolCode};
use sha1::Digest as _;

use crate::{FilesError, NoProgress, SyncOptions, list_all, template_root};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Files in `filedir`.
    pub files: usize,
    /// Smallest and largest file size in bytes (sizes are spread between them, mostly
    /// small, as uploads are).
    pub min_size: u64,
    /// Largest file size.
    pub max_size: u64,
    /// Seed of the contents: the same seed gives the same folder.
    pub seed: u64,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            files: 50,
            min_size: 1,
            max_size: 64 * 1024,
            seed: 1,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The `filedir` files, as (path relative to moodledata, SHA-1).
    pub filedir: Vec<(String, String)>,
    /// The other files kept by sync, relative to moodledata.
    pub others: Vec<String>,
    /// Bytes of everything kept.
    pub bytes: u64,
}

/// Plain files that a Moodle site holds beside `filedir`, with names that test keys.
pub const OTHER_FILES: &[(&str, &str)] = &[
    (
        "filedir/warning.txt",
        "This directory contains the content of uploaded files.\n",
    ),
    (
        "lang/ca/langconfig.php",
        "<?php $string['thislanguage'] = 'Català';\n",
    ),
    (
        "lang/ca/moodle.php",
        "<?php $string['continue'] = 'Continua';\n",
    ),
    (
        "repository/Fitxers de l'escola/Programació didàctica 2026.txt",
        "Curs 2026–2027: ç, à, è, é, í, ï, ò, ó, ú, ü, l·l\n",
    ),
    (
        "repository/Fitxers de l'escola/Sortida a la Garrotxa.txt",
        "Olot, Castellfollit de la Roca\n",
    ),
    ("muc/config.php", "<?php $configuration = array();\n"),
];

/// Writes a moodledata folder at `root` (created if missing).
pub fn generate(root: &Path, spec: &Spec) -> io::Result<Generated> {
    let mut rng = spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: fast and good enough for test data.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut out = Generated {
        filedir: Vec::new(),
        others: Vec::new(),
        bytes: 0,
    };
    let span = spec.max_size.saturating_sub(spec.min_size);
    for i in 0..spec.files {
        // Squaring a uniform draw puts most sizes near the small end.
        let u = (next() % 1_000_000) as f64 / 1_000_000.0;
        let size = spec.min_size + (span as f64 * u * u) as u64;
        let mut data = Vec::with_capacity(size as usize);
        data.extend_from_slice(format!("file {i} seed {} ", spec.seed).as_bytes());
        while (data.len() as u64) < size {
            data.extend_from_slice(&next().to_le_bytes());
        }
        data.truncate(size as usize);
        let sha1 = hex::encode(sha1::Sha1::digest(&data));
        let rel = format!("filedir/{}/{}/{sha1}", &sha1[..2], &sha1[2..4]);
        write(root, &rel, &data)?;
        out.bytes += data.len() as u64;
        out.filedir.push((rel, sha1));
    }
    for (rel, text) in OTHER_FILES {
        write(root, rel, text.as_bytes())?;
        out.bytes += text.len() as u64;
        out.others.push((*rel).to_owned());
    }
    // What Moodle rebuilds, and the maintenance page: left out by sync.
    for rel in [
        "cache/core/x.cache",
        "localcache/theme/1/style.css",
        "temp/backup/part",
        "sessions/sess_abc",
        "trashdir/aa/bb/aabb",
        "lock/core_cron.lock",
        "climaintenance.html",
    ] {
        write(root, rel, b"rebuilt by Moodle")?;
    }
    out.filedir.sort();
    Ok(out)
}

/// A small moodledata at `root`: twelve `filedir` files of at most 4 KiB, from `seed`.
/// For tests and demos of whole workflows, where the files' number and size do not matter.
pub fn small(root: &Path, seed: u64) -> io::Result<Generated> {
    let spec = Spec {
        files: 12,
        max_size: 4096,
        seed,
        ..Spec::default()
    };
    generate(root, &spec)
}

/// The school a template is synced under before it moves to `templates/<name>/`.
const SCRATCH: &str = "08999999";

/// Installs the moodledata folder `dir` as template `name` of `store`, as tests set one
/// up: synced under a scratch school, so that the copy has the data plane's layout and
/// manifest, then moved under `templates/<name>/`, its manifest last (a template with a
/// manifest is whole). Returns how many blobs it installed.
/// A file that could not be synced is an error, and so is a folder with nothing to install:
/// the template would be incomplete.
pub async fn install_template(
    store: Arc<dyn BlobStore>,
    dir: &Path,
    name: &str,
) -> Result<usize, FilesError> {
    let scratch = SchoolCode::parse(SCRATCH).map_err(|e| FilesError::Source {
        path: dir.to_owned(),
        why: e.to_string(),
    })?;
    let failed = |what: &str, e: PortError| FilesError::store(&scratch, what, e);
    let root =
        template_root(name).map_err(|e| failed("naming the template", PortError::Invalid(e)))?;
    let options = SyncOptions {
        jobs: 4,
        list_target: false,
    };
    let report = crate::sync(dir, store.clone(), &scratch, &options, &NoProgress).await?;
    if let Some(p) = report.problems.first() {
        return Err(FilesError::Source {
            path: dir.to_owned(),
            why: format!(
                "{} file(s) not synced, the first {}: {}",
                report.problems.len(),
                p.path,
                p.what
            ),
        });
    }
    if report.files == 0 {
        return Err(FilesError::Source {
            path: dir.to_owned(),
            why: "no file to install as a template".into(),
        });
    }
    let from = crate::layout::site_root(&scratch);
    let mut synced = list_all(store.as_ref(), &from)
        .await
        .map_err(|e| failed("listing the synced template", e))?;
    // The manifest last, so that its presence means the template is whole.
    synced.sort_by_key(|m| m.key.as_str().ends_with("/manifest.json"));
    for m in &synced {
        let rest = &m.key.as_str()[from.len()..];
        let to = BlobKey::parse(&format!("{root}{rest}"))
            .map_err(|e| failed("naming a template key", PortError::Invalid(e.to_string())))?;
        store
            .copy(&m.key, &to)
            .await
            .map_err(|e| failed("moving the template", e))?;
        store
            .delete(&m.key)
            .await
            .map_err(|e| failed("moving the template", e))?;
    }
    Ok(synced.len())
}

fn write(root: &Path, rel: &str, data: &[u8]) -> io::Result<PathBuf> {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&path, data)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_folder_and_names_are_hashes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let spec = Spec::default();
        let ga = generate(a.path(), &spec).unwrap();
        let gb = generate(b.path(), &spec).unwrap();
        assert_eq!(ga.filedir, gb.filedir);
        for (rel, sha1) in &ga.filedir {
            let data = fs::read(a.path().join(rel)).unwrap();
            assert_eq!(&hex::encode(sha1::Sha1::digest(&data)), sha1);
        }
    }

    #[tokio::test]
    async fn a_template_is_installed_whole_and_the_scratch_site_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> =
            Arc::new(a2a_local::FsBlob::new(dir.path().join("blobs")).unwrap());
        let md = dir.path().join("moodledata");
        let g = small(&md, 3).unwrap();
        assert_eq!(g.filedir.len(), 12);
        assert!(g.bytes <= 12 * 4096 + 1024, "{}", g.bytes);
        let n = install_template(store.clone(), &md, "primary")
            .await
            .unwrap();
        let under = |p: &'static str| {
            let store = store.clone();
            async move { list_all(store.as_ref(), p).await.unwrap() }
        };
        let installed = under("templates/primary/").await;
        // Every kept file, and the manifest.
        assert_eq!(installed.len(), g.filedir.len() + g.others.len() + 1);
        assert_eq!(n, installed.len());
        assert!(
            installed
                .iter()
                .any(|m| m.key.as_str() == "templates/primary/manifest.json")
        );
        assert!(under("instances/").await.is_empty());

        let empty = dir.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        let e = install_template(store.clone(), &empty, "other")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no file"), "{e}");
        let e = install_template(store, &md, "Not A Name")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("template name"), "{e}");
    }

    /// A folder store that records where it copies to, in order.
    struct Recording {
        inner: a2a_local::FsBlob,
        copies: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl BlobStore for Recording {
        async fn put(
            &self,
            key: &BlobKey,
            body: bytes::Bytes,
        ) -> Result<a2a_core::BlobMeta, PortError> {
            self.inner.put(key, body).await
        }
        async fn put_file(
            &self,
            key: &BlobKey,
            path: &Path,
        ) -> Result<a2a_core::BlobMeta, PortError> {
            self.inner.put_file(key, path).await
        }
        async fn put_file_sha1(
            &self,
            key: &BlobKey,
            path: &Path,
            sha1: &str,
        ) -> Result<a2a_core::BlobMeta, PortError> {
            self.inner.put_file_sha1(key, path, sha1).await
        }
        async fn get(&self, key: &BlobKey) -> Result<bytes::Bytes, PortError> {
            self.inner.get(key).await
        }
        async fn get_to_file(
            &self,
            key: &BlobKey,
            path: &Path,
        ) -> Result<a2a_core::BlobMeta, PortError> {
            self.inner.get_to_file(key, path).await
        }
        async fn head(&self, key: &BlobKey) -> Result<Option<a2a_core::BlobMeta>, PortError> {
            self.inner.head(key).await
        }
        async fn head_sum(
            &self,
            key: &BlobKey,
            algo: a2a_core::SumAlgo,
        ) -> Result<Option<a2a_core::BlobMeta>, PortError> {
            self.inner.head_sum(key, algo).await
        }
        async fn list(
            &self,
            prefix: &str,
            cursor: Option<String>,
        ) -> Result<a2a_core::Page<a2a_core::BlobMeta>, PortError> {
            self.inner.list(prefix, cursor).await
        }
        async fn copy(&self, from: &BlobKey, to: &BlobKey) -> Result<(), PortError> {
            self.copies.lock().unwrap().push(to.as_str().to_owned());
            self.inner.copy(from, to).await
        }
        async fn delete(&self, key: &BlobKey) -> Result<(), PortError> {
            self.inner.delete(key).await
        }
        async fn flush(&self) -> Result<(), PortError> {
            self.inner.flush().await
        }
    }

    #[tokio::test]
    async fn the_manifest_is_installed_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Recording {
            inner: a2a_local::FsBlob::new(dir.path().join("blobs")).unwrap(),
            copies: Default::default(),
        });
        let md = dir.path().join("moodledata");
        small(&md, 5).unwrap();
        let n = install_template(store.clone(), &md, "primary")
            .await
            .unwrap();
        let copies = store.copies.lock().unwrap().clone();
        assert_eq!(copies.len(), n);
        // Whoever sees the manifest sees every file of the template.
        assert_eq!(
            copies.last().map(String::as_str),
            Some("templates/primary/manifest.json"),
            "{copies:?}"
        );
    }
}

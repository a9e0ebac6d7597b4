//! Content checksums of a moodledata folder and of its copy, one side at a time, for a
//! verify split between the source (on premises, where the folder is) and the target (in
//! AWS, where the copy is). The source side hashes every file it would copy; the target
//! side lists the copy and reads each blob's stored checksum through
//! [`BlobStore::head_sum`] (S3: `HeadObject` in checksum mode, no download; a folder store
//! hashes the file again). Neither side reads the other's manifest.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use a2a_core::{BlobStore, PortError, SchoolCode, SumAlgo};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::layout::{Place, site_root};
use crate::walk::{Problem, walk_blocking};
use crate::{Difference, FilesError, list_copy, sum_file};

/// One file's size and content checksum: SHA-1 for `filedir` files (equal to the name),
/// SHA-256 for the rest, as the S3 additional checksums of the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    /// Size in bytes.
    pub size: u64,
    /// The checksum's algorithm.
    pub algo: SumAlgo,
    /// The checksum, lower-case hex.
    pub hex: String,
}

/// Every file of a site, by its key under the site root (`filedir/…`, `moodledata/…`).
pub type Sums = BTreeMap<String, FileSum>;

/// What the source side found.
#[derive(Debug, Default)]
pub struct SourceSums {
    /// The files that are copied, summed.
    pub files: Sums,
    /// Files that cannot be copied or read, or whose content is not their name's.
    pub problems: Vec<Problem>,
}

/// Walks the moodledata folder `source` and hashes every file that a sync copies, `jobs`
/// at once, each streamed. A `filedir` file whose SHA-1 is not its name is a problem.
pub async fn source_sums(source: &Path, jobs: usize) -> Result<SourceSums, FilesError> {
    let walked = walk_blocking(source).await?;
    let mut out = SourceSums {
        problems: walked.problems,
        ..SourceSums::default()
    };
    let mut jobs_in = Vec::new();
    for f in walked.files {
        match f.place {
            Place::Filedir { sha1, rel_key } => jobs_in.push((f.rel, f.path, rel_key, Some(sha1))),
            Place::Other { rel_key } => jobs_in.push((f.rel, f.path, rel_key, None)),
            Place::Misplaced => out.problems.push(Problem {
                path: f.rel,
                what: "named like a content hash, but not in filedir/<h0h1>/<h2h3>/".into(),
            }),
            Place::Skipped => {}
        }
    }
    let mut hashed = futures::stream::iter(jobs_in)
        .map(|(rel, path, rel_key, name)| async move {
            let algo = if name.is_some() {
                SumAlgo::Sha1
            } else {
                SumAlgo::Sha256
            };
            let found = sum_file(&path, algo).await;
            (rel, rel_key, name, algo, found)
        })
        .buffer_unordered(jobs.max(1));
    while let Some((rel, rel_key, name, algo, found)) = hashed.next().await {
        match found {
            Err(e) => out.problems.push(Problem {
                path: rel,
                what: format!("cannot read it: {e}"),
            }),
            Ok((_, hex)) if name.as_ref().is_some_and(|n| *n != hex) => {
                out.problems.push(Problem {
                    path: rel,
                    what: format!(
                        "content SHA-1 is {hex}, but its name says {}: the source file is \
                         damaged",
                        name.unwrap_or_default()
                    ),
                });
            }
            Ok((size, hex)) => {
                out.files.insert(rel_key, FileSum { size, algo, hex });
            }
        }
    }
    out.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// What the target side found, comparing the copy with the source's sums. Each list is in
/// key order; keys are full blob keys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyCheck {
    /// Source files compared.
    pub compared: u64,
    /// Keys the source has and the copy lacks.
    pub missing: Vec<String>,
    /// Keys in the copy with no source file.
    pub extra: Vec<String>,
    /// Keys whose copy differs: in size, in checksum, or with no stored checksum.
    pub different: Vec<Difference>,
}

impl CopyCheck {
    /// The copy holds what the source summed.
    pub fn equal(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.different.is_empty()
    }
}

/// Compares the copy of `school` in `store` with the source's `sums`: lists the copy
/// (`filedir/` and `moodledata/` under the site root) for missing and extra keys and sizes,
/// then reads each remaining blob's stored checksum with [`BlobStore::head_sum`], `jobs` at
/// once. A blob with no stored checksum in the source's algorithm differs: unverified is
/// never equal.
pub async fn check_copy(
    store: Arc<dyn BlobStore>,
    school: &SchoolCode,
    sums: &Sums,
    jobs: usize,
) -> Result<CopyCheck, FilesError> {
    let store_err = |what: &str, e: PortError| FilesError::store(school, what, e);
    let root = site_root(school);
    let copy = list_copy(store.as_ref(), school).await?;
    let mut out = CopyCheck {
        compared: sums.len() as u64,
        extra: copy
            .keys()
            .filter(|k| !sums.contains_key(*k))
            .map(|k| format!("{root}{k}"))
            .collect(),
        ..CopyCheck::default()
    };
    let mut to_read = Vec::new();
    for (rel, want) in sums {
        match copy.get(rel) {
            None => out.missing.push(format!("{root}{rel}")),
            Some(m) if m.size != want.size => out.different.push(Difference {
                key: m.key.to_string(),
                why: format!("size: source {} bytes, copy {}", want.size, m.size),
            }),
            Some(m) => to_read.push((m.key.clone(), want.clone())),
        }
    }
    let mut read = futures::stream::iter(to_read)
        .map(|(key, want)| {
            // Owned, so that the stream's futures borrow nothing.
            let store = store.clone();
            async move {
                let got = store.head_sum(&key, want.algo).await?;
                Ok::<_, PortError>((key.to_string(), want, got))
            }
        })
        .buffer_unordered(jobs.max(1));
    while let Some(found) = read.next().await {
        let (key, want, got) = found.map_err(|e| store_err("reading the copy's checksums", e))?;
        let why = match got {
            None => Some("gone from the copy".to_owned()),
            Some(m) => match want.algo.of(&m) {
                None => Some(format!("the copy has no stored {} checksum", want.algo)),
                Some(h) if !h.eq_ignore_ascii_case(&want.hex) => Some(format!(
                    "content: the copy's {} is {h}, the source's {}",
                    want.algo, want.hex
                )),
                Some(_) => None,
            },
        };
        if let Some(why) = why {
            out.different.push(Difference { key, why });
        }
    }
    out.different.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use a2a_core::BlobKey;
    use sha1::Digest as _;

    fn sha1(b: &[u8]) -> String {
        hex::encode(sha1::Sha1::digest(b))
    }

    fn sha256(b: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(b))
    }

    fn filedir(h: &str) -> String {
        format!("filedir/{}/{}/{h}", &h[..2], &h[2..4])
    }

    #[tokio::test]
    async fn the_source_is_hashed_by_kind_and_a_damaged_filedir_file_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path();
        let good = sha1(b"good");
        let liar = sha1(b"said");
        for (name, body) in [(filedir(&good), "good"), (filedir(&liar), "other")] {
            std::fs::create_dir_all(md.join(&name).parent().unwrap()).unwrap();
            std::fs::write(md.join(&name), body).unwrap();
        }
        std::fs::create_dir_all(md.join("lang/ca")).unwrap();
        std::fs::write(md.join("lang/ca/x.php"), "Català").unwrap();
        std::fs::create_dir_all(md.join("cache")).unwrap();
        std::fs::write(md.join("cache/skip"), "rebuilt").unwrap();

        let found = source_sums(md, 2).await.unwrap();
        let want: Sums = [
            (
                filedir(&good),
                FileSum {
                    size: 4,
                    algo: SumAlgo::Sha1,
                    hex: good.clone(),
                },
            ),
            (
                "moodledata/lang/ca/x.php".to_owned(),
                FileSum {
                    size: "Català".len() as u64,
                    algo: SumAlgo::Sha256,
                    hex: sha256("Català".as_bytes()),
                },
            ),
        ]
        .into();
        assert_eq!(found.files, want);
        assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
        assert!(found.problems[0].what.contains("damaged"));
    }

    #[tokio::test]
    async fn the_copy_is_compared_by_key_size_and_stored_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(a2a_local::FsBlob::new(dir.path()).unwrap());
        let school = SchoolCode::parse("08012345").unwrap();
        let root = site_root(&school);
        let sum = |algo, body: &[u8]| FileSum {
            size: body.len() as u64,
            algo,
            hex: match algo {
                SumAlgo::Sha1 => sha1(body),
                SumAlgo::Sha256 => sha256(body),
            },
        };
        let ok = filedir(&sha1(b"ok"));
        let sums: Sums = [
            (ok.clone(), sum(SumAlgo::Sha1, b"ok")),
            ("moodledata/same".into(), sum(SumAlgo::Sha256, b"abc")),
            ("moodledata/changed".into(), sum(SumAlgo::Sha256, b"abc")),
            ("moodledata/longer".into(), sum(SumAlgo::Sha256, b"abc")),
            ("moodledata/gone".into(), sum(SumAlgo::Sha256, b"abc")),
        ]
        .into();
        for (rel, body) in [
            (ok.as_str(), &b"ok"[..]),
            ("moodledata/same", b"abc"),
            ("moodledata/changed", b"abd"),
            ("moodledata/longer", b"abcd"),
            ("moodledata/extra", b"x"),
        ] {
            let key = BlobKey::parse(&format!("{root}{rel}")).unwrap();
            store
                .put(&key, bytes::Bytes::from(body.to_vec()))
                .await
                .unwrap();
        }
        let clean: Sums = sums
            .iter()
            .filter(|(k, _)| *k == &ok || k.ends_with("same"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let only_clean = check_copy(store.clone(), &school, &clean, 4).await.unwrap();
        assert_eq!(only_clean.extra.len(), 3, "{only_clean:?}");

        let found = check_copy(store, &school, &sums, 4).await.unwrap();
        assert!(!found.equal());
        assert_eq!(found.compared, 5);
        assert_eq!(found.missing, [format!("{root}moodledata/gone")]);
        assert_eq!(found.extra, [format!("{root}moodledata/extra")]);
        let different: Vec<(&str, &str)> = found
            .different
            .iter()
            .map(|d| (d.key.as_str(), d.why.as_str()))
            .collect();
        assert_eq!(different.len(), 2, "{different:?}");
        assert_eq!(different[0].0, format!("{root}moodledata/changed"));
        assert!(
            different[0].1.starts_with("content: the copy's SHA-256"),
            "{different:?}"
        );
        assert_eq!(different[1].0, format!("{root}moodledata/longer"));
        assert!(different[1].1.starts_with("size:"), "{different:?}");
    }
}

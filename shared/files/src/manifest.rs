//! The manifest written beside a site's copy: counts, bytes, and each file's key, size and
//! hashes. `verify` reads it back, and the next `sync` uses it to skip what is unchanged.

use std::collections::HashMap;

use a2a_core::{BlobStore, PortError, SchoolCode};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::layout::manifest_key;
use crate::walk::Problem;

/// The format written now.
pub const FORMAT: u32 = 1;

/// One file of the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The key under the site root: `filedir/ab/cd/<sha1>` or `moodledata/<path>`.
    pub key: String,
    /// The source path, relative to moodledata.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The source file's modification time (ns since 1970) when it was copied.
    pub mtime_ns: i64,
    /// SHA-1 (hex): the name of a `filedir` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    /// SHA-256 (hex), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A site's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub format: u32,
    /// The school code of the site.
    pub school: String,
    /// Number of files in the copy.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Of which under `filedir`.
    pub filedir_files: u64,
    /// Their bytes.
    pub filedir_bytes: u64,
    /// Every file, by key.
    pub entries: Vec<Entry>,
    /// Source files that were not copied, and why.
    #[serde(default)]
    pub problems: Vec<Problem>,
    /// The template's root, for a site made by template copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<String>,
}

impl Manifest {
    /// A manifest of `entries` (sorted here by key) with its counts.
    pub fn new(school: &SchoolCode, mut entries: Vec<Entry>, problems: Vec<Problem>) -> Self {
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let fd = entries.iter().filter(|e| e.key.starts_with("filedir/"));
        let (filedir_files, filedir_bytes) = fd.fold((0, 0), |(n, b), e| (n + 1, b + e.size));
        Self {
            format: FORMAT,
            school: school.as_str().to_owned(),
            files: entries.len() as u64,
            bytes: entries.iter().map(|e| e.size).sum(),
            filedir_files,
            filedir_bytes,
            entries,
            problems,
            copied_from: None,
        }
    }

    /// Entries by key.
    pub fn by_key(&self) -> HashMap<&str, &Entry> {
        self.entries.iter().map(|e| (e.key.as_str(), e)).collect()
    }

    /// Reads the site's manifest; `None` if there is none, `Corrupt` if it does not parse.
    pub async fn load(
        store: &dyn BlobStore,
        school: &SchoolCode,
    ) -> Result<Option<Manifest>, PortError> {
        let key = manifest_key(school);
        match store.get(&key).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| PortError::Corrupt(format!("manifest {key} does not parse: {e}"))),
            Err(PortError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes it as the site's manifest.
    pub async fn store(&self, store: &dyn BlobStore, school: &SchoolCode) -> Result<(), PortError> {
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| PortError::Backend(format!("cannot write the manifest: {e}")))?;
        store.put(&manifest_key(school), Bytes::from(body)).await?;
        Ok(())
    }
}

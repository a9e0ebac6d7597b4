//! EIX template copy: a template's files to a new site's prefix, server-side.

use std::collections::HashMap;
use std::sync::Arc;

use a2a_core::{BlobKey, BlobStore, PortError, SchoolCode};
use futures::StreamExt as _;
use serde::Serialize;

use crate::layout::{MANIFEST, key_under, named_template_root, site_root};
use crate::manifest::{Entry, Manifest};
use crate::{FilesError, Progress, list_all};

/// What a template copy did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The template's root prefix.
    pub from: String,
    /// The new site's school code.
    pub school: String,
    /// Files of the template.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files copied by this run.
    pub copied_files: u64,
    /// Files already there.
    pub skipped_files: u64,
}

/// The root of a template: a site synced under its school code (`instances/<code>/`), or a
/// named template (`templates/<name>/`, name of a-z, 0-9 and '-').
pub fn template_root(template: &str) -> Result<String, String> {
    if let Ok(code) = SchoolCode::parse(template) {
        return Ok(site_root(&code));
    }
    let ok = !template.is_empty()
        && template.len() <= 63
        && template
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(named_template_root(template))
    } else {
        Err(format!(
            "{template:?} is neither a school code (8 digits) nor a template name \
             (1 to 63 of a-z 0-9 -)"
        ))
    }
}

/// Copies every file under the template root `from` (from [`template_root`]) to the site of
/// `school`, with the store's own copy (S3 `CopyObject`: no bytes through the caller),
/// `jobs` at a time. A file already there with the same size is skipped, so a rerun
/// resumes. The new site's manifest is the template's with `copied_from` set; it is written
/// last, once every file is there.
pub async fn copy_site(
    store: Arc<dyn BlobStore>,
    from: &str,
    school: &SchoolCode,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<CopyReport, FilesError> {
    let store_err = |what: &str, source: PortError| FilesError::store(school, what, source);
    let to_root = site_root(school);
    if from == to_root {
        return Err(store_err(
            "copying a template",
            PortError::Invalid("the template and the new site are the same".into()),
        ));
    }
    let mut files = Vec::new();
    for part in ["filedir/", "moodledata/"] {
        files.extend(
            list_all(store.as_ref(), &format!("{from}{part}"))
                .await
                .map_err(|e| store_err("listing the template", e))?,
        );
    }
    if files.is_empty() {
        return Err(store_err(
            "copying a template",
            PortError::NotFound(format!("no files under {from}")),
        ));
    }
    let there: HashMap<String, u64> = list_all(store.as_ref(), &to_root)
        .await
        .map_err(|e| store_err("listing the new site", e))?
        .into_iter()
        .map(|m| (m.key.to_string(), m.size))
        .collect();
    let mut todo: Vec<(BlobKey, BlobKey, u64)> = Vec::new();
    let mut skipped = 0u64;
    let bytes = files.iter().map(|m| m.size).sum();
    for m in &files {
        let rel = &m.key.as_str()[from.len()..];
        let to = key_under(&to_root, rel)
            .map_err(|e| store_err("copying a template", PortError::Invalid(e.to_string())))?;
        if there.get(to.as_str()) == Some(&m.size) {
            skipped += 1;
        } else {
            todo.push((m.key.clone(), to, m.size));
        }
    }
    progress.start(todo.len() as u64, todo.iter().map(|t| t.2).sum());
    let copied = todo.len() as u64;
    let mut results = futures::stream::iter(todo)
        .map(|(f, t, size)| {
            let store = store.clone();
            async move { store.copy(&f, &t).await.map(|()| size) }
        })
        .buffer_unordered(jobs.max(1));
    while let Some(r) = results.next().await {
        match r {
            Ok(size) => progress.advance(1, size),
            Err(e) => {
                progress.finish();
                return Err(store_err("copying the template's files", e));
            }
        }
    }
    drop(results);
    progress.finish();
    // The copies must be on disk before the manifest says they are there.
    store
        .flush()
        .await
        .map_err(|e| store_err("making the copied files durable", e))?;

    let from_manifest = key_under(from, MANIFEST)
        .map_err(|e| store_err("copying a template", PortError::Invalid(e.to_string())))?;
    let mut manifest = match store.get(&from_manifest).await {
        Ok(b) => serde_json::from_slice::<Manifest>(&b).map_err(|e| {
            store_err(
                "reading the template's manifest",
                PortError::Corrupt(e.to_string()),
            )
        })?,
        // A template without a manifest: one from the listing.
        Err(PortError::NotFound(_)) => Manifest::new(
            school,
            files
                .iter()
                .map(|m| {
                    let rel = m.key.as_str()[from.len()..].to_owned();
                    let name = rel.rsplit('/').next().unwrap_or_default();
                    Entry {
                        sha1: (rel.starts_with("filedir/") && crate::layout::is_sha1_hex(name))
                            .then(|| name.to_owned()),
                        path: rel.strip_prefix("moodledata/").unwrap_or(&rel).to_owned(),
                        key: rel,
                        size: m.size,
                        mtime_ns: 0,
                        sha256: None,
                    }
                })
                .collect(),
            Vec::new(),
        ),
        Err(e) => return Err(store_err("reading the template's manifest", e)),
    };
    manifest.school = school.to_string();
    manifest.copied_from = Some(from.to_owned());
    manifest
        .store(store.as_ref(), school)
        .await
        .map_err(|e| store_err("writing the manifest", e))?;
    Ok(CopyReport {
        from: from.to_owned(),
        school: school.to_string(),
        files: files.len() as u64,
        bytes,
        copied_files: copied,
        skipped_files: skipped,
    })
}

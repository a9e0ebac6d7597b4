//! [`FileSecrets`]: the [`SecretStore`] in a private folder, one file per secret, readable
//! by its owner only (folders 0700, files 0600), as an operator's `~/.ssh` is kept.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use a2a_core::{PortError, Secret, SecretName, SecretStore};
use async_trait::async_trait;

use crate::blocking;

/// Secrets as files under one folder: the secret `a2a/<code>/<what>` is the file
/// `<root>/a2a/<code>/<what>`.
#[derive(Debug, Clone)]
pub struct FileSecrets {
    root: PathBuf,
}

impl FileSecrets {
    /// The store under `root`, made on first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, name: &SecretName) -> PathBuf {
        // A SecretName is a checked code and a plain word: no `..`, no absolute part.
        self.root.join(name.as_str())
    }
}

fn io(path: &Path, e: std::io::Error) -> PortError {
    PortError::Unavailable(format!("secret file {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<Option<Secret>, PortError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(Secret::new(text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path, e)),
    }
}

#[async_trait]
impl SecretStore for FileSecrets {
    async fn get(&self, name: &SecretName) -> Result<Option<Secret>, PortError> {
        let path = self.path(name);
        blocking("read a secret", move || read(&path)).await
    }

    async fn put_new(&self, name: &SecretName, value: &Secret) -> Result<Secret, PortError> {
        let path = self.path(name);
        let value = value.clone();
        blocking("write a secret", move || {
            // Linked in only if no secret of that name exists: a race keeps the first.
            match written(&path, &value)?.persist_noclobber(&path) {
                Ok(_) => Ok(value),
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => read(&path)?
                    .ok_or_else(|| {
                        PortError::Backend(format!("{}: vanished while read", path.display()))
                    }),
                Err(e) => Err(io(&path, e.error)),
            }
        })
        .await
    }

    async fn put(&self, name: &SecretName, value: &Secret) -> Result<(), PortError> {
        let path = self.path(name);
        let value = value.clone();
        blocking("write a secret", move || {
            written(&path, &value)?
                .persist(&path)
                .map(drop)
                .map_err(|e| io(&path, e.error))
        })
        .await
    }
}

/// `value` written whole to a 0600 temporary file beside `path` (its folder made 0700), for
/// the caller to move into place: a crash leaves no half secret.
fn written(path: &Path, value: &Secret) -> Result<tempfile::NamedTempFile, PortError> {
    let dir = path.parent().expect("a secret's file has a folder");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io(dir, e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io(tmp.path(), e))?;
    tmp.write_all(value.expose().as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io(tmp.path(), e))?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use a2a_core::SchoolCode;

    use super::*;

    #[tokio::test]
    async fn only_its_owner_reads_a_secret_and_no_temporary_file_is_left() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileSecrets::new(tmp.path().join("secrets"));
        let code = SchoolCode::parse("08012345").unwrap();
        let name = SecretName::admin_password(&code);
        store.put_new(&name, &Secret::new("first")).await.unwrap();
        store.put_new(&name, &Secret::new("second")).await.unwrap();

        let file = tmp.path().join("secrets/a2a/08012345/admin-password");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["admin-password"]);
    }
}

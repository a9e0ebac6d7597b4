//! A view of a blob store under one prefix, so that each school's database export has its
//! own `dbmove/` stage inside the one data store.

use std::path::Path;
use std::sync::Arc;

use a2a_core::{BlobKey, BlobMeta, BlobStore, Page, PortError, PortResult, SumAlgo};
use async_trait::async_trait;
use bytes::Bytes;

/// Every key is `prefix` + the key asked for; listings strip the prefix again.
pub struct Prefixed {
    inner: Arc<dyn BlobStore>,
    prefix: String,
}

impl Prefixed {
    /// A view of `inner` under `prefix` (which ends in '/').
    pub fn new(inner: Arc<dyn BlobStore>, prefix: impl Into<String>) -> Self {
        Self {
            inner,
            prefix: prefix.into(),
        }
    }

    fn key(&self, k: &BlobKey) -> Result<BlobKey, PortError> {
        BlobKey::parse(&format!("{}{}", self.prefix, k.as_str()))
            .map_err(|e| PortError::Invalid(e.to_string()))
    }

    fn strip(&self, m: BlobMeta) -> Result<BlobMeta, PortError> {
        let rest = m.key.as_str().strip_prefix(&self.prefix).ok_or_else(|| {
            PortError::Corrupt(format!("{} listed outside {}", m.key, self.prefix))
        })?;
        Ok(BlobMeta {
            key: BlobKey::parse(rest).map_err(|e| PortError::Corrupt(e.to_string()))?,
            ..m
        })
    }
}

#[async_trait]
impl BlobStore for Prefixed {
    async fn put(&self, key: &BlobKey, body: Bytes) -> Result<BlobMeta, PortError> {
        let m = self.inner.put(&self.key(key)?, body).await?;
        self.strip(m)
    }

    async fn put_file(&self, key: &BlobKey, path: &Path) -> Result<BlobMeta, PortError> {
        let m = self.inner.put_file(&self.key(key)?, path).await?;
        self.strip(m)
    }

    async fn put_file_sha1(&self, key: &BlobKey, path: &Path, sha1: &str) -> PortResult<BlobMeta> {
        let m = self
            .inner
            .put_file_sha1(&self.key(key)?, path, sha1)
            .await?;
        self.strip(m)
    }

    async fn get(&self, key: &BlobKey) -> Result<Bytes, PortError> {
        self.inner.get(&self.key(key)?).await
    }

    async fn get_to_file(&self, key: &BlobKey, path: &Path) -> Result<BlobMeta, PortError> {
        let m = self.inner.get_to_file(&self.key(key)?, path).await?;
        self.strip(m)
    }

    async fn head(&self, key: &BlobKey) -> Result<Option<BlobMeta>, PortError> {
        match self.inner.head(&self.key(key)?).await? {
            Some(m) => Ok(Some(self.strip(m)?)),
            None => Ok(None),
        }
    }

    async fn head_sum(&self, key: &BlobKey, algo: SumAlgo) -> PortResult<Option<BlobMeta>> {
        match self.inner.head_sum(&self.key(key)?, algo).await? {
            Some(m) => Ok(Some(self.strip(m)?)),
            None => Ok(None),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<String>,
    ) -> Result<Page<BlobMeta>, PortError> {
        let page = self
            .inner
            .list(&format!("{}{prefix}", self.prefix), cursor)
            .await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|m| self.strip(m))
                .collect::<Result<_, _>>()?,
            next: page.next,
        })
    }

    async fn copy(&self, from: &BlobKey, to: &BlobKey) -> Result<(), PortError> {
        self.inner.copy(&self.key(from)?, &self.key(to)?).await
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), PortError> {
        self.inner.delete(&self.key(key)?).await
    }

    // A view adds no buffering of its own: the store under it decides.
    async fn flush(&self) -> Result<(), PortError> {
        self.inner.flush().await
    }
}

//! The ledger of school lists taken in: one record per content (`PK=UPLOAD#<sha256>`), so
//! the same list taken in twice changes nothing the second time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{PortError, SchoolCode};

/// One school list taken in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Lower-case hex SHA-256 of the file's bytes: the record's identity.
    pub sha256: String,
    /// The list's name (the file name, or the S3 key). A later list of the same name is a
    /// new version of it, which is how removed schools are found.
    pub name: String,
    /// When it was taken in.
    pub taken_at: DateTime<Utc>,
    /// Rows accepted.
    pub accepted: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// The schools it accepted, in plan order.
    pub codes: Vec<SchoolCode>,
}

/// Where uploads are recorded: the state store, beside the instances they registered.
#[async_trait]
pub trait UploadLedger: Send + Sync {
    /// Records an upload, once per SHA-256: `Ok(true)` if recorded now, `Ok(false)` if that
    /// content was recorded before (and nothing changed). It also becomes the latest upload
    /// of its name.
    async fn record_upload(&self, upload: &UploadRecord) -> Result<bool, PortError>;

    /// The upload with this SHA-256, if recorded.
    async fn upload(&self, sha256: &str) -> Result<Option<UploadRecord>, PortError>;

    /// The upload of this name recorded last, if any.
    async fn latest_upload(&self, name: &str) -> Result<Option<UploadRecord>, PortError>;
}

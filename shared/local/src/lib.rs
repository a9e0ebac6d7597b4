//! The embedded adapters of the A2A ports: everything the `a2a` CLI needs to run the
//! workflows on one machine, with no server, account or network.
//!
//! * [`SqliteStore`] — the [`a2a_core::InstanceStore`] in one SQLite file, laid out like
//!   the DynamoDB single table (instances, their events, a status × wave#code index).
//! * [`FsBlob`] — the [`a2a_core::BlobStore`] over a local folder, with atomic writes.
//! * [`MemQueue`] — the [`a2a_core::WorkQueue`] in process memory, with visibility
//!   timeouts and a dead-letter list like SQS.
//! * [`FileSecrets`] — the [`a2a_core::SecretStore`] in a private folder (files 0600).
//! * [`AslWorkflows`] — the [`a2a_core::Workflows`] port: the state machines on the local
//!   ASL engine, each Lambda task handed to a callback (the CLI makes it the in-process
//!   step), each activity task to [`MemActivities`].
//! * [`MemActivities`] — the [`a2a_core::Activities`] port in process memory: the loopback
//!   through which the local engine's activity tasks reach the same worker loop as Step
//!   Functions' do (`a2a_steps::worker`).
//!
//! Blocking work (SQLite, file I/O) runs on `tokio::task::spawn_blocking`.

#![warn(missing_docs)]

mod activities;
mod fsblob;
mod memqueue;
mod secrets;
mod sqlite;
pub mod workflows;

pub use activities::MemActivities;
pub use fsblob::FsBlob;
pub use memqueue::MemQueue;
pub use secrets::FileSecrets;
pub use sqlite::SqliteStore;
pub use workflows::{AslWorkflows, TaskError};

use a2a_core::PortError;

/// Runs blocking work off the async threads. A panic inside is reported, not propagated.
async fn blocking<T, F>(what: &'static str, f: F) -> Result<T, PortError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, PortError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(PortError::Backend(format!(
            "{what}: background task failed: {e}"
        ))),
    }
}

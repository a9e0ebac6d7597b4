//! The `Snapshots` port: a snapshot of the target databases before a wave starts, so that
//! a wave gone wrong can be undone to the state before it.

use async_trait::async_trait;

use crate::PortError;

/// How a snapshot stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotState {
    /// Being made: the wave waits.
    Creating,
    /// Made: the wave may start.
    Available,
    /// It cannot be made, or it broke; the reason, for the operator.
    Failed(String),
}

/// Makes snapshots of the target databases (an RDS cluster snapshot in AWS).
#[async_trait]
pub trait Snapshots: Send + Sync {
    /// Makes sure the snapshot `id` exists, starting it if it does not (idempotent by id:
    /// a second call never makes a second snapshot), and says how it stands.
    async fn ensure(&self, id: &str) -> Result<SnapshotState, PortError>;
}

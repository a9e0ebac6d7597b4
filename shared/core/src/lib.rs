//! The A2A domain: school codes, instances and their legal status moves, step events, and
//! the ports (traits) every adapter implements.
//!
//! This crate knows nothing of AWS or SQL. Adapters live in `a2a-local` (embedded) and
//! `a2a-aws`; the step code and the entry points depend on the ports here, never on an
//! adapter's concrete type.

#![warn(missing_docs)]

pub mod clock;
mod code;
mod event;
mod instance;
mod locator;
pub mod ports;
mod secret;
mod snapshot;
mod upload;
mod window;

pub use code::{CodeError, Province, SchoolCode};
pub use event::{Outcome, StepEvent};
pub use instance::{
    Endpoint, Instance, InstanceKind, Status, TransitionError, Wave, execution_name,
    execution_name_of,
};
pub use locator::{Locator, percent_decode};
pub use ports::{
    Activities, ActivityTask, BlobKey, BlobMeta, BlobStore, ExecutionInfo, ExecutionStatus,
    InstanceStore, KeyError, ListFilter, Message, Page, PortError, PortResult, StartOutcome,
    SumAlgo, WorkQueue, Workflows, list_all,
};
pub use secret::{Secret, SecretName, SecretStore};
pub use snapshot::{SnapshotState, Snapshots};
pub use upload::{UploadLedger, UploadRecord};
pub use window::{Night, Window, WindowError};

//! The fan-out, against the ports only: the [`Dispatcher`] (one queue message, one workflow
//! execution, under a cap on executions in flight) and the scheduler [`tick`] (migration
//! windows, the nightly quota, retries with back-off, reconciliation of executions that
//! ended or got stuck).
//!
//! Time is always a parameter (`now`), so tests and the local runner drive a virtual clock.
//! The SQS Lambda, the EventBridge Lambda and `a2a tick` are thin shells over this crate.

#![warn(missing_docs)]

mod dispatch;
mod drive;
mod message;
mod tick;

pub use dispatch::{
    Delivery, DispatchReport, Dispatched, Dispatcher, START_STEP, in_flight, record_start,
};
pub use drive::{
    ClockMode, NightReport, Progress, RESUME_STEP, RunReport, Runner, executions, peak,
};
pub use message::{BadMessage, StartMessage};
pub use tick::{
    CLEANUP_STEP, ENQUEUE_STEP, MAX_CLEANUPS, OPERATOR_CANCEL_STEP, OPERATOR_RETRY_STEP, Policy,
    RECONCILE_STEP, RETRY_STEP, TickReport, cancel_now, retry_now, snapshot_id, tick, tick_with,
};

use a2a_core::Status;

/// The statuses of an instance whose workflow execution is still going: it holds a
/// database clone or import slot until it ends, so the cap counts all of them.
pub const IN_FLIGHT: [Status; 4] = [
    Status::Running,
    Status::Migrated,
    Status::Provisioned,
    Status::Verified,
];

/// Reads a list of windows separated by `;`, as the Lambdas take them from the
/// environment (`Mon-Fri 21:00-06:00 Europe/Madrid; Sat 08:00-20:00 Europe/Madrid`).
pub fn parse_windows(text: &str) -> Result<Vec<a2a_core::Window>, a2a_core::WindowError> {
    text.split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(a2a_core::Window::parse)
        .collect()
}

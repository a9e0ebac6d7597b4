//! The stack rehearsal: what A2A adds to an AWS emulator so that the deployed shape runs on
//! one machine. So far, a Step Functions endpoint on the local ASL engine ([`Endpoint`]):
//! AWS JSON 1.0 on 127.0.0.1, with the execution calls (`StartExecution`,
//! `DescribeExecution`, `StopExecution`, `ListExecutions`, `GetExecutionHistory`,
//! `ListStateMachines`, `ListActivities`) and the activity calls (`GetActivityTask`,
//! `SendTaskHeartbeat`, `SendTaskSuccess`, `SendTaskFailure`), so that `aws-sdk-sfn` (the
//! project's `SfnWorkflows` and `SfnActivities`) works against it unchanged. The AWS CLI
//! speaks the same protocol; it is not tested here.
//!
//! The state machines run on an [`a2a_local::AslWorkflows`] whose activity tasks go to a
//! [`a2a_local::MemActivities`]; this crate serves both over HTTP and knows no step: the
//! caller builds the engine with its task callback (the CLI's is the in-process step).
//!
//! [`functions`] runs each Lambda of the template as its real binary behind the Lambda
//! Runtime API of [`runtime`] (the project's one implementation of it, which the
//! functions' tests reach through `a2a_testkit::lambda`), as Lambda runs it.

#![warn(missing_docs)]

mod engine;
pub mod events;
pub mod functions;
mod http;
pub mod iam;
pub mod machines;
mod protocol;
pub mod runtime;
pub mod shape;
pub mod template;

pub use engine::{Engine, MachineArns};
pub use functions::{FunctionSpec, Functions, InvokeError};
pub use protocol::Endpoint;

/// The region and account of the ARNs this endpoint makes; the local engine's activity
/// ARNs (`a2a_local::workflows::activity_arn`) use the same.
pub const REGION: &str = "eu-west-1";
/// See [`REGION`].
pub const ACCOUNT: &str = "000000000000";

#[cfg(test)]
mod tests;

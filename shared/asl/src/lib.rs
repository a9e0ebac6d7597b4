//! An interpreter of the Amazon States Language, so that `statemachines/*.asl.json` run on
//! one machine exactly as Step Functions runs them in AWS.
//!
//! Pure on purpose: no AWS SDK and no database driver. Task states reach their code through
//! a [`TaskResolver`]; time comes from a [`Clock`], real or virtual.

#![warn(missing_docs)]

pub mod choice;
pub mod clock;
pub mod definition;
pub mod engine;
pub mod error;
pub mod history;
pub mod intrinsic;
pub mod mock;
pub mod path;
pub mod task;

pub use clock::{Clock, RealClock, VirtualClock};
pub use definition::StateMachine;
pub use engine::{Execution, ExecutionOptions, Outcome, Status};
pub use error::{DefinitionError, LoadError, StateError};
pub use history::HistoryEvent;
pub use mock::{MockCase, MockConfig, MockError};
pub use task::{
    FnHandler, Handlers, TaskContext, TaskError, TaskHandler, TaskResolver, TaskTarget,
};

#[cfg(test)]
mod engine_tests;

//! The two kinds of error: a definition that cannot run, and an ASL error raised while
//! running (an error name and a cause, as Step Functions reports them).

use std::fmt;

/// One problem in a definition: where (the state, the field) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// The state, as a path through nested branches (`Map/Inner`); `None` for the top level.
    pub state: Option<String>,
    /// The offending field (`Next`, `Retry[1].ErrorEquals`, ...).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            Some(s) => write!(
                f,
                "state \"{s}\", field \"{}\": {}",
                self.field, self.message
            ),
            None => write!(f, "top level, field \"{}\": {}", self.field, self.message),
        }
    }
}

/// Why a definition could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The text is not JSON.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// The JSON is not a valid state machine; every problem found is listed.
    #[error("{}", list(.0))]
    Invalid(Vec<DefinitionError>),
}

impl LoadError {
    /// The individual problems (one for a JSON syntax error).
    pub fn problems(&self) -> Vec<String> {
        match self {
            Self::Json(m) => vec![format!("not valid JSON: {m}")],
            Self::Invalid(v) => v.iter().map(ToString::to_string).collect(),
        }
    }
}

fn list(v: &[DefinitionError]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The predefined error names of the States language.
pub mod names {
    /// Matches any error name except the terminal ones.
    pub const ALL: &str = "States.ALL";
    /// A task failed; as a matcher, any error except `States.Timeout`.
    pub const TASK_FAILED: &str = "States.TaskFailed";
    /// A task or the execution ran longer than its timeout.
    pub const TIMEOUT: &str = "States.Timeout";
    /// A task sent no heartbeat for longer than `HeartbeatSeconds`.
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    /// An error the interpreter could not process (a missing path, a wrong type).
    pub const RUNTIME: &str = "States.Runtime";
    /// A branch of a Parallel or Map failed.
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    /// No Choice rule matched and there is no `Default`.
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    /// An intrinsic function failed.
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    /// `ResultPath` could not be applied to the state's input.
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    /// A `Parameters` path could not be applied.
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    /// Not permitted to run the task.
    pub const PERMISSIONS: &str = "States.Permissions";
    /// A result larger than Step Functions allows.
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    /// Every predefined name, for validating `ErrorEquals`.
    pub const KNOWN: &[&str] = &[
        ALL,
        TASK_FAILED,
        TIMEOUT,
        HEARTBEAT_TIMEOUT,
        RUNTIME,
        BRANCH_FAILED,
        NO_CHOICE_MATCHED,
        INTRINSIC_FAILURE,
        RESULT_PATH_MATCH_FAILURE,
        PARAMETER_PATH_FAILURE,
        PERMISSIONS,
        DATA_LIMIT_EXCEEDED,
        "States.ExceedToleratedFailureThreshold",
        "States.ItemReaderFailed",
        "States.ResultWriterFailed",
        "States.QueryEvaluationError",
    ];
}

/// An error raised while an execution runs: what Retry and Catch match, and what a failed
/// execution reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct StateError {
    /// The error name (`States.Timeout`, `Lambda.ServiceException`, a custom name).
    pub error: String,
    /// A human-readable cause.
    pub cause: String,
}

impl StateError {
    /// An error with a name and a cause.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }

    /// A `States.Runtime` error.
    pub fn runtime(cause: impl Into<String>) -> Self {
        Self::new(names::RUNTIME, cause)
    }

    /// A `States.IntrinsicFailure` error.
    pub fn intrinsic(cause: impl Into<String>) -> Self {
        Self::new(names::INTRINSIC_FAILURE, cause)
    }

    /// Terminal errors fail the execution: no Retry or Catch applies to them.
    pub fn is_terminal(&self) -> bool {
        self.error == names::RUNTIME || self.error == names::DATA_LIMIT_EXCEEDED
    }

    /// Whether an `ErrorEquals` entry matches this error.
    pub fn matches(&self, name: &str) -> bool {
        if self.is_terminal() {
            return false;
        }
        match name {
            names::ALL => true,
            names::TASK_FAILED => self.error != names::TIMEOUT,
            other => other == self.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_follows_the_predefined_wildcards() {
        let custom = StateError::new("Export.Failed", "x");
        assert!(custom.matches("States.ALL"));
        assert!(custom.matches("States.TaskFailed"));
        assert!(custom.matches("Export.Failed"));
        assert!(!custom.matches("Other"));
        let timeout = StateError::new(names::TIMEOUT, "x");
        assert!(!timeout.matches("States.TaskFailed"));
        assert!(timeout.matches("States.ALL"));
        let runtime = StateError::runtime("x");
        assert!(!runtime.matches("States.ALL"));
        assert!(!runtime.matches("States.Runtime"));
    }
}

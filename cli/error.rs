//! What the CLI tells the operator when something goes wrong, and the exit code for it.

use std::process::ExitCode;

use a2a_core::PortError;

/// How a command that ran to its end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done (exit 0).
    Ok,
    /// The work ran, but an instance failed or did not verify (exit 1).
    Failed,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
        }
    }
}

/// What a command gives: how it came out, or why it could not do its work.
pub type CliResult = Result<Outcome, CliError>;

/// A command that could not do its work. Each variant is one exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input or usage; nothing was changed (exit 2).
    #[error("{message}")]
    Input {
        /// What is wrong, and where.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The environment: a database, AWS or the disk could not be reached (exit 3).
    #[error("{message}")]
    Environment {
        /// What could not be reached.
        message: String,
        /// What to check.
        hint: Option<String>,
    },
    /// The work itself failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// A bad-input error with a hint.
    pub fn input(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Input {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// An environment error with a hint.
    pub fn environment(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Environment {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Failed(_) => 1,
            Self::Input { .. } => 2,
            Self::Environment { .. } => 3,
        }
    }

    /// What to do about it, if there is something to say.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Self::Input { hint, .. } | Self::Environment { hint, .. } => hint.as_deref(),
            Self::Failed(_) => None,
        }
    }

    /// Wraps a port error, saying which backend it came from.
    pub fn from_port(backend: &str, e: PortError) -> Self {
        let message = format!("{backend}: {e}");
        match e {
            PortError::Invalid(_) => Self::Input {
                message,
                hint: None,
            },
            // The adapters' messages already say what to check.
            PortError::Unavailable(_) | PortError::Backend(_) => Self::Environment {
                message,
                hint: None,
            },
            PortError::Conflict(_) | PortError::NotFound(_) | PortError::Corrupt(_) => {
                Self::Failed(message)
            }
        }
    }
}

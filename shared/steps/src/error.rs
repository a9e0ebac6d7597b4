//! Step errors, split the way the state machines act on them: transient ones are retried
//! (`A2A.Transient`), permanent ones are caught and rolled back (`A2A.Permanent…`).

use a2a_core::{PortError, TransitionError};
use a2a_dbmove::DbError;
use a2a_files::FilesError;

/// The error name a state machine retries.
pub const TRANSIENT: &str = "A2A.Transient";
/// A permanent error without a more precise name.
pub const PERMANENT: &str = "A2A.Permanent";
/// A permanent error of the input: a bad school code, a missing source, an illegal move.
pub const PERMANENT_INPUT: &str = "A2A.Permanent.Input";
/// A permanent error of a check: a checksum or a manifest that does not match.
pub const PERMANENT_VERIFY: &str = "A2A.Permanent.Verify";
/// A start refused because the school is active, or another execution works on it: the
/// state machines end such a run at once, without a rollback (it changed nothing, and
/// what there is belongs to the other run).
pub const DUPLICATE: &str = "A2A.Duplicate";

/// Why a step failed. The message never holds a secret: locators print redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Worth retrying as is: a network timeout, throttling, a deadlock, a lost race.
    #[error("{0}")]
    Transient(String),
    /// The input is wrong and stays wrong: a bad code, a missing source, an illegal move.
    #[error("{0}")]
    Input(String),
    /// A check found a difference.
    #[error("{0}")]
    Verify(String),
    /// Any other failure that a retry would not mend.
    #[error("{0}")]
    Permanent(String),
    /// A start of a school that is active, or that another execution is working on.
    #[error("{0}")]
    Duplicate(String),
}

impl StepError {
    /// The error name that Retry and Catch match (a Lambda's `errorType`).
    pub fn name(&self) -> &'static str {
        match self {
            StepError::Transient(_) => TRANSIENT,
            StepError::Input(_) => PERMANENT_INPUT,
            StepError::Verify(_) => PERMANENT_VERIFY,
            StepError::Permanent(_) => PERMANENT,
            StepError::Duplicate(_) => DUPLICATE,
        }
    }

    /// Whether the state machine retries it.
    pub fn is_transient(&self) -> bool {
        matches!(self, StepError::Transient(_))
    }
}

impl From<PortError> for StepError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::Conflict(_) | PortError::Unavailable(_) => {
                StepError::Transient(e.to_string())
            }
            PortError::NotFound(_) | PortError::Invalid(_) => StepError::Input(e.to_string()),
            PortError::Corrupt(_) => StepError::Verify(e.to_string()),
            PortError::Backend(_) => StepError::Permanent(e.to_string()),
        }
    }
}

impl From<DbError> for StepError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unreachable(m) => StepError::Transient(m),
            // A query failure may be a deadlock or a lock timeout: those are worth a retry.
            DbError::Backend(m) if looks_transient(&m) => StepError::Transient(m),
            DbError::Backend(m) => StepError::Permanent(m),
            DbError::Stage(p) => p.into(),
            DbError::Corrupt(m) => StepError::Verify(m),
            e @ (DbError::Input(_) | DbError::Unmappable { .. } | DbError::NotEmpty(_)) => {
                StepError::Input(e.to_string())
            }
        }
    }
}

impl From<FilesError> for StepError {
    fn from(e: FilesError) -> Self {
        match e {
            FilesError::Source { .. } => StepError::Input(e.to_string()),
            FilesError::Store { ref source, .. } => {
                let kind: StepError = match source {
                    PortError::Conflict(_) => StepError::Transient(String::new()),
                    PortError::Unavailable(_) => StepError::Transient(String::new()),
                    PortError::NotFound(_) | PortError::Invalid(_) => {
                        StepError::Input(String::new())
                    }
                    PortError::Corrupt(_) => StepError::Verify(String::new()),
                    PortError::Backend(_) => StepError::Permanent(String::new()),
                };
                kind.with_message(e.to_string())
            }
        }
    }
}

/// A key that a configured name (a shard, a site address) cannot make.
impl From<a2a_core::KeyError> for StepError {
    fn from(e: a2a_core::KeyError) -> Self {
        StepError::Input(e.to_string())
    }
}

impl From<TransitionError> for StepError {
    fn from(e: TransitionError) -> Self {
        StepError::Input(e.to_string())
    }
}

impl StepError {
    /// The same error (its kind, and so whether it is retried, kept), its message after
    /// `what`: where it happened.
    pub(crate) fn within(self, what: &str) -> Self {
        let m = format!("{what}: {self}");
        self.with_message(m)
    }

    fn with_message(self, m: String) -> Self {
        match self {
            StepError::Transient(_) => StepError::Transient(m),
            StepError::Input(_) => StepError::Input(m),
            StepError::Verify(_) => StepError::Verify(m),
            StepError::Permanent(_) => StepError::Permanent(m),
            StepError::Duplicate(_) => StepError::Duplicate(m),
        }
    }
}

/// Driver messages of the failures a retry can mend.
fn looks_transient(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    [
        "deadlock",
        "lock wait timeout",
        "database is locked",
        "timed out",
        "timeout",
        "connection reset",
        "too many connections",
        "could not serialize",
        // PostgreSQL: a template being cloned must have no other session for a moment.
        "is being accessed by other users",
    ]
    .iter()
    .any(|w| m.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_transient_from_permanent() {
        let t: StepError = DbError::Unreachable("x".into()).into();
        assert_eq!(t.name(), TRANSIENT);
        let t: StepError = DbError::Backend("Deadlock found when trying".into()).into();
        assert!(t.is_transient());
        let p: StepError = DbError::Backend("syntax error".into()).into();
        assert_eq!(p.name(), PERMANENT);
        let c: StepError = PortError::Conflict("v".into()).into();
        assert!(c.is_transient());
        let i: StepError = PortError::NotFound("x".into()).into();
        assert_eq!(i.name(), PERMANENT_INPUT);
    }
}

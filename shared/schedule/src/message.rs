//! The queue message between the scheduler and the dispatcher.

use a2a_core::SchoolCode;
use serde::{Deserialize, Serialize};

/// "Start attempt `attempt` of this school": the body of one fan-out message, as JSON
/// `{"school_code": "08012345", "attempt": 1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartMessage {
    /// The school.
    pub school_code: SchoolCode,
    /// The run it asks for, from 1: the instance's `attempt` once it runs.
    pub attempt: u32,
}

/// Why a message body is not a [`StartMessage`]. It goes to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed start message: {0}")]
pub struct BadMessage(pub String);

impl StartMessage {
    /// Parses a body. The reason quotes at most the first 200 characters of it.
    pub fn parse(body: &str) -> Result<Self, BadMessage> {
        let m: StartMessage = serde_json::from_str(body).map_err(|e| {
            let shown: String = body.chars().take(200).collect();
            BadMessage(format!(
                "{e}; expected {{\"school_code\": \"08012345\", \"attempt\": 1}}, got {shown:?}"
            ))
        })?;
        if m.attempt == 0 {
            return Err(BadMessage(format!(
                "school {}: attempt 0; attempts count from 1",
                m.school_code
            )));
        }
        Ok(m)
    }

    /// The JSON body.
    pub fn to_body(&self) -> String {
        serde_json::json!({"school_code": self.school_code, "attempt": self.attempt}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_bad_ones_say_why() {
        let m = StartMessage {
            school_code: SchoolCode::parse("08012345").unwrap(),
            attempt: 2,
        };
        assert_eq!(StartMessage::parse(&m.to_body()).unwrap(), m);
        for (body, why) in [
            ("not json", "expected"),
            (r#"{"school_code": "0801234X", "attempt": 1}"#, "0801234X"),
            (r#"{"school_code": "08012345"}"#, "attempt"),
            (r#"{"school_code": "08012345", "attempt": 0}"#, "attempt 0"),
            (r#"{"school_code": "08012345", "attempt": 1, "x": 1}"#, "x"),
        ] {
            let e = StartMessage::parse(body).unwrap_err().to_string();
            assert!(e.contains(why), "{body}: {e}");
        }
    }
}

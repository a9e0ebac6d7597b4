use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a step ended, or that it has started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The step has begun; an end event follows.
    Started,
    /// The step finished its work.
    Succeeded,
    /// The step gave up; `error` says why.
    Failed,
}

/// One entry of an instance's step history: a step's start or its end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepEvent {
    /// The step's name, as in the state machine (`export-database`).
    pub step: String,
    /// When the step began.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` on a start event.
    pub ended_at: Option<DateTime<Utc>>,
    /// Started, succeeded or failed.
    pub outcome: Outcome,
    /// Rows the step moved or checked, where it counts rows.
    pub rows: Option<u64>,
    /// Bytes the step moved or checked, where it counts bytes.
    pub bytes: Option<u64>,
    /// What went wrong, on a failure. Never holds a secret.
    pub error: Option<String>,
}

impl StepEvent {
    /// A start event.
    pub fn started(step: impl Into<String>, at: DateTime<Utc>) -> Self {
        Self {
            step: step.into(),
            started_at: at,
            ended_at: None,
            outcome: Outcome::Started,
            rows: None,
            bytes: None,
            error: None,
        }
    }

    /// The time the event happened: its end, or its start for a start event.
    pub fn at(&self) -> DateTime<Utc> {
        self.ended_at.unwrap_or(self.started_at)
    }

    /// A sort key that orders a history by time, then step, then outcome. Fixed-width
    /// nanoseconds make the text order the time order.
    pub fn sort_key(&self) -> String {
        let outcome = match self.outcome {
            Outcome::Started => "0-started",
            Outcome::Succeeded => "1-succeeded",
            Outcome::Failed => "1-failed",
        };
        format!(
            "{}#{}#{}",
            self.at().format("%Y-%m-%dT%H:%M:%S%.9fZ"),
            self.step,
            outcome
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sort_key_orders_by_time_even_across_digit_counts() {
        let a = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let b = a + chrono::Duration::nanoseconds(5);
        let c = a + chrono::Duration::seconds(10);
        let keys: Vec<String> = [a, b, c]
            .iter()
            .map(|t| StepEvent::started("x", *t).sort_key())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}

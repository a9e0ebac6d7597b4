//! Execution history: the events GetExecutionHistory lists, with AWS's event type names.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// One history event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    /// 1, 2, 3... in the order recorded.
    pub id: u64,
    /// The event this one follows (0 for the first).
    pub previous_event_id: u64,
    /// When it happened (on the execution's clock).
    pub timestamp: DateTime<Utc>,
    /// The AWS event type (`TaskStateEntered`, `LambdaFunctionSucceeded`, ...).
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// The details object, under AWS's key for it (`stateEnteredEventDetails`, ...).
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl HistoryEvent {
    /// The state name in the details, when the event has one.
    pub fn state_name(&self) -> Option<&str> {
        self.details
            .values()
            .find_map(|d| d.get("name").and_then(Value::as_str))
    }
}

/// The recorder, shared by every branch of one execution.
#[derive(Debug, Default)]
pub(crate) struct History {
    enabled: bool,
    events: Mutex<Vec<HistoryEvent>>,
}

impl History {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            events: Mutex::new(Vec::new()),
        }
    }

    /// Records an event after `prev` and returns its id (0 when recording is off).
    pub(crate) fn record(
        &self,
        prev: u64,
        at: DateTime<Utc>,
        event_type: &'static str,
        details: Option<(&'static str, Value)>,
    ) -> u64 {
        if !self.enabled {
            return 0;
        }
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let id = events.len() as u64 + 1;
        let mut map = Map::new();
        if let Some((k, v)) = details {
            map.insert(k.to_owned(), v);
        }
        events.push(HistoryEvent {
            id,
            previous_event_id: prev,
            timestamp: at,
            event_type,
            details: map,
        });
        id
    }

    pub(crate) fn take(&self) -> Vec<HistoryEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

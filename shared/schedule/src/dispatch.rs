//! The dispatcher: one fan-out message in, one workflow execution started, at most once.

use std::sync::Arc;

use a2a_core::{
    Instance, InstanceStore, ListFilter, PortError, SchoolCode, StartOutcome, Status, Window,
    Workflows, execution_name, execution_name_of, list_all,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{IN_FLIGHT, StartMessage};

/// The history event of a started execution: the k-th one of an instance begins its
/// attempt k (`a2a history` groups the steps by it).
pub const START_STEP: &str = "dispatcher.start";

/// Records that an execution of `code` started at `now` ([`START_STEP`]), for every path
/// that starts one. A failure is only logged: the execution runs either way, and only the
/// history's attempt line is lost.
pub async fn record_start(store: &dyn InstanceStore, code: &SchoolCode, now: DateTime<Utc>) {
    if let Err(e) = store
        .record(code, &crate::tick::event(START_STEP, now, None))
        .await
    {
        tracing::warn!(school_code = %code, error = %e, "could not record the start");
    }
}

/// How often a lost versioned save is re-read and tried again before the message is
/// handed back to the queue.
const SAVE_TRIES: usize = 5;

/// One delivered message: its id (SQS `messageId`, or a local receipt) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// What identifies this delivery to the queue (the batch item failure names it).
    pub id: String,
    /// The message body.
    pub body: String,
}

impl From<a2a_core::Message> for Delivery {
    /// A message received from a [`a2a_core::WorkQueue`]: its receipt is its id.
    fn from(m: a2a_core::Message) -> Self {
        Delivery {
            id: m.receipt,
            body: m.body,
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Dispatched {
    /// A new execution was started.
    Started {
        /// The school.
        school_code: SchoolCode,
        /// The execution's id (ARN in AWS).
        execution: String,
    },
    /// The execution of that name exists already: a duplicate message. Done, not a second run.
    Duplicate {
        /// The school.
        school_code: SchoolCode,
        /// The execution's id.
        execution: String,
    },
    /// The message asks for a run the instance is past (it is active, failed, or on
    /// another attempt). Done: nothing to start.
    Stale {
        /// The school.
        school_code: SchoolCode,
        /// Why nothing was started.
        why: String,
    },
    /// Not now: the cap on executions in flight is reached, or no window is open. The
    /// message goes back to the queue and comes again after its visibility timeout.
    Deferred {
        /// The school.
        school_code: SchoolCode,
        /// Why.
        why: String,
    },
    /// The body is not a start message, or names no registered school: for the
    /// dead-letter queue; retrying cannot help.
    Malformed {
        /// Why, for the log and the dead letter.
        reason: String,
    },
    /// The state store or the workflow engine failed: the message goes back to the queue.
    Failed {
        /// The school, when the body was read.
        school_code: Option<SchoolCode>,
        /// What failed.
        error: String,
    },
}

impl Dispatched {
    /// Whether the message must come back later (a batch item failure).
    pub fn retry(&self) -> bool {
        matches!(
            self,
            Dispatched::Deferred { .. } | Dispatched::Failed { .. }
        )
    }
}

/// What one batch did, message by message, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DispatchReport {
    /// Each delivery's id with its outcome.
    pub outcomes: Vec<(String, Dispatched)>,
}

impl DispatchReport {
    /// The ids of the messages that must come back: deferred or failed.
    pub fn retry_ids(&self) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter(|(_, o)| o.retry())
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// The malformed messages' ids and reasons, for the dead-letter queue.
    pub fn malformed(&self) -> Vec<(&str, &str)> {
        self.outcomes
            .iter()
            .filter_map(|(id, o)| match o {
                Dispatched::Malformed { reason } => Some((id.as_str(), reason.as_str())),
                _ => None,
            })
            .collect()
    }

    /// How many messages had this outcome (by variant).
    pub fn count(&self, f: impl Fn(&Dispatched) -> bool) -> usize {
        self.outcomes.iter().filter(|(_, o)| f(o)).count()
    }
}

/// Counts the instances whose execution is in flight (see [`IN_FLIGHT`]), from the store.
pub async fn in_flight(store: &dyn InstanceStore) -> Result<usize, PortError> {
    let mut n = 0;
    for status in IN_FLIGHT {
        let filter = ListFilter {
            status: Some(status),
            wave: None,
        };
        n += list_all(store, filter).await?.len();
    }
    Ok(n)
}

/// Starts workflow executions for start messages, at most `max_running` in flight.
pub struct Dispatcher {
    store: Arc<dyn InstanceStore>,
    workflows: Arc<dyn Workflows>,
    max_running: usize,
    windows: Vec<Window>,
}

impl Dispatcher {
    /// A dispatcher that lets at most `max_running` executions be in flight, counted from
    /// the state store, at any time of day.
    pub fn new(
        store: Arc<dyn InstanceStore>,
        workflows: Arc<dyn Workflows>,
        max_running: usize,
    ) -> Self {
        Self {
            store,
            workflows,
            max_running,
            windows: Vec::new(),
        }
    }

    /// Starts new runs only inside one of `windows`; outside, messages are deferred.
    /// Empty means any time.
    pub fn with_windows(mut self, windows: Vec<Window>) -> Self {
        self.windows = windows;
        self
    }

    /// Handles one batch, message by message. Never fails as a whole: each message has
    /// its own outcome, so one bad message cannot hold back the others.
    pub async fn dispatch(&self, batch: &[Delivery], now: DateTime<Utc>) -> DispatchReport {
        let mut report = DispatchReport::default();
        let open =
            self.windows.is_empty() || self.windows.iter().any(|w| w.night_at(now).is_some());
        // Counted once per batch, then kept up to date by this batch's own starts.
        let mut running = match in_flight(&*self.store).await {
            Ok(n) => Ok(n),
            Err(e) => Err(e.to_string()),
        };
        for d in batch {
            let outcome = self.one(&d.body, open, &mut running, now).await;
            match &outcome {
                Dispatched::Malformed { reason } => {
                    tracing::warn!(
                        message_id = d.id,
                        reason,
                        "malformed message, to the dead-letter queue"
                    );
                }
                Dispatched::Failed { school_code, error } => {
                    let school_code = school_code.as_ref().map(ToString::to_string);
                    tracing::error!(
                        message_id = d.id,
                        school_code,
                        error,
                        "dispatch failed; the message comes back"
                    );
                }
                Dispatched::Started { school_code, .. } => {
                    tracing::info!(message_id = d.id, outcome = ?outcome, "dispatched");
                    record_start(&*self.store, school_code, now).await;
                }
                other => tracing::info!(message_id = d.id, outcome = ?other, "dispatched"),
            }
            report.outcomes.push((d.id.clone(), outcome));
        }
        report
    }

    async fn one(
        &self,
        body: &str,
        open: bool,
        running: &mut Result<usize, String>,
        now: DateTime<Utc>,
    ) -> Dispatched {
        let msg = match StartMessage::parse(body) {
            Ok(m) => m,
            Err(e) => {
                return Dispatched::Malformed {
                    reason: e.to_string(),
                };
            }
        };
        let code = msg.school_code.clone();
        let failed = |e: PortError| Dispatched::Failed {
            school_code: Some(code.clone()),
            error: e.to_string(),
        };
        for _ in 0..SAVE_TRIES {
            let inst = match self.store.get(&code).await {
                Ok(Some(i)) => i,
                Ok(None) => {
                    return Dispatched::Malformed {
                        reason: format!("school {code}: no instance is registered under this code"),
                    };
                }
                Err(e) => return failed(e),
            };
            if IN_FLIGHT.contains(&inst.status) && inst.attempt == msg.attempt {
                let own = execution_name(&code, inst.kind, msg.attempt);
                if let Some(other) = inst
                    .execution
                    .as_deref()
                    .filter(|e| execution_name_of(e) != own && !crate::tick::is_cleanup(e))
                {
                    // A start by hand claimed the school first: a second run would be
                    // refused by its first step.
                    return Dispatched::Stale {
                        school_code: code,
                        why: format!("execution {other} works on attempt {}", msg.attempt),
                    };
                }
                // Already moved to running by an earlier delivery: start is idempotent.
                return self.start(inst, msg.attempt).await;
            }
            if inst.status != Status::Queued || inst.attempt + 1 != msg.attempt {
                return Dispatched::Stale {
                    school_code: code,
                    why: format!(
                        "the instance is {} after {} attempts; the message asks for attempt {}",
                        inst.status, inst.attempt, msg.attempt
                    ),
                };
            }
            if !open {
                return Dispatched::Deferred {
                    school_code: code,
                    why: "no migration window is open".into(),
                };
            }
            let n = match running {
                Ok(n) => *n,
                Err(e) => {
                    return Dispatched::Failed {
                        school_code: Some(code),
                        error: format!("counting the executions in flight: {e}"),
                    };
                }
            };
            if n >= self.max_running {
                return Dispatched::Deferred {
                    school_code: code,
                    why: format!("{n} executions in flight, the cap is {}", self.max_running),
                };
            }
            // Moved to running before the start, so the workflow finds it so; the
            // versioned save makes one of two racing deliveries the one that moves it.
            let mut next = inst.clone();
            if let Err(e) = next.move_to(Status::Running, now) {
                return failed(PortError::Invalid(e.to_string()));
            }
            next.execution = None;
            match self.store.save(&next).await {
                Ok(saved) => {
                    if let Ok(n) = running {
                        *n += 1;
                    }
                    return self.start(saved, msg.attempt).await;
                }
                Err(PortError::Conflict(_)) => continue,
                Err(e) => return failed(e),
            }
        }
        failed(PortError::Conflict(format!(
            "school {code}: the instance kept changing under {SAVE_TRIES} tries"
        )))
    }

    /// Starts the execution of `attempt` and records its id on the instance.
    async fn start(&self, inst: Instance, attempt: u32) -> Dispatched {
        let code = inst.code.clone();
        let name = execution_name(&code, inst.kind, attempt);
        let input = serde_json::json!({"school_code": code, "attempt": attempt});
        let (execution, duplicate) = match self.workflows.start(inst.kind, &name, input).await {
            // Step Functions answers a repeated start of a still-running execution (same
            // name and input) with success and the same ARN, not ExecutionAlreadyExists.
            Ok(StartOutcome::Started(id)) => {
                let seen = inst
                    .execution
                    .as_deref()
                    .is_some_and(|e| execution_name_of(e) == execution_name_of(&id));
                (id, seen)
            }
            Ok(StartOutcome::AlreadyExists(id)) => (id, true),
            Err(e) => {
                return Dispatched::Failed {
                    school_code: Some(code),
                    error: format!("starting {name}: {e}"),
                };
            }
        };
        if let Err(e) = self.note_execution(inst, attempt, &execution).await {
            // The execution runs; the reconciler finds it by the next delivery or tick.
            tracing::warn!(school_code = %code, error = %e, "could not record the execution id");
        }
        if duplicate {
            Dispatched::Duplicate {
                school_code: code,
                execution,
            }
        } else {
            Dispatched::Started {
                school_code: code,
                execution,
            }
        }
    }

    /// Records `execution` on the instance, as the engine names it, unless it moved on
    /// meanwhile or another execution of that attempt is recorded: one a person started by
    /// hand that claimed the school first (this one's first step then refuses as a
    /// duplicate), or a cleanup (reconciliation follows that one; a late duplicate of the
    /// attempt's message must not put the ended execution back). This one's first step
    /// may have recorded it already, by its ARN.
    async fn note_execution(
        &self,
        mut inst: Instance,
        attempt: u32,
        execution: &str,
    ) -> Result<(), PortError> {
        for _ in 0..SAVE_TRIES {
            if !IN_FLIGHT.contains(&inst.status)
                || inst.attempt != attempt
                || inst.execution.as_deref().is_some_and(|e| {
                    e == execution || execution_name_of(e) != execution_name_of(execution)
                })
            {
                return Ok(());
            }
            inst.execution = Some(execution.to_owned());
            match self.store.save(&inst).await {
                Ok(_) => return Ok(()),
                Err(PortError::Conflict(_)) => {
                    inst = self
                        .store
                        .get(&inst.code)
                        .await?
                        .ok_or_else(|| PortError::NotFound(format!("school {}", inst.code)))?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(PortError::Conflict(format!(
            "school {}: the instance kept changing",
            inst.code
        )))
    }
}

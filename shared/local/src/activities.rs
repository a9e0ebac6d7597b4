//! The `Activities` port in process memory: the loopback through which the local engine
//! hands its activity tasks (the source steps) to the same worker loop that serves Step
//! Functions on premises. A Task state's handler [`MemActivities::schedule`]s its input
//! and waits; a worker polls it, heartbeats and answers.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use a2a_asl::TaskError;
use a2a_core::{Activities, ActivityTask, PortError};
use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

type Answer = oneshot::Sender<Result<Value, TaskError>>;
type Beat = Box<dyn Fn() + Send + Sync>;

/// A task handed out or waiting: where its answer goes, and what a heartbeat does.
struct Pending {
    answer: Answer,
    beat: Beat,
}

#[derive(Default)]
struct Inner {
    /// Tasks not yet handed out, by activity ARN: their tokens and inputs.
    queued: HashMap<String, VecDeque<(String, Value)>>,
    /// Every task not yet answered, by token.
    pending: HashMap<String, Pending>,
    next: u64,
}

/// Activity tasks in process memory.
pub struct MemActivities {
    inner: Mutex<Inner>,
    added: Notify,
    wait: Duration,
}

impl MemActivities {
    /// An empty set of activities whose `poll` waits at most `wait` for a task (Step
    /// Functions waits a minute).
    pub fn new(wait: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            added: Notify::new(),
            wait,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Schedules a task of `activity` with `input`, and waits for its answer. `beat` is
    /// called at each heartbeat. Dropping the future abandons the task: a worker's next
    /// heartbeat or answer for it is `NotFound`, as for a task that timed out.
    pub fn schedule(
        &self,
        activity: &str,
        input: Value,
        beat: impl Fn() + Send + Sync + 'static,
    ) -> Pin<Box<dyn Future<Output = Result<Value, TaskError>> + Send + 'static>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.inner();
            inner.next += 1;
            let token = format!(
                "local-{}-{}",
                activity.rsplit(':').next().unwrap_or(""),
                inner.next
            );
            inner.pending.insert(
                token.clone(),
                Pending {
                    answer: tx,
                    beat: Box::new(beat),
                },
            );
            inner
                .queued
                .entry(activity.to_owned())
                .or_default()
                .push_back((token, input));
        }
        self.added.notify_waiters();
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(TaskError::new(
                    "States.TaskFailed",
                    "the local activities were dropped before the task was answered",
                ))
            })
        })
    }

    /// Tasks scheduled and not yet answered (abandoned ones included until a worker
    /// finds them so).
    pub fn unanswered(&self) -> usize {
        self.inner().pending.len()
    }

    /// The next live task of `activity`: tasks abandoned while queued are dropped.
    fn take(&self, activity: &str) -> Option<ActivityTask> {
        let mut inner = self.inner();
        loop {
            let (token, input) = inner.queued.get_mut(activity)?.pop_front()?;
            match inner.pending.get(&token) {
                Some(p) if !p.answer.is_closed() => return Some(ActivityTask { token, input }),
                _ => {
                    inner.pending.remove(&token);
                }
            }
        }
    }

    /// The pending task `token`, removed, unless it was abandoned.
    fn answerable(&self, token: &str) -> Result<Pending, PortError> {
        let p = self.inner().pending.remove(token);
        match p {
            Some(p) if !p.answer.is_closed() => Ok(p),
            _ => Err(gone(token)),
        }
    }
}

fn gone(token: &str) -> PortError {
    PortError::NotFound(format!(
        "activity task {token}: no longer wanted (timed out, or its execution ended)"
    ))
}

#[async_trait]
impl Activities for MemActivities {
    async fn poll(&self, activity: &str, _worker: &str) -> Result<Option<ActivityTask>, PortError> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            // Registered before the queue is read, so a task added in between wakes it.
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(t) = self.take(activity) {
                return Ok(Some(t));
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn heartbeat(&self, token: &str) -> Result<(), PortError> {
        let mut inner = self.inner();
        match inner.pending.get(token) {
            Some(p) if !p.answer.is_closed() => {
                (p.beat)();
                Ok(())
            }
            Some(_) => {
                inner.pending.remove(token);
                Err(gone(token))
            }
            None => Err(gone(token)),
        }
    }

    async fn succeed(&self, token: &str, output: &Value) -> Result<(), PortError> {
        self.answerable(token)?
            .answer
            .send(Ok(output.clone()))
            .map_err(|_| gone(token))
    }

    async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<(), PortError> {
        self.answerable(token)?
            .answer
            .send(Err(TaskError::new(error, cause)))
            .map_err(|_| gone(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ARN: &str = "arn:aws:states:eu-west-1:000000000000:activity:Freeze";

    #[tokio::test]
    async fn a_task_goes_to_a_poller_and_its_answer_comes_back() {
        let acts = Arc::new(MemActivities::new(Duration::from_millis(50)));
        assert_eq!(acts.poll(ARN, "w").await.unwrap(), None, "nothing queued");
        let beats = Arc::new(AtomicUsize::new(0));
        let b = beats.clone();
        let answer =
            tokio::spawn(
                acts.schedule(ARN, json!({"school_code": "08000011"}), move || {
                    b.fetch_add(1, Ordering::SeqCst);
                }),
            );
        let other = "arn:aws:states:eu-west-1:000000000000:activity:Unfreeze";
        assert_eq!(
            acts.poll(other, "w").await.unwrap(),
            None,
            "another activity's"
        );
        let t = acts.poll(ARN, "w").await.unwrap().unwrap();
        assert_eq!(t.input, json!({"school_code": "08000011"}));
        acts.heartbeat(&t.token).await.unwrap();
        acts.heartbeat(&t.token).await.unwrap();
        acts.succeed(&t.token, &json!({"ok": 1})).await.unwrap();
        assert_eq!(answer.await.unwrap().unwrap(), json!({"ok": 1}));
        assert_eq!(beats.load(Ordering::SeqCst), 2);
        // Answered once: the token is spent.
        assert!(matches!(
            acts.fail(&t.token, "A2A.Transient", "x").await,
            Err(PortError::NotFound(_))
        ));
        assert_eq!(acts.unanswered(), 0);
    }

    #[tokio::test]
    async fn a_poll_waits_for_a_task_scheduled_later_and_failures_carry_their_name() {
        let acts = Arc::new(MemActivities::new(Duration::from_secs(5)));
        let a = acts.clone();
        let poller = tokio::spawn(async move { a.poll(ARN, "w").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let answer = acts.schedule(ARN, json!({}), || {});
        let t = poller
            .await
            .unwrap()
            .unwrap()
            .expect("woken by the new task");
        acts.fail(&t.token, "A2A.Permanent.Input", "no such school")
            .await
            .unwrap();
        let e = answer.await.unwrap_err();
        assert_eq!(
            (e.error.as_str(), e.message.as_str()),
            ("A2A.Permanent.Input", "no such school")
        );
    }

    #[tokio::test]
    async fn an_abandoned_task_is_not_found_by_heartbeat_or_answer_nor_handed_out() {
        let acts = MemActivities::new(Duration::from_millis(10));
        let answer = acts.schedule(ARN, json!({"n": 1}), || {});
        let t = acts.poll(ARN, "w").await.unwrap().unwrap();
        drop(answer);
        assert!(matches!(
            acts.heartbeat(&t.token).await,
            Err(PortError::NotFound(_))
        ));
        assert!(matches!(
            acts.succeed(&t.token, &json!({})).await,
            Err(PortError::NotFound(_))
        ));
        // Abandoned while queued: never handed out.
        drop(acts.schedule(ARN, json!({"n": 2}), || {}));
        assert_eq!(acts.poll(ARN, "w").await.unwrap(), None);
        assert_eq!(acts.unanswered(), 0);
    }
}

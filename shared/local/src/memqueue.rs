//! [`MemQueue`]: the work queue in process memory, behaving like an SQS standard queue
//! with a redrive policy.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use a2a_core::{Message, PortError, WorkQueue};
use async_trait::async_trait;

/// The longest visibility timeout SQS takes; longer is refused here too, so that what runs
/// locally also runs in AWS.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// Tells queues apart in receipts, so that a receipt from one queue is refused by another.
static QUEUE_IDS: AtomicU64 = AtomicU64::new(1);

/// The [`WorkQueue`] in process memory.
///
/// A received message is hidden for the visibility timeout and comes back unless deleted.
/// On the receive that would be its `max_receives + 1`-th, it goes to the dead-letter list
/// instead (as SQS's `maxReceiveCount`). Its time is the monotonic clock plus what
/// [`MemQueue::skip`] added.
///
/// Each delivery gets its own receipt. Deleting with the receipt of an earlier delivery,
/// after the message was delivered again, is refused with `PortError::Invalid` and deletes
/// nothing: the later receiver owns the message now. Deleting a message that is already
/// gone is `Ok`.
#[derive(Debug)]
pub struct MemQueue {
    id: u64,
    max_receives: u32,
    state: Mutex<State>,
    /// Nanoseconds [`MemQueue::skip`] moved this queue's clock forward.
    skipped: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Next message number.
    next: u64,
    /// Messages not yet deleted or dead-lettered, by number: lower numbers go first.
    live: BTreeMap<u64, Entry>,
    /// Dead letters, oldest first.
    dead: VecDeque<(u64, Entry)>,
}

#[derive(Debug)]
struct Entry {
    body: String,
    receive_count: u32,
    visible_at: Instant,
}

impl MemQueue {
    /// An empty queue that dead-letters a message after `max_receives` receives (at least
    /// one: 0 is taken as 1, SQS's lowest).
    pub fn new(max_receives: u32) -> MemQueue {
        MemQueue {
            id: QUEUE_IDS.fetch_add(1, Ordering::Relaxed),
            max_receives: max_receives.max(1),
            state: Mutex::new(State::default()),
            skipped: AtomicU64::new(0),
        }
    }

    /// Moves this queue's clock forward by `d`: a message hidden for no longer than that
    /// is visible again, as after a wait of `d`, with no wait. Tests skip time so, rather
    /// than with tokio's paused clock: that needs tokio's `test-util` feature, and a
    /// feature that only tests enable gives the functions' own builds (the stack
    /// rehearsal's) another tokio, and so another build of everything above it.
    pub fn skip(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.skipped.fetch_add(ns, Ordering::Relaxed);
    }

    fn now(&self) -> Instant {
        Instant::now() + Duration::from_nanos(self.skipped.load(Ordering::Relaxed))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is only changed in small steps that cannot panic half-way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `queue.message.delivery`: unique per delivery. Dead letters get delivery 0.
    fn receipt(&self, msg: u64, delivery: u32) -> String {
        format!("{}.{msg}.{delivery}", self.id)
    }

    fn parse_receipt(&self, receipt: &str) -> Result<(u64, u32), PortError> {
        let bad = || PortError::Invalid(format!("{receipt:?} is not a receipt of this queue"));
        let mut parts = receipt.split('.');
        let (Some(q), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        match (q.parse::<u64>(), m.parse::<u64>(), d.parse::<u32>()) {
            (Ok(q), Ok(m), Ok(d)) if q == self.id => Ok((m, d)),
            _ => Err(bad()),
        }
    }
}

#[async_trait]
impl WorkQueue for MemQueue {
    async fn send(&self, bodies: &[String]) -> Result<(), PortError> {
        let now = self.now();
        let mut st = self.state();
        for body in bodies {
            let n = st.next;
            st.next += 1;
            st.live.insert(
                n,
                Entry {
                    body: body.clone(),
                    receive_count: 0,
                    visible_at: now,
                },
            );
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Message>, PortError> {
        if visibility > MAX_VISIBILITY {
            return Err(PortError::Invalid(format!(
                "a visibility timeout of {visibility:?} is longer than the 12 hours SQS allows"
            )));
        }
        let now = self.now();
        let hidden_until = now + visibility;
        let mut st = self.state();
        let mut out = Vec::new();
        let mut to_dead = Vec::new();
        for (&n, e) in st.live.iter_mut() {
            if out.len() >= max {
                break;
            }
            if e.visible_at > now {
                continue;
            }
            if e.receive_count >= self.max_receives {
                to_dead.push(n);
                continue;
            }
            e.receive_count += 1;
            e.visible_at = hidden_until;
            out.push(Message {
                body: e.body.clone(),
                receipt: self.receipt(n, e.receive_count),
                receive_count: e.receive_count,
            });
        }
        for n in to_dead {
            if let Some(e) = st.live.remove(&n) {
                st.dead.push_back((n, e));
            }
        }
        Ok(out)
    }

    async fn delete(&self, receipt: &str) -> Result<(), PortError> {
        let (n, delivery) = self.parse_receipt(receipt)?;
        let mut st = self.state();
        if n >= st.next {
            return Err(PortError::Invalid(format!(
                "{receipt:?} names a message this queue never had"
            )));
        }
        let Some(e) = st.live.get(&n) else {
            if st.dead.iter().any(|(d, _)| *d == n) {
                return Err(PortError::Invalid(format!(
                    "receipt {receipt:?}: the message went to the dead-letter queue"
                )));
            }
            // Already deleted: deleting twice is fine.
            return Ok(());
        };
        if delivery != e.receive_count {
            return Err(PortError::Invalid(format!(
                "receipt {receipt:?} is stale: the message was delivered again since \
                 (receive {}), and only the latest receipt deletes it",
                e.receive_count
            )));
        }
        st.live.remove(&n);
        Ok(())
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<Message>, PortError> {
        let mut st = self.state();
        let take = max.min(st.dead.len());
        Ok(st
            .dead
            .drain(..take)
            .map(|(n, e)| Message {
                body: e.body,
                receipt: self.receipt(n, 0),
                receive_count: e.receive_count,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    async fn send(q: &MemQueue, bodies: &[&str]) {
        let bodies: Vec<String> = bodies.iter().map(|s| s.to_string()).collect();
        q.send(&bodies).await.unwrap();
    }

    #[tokio::test]
    async fn a_stale_receipt_does_not_delete_a_redelivered_message() {
        let q = MemQueue::new(5);
        send(&q, &["m"]).await;
        let first = q.receive(10, SEC).await.unwrap().remove(0);
        q.skip(2 * SEC);
        let second = q.receive(10, SEC).await.unwrap().remove(0);
        assert_ne!(first.receipt, second.receipt);
        assert_eq!(second.receive_count, 2);

        assert!(matches!(
            q.delete(&first.receipt).await,
            Err(PortError::Invalid(m)) if m.contains("stale")
        ));
        q.skip(2 * SEC);
        let third = q.receive(10, SEC).await.unwrap();
        assert_eq!(third.len(), 1, "the stale delete removed nothing");
        assert_eq!(third[0].receive_count, 3);

        // The latest receipt works even after its visibility ran out, and twice is fine.
        q.skip(2 * SEC);
        q.delete(&third[0].receipt).await.unwrap();
        q.delete(&third[0].receipt).await.unwrap();
        q.skip(2 * SEC);
        assert!(q.receive(10, SEC).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn foreign_and_malformed_receipts_are_invalid() {
        let a = MemQueue::new(3);
        let b = MemQueue::new(3);
        send(&a, &["x"]).await;
        send(&b, &["y"]).await;
        let from_a = a.receive(1, SEC).await.unwrap().remove(0);
        for r in [from_a.receipt.as_str(), "", "1.2", "x.y.z", "1.2.3.4"] {
            assert!(
                matches!(b.delete(r).await, Err(PortError::Invalid(_))),
                "{r:?} must be refused"
            );
        }
        let unknown = format!("{}.99.1", a.id);
        assert!(matches!(
            a.delete(&unknown).await,
            Err(PortError::Invalid(_))
        ));
        a.delete(&from_a.receipt).await.unwrap();
    }

    #[tokio::test]
    async fn dead_letters_keep_order_count_and_are_taken_once() {
        let q = MemQueue::new(1);
        send(&q, &["a", "b", "c"]).await;
        let got = q.receive(10, SEC).await.unwrap();
        assert_eq!(got.len(), 3);
        q.skip(2 * SEC);
        assert!(q.receive(10, SEC).await.unwrap().is_empty());
        // A receipt of a dead-lettered message deletes nothing.
        assert!(matches!(
            q.delete(&got[0].receipt).await,
            Err(PortError::Invalid(_))
        ));
        let dead = q.dead_letters(2).await.unwrap();
        assert_eq!(
            dead.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(dead.iter().all(|m| m.receive_count == 1));
        let rest = q.dead_letters(10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].body, "c");
        assert!(q.dead_letters(10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn visibility_beyond_twelve_hours_is_refused() {
        let q = MemQueue::new(2);
        assert!(matches!(
            q.receive(1, MAX_VISIBILITY + SEC).await,
            Err(PortError::Invalid(_))
        ));
        assert!(q.receive(1, MAX_VISIBILITY).await.unwrap().is_empty());
        assert!(q.receive(0, SEC).await.unwrap().is_empty());
    }
}

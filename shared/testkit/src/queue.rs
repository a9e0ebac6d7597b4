//! The `WorkQueue` conformance suite. Every queue under test is made so that a message
//! goes to the dead-letter queue after [`DEAD_LETTER_AFTER`] receives.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use a2a_core::{Message, WorkQueue};

/// Receives after which a message is dead-lettered, in every queue the suite is given.
pub const DEAD_LETTER_AFTER: u32 = 2;

const VISIBLE: Duration = Duration::from_secs(30);
const BRIEF: Duration = Duration::from_secs(1);

/// Receives until `want` messages came or five seconds passed.
async fn take(q: &dyn WorkQueue, want: usize, visibility: Duration) -> Vec<Message> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let batch = q.receive(want - got.len(), visibility).await.unwrap();
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        got.extend(batch);
    }
    got
}

/// 25 messages (more than one SQS batch) are sent, each received once, then deleted.
pub async fn send_receive_delete(q: Arc<dyn WorkQueue>) {
    let bodies: Vec<String> = (0..25)
        .map(|i| format!(r#"{{"school_code":"08{i:06}","attempt":1}}"#))
        .collect();
    q.send(&bodies).await.unwrap();
    let got = take(&*q, 25, VISIBLE).await;
    let got_bodies: BTreeSet<_> = got.iter().map(|m| m.body.clone()).collect();
    assert_eq!(got_bodies, bodies.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(got.len(), 25, "each message once");
    assert!(got.iter().all(|m| m.receive_count == 1));
    for m in &got {
        q.delete(&m.receipt).await.unwrap();
    }
    assert!(q.receive(10, VISIBLE).await.unwrap().is_empty());
    q.send(&[]).await.expect("sending nothing is fine");
}

/// A received message is hidden for its visibility timeout, then comes back.
pub async fn visibility_timeout_redelivers(q: Arc<dyn WorkQueue>) {
    q.send(&["only".to_owned()]).await.unwrap();
    let first = take(&*q, 1, BRIEF).await;
    assert_eq!(first.len(), 1);
    assert!(
        q.receive(1, BRIEF).await.unwrap().is_empty(),
        "hidden while visible"
    );
    tokio::time::sleep(BRIEF + Duration::from_millis(300)).await;
    let again = take(&*q, 1, VISIBLE).await;
    assert_eq!(again.len(), 1, "redelivered after the timeout");
    assert_eq!(again[0].body, "only");
    assert_eq!(again[0].receive_count, 2);
    q.delete(&again[0].receipt).await.unwrap();
}

/// A message received too often without being deleted goes to the dead-letter queue.
pub async fn dead_letter_after_max_receives(q: Arc<dyn WorkQueue>) {
    q.send(&["poison".to_owned()]).await.unwrap();
    for n in 1..=DEAD_LETTER_AFTER {
        let got = take(&*q, 1, BRIEF).await;
        assert_eq!(got.len(), 1, "receive {n} delivers");
        assert_eq!(got[0].receive_count, n);
        tokio::time::sleep(BRIEF + Duration::from_millis(300)).await;
    }
    assert!(
        take(&*q, 1, BRIEF).await.is_empty(),
        "after {DEAD_LETTER_AFTER} receives the message is no longer delivered"
    );
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert!(q.dead_letters(10).await.unwrap().is_empty(), "taken once");
}

//! The dispatcher and the scheduler tick on SQLite and the in-process queue, with a
//! recording double of the workflow engine and a virtual clock.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use a2a_core::{InstanceKind, InstanceStore, ListFilter, Status, Window, WorkQueue, list_all};
use a2a_local::MemQueue;
use a2a_schedule::{
    Delivery, Dispatched, Dispatcher, ENQUEUE_STEP, Policy, StartMessage, in_flight, tick,
};
use a2a_testkit::code;
use chrono::Duration;
use support::{Recording, deprovision_cleanups, drain, pump, store_with, utc};

fn madrid() -> Vec<Window> {
    vec![Window::parse("Mon-Fri 21:00-06:00 Europe/Madrid").unwrap()]
}

/// Tuesday 1 December 2026, 22:00 in Madrid (UTC+1).
const IN_WINDOW: &str = "2026-12-01T21:00:00Z";
/// The same Tuesday, 12:00 in Madrid.
const MIDDAY: &str = "2026-12-01T11:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_ticks_at_once_never_enqueue_an_instance_twice() {
    let store = store_with(60, 20).await;
    let queue = Arc::new(MemQueue::new(5));
    let mut policy = Policy::new(madrid());
    policy.nightly_quota = 1000;
    let now = utc(IN_WINDOW);
    let ticks: Vec<_> = (0..32)
        .map(|_| {
            let (store, queue, policy) = (store.clone(), queue.clone(), policy.clone());
            tokio::spawn(async move { tick(&*store, &*queue, None, &policy, now).await })
        })
        .collect();
    let mut enqueued = 0;
    let mut raced = 0;
    for t in ticks {
        let r = t.await.unwrap().unwrap();
        enqueued += r.enqueued.len();
        raced += r.lost_races;
    }
    assert_eq!(enqueued, 60, "every instance enqueued by exactly one tick");
    let bodies: Vec<String> = drain(&queue).await.into_iter().map(|d| d.body).collect();
    assert_eq!(
        bodies.len(),
        60,
        "one message per instance ({raced} races lost)"
    );
    let codes: BTreeSet<_> = bodies
        .iter()
        .map(|b| StartMessage::parse(b).unwrap().school_code)
        .collect();
    assert_eq!(codes.len(), 60);
    for i in 1..=60 {
        let inst = store.get(&code(i)).await.unwrap().unwrap();
        assert_eq!(inst.status, Status::Queued);
        let enqueues = store
            .history(&code(i))
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.step == ENQUEUE_STEP)
            .count();
        assert_eq!(enqueues, 1);
    }
}

#[tokio::test]
async fn a_tick_enqueues_by_wave_then_priority_up_to_the_quota_and_only_in_a_window() {
    let store = store_with(10, 5).await;
    // In wave 2, school 9 has the highest priority.
    let mut nine = store.get(&code(9)).await.unwrap().unwrap();
    nine.priority = 5;
    store.save(&nine).await.unwrap();
    let queue = MemQueue::new(5);
    let mut policy = Policy::new(madrid());
    policy.nightly_quota = 7;
    policy.requeue_after = Duration::days(30);

    let r = tick(&*store, &queue, None, &policy, utc(MIDDAY))
        .await
        .unwrap();
    assert_eq!(r.night, None);
    assert!(r.enqueued.is_empty());
    assert!(
        drain(&queue).await.is_empty(),
        "nothing enqueued outside a window"
    );

    let r = tick(&*store, &queue, None, &policy, utc(IN_WINDOW))
        .await
        .unwrap();
    let want: Vec<_> = [1, 2, 3, 4, 5, 9, 6].into_iter().map(code).collect();
    assert_eq!(r.enqueued, want);
    // Later the same night: the quota is spent.
    let later = utc(IN_WINDOW) + Duration::hours(3);
    let r = tick(&*store, &queue, None, &policy, later).await.unwrap();
    assert_eq!((r.enqueued_before, r.enqueued.len()), (7, 0));
    // The next night has a quota of its own.
    let r = tick(
        &*store,
        &queue,
        None,
        &policy,
        utc(IN_WINDOW) + Duration::days(1),
    )
    .await
    .unwrap();
    assert_eq!(r.enqueued, vec![code(7), code(8), code(10)]);
    assert_eq!(drain(&queue).await.len(), 10);

    // Queued too long (a tick died before its send, or the cap held them): sent again,
    // once per interval, and only inside a window.
    policy.requeue_after = Duration::hours(2);
    let r = tick(
        &*store,
        &queue,
        None,
        &policy,
        utc(MIDDAY) + Duration::days(1),
    )
    .await
    .unwrap();
    assert!(r.resent.is_empty());
    let two_nights_on = utc(IN_WINDOW) + Duration::days(2);
    let r = tick(&*store, &queue, None, &policy, two_nights_on)
        .await
        .unwrap();
    assert_eq!(r.resent.len(), 10);
    let r = tick(&*store, &queue, None, &policy, two_nights_on)
        .await
        .unwrap();
    assert!(r.resent.is_empty());
    assert_eq!(drain(&queue).await.len(), 10);
}

#[tokio::test]
async fn the_autumn_change_opens_and_closes_the_window_at_local_times() {
    // Last Sunday of October 2026 is the 25th: 03:00 CEST becomes 02:00 CET.
    let store = store_with(10, 10).await;
    let queue = MemQueue::new(5);
    let mut policy = Policy::new(vec![
        Window::parse("Sat-Sun 21:00-06:00 Europe/Madrid").unwrap(),
    ]);
    policy.nightly_quota = 2;
    let at = |t: &str| utc(t);
    let run = async |t: &str| {
        tick(&*store, &queue, None, &policy, at(t))
            .await
            .unwrap()
            .enqueued
            .len()
    };
    assert_eq!(run("2026-10-24T18:59:00Z").await, 0, "20:59 CEST: shut");
    assert_eq!(run("2026-10-24T19:00:00Z").await, 2, "21:00 CEST: open");
    assert_eq!(
        run("2026-10-25T04:59:00Z").await,
        0,
        "05:59 CET: same night, quota spent"
    );
    assert_eq!(run("2026-10-25T05:00:00Z").await, 0, "06:00 CET: shut");
    assert_eq!(run("2026-10-25T19:59:00Z").await, 0, "20:59 CET: shut");
    assert_eq!(
        run("2026-10-25T20:00:00Z").await,
        2,
        "21:00 CET: the next night"
    );
}

#[tokio::test]
async fn every_message_delivered_twice_starts_exactly_one_execution_each() {
    let n = 40;
    let store = store_with(n, 20).await;
    let queue = MemQueue::new(5);
    let mut policy = Policy::new(madrid());
    policy.nightly_quota = 100;
    let now = utc(IN_WINDOW);
    tick(&*store, &queue, None, &policy, now).await.unwrap();
    // Fault injection: every message is in the queue twice.
    let bodies: Vec<String> = drain(&queue).await.into_iter().map(|d| d.body).collect();
    let queue = MemQueue::new(5);
    queue.send(&bodies).await.unwrap();
    queue.send(&bodies).await.unwrap();

    let wf = Arc::new(Recording::default());
    let d = Dispatcher::new(store.clone(), wf.clone(), 1000).with_windows(madrid());
    // Two dispatchers at once, as two Lambda invocations would be.
    let (a, b) = tokio::join!(pump(&queue, &d, now), pump(&queue, &d, now));
    let all: Vec<_> = a
        .outcomes
        .iter()
        .chain(&b.outcomes)
        .map(|(_, o)| o)
        .collect();
    assert_eq!(all.len(), 2 * n as usize);
    let started = all
        .iter()
        .filter(|o| matches!(o, Dispatched::Started { .. }))
        .count();
    assert_eq!(started, n as usize, "{all:?}");
    assert_eq!(
        wf.names().len(),
        n as usize,
        "exactly one execution per school"
    );
    assert!(all.iter().all(|o| matches!(
        o,
        Dispatched::Started { .. } | Dispatched::Duplicate { .. } | Dispatched::Stale { .. }
    )));
    for i in 1..=n {
        let inst = store.get(&code(i)).await.unwrap().unwrap();
        assert_eq!((inst.status, inst.attempt), (Status::Running, 1));
        let name = format!("{}-provision-1", code(i));
        assert_eq!(inst.execution.as_deref(), Some(&*format!("exec:{name}")));
        assert_eq!(
            wf.get(&name).unwrap().input["school_code"],
            code(i).to_string()
        );
        // One start recorded in the history, however many deliveries: it opens attempt 1.
        let starts = store
            .history(&code(i))
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.step == a2a_schedule::START_STEP)
            .count();
        assert_eq!(starts, 1, "{}", code(i));
    }
}

/// A school queued by a tick and then claimed by a start by hand (its first step moved it
/// to running in the message's attempt and recorded that run): the message is stale, and
/// no second execution starts.
#[tokio::test]
async fn a_message_for_a_school_a_start_by_hand_claimed_starts_nothing() {
    let store = store_with(1, 1).await;
    let queue = MemQueue::new(5);
    let mut policy = Policy::new(madrid());
    policy.nightly_quota = 10;
    let now = utc(IN_WINDOW);
    tick(&*store, &queue, None, &policy, now).await.unwrap();
    let mut i = store.get(&code(1)).await.unwrap().unwrap();
    assert_eq!(i.status, Status::Queued);
    i.move_to(Status::Running, now).unwrap();
    i.execution = Some("arn:aws:states:eu-west-1:1:execution:provision-instance:by-hand".into());
    store.save(&i).await.unwrap();
    let wf = Arc::new(Recording::default());
    let d = Dispatcher::new(store.clone(), wf.clone(), 10).with_windows(madrid());
    let r = pump(&queue, &d, now).await;
    assert!(
        matches!(&r.outcomes[..], [(_, Dispatched::Stale { why, .. })] if why.contains("by-hand")),
        "{:?}",
        r.outcomes
    );
    assert_eq!(wf.calls(), 0, "no execution started");
    let after = store.get(&code(1)).await.unwrap().unwrap();
    assert_eq!(after.execution, i.execution);
}

#[tokio::test]
async fn the_cap_defers_messages_and_they_come_back_later() {
    let store = store_with(10, 10).await;
    let queue = MemQueue::new(50);
    let mut policy = Policy::new(madrid());
    policy.nightly_quota = 10;
    let now = utc(IN_WINDOW);
    tick(&*store, &queue, None, &policy, now).await.unwrap();
    let wf = Arc::new(Recording::default());
    wf.set_clock(now);
    let d = Dispatcher::new(store.clone(), wf.clone(), 3).with_windows(madrid());

    let mut nights_max = 0;
    for round in 0..10 {
        let r = pump(&queue, &d, now).await;
        let running = in_flight(&*store).await.unwrap();
        nights_max = nights_max.max(running);
        assert!(running <= 3, "round {round}: {running} in flight");
        assert!(r.malformed().is_empty());
        // Deferred messages are not deleted: they come back after the visibility timeout.
        for (_, o) in &r.outcomes {
            if let Dispatched::Deferred { why, .. } = o {
                assert!(why.contains("cap is 3"), "{why}");
            }
        }
        // The executions end; a tick records it, freeing room.
        wf.finish_running(|_| false);
        tick(&*store, &queue, Some(&*wf), &policy, now)
            .await
            .unwrap();
        queue.skip(std::time::Duration::from_secs(601));
    }
    assert_eq!(nights_max, 3);
    let active = list_all(&*store, ListFilter::status(Status::Active))
        .await
        .unwrap();
    assert_eq!(active.len(), 10);
    assert_eq!(wf.names().len(), 10);
}

#[tokio::test]
async fn outside_a_window_the_dispatcher_starts_nothing() {
    let store = store_with(3, 10).await;
    let queue = MemQueue::new(5);
    let mut policy = Policy::new(madrid());
    policy.nightly_quota = 3;
    tick(&*store, &queue, None, &policy, utc(IN_WINDOW))
        .await
        .unwrap();
    let wf = Arc::new(Recording::default());
    let d = Dispatcher::new(store.clone(), wf.clone(), 10).with_windows(madrid());
    let r = d.dispatch(&drain(&queue).await, utc(MIDDAY)).await;
    assert_eq!(r.retry_ids().len(), 3);
    assert_eq!(wf.calls(), 0);
}

#[tokio::test]
async fn malformed_and_unknown_messages_are_for_the_dead_letter_queue() {
    let store = store_with(1, 10).await;
    let wf = Arc::new(Recording::default());
    let d = Dispatcher::new(store.clone(), wf.clone(), 10);
    let batch = [
        ("m1", "{\"school\": 1}".to_owned()),
        (
            "m2",
            r#"{"school_code": "0801234X", "attempt": 1}"#.to_owned(),
        ),
        (
            "m3",
            StartMessage {
                school_code: code(99),
                attempt: 1,
            }
            .to_body(),
        ),
        // Registered, but not queued: a stale message, acknowledged.
        (
            "m4",
            StartMessage {
                school_code: code(1),
                attempt: 1,
            }
            .to_body(),
        ),
    ]
    .map(|(id, body)| Delivery {
        id: id.into(),
        body,
    });
    let r = d.dispatch(&batch, utc(IN_WINDOW)).await;
    let bad: Vec<_> = r.malformed().into_iter().map(|(id, _)| id).collect();
    assert_eq!(bad, ["m1", "m2", "m3"]);
    assert!(r.malformed()[2].1.contains("no instance is registered"));
    assert!(matches!(r.outcomes[3].1, Dispatched::Stale { .. }));
    assert!(r.retry_ids().is_empty());
    assert_eq!(wf.calls(), 0);
}

#[tokio::test]
async fn failed_runs_are_retried_with_growing_back_off_up_to_the_attempt_limit() {
    let store = store_with(10, 10).await;
    let queue = MemQueue::new(5);
    let mut policy = Policy::new(vec![Window::parse("daily 00:00-23:59 UTC").unwrap()]);
    policy.nightly_quota = 10;
    policy.max_attempts = 3;
    policy.retry_backoff = Duration::minutes(10);
    let wf = Arc::new(Recording::default());
    let d = Dispatcher::new(store.clone(), wf.clone(), 100);
    let t0 = utc("2026-12-01T01:00:00Z");
    wf.set_clock(t0);
    let r = tick(&*store, &queue, Some(&*wf), &policy, t0)
        .await
        .unwrap();
    assert_eq!(r.enqueued.len(), 10);
    pump(&queue, &d, t0).await;
    // Schools 1 and 2 fail every time; school 3 only on its first attempt.
    let fails = |name: &str| {
        name.starts_with(&code(1).to_string())
            || name.starts_with(&code(2).to_string())
            || name == format!("{}-provision-1", code(3))
    };
    wf.finish_running(fails);
    let r = tick(&*store, &queue, Some(&*wf), &policy, t0)
        .await
        .unwrap();
    // The failed executions ended without their rollback: reconciliation starts it.
    assert_eq!((r.reconciled.len(), r.cleanups.len()), (7, 3), "{r:?}");
    assert_eq!(deprovision_cleanups(&wf, &*store, t0).await, 3);
    assert!(r.retried.is_empty(), "the back-off has not passed");
    let failed = store.get(&code(1)).await.unwrap().unwrap();
    assert_eq!((failed.status, failed.attempt), (Status::RolledBack, 1));
    assert!(failed.last_error.unwrap().contains("injected"));

    // 10 minutes after the first failure: retried as attempt 2.
    let t1 = t0 + Duration::minutes(10);
    let r = tick(&*store, &queue, Some(&*wf), &policy, t1)
        .await
        .unwrap();
    let mut retried = r.retried.clone();
    retried.sort();
    assert_eq!(retried, vec![(code(1), 2), (code(2), 2), (code(3), 2)]);
    assert!(r.enqueued.is_empty(), "retries are not new instances");
    pump(&queue, &d, t1).await;
    wf.finish_running(fails);
    tick(&*store, &queue, Some(&*wf), &policy, t1)
        .await
        .unwrap();
    assert_eq!(deprovision_cleanups(&wf, &*store, t1).await, 2);
    assert_eq!(
        store.get(&code(3)).await.unwrap().unwrap().status,
        Status::Active
    );

    // After attempt 2 the wait doubles: 10 minutes is not enough, 20 is.
    let r = tick(
        &*store,
        &queue,
        Some(&*wf),
        &policy,
        t1 + Duration::minutes(10),
    )
    .await
    .unwrap();
    assert!(r.retried.is_empty());
    let t2 = t1 + Duration::minutes(20);
    let r = tick(&*store, &queue, Some(&*wf), &policy, t2)
        .await
        .unwrap();
    assert_eq!(r.retried.len(), 2);
    pump(&queue, &d, t2).await;
    wf.finish_running(fails);
    tick(&*store, &queue, Some(&*wf), &policy, t2)
        .await
        .unwrap();
    assert_eq!(deprovision_cleanups(&wf, &*store, t2).await, 2);
    // Three attempts spent: left for a person.
    let r = tick(&*store, &queue, Some(&*wf), &policy, t2 + Duration::days(1))
        .await
        .unwrap();
    assert!(r.retried.is_empty());
    assert_eq!(r.exhausted.len(), 2);
    let one = store.get(&code(1)).await.unwrap().unwrap();
    assert_eq!((one.status, one.attempt), (Status::RolledBack, 3));
    let names = wf.names();
    for a in 1..=3 {
        assert!(names.contains(&format!("{}-provision-{a}", code(1))));
        assert!(names.contains(&format!("{}-provision-{a}-cleanup-1", code(1))));
    }
    // The runs, and a cleanup of each failed one.
    assert_eq!(names.len(), (10 + 3 + 2) + (3 + 2 + 2));
}

#[tokio::test]
async fn a_stuck_execution_is_stopped_and_its_instance_failed() {
    let store = store_with(2, 10).await;
    let queue = MemQueue::new(5);
    let mut policy = Policy::new(madrid());
    policy.max_duration = Duration::hours(2);
    let now = utc(IN_WINDOW);
    tick(&*store, &queue, None, &policy, now).await.unwrap();
    let wf = Arc::new(Recording::default());
    wf.set_clock(now);
    let d = Dispatcher::new(store.clone(), wf.clone(), 10);
    pump(&queue, &d, now).await;

    let r = tick(
        &*store,
        &queue,
        Some(&*wf),
        &policy,
        now + Duration::hours(1),
    )
    .await
    .unwrap();
    assert!(r.stopped.is_empty() && r.reconciled.is_empty());
    // The cleanups start at the time of the tick that starts them.
    wf.set_clock(now + Duration::hours(3));
    let r = tick(
        &*store,
        &queue,
        Some(&*wf),
        &policy,
        now + Duration::hours(3),
    )
    .await
    .unwrap();
    assert_eq!(r.stopped.len(), 2);
    assert_eq!(
        r.cleanups.len(),
        2,
        "stopped, so rolled back by a cleanup: {r:?}"
    );
    let one = store.get(&code(1)).await.unwrap().unwrap();
    assert_eq!(
        one.status,
        Status::Running,
        "in flight until its cleanup ends"
    );
    assert_eq!(
        one.execution.as_deref(),
        Some(format!("exec:{}-provision-1-cleanup-1", code(1)).as_str())
    );
    let cleanup = wf
        .get(&format!("{}-provision-1-cleanup-1", code(1)))
        .unwrap();
    assert_eq!(cleanup.input["cleanup"], true);
    assert_eq!(cleanup.input["error"]["Error"], "A2A.MaxDuration");
    // A cleanup that ends without rolling back (here: "succeeded") is run again.
    wf.end(
        &format!("{}-provision-1-cleanup-1", code(1)),
        a2a_core::ExecutionStatus::Succeeded,
    );
    let later = now + Duration::hours(3) + Duration::minutes(1);
    let r = tick(&*store, &queue, Some(&*wf), &policy, later)
        .await
        .unwrap();
    assert_eq!(
        r.cleanups,
        vec![format!("exec:{}-provision-1-cleanup-2", code(1))]
    );
    assert_eq!(deprovision_cleanups(&wf, &*store, later).await, 2);
    let name = format!("{}-provision-1", code(1));
    assert!(
        wf.get(&name)
            .unwrap()
            .stop_cause
            .unwrap()
            .contains("maximum duration")
    );
    let one = store.get(&code(1)).await.unwrap().unwrap();
    assert_eq!(one.status, Status::RolledBack);
    assert!(one.last_error.unwrap().contains("without rolling back"));
    assert_eq!(one.kind, InstanceKind::Provision);
    let two = store.get(&code(2)).await.unwrap().unwrap();
    assert_eq!(two.status, Status::RolledBack);
    assert!(two.last_error.unwrap().contains("stopped"));
}

/// A snapshot maker that is `Creating` for the first `slow` checks of each id.
#[derive(Default)]
struct SlowSnapshots {
    slow: usize,
    calls: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl a2a_core::Snapshots for SlowSnapshots {
    async fn ensure(&self, id: &str) -> Result<a2a_core::SnapshotState, a2a_core::PortError> {
        let mut calls = self.calls.lock().unwrap();
        calls.push(id.to_owned());
        let seen = calls.iter().filter(|c| *c == id).count();
        Ok(if seen > self.slow {
            a2a_core::SnapshotState::Available
        } else {
            a2a_core::SnapshotState::Creating
        })
    }
}

#[tokio::test]
async fn a_wave_waits_for_its_snapshot_and_each_wave_gets_one() {
    // Two waves of 5.
    let store = store_with(10, 5).await;
    let queue = MemQueue::new(5);
    let mut policy = Policy::new(madrid());
    policy.nightly_quota = 3;
    let snaps = SlowSnapshots {
        slow: 1,
        ..Default::default()
    };
    let at = |m: i64| utc(IN_WINDOW) + Duration::minutes(m);
    let tick = |m| a2a_schedule::tick_with(&*store, &queue, None, Some(&snaps), &policy, at(m));

    // Wave 1's snapshot is being made: nothing goes.
    let r = tick(0).await.unwrap();
    assert!(r.enqueued.is_empty(), "{r:?}");
    assert_eq!(r.waiting_for_snapshot.as_deref(), Some("wave-1"));
    // Made: wave 1 starts, up to the quota.
    let r = tick(5).await.unwrap();
    assert_eq!(r.enqueued, vec![code(1), code(2), code(3)]);
    assert_eq!(r.waiting_for_snapshot, None);
    // The next night, wave 1 goes on with no new snapshot, then wave 2 waits for its own.
    policy.nightly_quota = 100;
    let r = a2a_schedule::tick_with(&*store, &queue, None, Some(&snaps), &policy, at(24 * 60))
        .await
        .unwrap();
    assert_eq!(r.enqueued, vec![code(4), code(5)]);
    assert_eq!(r.waiting_for_snapshot.as_deref(), Some("wave-2"));
    let r = a2a_schedule::tick_with(
        &*store,
        &queue,
        None,
        Some(&snaps),
        &policy,
        at(24 * 60 + 5),
    )
    .await
    .unwrap();
    assert_eq!(r.enqueued.len(), 5);
    let calls = snaps.calls.lock().unwrap().clone();
    assert_eq!(calls, ["wave-1", "wave-1", "wave-2", "wave-2"]);
}

#[tokio::test]
async fn cancel_fails_a_queued_school_and_rolls_back_a_running_one() {
    let store = store_with(3, 10).await;
    let queue = MemQueue::new(5);
    let policy = Policy::new(madrid());
    let now = utc(IN_WINDOW);
    tick(&*store, &queue, None, &policy, now).await.unwrap();
    let wf = Arc::new(Recording::default());
    wf.set_clock(now);
    // A cap of one: school 1 runs, the others stay queued.
    let d = Dispatcher::new(store.clone(), wf.clone(), 1);
    pump(&queue, &d, now).await;
    let status = |n| {
        let store = store.clone();
        async move { store.get(&code(n)).await.unwrap().unwrap() }
    };
    assert_eq!(status(1).await.status, Status::Running);
    assert_eq!(status(2).await.status, Status::Queued);

    // Without the engine, a running school cannot be stopped: nothing changes.
    let r = a2a_schedule::cancel_now(&*store, None, &code(1), now)
        .await
        .unwrap();
    assert!(r.as_ref().is_err_and(|e| e.contains("ARNs")), "{r:?}");
    assert_eq!(status(1).await.status, Status::Running);

    let r = a2a_schedule::cancel_now(&*store, Some(&*wf), &code(1), now)
        .await
        .unwrap();
    let said = r.unwrap();
    assert!(
        said.contains("stopped") && said.contains("cleanup-1"),
        "{said}"
    );
    let run = wf.get(&format!("{}-provision-1", code(1))).unwrap();
    assert_eq!(run.status, a2a_core::ExecutionStatus::Aborted);
    assert_eq!(run.stop_cause.as_deref(), Some("cancelled by an operator"));
    let one = status(1).await;
    assert!(
        one.execution.unwrap().ends_with("-cleanup-1"),
        "the rollback runs"
    );
    // A late duplicate of the attempt's start message leaves the cleanup recorded.
    let again = StartMessage {
        school_code: code(1),
        attempt: 1,
    };
    queue.send(&[again.to_body()]).await.unwrap();
    pump(&queue, &d, now).await;
    let one = status(1).await;
    let recorded = one.execution.unwrap();
    assert!(
        recorded.ends_with("-cleanup-1"),
        "still the cleanup: {recorded}"
    );
    assert_eq!(deprovision_cleanups(&wf, &*store, now).await, 1);
    assert_eq!(status(1).await.status, Status::RolledBack);

    let r = a2a_schedule::cancel_now(&*store, Some(&*wf), &code(2), now)
        .await
        .unwrap();
    assert!(r.unwrap().contains("queued → failed"));
    let two = status(2).await;
    assert_eq!(two.status, Status::Failed);
    assert_eq!(two.last_error.as_deref(), Some("cancelled by an operator"));
    let h = store.history(&code(2)).await.unwrap();
    assert!(
        h.iter()
            .any(|e| e.step == a2a_schedule::OPERATOR_CANCEL_STEP)
    );
    // Its start message is stale now: the dispatcher starts nothing for it.
    pump(&queue, &d, now).await;
    assert!(wf.get(&format!("{}-provision-1", code(2))).is_none());

    let r = a2a_schedule::cancel_now(&*store, Some(&*wf), &code(2), now)
        .await
        .unwrap();
    assert!(r.is_err_and(|e| e.contains("only a queued or running school")));
    let r = a2a_schedule::cancel_now(&*store, Some(&*wf), &a2a_testkit::code(99), now)
        .await
        .unwrap();
    assert!(r.is_err_and(|e| e.contains("not in the state")));
}

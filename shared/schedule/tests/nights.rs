//! The fan-out over several virtual nights: 700 EIX schools, at most 25 executions at
//! once, 150 new ones a night, one in ten failing once on purpose (and cleaned up by
//! reconciliation). The workflow engine is the recording double (each execution ends at
//! the next tick); the clock is virtual.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use a2a_core::{InstanceStore, ListFilter, Status, Window, list_all};
use a2a_local::MemQueue;
use a2a_schedule::{Dispatcher, Policy, tick};
use chrono::{Duration, Timelike};
use support::{Recording, deprovision_cleanups, pump, store_with, utc};

#[tokio::test]
async fn seven_hundred_schools_in_five_nights_never_more_than_twenty_five_at_once() {
    let n = 700;
    let store = store_with(n, 50).await;
    let queue = MemQueue::new(1000);
    let windows = vec![Window::parse("Mon-Fri 21:00-06:00 Europe/Madrid").unwrap()];
    let mut policy = Policy::new(windows.clone());
    policy.nightly_quota = 150;
    let wf = Arc::new(Recording::default());
    let d = Dispatcher::new(store.clone(), wf.clone(), 25).with_windows(windows.clone());
    // One in ten fails on its first attempt.
    let fails = |name: &str| {
        let code: u32 = name[2..8].parse().unwrap();
        code.is_multiple_of(10) && name.ends_with("-provision-1")
    };

    // Monday 7 December 2026, 20:00 in Madrid; a tick every 30 minutes for a week.
    let start = utc("2026-12-07T19:00:00Z");
    let mut nights: BTreeMap<String, usize> = BTreeMap::new();
    let mut now = start;
    while now < start + Duration::days(7) {
        wf.set_clock(now);
        wf.finish_running_now(fails);
        let r = tick(&*store, &queue, Some(&*wf), &policy, now)
            .await
            .unwrap();
        // Each failed run is cleaned up (its rollback started by reconciliation).
        assert_eq!(
            deprovision_cleanups(&wf, &*store, now).await,
            r.cleanups.len()
        );
        if let Some((opens, _)) = r.night {
            *nights.entry(opens.to_rfc3339()).or_default() += r.enqueued.len();
        } else {
            assert!(r.enqueued.is_empty() && r.retried.is_empty());
        }
        pump(&queue, &d, now).await;
        queue.skip(std::time::Duration::from_secs(30 * 60));
        now += Duration::minutes(30);
    }

    let active = list_all(&*store, ListFilter::status(Status::Active))
        .await
        .unwrap();
    assert_eq!(active.len(), n as usize, "all active");
    assert_eq!(nights.len(), 5, "{nights:?}");
    assert!(nights.values().all(|&k| k <= 150), "{nights:?}");
    assert_eq!(nights.values().sum::<usize>(), n as usize);
    assert!(wf.max_concurrent() <= 25, "{}", wf.max_concurrent());
    assert_eq!(wf.max_concurrent(), 25, "the cap is used");
    // Nothing started outside a window (Madrid is UTC+1 in December: 21:00-06:00 local).
    for (name, e) in wf.all() {
        let local_hour = (e.started_at + Duration::hours(1)).hour();
        assert!(
            !(6..21).contains(&local_hour),
            "{name} started at {}",
            e.started_at
        );
    }
    // The 70 failed once, and were recovered by a retry: attempt 2 recorded.
    for i in (10..=n).step_by(10) {
        let inst = store.get(&a2a_testkit::code(i)).await.unwrap().unwrap();
        assert_eq!((inst.status, inst.attempt), (Status::Active, 2));
    }
    // The runs, and a cleanup of each failed one.
    assert_eq!(wf.names().len(), n as usize + 70 + 70);
    let cleanups = wf
        .names()
        .iter()
        .filter(|x| x.ends_with("-cleanup-1"))
        .count();
    assert_eq!(cleanups, 70);
}

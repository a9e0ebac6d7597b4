//! The `InstanceStore` conformance suite.

use std::collections::BTreeSet;
use std::sync::Arc;

use a2a_core::{
    Instance, InstanceKind, InstanceStore, ListFilter, Outcome, PortError, Status, StepEvent,
    UploadLedger, UploadRecord, Wave, list_all,
};
use chrono::{Duration, TimeZone, Utc};

use crate::code;

fn instance(n: u32, wave: u32) -> Instance {
    let t = Utc.with_ymd_and_hms(2026, 11, 30, 21, 0, 0).unwrap();
    let mut i = Instance::new(
        code(n),
        InstanceKind::Migrate,
        format!("Escola {n} — Sant Martí"),
        Wave(wave),
        t,
    );
    i.priority = (n % 3) as i32;
    i
}

/// A registered instance reads back equal; registering it again changes nothing.
pub async fn register_is_idempotent(store: Arc<dyn InstanceStore>) {
    let first = instance(1, 1);
    assert!(
        store.register(&first).await.unwrap(),
        "first register creates"
    );
    let mut again = first.clone();
    again.name = "another name".into();
    assert!(
        !store.register(&again).await.unwrap(),
        "second register reports existing"
    );
    let got = store.get(&first.code).await.unwrap().expect("registered");
    assert_eq!(got, first, "the second register must not overwrite");
    assert_eq!(store.get(&code(2)).await.unwrap(), None);
}

/// A save bumps the version; a save from a stale read is a `Conflict` and writes nothing.
pub async fn save_is_versioned(store: Arc<dyn InstanceStore>) {
    let i = instance(3, 1);
    store.register(&i).await.unwrap();
    let mut a = store.get(&i.code).await.unwrap().unwrap();
    let stale = a.clone();
    a.move_to(Status::Queued, Utc::now()).unwrap();
    let saved = store.save(&a).await.unwrap();
    assert_eq!(saved.version, 1);
    assert_eq!(saved.status, Status::Queued);
    assert_eq!(store.get(&i.code).await.unwrap().unwrap(), saved);

    let mut b = stale;
    b.last_error = Some("should never be stored".into());
    match store.save(&b).await {
        Err(PortError::Conflict(_)) => {}
        other => panic!("stale save must be a Conflict, got {other:?}"),
    }
    assert_eq!(store.get(&i.code).await.unwrap().unwrap(), saved);

    let mut ghost = instance(4, 1);
    ghost.version = 0;
    assert!(
        matches!(
            store.save(&ghost).await,
            Err(PortError::Conflict(_) | PortError::NotFound(_))
        ),
        "saving an unregistered instance must fail"
    );
    assert_eq!(store.get(&ghost.code).await.unwrap(), None);
}

/// Registering many at once is registering each: those already there are left as they
/// are and reported as not created; the new ones read back equal, in order.
pub async fn register_all_is_register_each(store: Arc<dyn InstanceStore>) {
    assert!(store.register_all(&[]).await.unwrap().is_empty());
    let first = instance(30, 1);
    store.register(&first).await.unwrap();
    let mut changed = first.clone();
    changed.name = "must not overwrite".into();
    let mut many: Vec<Instance> = (31..60).map(|n| instance(n, 1 + n % 2)).collect();
    many.insert(3, changed);
    let created = store.register_all(&many).await.unwrap();
    let want: Vec<bool> = (0..many.len()).map(|i| i != 3).collect();
    assert_eq!(created, want);
    assert_eq!(store.get(&first.code).await.unwrap(), Some(first));
    for i in many.iter().filter(|i| i.code != code(30)) {
        assert_eq!(store.get(&i.code).await.unwrap().as_ref(), Some(i));
    }
    assert_eq!(
        store.register_all(&many).await.unwrap(),
        vec![false; many.len()],
        "again: nothing created"
    );
}

/// 32 tasks read one instance, then all try to move it: exactly one wins.
pub async fn racing_writers_one_wins(store: Arc<dyn InstanceStore>) {
    const WRITERS: usize = 32;
    let i = instance(5, 1);
    store.register(&i).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let barrier = barrier.clone();
        let code = i.code.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = store.get(&code).await.unwrap().unwrap();
            barrier.wait().await;
            mine.move_to(Status::Queued, Utc::now()).unwrap();
            mine.execution = Some(format!("writer-{w}"));
            store.save(&mine).await
        }));
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(saved) => winners.push(saved),
            Err(PortError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("a losing writer must get Conflict, got {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    assert_eq!(conflicts, WRITERS - 1);
    let stored = store.get(&i.code).await.unwrap().unwrap();
    assert_eq!(stored, winners[0]);
    assert_eq!(stored.version, 1);
}

/// Listing by status and wave pages through every match once, in wave-then-code order.
pub async fn list_pages_by_status_and_wave(store: Arc<dyn InstanceStore>) {
    // 23 instances over waves 1..=3; every third one queued.
    let mut expected_queued = Vec::new();
    for n in 100..123 {
        let mut i = instance(n, 1 + n % 3);
        store.register(&i).await.unwrap();
        if n % 3 == 0 {
            i.move_to(Status::Queued, Utc::now()).unwrap();
            let saved = store.save(&i).await.unwrap();
            expected_queued.push(saved);
        }
    }
    expected_queued.sort_by_key(|i| (i.wave, i.code.clone()));

    let queued = collect(&*store, Some(Status::Queued), None, 2).await;
    assert_eq!(queued, expected_queued, "queued, ordered by wave then code");

    let wave2: Vec<_> = collect(&*store, Some(Status::Registered), Some(Wave(2)), 3).await;
    let want: Vec<_> = (100..123)
        .filter(|n| n % 3 != 0 && 1 + n % 3 == 2)
        .map(code)
        .collect();
    assert_eq!(
        wave2.iter().map(|i| i.code.clone()).collect::<Vec<_>>(),
        want
    );

    let any_wave3: BTreeSet<_> = collect(&*store, None, Some(Wave(3)), 4)
        .await
        .into_iter()
        .map(|i| i.code)
        .collect();
    let want3: BTreeSet<_> = (100..123).filter(|n| 1 + n % 3 == 3).map(code).collect();
    assert_eq!(any_wave3, want3);

    let all = list_all(&*store, ListFilter::default()).await.unwrap();
    assert_eq!(all.len(), 23);
    let unique: BTreeSet<_> = all.iter().map(|i| i.code.clone()).collect();
    assert_eq!(unique.len(), 23, "no instance listed twice");

    let none = collect(&*store, Some(Status::Active), None, 5).await;
    assert!(none.is_empty());
}

async fn collect(
    store: &dyn InstanceStore,
    status: Option<Status>,
    wave: Option<Wave>,
    limit: usize,
) -> Vec<Instance> {
    let filter = ListFilter { status, wave };
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..1000 {
        let page = store.list(filter, limit, cursor.take()).await.unwrap();
        assert!(page.items.len() <= limit, "a page holds at most `limit`");
        out.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("listing never ended");
}

/// History comes back oldest first, whatever the order of recording; a repeat is kept once.
pub async fn history_is_ordered(store: Arc<dyn InstanceStore>) {
    let i = instance(7, 1);
    store.register(&i).await.unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 30, 21, 0, 0).unwrap();
    let mut events = Vec::new();
    for (k, step) in ["preflight", "freeze", "export-database", "import", "verify"]
        .iter()
        .enumerate()
    {
        let start = t0 + Duration::seconds(10 * k as i64);
        events.push(StepEvent::started(*step, start));
        let mut end = StepEvent::started(*step, start);
        end.ended_at = Some(start + Duration::milliseconds(1500));
        end.outcome = if k == 4 {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        };
        end.rows = Some(1000 * k as u64);
        end.bytes = Some(1 << 20);
        end.error = (k == 4).then(|| "checksum of mdl_user differs".to_owned());
        events.push(end);
    }
    // Record out of order, and one event twice.
    for e in events.iter().rev() {
        store.record(&i.code, e).await.unwrap();
    }
    store.record(&i.code, &events[3]).await.unwrap();
    assert_eq!(store.history(&i.code).await.unwrap(), events);
    assert!(store.history(&code(8)).await.unwrap().is_empty());
}

fn upload(sha: char, name: &str, minute: u32, codes: &[u32]) -> UploadRecord {
    UploadRecord {
        sha256: sha.to_string().repeat(64),
        name: name.to_owned(),
        taken_at: Utc.with_ymd_and_hms(2026, 11, 30, 21, minute, 0).unwrap(),
        accepted: codes.len() as u64,
        rejected: 1,
        codes: codes.iter().map(|n| code(*n)).collect(),
    }
}

/// An upload is recorded once per SHA-256 and reads back equal; the latest upload of a
/// name is the last one recorded; uploads never show among the instances.
pub async fn uploads_are_recorded_once(
    ledger: Arc<dyn UploadLedger>,
    store: Arc<dyn InstanceStore>,
) {
    let first = upload('a', "uploads/eix 2026.csv", 0, &[1, 2, 3]);
    assert_eq!(ledger.upload(&first.sha256).await.unwrap(), None);
    assert_eq!(ledger.latest_upload(&first.name).await.unwrap(), None);
    assert!(
        ledger.record_upload(&first).await.unwrap(),
        "first record creates"
    );
    let mut again = first.clone();
    again.accepted = 99;
    assert!(
        !ledger.record_upload(&again).await.unwrap(),
        "the same content again is reported as already there"
    );
    assert_eq!(
        ledger.upload(&first.sha256).await.unwrap(),
        Some(first.clone())
    );

    let second = upload('b', "uploads/eix 2026.csv", 5, &[1, 3, 4]);
    let other = upload('c', "uploads/other.csv", 9, &[7]);
    assert!(ledger.record_upload(&second).await.unwrap());
    assert!(ledger.record_upload(&other).await.unwrap());
    assert_eq!(
        ledger.latest_upload("uploads/eix 2026.csv").await.unwrap(),
        Some(second)
    );
    assert_eq!(
        ledger.latest_upload("uploads/other.csv").await.unwrap(),
        Some(other)
    );
    assert!(
        list_all(&*store, ListFilter::default())
            .await
            .unwrap()
            .is_empty(),
        "uploads are not instances"
    );
}

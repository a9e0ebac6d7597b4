//! Registering a plan in the state store, idempotently: the same content twice changes
//! nothing; a changed list adds, updates what is still `registered`, leaves what is under
//! way alone, and deletes nothing.

use std::collections::{BTreeSet, HashMap};

use a2a_core::{
    Endpoint, Instance, InstanceKind, InstanceStore, ListFilter, PortError, SchoolCode, Status,
    UploadLedger, UploadRecord, Wave, list_all,
};
use chrono::{DateTime, Utc};

use crate::plan::{Plan, Planned};

/// What registering did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registration {
    /// Registered now.
    pub created: Vec<SchoolCode>,
    /// Still `registered`, and changed by this list.
    pub updated: Vec<SchoolCode>,
    /// Already registered as this list says.
    pub unchanged: Vec<SchoolCode>,
    /// Already under way: left alone.
    pub under_way: Vec<(SchoolCode, Status)>,
    /// In the previous version of this list (same name) but not in this one; kept.
    pub removed: Vec<SchoolCode>,
}

/// The instance a planned school becomes (or would be updated to).
pub fn instance_of(p: &Planned, now: DateTime<Utc>) -> Instance {
    let s = &p.school;
    let mut i = Instance::new(s.code.clone(), s.kind, s.name.clone(), Wave(p.wave), now);
    i.priority = s.priority;
    match s.kind {
        InstanceKind::Migrate => {
            i.source = Endpoint {
                db: s.source_db.clone(),
                files: s.source_files.clone(),
                dns: Some(p.dns.clone()),
            };
        }
        InstanceKind::Provision => {
            let t = p.template.map(|t| t.locator());
            i.source = Endpoint {
                db: t.clone(),
                files: t,
                dns: None,
            };
        }
    }
    i.target.dns = Some(p.dns.clone());
    i
}

/// Whether `stored` already says what `fresh` says, in the fields a list sets.
fn same(stored: &Instance, fresh: &Instance) -> bool {
    stored.kind == fresh.kind
        && stored.name == fresh.name
        && stored.wave == fresh.wave
        && stored.priority == fresh.priority
        && stored.source == fresh.source
        && stored.target.dns == fresh.target.dns
}

/// The earlier upload of this very content, if any.
pub async fn already(
    ledger: &dyn UploadLedger,
    sha256: &str,
) -> Result<Option<UploadRecord>, PortError> {
    ledger.upload(sha256).await
}

/// Every instance in the store, by code: what [`apply`] compares the plan with, and what
/// [`Plan::avoid_taken`] keeps short names apart from.
pub async fn existing(
    store: &dyn InstanceStore,
) -> Result<HashMap<SchoolCode, Instance>, PortError> {
    Ok(list_all(store, ListFilter::default())
        .await?
        .into_iter()
        .map(|i| (i.code.clone(), i))
        .collect())
}

/// Registers the plan's schools against `existing` (from [`existing`]): new ones are registered, `registered` ones updated where
/// the list changed, the others left alone. Idempotent, and it records nothing: running it
/// again after a failure finishes the work.
pub async fn apply(
    plan: &Plan,
    name: &str,
    store: &dyn InstanceStore,
    ledger: &dyn UploadLedger,
    existing: &HashMap<SchoolCode, Instance>,
    now: DateTime<Utc>,
) -> Result<Registration, PortError> {
    let mut reg = Registration::default();
    let mut fresh_ones = Vec::new();
    for p in &plan.schools {
        let fresh = instance_of(p, now);
        let code = fresh.code.clone();
        match existing.get(&code) {
            None => fresh_ones.push(fresh),
            Some(stored) if stored.status != Status::Registered => {
                reg.under_way.push((code, stored.status));
            }
            Some(stored) if same(stored, &fresh) => reg.unchanged.push(code),
            Some(stored) => {
                let mut next = stored.clone();
                next.kind = fresh.kind;
                next.name = fresh.name;
                next.wave = fresh.wave;
                next.priority = fresh.priority;
                next.source = fresh.source;
                next.target.dns = fresh.target.dns;
                next.updated_at = now;
                store.save(&next).await?;
                reg.updated.push(code);
            }
        }
    }
    let created = store.register_all(&fresh_ones).await?;
    for (i, made) in fresh_ones.into_iter().zip(created) {
        if made {
            reg.created.push(i.code);
        } else {
            // Registered by someone else since the listing: leave it to them.
            reg.unchanged.push(i.code);
        }
    }
    if let Some(previous) = ledger.latest_upload(name).await? {
        let now_in: BTreeSet<&SchoolCode> = plan.schools.iter().map(|p| &p.school.code).collect();
        reg.removed = previous
            .codes
            .into_iter()
            .filter(|c| !now_in.contains(c))
            .collect();
    }
    Ok(reg)
}

/// Records the upload in the ledger: `false` if this content was recorded already.
pub async fn record(
    plan: &Plan,
    name: &str,
    sha256: &str,
    ledger: &dyn UploadLedger,
    now: DateTime<Utc>,
) -> Result<bool, PortError> {
    let record = UploadRecord {
        sha256: sha256.to_owned(),
        name: name.to_owned(),
        taken_at: now,
        accepted: plan.schools.len() as u64,
        rejected: plan.rejected() as u64,
        codes: plan.schools.iter().map(|p| p.school.code.clone()).collect(),
    };
    ledger.record_upload(&record).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::take::take_planned;
    use crate::{Intake, Options, plan_bytes, sha256_hex};
    use a2a_local::{FsBlob, SqliteStore};
    use chrono::TimeZone;

    fn t(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 9, minute, 0).unwrap()
    }

    async fn take(store: &SqliteStore, name: &str, text: &str, minute: u32) -> Intake {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlob::new(dir.path()).unwrap();
        let plan = plan_bytes(name, text.as_bytes(), &Options::default()).unwrap();
        let sha = sha256_hex(text.as_bytes());
        let secrets = a2a_local::FileSecrets::new(dir.path().join("secrets"));
        let ports = crate::take::tests::ports(store, &blobs, &secrets);
        take_planned(name, plan, &sha, ports, t(minute))
            .await
            .unwrap()
    }

    fn new(i: Intake) -> Registration {
        match i {
            Intake::New { registration, .. } => registration,
            other => panic!("expected a new upload, got {other:?}"),
        }
    }

    fn codes(v: &[SchoolCode]) -> Vec<&str> {
        v.iter().map(SchoolCode::as_str).collect()
    }

    fn parse(c: &str) -> SchoolCode {
        SchoolCode::parse(c).unwrap()
    }

    #[tokio::test]
    async fn the_same_content_twice_changes_nothing_and_says_so() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let text = "codi_centre,nom,EPRI\n08000013,Escola Bertí,EPRI\n08000021,Institut Nou,\n";
        let reg = new(take(&store, "eix.csv", text, 0).await);
        assert_eq!(codes(&reg.created), ["08000013", "08000021"]);
        let before = list_all(&store, ListFilter::default()).await.unwrap();
        let i = store.get(&before[0].code).await.unwrap().unwrap();
        assert_eq!(i.source.db.as_ref().unwrap().expose(), "template:primary");
        assert_eq!(i.target.dns.as_deref(), Some("escola-berti"));

        match take(&store, "eix.csv", text, 5).await {
            Intake::Already { record, .. } => {
                assert_eq!(record.taken_at, t(0));
                assert_eq!(record.accepted, 2);
            }
            other => panic!("expected Already, got {other:?}"),
        }
        assert_eq!(
            list_all(&store, ListFilter::default()).await.unwrap(),
            before
        );
    }

    #[tokio::test]
    async fn a_changed_list_adds_updates_leaves_under_way_and_reports_removed() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let v1 = "school_code,name\n08000013,A\n08000021,B\n08000034,C\n08000042,D\n";
        take(&store, "eix.csv", v1, 0).await;
        // 08000021 gets under way.
        let mut b = store.get(&parse("08000021")).await.unwrap().unwrap();
        b.move_to(Status::Queued, t(1)).unwrap();
        store.save(&b).await.unwrap();

        let v2 = "school_code,name\n08000013,A\n08000021,B renamed\n08000034,C renamed\n\
                  08000055,E\n";
        let reg = new(take(&store, "eix.csv", v2, 2).await);
        assert_eq!(codes(&reg.created), ["08000055"]);
        assert_eq!(codes(&reg.updated), ["08000034"]);
        assert_eq!(codes(&reg.unchanged), ["08000013"]);
        assert_eq!(reg.under_way, [(parse("08000021"), Status::Queued)]);
        assert_eq!(codes(&reg.removed), ["08000042"]);

        let c = store.get(&parse("08000034")).await.unwrap().unwrap();
        assert_eq!((c.name.as_str(), c.version), ("C renamed", 1));
        let b = store.get(&parse("08000021")).await.unwrap().unwrap();
        assert_eq!(b.name, "B", "under way: left alone");
        assert!(
            store.get(&parse("08000042")).await.unwrap().is_some(),
            "nothing is deleted"
        );
    }

    #[tokio::test]
    async fn short_names_stay_unique_across_lists() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        take(
            &store,
            "eix.csv",
            "school_code,name,dns\n08000013,Escola Bertí,\n08000021,Escola Nova,nova\n",
            0,
        )
        .await;
        // Another list: a made name that is taken moves on; a given one is refused.
        let other = "school_code,name,dns\n17000013,Escola Bertí,\n17000021,Escola X,nova\n";
        let Intake::New { plan, .. } = take(&store, "girona.csv", other, 1).await else {
            panic!("new");
        };
        let store = &store;
        let dns = |c| async move {
            let i = store.get(&parse(c)).await.unwrap().unwrap();
            i.target.dns.unwrap()
        };
        assert_eq!(dns("08000013").await, "escola-berti", "its own name stays");
        assert_eq!(dns("17000013").await, "escola-berti-2");
        assert!(store.get(&parse("17000021")).await.unwrap().is_none());
        assert_eq!(plan.errors.len(), 1);
        assert_eq!(
            (plan.errors[0].line, plan.errors[0].field.as_str()),
            (3, "dns")
        );
        assert!(
            plan.errors[0].message.contains("08000021"),
            "{}",
            plan.errors[0].message
        );
        assert_eq!(plan.slugs.len(), 1);
        assert_eq!(
            plan.slugs[0].dns, "escola-berti-2",
            "the summary lists the name given"
        );
    }
}

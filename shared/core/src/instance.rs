use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Locator, SchoolCode};

/// What A2A does with an instance: move an existing site, or create an EIX site from a
/// template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceKind {
    /// An existing Àgora site moved to AWS (`migrate-instance`).
    Migrate,
    /// A new EIX site made from a template (`provision-instance`).
    Provision,
}

impl InstanceKind {
    /// Every kind, for exhaustive tests and listings.
    pub const ALL: [InstanceKind; 2] = [InstanceKind::Migrate, InstanceKind::Provision];

    /// The name of the state machine that runs this kind.
    pub fn workflow(self) -> &'static str {
        match self {
            InstanceKind::Migrate => "migrate-instance",
            InstanceKind::Provision => "provision-instance",
        }
    }

    /// The lower-case word used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceKind::Migrate => "migrate",
            InstanceKind::Provision => "provision",
        }
    }
}

impl fmt::Display for InstanceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an instance is in its life. Only the moves of [`Status::can_move`] are legal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Taken in from a school list; nothing done yet.
    Registered,
    /// Handed to the fan-out queue.
    Queued,
    /// A workflow execution is working on it.
    Running,
    /// Moved to AWS (migrate only); not yet verified.
    Migrated,
    /// Created from the template (provision only); not yet verified.
    Provisioned,
    /// Checked: database checksums and file manifest agree.
    Verified,
    /// Serving from AWS. Final.
    Active,
    /// An attempt failed; it may be retried.
    Failed,
    /// An attempt was undone: source untouched, target marked abandoned.
    RolledBack,
}

impl Status {
    /// Every status, in life order.
    pub const ALL: [Status; 9] = [
        Status::Registered,
        Status::Queued,
        Status::Running,
        Status::Migrated,
        Status::Provisioned,
        Status::Verified,
        Status::Active,
        Status::Failed,
        Status::RolledBack,
    ];

    /// The snake-case word stored in the state table and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Registered => "registered",
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Migrated => "migrated",
            Status::Provisioned => "provisioned",
            Status::Verified => "verified",
            Status::Active => "active",
            Status::Failed => "failed",
            Status::RolledBack => "rolled_back",
        }
    }

    /// Parses the word of [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether an instance of `kind` may move from `self` to `to`.
    ///
    /// A retry goes back through `queued`, so the dispatcher, not a step, starts it; an
    /// `active` site is never moved again by A2A.
    pub fn can_move(self, to: Status, kind: InstanceKind) -> bool {
        use Status::*;
        // Only the kind's own "done" status is reachable, or left, by that kind.
        let done = match kind {
            InstanceKind::Migrate => Migrated,
            InstanceKind::Provision => Provisioned,
        };
        match (self, to) {
            (Registered, Queued)
            | (Queued, Running | Failed)
            | (Running, Failed | RolledBack)
            | (Verified, Active | Failed | RolledBack)
            | (Failed, Queued | RolledBack)
            | (RolledBack, Queued) => true,
            (Running, next) => next == done,
            (from, Verified | Failed | RolledBack) => from == done,
            _ => false,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A migration wave: instances of one wave go in the same nights. Lower waves go first.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Wave(pub u32);

impl Wave {
    /// The GSI sort key `wave#code`: the wave zero-padded so that text order is wave order.
    pub fn sort_key(self, code: &SchoolCode) -> String {
        format!("{:06}#{}", self.0, code)
    }
}

impl fmt::Display for Wave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A status move that the rules do not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("school {code}: a {kind} instance cannot move from {from} to {to}")]
pub struct TransitionError {
    /// The instance.
    pub code: SchoolCode,
    /// Its kind.
    pub kind: InstanceKind,
    /// Its status now.
    pub from: Status,
    /// The status asked for.
    pub to: Status,
}

/// One school site that A2A migrates or provisions, as the state store holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The school; also the key of the instance.
    pub code: SchoolCode,
    /// Migrate or provision.
    pub kind: InstanceKind,
    /// The school's name, for people.
    pub name: String,
    /// Its wave.
    pub wave: Wave,
    /// Order inside a wave: higher goes first.
    pub priority: i32,
    /// Where it is in its life.
    pub status: Status,
    /// How many runs have started (moves to `running`).
    pub attempt: u32,
    /// Bumped by the store on every save; a save names the version it read.
    pub version: u64,
    /// Where the site comes from (migrate), or its template (provision).
    #[serde(default)]
    pub source: Endpoint,
    /// Where the site goes.
    #[serde(default)]
    pub target: Endpoint,
    /// The workflow execution now or last working on it.
    #[serde(default)]
    pub execution: Option<String>,
    /// The last error, as shown to the operator.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One side of a move: database, files and web address.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The database URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<Locator>,
    /// The moodledata folder or blob prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Locator>,
    /// The site's short name in its address (`https://<host>/<dns>/moodle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
}

impl Instance {
    /// A newly registered instance, at version 0.
    pub fn new(
        code: SchoolCode,
        kind: InstanceKind,
        name: impl Into<String>,
        wave: Wave,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            code,
            kind,
            name: name.into(),
            wave,
            priority: 0,
            status: Status::Registered,
            attempt: 0,
            version: 0,
            source: Endpoint::default(),
            target: Endpoint::default(),
            execution: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Moves to `to` if the rules allow it; otherwise leaves the instance as it was.
    /// Moving to `running` counts an attempt. The store persists the move with
    /// [`crate::InstanceStore::save`].
    pub fn move_to(&mut self, to: Status, now: DateTime<Utc>) -> Result<(), TransitionError> {
        if !self.status.can_move(to, self.kind) {
            return Err(TransitionError {
                code: self.code.clone(),
                kind: self.kind,
                from: self.status,
                to,
            });
        }
        if to == Status::Running {
            self.attempt += 1;
        }
        self.status = to;
        self.updated_at = now;
        Ok(())
    }
}

/// The name of an execution known by its ARN or by its name: an execution name holds no
/// `:`, so it is an ARN's last field. Step Functions records ARNs and the local engine
/// names; two ids are one execution when their names are.
pub fn execution_name_of(id: &str) -> &str {
    id.rsplit(':').next().unwrap_or(id)
}

/// The workflow execution name for one attempt of one instance. Start is idempotent
/// because the name is: a duplicate message finds the execution already there.
pub fn execution_name(code: &SchoolCode, kind: InstanceKind, attempt: u32) -> String {
    format!("{}-{}-{}", code, kind.as_str(), attempt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The legal moves, written out once more by hand, independent of `can_move`.
    fn legal(kind: InstanceKind) -> Vec<(Status, Status)> {
        use Status::*;
        let done = match kind {
            InstanceKind::Migrate => Migrated,
            InstanceKind::Provision => Provisioned,
        };
        vec![
            (Registered, Queued),
            (Queued, Running),
            (Queued, Failed),
            (Running, done),
            (Running, Failed),
            (Running, RolledBack),
            (done, Verified),
            (done, Failed),
            (done, RolledBack),
            (Verified, Active),
            (Verified, Failed),
            (Verified, RolledBack),
            (Failed, Queued),
            (Failed, RolledBack),
            (RolledBack, Queued),
        ]
    }

    fn code() -> SchoolCode {
        SchoolCode::parse("08012345").unwrap()
    }

    fn any_status() -> impl Strategy<Value = Status> {
        proptest::sample::select(Status::ALL.to_vec())
    }

    fn any_kind() -> impl Strategy<Value = InstanceKind> {
        proptest::sample::select(InstanceKind::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn only_listed_moves_are_accepted(kind in any_kind(), from in any_status(), to in any_status()) {
            let mut i = Instance::new(code(), kind, "x", Wave(1), Utc::now());
            i.status = from;
            let before = i.clone();
            let accepted = i.move_to(to, Utc::now()).is_ok();
            prop_assert_eq!(accepted, legal(kind).contains(&(from, to)));
            if !accepted {
                prop_assert_eq!(i, before, "a refused move must change nothing");
            }
        }

        #[test]
        fn random_walks_never_leave_active_or_skip_a_step(
            kind in any_kind(),
            tries in proptest::collection::vec(any_status(), 0..64),
        ) {
            let mut i = Instance::new(code(), kind, "x", Wave(1), Utc::now());
            let mut runs = 0;
            for to in tries {
                let from = i.status;
                if i.move_to(to, Utc::now()).is_ok() {
                    prop_assert!(from != Status::Active);
                    prop_assert!(legal(kind).contains(&(from, to)));
                    if to == Status::Running { runs += 1; }
                }
            }
            prop_assert_eq!(i.attempt, runs);
        }
    }

    #[test]
    fn status_words_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(Status::parse("Active"), None);
    }

    #[test]
    fn refused_move_names_school_and_statuses() {
        let mut i = Instance::new(code(), InstanceKind::Provision, "x", Wave(1), Utc::now());
        let e = i.move_to(Status::Migrated, Utc::now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "school 08012345: a provision instance cannot move from registered to migrated"
        );
    }

    #[test]
    fn wave_sort_key_orders_waves_numerically() {
        let c = code();
        assert!(Wave(2).sort_key(&c) < Wave(10).sort_key(&c));
        assert_eq!(Wave(3).sort_key(&c), "000003#08012345");
    }

    #[test]
    fn an_execution_is_named_alike_by_its_arn_and_its_name() {
        let arn = "arn:aws:states:eu-west-1:123456789012:execution:migrate:08000001-migrate-2";
        assert_eq!(execution_name_of(arn), "08000001-migrate-2");
        assert_eq!(
            execution_name_of("08000001-migrate-2"),
            "08000001-migrate-2"
        );
        assert_ne!(execution_name_of(arn), execution_name_of("manual-1"));
    }

    #[test]
    fn execution_names_differ_per_attempt() {
        let c = code();
        assert_eq!(
            execution_name(&c, InstanceKind::Migrate, 2),
            "08012345-migrate-2"
        );
    }
}

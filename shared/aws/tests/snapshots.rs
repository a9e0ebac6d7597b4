//! `RdsSnapshots` against RDS on moto (or AWS) at `AWS_ENDPOINT_URL`.

#[cfg(not(feature = "rds"))]
compile_error!(
    "a2a-aws's tests need all of its features: run `cargo test -p a2a-aws --all-features` \
     (or `cargo test --workspace`, where the CLI turns them on)"
);

mod common;

use a2a_aws::{RdsSnapshots, aws_sdk_rds};
use a2a_core::{SnapshotState, Snapshots};
use a2a_testkit::unique_name;

#[tokio::test]
async fn a_snapshot_is_made_once_per_id_and_a_missing_cluster_is_named() {
    let Some(conf) =
        common::conf("a_snapshot_is_made_once_per_id_and_a_missing_cluster_is_named").await
    else {
        return;
    };
    let client = aws_sdk_rds::Client::new(&conf);
    let cluster = unique_name("a2a-target");
    client
        .create_db_cluster()
        .db_cluster_identifier(&cluster)
        .engine("aurora-postgresql")
        .master_username("a2a")
        .master_user_password("not-a-real-secret")
        .send()
        .await
        .unwrap();
    let snaps = RdsSnapshots::new(client.clone(), &cluster);

    let first = snaps.ensure("wave-1").await.unwrap();
    assert!(
        matches!(first, SnapshotState::Creating | SnapshotState::Available),
        "{first:?}"
    );
    // Asked again (a later tick): the same snapshot, never a second one.
    let mut state = snaps.ensure("wave-1").await.unwrap();
    for _ in 0..30 {
        if state == SnapshotState::Available {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        state = snaps.ensure("wave-1").await.unwrap();
    }
    assert_eq!(state, SnapshotState::Available);
    let listed = client
        .describe_db_cluster_snapshots()
        .db_cluster_identifier(&cluster)
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = listed
        .db_cluster_snapshots()
        .iter()
        .filter_map(|s| s.db_cluster_snapshot_identifier())
        // RDS's own automated snapshots are named `rds:…`.
        .filter(|id| !id.starts_with("rds:"))
        .collect();
    assert_eq!(ids, [snaps.identifier("wave-1").as_str()]);

    let gone = RdsSnapshots::new(client, "no-such-cluster");
    match gone.ensure("wave-1").await.unwrap() {
        SnapshotState::Failed(why) => assert!(why.contains("no-such-cluster"), "{why}"),
        other => panic!("a missing cluster must fail the snapshot, not {other:?}"),
    }
}

#[test]
fn identifiers_are_what_rds_accepts() {
    let conf = aws_sdk_rds::Config::builder()
        .behavior_version(aws_sdk_rds::config::BehaviorVersion::latest())
        .build();
    let s = RdsSnapshots::new(aws_sdk_rds::Client::from_conf(conf), "Agora_Targets--1");
    assert_eq!(s.identifier("wave-12"), "a2a-agora-targets-1-wave-12");
}

//! `Snapshots` on Amazon RDS: a manual cluster snapshot of the target Aurora cluster.

use a2a_core::{PortError, SnapshotState, Snapshots};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_rds::Client;
use aws_sdk_rds::error::ProvideErrorMetadata;

use crate::error::{Call, classify};

const SERVICE: &str = "RDS";

/// The [`Snapshots`] port on one RDS cluster. Snapshot ids are prefixed with the cluster's
/// name (`a2a-<cluster>-wave-3`), so that two deployments never share one.
#[derive(Debug, Clone)]
pub struct RdsSnapshots {
    client: Client,
    cluster: String,
}

impl RdsSnapshots {
    /// Snapshots of cluster `cluster` (its identifier, not its ARN).
    pub fn new(client: Client, cluster: impl Into<String>) -> Self {
        Self {
            client,
            cluster: cluster.into(),
        }
    }

    /// Like [`RdsSnapshots::new`], with a client made from `conf`.
    pub fn from_conf(conf: &SdkConfig, cluster: impl Into<String>) -> Self {
        Self::new(Client::new(conf), cluster)
    }

    /// The RDS identifier of snapshot `id`: letters, digits and single hyphens, starting
    /// with a letter, as RDS demands.
    pub fn identifier(&self, id: &str) -> String {
        let raw = format!("a2a-{}-{id}", self.cluster);
        let mut out = String::with_capacity(raw.len());
        for c in raw.chars() {
            let c = if c.is_ascii_alphanumeric() { c } else { '-' };
            if !(c == '-' && out.ends_with('-')) {
                out.push(c.to_ascii_lowercase());
            }
        }
        out.trim_end_matches('-').chars().take(255).collect()
    }
}

#[async_trait]
impl Snapshots for RdsSnapshots {
    async fn ensure(&self, id: &str) -> Result<SnapshotState, PortError> {
        let ident = self.identifier(id);
        let resource = format!("cluster snapshot {ident:?}");
        let found = self
            .client
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(&ident)
            .send()
            .await;
        let status = match found {
            Ok(out) => out
                .db_cluster_snapshots()
                .first()
                .and_then(|s| s.status())
                .map(str::to_owned),
            Err(e) if e.code() == Some("DBClusterSnapshotNotFoundFault") => None,
            Err(e) => {
                return Err(classify(
                    &e,
                    Call::new(SERVICE, "DescribeDBClusterSnapshots", &resource),
                ));
            }
        };
        let Some(status) = status else {
            let made = self
                .client
                .create_db_cluster_snapshot()
                .db_cluster_identifier(&self.cluster)
                .db_cluster_snapshot_identifier(&ident)
                .send()
                .await;
            return match made {
                Ok(_) => Ok(SnapshotState::Creating),
                // Another tick made it first: it exists, so it is being made.
                Err(e) if e.code() == Some("DBClusterSnapshotAlreadyExistsFault") => {
                    Ok(SnapshotState::Creating)
                }
                Err(e) if e.code() == Some("DBClusterNotFoundFault") => {
                    Ok(SnapshotState::Failed(format!(
                        "there is no RDS cluster {:?}; check A2A_TARGET_CLUSTER",
                        self.cluster
                    )))
                }
                Err(e) => Err(classify(
                    &e,
                    Call::new(SERVICE, "CreateDBClusterSnapshot", &resource),
                )),
            };
        };
        Ok(match status.as_str() {
            "available" => SnapshotState::Available,
            "creating" | "copying" => SnapshotState::Creating,
            other => SnapshotState::Failed(format!("{ident} is {other}")),
        })
    }
}

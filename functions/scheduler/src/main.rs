//! The scheduler Lambda: an EventBridge schedule → one tick. Thin: configuration from the
//! environment, then [`a2a_fn_scheduler::Handler::handle`] per event, at the time the
//! event is handled (a late event must not act as of an earlier time).
//!
//! Environment: `A2A_TABLE`, `A2A_QUEUE_URL`, `A2A_MIGRATE_STATE_MACHINE`,
//! `A2A_PROVISION_STATE_MACHINE`, `A2A_WINDOWS`, all required; `A2A_TARGET_CLUSTER`, the RDS
//! cluster snapshotted before each wave (unset: no snapshots); the rest as
//! [`a2a_fn_scheduler::Handler::policy_from_env`] says.

use std::sync::Arc;

use a2a_fn_bootstrap::{Failure, init, init_logging, required};
use a2a_fn_scheduler::Handler;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let handler = Arc::new(
        init(async {
            let table = required("A2A_TABLE")?;
            let queue_url = required("A2A_QUEUE_URL")?;
            let migrate = required("A2A_MIGRATE_STATE_MACHINE")?;
            let provision = required("A2A_PROVISION_STATE_MACHINE")?;
            let policy = Handler::policy_from_env()?;
            let conf = a2a_aws::config::lambda_sdk_config().await?;
            let mut handler = Handler::new(
                Arc::new(a2a_aws::DynamoDbStore::from_conf(&conf, table)),
                Arc::new(a2a_aws::SqsQueue::from_conf(&conf, queue_url)),
                Arc::new(a2a_aws::SfnWorkflows::from_conf(&conf, migrate, provision)),
                policy,
            );
            if let Some(cluster) = a2a_fn_bootstrap::var("A2A_TARGET_CLUSTER") {
                let snapshots = a2a_aws::RdsSnapshots::from_conf(&conf, cluster);
                handler = handler.with_snapshots(Arc::new(snapshots));
            }
            Ok::<_, String>(handler)
        })
        .await?,
    );
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<EventBridgeEvent>| {
        let handler = handler.clone();
        async move {
            // A failed tick's errorType names its kind (`A2A.Transient`, …).
            let report = handler
                .handle(chrono::Utc::now())
                .await
                .map_err(|e| Failure::from_port(&e))?;
            serde_json::to_value(report).map_err(|e| Failure {
                error_type: a2a_fn_bootstrap::error_type::PERMANENT,
                message: format!("the tick's report: {e}"),
            })
        }
    }))
    .await
}

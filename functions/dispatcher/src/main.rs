//! The dispatcher Lambda: SQS start messages → Step Functions executions. Thin:
//! configuration from the environment, then [`a2a_fn_dispatcher::Handler::handle`] per
//! batch. The event source mapping must have `ReportBatchItemFailures` on.
//!
//! Environment: `A2A_TABLE` (the state table), `A2A_MIGRATE_STATE_MACHINE` and
//! `A2A_PROVISION_STATE_MACHINE` (ARNs), all required; optionally `A2A_MAX_RUNNING`
//! (default 25), `A2A_WINDOWS` (`;`-separated; unset means any time) and
//! `A2A_DEAD_LETTER_QUEUE_URL`.

use std::sync::Arc;

use a2a_fn_bootstrap::{init, init_logging, number, required, var};
use a2a_fn_dispatcher::Handler;
use a2a_schedule::Dispatcher;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let handler = Arc::new(
        init(async {
            let table = required("A2A_TABLE")?;
            let migrate = required("A2A_MIGRATE_STATE_MACHINE")?;
            let provision = required("A2A_PROVISION_STATE_MACHINE")?;
            let max_running = number("A2A_MAX_RUNNING", 25)?;
            let windows = a2a_schedule::parse_windows(&var("A2A_WINDOWS").unwrap_or_default())
                .map_err(|e| format!("A2A_WINDOWS: {e}"))?;
            let conf = a2a_aws::config::lambda_sdk_config().await?;
            let store = Arc::new(a2a_aws::DynamoDbStore::from_conf(&conf, table));
            let workflows = Arc::new(a2a_aws::SfnWorkflows::from_conf(&conf, migrate, provision));
            let dead = var("A2A_DEAD_LETTER_QUEUE_URL").map(|url| {
                Arc::new(a2a_aws::SqsQueue::from_conf(&conf, url)) as Arc<dyn a2a_core::WorkQueue>
            });
            let dispatcher = Dispatcher::new(store, workflows, max_running).with_windows(windows);
            Ok::<_, String>(Handler::new(dispatcher, dead))
        })
        .await?,
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let handler = handler.clone();
        async move {
            let (_, response) = handler.handle(event.payload, chrono::Utc::now()).await;
            Ok::<SqsBatchResponse, lambda_runtime::Error>(response)
        }
    }))
    .await
}

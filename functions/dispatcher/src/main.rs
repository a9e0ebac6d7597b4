//! The dispatcher Lambda: SQS start messages → Step Functions executions. Thin:
//! [`a2a_fn_dispatcher::Handler::from_env`] (the environment is
//! [`a2a_fn_dispatcher::Config`]), then [`a2a_fn_dispatcher::Handler::on_event`] per batch.
//! The event source mapping must have `ReportBatchItemFailures` on.

#![warn(missing_docs)]

use a2a_fn_bootstrap::{init, init_logging};
use a2a_fn_dispatcher::Handler;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let handler = &init(Handler::from_env()).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        handler.on_event(event.payload)
    }))
    .await
}

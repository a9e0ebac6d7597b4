//! The dispatcher Lambda: SQS start messages → Step Functions executions. Thin:
//! [`a2a_fn_dispatcher::Handler::from_env`] (the environment is
//! [`a2a_fn_dispatcher::Config`]), then [`a2a_fn_dispatcher::Handler::on_event`] per batch.
//! The event source mapping must have `ReportBatchItemFailures` on.

#![warn(missing_docs)]

use a2a_fn_dispatcher::Handler;
use aws_lambda_events::event::sqs::SqsEvent;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    a2a_fn_bootstrap::serve(Handler::from_env(), |h, event: SqsEvent| h.on_event(event)).await
}

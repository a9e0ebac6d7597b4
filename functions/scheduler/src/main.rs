//! The scheduler Lambda: an EventBridge schedule → one tick. Thin:
//! [`a2a_fn_scheduler::Handler::from_env`] (the environment is
//! [`a2a_fn_scheduler::Config`]), then [`a2a_fn_scheduler::Handler::on_event`] per event.

#![warn(missing_docs)]

use a2a_fn_bootstrap::{init, init_logging};
use a2a_fn_scheduler::Handler;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let handler = &init(Handler::from_env()).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<EventBridgeEvent>| {
        handler.on_event(event.payload)
    }))
    .await
}

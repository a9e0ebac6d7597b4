//! The scheduler Lambda: an EventBridge schedule → one tick. Thin:
//! [`a2a_fn_scheduler::Handler::from_env`] (the environment is
//! [`a2a_fn_scheduler::Config`]), then [`a2a_fn_scheduler::Handler::on_event`] per event.

#![warn(missing_docs)]

use a2a_fn_scheduler::Handler;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    a2a_fn_bootstrap::serve(Handler::from_env(), |h, event: EventBridgeEvent| {
        h.on_event(event)
    })
    .await
}

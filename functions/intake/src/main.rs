//! The intake Lambda: S3 `ObjectCreated` under `uploads/*.csv` → instances registered in
//! the state table, reports under `reports/`. Thin: [`a2a_fn_intake::Handler::from_env`]
//! (the environment is [`a2a_fn_intake::Config`]), then
//! [`a2a_fn_intake::Handler::handle`] per event.

#![warn(missing_docs)]

use a2a_fn_bootstrap::{init, init_logging};
use a2a_fn_intake::Handler;
use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let handler = &init(Handler::from_env()).await?;
    // A failed record's errorType names its kind (`A2A.Transient`, …).
    lambda_runtime::run(service_fn(|event: LambdaEvent<S3Event>| {
        handler.handle(event.payload)
    }))
    .await
}

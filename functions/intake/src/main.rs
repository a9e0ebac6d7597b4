//! The intake Lambda: S3 `ObjectCreated` under `uploads/*.csv` → instances registered in
//! the state table, reports under `reports/`. Thin: configuration from the environment,
//! then [`a2a_fn_intake::Handler::handle`] per event.
//!
//! Environment: `A2A_TABLE` (the state table, required), and optionally
//! `A2A_INTAKE_KIND`, `A2A_WAVE_SIZE`, `A2A_MAX_MB`.

use std::sync::Arc;

use a2a_fn_bootstrap::{init, init_logging, required};
use a2a_fn_intake::Handler;
use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let handler = Arc::new(
        init(async {
            let table = required("A2A_TABLE")?;
            let opts = Handler::options_from_env()?;
            let conf = a2a_aws::config::lambda_sdk_config().await?;
            let store = Arc::new(a2a_aws::DynamoDbStore::from_conf(&conf, table));
            let s3 = a2a_aws::aws_sdk_s3::Client::from_conf(
                a2a_aws::aws_sdk_s3::config::Builder::from(&conf)
                    .force_path_style(true)
                    .build(),
            );
            Ok::<_, String>(Handler::new(s3, store.clone(), store, opts))
        })
        .await?,
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| {
        let handler = handler.clone();
        // A failed record's errorType names its kind (`A2A.Transient`, …).
        async move { handler.handle(event.payload).await }
    }))
    .await
}

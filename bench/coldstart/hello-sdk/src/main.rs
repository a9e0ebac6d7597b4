//! A second reference of `bench/coldstart`: the bare function (`hello/`) plus what any Rust
//! Lambda that calls DynamoDB and S3 builds before its first event: the SDK configuration
//! (A2A's own, `a2a_aws::config::lambda_sdk_config`, the cheapest we found) and the two
//! clients the intake builds. Between it and the bare function lies the SDK's share of a
//! cold start; between it and the intake, A2A's.

#![warn(missing_docs)]

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let conf = a2a_aws::config::lambda_sdk_config().await?;
    let dynamodb = a2a_aws::aws_sdk_dynamodb::Client::new(&conf);
    let s3 = a2a_aws::aws_sdk_s3::Client::new(&conf);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        // Held by the handler, as a function's clients are, so none is optimised away.
        let _clients = (&dynamodb, &s3);
        async move { Ok::<Value, Error>(event.payload) }
    }))
    .await
}

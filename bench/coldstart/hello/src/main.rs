//! The peer of `bench/coldstart`: the smallest useful `lambda_runtime` function (it echoes
//! its event), built with the same profile as A2A's functions. No logging, no AWS client:
//! what A2A's functions cost on top of this is what the benchmark shows.

#![warn(missing_docs)]

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}

//! What the AWS adapters' tests share.

use aws_config::SdkConfig;

/// The SDK configuration for the emulator (or AWS) at `AWS_ENDPOINT_URL`; `None` after
/// the loud SKIP line of `test` when it is not set.
pub async fn conf(test: &str) -> Option<SdkConfig> {
    a2a_testkit::service_url("AWS_ENDPOINT_URL", test)?;
    Some(a2a_aws::config::sdk_config().await)
}

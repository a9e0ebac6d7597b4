//! The SDK configuration every adapter starts from.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The region used when neither `AWS_REGION`, `AWS_DEFAULT_REGION` nor a profile names one:
/// the project's home region.
pub const DEFAULT_REGION: &str = "eu-west-1";

/// How long to wait for a TCP/TLS connection. Short: an unreachable endpoint must fail in
/// seconds, not minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one attempt of one call may take, response headers included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 3;

/// Loads the default chain (environment, profile, web identity, container and instance
/// credentials; `AWS_ENDPOINT_URL`), with the bounded [`timeout_config`] and
/// [`retry_config`]. The region comes from `AWS_REGION`/`AWS_DEFAULT_REGION`, then the
/// profile, then [`DEFAULT_REGION`]: never from the instance metadata service, which is
/// slow to time out off EC2, and Lambda and ECS set `AWS_REGION` anyway.
pub async fn sdk_config() -> SdkConfig {
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new())
        .or_else(Region::new(DEFAULT_REGION));
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .timeout_config(timeout_config())
        .retry_config(retry_config())
        .load()
        .await
}

/// Connect within [`CONNECT_TIMEOUT`], each attempt within [`ATTEMPT_TIMEOUT`].
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// Standard retries (exponential back-off with jitter), at most [`MAX_ATTEMPTS`] attempts.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_set() {
        let t = timeout_config();
        assert_eq!(t.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(t.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(retry_config().max_attempts(), MAX_ATTEMPTS);
    }
}

//! The SDK configuration every adapter starts from.

use std::time::Duration;

/// The SDK configuration type, for callers that keep one (the CLI loads it once).
pub use aws_config::SdkConfig;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

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

/// The five roots of Amazon Trust Services (PEM), which sign the AWS service endpoints.
pub const AMAZON_ROOTS_PEM: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// The root certificates the SDK's HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// The system's store, as the SDK loads it by default: right where a proxy or a private
    /// endpoint brings its own CA (the CLI on an operator's machine). It reads and parses
    /// every system certificate (about 150) when a client is built.
    System,
    /// Only [`AMAZON_ROOTS_PEM`]: enough for every AWS endpoint, and a fraction of the
    /// parsing at a Lambda's cold start (see bench/coldstart). A TLS-inspecting firewall in
    /// the functions' path needs [`TrustRoots::System`] instead.
    Amazon,
}

impl TrustRoots {
    /// The value of `A2A_TLS_ROOTS` (`amazon` or `system`); unset means `default`.
    pub fn parse(value: Option<&str>, default: TrustRoots) -> Result<TrustRoots, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(default),
            Some("amazon") => Ok(TrustRoots::Amazon),
            Some("system") => Ok(TrustRoots::System),
            Some(other) => Err(format!(
                "A2A_TLS_ROOTS={other:?}: expected `amazon` (the AWS endpoints' own roots) or \
                 `system` (the system's certificate store)"
            )),
        }
    }
}

/// Loads the default chain (environment, profile, web identity, container and instance
/// credentials; `AWS_ENDPOINT_URL`), with the bounded [`timeout_config`] and
/// [`retry_config`], trusting the system's root certificates. The region comes from
/// `AWS_REGION`/`AWS_DEFAULT_REGION`, then the profile, then [`DEFAULT_REGION`]: never from
/// the instance metadata service, which is slow to time out off EC2, and Lambda and ECS
/// set `AWS_REGION` anyway.
pub async fn sdk_config() -> SdkConfig {
    sdk_config_with(TrustRoots::System).await
}

/// [`sdk_config`] for a Lambda: the roots of `A2A_TLS_ROOTS`, [`TrustRoots::Amazon`] when
/// it is unset, and the credentials of the environment only, where Lambda puts the
/// execution role's. The default chain would build an STS client for web identity too,
/// which costs a Lambda's cold start as much as a client it uses. An unknown
/// `A2A_TLS_ROOTS` is an error that names the variable.
pub async fn lambda_sdk_config() -> Result<SdkConfig, String> {
    let roots = std::env::var("A2A_TLS_ROOTS").ok();
    let roots = TrustRoots::parse(roots.as_deref(), TrustRoots::Amazon)?;
    let env = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    Ok(load(roots, Some(env)).await)
}

/// [`sdk_config`] with the given trust roots.
pub async fn sdk_config_with(roots: TrustRoots) -> SdkConfig {
    load(roots, None).await
}

async fn load(
    roots: TrustRoots,
    credentials: Option<aws_config::environment::EnvironmentVariableCredentialsProvider>,
) -> SdkConfig {
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new())
        .or_else(Region::new(DEFAULT_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .timeout_config(timeout_config())
        .retry_config(retry_config());
    if roots == TrustRoots::Amazon {
        loader = loader.http_client(amazon_roots_client());
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// The SDK's own HTTPS client (rustls on aws-lc, as the default one), trusting only
/// [`AMAZON_ROOTS_PEM`].
fn amazon_roots_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls;
    let trust = tls::TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_ROOTS_PEM);
    let context = tls::TlsContext::builder().with_trust_store(trust).build();
    // Only a malformed trust store fails the build, and this one is fixed and tested.
    let context = context.expect("the embedded Amazon roots make a valid TLS context");
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https();
    SharedHttpClient::new(NoTrialConnector(client))
}

/// An HTTPS client that skips the SDK's trial connector at client construction. The SDK's
/// own client builds a whole connector (TLS roots parsed, rustls configured) for every
/// service client it is given to, only to drop it: that warms the system store's
/// process-wide cache, but our roots have no such cache, so it is work thrown away, about
/// a fifth of a function's cold start. Requests still get their connector, built once per
/// timeout setting and shared by every client of the config, as before.
#[derive(Debug)]
struct NoTrialConnector(SharedHttpClient);

impl HttpClient for NoTrialConnector {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
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
    fn the_amazon_roots_are_the_five_of_amazon_trust_services() {
        use sha2::{Digest, Sha256};
        let ders: Vec<Vec<u8>> = pem_certificates(AMAZON_ROOTS_PEM);
        let got: Vec<String> = ders
            .iter()
            .map(|d| hex::encode(Sha256::digest(d)))
            .collect();
        // SHA-256 of Amazon Root CA 1-4 and Starfield Services Root CA - G2, as published
        // by Amazon Trust Services.
        let want = [
            "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
            "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
            "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
            "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
            "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
        ];
        assert_eq!(got, want);
    }

    /// The DER of each `CERTIFICATE` block.
    fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
        use base64::Engine;
        let text = std::str::from_utf8(pem).expect("PEM is ASCII");
        text.split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .map(|block| {
                let body = block.split("-----END CERTIFICATE-----").next().unwrap();
                let b64: String = body.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("base64")
            })
            .collect()
    }

    #[test]
    fn tls_roots_are_read_from_the_variable_or_defaulted() {
        use TrustRoots::*;
        assert_eq!(TrustRoots::parse(None, Amazon), Ok(Amazon));
        assert_eq!(TrustRoots::parse(Some(" "), System), Ok(System));
        assert_eq!(TrustRoots::parse(Some("system"), Amazon), Ok(System));
        assert_eq!(TrustRoots::parse(Some("amazon"), System), Ok(Amazon));
        let err = TrustRoots::parse(Some("mozilla"), Amazon).unwrap_err();
        assert!(
            err.contains("A2A_TLS_ROOTS") && err.contains("mozilla"),
            "{err}"
        );
    }

    /// An HTTP client that counts the SDK's trial connectors (its
    /// `validate_base_client_config`); it sends nothing.
    #[derive(Debug, Clone, Default)]
    struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Counting {
        fn trials(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl HttpClient for Counting {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            unreachable!("no request is sent")
        }

        fn validate_base_client_config(
            &self,
            _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder,
            _: &aws_smithy_types::config_bag::ConfigBag,
        ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    #[cfg(feature = "dynamodb")]
    #[test]
    fn building_a_client_builds_no_trial_connector() {
        let client = |http: SharedHttpClient| {
            aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new("eu-west-1"))
                    .http_client(http)
                    .build(),
            )
        };
        // The SDK does ask: the bare client is tried once per service client built.
        let bare = Counting::default();
        let _ = client(SharedHttpClient::new(bare.clone()));
        let _ = client(SharedHttpClient::new(bare.clone()));
        assert_eq!(bare.trials(), 2);
        // Wrapped, the trial never reaches the client underneath.
        let inner = Counting::default();
        let wrapped = SharedHttpClient::new(NoTrialConnector(SharedHttpClient::new(inner.clone())));
        let _ = client(wrapped.clone());
        let _ = client(wrapped);
        assert_eq!(inner.trials(), 0);
    }

    #[test]
    fn bounds_are_set() {
        let t = timeout_config();
        assert_eq!(t.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(t.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(retry_config().max_attempts(), MAX_ATTEMPTS);
    }
}

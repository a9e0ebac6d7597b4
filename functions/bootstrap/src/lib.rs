//! What every A2A Lambda does before its handler runs, written once: JSON logs for
//! CloudWatch, and configuration read from the environment with errors that name the
//! variable. Runs outside the handler, once per cold start; [`init`] reports a failed
//! start to Lambda. And [`Failure`], a handler's error with an `errorType` of the names the
//! state machines' Retry and Catch use.

#![warn(missing_docs)]

use a2a_core::PortError;

/// JSON log lines on stdout, `info` unless `RUST_LOG` says otherwise. Lambda stamps each
/// line with its own time, so ours is left out.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .without_time()
        .init();
}

/// The variable's value; unset and blank are the same: not given.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variable's value, or an error naming it.
pub fn required(name: &str) -> Result<String, String> {
    var(name).ok_or_else(|| format!("{name} is not set"))
}

/// Where an [`Env`] reads a variable.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A function's whole configuration read from the environment (or, in tests, from any
/// lookup), every problem collected, so that one failed start names every variable that is
/// missing or wrong, not only the first. Each reader returns a value to carry on with
/// (empty, or `None`) when the variable is wrong; [`Env::finish`] then fails.
pub struct Env {
    lookup: Box<Lookup>,
    problems: Vec<String>,
}

/// The ARNs of the two deployed state machines, as the dispatcher and the scheduler read
/// them ([`Env::state_machines`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMachines {
    /// The `migrate-instance` state machine.
    pub migrate: String,
    /// The `provision-instance` state machine.
    pub provision: String,
}

/// A function's configuration, read whole from its environment: every wrong variable is
/// named before any client is built.
pub trait FromEnv: Sized {
    /// The configuration of `env`, every wrong variable named.
    fn read(env: Env) -> Result<Self, EnvError>;

    /// The configuration of the process environment.
    fn from_env() -> Result<Self, EnvError> {
        Self::read(Env::new())
    }
}

/// The problems of an environment, each naming its variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError(pub Vec<String>);

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for EnvError {}

impl From<EnvError> for String {
    fn from(e: EnvError) -> String {
        e.to_string()
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    /// The process environment.
    pub fn new() -> Self {
        Self::from_fn(var)
    }

    /// Variables looked up by `lookup` (a map in tests); a blank value counts as unset.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Box::new(move |name| lookup(name).filter(|v| !v.trim().is_empty())),
            problems: Vec::new(),
        }
    }

    /// Fixed variables, as `(name, value)` pairs: a function's configuration in tests.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        Self::from_fn(move |name| map.get(name).cloned())
    }

    /// The two state machines, `A2A_MIGRATE_STATE_MACHINE` and
    /// `A2A_PROVISION_STATE_MACHINE` (ARNs), both required.
    pub fn state_machines(&mut self) -> StateMachines {
        StateMachines {
            migrate: self.required("A2A_MIGRATE_STATE_MACHINE"),
            provision: self.required("A2A_PROVISION_STATE_MACHINE"),
        }
    }

    /// The variable's value, `None` when unset or blank.
    pub fn optional(&mut self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// The variable's value; unset is a problem (and the value empty).
    pub fn required(&mut self, name: &str) -> String {
        self.optional(name).unwrap_or_else(|| {
            self.problems.push(format!("{name} is not set"));
            String::new()
        })
    }

    /// The variable read by `parse` (given the trimmed value), `None` when unset; a value
    /// `parse` refuses is a problem, named with the variable and the value.
    pub fn parsed<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let value = self.optional(name)?;
        match parse(value.trim()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problems.push(format!("{name}={value:?}: {e}"));
                None
            }
        }
    }

    /// The variable as a whole number of at least `min`, `None` when unset.
    pub fn whole<T>(&mut self, name: &str, min: T) -> Option<T>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Default,
    {
        self.parsed(name, |v| {
            v.parse::<T>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(|| match min == T::default() {
                    true => "expected a whole number".to_owned(),
                    false => format!("expected a whole number from {min}"),
                })
        })
    }

    /// `value` if every variable read was right, else every problem.
    pub fn finish<T>(self, value: T) -> Result<T, EnvError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(EnvError(self.problems))
        }
    }
}

/// Runs a function's start (its configuration, its clients) and, when it fails, tells
/// Lambda through the Runtime API's `/init/error` with errorType [`error_type::INIT`], so
/// the console and the logs show why the function never took an event, rather than only an
/// exit status. The error is logged and returned too: `main` ends with it.
pub async fn init<T, E: std::fmt::Display>(
    start: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, lambda_runtime::Error> {
    match start.await {
        Ok(t) => Ok(t),
        Err(e) => {
            let message = e.to_string();
            tracing::error!(
                error_type = error_type::INIT,
                "cold start failed: {message}"
            );
            if let Err(why) = report_init_error(&message).await {
                tracing::error!("could not report the failed start to the Runtime API: {why}");
            }
            Err(message.into())
        }
    }
}

/// The whole of a function's `main`: JSON logs, its start (`start`: the configuration and
/// the clients, reported to Lambda if it fails, see [`init`]), then `on_event` of the
/// handler for each event, until Lambda ends the process.
pub async fn serve<H, E, R, Er, Fut>(
    start: impl Future<Output = Result<H, impl std::fmt::Display>>,
    on_event: impl Fn(&'static H, E) -> Fut,
) -> Result<(), lambda_runtime::Error>
where
    H: Sync + 'static,
    E: serde::de::DeserializeOwned,
    R: serde::Serialize,
    Er: Into<lambda_runtime::Diagnostic> + std::fmt::Debug,
    Fut: Future<Output = Result<R, Er>>,
{
    init_logging();
    // The handler lives as long as the process: every event borrows it for good.
    let handler: &'static H = Box::leak(Box::new(init(start).await?));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<E>| on_event(handler, event.payload),
    ))
    .await
}

/// Posts `message` to `/init/error`. Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`) there
/// is nobody to tell, and that is not an error.
async fn report_init_error(message: &str) -> Result<(), lambda_runtime::Error> {
    let Some(api) = var("AWS_LAMBDA_RUNTIME_API") else {
        return Ok(());
    };
    let base: http::Uri = format!("http://{api}").parse()?;
    let client = lambda_runtime_api_client::Client::builder()
        .with_endpoint(base)
        .build()?;
    let body = serde_json::to_vec(&lambda_runtime::Diagnostic {
        error_type: error_type::INIT.to_owned(),
        error_message: message.to_owned(),
    })?;
    let request = lambda_runtime_api_client::build_request()
        .method(http::Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", error_type::INIT)
        .body(lambda_runtime_api_client::body::Body::from(body))?;
    let response = client.call(request).await?;
    if !response.status().is_success() {
        return Err(format!("/init/error answered {}", response.status()).into());
    }
    Ok(())
}

/// The name a failure is reported under (the Lambda `errorType`), in the vocabulary of
/// `a2a_steps::error`: worth a retry, or not and why.
pub mod error_type {
    /// A retry may mend it: the network, throttling, a lost race.
    pub const TRANSIENT: &str = "A2A.Transient";
    /// A retry would not mend it.
    pub const PERMANENT: &str = "A2A.Permanent";
    /// The input is wrong and stays wrong.
    pub const PERMANENT_INPUT: &str = "A2A.Permanent.Input";
    /// A check found a difference.
    pub const PERMANENT_VERIFY: &str = "A2A.Permanent.Verify";
    /// The function could not start: its configuration is wrong or missing.
    pub const INIT: &str = "A2A.Init";
}

/// A handler's error as the Lambda runtime reports it: `errorType` is [`Failure::error_type`],
/// not the Rust type's name that `lambda_runtime` would use otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One of [`error_type`].
    pub error_type: &'static str,
    /// What went wrong, and where.
    pub message: String,
}

impl Failure {
    /// A failure named after the port error's kind, as the steps name it (a test of
    /// `a2a-fn-steps` checks the two agree).
    pub fn from_port(e: &PortError) -> Self {
        let error_type = match e {
            PortError::Conflict(_) | PortError::Unavailable(_) => error_type::TRANSIENT,
            PortError::NotFound(_) | PortError::Invalid(_) => error_type::PERMANENT_INPUT,
            PortError::Corrupt(_) => error_type::PERMANENT_VERIFY,
            PortError::Backend(_) => error_type::PERMANENT,
        };
        Self {
            error_type,
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Failure> for lambda_runtime::Diagnostic {
    fn from(f: Failure) -> Self {
        lambda_runtime::Diagnostic {
            error_type: f.error_type.to_owned(),
            error_message: f.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_missing_variables_are_named() {
        // A name no other test or process sets.
        let name = "A2A_FN_BOOTSTRAP_TEST_UNSET";
        assert_eq!(var(name), None);
        assert_eq!(required(name).unwrap_err(), format!("{name} is not set"));
        let mut env = Env::new();
        assert_eq!(env.whole(name, 1u32), None);
        assert_eq!(env.required(name), "");
        assert_eq!(
            env.finish(()).unwrap_err().to_string(),
            format!("{name} is not set")
        );
    }

    #[test]
    fn an_environment_names_every_problem_at_once() {
        let mut env = Env::from_pairs(&[("A", "x"), ("N", "0"), ("M", " 7 "), ("BLANK", "  ")]);
        assert_eq!(env.required("A"), "x");
        assert_eq!(env.required("BLANK"), "");
        assert_eq!(env.whole("N", 1u32), None);
        assert_eq!(env.whole("M", 1u32), Some(7));
        assert_eq!(env.whole("UNSET", 1u32), None);
        assert_eq!(env.parsed("A", |v| v.parse::<u8>()), None);
        let e = env.finish(()).unwrap_err();
        assert_eq!(
            e.0,
            [
                "BLANK is not set",
                "N=\"0\": expected a whole number from 1",
                "A=\"x\": invalid digit found in string",
            ]
        );
        assert!(Env::from_fn(|_| None).finish(1).is_ok());
    }

    #[test]
    fn failures_carry_their_name_to_the_runtime() {
        let f = Failure::from_port(&PortError::Unavailable("DynamoDB: timed out".into()));
        let d = lambda_runtime::Diagnostic::from(f);
        assert_eq!(d.error_type, "A2A.Transient");
        assert_eq!(d.error_message, "unavailable: DynamoDB: timed out");
        let f = Failure::from_port(&PortError::NotFound("table t".into()));
        assert_eq!(f.error_type, "A2A.Permanent.Input");
    }
}

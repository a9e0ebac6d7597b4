//! `Workflows` on AWS Step Functions: one state machine per instance kind; and
//! `Activities`, the worker's side of the source steps' activity tasks.

use a2a_core::{
    Activities, ActivityTask, ExecutionInfo, ExecutionStatus, InstanceKind, PortError,
    StartOutcome, Workflows,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::types::ExecutionStatus as SfnStatus;
use chrono::{DateTime, Utc};

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::{Call, classify};

const SERVICE: &str = "Step Functions";

/// The [`Workflows`] port on Step Functions.
#[derive(Debug, Clone)]
pub struct SfnWorkflows {
    client: Client,
    migrate_arn: String,
    provision_arn: String,
}

impl SfnWorkflows {
    /// Starts `migrate` instances on `migrate_arn` and `provision` ones on `provision_arn`.
    pub fn new(
        client: Client,
        migrate_arn: impl Into<String>,
        provision_arn: impl Into<String>,
    ) -> Self {
        Self {
            client,
            migrate_arn: migrate_arn.into(),
            provision_arn: provision_arn.into(),
        }
    }

    /// Like [`SfnWorkflows::new`], with a client made from `conf`.
    pub fn from_conf(
        conf: &SdkConfig,
        migrate_arn: impl Into<String>,
        provision_arn: impl Into<String>,
    ) -> Self {
        Self::new(Client::new(conf), migrate_arn, provision_arn)
    }

    /// Creates a state machine from an ASL `definition` and returns its ARN. For tests and
    /// setup against an emulator; a deployment creates them from `template.yaml`.
    pub async fn create_state_machine(
        client: &Client,
        name: &str,
        definition: &str,
        role_arn: &str,
    ) -> Result<String, PortError> {
        let resource = format!("state machine {name:?}");
        let out = client
            .create_state_machine()
            .name(name)
            .definition(definition)
            .role_arn(role_arn)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "CreateStateMachine", &resource)))?;
        Ok(out.state_machine_arn().to_owned())
    }

    /// The role ARN tests and emulator setups give a state machine: moto checks only its form.
    pub const TEST_ROLE: &'static str = "arn:aws:iam::123456789012:role/a2a-workflows";

    /// Creates a state machine whose executions only wait ten minutes, and returns its ARN:
    /// it stands in for a workflow where a test needs executions that start and run, not
    /// steps. For tests and benchmarks against an emulator.
    pub async fn create_waiting_machine(client: &Client, name: &str) -> Result<String, PortError> {
        let definition = r#"{"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": true}}}"#;
        Self::create_state_machine(client, name, definition, Self::TEST_ROLE).await
    }

    fn machine(&self, kind: InstanceKind) -> &str {
        match kind {
            InstanceKind::Migrate => &self.migrate_arn,
            InstanceKind::Provision => &self.provision_arn,
        }
    }
}

/// The ARN of execution `name` of state machine `machine_arn`: AWS derives it so, which
/// lets a refused duplicate start still name the execution that exists.
fn execution_arn(machine_arn: &str, name: &str) -> Option<String> {
    let (head, machine) = machine_arn.rsplit_once(":stateMachine:")?;
    Some(format!("{head}:execution:{machine}:{name}"))
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn status_of(s: &SfnStatus) -> Result<ExecutionStatus, PortError> {
    Ok(match s {
        SfnStatus::Running | SfnStatus::PendingRedrive => ExecutionStatus::Running,
        SfnStatus::Succeeded => ExecutionStatus::Succeeded,
        SfnStatus::Failed => ExecutionStatus::Failed,
        SfnStatus::TimedOut => ExecutionStatus::TimedOut,
        SfnStatus::Aborted => ExecutionStatus::Aborted,
        other => {
            return Err(PortError::Corrupt(format!(
                "{SERVICE} returned an execution status this build does not know: {}",
                other.as_str()
            )));
        }
    })
}

#[async_trait]
impl Workflows for SfnWorkflows {
    async fn start(
        &self,
        kind: InstanceKind,
        name: &str,
        input: serde_json::Value,
    ) -> Result<StartOutcome, PortError> {
        let machine = self.machine(kind);
        let resource = format!("state machine {machine} execution {name:?}");
        let sent = self
            .client
            .start_execution()
            .state_machine_arn(machine)
            .name(name)
            .input(input.to_string())
            .send()
            .await;
        match sent {
            Ok(out) => Ok(StartOutcome::Started(out.execution_arn().to_owned())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_already_exists()) =>
            {
                let arn = execution_arn(machine, name).ok_or_else(|| {
                    PortError::Invalid(format!("{machine:?} is not a state machine ARN"))
                })?;
                Ok(StartOutcome::AlreadyExists(arn))
            }
            Err(e) => Err(classify(
                &e,
                Call::new(SERVICE, "StartExecution", &resource),
            )),
        }
    }

    async fn describe(&self, id: &str) -> Result<ExecutionInfo, PortError> {
        let resource = format!("execution {id}");
        let out = self
            .client
            .describe_execution()
            .execution_arn(id)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "DescribeExecution", &resource)))?;
        let output =
            match out.output() {
                Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                    PortError::Corrupt(format!("{resource}: output is not JSON: {e}"))
                })?),
                None => None,
            };
        Ok(ExecutionInfo {
            id: out.execution_arn().to_owned(),
            status: status_of(out.status())?,
            started_at: to_chrono(out.start_date()).ok_or_else(|| {
                PortError::Corrupt(format!("{resource}: start date out of range"))
            })?,
            stopped_at: out.stop_date().and_then(to_chrono),
            output,
            error: out.error().map(str::to_owned),
            cause: out.cause().map(str::to_owned),
        })
    }

    async fn stop(&self, id: &str, error: &str, cause: &str) -> Result<(), PortError> {
        let resource = format!("execution {id}");
        self.client
            .stop_execution()
            .execution_arn(id)
            .error(error)
            .cause(cause)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "StopExecution", &resource)))?;
        Ok(())
    }
}

/// The [`Activities`] port on Step Functions: `GetActivityTask`, `SendTaskHeartbeat`,
/// `SendTaskSuccess`, `SendTaskFailure`. A task no longer wanted (timed out, or its
/// execution ended) is `NotFound`.
#[derive(Debug, Clone)]
pub struct SfnActivities {
    client: Client,
}

/// Step Functions holds a poll for up to 60 s: an attempt may take that long and more.
const POLL_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(70);

/// Step Functions refuses longer error names and causes.
const MAX_ERROR: usize = 256;
const MAX_CAUSE: usize = 32_768;

impl SfnActivities {
    /// Over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Over a client made from `conf`.
    pub fn from_conf(conf: &SdkConfig) -> Self {
        Self::new(Client::new(conf))
    }
}

/// The first `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The token as logs may show it: its start only (it grants answering the task).
fn short(token: &str) -> String {
    format!("{}…", cut(token, 12))
}

/// How a call on a task token ended: a token Step Functions no longer knows (timed out,
/// answered already, or not a token) is `NotFound`, so the worker lets the task go.
fn answered<O, E>(
    r: Result<O, SdkError<E, HttpResponse>>,
    token: &str,
    op: &'static str,
) -> Result<(), PortError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    const GONE: [&str; 3] = ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"];
    let resource = format!("task {}", short(token));
    match r {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .and_then(|s| s.code())
                .is_some_and(|c| GONE.contains(&c)) =>
        {
            Err(PortError::NotFound(format!("{resource}: no longer wanted")))
        }
        Err(e) => Err(classify(&e, Call::new(SERVICE, op, &resource))),
    }
}

#[async_trait]
impl Activities for SfnActivities {
    async fn poll(&self, activity: &str, worker: &str) -> Result<Option<ActivityTask>, PortError> {
        let resource = format!("activity {activity}");
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(crate::config::CONNECT_TIMEOUT)
            .operation_attempt_timeout(POLL_ATTEMPT_TIMEOUT)
            .build();
        let out = self
            .client
            .get_activity_task()
            .activity_arn(activity)
            .worker_name(worker)
            .customize()
            .config_override(aws_sdk_sfn::config::Builder::default().timeout_config(timeouts))
            .send()
            .await
            .map_err(|e| classify(&e, Call::new(SERVICE, "GetActivityTask", &resource)))?;
        let Some(token) = out.task_token().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let input = match out.input() {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                PortError::Corrupt(format!("{resource}: a task's input is not JSON: {e}"))
            })?,
            None => serde_json::Value::Null,
        };
        Ok(Some(ActivityTask {
            token: token.to_owned(),
            input,
        }))
    }

    async fn heartbeat(&self, token: &str) -> Result<(), PortError> {
        let r = self
            .client
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await;
        answered(r, token, "SendTaskHeartbeat")
    }

    async fn succeed(&self, token: &str, output: &serde_json::Value) -> Result<(), PortError> {
        let r = self
            .client
            .send_task_success()
            .task_token(token)
            .output(output.to_string())
            .send()
            .await;
        answered(r, token, "SendTaskSuccess")
    }

    async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<(), PortError> {
        let r = self
            .client
            .send_task_failure()
            .task_token(token)
            .error(cut(error, MAX_ERROR))
            .cause(cut(cause, MAX_CAUSE))
            .send()
            .await;
        answered(r, token, "SendTaskFailure")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_arns_derive_from_the_machine() {
        assert_eq!(
            execution_arn(
                "arn:aws:states:eu-west-1:123456789012:stateMachine:migrate-instance",
                "08012345-migrate-1"
            )
            .as_deref(),
            Some(
                "arn:aws:states:eu-west-1:123456789012:execution:migrate-instance:08012345-migrate-1"
            )
        );
        assert_eq!(execution_arn("arn:aws:lambda:x", "n"), None);
    }

    #[test]
    fn an_answer_is_cut_to_what_step_functions_takes_and_a_token_shows_its_start_only() {
        assert_eq!(cut("abc", 5), "abc");
        // A character is never split.
        assert_eq!(cut("aé", 2), "a");
        let long = "x".repeat(MAX_CAUSE + 10);
        assert_eq!(cut(&long, MAX_CAUSE).len(), MAX_CAUSE);
        let token = "AAAAAAAAAAAAsecret-part-of-the-token";
        let shown = short(token);
        assert!(
            shown.starts_with("AAAAAAAAAAAA") && !shown.contains("secret"),
            "{shown}"
        );
    }
}

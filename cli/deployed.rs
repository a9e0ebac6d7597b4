//! `--aws` and `--stack NAME`: the console's commands (`status`, `history`, `report`,
//! `retry`, `cancel`) and `a2a worker` on the deployed system. With `--stack`, its table,
//! queue, bucket, state machines and activities come from the stack's outputs
//! (`a2a_aws::stack`, read once per command); with `--aws` alone they are given directly
//! (`--state dynamodb:TABLE`, `--queue sqs:URL`, the state machine flags, or a2a.toml).

use std::sync::Arc;

use a2a_aws::stack::DeployedStack;
use a2a_core::Workflows;
use clap::Args;

use crate::backends::{Backends, BlobSpec, QueueSpec, StateSpec};
use crate::{CliError, Config};

/// The deployed system, named by a stack or given directly.
#[derive(Debug, Clone, Default, Args)]
pub struct AwsArgs {
    /// Read (and move) the deployed system: its DynamoDB table, and Step Functions for
    /// the executions. The table is the stack's (`--stack`) or `--state dynamodb:TABLE`
    /// (or a2a.toml's); the state machines the stack's, the flags' or a2a.toml's `[aws]`.
    #[arg(long)]
    pub aws: bool,
    /// The deployed CloudFormation stack (name or ARN) whose outputs name the table, the
    /// queue and the state machines; implies `--aws`.
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
}

impl AwsArgs {
    /// `--aws` or `--stack` was given.
    pub fn on(&self) -> bool {
        self.aws || self.stack.is_some()
    }
}

/// What a command needs of the stack beyond its table and state machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// The table and the state machines only.
    Table,
    /// Also the queue the dispatcher reads (`a2a retry`).
    Queue,
}

/// Maps a stack's refusal to the CLI's: a bad name or a missing part is the input (2),
/// CloudFormation out of reach the environment (3).
pub(crate) fn stack_error(e: a2a_aws::stack::StackError) -> CliError {
    use a2a_aws::stack::StackError;
    match e {
        StackError::Port(p) => CliError::from_port("CloudFormation", p),
        other => CliError::input(
            other.to_string(),
            "or run without --stack, giving --state dynamodb:TABLE and the state machine ARNs",
        ),
    }
}

/// The configuration of a console command: as given without `--aws`/`--stack`; with
/// `--stack`, the stack's table, queue and state machines in place of the configured
/// ones; with `--aws` alone, the configured ones, which must be AWS's.
pub(crate) async fn config(
    config: &Config,
    ports: &Backends,
    aws: &AwsArgs,
    needs: Needs,
) -> Result<Config, CliError> {
    let mut out = config.clone();
    if let Some(name) = &aws.stack {
        let stack = ports.stack(name).await?;
        out.state = StateSpec::DynamoDb {
            table: stack.table().map_err(stack_error)?.to_owned(),
        };
        let (migrate, provision) = stack.state_machines().map_err(stack_error)?;
        out.aws.migrate_state_machine = Some(migrate);
        out.aws.provision_state_machine = Some(provision);
        if needs == Needs::Queue {
            out.queue = QueueSpec::Sqs {
                url: stack.queue_url().map_err(stack_error)?.to_owned(),
            };
        }
        return Ok(out);
    }
    if !aws.aws {
        return Ok(out);
    }
    if !matches!(out.state, StateSpec::DynamoDb { .. }) {
        return Err(CliError::input(
            format!(
                "--aws: the deployed table is not known (the state is {})",
                out.state
            ),
            "give --stack NAME (the deployed stack), or --state dynamodb:TABLE",
        ));
    }
    if needs == Needs::Queue && !matches!(out.queue, QueueSpec::Sqs { .. }) {
        return Err(CliError::input(
            "--aws: the deployed queue is not known: the start messages would be lost with \
             the in-process queue",
            "give --stack NAME (the deployed stack), or --queue sqs:QUEUE_URL",
        ));
    }
    Ok(out)
}

/// The worker's configuration and activities from `stack`: its table and bucket in place
/// of the configured state and blobs, and every ARN of its `WorkerActivityArns`.
pub(crate) async fn worker(
    config: &Config,
    ports: &Backends,
    name: &str,
) -> Result<(Config, Vec<String>), CliError> {
    let stack = ports.stack(name).await?;
    let mut out = config.clone();
    out.state = StateSpec::DynamoDb {
        table: stack.table().map_err(stack_error)?.to_owned(),
    };
    out.blobs = BlobSpec::S3 {
        bucket: stack.bucket().map_err(stack_error)?.to_owned(),
        prefix: String::new(),
    };
    let activities = stack.activities().map_err(stack_error)?;
    Ok((out, activities))
}

/// The deployed state machines of `config` (`[aws]`, or the stack's), if both are known.
pub(crate) async fn workflows(config: &Config, ports: &Backends) -> Option<Arc<dyn Workflows>> {
    let migrate = config.aws.migrate_state_machine.clone()?;
    let provision = config.aws.provision_state_machine.clone()?;
    Some(ports.step_functions(migrate, provision).await)
}

/// Reads the stack `name` (once: a command asks again for nothing).
pub(crate) async fn describe(
    sdk: &a2a_aws::config::SdkConfig,
    name: &str,
) -> Result<DeployedStack, CliError> {
    DeployedStack::describe(sdk, name)
        .await
        .map_err(stack_error)
}

/// How Step Functions says the execution `id` stands (`RUNNING`, `SUCCEEDED`, `FAILED`,
/// `TIMED_OUT`, `ABORTED`, or `NOT_FOUND`), with its error name.
pub(crate) async fn execution_status(
    flows: &dyn Workflows,
    id: &str,
) -> Result<(String, Option<String>), CliError> {
    match flows.describe(id).await {
        Ok(info) => {
            let status = serde_json::to_value(info.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{:?}", info.status));
            Ok((status, info.error))
        }
        Err(a2a_core::PortError::NotFound(_)) => Ok(("NOT_FOUND".into(), None)),
        Err(e) => Err(CliError::from_port("Step Functions", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(home: &std::path::Path, flags: &[&str]) -> Config {
        use clap::Parser as _;
        let home = home.display().to_string();
        let mut args = vec!["a2a", "--home", &home];
        args.extend_from_slice(flags);
        args.push("status");
        Config::resolve(&crate::Cli::try_parse_from(args).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn aws_alone_takes_the_given_table_and_refuses_the_embedded_ones() {
        let home = tempfile::tempdir().unwrap();
        let ports = Backends::new();
        let aws = AwsArgs {
            aws: true,
            stack: None,
        };
        let embedded = resolve(home.path(), &[]);
        let e = config(&embedded, &ports, &aws, Needs::Table)
            .await
            .unwrap_err();
        let e = format!("{e:?}");
        assert!(
            e.contains("state is sqlite") && e.contains("--stack NAME"),
            "{e}"
        );
        let off = config(&embedded, &ports, &AwsArgs::default(), Needs::Queue)
            .await
            .unwrap();
        assert_eq!(off, embedded, "without --aws nothing changes");

        let table = resolve(home.path(), &["--state", "dynamodb:a2a-state-prod"]);
        let got = config(&table, &ports, &aws, Needs::Table).await.unwrap();
        assert_eq!(got, table);
        let e = config(&table, &ports, &aws, Needs::Queue)
            .await
            .unwrap_err();
        let e = format!("{e:?}");
        assert!(e.contains("--queue sqs:QUEUE_URL"), "{e}");
        let queued = resolve(
            home.path(),
            &[
                "--state",
                "dynamodb:a2a-state-prod",
                "--queue",
                "sqs:https://sqs.eu-west-1.amazonaws.com/1/a2a-fanout-prod",
            ],
        );
        assert!(config(&queued, &ports, &aws, Needs::Queue).await.is_ok());
    }
}

//! The deployed stack found by its name: the outputs of `template.yaml` that name its
//! table, queue, bucket, state machines and the worker's activities, read once through
//! CloudFormation's `DescribeStacks`. The output names are written here only;
//! `tests/template.rs` checks that `template.yaml` declares each of them.

use std::collections::BTreeMap;
use std::fmt;

use a2a_core::PortError;
use aws_config::SdkConfig;
use aws_sdk_cloudformation::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::{Call, classify};

/// Output: the state table's name.
pub const STATE_TABLE: &str = "StateTableName";
/// Output: the fan-out queue's URL.
pub const QUEUE_URL: &str = "FanOutQueueUrl";
/// Output: the data bucket's name.
pub const BUCKET: &str = "DataBucketName";
/// Output: the `migrate-instance` state machine's ARN.
pub const MIGRATE_STATE_MACHINE: &str = "MigrateStateMachineArn";
/// Output: the `provision-instance` state machine's ARN.
pub const PROVISION_STATE_MACHINE: &str = "ProvisionStateMachineArn";
/// Output: the source steps' activity ARNs, comma-separated.
pub const WORKER_ACTIVITIES: &str = "WorkerActivityArns";

/// Every output A2A reads from a deployed stack.
pub const OUTPUTS: [&str; 6] = [
    STATE_TABLE,
    QUEUE_URL,
    BUCKET,
    MIGRATE_STATE_MACHINE,
    PROVISION_STATE_MACHINE,
    WORKER_ACTIVITIES,
];

/// Why a stack's part could not be found. Each message names the stack, the output and
/// what to do.
#[derive(Debug)]
pub enum StackError {
    /// The name is not a CloudFormation stack name.
    BadName(String),
    /// No stack of that name in this account and region.
    NotFound {
        /// The stack's name.
        stack: String,
    },
    /// The stack has no such output, or an empty one.
    MissingOutput {
        /// The stack's name.
        stack: String,
        /// Its status (`CREATE_COMPLETE`, `ROLLBACK_COMPLETE`, …).
        status: String,
        /// The output wanted.
        output: &'static str,
    },
    /// The output is there but does not hold what it should.
    BadOutput {
        /// The stack's name.
        stack: String,
        /// The output.
        output: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// CloudFormation could not be asked (network, credentials, throttling).
    Port(PortError),
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName(name) => write!(
                f,
                "{name:?} is not a CloudFormation stack name (a letter, then letters, \
                 digits and '-', 128 at most; or a stack ARN)"
            ),
            Self::NotFound { stack } => write!(
                f,
                "stack {stack:?} does not exist in this account and region (AWS_REGION, \
                 AWS_PROFILE): check its name (`aws cloudformation list-stacks`), or deploy \
                 template.yaml under that name (`sam deploy --stack-name {stack}`)"
            ),
            Self::MissingOutput {
                stack,
                status,
                output,
            } => write!(
                f,
                "stack {stack:?} ({status}) has no output {output}: it was deployed from \
                 another template.yaml, or is not deployed yet; deploy this version's \
                 template.yaml (`sam deploy --stack-name {stack}`), or give the resource \
                 directly"
            ),
            Self::BadOutput { stack, output, why } => write!(
                f,
                "stack {stack:?}: output {output}: {why}; deploy this version's template.yaml, \
                 or give the resource directly"
            ),
            Self::Port(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StackError {}

/// A deployed stack's outputs, as `DescribeStacks` gave them.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployedStack {
    /// The name it was asked by.
    pub name: String,
    /// Its status when read.
    pub status: String,
    /// Every output, by key.
    pub outputs: BTreeMap<String, String>,
}

/// Checks a stack name (or stack ARN) before it names anything.
pub fn check_name(name: &str) -> Result<(), StackError> {
    if name.starts_with("arn:") && name.contains(":stack/") {
        return Ok(());
    }
    let mut chars = name.chars();
    let ok = name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(StackError::BadName(name.to_owned()))
    }
}

impl DeployedStack {
    /// Reads the stack `name`'s outputs over a client made from `conf`.
    pub async fn describe(conf: &SdkConfig, name: &str) -> Result<Self, StackError> {
        Self::describe_with(&Client::new(conf), name).await
    }

    /// Reads the stack `name`'s outputs with `client`.
    pub async fn describe_with(client: &Client, name: &str) -> Result<Self, StackError> {
        check_name(name)?;
        let resource = format!("stack {name:?}");
        let out = match client.describe_stacks().stack_name(name).send().await {
            Ok(out) => out,
            // CloudFormation says a missing stack with a generic code and this message.
            Err(e)
                if e.code() == Some("ValidationError")
                    && e.message().is_some_and(|m| m.contains("does not exist")) =>
            {
                return Err(StackError::NotFound {
                    stack: name.to_owned(),
                });
            }
            Err(e) => {
                let call = Call::new("CloudFormation", "DescribeStacks", &resource);
                return Err(StackError::Port(classify(&e, call)));
            }
        };
        let Some(stack) = out.stacks().first() else {
            return Err(StackError::NotFound {
                stack: name.to_owned(),
            });
        };
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        Ok(Self {
            name: name.to_owned(),
            status: stack
                .stack_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|| "status unknown".into()),
            outputs,
        })
    }

    /// The output `key`, or why it is missing.
    pub fn output(&self, key: &'static str) -> Result<&str, StackError> {
        match self.outputs.get(key).map(|v| v.trim()) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(StackError::MissingOutput {
                stack: self.name.clone(),
                status: self.status.clone(),
                output: key,
            }),
        }
    }

    fn bad(&self, output: &'static str, why: String) -> StackError {
        StackError::BadOutput {
            stack: self.name.clone(),
            output,
            why,
        }
    }

    /// The state table's name.
    pub fn table(&self) -> Result<&str, StackError> {
        self.output(STATE_TABLE)
    }

    /// The fan-out queue's URL.
    pub fn queue_url(&self) -> Result<&str, StackError> {
        let url = self.output(QUEUE_URL)?;
        if url.starts_with("https://") || url.starts_with("http://") {
            Ok(url)
        } else {
            Err(self.bad(QUEUE_URL, format!("{url:?} is not a queue URL")))
        }
    }

    /// The data bucket's name.
    pub fn bucket(&self) -> Result<&str, StackError> {
        self.output(BUCKET)
    }

    /// The ARNs of `migrate-instance` and `provision-instance`.
    pub fn state_machines(&self) -> Result<(String, String), StackError> {
        let mut arns = Vec::new();
        for key in [MIGRATE_STATE_MACHINE, PROVISION_STATE_MACHINE] {
            let arn = self.output(key)?;
            if !arn.starts_with("arn:") || !arn.contains(":stateMachine:") {
                return Err(self.bad(key, format!("{arn:?} is not a state machine ARN")));
            }
            arns.push(arn.to_owned());
        }
        let provision = arns.pop().expect("two ARNs");
        Ok((arns.pop().expect("two ARNs"), provision))
    }

    /// The worker's activities: every ARN of `WorkerActivityArns`, in its order, each an
    /// activity ARN, none twice.
    pub fn activities(&self) -> Result<Vec<String>, StackError> {
        let list = self.output(WORKER_ACTIVITIES)?;
        let mut arns: Vec<String> = Vec::new();
        for arn in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            if !arn.starts_with("arn:") || !arn.contains(":activity:") {
                return Err(self.bad(WORKER_ACTIVITIES, format!("{arn:?} is not an activity ARN")));
            }
            if arns.iter().any(|a| a == arn) {
                return Err(self.bad(WORKER_ACTIVITIES, format!("{arn} is listed twice")));
            }
            arns.push(arn.to_owned());
        }
        if arns.is_empty() {
            return Err(self.bad(WORKER_ACTIVITIES, "it names no activity".into()));
        }
        Ok(arns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(outputs: &[(&str, &str)]) -> DeployedStack {
        DeployedStack {
            name: "a2a-prod".into(),
            status: "UPDATE_COMPLETE".into(),
            outputs: outputs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    const ACT: &str = "arn:aws:states:eu-west-1:123456789012:activity:a2a-prod-Freeze";

    #[test]
    fn names_are_checked_before_they_name_anything() {
        for ok in [
            "a2a-prod",
            "A",
            "arn:aws:cloudformation:eu-west-1:1:stack/a2a/x",
        ] {
            check_name(ok).unwrap();
        }
        for bad in [
            "",
            "1a2a",
            "a2a_prod",
            "a2a prod",
            "a2a/../x",
            &"a".repeat(129),
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(
                e.to_string().contains("not a CloudFormation stack name"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_missing_output_names_the_stack_the_output_and_what_to_do() {
        let s = stack(&[(STATE_TABLE, "a2a-state-prod"), (WORKER_ACTIVITIES, " ")]);
        assert_eq!(s.table().unwrap(), "a2a-state-prod");
        for e in [s.activities().unwrap_err(), s.queue_url().unwrap_err()] {
            let m = e.to_string();
            assert!(
                m.contains("stack \"a2a-prod\" (UPDATE_COMPLETE) has no output"),
                "{m}"
            );
            assert!(m.contains("sam deploy --stack-name a2a-prod"), "{m}");
        }
        assert!(
            s.activities()
                .unwrap_err()
                .to_string()
                .contains(WORKER_ACTIVITIES)
        );
    }

    #[test]
    fn activities_are_split_checked_and_kept_in_order() {
        let two = format!("{ACT}, {}", ACT.replace("Freeze", "SyncFiles"));
        let s = stack(&[(WORKER_ACTIVITIES, &two)]);
        assert_eq!(s.activities().unwrap().len(), 2);
        assert!(s.activities().unwrap()[1].ends_with("-SyncFiles"));
        for bad in [
            format!("{ACT},{ACT}"),
            "None,None".to_owned(),
            ",,".to_owned(),
        ] {
            let s = stack(&[(WORKER_ACTIVITIES, &bad)]);
            let m = s.activities().unwrap_err().to_string();
            assert!(m.contains("output WorkerActivityArns"), "{bad}: {m}");
        }
    }

    #[test]
    fn state_machines_come_in_the_order_migrate_provision() {
        let arn = |n: &str| format!("arn:aws:states:eu-west-1:1:stateMachine:{n}");
        let s = stack(&[
            (MIGRATE_STATE_MACHINE, &arn("migrate-instance")),
            (PROVISION_STATE_MACHINE, &arn("provision-instance")),
        ]);
        let (m, p) = s.state_machines().unwrap();
        assert!(m.ends_with("migrate-instance") && p.ends_with("provision-instance"));
        let s = stack(&[
            (MIGRATE_STATE_MACHINE, "migrate-instance"),
            (PROVISION_STATE_MACHINE, &arn("p")),
        ]);
        let m = s.state_machines().unwrap_err().to_string();
        assert!(m.contains("not a state machine ARN"), "{m}");
    }
}

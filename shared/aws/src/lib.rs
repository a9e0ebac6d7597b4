//! AWS adapters of the A2A ports: `DynamoDbStore` (`InstanceStore`), `S3Blob`
//! (`BlobStore`), `SqsQueue` (`WorkQueue`), `SfnWorkflows` (`Workflows`), `SfnActivities` (`Activities`), `RdsSnapshots`
//! (`Snapshots`), `SmSecrets` (`SecretStore`); and `DbSecret`, the target databases' user
//! and password from a Secrets Manager secret; `stack`, the deployed stack's outputs found
//! by its name (CloudFormation, feature `cloudformation`).
//!
//! Each adapter sits behind a Cargo feature of the same name (`dynamodb`, `s3`, `sqs`, `sfn`,
//! `rds`; `secretsmanager` for `SmSecrets` and `DbSecret`) so that a Lambda compiles only the SDKs it
//! calls. [`config::sdk_config`] loads the shared SDK configuration with short timeouts,
//! and [`error::classify`] turns any SDK error into a [`a2a_core::PortError`] the same way
//! for every service.

#![warn(missing_docs)]

pub mod config;
pub mod error;

// Each service behind its feature: its adapter, and its SDK crate, so that callers build
// clients with the very versions the adapters take.
#[cfg(feature = "dynamodb")]
mod dynamodb;
#[cfg(feature = "dynamodb")]
pub use {
    aws_sdk_dynamodb,
    dynamodb::{DynamoDbStore, STATUS_WAVE_INDEX},
};
#[cfg(feature = "rds")]
mod rds;
#[cfg(feature = "rds")]
pub use {aws_sdk_rds, rds::RdsSnapshots};
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "s3")]
pub use {aws_sdk_s3, s3::S3Blob};
#[cfg(feature = "secretsmanager")]
mod secrets;
#[cfg(feature = "secretsmanager")]
pub use {
    aws_sdk_secretsmanager,
    secrets::{DbCredentials, DbSecret, SmSecrets},
};
#[cfg(feature = "sfn")]
mod sfn;
#[cfg(feature = "sfn")]
pub use {
    aws_sdk_sfn,
    sfn::{SfnActivities, SfnWorkflows},
};
#[cfg(feature = "cloudformation")]
pub mod stack;
#[cfg(feature = "cloudformation")]
pub use aws_sdk_cloudformation;
#[cfg(feature = "sqs")]
mod sqs;
#[cfg(feature = "sqs")]
pub use {aws_sdk_sqs, sqs::SqsQueue};

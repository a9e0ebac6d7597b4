//! The backend choices (`sqlite` | `dynamodb:TABLE`, `dir` | `s3://BUCKET/PREFIX`,
//! `memory` | `sqs:URL`) and opening them as ports.

use std::fmt;
use std::sync::Arc;

use a2a_core::InstanceStore;

use crate::{CliError, Config};

/// Which state store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StateSpec {
    /// SQLite, in `<home>/state.db`.
    #[default]
    Sqlite,
    /// A DynamoDB table of the single-table design.
    DynamoDb {
        /// The table's name.
        table: String,
    },
}

/// Which blob store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BlobSpec {
    /// A folder, `<home>/blobs`.
    #[default]
    Dir,
    /// An S3 bucket, keys under a prefix.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without slashes at either end; may be empty.
        prefix: String,
    },
}

/// Which work queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueueSpec {
    /// In-process: it lives as long as the command.
    #[default]
    Memory,
    /// An SQS queue, by URL.
    Sqs {
        /// The queue URL.
        url: String,
    },
}

impl StateSpec {
    /// Parses `sqlite` or `dynamodb:TABLE`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "sqlite" {
            return Ok(Self::Sqlite);
        }
        let Some(table) = s.strip_prefix("dynamodb:") else {
            return Err("expected \"sqlite\" or \"dynamodb:TABLE\"".into());
        };
        let ok_len = (3..=255).contains(&table.len());
        let ok_chars = table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok_len || !ok_chars {
            return Err(format!(
                "{table:?} is not a DynamoDB table name (3 to 255 of a-z A-Z 0-9 _ . -)"
            ));
        }
        Ok(Self::DynamoDb {
            table: table.into(),
        })
    }
}

impl BlobSpec {
    /// Parses `dir` or `s3://BUCKET[/PREFIX]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "dir" {
            return Ok(Self::Dir);
        }
        let Some(rest) = s.strip_prefix("s3://") else {
            return Err("expected \"dir\" or \"s3://BUCKET/PREFIX\"".into());
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let ok_len = (3..=63).contains(&bucket.len());
        let ok_chars = bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-".contains(&b));
        if !ok_len || !ok_chars {
            return Err(format!(
                "{bucket:?} is not an S3 bucket name (3 to 63 of a-z 0-9 . -)"
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            a2a_core::BlobKey::parse(prefix).map_err(|e| format!("prefix: {e}"))?;
        }
        Ok(Self::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        })
    }
}

impl QueueSpec {
    /// Parses `memory` or `sqs:URL`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "memory" {
            return Ok(Self::Memory);
        }
        match s.strip_prefix("sqs:") {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Ok(Self::Sqs { url: url.into() })
            }
            Some(url) => Err(format!("{url:?} is not a queue URL (http:// or https://)")),
            None => Err("expected \"memory\" or \"sqs:QUEUE_URL\"".into()),
        }
    }
}

impl fmt::Display for StateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite => f.write_str("sqlite"),
            Self::DynamoDb { table } => write!(f, "dynamodb:{table}"),
        }
    }
}

impl fmt::Display for BlobSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir => f.write_str("dir"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl fmt::Display for QueueSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Sqs { url } => write!(f, "sqs:{url}"),
        }
    }
}

/// Opens the state store. With `create` false, an embedded store that does not exist
/// yet is `None`, so read-only commands leave an empty home as they found it.
pub async fn open_state(
    config: &Config,
    create: bool,
) -> Result<Option<Arc<dyn InstanceStore>>, CliError> {
    match &config.state {
        StateSpec::Sqlite => {
            let path = config.home.join("state.db");
            if !create && !path.exists() {
                return Ok(None);
            }
            let store = a2a_local::SqliteStore::open(&path)
                .await
                .map_err(|e| CliError::from_port("state (sqlite)", e))?;
            Ok(Some(Arc::new(store)))
        }
        StateSpec::DynamoDb { table } => {
            let conf = a2a_aws::config::sdk_config().await;
            Ok(Some(Arc::new(a2a_aws::DynamoDbStore::from_conf(
                &conf, table,
            ))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for s in ["sqlite", "dynamodb:a2a-state"] {
            assert_eq!(StateSpec::parse(s).unwrap().to_string(), s);
        }
        for s in ["dir", "s3://agora-a2a/staging/eix"] {
            assert_eq!(BlobSpec::parse(s).unwrap().to_string(), s);
        }
        for s in ["memory", "sqs:https://sqs.eu-west-1.amazonaws.com/1/q"] {
            assert_eq!(QueueSpec::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn bad_specs_say_what_is_expected() {
        assert!(
            StateSpec::parse("dynamo")
                .unwrap_err()
                .contains("dynamodb:TABLE")
        );
        assert!(StateSpec::parse("dynamodb:a b").is_err());
        assert!(StateSpec::parse("dynamodb:").is_err());
        assert!(BlobSpec::parse("s3://Agora").is_err());
        assert!(BlobSpec::parse("s3://agora/../x").is_err());
        assert!(BlobSpec::parse("/tmp").is_err());
        assert!(QueueSpec::parse("sqs:queue-name").is_err());
    }
}

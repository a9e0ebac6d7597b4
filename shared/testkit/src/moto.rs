//! Resources in an AWS emulator (moto) for the functions' tests: the SDK clients from one
//! configuration, and a state table, buckets, queues and state machines under names unique
//! to the call, so that tests sharing one emulator never meet.
//!
//! Behind the `aws` feature (DynamoDB); `aws-s3`, `aws-sqs` and `aws-sfn` add one service
//! each. The helpers return the emulator's errors; the tests unwrap them.

use a2a_aws::{DynamoDbStore, aws_sdk_dynamodb};
use a2a_core::PortError;
use aws_config::SdkConfig;

use crate::{service_url, unique_name};

/// The SDK clients of one test, from [`a2a_aws::config::sdk_config`], which honours
/// `AWS_ENDPOINT_URL`.
#[derive(Debug, Clone)]
pub struct Moto {
    /// The shared SDK configuration, for adapters built from it.
    pub conf: SdkConfig,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// S3, path-style as emulators need.
    #[cfg(feature = "aws-s3")]
    pub s3: a2a_aws::aws_sdk_s3::Client,
    /// SQS.
    #[cfg(feature = "aws-sqs")]
    pub sqs: a2a_aws::aws_sdk_sqs::Client,
    /// Step Functions.
    #[cfg(feature = "aws-sfn")]
    pub sfn: a2a_aws::aws_sdk_sfn::Client,
}

impl Moto {
    /// The clients of every service the features enable. Makes no call.
    pub async fn new() -> Self {
        let conf = a2a_aws::config::sdk_config().await;
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(&conf),
            #[cfg(feature = "aws-s3")]
            s3: a2a_aws::aws_sdk_s3::Client::from_conf(
                a2a_aws::aws_sdk_s3::config::Builder::from(&conf)
                    .force_path_style(true)
                    .build(),
            ),
            #[cfg(feature = "aws-sqs")]
            sqs: a2a_aws::aws_sdk_sqs::Client::new(&conf),
            #[cfg(feature = "aws-sfn")]
            sfn: a2a_aws::aws_sdk_sfn::Client::new(&conf),
            conf,
        }
    }

    /// The clients for `test` when `AWS_ENDPOINT_URL` names an emulator; otherwise `None`,
    /// after [`service_url`]'s loud SKIP line (or its failure under `CI=true`).
    pub async fn for_test(test: &str) -> Option<Self> {
        service_url("AWS_ENDPOINT_URL", test)?;
        Some(Self::new().await)
    }

    /// A new state table (`a2a-state-…`, with its index), and the store over it; the
    /// store's `table()` names it.
    pub async fn state_table(&self) -> Result<DynamoDbStore, PortError> {
        let table = unique_name("a2a-state");
        DynamoDbStore::create_table(&self.dynamodb, &table).await?;
        Ok(DynamoDbStore::new(self.dynamodb.clone(), table))
    }

    /// A new bucket named from `prefix`, and its name.
    #[cfg(feature = "aws-s3")]
    pub async fn bucket(&self, prefix: &str) -> Result<String, PortError> {
        let bucket = unique_name(prefix);
        a2a_aws::S3Blob::create_bucket(&self.s3, &bucket).await?;
        Ok(bucket)
    }

    /// A new fan-out queue (`a2a-fanout-…`) whose messages go to its dead-letter queue
    /// (`…-dlq`) after three receives, as the template makes it.
    #[cfg(feature = "aws-sqs")]
    pub async fn fanout_queue(&self) -> Result<a2a_aws::SqsQueue, PortError> {
        a2a_aws::SqsQueue::create_with_dead_letter(&self.sqs, &unique_name("a2a-fanout"), 3).await
    }

    /// A new plain queue named from `prefix`, and its URL.
    #[cfg(feature = "aws-sqs")]
    pub async fn queue(&self, prefix: &str) -> Result<String, PortError> {
        a2a_aws::SqsQueue::create_plain(&self.sqs, &unique_name(prefix)).await
    }

    /// A new queue named from `prefix` that gets the S3 event of every object created in
    /// `bucket`, as the template wires the intake's uploads; its URL.
    #[cfg(all(feature = "aws-s3", feature = "aws-sqs"))]
    pub async fn notified_queue(&self, bucket: &str, prefix: &str) -> Result<String, PortError> {
        use a2a_aws::aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
        use a2a_aws::aws_sdk_sqs::types::QueueAttributeName;
        let emulator = |e: &dyn std::fmt::Display| PortError::Unavailable(e.to_string());
        let url = self.queue(prefix).await?;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| emulator(&e))?;
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .ok_or_else(|| emulator(&"the queue has no ARN"))?;
        let to_queue = QueueConfiguration::builder()
            .queue_arn(arn)
            .events(Event::S3ObjectCreated)
            .build()
            .map_err(|e| emulator(&e))?;
        self.s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(to_queue)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| emulator(&e))?;
        Ok(url)
    }

    /// The S3 event records (JSON) that `keep` accepts, read from the queue at `url` (and
    /// deleted from it) until `want` came or 20 s passed. moto leaves out two fields that AWS
    /// always sends and `aws_lambda_events` requires: they are added. An `s3:TestEvent` has
    /// no records.
    #[cfg(feature = "aws-sqs")]
    pub async fn s3_records(
        &self,
        url: &str,
        want: usize,
        keep: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<Vec<serde_json::Value>, PortError> {
        let emulator = |e: &dyn std::fmt::Display| PortError::Unavailable(e.to_string());
        let mut records = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while records.len() < want && std::time::Instant::now() < deadline {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| emulator(&e))?;
            for m in out.messages() {
                let json: serde_json::Value =
                    serde_json::from_str(m.body().unwrap_or_default()).map_err(|e| emulator(&e))?;
                for mut r in json["Records"].as_array().cloned().unwrap_or_default() {
                    if let Some(o) = r.as_object_mut() {
                        for field in ["userIdentity", "requestParameters"] {
                            o.entry(field).or_insert(serde_json::json!({}));
                        }
                    }
                    if keep(&r) {
                        records.push(r);
                    }
                }
                if let Some(receipt) = m.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map_err(|e| emulator(&e))?;
                }
            }
        }
        Ok(records)
    }

    /// A new state machine of `definition`, named from `prefix`, with the test role; its
    /// ARN.
    #[cfg(feature = "aws-sfn")]
    pub async fn state_machine(&self, prefix: &str, definition: &str) -> Result<String, PortError> {
        a2a_aws::SfnWorkflows::create_state_machine(
            &self.sfn,
            &unique_name(prefix),
            definition,
            a2a_aws::SfnWorkflows::TEST_ROLE,
        )
        .await
    }

    /// The names of the executions of state machine `arn`, sorted.
    #[cfg(feature = "aws-sfn")]
    pub async fn execution_names(&self, arn: &str) -> Result<Vec<String>, PortError> {
        use a2a_aws::error::{Call, classify};
        let resource = format!("state machine {arn:?}");
        let out = self
            .sfn
            .list_executions()
            .state_machine_arn(arn)
            .send()
            .await
            .map_err(|e| classify(&e, Call::new("Step Functions", "ListExecutions", &resource)))?;
        let mut names: Vec<String> = out
            .executions()
            .iter()
            .map(|e| e.name().to_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Two new state machines whose executions only wait
    /// ([`a2a_aws::SfnWorkflows::create_waiting_machine`]), for migrations and provisions:
    /// their ARNs in that order.
    #[cfg(feature = "aws-sfn")]
    pub async fn waiting_machines(&self) -> Result<(String, String), PortError> {
        let (m, p) = (unique_name("a2a-sm"), unique_name("a2a-sm"));
        let migrate = a2a_aws::SfnWorkflows::create_waiting_machine(&self.sfn, &m).await?;
        let provision = a2a_aws::SfnWorkflows::create_waiting_machine(&self.sfn, &p).await?;
        Ok((migrate, provision))
    }
}

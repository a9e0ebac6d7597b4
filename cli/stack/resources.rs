//! The template's data resources on the emulator at `AWS_ENDPOINT_URL`: the DynamoDB
//! tables (keys, indexes, billing and TTL as the template says), the buckets (and their
//! versioning), the queues (with their attributes and redrive policy), and the database
//! secret. Each creation is idempotent: a resource that is there already is taken as it
//! is, so `a2a stack up` may be run again over the same emulator.

use a2a_aws::aws_sdk_dynamodb as ddb;
use a2a_aws::aws_sdk_s3 as s3;
use a2a_aws::aws_sdk_secretsmanager as sm;
use a2a_aws::aws_sdk_sqs as sqs;
use a2a_aws::error::{Call, classify};
use a2a_core::PortError;
use serde_json::{Map, Value};

use a2a_stack::shape::Role;
use a2a_stack::template::{Attrs, Resolver, TemplateError, Unresolved};

/// The SDK clients of the emulator.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    /// DynamoDB.
    pub(crate) dynamodb: ddb::Client,
    /// S3, path-style.
    pub s3: s3::Client,
    /// SQS.
    pub(crate) sqs: sqs::Client,
    /// Secrets Manager.
    pub(crate) secrets: sm::Client,
}

impl Clients {
    /// The clients from the SDK's configuration (`AWS_ENDPOINT_URL` honoured).
    pub(crate) async fn load() -> Self {
        let conf = a2a_aws::config::sdk_config().await;
        Self {
            dynamodb: ddb::Client::new(&conf),
            s3: s3::Client::from_conf(
                s3::config::Builder::from(&conf)
                    .force_path_style(true)
                    .build(),
            ),
            sqs: sqs::Client::new(&conf),
            secrets: sm::Client::new(&conf),
        }
    }
}

/// Why the resources could not be made.
#[derive(Debug)]
pub(crate) enum CreateError {
    /// The template asks for what cannot be made (exit 2).
    Template(TemplateError),
    /// The emulator failed or does not answer (exit 3).
    Emulator(PortError),
}

impl From<TemplateError> for CreateError {
    fn from(e: TemplateError) -> Self {
        Self::Template(e)
    }
}

impl From<PortError> for CreateError {
    fn from(e: PortError) -> Self {
        Self::Emulator(e)
    }
}

fn s(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Creates every table, queue and bucket of `roles` in an order their references allow,
/// recording each one's `!Ref` and `!GetAtt` on `r`. Returns what was made, for the log.
pub(crate) async fn create(
    c: &Clients,
    r: &mut Resolver,
    roles: &[(String, Role)],
) -> Result<Vec<String>, CreateError> {
    let mut todo: Vec<(String, Role)> = roles
        .iter()
        .filter(|(_, role)| matches!(role, Role::Table | Role::Bucket | Role::Queue))
        .cloned()
        .collect();
    let mut made = Vec::new();
    while !todo.is_empty() {
        let mut left = Vec::new();
        let mut progress = false;
        for (id, role) in todo {
            let props = match r.properties(&id) {
                Ok(p) => p,
                // Another of these first (a queue's dead-letter queue).
                Err(Unresolved::Pending(other)) if roles.iter().any(|(o, _)| *o == other) => {
                    left.push((id, role));
                    continue;
                }
                Err(e) => {
                    return Err(r
                        .template()
                        .error(format!("resource {id}"), e.to_string())
                        .into());
                }
            };
            let name = r.attrs(&id).map(|a| a.reference.clone());
            let what = match role {
                Role::Table => {
                    let name = name.unwrap_or_default();
                    table(c, r, &id, &name, &props).await?;
                    format!("table {name}")
                }
                Role::Bucket => {
                    let name = name.unwrap_or_default();
                    bucket(c, &name, &props).await?;
                    format!("bucket {name}")
                }
                Role::Queue => {
                    let qname = s(props.get("QueueName"))
                        .unwrap_or_else(|| format!("{}-{id}", r.pseudo().stack_name));
                    let (url, arn) = queue(c, r, &id, &qname, &props).await?;
                    r.set(
                        &id,
                        Attrs::new(
                            &url,
                            &[
                                ("Arn", arn),
                                ("QueueName", qname.clone()),
                                ("QueueUrl", url.clone()),
                            ],
                        ),
                    );
                    format!("queue {qname}")
                }
                _ => continue,
            };
            made.push(what);
            progress = true;
        }
        if !progress && !left.is_empty() {
            let ids: Vec<&str> = left.iter().map(|(i, _)| i.as_str()).collect();
            return Err(r
                .template()
                .error(
                    format!("resources {}", ids.join(", ")),
                    "they refer to each other in a circle",
                )
                .into());
        }
        todo = left;
    }
    Ok(made)
}

async fn table(
    c: &Clients,
    r: &Resolver,
    id: &str,
    name: &str,
    p: &Map<String, Value>,
) -> Result<(), CreateError> {
    use ddb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    let bad = |m: String| CreateError::Template(r.template().error(format!("resource {id}"), m));
    let keys = |v: Option<&Value>| -> Result<Vec<KeySchemaElement>, CreateError> {
        list(v)
            .iter()
            .map(|k| {
                KeySchemaElement::builder()
                    .attribute_name(s(k.get("AttributeName")).unwrap_or_default())
                    .key_type(KeyType::from(
                        s(k.get("KeyType")).unwrap_or_default().as_str(),
                    ))
                    .build()
                    .map_err(|e| bad(format!("KeySchema: {e}")))
            })
            .collect()
    };
    let mut req = c.dynamodb.create_table().table_name(name);
    for a in list(p.get("AttributeDefinitions")) {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(s(a.get("AttributeName")).unwrap_or_default())
                .attribute_type(ScalarAttributeType::from(
                    s(a.get("AttributeType")).unwrap_or_default().as_str(),
                ))
                .build()
                .map_err(|e| bad(format!("AttributeDefinitions: {e}")))?,
        );
    }
    req = req.set_key_schema(Some(keys(p.get("KeySchema"))?));
    let on_demand = s(p.get("BillingMode")).as_deref() == Some("PAY_PER_REQUEST");
    let throughput = |v: Option<&Value>| {
        let n = |k: &str| {
            v.and_then(|t| s(t.get(k)))
                .and_then(|x| x.parse().ok())
                .unwrap_or(5)
        };
        ProvisionedThroughput::builder()
            .read_capacity_units(n("ReadCapacityUnits"))
            .write_capacity_units(n("WriteCapacityUnits"))
            .build()
    };
    if on_demand {
        req = req.billing_mode(BillingMode::PayPerRequest);
    } else {
        req = req.provisioned_throughput(
            throughput(p.get("ProvisionedThroughput"))
                .map_err(|e| bad(format!("ProvisionedThroughput: {e}")))?,
        );
    }
    for g in list(p.get("GlobalSecondaryIndexes")) {
        let mut proj = Projection::builder().projection_type(ProjectionType::from(
            s(g.pointer("/Projection/ProjectionType"))
                .unwrap_or_else(|| "ALL".into())
                .as_str(),
        ));
        for a in list(g.pointer("/Projection/NonKeyAttributes")) {
            if let Some(a) = s(Some(a)) {
                proj = proj.non_key_attributes(a);
            }
        }
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(s(g.get("IndexName")).unwrap_or_default())
            .set_key_schema(Some(keys(g.get("KeySchema"))?))
            .projection(proj.build());
        if !on_demand {
            gsi = gsi.provisioned_throughput(
                throughput(g.get("ProvisionedThroughput"))
                    .map_err(|e| bad(format!("ProvisionedThroughput: {e}")))?,
            );
        }
        req = req.global_secondary_indexes(
            gsi.build()
                .map_err(|e| bad(format!("GlobalSecondaryIndexes: {e}")))?,
        );
    }
    let resource = format!("table {name:?}");
    if let Err(e) = req.send().await {
        use ddb::operation::create_table::CreateTableError;
        if !matches!(
            e.as_service_error(),
            Some(CreateTableError::ResourceInUseException(_))
        ) {
            return Err(classify(&e, Call::new("DynamoDB", "CreateTable", &resource)).into());
        }
    }
    if let Some(ttl) = p.get("TimeToLiveSpecification")
        && s(ttl.get("Enabled")).as_deref() == Some("true")
    {
        let attr = s(ttl.get("AttributeName")).unwrap_or_default();
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(attr)
            .enabled(true)
            .build()
            .map_err(|e| bad(format!("TimeToLiveSpecification: {e}")))?;
        let sent = c
            .dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await;
        // Enabled already, on a second run, is the same state.
        if let Err(e) = sent
            && !format!("{e:?}").contains("already enabled")
        {
            return Err(classify(&e, Call::new("DynamoDB", "UpdateTimeToLive", &resource)).into());
        }
    }
    Ok(())
}

async fn bucket(c: &Clients, name: &str, p: &Map<String, Value>) -> Result<(), CreateError> {
    a2a_aws::S3Blob::create_bucket(&c.s3, name).await?;
    let status = p
        .get("VersioningConfiguration")
        .and_then(|v| v.get("Status"));
    if s(status).as_deref() == Some("Enabled") {
        let resource = format!("bucket {name:?}");
        c.s3.put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(
                s3::types::VersioningConfiguration::builder()
                    .status(s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&e, Call::new("S3", "PutBucketVersioning", &resource)))?;
    }
    Ok(())
}

/// The queue attributes of the template that SQS takes as they are.
const QUEUE_ATTRIBUTES: [&str; 7] = [
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
];

async fn queue(
    c: &Clients,
    r: &Resolver,
    id: &str,
    name: &str,
    p: &Map<String, Value>,
) -> Result<(String, String), CreateError> {
    use sqs::types::QueueAttributeName as A;
    let mut attributes = std::collections::HashMap::new();
    for key in QUEUE_ATTRIBUTES {
        if let Some(v) = s(p.get(key)) {
            attributes.insert(A::from(key), v);
        }
    }
    if let Some(rp) = p.get("RedrivePolicy") {
        let arn = s(rp.get("deadLetterTargetArn"));
        let max = s(rp.get("maxReceiveCount")).and_then(|m| m.parse::<u64>().ok());
        let (Some(arn), Some(max)) = (arn, max) else {
            return Err(r
                .template()
                .error(
                    format!("resource {id}"),
                    "RedrivePolicy needs deadLetterTargetArn and maxReceiveCount",
                )
                .into());
        };
        let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max});
        attributes.insert(A::RedrivePolicy, policy.to_string());
    }
    let resource = format!("queue {name:?}");
    let created = c
        .sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.clone()))
        .send()
        .await;
    let url = match created {
        Ok(out) => out.queue_url.unwrap_or_default(),
        // There with other attributes (an earlier run's): set the template's.
        Err(e) if format!("{e:?}").contains("QueueAlreadyExists") => {
            let url = c
                .sqs
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| classify(&e, Call::new("SQS", "GetQueueUrl", &resource)))?
                .queue_url
                .unwrap_or_default();
            c.sqs
                .set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(|e| classify(&e, Call::new("SQS", "SetQueueAttributes", &resource)))?;
            url
        }
        Err(e) => return Err(classify(&e, Call::new("SQS", "CreateQueue", &resource)).into()),
    };
    let arn = queue_arn(&c.sqs, &url, &resource).await?;
    Ok((url, arn))
}

/// The ARN of the queue at `url` (`resource` names it in errors).
pub(crate) async fn queue_arn(
    sqsc: &sqs::Client,
    url: &str,
    resource: &str,
) -> Result<String, PortError> {
    use sqs::types::QueueAttributeName as A;
    Ok(sqsc
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .map_err(|e| classify(&e, Call::new("SQS", "GetQueueAttributes", resource)))?
        .attributes
        .and_then(|mut a| a.remove(&A::QueueArn))
        .unwrap_or_default())
}

/// The database secret `name` holding `{"username", "password"}` (as RDS keeps one),
/// created or given this value; its ARN.
pub(crate) async fn database_secret(
    c: &Clients,
    name: &str,
    username: &str,
    password: &str,
) -> Result<String, PortError> {
    let value = serde_json::json!({"username": username, "password": password}).to_string();
    let resource = format!("secret {name:?}");
    match c
        .secrets
        .create_secret()
        .name(name)
        .secret_string(&value)
        .send()
        .await
    {
        Ok(out) => Ok(out.arn.unwrap_or_default()),
        Err(e) if format!("{e:?}").contains("ResourceExists") => {
            let out = c
                .secrets
                .put_secret_value()
                .secret_id(name)
                .secret_string(&value)
                .send()
                .await
                .map_err(|e| {
                    classify(
                        &e,
                        Call::new("Secrets Manager", "PutSecretValue", &resource),
                    )
                })?;
            Ok(out.arn.unwrap_or_default())
        }
        Err(e) => Err(classify(
            &e,
            Call::new("Secrets Manager", "CreateSecret", &resource),
        )),
    }
}

/// Whether the secret `arn` exists on the emulator.
pub(crate) async fn secret_exists(c: &Clients, arn: &str) -> Result<bool, PortError> {
    match c.secrets.describe_secret().secret_id(arn).send().await {
        Ok(_) => Ok(true),
        Err(e) if format!("{e:?}").contains("ResourceNotFound") => Ok(false),
        Err(e) => Err(classify(
            &e,
            Call::new(
                "Secrets Manager",
                "DescribeSecret",
                &format!("secret {arn:?}"),
            ),
        )),
    }
}

//! What each function may call, checked on the calls it really makes. The emulator checks
//! no permission, so a function that lacks one (the scheduler without
//! `states:StopExecution`, say) passes every local run and fails in AWS. The rehearsal puts
//! a [`Recorder`] between each function and the emulator: every request is named by the
//! IAM actions it needs ([`actions_of_request`]), recorded under the function's name, and,
//! when the function's policies ([`granted`], read from the template) do not grant them,
//! refused as AWS refuses it (`AccessDenied`).
//!
//! Only actions are checked: resources, conditions, boundaries and service control
//! policies are not evaluated (the README's "what the rehearsal cannot show").

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use yaml_serde::Value as Yaml;

use crate::http::Server;

/// Every AWS operation the project's adapters call, by the service's signing name, with
/// the IAM actions it needs. An operation missing here is refused by the [`Recorder`]
/// (so a new SDK call in `a2a-aws` must be named here first: a test reads the adapters'
/// sources for every call).
const OPERATIONS: &[(&str, &str, &[&str])] = &[
    ("dynamodb", "CreateTable", &["dynamodb:CreateTable"]),
    ("dynamodb", "DescribeTable", &["dynamodb:DescribeTable"]),
    ("dynamodb", "GetItem", &["dynamodb:GetItem"]),
    ("dynamodb", "PutItem", &["dynamodb:PutItem"]),
    ("dynamodb", "UpdateItem", &["dynamodb:UpdateItem"]),
    ("dynamodb", "DeleteItem", &["dynamodb:DeleteItem"]),
    ("dynamodb", "Query", &["dynamodb:Query"]),
    ("dynamodb", "Scan", &["dynamodb:Scan"]),
    ("dynamodb", "BatchWriteItem", &["dynamodb:BatchWriteItem"]),
    ("dynamodb", "BatchGetItem", &["dynamodb:BatchGetItem"]),
    ("s3", "CreateBucket", &["s3:CreateBucket"]),
    ("s3", "HeadBucket", &["s3:ListBucket"]),
    ("s3", "ListObjectsV2", &["s3:ListBucket"]),
    ("s3", "ListObjectVersions", &["s3:ListBucketVersions"]),
    ("s3", "GetObject", &["s3:GetObject"]),
    ("s3", "GetObjectVersion", &["s3:GetObjectVersion"]),
    ("s3", "HeadObject", &["s3:GetObject"]),
    ("s3", "PutObject", &["s3:PutObject"]),
    ("s3", "CopyObject", &["s3:GetObject", "s3:PutObject"]),
    ("s3", "CreateMultipartUpload", &["s3:PutObject"]),
    ("s3", "UploadPart", &["s3:PutObject"]),
    ("s3", "UploadPartCopy", &["s3:GetObject", "s3:PutObject"]),
    ("s3", "CompleteMultipartUpload", &["s3:PutObject"]),
    ("s3", "AbortMultipartUpload", &["s3:AbortMultipartUpload"]),
    ("s3", "ListParts", &["s3:ListMultipartUploadParts"]),
    ("s3", "DeleteObject", &["s3:DeleteObject"]),
    ("s3", "DeleteObjectVersion", &["s3:DeleteObjectVersion"]),
    ("s3", "DeleteObjects", &["s3:DeleteObject"]),
    ("s3", "PutBucketVersioning", &["s3:PutBucketVersioning"]),
    (
        "s3",
        "PutBucketNotificationConfiguration",
        &["s3:PutBucketNotification"],
    ),
    ("sqs", "CreateQueue", &["sqs:CreateQueue"]),
    ("sqs", "GetQueueUrl", &["sqs:GetQueueUrl"]),
    ("sqs", "GetQueueAttributes", &["sqs:GetQueueAttributes"]),
    ("sqs", "SendMessage", &["sqs:SendMessage"]),
    ("sqs", "SendMessageBatch", &["sqs:SendMessage"]),
    ("sqs", "ReceiveMessage", &["sqs:ReceiveMessage"]),
    ("sqs", "DeleteMessage", &["sqs:DeleteMessage"]),
    ("sqs", "DeleteMessageBatch", &["sqs:DeleteMessage"]),
    (
        "sqs",
        "ChangeMessageVisibility",
        &["sqs:ChangeMessageVisibility"],
    ),
    ("states", "StartExecution", &["states:StartExecution"]),
    ("states", "DescribeExecution", &["states:DescribeExecution"]),
    ("states", "StopExecution", &["states:StopExecution"]),
    ("states", "ListExecutions", &["states:ListExecutions"]),
    (
        "states",
        "CreateStateMachine",
        &["states:CreateStateMachine"],
    ),
    ("states", "GetActivityTask", &["states:GetActivityTask"]),
    ("states", "SendTaskHeartbeat", &["states:SendTaskHeartbeat"]),
    ("states", "SendTaskSuccess", &["states:SendTaskSuccess"]),
    ("states", "SendTaskFailure", &["states:SendTaskFailure"]),
    (
        "secretsmanager",
        "GetSecretValue",
        &["secretsmanager:GetSecretValue"],
    ),
    (
        "secretsmanager",
        "CreateSecret",
        &["secretsmanager:CreateSecret"],
    ),
    (
        "secretsmanager",
        "PutSecretValue",
        &["secretsmanager:PutSecretValue"],
    ),
    (
        "rds",
        "CreateDBClusterSnapshot",
        &["rds:CreateDBClusterSnapshot"],
    ),
    (
        "rds",
        "DescribeDBClusterSnapshots",
        &["rds:DescribeDBClusterSnapshots"],
    ),
    (
        "cloudformation",
        "DescribeStacks",
        &["cloudformation:DescribeStacks"],
    ),
    (
        "cloudformation",
        "ListStackResources",
        &["cloudformation:ListStackResources"],
    ),
];

/// The IAM actions of `operation` of `service` (its signing name: `s3`, `dynamodb`,
/// `sqs`, `states`, `secretsmanager`, `rds`, `cloudformation`), or `None` for one the
/// project never calls.
pub fn actions_of(service: &str, operation: &str) -> Option<&'static [&'static str]> {
    OPERATIONS
        .iter()
        .find(|(s, o, _)| *s == service && *o == operation)
        .map(|(_, _, a)| *a)
}

/// The service and operation of one signed request: the service from the SigV4
/// credential scope; the operation from `X-Amz-Target` (the JSON protocols), the form's
/// `Action` (the query protocols, whose `body` is then needed), or S3's REST shape.
pub fn operation_of(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Option<(String, String)> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    // `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, …`
    let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
    let service = scope.split('/').nth(3)?.to_owned();
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let op = target.rsplit('.').next()?.to_owned();
        return Some((service, op));
    }
    if service == "s3" {
        return Some((service, s3_operation(method, uri, headers)?.to_owned()));
    }
    let form = body?;
    let op = form
        .split(|b| *b == b'&')
        .find_map(|kv| kv.strip_prefix(b"Action="))?;
    Some((service, String::from_utf8(op.to_vec()).ok()?))
}

/// S3's REST operations, path-style (`/BUCKET[/KEY]`), as the emulator is addressed.
fn s3_operation(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<&'static str> {
    let path = uri.path().trim_start_matches('/');
    let has_key = path.split_once('/').is_some_and(|(_, k)| !k.is_empty());
    let query: BTreeSet<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .map(|q| q.split('=').next().unwrap_or(q))
        // The SDK names its operation in `x-id` (`?x-id=PutObject`): S3 ignores it.
        .filter(|k| !k.is_empty() && *k != "x-id")
        .collect();
    let q = |name: &str| query.contains(name);
    let copy = headers.contains_key("x-amz-copy-source");
    Some(match (method.as_str(), has_key) {
        ("HEAD", false) => "HeadBucket",
        ("GET", false) if q("versions") => "ListObjectVersions",
        ("GET", false) => "ListObjectsV2",
        ("PUT", false) if q("versioning") => "PutBucketVersioning",
        ("PUT", false) if q("notification") => "PutBucketNotificationConfiguration",
        ("PUT", false) if query.is_empty() => "CreateBucket",
        ("POST", false) if q("delete") => "DeleteObjects",
        ("HEAD", true) => "HeadObject",
        ("GET", true) if q("uploadId") => "ListParts",
        ("GET", true) if q("versionId") => "GetObjectVersion",
        ("GET", true)
            if query
                .iter()
                .all(|k| k.starts_with("response-") || *k == "partNumber") =>
        {
            "GetObject"
        }
        ("PUT", true) if q("uploadId") && copy => "UploadPartCopy",
        ("PUT", true) if q("uploadId") => "UploadPart",
        ("PUT", true) if copy => "CopyObject",
        ("PUT", true) if query.is_empty() => "PutObject",
        ("POST", true) if q("uploads") => "CreateMultipartUpload",
        ("POST", true) if q("uploadId") => "CompleteMultipartUpload",
        ("DELETE", true) if q("uploadId") => "AbortMultipartUpload",
        ("DELETE", true) if q("versionId") => "DeleteObjectVersion",
        ("DELETE", true) => "DeleteObject",
        _ => return None,
    })
}

/// The actions of the SAM policy templates the template uses (SAM's
/// `policy_templates.json`; resources left out).
const POLICY_TEMPLATES: &[(&str, &[&str])] = &[
    (
        "DynamoDBCrudPolicy",
        &[
            "dynamodb:GetItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
            "dynamodb:ConditionCheckItem",
        ],
    ),
    (
        "DynamoDBReadPolicy",
        &[
            "dynamodb:GetItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
        ],
    ),
    (
        "S3ReadPolicy",
        &[
            "s3:GetObject",
            "s3:ListBucket",
            "s3:GetBucketLocation",
            "s3:GetObjectVersion",
            "s3:GetLifecycleConfiguration",
        ],
    ),
    (
        "S3CrudPolicy",
        &[
            "s3:GetObject",
            "s3:ListBucket",
            "s3:GetBucketLocation",
            "s3:GetObjectVersion",
            "s3:PutObject",
            "s3:PutObjectAcl",
            "s3:GetLifecycleConfiguration",
            "s3:PutLifecycleConfiguration",
            "s3:DeleteObject",
        ],
    ),
    ("SQSSendMessagePolicy", &["sqs:SendMessage*"]),
    (
        "SQSPollerPolicy",
        &[
            "sqs:ChangeMessageVisibility",
            "sqs:ChangeMessageVisibilityBatch",
            "sqs:DeleteMessage",
            "sqs:DeleteMessageBatch",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ],
    ),
    ("StepFunctionsExecutionPolicy", &["states:StartExecution"]),
    ("LambdaInvokePolicy", &["lambda:InvokeFunction"]),
    (
        "AWSSecretsManagerGetSecretValuePolicy",
        &["secretsmanager:GetSecretValue"],
    ),
];

/// The actions a function's `Policies` (as the template writes them, tags kept) allow: SAM
/// policy templates, inline `Statement`s with `Effect: Allow`, and both branches of an
/// `!If` (the rehearsal does not know which the deployment takes). A managed policy named
/// by name, or a policy template not listed here, is an error naming it: its actions are
/// unknown, and guessing would hide a missing permission.
pub fn granted(policies: &Yaml) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    match untag(policies) {
        Yaml::Sequence(items) => {
            for item in items {
                policy(item, &mut out)?;
            }
        }
        Yaml::Null => {}
        other => policy(other, &mut out)?,
    }
    Ok(out)
}

fn untag(v: &Yaml) -> &Yaml {
    match v {
        Yaml::Tagged(t) if t.tag != "If" => untag(&t.value),
        v => v,
    }
}

fn policy(item: &Yaml, out: &mut BTreeSet<String>) -> Result<(), String> {
    match item {
        Yaml::Tagged(t) if t.tag == "If" => {
            // `!If [Condition, WhenTrue, WhenFalse]`.
            if let Yaml::Sequence(parts) = &t.value {
                for branch in parts.iter().skip(1) {
                    policy(branch, out)?;
                }
            }
            Ok(())
        }
        // `!Ref AWS::NoValue`: nothing.
        Yaml::Tagged(t) if t.tag == "Ref" => Ok(()),
        Yaml::Mapping(m) => {
            if let Some(statements) = m.get("Statement") {
                return statements_of(statements, out);
            }
            for (name, _) in m {
                let name = name.as_str().unwrap_or("?");
                let (_, actions) = POLICY_TEMPLATES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| format!("policy template {name} is unknown to the rehearsal"))?;
                out.extend(actions.iter().map(|a| (*a).to_owned()));
            }
            Ok(())
        }
        Yaml::String(name) => Err(format!(
            "managed policy {name}: its actions are unknown to the rehearsal"
        )),
        other => Err(format!("a policy the rehearsal cannot read: {other:?}")),
    }
}

fn statements_of(statements: &Yaml, out: &mut BTreeSet<String>) -> Result<(), String> {
    let list = match untag(statements) {
        Yaml::Sequence(s) => s.clone(),
        other => vec![other.clone()],
    };
    for s in &list {
        let s = match s {
            Yaml::Tagged(t) if t.tag == "If" => {
                policy(&Yaml::Mapping(statement_wrapper(s)), out)?;
                continue;
            }
            s => untag(s),
        };
        if s.get("Effect").and_then(Yaml::as_str) != Some("Allow") {
            continue;
        }
        match s.get("Action").map(untag) {
            Some(Yaml::String(a)) => {
                out.insert(a.clone());
            }
            Some(Yaml::Sequence(actions)) => {
                for a in actions {
                    let a = untag(a)
                        .as_str()
                        .ok_or_else(|| format!("an Action that is not a string: {a:?}"))?;
                    out.insert(a.to_owned());
                }
            }
            other => return Err(format!("a statement without actions: {other:?}")),
        }
    }
    Ok(())
}

/// A conditional statement as a one-statement policy, for [`policy`]'s `!If` arm.
fn statement_wrapper(s: &Yaml) -> yaml_serde::Mapping {
    let mut m = yaml_serde::Mapping::new();
    m.insert(
        Yaml::String("Statement".into()),
        Yaml::Sequence(vec![s.clone()]),
    );
    m
}

/// Whether `granted` allows `action`, with IAM's `*` wildcards (`sqs:SendMessage*`).
pub fn allows(granted: &BTreeSet<String>, action: &str) -> bool {
    granted.iter().any(|g| wildcard(g, action))
}

fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(text),
        Some((head, rest)) => {
            text.len() >= head.len()
                && text[..head.len()].eq_ignore_ascii_case(head)
                && (0..=text.len() - head.len()).any(|i| wildcard(rest, &text[head.len() + i..]))
        }
    }
}

/// What one function did through its [`Recorder`] proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every action its requests needed.
    pub used: BTreeSet<String>,
    /// The actions refused: not granted, or an operation the rehearsal does not know.
    pub denied: BTreeSet<String>,
}

type Usages = Arc<Mutex<BTreeMap<String, Usage>>>;

/// Proxies between each function and the services it calls (the emulator, the stack's
/// Step Functions endpoint): each names, records and checks a request, then forwards it
/// unchanged.
#[derive(Default)]
pub struct Recorder {
    usages: Usages,
    /// The proxies, served until the recorder is dropped.
    servers: Mutex<Vec<Server>>,
}

impl Recorder {
    /// Starts a proxy of `function`, allowed `granted`, in front of `upstream`
    /// (`http://HOST:PORT`), and returns its URL, to give the function instead of
    /// `upstream` (as `AWS_ENDPOINT_URL`, say).
    pub async fn proxy(
        &self,
        function: &str,
        upstream: &str,
        granted: BTreeSet<String>,
    ) -> std::io::Result<String> {
        let hostport = upstream
            .strip_prefix("http://")
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{upstream}: a proxied service's URL must be http://HOST:PORT"),
                )
            })?
            .trim_end_matches('/');
        let upstream = lookup(hostport)?;
        let who = Arc::new(Who {
            function: function.to_owned(),
            granted,
            upstream,
            usages: self.usages.clone(),
        });
        let server = Server::start(who, |req, who: Arc<Who>| async move {
            Ok::<_, Infallible>(who.forward(req).await)
        })
        .await?;
        let url = format!("http://{}", server.addr);
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(server);
        Ok(url)
    }

    /// What every function did so far, by function name.
    pub fn usages(&self) -> BTreeMap<String, Usage> {
        self.usages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn lookup(hostport: &str) -> std::io::Result<SocketAddr> {
    use std::net::ToSocketAddrs as _;
    hostport.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{hostport}: no address"),
        )
    })
}

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

struct Who {
    function: String,
    granted: BTreeSet<String>,
    upstream: SocketAddr,
    usages: Usages,
}

impl Who {
    async fn forward(&self, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let form = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        // Only a query-protocol request is read here (to find its Action); the rest streams.
        let (body, bytes): (Body, Option<Bytes>) = if form {
            match body.collect().await {
                Ok(c) => {
                    let b = c.to_bytes();
                    (full(b.clone()), Some(b))
                }
                Err(e) => return refuse(502, "BadGateway", &format!("reading the request: {e}")),
            }
        } else {
            (body.map_err(|e| Box::new(e) as _).boxed(), None)
        };
        let op = operation_of(&parts.method, &parts.uri, &parts.headers, bytes.as_deref());
        let needed: Vec<String> = match &op {
            Some((service, name)) => match actions_of(service, name) {
                Some(a) => a.iter().map(|a| (*a).to_owned()).collect(),
                None => vec![format!("{service}:{name}")],
            },
            None => vec![format!("unknown:{} {}", parts.method, parts.uri.path())],
        };
        let known = op.as_ref().is_some_and(|(s, n)| actions_of(s, n).is_some());
        let denied: Vec<&String> = needed
            .iter()
            .filter(|a| !known || !allows(&self.granted, a))
            .collect();
        {
            let mut usages = self.usages.lock().unwrap_or_else(|e| e.into_inner());
            let usage = usages.entry(self.function.clone()).or_default();
            usage.used.extend(needed.iter().cloned());
            usage.denied.extend(denied.iter().map(|a| (*a).clone()));
        }
        if let Some(first) = denied.first() {
            tracing::warn!(
                "{}: {first} is not granted by its policies in the template: refused, as AWS would",
                self.function
            );
            let message = format!(
                "User: {} is not authorized to perform: {first} (the rehearsal's check of the template's policies)",
                self.function
            );
            let s3 = op.as_ref().is_some_and(|(s, _)| s == "s3");
            return if s3 {
                xml_denied(&message)
            } else {
                refuse(400, "AccessDeniedException", &message)
            };
        }
        match self.send(Request::from_parts(parts, body)).await {
            Ok(r) => r.map(|b| b.map_err(|e| Box::new(e) as _).boxed()),
            Err(e) => refuse(502, "BadGateway", &format!("the emulator: {e}")),
        }
    }

    async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, String> {
        let stream = tokio::net::TcpStream::connect(self.upstream)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await.map_err(|e| e.to_string())
    }
}

fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed()
}

fn refuse(status: u16, kind: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"__type": kind, "message": message}).to_string();
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    r
}

fn xml_denied(message: &str) -> Response<Body> {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>{escaped}</Message></Error>"
    );
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = StatusCode::FORBIDDEN;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    r
}

#[cfg(test)]
#[path = "iam_tests.rs"]
mod tests;

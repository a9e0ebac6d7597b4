//! What each resource of a resolved template becomes in the rehearsal: created on the
//! emulator (table, bucket, queues), served by this process (activities, state machines,
//! functions and their events), or not rehearsed (IAM, alarms, log groups: named on
//! stderr). A resource of another type, or an event or intrinsic the rehearsal does not
//! serve, is a [`TemplateError`] naming it: the rehearsal never passes over what it cannot
//! show.

use std::collections::{BTreeMap, HashMap};
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::template::{Attrs, Resolver, TemplateError, Unresolved};

/// Resource types the rehearsal does not create, and why that changes no behaviour it
/// shows.
pub const NOT_REHEARSED: [(&str, &str); 6] = [
    ("AWS::IAM::ManagedPolicy", "IAM is not evaluated"),
    ("AWS::IAM::Role", "IAM is not evaluated"),
    ("AWS::IAM::Policy", "IAM is not evaluated"),
    ("AWS::S3::BucketPolicy", "bucket policies are not evaluated"),
    ("AWS::CloudWatch::Alarm", "no metrics or alarms"),
    ("AWS::Logs::LogGroup", "the functions log to stderr"),
];

/// A function of the template, as the rehearsal starts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// Logical id.
    pub id: String,
    /// `FunctionName`.
    pub name: String,
    /// `Metadata.BuildProperties.Binary`: the bin target SAM's builder builds.
    pub binary: String,
    /// `Environment.Variables`, Globals' and then its own, resolved.
    pub env: BTreeMap<String, String>,
    /// `Timeout`, seconds.
    pub timeout: u64,
    /// `MemorySize`, MB.
    pub memory_mb: u64,
    /// `ReservedConcurrentExecutions`.
    pub reserved_concurrency: Option<u32>,
    /// Its events.
    pub events: Vec<Event>,
}

/// An event source of a function.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `Type: S3`: an object created in the bucket under `prefix`, ending in `suffix`.
    Upload {
        /// The event's name.
        id: String,
        /// The bucket's logical id.
        bucket: String,
        /// The key prefix filter.
        prefix: String,
        /// The key suffix filter.
        suffix: String,
    },
    /// `Type: SQS`: the queue's event source mapping.
    Queue {
        /// The event's name.
        id: String,
        /// The queue's logical id.
        queue: String,
        /// `BatchSize` (10 by default).
        batch_size: u32,
        /// `ScalingConfig.MaximumConcurrency` (Lambda's pollers otherwise: 5 here).
        max_concurrency: u32,
        /// `FunctionResponseTypes` has `ReportBatchItemFailures`.
        report_failures: bool,
    },
    /// `Type: Schedule` with `rate(…)`.
    Schedule {
        /// The event's name.
        id: String,
        /// The rate.
        every: Duration,
        /// `Enabled`.
        enabled: bool,
    },
}

/// A state machine of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// Logical id.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// `DefinitionUri`, from the template's folder.
    pub definition: PathBuf,
    /// `DefinitionSubstitutions`, resolved.
    pub substitutions: HashMap<String, String>,
}

/// An activity of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// Logical id.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// Its ARN.
    pub arn: String,
}

/// How a resource of the template is rehearsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `AWS::DynamoDB::Table`, created on the emulator.
    Table,
    /// `AWS::S3::Bucket`, created on the emulator.
    Bucket,
    /// `AWS::SQS::Queue`, created on the emulator.
    Queue,
    /// `AWS::StepFunctions::Activity`, served by the Step Functions endpoint.
    Activity,
    /// `AWS::Serverless::Function`, its binary started behind a Runtime API.
    Function,
    /// `AWS::Serverless::StateMachine`, on the local engine.
    StateMachine,
    /// Not rehearsed: the reason.
    Skipped(&'static str),
}

/// The role of a resource type, or `None` for a type the rehearsal cannot serve.
pub fn role(ty: &str) -> Option<Role> {
    Some(match ty {
        "AWS::DynamoDB::Table" => Role::Table,
        "AWS::S3::Bucket" => Role::Bucket,
        "AWS::SQS::Queue" => Role::Queue,
        "AWS::StepFunctions::Activity" => Role::Activity,
        "AWS::Serverless::Function" => Role::Function,
        "AWS::Serverless::StateMachine" => Role::StateMachine,
        other => {
            return NOT_REHEARSED
                .iter()
                .find(|(t, _)| *t == other)
                .map(|(_, why)| Role::Skipped(why));
        }
    })
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<u64> {
    text(v)?.trim().parse().ok()
}

fn err(r: &Resolver, id: &str, e: impl std::fmt::Display) -> TemplateError {
    r.template().error(format!("resource {id}"), e.to_string())
}

/// The resources that exist (under their `Condition`) with their roles; a type the
/// rehearsal cannot serve is an error naming the resource.
pub fn roles(r: &Resolver) -> Result<Vec<(String, Role)>, TemplateError> {
    let mut out = Vec::new();
    for (id, ty) in r.template().resources() {
        if !r.exists(&id) {
            continue;
        }
        let role = role(&ty).ok_or_else(|| {
            err(
                r,
                &id,
                format!("its type {ty:?} is not one the rehearsal serves or can pass over"),
            )
        })?;
        out.push((id, role));
    }
    Ok(out)
}

/// The physical name of resource `id` from its property `key`, or CloudFormation's
/// generated `<stack>-<id>`.
fn physical(r: &Resolver, id: &str, key: &str) -> Result<String, TemplateError> {
    let props = r.properties(id);
    let name = match props {
        Ok(p) => text(p.get(key)),
        // Its name is what we need now; other properties may wait for other resources.
        Err(Unresolved::Pending(_)) => match r
            .template()
            .field(id, "Properties")
            .and_then(|p| p.get(key))
        {
            Some(v) => match r.value(v).map_err(|e| err(r, id, format!("{key}: {e}")))? {
                Some(v) => text(Some(&v)),
                None => None,
            },
            None => None,
        },
        Err(e) => return Err(err(r, id, e)),
    };
    Ok(name.unwrap_or_else(|| format!("{}-{id}", r.pseudo().stack_name)))
}

/// Records the `!Ref` and `!GetAtt` of every resource whose names do not depend on the
/// emulator (all but the queues, whose URL it gives), and returns the activities.
pub fn name_resources(
    r: &mut Resolver,
    roles: &[(String, Role)],
) -> Result<Vec<Activity>, TemplateError> {
    let (region, account) = (r.pseudo().region.clone(), r.pseudo().account.clone());
    let mut activities = Vec::new();
    for (id, role) in roles {
        let attrs = match role {
            Role::Table => {
                let name = physical(r, id, "TableName")?;
                let arn = format!("arn:aws:dynamodb:{region}:{account}:table/{name}");
                Attrs::new(&name, &[("Arn", arn)])
            }
            Role::Bucket => {
                let name = physical(r, id, "BucketName")?.to_lowercase();
                Attrs::new(
                    &name,
                    &[
                        ("Arn", format!("arn:aws:s3:::{name}")),
                        ("DomainName", format!("{name}.s3.amazonaws.com")),
                    ],
                )
            }
            Role::Activity => {
                let name = physical(r, id, "Name")?;
                let arn = format!("arn:aws:states:{region}:{account}:activity:{name}");
                activities.push(Activity {
                    id: id.clone(),
                    name: name.clone(),
                    arn: arn.clone(),
                });
                Attrs::new(&arn, &[("Name", name)])
            }
            Role::Function => {
                let name = physical(r, id, "FunctionName")?;
                let arn = format!("arn:aws:lambda:{region}:{account}:function:{name}");
                Attrs::new(&name, &[("Arn", arn)])
            }
            Role::StateMachine => {
                let name = physical(r, id, "Name")?;
                let arn = format!("arn:aws:states:{region}:{account}:stateMachine:{name}");
                Attrs::new(&arn, &[("Name", name), ("Arn", arn.clone())])
            }
            Role::Skipped(_) => {
                let ty = r
                    .template()
                    .field(id, "Type")
                    .and_then(|t| t.as_str())
                    .unwrap_or("");
                if ty == "AWS::Logs::LogGroup" {
                    let name = physical(r, id, "LogGroupName")?;
                    let arn = format!("arn:aws:logs:{region}:{account}:log-group:{name}:*");
                    Attrs::new(&name, &[("Arn", arn)])
                } else {
                    Attrs::new(id, &[])
                }
            }
            Role::Queue => continue,
        };
        r.set(id, attrs);
    }
    Ok(activities)
}

/// The function `id`: Globals and its own Properties merged as SAM merges them (maps
/// merged key by key, the function's own winning), with its events.
pub fn function(r: &Resolver, id: &str) -> Result<Function, TemplateError> {
    let props = r.properties(id).map_err(|e| err(r, id, e))?;
    let global = |key: &str| -> Result<Option<Value>, TemplateError> {
        match r.template().global(key) {
            Some(v) => r
                .value(v)
                .map_err(|e| err(r, id, format!("Globals.Function.{key}: {e}"))),
            None => Ok(None),
        }
    };
    let pick = |key: &str| -> Result<Option<Value>, TemplateError> {
        Ok(match props.get(key) {
            Some(v) => Some(v.clone()),
            None => global(key)?,
        })
    };
    let binary = r
        .template()
        .field(id, "Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
        .and_then(|b| b.as_str())
        .ok_or_else(|| err(r, id, "Metadata.BuildProperties.Binary is missing: the rehearsal builds that bin, as SAM's Rust builder does"))?
        .to_owned();
    let mut env = BTreeMap::new();
    let vars = |v: Option<Value>| -> Map<String, Value> {
        v.and_then(|e| e.get("Variables").and_then(Value::as_object).cloned())
            .unwrap_or_default()
    };
    for (k, v) in vars(global("Environment")?)
        .into_iter()
        .chain(vars(props.get("Environment").cloned()))
    {
        match text(Some(&v)) {
            Some(t) => {
                env.insert(k, t);
            }
            None => {
                return Err(err(
                    r,
                    id,
                    format!("Environment variable {k}: {v} is not text"),
                ));
            }
        }
    }
    let timeout = number(pick("Timeout")?.as_ref()).unwrap_or(3);
    let memory_mb = number(pick("MemorySize")?.as_ref()).unwrap_or(128);
    let reserved_concurrency = number(props.get("ReservedConcurrentExecutions")).map(|n| n as u32);
    let mut events = Vec::new();
    if let Some(Value::Object(evs)) = props.get("Events") {
        for (name, ev) in evs {
            events.push(event(r, id, name, ev)?);
        }
    }
    Ok(Function {
        id: id.to_owned(),
        name: r
            .attrs(id)
            .map(|a| a.reference.clone())
            .unwrap_or_else(|| id.to_owned()),
        binary,
        env,
        timeout,
        memory_mb,
        reserved_concurrency,
        events,
    })
}

/// The logical id of a resource that `value` names, by its recorded `!Ref` or ARN.
fn named(r: &Resolver, roles: &[(String, Role)], value: &str) -> Option<String> {
    roles
        .iter()
        .find(|(id, _)| {
            r.attrs(id)
                .is_some_and(|a| a.reference == value || a.get.values().any(|v| v == value))
        })
        .map(|(id, _)| id.clone())
}

fn event(r: &Resolver, fid: &str, name: &str, ev: &Value) -> Result<Event, TemplateError> {
    let what = format!("resource {fid}, event {name}");
    let fail = |m: String| r.template().error(what.clone(), m);
    let ty = ev.get("Type").and_then(Value::as_str).unwrap_or("");
    let p = ev.get("Properties").cloned().unwrap_or(Value::Null);
    let roles = roles(r)?;
    match ty {
        "S3" => {
            let bucket = text(p.get("Bucket")).ok_or_else(|| fail("Bucket is missing".into()))?;
            let bucket = named(r, &roles, &bucket).ok_or_else(|| {
                fail(format!(
                    "the bucket {bucket:?} is not a bucket of the template"
                ))
            })?;
            let events: Vec<String> = match p.get("Events") {
                Some(Value::Array(a)) => a.iter().filter_map(|v| text(Some(v))).collect(),
                v => text(v).into_iter().collect(),
            };
            if !events.iter().any(|e| e.starts_with("s3:ObjectCreated:")) {
                return Err(fail(format!(
                    "Events {events:?}: the rehearsal notifies s3:ObjectCreated:* only"
                )));
            }
            let mut prefix = String::new();
            let mut suffix = String::new();
            if let Some(Value::Array(rules)) = p.pointer("/Filter/S3Key/Rules") {
                for rule in rules {
                    let n = text(rule.get("Name")).unwrap_or_default().to_lowercase();
                    let v = text(rule.get("Value")).unwrap_or_default();
                    match n.as_str() {
                        "prefix" => prefix = v,
                        "suffix" => suffix = v,
                        _ => return Err(fail(format!("filter rule {n:?}: prefix or suffix only"))),
                    }
                }
            }
            Ok(Event::Upload {
                id: name.to_owned(),
                bucket,
                prefix,
                suffix,
            })
        }
        "SQS" => {
            let queue = text(p.get("Queue")).ok_or_else(|| fail("Queue is missing".into()))?;
            let queue = named(r, &roles, &queue).ok_or_else(|| {
                fail(format!(
                    "the queue {queue:?} is not a queue of the template"
                ))
            })?;
            let report_failures = match p.get("FunctionResponseTypes") {
                Some(Value::Array(a)) => a.iter().any(|v| v == "ReportBatchItemFailures"),
                _ => false,
            };
            Ok(Event::Queue {
                id: name.to_owned(),
                queue,
                batch_size: number(p.get("BatchSize")).unwrap_or(10).clamp(1, 10_000) as u32,
                max_concurrency: number(p.pointer("/ScalingConfig/MaximumConcurrency"))
                    .unwrap_or(5)
                    .clamp(1, 1000) as u32,
                report_failures,
            })
        }
        "Schedule" => {
            let expr = text(p.get("Schedule")).ok_or_else(|| fail("Schedule is missing".into()))?;
            let every = rate(&expr).map_err(fail)?;
            let enabled = !matches!(p.get("Enabled"), Some(Value::Bool(false)))
                && text(p.get("Enabled")).as_deref() != Some("false");
            Ok(Event::Schedule {
                id: name.to_owned(),
                every,
                enabled,
            })
        }
        other => Err(fail(format!(
            "event type {other:?}: the rehearsal serves S3, SQS and Schedule events"
        ))),
    }
}

/// An EventBridge `rate(N unit)` expression.
pub fn rate(expr: &str) -> Result<Duration, String> {
    let inner = expr
        .trim()
        .strip_prefix("rate(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| {
            format!("schedule {expr:?}: the rehearsal serves rate(N unit) only, not cron")
        })?;
    let (n, unit) = inner
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("schedule {expr:?}: expected rate(N minutes)"))?;
    let n: u64 = n
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("schedule {expr:?}: {n:?} is not a positive whole number"))?;
    let unit = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        u => {
            return Err(format!(
                "schedule {expr:?}: the unit {u:?} is not minutes, hours or days"
            ));
        }
    };
    Ok(Duration::from_secs(n * unit))
}

/// The state machine `id`, its substitutions resolved.
pub fn machine(r: &Resolver, id: &str) -> Result<Machine, TemplateError> {
    let props = r.properties(id).map_err(|e| err(r, id, e))?;
    let uri = text(props.get("DefinitionUri")).ok_or_else(|| {
        err(
            r,
            id,
            "DefinitionUri is missing: the rehearsal reads the definition from its file",
        )
    })?;
    let mut substitutions = HashMap::new();
    if let Some(Value::Object(m)) = props.get("DefinitionSubstitutions") {
        for (k, v) in m {
            let v = text(Some(v))
                .ok_or_else(|| err(r, id, format!("DefinitionSubstitutions.{k} is not text")))?;
            substitutions.insert(k.clone(), v);
        }
    }
    let attrs = r.attrs(id).cloned().unwrap_or_default();
    Ok(Machine {
        id: id.to_owned(),
        name: attrs
            .get
            .get("Name")
            .cloned()
            .unwrap_or_else(|| id.to_owned()),
        arn: attrs.reference,
        definition: r.template().base().join(uri),
        substitutions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Pseudo, Template};

    /// The project's template, resolved as `a2a stack up` resolves it (the queues given
    /// stand-in URLs and ARNs, as the emulator would).
    fn project() -> (Resolver, Vec<(String, Role)>, Vec<Activity>) {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"));
        let t = Template::read(path).unwrap();
        let overrides = [
            ("AlarmTopicArn", "arn:aws:sns:eu-west-1:123456789012:alarms"),
            ("SiteConfig", "{}"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let pseudo = Pseudo {
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            stack_name: "a2a".into(),
        };
        let mut r = Resolver::new(t, pseudo, &overrides).unwrap();
        let roles = roles(&r).unwrap();
        let activities = name_resources(&mut r, &roles).unwrap();
        for (id, role) in &roles {
            if *role == Role::Queue {
                let name = format!("q-{id}");
                r.set(
                    id,
                    Attrs::new(
                        format!("http://sqs/{name}"),
                        &[
                            ("Arn", format!("arn:aws:sqs:eu-west-1:123456789012:{name}")),
                            ("QueueName", name),
                        ],
                    ),
                );
            }
        }
        (r, roles, activities)
    }

    #[test]
    fn the_project_template_resolves_whole() {
        let (r, roles, activities) = project();
        assert_eq!(activities.len(), 8, "{activities:?}");
        assert!(activities.iter().all(|a| a.name.starts_with("a2a-dev-")));
        let functions: Vec<Function> = roles
            .iter()
            .filter(|(_, role)| *role == Role::Function)
            .map(|(id, _)| function(&r, id).unwrap())
            .collect();
        assert_eq!(functions.len(), 19);
        let by = |id: &str| functions.iter().find(|f| f.id == id).unwrap();
        let sched = by("SchedulerFunction");
        assert_eq!(sched.binary, "scheduler");
        assert_eq!(sched.reserved_concurrency, Some(1));
        assert_eq!(sched.timeout, 300);
        assert_eq!(sched.memory_mb, 256, "Globals' MemorySize");
        assert_eq!(
            sched.env["A2A_TABLE"], "a2a-state-dev",
            "Globals' environment"
        );
        assert_eq!(sched.env["A2A_QUEUE_URL"], "http://sqs/q-FanOutQueue");
        assert_eq!(
            sched.env["A2A_MIGRATE_STATE_MACHINE"],
            "arn:aws:states:eu-west-1:123456789012:stateMachine:a2a-migrate-instance-dev"
        );
        assert_eq!(
            sched.events,
            [Event::Schedule {
                id: "Tick".into(),
                every: Duration::from_secs(300),
                enabled: true
            }]
        );
        let disp = by("DispatcherFunction");
        assert_eq!(
            disp.events,
            [Event::Queue {
                id: "FanOut".into(),
                queue: "FanOutQueue".into(),
                batch_size: 10,
                max_concurrency: 2,
                report_failures: true
            }]
        );
        assert_eq!(
            by("IntakeFunction").events,
            [Event::Upload {
                id: "Upload".into(),
                bucket: "DataBucket".into(),
                prefix: "uploads/".into(),
                suffix: ".csv".into()
            }]
        );
        let freeze = by("PreflightFunction");
        assert_eq!(freeze.env["A2A_BUCKET"], "a2a-data-dev-123456789012");
        assert!(
            !freeze.env.contains_key("A2A_DB_SECRET"),
            "DbSecretOn is false by default"
        );
        let machines: Vec<Machine> = roles
            .iter()
            .filter(|(_, role)| *role == Role::StateMachine)
            .map(|(id, _)| machine(&r, id).unwrap())
            .collect();
        assert_eq!(machines.len(), 2);
        for m in &machines {
            assert!(m.definition.is_file(), "{}", m.definition.display());
            for v in m.substitutions.values() {
                let fun = functions
                    .iter()
                    .any(|f| v.ends_with(&format!(":function:{}", f.name)));
                let act = activities.iter().any(|a| a.arn == *v);
                assert!(fun ^ act, "{}: {v}", m.id);
            }
        }
    }

    #[test]
    fn rates_and_what_is_refused() {
        assert_eq!(rate("rate(5 minutes)"), Ok(Duration::from_secs(300)));
        assert_eq!(rate("rate(1 hour)"), Ok(Duration::from_secs(3600)));
        assert!(rate("cron(0 12 * * ? *)").unwrap_err().contains("not cron"));
        assert!(rate("rate(0 minutes)").is_err());
        assert_eq!(role("AWS::SQS::Queue"), Some(Role::Queue));
        assert!(matches!(
            role("AWS::Logs::LogGroup"),
            Some(Role::Skipped(_))
        ));
        assert_eq!(role("AWS::EC2::VPC"), None);
    }
}

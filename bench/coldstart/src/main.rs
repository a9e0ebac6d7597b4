//! `bench/coldstart`: starts every A2A Lambda binary, and a bare `lambda_runtime` function
//! built with the same profile, many times against the fake Lambda Runtime API of
//! `a2a_testkit::lambda`, and measures
//!
//! * the cold start: from just before the process is spawned to its first
//!   `GET …/invocation/next` (the runtime is ready for an event);
//! * the memory: `VmRSS` of `/proc/<pid>/status` after one invocation, once the process
//!   polls `/next` again.
//!
//! Each invocation is a real one against moto (`AWS_ENDPOINT_URL`): the intake reads an
//! uploaded list, the dispatcher a start message, the scheduler ticks, each step looks its
//! school up in DynamoDB. Runs are interleaved (run 1 of every function, then run 2, …) so
//! that a busy moment of the machine weighs on all of them alike.
//!
//! Usage: `coldstart --dir DIR [--peer PATH] [--runs N] [--only NAME,NAME]`, where DIR holds
//! the built binaries (`intake`, `dispatcher`, `scheduler`, `step-*`, and `coldstart-hello`
//! unless `--peer` says where it is).

#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use a2a_aws::{DynamoDbStore, S3Blob, SfnWorkflows, SqsQueue};
use a2a_testkit::lambda::{FakeRuntime, LambdaProcess, Outcome};
use serde_json::{Value, json};

/// The bare peer's binary.
const PEER: &str = "coldstart-hello";

/// The second reference, measured when built: the peer plus the SDK clients the intake
/// builds (`hello-sdk/`), which shows the SDK's share of a cold start.
const SDK_PEER: &str = "coldstart-hello-sdk";

/// Whether `name` is a reference rather than one of A2A's functions.
fn is_reference(name: &str) -> bool {
    name == PEER || name == SDK_PEER
}

/// Open at every hour, so that the scheduler's tick does its whole work.
const ALWAYS: &str = "daily 00:00-12:00 UTC;daily 12:00-00:00 UTC";

const LIST: &str = "Codi centre;Denominació completa;EPRI\n\
                    08000013;Escola Bertí;EPRI\n\
                    08000021;Institut Nou;\n";

struct Args {
    dir: PathBuf,
    peer: Option<PathBuf>,
    runs: usize,
    only: Option<Vec<String>>,
}

fn args() -> Result<Args, String> {
    let mut dir = None;
    let mut runs = 20;
    let mut only = None;
    let mut peer = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--runs" => {
                let v = value()?;
                runs = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or(format!("--runs {v:?}: expected a whole number from 1"))?;
            }
            "--only" => only = Some(value()?.split(',').map(str::to_owned).collect()),
            "--peer" => peer = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let dir = dir.ok_or("--dir DIR (where the release binaries are) is required")?;
    Ok(Args {
        dir,
        peer,
        runs,
        only,
    })
}

/// One function under test: its binary, the event it gets, and its measurements.
struct Function {
    name: String,
    path: PathBuf,
    event: Value,
    cold_ms: Vec<f64>,
    rss_kib: Vec<u64>,
    answer: String,
}

/// The peer and the functions of `dir` (those of `only`, when given), each with its sample
/// event. A function that `only` leaves out need not be built.
fn functions(
    dir: &Path,
    peer: Option<&Path>,
    bucket: &str,
    only: Option<&[String]>,
) -> Result<Vec<Function>, String> {
    let mut names = vec![PEER.to_owned()];
    if dir.join(SDK_PEER).is_file() {
        names.push(SDK_PEER.to_owned());
    }
    names.extend([
        "intake".to_owned(),
        "dispatcher".to_owned(),
        "scheduler".to_owned(),
    ]);
    let mut steps: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-") && !n.contains('.'))
        .collect();
    steps.sort();
    names.extend(steps);
    if let Some(only) = only {
        names.retain(|n| is_reference(n) || only.contains(n));
    }
    let school = json!({"school_code": "08000099"});
    names
        .into_iter()
        .map(|name| {
            let path = match peer {
                Some(p) if name == PEER => p.to_path_buf(),
                _ => dir.join(&name),
            };
            if !path.is_file() {
                return Err(format!(
                    "{} is missing: build it first (run.sh does)",
                    path.display()
                ));
            }
            let event = match name.as_str() {
                PEER | SDK_PEER => json!({"hello": "world"}),
                "intake" => s3_event(bucket, "uploads/bench.csv"),
                "dispatcher" => json!({"Records": [{
                    "messageId": "m1", "receiptHandle": "AQEBm1", "eventSource": "aws:sqs",
                    "body": "{\"school_code\":\"08000099\",\"attempt\":1}",
                    "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                    "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:a2a-fanout",
                    "awsRegion": "eu-west-1"}]}),
                "scheduler" => json!({"version": "0", "id": "1", "detail-type": "Scheduled Event",
                    "source": "aws.events", "account": "123456789012", "region": "eu-west-1",
                    "time": "2026-11-30T21:00:00Z", "resources": [], "detail": {}}),
                _ => school.clone(),
            };
            Ok(Function {
                name,
                path,
                event,
                cold_ms: Vec::new(),
                rss_kib: Vec::new(),
                answer: String::new(),
            })
        })
        .collect()
}

fn s3_event(bucket: &str, key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
        "eventTime": "2026-11-30T12:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "192.0.2.1"}, "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "uploads",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                          "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": 100, "eTag": "0", "sequencer": "0"}}
    }]})
}

/// The moto resources every function is configured with, as environment variables.
async fn setup() -> Result<(Vec<(&'static str, String)>, String), String> {
    let conf = a2a_aws::config::sdk_config().await;
    let dynamo = a2a_aws::aws_sdk_dynamodb::Client::new(&conf);
    let s3 = a2a_aws::aws_sdk_s3::Client::from_conf(
        a2a_aws::aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let sqs = a2a_aws::aws_sdk_sqs::Client::new(&conf);
    let sfn = a2a_aws::aws_sdk_sfn::Client::new(&conf);
    let (table, bucket) = (
        a2a_testkit::unique_name("a2a-bench-state"),
        a2a_testkit::unique_name("a2a-bench-data"),
    );
    let err = |what: &str, e: &dyn std::fmt::Display| format!("setting up {what} in moto: {e}");
    DynamoDbStore::create_table(&dynamo, &table)
        .await
        .map_err(|e| err("the table", &e))?;
    S3Blob::create_bucket(&s3, &bucket)
        .await
        .map_err(|e| err("the bucket", &e))?;
    s3.put_object()
        .bucket(&bucket)
        .key("uploads/bench.csv")
        .body(LIST.as_bytes().to_vec().into())
        .send()
        .await
        .map_err(|e| err("the school list", &e))?;
    let queue = SqsQueue::create_with_dead_letter(&sqs, &a2a_testkit::unique_name("a2a-bench"), 3)
        .await
        .map_err(|e| err("the queue", &e))?;
    let mut machines = Vec::new();
    for _ in 0..2 {
        let arn =
            SfnWorkflows::create_waiting_machine(&sfn, &a2a_testkit::unique_name("a2a-bench-sm"))
                .await
                .map_err(|e| err("a state machine", &e))?;
        machines.push(arn);
    }
    // One shard, as the steps' check of A2A_SITE wants; never reached: each step finds its
    // school unregistered first.
    let site = r#"{"host": "eix.example.cat", "old_wwwroot": "https://agora.example.cat/{dns}/moodle",
                   "prefix": "mdl_", "templates": {},
                   "shards": [{"name": "bench", "db": "sqlite:///a2a-bench-nowhere", "capacity": 1}]}"#;
    let env = vec![
        ("A2A_TABLE", table),
        ("A2A_BUCKET", bucket.clone()),
        ("A2A_SITE", site.to_owned()),
        ("A2A_QUEUE_URL", queue.queue_url().to_owned()),
        ("A2A_MIGRATE_STATE_MACHINE", machines[0].clone()),
        ("A2A_PROVISION_STATE_MACHINE", machines[1].clone()),
        ("A2A_WINDOWS", ALWAYS.to_owned()),
    ];
    Ok((env, bucket))
}

/// One cold start of `f`: the time to its first `/next`, and its RSS after one event.
async fn once(f: &Function, env: &[(&'static str, String)]) -> Result<(f64, u64, String), String> {
    let rt = FakeRuntime::start(&f.name)
        .await
        .map_err(|e| format!("the fake runtime: {e}"))?;
    let mut cmd = Command::new(&f.path);
    cmd.envs(a2a_testkit::lambda::lambda_env(&rt, &f.name))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The peer gets only what Lambda gives it; A2A's functions their configuration too.
    if !is_reference(&f.name) {
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    }
    let start = Instant::now();
    let mut p = LambdaProcess::from_command(&f.name, cmd)
        .map_err(|e| format!("{}: {e}", f.path.display()))?;
    let ready = rt
        .wait_first_next(Duration::from_secs(30))
        .await
        .ok_or_else(|| format!("{}: no /next within 30 s (exit: {:?})", f.name, p.exited()))?;
    let cold = ready.duration_since(start).as_secs_f64() * 1000.0;
    let answer = match p
        .call(&rt, f.event.to_string(), Duration::from_secs(60))
        .await?
    {
        Outcome::Response(_) => "response".to_owned(),
        Outcome::Error(e) => format!("error {}", e.error_type),
    };
    // Measured once the function is back at /next: the invocation is wholly done.
    if !rt.wait_nexts(2, Duration::from_secs(10)).await {
        return Err(format!("{}: never asked for a second event", f.name));
    }
    let rss = p
        .rss_kib()
        .ok_or_else(|| format!("{}: no VmRSS in /proc/{}/status", f.name, p.pid()))?;
    Ok((cold, rss, answer))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn mb(kib: f64) -> f64 {
    kib / 1024.0
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench coldstart: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let args = args()?;
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        return Err(
            "AWS_ENDPOINT_URL is not set: the functions are invoked against moto (see run.sh)"
                .into(),
        );
    }
    let (env, bucket) = setup().await?;
    let mut fns = functions(
        &args.dir,
        args.peer.as_deref(),
        &bucket,
        args.only.as_deref(),
    )?;
    eprintln!(
        "bench coldstart: {} functions (and the references), {} runs each, interleaved",
        fns.iter().filter(|f| !is_reference(&f.name)).count(),
        args.runs
    );
    for run in 0..args.runs {
        for f in fns.iter_mut() {
            let (cold, rss, answer) = once(f, &env).await?;
            f.cold_ms.push(cold);
            f.rss_kib.push(rss);
            f.answer = answer;
        }
        eprint!("\rrun {}/{}", run + 1, args.runs);
    }
    eprintln!();

    println!(
        "{:<34} {:>8} {:>10} {:>17} {:>8}  answer",
        "function", "size MB", "cold ms", "(min-max)", "RSS MB"
    );
    for f in &fns {
        let size = std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
        let rss: Vec<f64> = f.rss_kib.iter().map(|k| *k as f64).collect();
        let min = f.cold_ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = f.cold_ms.iter().copied().fold(0.0, f64::max);
        let label = match f.name.as_str() {
            PEER => format!("{} (bare lambda_runtime)", f.name),
            SDK_PEER => format!("{} (+ SDK clients)", f.name),
            _ => f.name.clone(),
        };
        println!(
            "{:<34} {:>8.1} {:>10.2} {:>17} {:>8.1}  {}",
            label,
            size as f64 / 1e6,
            median(&f.cold_ms),
            format!("({min:.2}-{max:.2})"),
            mb(median(&rss)),
            f.answer
        );
    }
    let (refs, a2a): (Vec<&Function>, Vec<&Function>) =
        fns.iter().partition(|f| is_reference(&f.name));
    let (peer, sdk): (Vec<&Function>, Vec<&Function>) =
        refs.into_iter().partition(|f| f.name == PEER);
    let pooled = |fs: &[&Function], g: fn(&Function) -> Vec<f64>| {
        median(&fs.iter().flat_map(|f| g(f)).collect::<Vec<_>>())
    };
    let cold = |f: &Function| f.cold_ms.clone();
    let rss = |f: &Function| f.rss_kib.iter().map(|k| *k as f64).collect();
    let (a2a_ms, peer_ms) = (pooled(&a2a, cold), pooled(&peer, cold));
    let (a2a_rss, peer_rss) = (mb(pooled(&a2a, rss)), mb(pooled(&peer, rss)));
    if let Some(slowest) = a2a
        .iter()
        .max_by(|a, b| median(&a.cold_ms).total_cmp(&median(&b.cold_ms)))
    {
        println!(
            "slowest a2a function: {} {:.2} ms ({:.2}x the bare function)",
            slowest.name,
            median(&slowest.cold_ms),
            median(&slowest.cold_ms) / peer_ms
        );
    }
    if !sdk.is_empty() {
        // A2A against the bare function with the SDK's clients: the part that is A2A's own.
        let sdk_ms = pooled(&sdk, cold);
        println!(
            "bench coldstart-sdk: a2a {a2a_ms:.2} ms, bare lambda_runtime + SDK clients \
             {sdk_ms:.2} ms, ratio {:.2}; the SDK clients alone: ratio {:.2} to the bare function",
            sdk_ms / a2a_ms,
            peer_ms / sdk_ms
        );
    }
    println!(
        "bench coldstart: a2a {a2a_ms:.2} ms, bare lambda_runtime {peer_ms:.2} ms, ratio {:.2}; \
         RSS a2a {a2a_rss:.1} MB, bare {peer_rss:.1} MB, delta {:.1} MB",
        peer_ms / a2a_ms,
        a2a_rss - peer_rss
    );
    Ok(())
}

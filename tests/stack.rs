//! Issue 20's acceptance: the deployed shape rehearsed on one machine. moto, then
//! `a2a stack up --clock virtual --demo` from `template.yaml` (its table, bucket, queues and
//! database secret on moto, every function built as SAM builds it and run as its binary,
//! both state machines behind the stack's Step Functions endpoint), then `a2a worker`
//! against that endpoint (`AWS_ENDPOINT_URL_SFN`). A school list of 3 migrations
//! (PostgreSQL and MariaDB sources, with moodledata) and 10 provisions is uploaded with a
//! plain S3 `PutObject` to the upload prefix: the bucket notification invokes the intake,
//! the schedule the scheduler, the queue's mapping the dispatcher, the state machines the
//! step functions. Every school must end `active` in the DynamoDB table, and each
//! migration's target verify equal to its source by `a2a db verify` and `a2a files verify
//! --rehash`. A manual `StartExecution` (the SDK, then the AWS CLI) for an active school
//! is refused as a duplicate (`A2A.Duplicate`) and leaves it as it was; one for a school
//! whose automatic attempts are spent claims it and makes its site. Meanwhile the first CloneTemplate instance is killed (SIGKILL)
//! mid-invocation: its invoke fails as `Runtime.ExitError`, and the Retry runs the step
//! on a new instance.
//!
//! The codes (2520000x, 252000xx) and the databases are this test's own.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use a2a_core::{InstanceStore, Locator, SchoolCode, Status};
use a2a_dbmove::server;
use common::{Process, text};
use serde_json::{Value, json};

/// Kills (SIGKILL) the first child process of `parent` running the binary `binary`, as
/// soon as it is seen (within 5 minutes); its pid.
fn kill_first_instance(parent: u32, binary: &str) -> Option<u32> {
    let end = Instant::now() + Duration::from_secs(300);
    while Instant::now() < end {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // The parent's pid is the second field after the command's closing parenthesis.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let exe = std::fs::read_link(entry.path().join("exe")).unwrap_or_default();
            if ppid == Some(parent) && exe.file_name().is_some_and(|n| n == binary) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

const MIGRATIONS: [&str; 3] = ["25200001", "25200002", "25200003"];

/// The school registered after the round trip and started by hand.
const NEW: &str = "25200021";

fn provisions() -> Vec<String> {
    (11..=20).map(|n| format!("252000{n}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_school_list_uploaded_to_the_rehearsed_stack_ends_active_and_verified() {
    let test = "stack::a_school_list_uploaded_to_the_rehearsed_stack_ends_active_and_verified";
    let Some(pg) = a2a_testkit::service_url("A2A_TEST_PG_URL", test) else {
        return;
    };
    let Some(my) = a2a_testkit::service_url("A2A_TEST_MYSQL_URL", test) else {
        return;
    };
    let Some(moto) = a2a_testkit::moto::Moto::for_test(test).await else {
        return;
    };
    // The AWS CLI, the operators' other client (`.ci/run` installs it).
    let Some(aws_cli) = a2a_testkit::service_url("A2A_TEST_AWS_CLI", test) else {
        return;
    };
    let shard = Locator::new(pg.clone());
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // A stage of this run's own, so that runs sharing moto never meet.
    let stage = format!("t{}", std::process::id());
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");

    // The sources: two on PostgreSQL, one on MariaDB, each with its moodledata.
    let mut sources = Vec::new();
    for (i, code) in MIGRATIONS.iter().enumerate() {
        let admin = Locator::new(if i == 2 { my.clone() } else { pg.clone() });
        let name = a2a_testkit::db_name(&format!("s20_{code}"));
        let db = server::create(&admin, &name).await.unwrap();
        server::drop(&shard, &format!("a2a_{code}")).await.unwrap();
        let folder = dir.path().join(format!("src-{code}"));
        let o = common::command(&home)
            .args(["fixture", "site", "--db", db.expose(), "--files"])
            .arg(&folder)
            .args(["--scale", "1"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        sources.push((*code, admin, name, db, folder));
    }
    for code in provisions().iter().map(String::as_str).chain([NEW]) {
        server::drop(&shard, &format!("a2a_{code}")).await.unwrap();
    }

    // The stack, from the template, its site made by --demo on the PostgreSQL server.
    let log = dir.path().join("stack.log");
    let mut child = common::command(&home)
        .current_dir(dir.path())
        .args(["-v", "stack", "up", "--clock", "virtual", "--template"])
        .arg(&template)
        .args([
            "--stack-name",
            &stage,
            "--demo",
            "--migrations",
            "0",
            "--eix",
            "0",
        ])
        .args(["--db", &pg, "--parameter-overrides"])
        .arg(format!("Stage={stage}"))
        .arg("Windows=daily 12:00-00:00 UTC;daily 00:00-12:00 UTC")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let stack = Process { child, log };
    let ready: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("no ready line ({e}): {line:?}\n{}", stack.tail()));
    for key in [
        "bucket",
        "upload_prefix",
        "table",
        "queue",
        "dlq",
        "states_endpoint",
        "state_machines",
        "activities",
        "school_list",
    ] {
        assert!(!ready[key].is_null(), "{key} missing: {ready}");
    }
    let bucket = ready["bucket"].as_str().unwrap().to_owned();
    let table = ready["table"].as_str().unwrap().to_owned();
    assert_eq!(
        table,
        format!("a2a-state-{stage}"),
        "the template's TableName"
    );
    assert!(ready["dlq"].as_str().unwrap().ends_with("-dlq"), "{ready}");
    let activities: Vec<&str> = ready["activities"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(activities.len(), 8, "{ready}");

    // The worker, where the sources are, against the stack's endpoint.
    let wlog = dir.path().join("worker.log");
    let site = home.join("demo/site.json");
    let worker = Process {
        child: common::command(&home)
            .current_dir(dir.path())
            .args(["-v", "--state", &format!("dynamodb:{table}")])
            .args(["--blobs", &format!("s3://{bucket}")])
            .args(["worker", "--site", &format!("@{}", site.display())])
            .args(["--activity", &activities.join(",")])
            .env(
                "AWS_ENDPOINT_URL_SFN",
                ready["states_endpoint"].as_str().unwrap(),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&wlog).unwrap())
            .spawn()
            .unwrap(),
        log: wlog,
    };

    // A step function killed mid-invocation: the first instance of CloneTemplate, started
    // for an invocation that waits for it, is killed (SIGKILL) as soon as it is seen; the
    // state machine's Retry runs the step again on a new instance.
    let stack_pid = stack.child.id();
    let killer = std::thread::spawn(move || kill_first_instance(stack_pid, "step-clone-template"));

    // The school lists, uploaded as operators would: the migrations with a plain
    // PutObject, the provisions with the AWS CLI.
    let header = "school_code,name,kind,dns,template,source_db,source_files\n";
    let mut csv = String::from(header);
    for (code, _, _, db, folder) in &sources {
        csv += &format!(
            "{code},Institut {code},migrate,ins-{code},,{},{}\n",
            db.expose(),
            folder.display()
        );
    }
    let mut eix = String::from(header);
    for (i, code) in provisions().iter().enumerate() {
        let template = ["primary", "secondary"][i % 2];
        eix += &format!("{code},Escola Infantil {code},provision,eix-{code},{template},,\n");
    }
    let prefix = ready["upload_prefix"].as_str().unwrap();
    moto.s3
        .put_object()
        .bucket(&bucket)
        .key(format!("{prefix}schools list.csv"))
        .body(csv.into_bytes().into())
        .send()
        .await
        .unwrap();
    let eix_file = dir.path().join("eix.csv");
    std::fs::write(&eix_file, eix).unwrap();
    let emulator = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let o = Command::new(&aws_cli)
        .args(["--endpoint-url", &emulator, "s3", "cp"])
        .arg(&eix_file)
        .arg(format!("s3://{bucket}/{prefix}eix.csv"))
        .output()
        .unwrap();
    assert!(o.status.success(), "aws s3 cp: {}", text(&o));

    // Every school active, read from the table.
    let store = a2a_aws::DynamoDbStore::new(moto.dynamodb.clone(), table.clone());
    let codes: Vec<SchoolCode> = MIGRATIONS
        .iter()
        .map(|c| c.to_string())
        .chain(provisions())
        .map(|c| SchoolCode::parse(&c).unwrap())
        .collect();
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        let mut statuses = Vec::new();
        for code in &codes {
            let i = store.get(code).await.unwrap();
            statuses.push((code.to_string(), i.map(|i| i.status)));
        }
        if statuses.iter().all(|(_, s)| *s == Some(Status::Active)) {
            break;
        }
        let bad: Vec<_> = statuses
            .iter()
            .filter(|(_, s)| matches!(s, Some(Status::Failed | Status::RolledBack)))
            .collect();
        if !bad.is_empty() || Instant::now() > end {
            panic!(
                "not all active: {statuses:?}\n{}{}",
                stack.tail(),
                worker.tail()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let killed = killer.join().unwrap();
    assert!(killed.is_some(), "no CloneTemplate instance was seen");
    let log = std::fs::read_to_string(&stack.log).unwrap();
    assert!(
        log.contains("Runtime.ExitError"),
        "the killed instance failed no invocation:\n{}",
        stack.tail()
    );

    // Each target equal to its source, by the project's independent checks.
    for (code, _, _, db, folder) in &sources {
        let target = server::with_database(&shard, &format!("a2a_{code}"));
        let o = common::command(&home)
            .args(["db", "verify", "--json", "--from", db.expose()])
            .args(["--to", target.expose()])
            .output()
            .unwrap();
        let v: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
        let tables = v["tables"].as_array().unwrap();
        assert!(tables.len() > 5, "{v:#}");
        for t in tables {
            // The source stays frozen after its switch; the target has the setting as
            // before the freeze: one config row may differ.
            let (s, t_rows) = (t["source_rows"].as_u64(), t["target_rows"].as_u64());
            if t["table"] == "mdl_config" {
                assert!(s.unwrap().abs_diff(t_rows.unwrap()) <= 1, "{code}: {t}");
            } else {
                assert_eq!(s, t_rows, "{code}: {t}");
            }
        }
        let o = common::command(&home)
            .args(["--blobs", &format!("s3://{bucket}")])
            .args(["files", "verify", "--rehash", "--school", code, "--from"])
            .arg(folder)
            .args(["--to", &format!("s3://{bucket}")])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{code}: {}", text(&o));
    }

    // Starts by hand, as from the console: for an active school each is refused as a
    // duplicate (`A2A.Duplicate`, nothing rolled back), for a new school it runs. With the
    // SDK for an active migration, with the AWS CLI for an active provision and a new one.
    let states = ready["states_endpoint"].as_str().unwrap();
    let sfn = {
        let conf = a2a_aws::aws_sdk_sfn::config::Builder::from(&moto.conf)
            .endpoint_url(states)
            .build();
        a2a_aws::aws_sdk_sfn::Client::from_conf(conf)
    };
    let ended = async |arn: &str| {
        let end = Instant::now() + Duration::from_secs(180);
        loop {
            let d = sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .unwrap();
            if d.status().as_str() != "RUNNING" || Instant::now() > end {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let instance = async |code: &str| {
        store
            .get(&SchoolCode::parse(code).unwrap())
            .await
            .unwrap()
            .unwrap()
    };
    let refused =
        |d: &a2a_aws::aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput| {
            d.status().as_str() == "FAILED"
                && d.error() == Some("A2A.Duplicate")
                && d.cause().is_some_and(|c| c.contains("already active"))
        };
    let code = MIGRATIONS[0];
    let before = instance(code).await;
    let started = sfn
        .start_execution()
        .state_machine_arn(ready["state_machines"]["migrate"].as_str().unwrap())
        .name(format!("manual-{code}"))
        .input(format!("{{\"school_code\": \"{code}\"}}"))
        .send()
        .await
        .unwrap();
    let status = ended(started.execution_arn()).await;
    assert!(
        refused(&status),
        "an active migration started again: {status:?}"
    );
    common::assert_left_as_it_was(&before, &instance(code).await, &status);

    let cli = |args: &[&str]| -> Value {
        let o = Command::new(&aws_cli)
            .args([
                "--endpoint-url",
                states,
                "--output",
                "json",
                "stepfunctions",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "aws stepfunctions {args:?}: {}",
            text(&o)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let start_by_cli = |code: &str| {
        let started = cli(&[
            "start-execution",
            "--state-machine-arn",
            ready["state_machines"]["provision"].as_str().unwrap(),
            "--name",
            &format!("manual-cli-{code}"),
            "--input",
            &format!("{{\"school_code\": \"{code}\"}}"),
        ]);
        started["executionArn"].as_str().unwrap().to_owned()
    };
    let code = provisions()[0].clone();
    let before = instance(&code).await;
    let status = ended(&start_by_cli(&code)).await;
    assert!(
        refused(&status),
        "an active provision started again: {status:?}"
    );
    common::assert_left_as_it_was(&before, &instance(&code).await, &status);
    let d = cli(&[
        "describe-execution",
        "--execution-arn",
        status.execution_arn(),
    ]);
    assert_eq!(
        (&d["status"], &d["error"]),
        (&json!("FAILED"), &json!("A2A.Duplicate")),
        "{d}"
    );

    // A new school whose automatic attempts are spent (failed at the scheduler's limit
    // of 3, so no tick or delivery starts it; a start by hand cannot race one), started
    // by hand after the fix: that start claims it (attempt 4) and makes its site.
    let mut new = a2a_core::Instance::new(
        SchoolCode::parse(NEW).unwrap(),
        a2a_core::InstanceKind::Provision,
        format!("Escola Infantil {NEW}"),
        before.wave,
        chrono::Utc::now(),
    );
    new.source = before.source.clone();
    new.target.dns = Some(format!("eix-{NEW}"));
    new.move_to(Status::Queued, chrono::Utc::now()).unwrap();
    new.move_to(Status::Failed, chrono::Utc::now()).unwrap();
    new.attempt = 3;
    new.last_error = Some("the test's: three attempts spent".into());
    assert!(store.register(&new).await.unwrap());
    let arn = start_by_cli(NEW);
    let status = ended(&arn).await;
    assert_eq!(
        status.status().as_str(),
        "SUCCEEDED",
        "{:?}: {:?}",
        status.error(),
        status.cause()
    );
    let i = instance(NEW).await;
    assert_eq!(
        (i.status, i.attempt, i.last_error.as_deref()),
        (Status::Active, 4, None),
        "{i:?}"
    );
    assert_eq!(
        i.execution.as_deref(),
        Some(arn.as_str()),
        "claimed by the start by hand"
    );
    assert!(
        server::exists(&shard, &format!("a2a_{NEW}")).await.unwrap(),
        "its database"
    );

    drop(worker);
    let log = stack.log.clone();
    // SIGTERM: the stack ends its functions' processes and sums up their calls.
    assert_eq!(stack.terminate(), Some(0));
    // Every call of every function was one its policies in the template grant (a refused
    // one is logged as it happens and summed up at the stop), and the calls were seen:
    // the dispatcher started executions on the Step Functions endpoint, a step wrote the
    // state table, the intake read the upload.
    let log = std::fs::read_to_string(log).unwrap();
    assert!(!log.contains("not granted"), "{log}");
    let called = |function: &str, action: &str| {
        log.lines().any(|l| {
            l.starts_with(&format!("stack iam: {function}")) && l.split(' ').any(|w| w == action)
        })
    };
    assert!(called("a2a-dispatcher-", "states:StartExecution"), "{log}");
    assert!(
        called("a2a-step-clone-template-", "dynamodb:PutItem"),
        "{log}"
    );
    assert!(called("a2a-intake-", "s3:GetObject"), "{log}");
    for (code, admin, name, _, _) in &sources {
        server::drop(admin, name).await.unwrap();
        server::drop(&shard, &format!("a2a_{code}")).await.unwrap();
    }
    for code in provisions().iter().map(String::as_str).chain([NEW]) {
        server::drop(&shard, &format!("a2a_{code}")).await.unwrap();
    }
}

/// What `a2a stack up` cannot serve is exit 2, naming the resource or the parameter; an
/// emulator that does not answer, or none named, is exit 3. Nothing here needs moto.
#[test]
fn a_template_it_cannot_serve_is_exit_2_and_no_emulator_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let project =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"))
            .unwrap();
    let up = |template: &str, endpoint: Option<&str>, extra: &[&str]| {
        let path = dir.path().join("template.yaml");
        std::fs::write(&path, template).unwrap();
        let mut c = common::command(&home);
        c.args(["stack", "up", "--template"]).arg(&path).args(extra);
        match endpoint {
            Some(e) => c.env("AWS_ENDPOINT_URL", e),
            None => c.env_remove("AWS_ENDPOINT_URL"),
        };
        c.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "eu-west-1")
            .output()
            .unwrap()
    };
    let params = [
        "--parameter-overrides",
        "SiteConfig={}",
        "AlarmTopicArn=arn:aws:sns:eu-west-1:123456789012:t",
    ];
    let unreachable = Some("http://127.0.0.1:9");

    // A resource of a type the rehearsal does not know.
    let vpc = project.replacen(
        "Resources:\n",
        "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: 10.0.0.0/16\n\n",
        1,
    );
    let o = up(&vpc, unreachable, &params);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("resource Vpc"),
        "{}",
        text(&o)
    );

    // A parameter without a default, not given.
    let o = up(&project, unreachable, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("AlarmTopicArn"),
        "{}",
        text(&o)
    );

    // No emulator named, or none answering: exit 3, nothing made anywhere.
    let o = up(&project, None, &params);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("AWS_ENDPOINT_URL"),
        "{}",
        text(&o)
    );
    let o = up(&project, unreachable, &params);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
}

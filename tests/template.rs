//! `template.yaml` against the rest of the workspace, for what neither cfn-lint nor
//! asl-validator checks: every `${…}` of a state machine's ASL file is defined in its
//! `DefinitionSubstitutions` (and each definition names a function of the template), every
//! `DefinitionUri` file exists, and every `Binary` is a bin target that SAM's
//! `cargo lambda build --bin` finds from the root.
//!
//! The step table (`a2a_steps::STEPS`) is the source of the step functions and the
//! activities: a target-side step's function block is the one rendered from its row
//! (binary, name, memory, timeout, environment, policies), a source-side step is an
//! activity (never a Lambda), each state machine substitutes exactly its workflow's steps
//! (a function's ARN or an activity's) and may invoke exactly its target steps, every Task
//! of a step waits its row's timeout, and a source step's Task heartbeats and retries a
//! worker that died. No step Lambda is given a source's credentials; the worker's policy
//! reaches exactly the activities. A failure names what disagrees and, for a block,
//! prints the one to paste.
//!
//! The template is read as text, by indentation: it is written in block style, and this
//! keeps a YAML parser (and its CloudFormation tags) out of the build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn template() -> String {
    std::fs::read_to_string(root().join("template.yaml")).unwrap()
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The resources of the template: logical name → the lines of its block.
fn resources(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut inside = false;
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if indent(line) == 0 {
            inside = line.trim_end() == "Resources:";
            current = None;
            continue;
        }
        if !inside {
            continue;
        }
        if indent(line) == 2 {
            let name = line.trim().trim_end_matches(':').to_owned();
            out.insert(name.clone(), Vec::new());
            current = Some(name);
        } else if let Some(name) = &current {
            out.get_mut(name).unwrap().push(line.to_owned());
        }
    }
    out
}

/// The value of `key: value` in a block, the first one found.
fn value<'a>(block: &'a [String], key: &str) -> Option<&'a str> {
    block.iter().find_map(|l| {
        l.trim()
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|v| v.trim().trim_matches('"'))
    })
}

/// The entries (`key: value`) nested directly under `key:` in a block.
fn mapping(block: &[String], key: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(start) = block.iter().position(|l| l.trim() == format!("{key}:")) else {
        return out;
    };
    let base = indent(&block[start]);
    for line in &block[start + 1..] {
        if indent(line) <= base {
            break;
        }
        if let Some((k, v)) = line.trim().split_once(':') {
            out.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    out
}

/// Every `${Name}` in a text.
fn placeholders(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

/// The workflow of a state machine's `DefinitionUri` (`statemachines/<workflow>.asl.json`).
fn workflow_of(uri: &str) -> a2a_core::InstanceKind {
    a2a_core::InstanceKind::ALL
        .into_iter()
        .find(|k| uri == format!("statemachines/{}.asl.json", k.workflow()))
        .unwrap_or_else(|| panic!("{uri}: not the file of a workflow"))
}

/// The keys whose values differ between two maps: `key: expected ≠ found`.
fn differences(
    expected: &BTreeMap<String, String>,
    found: &BTreeMap<String, String>,
) -> Vec<String> {
    let keys: BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    keys.into_iter()
        .filter(|k| expected.get(*k) != found.get(*k))
        .map(|k| format!("{k}: {:?} ≠ {:?}", expected.get(k), found.get(k)))
        .collect()
}

/// What a step function may do with the secrets under `SecretPrefix`: `Customise` makes
/// each EIX site's own; the rest may touch none (a source's password is read by the
/// worker only).
fn site_secrets_policy(step: &a2a_steps::Step) -> String {
    let actions: &[&str] = match step.name {
        "Customise" => &["GetSecretValue", "CreateSecret"],
        _ => return String::new(),
    };
    let actions: String = actions
        .iter()
        .map(|a| format!("                - secretsmanager:{a}\n"))
        .collect();
    format!(
        r#"        - Statement:
            - Effect: Allow
              Action:
{actions}              Resource: !Sub "arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:${{SecretPrefix}}*"
"#
    )
}

/// The block of a step's function, as the table makes it (without the logical name line).
fn function_block(step: &a2a_steps::Step) -> String {
    let bin = step.bin_name();
    format!(
        r#"    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: {bin}
    Properties:
      FunctionName: !Sub "a2a-{bin}-${{Stage}}"
      Description: The {name} step of {workflow}, {side} side (a2a_steps::STEPS).
      MemorySize: {memory}
      Timeout: {timeout}
      Environment:
        Variables:
          A2A_BUCKET: !Ref DataBucket
          A2A_SITE: !Ref SiteConfig
          A2A_DB_SECRET: !If [DbSecretOn, !Ref DatabaseSecretArn, !Ref AWS::NoValue]
      Policies:
        - !If
          - DbSecretOn
          - Statement:
              - Effect: Allow
                Action:
                  - secretsmanager:GetSecretValue
                Resource: !Ref DatabaseSecretArn
          - !Ref AWS::NoValue
        - DynamoDBCrudPolicy:
            TableName: !Ref StateTable
        - S3CrudPolicy:
            BucketName: !Ref DataBucket
{secrets}"#,
        secrets = site_secrets_policy(step),
        name = step.name,
        workflow = step.workflow.workflow(),
        side = step.side.as_str(),
        memory = step.memory_mb,
        timeout = step.timeout.as_secs(),
    )
}

/// The block of a source step's activity, as the table makes it. The worker finds the step
/// by the name's last part.
fn activity_block(step: &a2a_steps::Step) -> String {
    format!(
        r#"    Type: AWS::StepFunctions::Activity
    Properties:
      Name: !Sub "a2a-${{Stage}}-{name}"
"#,
        name = step.name
    )
}

/// Every target step's function, and every source step's activity, is the block its row
/// makes, line for line; no other function runs a step binary, and no source step has a
/// function.
#[test]
fn every_step_function_is_the_step_tables() {
    let resources = resources(&template());
    let mut problems = Vec::new();
    for step in a2a_steps::STEPS {
        let want = match step.side {
            a2a_steps::Side::Target => function_block(step),
            a2a_steps::Side::Source => {
                let function = format!("{}Function", step.name);
                if resources.contains_key(&function) {
                    problems.push(format!(
                        "{function}: step {} is source-side, run by `a2a worker`; remove \
                         the function",
                        step.name
                    ));
                }
                activity_block(step)
            }
        };
        let name = step.resource();
        let Some(block) = resources.get(&name) else {
            problems.push(format!(
                "step {}: no {name} in template.yaml; add under Resources:\n  {name}:\n{want}",
                step.name
            ));
            continue;
        };
        let want: Vec<&str> = want.lines().collect();
        let lines: Vec<&str> = block.iter().map(String::as_str).collect();
        if lines != want {
            let first = (0..want.len().max(lines.len()))
                .find(|&n| want.get(n) != lines.get(n))
                .unwrap_or(0);
            problems.push(format!(
                "{name} (step {}): line {} is {:?}, the step table makes {:?}",
                step.name,
                first + 1,
                lines.get(first).map(|l| l.trim()),
                want.get(first).map(|l| l.trim())
            ));
        }
    }
    for (name, block) in &resources {
        if let Some(bin) = value(block, "Binary").filter(|b| b.starts_with("step-"))
            && !a2a_steps::STEPS.iter().any(|s| {
                s.bin_name() == bin && s.resource() == *name && s.side == a2a_steps::Side::Target
            })
        {
            problems.push(format!(
                "{name}: Binary {bin} is no target step of a2a_steps::STEPS"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_placeholder_is_substituted_and_every_definition_exists() {
    let resources = resources(&template());
    let machines: Vec<_> = resources
        .iter()
        .filter(|(_, b)| value(b, "Type") == Some("AWS::Serverless::StateMachine"))
        .collect();
    assert_eq!(machines.len(), 2, "both state machines are in the template");
    let mut files = BTreeSet::new();
    for (name, block) in machines {
        let uri =
            value(block, "DefinitionUri").unwrap_or_else(|| panic!("{name}: no DefinitionUri"));
        let path = root().join(uri);
        assert!(path.is_file(), "{name}: DefinitionUri {uri} does not exist");
        files.insert(uri.to_owned());
        let asl = std::fs::read_to_string(&path).unwrap();
        let subs = mapping(block, "DefinitionSubstitutions");
        let used = placeholders(&asl);
        for p in &used {
            assert!(
                subs.contains_key(p),
                "{name}: ${{{p}}} of {uri} is not substituted"
            );
        }
        for (k, v) in &subs {
            assert!(
                used.contains(k),
                "{name}: substitution {k} is not used in {uri}"
            );
            // Each one is a function of this template by its ARN, or an activity (whose Ref
            // is its ARN).
            let (resource, kind) = match v.strip_prefix("!Ref ") {
                Some(a) => (a, "AWS::StepFunctions::Activity"),
                None => (
                    v.strip_prefix("!GetAtt ")
                        .and_then(|f| f.strip_suffix(".Arn"))
                        .unwrap_or_else(|| {
                            panic!("{name}: {k} is neither `!GetAtt <Function>.Arn` nor `!Ref <Activity>`: {v}")
                        }),
                    "AWS::Serverless::Function",
                ),
            };
            let target = resources
                .get(resource)
                .unwrap_or_else(|| panic!("{name}: {k} names {resource}, not in the template"));
            assert_eq!(value(target, "Type"), Some(kind), "{resource}");
        }
        // The substitutions are the steps of this workflow in the table, one to one.
        let workflow = workflow_of(uri);
        let expected: BTreeMap<String, String> = a2a_steps::steps_of(workflow)
            .map(|s| (s.name.to_owned(), substitution(s)))
            .collect();
        assert_eq!(
            differences(&expected, &subs),
            Vec::<String>::new(),
            "{name}: DefinitionSubstitutions against the step table (expected, found)"
        );
        // It may invoke exactly those functions.
        let invoked: BTreeSet<String> = block
            .iter()
            .filter_map(|l| l.trim().strip_prefix("FunctionName: !Ref "))
            .map(str::to_owned)
            .collect();
        let expected: BTreeSet<String> = a2a_steps::steps_of(workflow)
            .filter(|s| s.side == a2a_steps::Side::Target)
            .map(|s| s.resource())
            .collect();
        assert_eq!(
            (
                expected.difference(&invoked).collect::<Vec<_>>(),
                invoked.difference(&expected).collect::<Vec<_>>()
            ),
            (Vec::new(), Vec::new()),
            "{name}: LambdaInvokePolicy functions (missing, not target steps of {})",
            workflow.workflow()
        );
    }
    assert_eq!(
        files,
        BTreeSet::from([
            "statemachines/migrate-instance.asl.json".to_owned(),
            "statemachines/provision-instance.asl.json".to_owned(),
        ])
    );
}

/// A step's `${Name}` in `DefinitionSubstitutions`: its function's ARN, or its activity's.
fn substitution(step: &a2a_steps::Step) -> String {
    match step.side {
        a2a_steps::Side::Target => format!("!GetAtt {}.Arn", step.resource()),
        a2a_steps::Side::Source => format!("!Ref {}", step.resource()),
    }
}

/// The bin targets that `cargo build --bin NAME` finds from the root, as `cargo metadata`
/// lists them: those of the workspace's default members. SAM's Rust builder runs
/// `cargo lambda build --bin NAME` there, and a bin of another member is not found.
fn default_member_bins() -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let defaults: BTreeSet<&str> = meta["workspace_default_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| defaults.contains(p["id"].as_str().unwrap()))
        .flat_map(|p| p["targets"].as_array().unwrap())
        .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_binary_is_a_bin_target_of_a_default_member() {
    let bins = default_member_bins();
    let resources = resources(&template());
    let functions: Vec<_> = resources
        .iter()
        .filter(|(_, b)| value(b, "Type") == Some("AWS::Serverless::Function"))
        .collect();
    // One per target step of the table, plus intake, dispatcher and scheduler.
    let targets = a2a_steps::STEPS
        .iter()
        .filter(|s| s.side == a2a_steps::Side::Target)
        .count();
    assert_eq!(functions.len(), targets + 3);
    let mut seen = BTreeSet::new();
    for (name, block) in functions {
        assert_eq!(
            value(block, "BuildMethod"),
            Some("rust-cargolambda"),
            "{name}"
        );
        let binary = value(block, "Binary").unwrap_or_else(|| panic!("{name}: no Binary"));
        assert!(
            bins.contains(binary),
            "{name}: Binary {binary} is not a bin target of a default member of the workspace \
             (`default-members` in Cargo.toml), so `cargo lambda build --bin {binary}` fails"
        );
        assert!(
            seen.insert(binary.to_owned()),
            "{name}: Binary {binary} twice"
        );
    }
}

/// Every Task of a JSON value (a state machine), with the path of states leading to it.
fn tasks<'a>(v: &'a serde_json::Value, at: &str, out: &mut Vec<(String, &'a serde_json::Value)>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::Object(states)) = m.get("States") {
                for (name, s) in states {
                    let path = format!("{at}/{name}");
                    if s.get("Type").and_then(|t| t.as_str()) == Some("Task") {
                        out.push((path.clone(), s));
                    }
                    tasks(s, &path, out);
                }
            }
            for (k, x) in m {
                if k != "States" {
                    tasks(x, at, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| tasks(x, at, out)),
        _ => {}
    }
}

/// Lambda's longest run.
const LAMBDA_MAX_SECONDS: u64 = 900;

/// A Task that waits longer than its function can run only hides a killed Lambda behind
/// a later timeout: every Task's `TimeoutSeconds` is at most its function's `Timeout`
/// (the `Globals` one when the function sets none), no function runs past Lambda's 900 s,
/// and a step's Tasks wait exactly its row's timeout.
#[test]
fn every_task_times_out_within_its_functions_timeout() {
    let text = template();
    let resources = resources(&text);
    let globals: u64 = text
        .lines()
        .skip_while(|l| l.trim_end() != "Globals:")
        .take_while(|l| l.trim_end() != "Resources:")
        .find_map(|l| l.trim().strip_prefix("Timeout:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Globals has a Function Timeout");
    let timeout = |function: &str| -> u64 {
        value(&resources[function], "Timeout")
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{function}: Timeout {v}"))
            })
            .unwrap_or(globals)
    };
    let mut checked = 0;
    for (name, block) in &resources {
        if value(block, "Type") != Some("AWS::Serverless::StateMachine") {
            continue;
        }
        let uri = value(block, "DefinitionUri").unwrap();
        let asl: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root().join(uri)).unwrap()).unwrap();
        let subs = mapping(block, "DefinitionSubstitutions");
        let mut found = Vec::new();
        tasks(&asl, "", &mut found);
        assert!(!found.is_empty(), "{uri}: no Task");
        for (path, task) in found {
            let resource = task["Resource"].as_str().unwrap();
            let sub = resource
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .unwrap_or_else(|| panic!("{uri}{path}: Resource {resource}"));
            let step = a2a_steps::step(sub).unwrap_or_else(|| {
                panic!("{uri}{path}: ${{{sub}}} is no step of a2a_steps::STEPS")
            });
            if step.side == a2a_steps::Side::Source {
                activity_task(uri, &path, task, step);
                checked += 1;
                continue;
            }
            let function = subs[sub]
                .strip_prefix("!GetAtt ")
                .and_then(|f| f.strip_suffix(".Arn"))
                .unwrap();
            let limit = timeout(function);
            assert!(
                limit <= LAMBDA_MAX_SECONDS,
                "{function}: Timeout {limit} s is past Lambda's {LAMBDA_MAX_SECONDS} s"
            );
            let seconds = task["TimeoutSeconds"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: {uri}{path} has no TimeoutSeconds"));
            assert!(
                seconds <= limit,
                "{name}: {uri}{path} waits {seconds} s, but {function} runs at most {limit} s"
            );
            assert_eq!(
                seconds,
                step.timeout.as_secs(),
                "{uri}{path}: TimeoutSeconds {seconds}, the step table's {} timeout is {:?}",
                step.name,
                step.timeout
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} Tasks");
}

/// A source step's Task: its row's timeout, the table's `HeartbeatSeconds`, and a Retry of
/// a worker that died (`States.Timeout`, `States.HeartbeatTimeout`) and of transient errors.
fn activity_task(uri: &str, path: &str, task: &serde_json::Value, step: &a2a_steps::Step) {
    assert_eq!(
        task["TimeoutSeconds"].as_u64(),
        Some(step.timeout.as_secs()),
        "{uri}{path}: TimeoutSeconds, the step table's {} timeout is {:?}",
        step.name,
        step.timeout
    );
    assert_eq!(
        task["HeartbeatSeconds"].as_u64(),
        Some(a2a_steps::HEARTBEAT.as_secs()),
        "{uri}{path}: an activity task's HeartbeatSeconds is a2a_steps::HEARTBEAT"
    );
    let retried: BTreeSet<&str> = task["Retry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["ErrorEquals"].as_array().into_iter().flatten())
        .filter_map(|e| e.as_str())
        .collect();
    for e in ["A2A.Transient", "States.Timeout", "States.HeartbeatTimeout"] {
        assert!(retried.contains(e), "{uri}{path}: {e} is not retried");
    }
}

/// No step Lambda runs a source step, reads a secret under `SecretPrefix` (where the
/// sources' passwords are) but `Customise` (each new site's own), or is handed a source
/// path; the worker's policy reaches exactly the activities, and the outputs name them.
#[test]
fn no_lambda_gets_a_source_and_the_worker_gets_exactly_the_activities() {
    let text = template();
    let resources = resources(&text);
    let mut problems = Vec::new();
    for (name, block) in &resources {
        let Some(bin) = value(block, "Binary").filter(|b| b.starts_with("step-")) else {
            continue;
        };
        let Some(step) = a2a_steps::STEPS.iter().find(|s| s.bin_name() == bin) else {
            continue;
        };
        if step.side == a2a_steps::Side::Source {
            problems.push(format!("{name}: a Lambda of the source step {}", step.name));
        }
        let body = block.join("\n");
        if step.name != "Customise" && body.contains("${SecretPrefix}") {
            problems.push(format!(
                "{name}: may read the secrets under SecretPrefix (the sources' passwords)"
            ));
        }
        // A source folder or database would come as a variable or a parameter of that name.
        let sourced = block.iter().any(|l| {
            let l = l.replace("Resource", "");
            l.contains("SOURCE") || l.contains("Source") || l.contains("source_")
        });
        if sourced {
            problems.push(format!("{name}: is handed something of a source"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let activities: BTreeSet<String> = a2a_steps::STEPS
        .iter()
        .filter(|s| s.side == a2a_steps::Side::Source)
        .map(|s| s.resource())
        .collect();
    let policy = resources
        .get("WorkerPolicy")
        .expect("a WorkerPolicy resource");
    assert_eq!(value(policy, "Type"), Some("AWS::IAM::ManagedPolicy"));
    let start = policy
        .iter()
        .position(|l| l.trim() == "- states:GetActivityTask")
        .expect("WorkerPolicy allows states:GetActivityTask");
    let granted: BTreeSet<String> = policy[start..]
        .iter()
        .skip_while(|l| l.trim() != "Resource:")
        .skip(1)
        .take_while(|l| l.trim().starts_with("- !Ref "))
        .map(|l| l.trim().trim_start_matches("- !Ref ").to_owned())
        .collect();
    assert_eq!(granted, activities, "WorkerPolicy's activities");
    let outputs: BTreeSet<String> = text
        .lines()
        .skip_while(|l| l.trim_end() != "Outputs:")
        .skip_while(|l| l.trim() != "WorkerActivityArns:")
        .filter_map(|l| {
            l.trim()
                .strip_prefix("- - !Ref ")
                .or(l.trim().strip_prefix("- !Ref "))
        })
        .filter(|r| r.ends_with("Activity"))
        .map(str::to_owned)
        .collect();
    assert_eq!(outputs, activities, "the WorkerActivityArns output");
}

/// `--stack NAME` (`a2a_aws::stack`) reads the deployed stack's outputs by name: each name
/// it reads is an output of template.yaml, so a renamed output fails here, not in an
/// operator's console.
#[test]
fn every_output_the_stack_discovery_reads_is_the_templates() {
    let text = template();
    let outputs: BTreeSet<&str> = text
        .lines()
        .skip_while(|l| l.trim_end() != "Outputs:")
        .skip(1)
        .filter(|l| indent(l) == 2 && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    assert!(outputs.contains("WorkerPolicyArn"), "{outputs:?}");
    for key in a2a_aws::stack::OUTPUTS {
        assert!(
            outputs.contains(key),
            "a2a_aws::stack reads the output {key}, which template.yaml's Outputs lacks: {outputs:?}"
        );
    }
}

/// The scheduler's tick reads tonight's quota and then enqueues up to it: two ticks at once
/// would each see the same room. The reserved concurrency of one keeps them apart in AWS.
#[test]
fn only_one_scheduler_tick_runs_at_a_time() {
    let resources = resources(&template());
    let scheduler = &resources["SchedulerFunction"];
    assert_eq!(
        value(scheduler, "ReservedConcurrentExecutions"),
        Some("1"),
        "SchedulerFunction must have ReservedConcurrentExecutions: 1"
    );
}

/// The migrate workflow's Maps over database parts run every planned part at once:
/// `a2a_dbmove::plan::PARTS` (what the steps plan by default, and what `bench/dbmove`'s
/// workflow mode runs) is their `MaxConcurrency`; the import's Map runs beside the
/// export's, in the branches of one Parallel (the import follows the export).
#[test]
fn the_database_maps_run_the_planned_parts_at_once() {
    let path = root().join("statemachines/migrate-instance.asl.json");
    let asl: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let copy = &asl["States"]["ExportAndSync"]["Branches"][0]["States"]["CopyDatabase"];
    assert_eq!(
        copy["Type"],
        "Parallel",
        "CopyDatabase in {}",
        path.display()
    );
    let export = &copy["Branches"][0]["States"]["ExportParts"];
    let import = &copy["Branches"][1]["States"]["ImportParts"];
    for (name, map) in [("ExportParts", export), ("ImportParts", import)] {
        assert_eq!(
            map["Type"],
            "Map",
            "{name} is not a Map in {}",
            path.display()
        );
        assert_eq!(
            map["MaxConcurrency"].as_u64(),
            Some(a2a_dbmove::plan::PARTS as u64),
            "{name}'s MaxConcurrency must be a2a_dbmove::plan::PARTS"
        );
    }
}

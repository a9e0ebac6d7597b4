//! `template.yaml` against the rest of the workspace, for what neither cfn-lint nor
//! asl-validator checks: every `${…}` of a state machine's ASL file is defined in its
//! `DefinitionSubstitutions` (and each definition names a function of the template), every
//! `DefinitionUri` file exists, and every `Binary` is a bin target of the workspace.
//!
//! The template is read as text, by indentation: it is written in block style, and this
//! keeps a YAML parser (and its CloudFormation tags) out of the build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
            // Each one is a function of this template, by its ARN.
            let function = v
                .strip_prefix("!GetAtt ")
                .and_then(|f| f.strip_suffix(".Arn"))
                .unwrap_or_else(|| panic!("{name}: {k} is not `!GetAtt <Function>.Arn`: {v}"));
            let target = resources
                .get(function)
                .unwrap_or_else(|| panic!("{name}: {k} names {function}, not in the template"));
            assert_eq!(
                value(target, "Type"),
                Some("AWS::Serverless::Function"),
                "{function}"
            );
        }
        // The step names of a2a-steps are the substitutions, one to one.
        let steps: BTreeSet<String> = if uri.contains("provision") {
            a2a_steps::PROVISION_STEPS
        } else {
            a2a_steps::MIGRATE_STEPS
        }
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(
            subs.keys().cloned().collect::<BTreeSet<_>>(),
            steps,
            "{name}"
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

/// The bin targets of one package: its `[[bin]]` entries, `src/main.rs` (named after the
/// package) and `src/bin/*.rs`, unless an entry already names that file.
fn bins_of(dir: &Path) -> BTreeSet<String> {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()).unwrap();
    let mut names = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for bin in manifest
        .get("bin")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
    {
        names.insert(bin["name"].as_str().unwrap().to_owned());
        if let Some(p) = bin.get("path").and_then(|p| p.as_str()) {
            paths.insert(p.to_owned());
        }
    }
    if dir.join("src/main.rs").is_file() && !paths.contains("src/main.rs") {
        let package = manifest["package"]["name"].as_str().unwrap();
        names.insert(package.to_owned());
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("src/bin")) {
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file.strip_suffix(".rs")
                && !paths.contains(&format!("src/bin/{file}"))
            {
                names.insert(stem.to_owned());
            }
        }
    }
    names
}

#[test]
fn every_binary_is_a_bin_target_of_the_workspace() {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let bins: BTreeSet<String> = manifest["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| bins_of(&root().join(m.as_str().unwrap())))
        .collect();
    let resources = resources(&template());
    let functions: Vec<_> = resources
        .iter()
        .filter(|(_, b)| value(b, "Type") == Some("AWS::Serverless::Function"))
        .collect();
    // One per step of both workflows, plus intake, dispatcher and scheduler.
    assert_eq!(
        functions.len(),
        a2a_steps::PROVISION_STEPS.len() + a2a_steps::MIGRATE_STEPS.len() + 3
    );
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
            "{name}: Binary {binary} is not a bin target of the workspace"
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
/// (the `Globals` one when the function sets none), and no function runs past Lambda's
/// 900 s.
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
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} Tasks");
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

//! `template.yaml` against what keeps a deployed stack running for weeks, read as YAML (its
//! CloudFormation tags kept): a deferred school outlasts a night in the queue, a
//! dead-lettered one reaches someone, logs do not grow forever, and the scheduler may make
//! the calls its reconciliation makes.

use std::path::PathBuf;

use yaml_serde::Value;

fn template() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
    yaml_serde::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    t.get("Resources")
        .and_then(|r| r.get(id))
        .unwrap_or_else(|| panic!("no resource {id}"))
}

fn props<'a>(t: &'a Value, id: &str) -> &'a Value {
    &resource(t, id)["Properties"]
}

/// The argument of a tagged value (`!Ref X` → `X`), or the value itself.
fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => &t.value,
        v => v,
    }
}

fn number(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{v:?} is not a whole number"))
}

#[test]
fn a_deferred_message_outlasts_a_night_and_the_next_day_before_the_dead_letter_queue() {
    let t = template();
    let queue = props(&t, "FanOutQueue");
    let visibility = number(&queue["VisibilityTimeout"]);
    let receives = &queue["RedrivePolicy"]["maxReceiveCount"];
    assert_eq!(untag(receives).as_str(), Some("MaxReceives"));
    let param = &t["Parameters"]["MaxReceives"];
    // The scheduler re-sends a queued school after 2 hours (a2a_schedule::Policy).
    let requeue = a2a_schedule::Policy::new(Vec::new())
        .requeue_after
        .num_seconds() as u64;
    let day = 24 * 3600;
    for (what, n) in [
        ("default", number(&param["Default"])),
        ("MinValue", number(&param["MinValue"])),
    ] {
        let span = visibility * n;
        assert!(
            span >= day + requeue,
            "MaxReceives {what} {n} × VisibilityTimeout {visibility} s = {span} s: a message \
             deferred through a night would be dead-lettered before the next window"
        );
    }
    // The dispatcher's run fits in the visibility timeout, as SQS requires of a mapping.
    let dispatcher = number(&props(&t, "DispatcherFunction")["Timeout"]);
    assert!(dispatcher <= visibility, "{dispatcher} > {visibility}");
}

#[test]
fn the_dead_letter_alarm_notifies_the_topic_given_as_a_parameter() {
    let t = template();
    let actions = props(&t, "FanOutDeadLetterAlarm")["AlarmActions"]
        .as_sequence()
        .expect("the alarm has actions");
    assert!(
        actions
            .iter()
            .any(|a| untag(a).as_str() == Some("AlarmTopicArn")),
        "{actions:?}"
    );
    let p = &t["Parameters"]["AlarmTopicArn"];
    assert!(
        p.get("Default").is_none(),
        "the topic is asked for, not defaulted"
    );
    assert!(p["AllowedPattern"].as_str().unwrap().contains(":sns:"));
}

#[test]
fn every_function_logs_to_a_group_with_a_retention() {
    let t = template();
    let global = &t["Globals"]["Function"]["LoggingConfig"]["LogGroup"];
    let group = untag(global).as_str().expect("Globals name the log group");
    let days = number(&props(&t, group)["RetentionInDays"]);
    assert!((1..=3653).contains(&days), "{days}");
    // No function overrides it with a group of its own that keeps logs forever.
    for (id, r) in t["Resources"].as_mapping().unwrap() {
        if r["Type"].as_str() == Some("AWS::Serverless::Function") {
            let own = &r["Properties"]["LoggingConfig"];
            assert!(own.is_null(), "{id:?} sets its own LoggingConfig");
        }
    }
}

#[test]
fn the_scheduler_may_describe_and_stop_the_executions_it_reconciles() {
    let t = template();
    let policies = props(&t, "SchedulerFunction")["Policies"]
        .as_sequence()
        .unwrap();
    let mut granted: Vec<(String, String)> = Vec::new();
    for p in policies {
        let Some(statements) = p.get("Statement").and_then(Value::as_sequence) else {
            continue;
        };
        for s in statements {
            let actions: Vec<String> = match &s["Action"] {
                Value::Sequence(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                Value::String(a) => vec![a.clone()],
                _ => Vec::new(),
            };
            let resources: Vec<String> = match &s["Resource"] {
                Value::Sequence(r) => r
                    .iter()
                    .filter_map(|x| untag(x).as_str().map(str::to_owned))
                    .collect(),
                r => untag(r).as_str().map(str::to_owned).into_iter().collect(),
            };
            for a in &actions {
                for r in &resources {
                    granted.push((a.clone(), r.clone()));
                }
            }
        }
    }
    // a2a_schedule::tick reconciles with Workflows::describe and Workflows::stop, which
    // SfnWorkflows makes as DescribeExecution and StopExecution on the execution's ARN.
    for action in ["states:DescribeExecution", "states:StopExecution"] {
        for machine in ["MigrateStateMachine", "ProvisionStateMachine"] {
            assert!(
                granted
                    .iter()
                    .any(|(a, r)| a == action
                        && r.contains(&format!(":execution:${{{machine}.Name}}:"))),
                "the scheduler lacks {action} on {machine}'s executions: {granted:?}"
            );
        }
    }
}

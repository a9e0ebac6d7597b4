//! Tests of the engine: every state type, input and output processing (with the worked
//! examples of the AWS developer guide), Retry timing on the virtual clock, Catch, timeouts,
//! Parallel and Map, tasks, mocks and history.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::task::{FnHandler, Handlers, TaskContext, TaskError};
use crate::{Execution, ExecutionOptions, MockConfig, Outcome, StateMachine, Status, VirtualClock};

fn sm(def: Value) -> StateMachine {
    StateMachine::parse(&def.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn opts(handlers: Handlers) -> ExecutionOptions {
    ExecutionOptions {
        name: Some("exec-1".into()),
        state_machine_name: "test".into(),
        clock: Arc::new(VirtualClock::starting_at(start())),
        resolver: Arc::new(handlers),
        mock: None,
        history: true,
        arn: None,
    }
}

fn start() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

async fn run(def: Value, input: Value, handlers: Handlers) -> Outcome {
    Execution::run(&sm(def), input, opts(handlers)).await
}

fn ok(o: &Outcome) -> Value {
    assert_eq!(o.status, Status::Succeeded, "{:?} {:?}", o.error, o.cause);
    o.output.clone().unwrap()
}

fn echo() -> FnHandler<
    impl Fn(Value, TaskContext) -> std::future::Ready<Result<Value, TaskError>> + Send + Sync,
> {
    FnHandler(|v: Value, _c: TaskContext| std::future::ready(Ok(v)))
}

fn fails_with(
    name: &'static str,
) -> FnHandler<
    impl Fn(Value, TaskContext) -> std::future::Ready<Result<Value, TaskError>> + Send + Sync,
> {
    FnHandler(move |_v: Value, _c: TaskContext| {
        std::future::ready(Err(TaskError::new(name, "it broke")))
    })
}

fn task(resource: &str) -> Value {
    json!({"Type": "Task", "Resource": resource, "End": true})
}

const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:";

fn events(o: &Outcome) -> Vec<&'static str> {
    o.history.iter().map(|e| e.event_type).collect()
}

// ---------- state types ----------

#[tokio::test]
async fn pass_result_and_parameters() {
    let o = run(
        json!({"StartAt": "P", "States": {
            "P": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.r", "Next": "Q"},
            "Q": {"Type": "Pass", "Parameters": {"copy.$": "$.r.x", "lit": "a"}, "End": true}
        }}),
        json!({"in": true}),
        Handlers::new(),
    )
    .await;
    assert_eq!(ok(&o), json!({"copy": 1, "lit": "a"}));
    assert_eq!(o.transitions, 2);
}

#[tokio::test]
async fn succeed_and_fail_states() {
    let o = run(json!({"StartAt": "S", "States": {"S": {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}}}), json!({"a": {"b": 2}}), Handlers::new()).await;
    assert_eq!(ok(&o), json!(2));
    let o = run(json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Export.Failed", "Cause": "disk full"}}}), json!({}), Handlers::new()).await;
    assert_eq!(o.status, Status::Failed);
    assert_eq!(
        (o.error.as_deref(), o.cause.as_deref()),
        (Some("Export.Failed"), Some("disk full"))
    );
    let o = run(
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('school {}', $.code)"}}}),
        json!({"e": "School.Invalid", "code": "08012345"}),
        Handlers::new(),
    )
    .await;
    assert_eq!(
        (o.error.as_deref(), o.cause.as_deref()),
        (Some("School.Invalid"), Some("school 08012345"))
    );
    assert_eq!(
        events(&o),
        ["ExecutionStarted", "FailStateEntered", "ExecutionFailed"]
    );
    let o = run(
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail"}}}),
        json!({}),
        Handlers::new(),
    )
    .await;
    assert_eq!((o.status, o.error, o.cause), (Status::Failed, None, None));
}

#[tokio::test]
async fn wait_states_cost_no_wall_time_on_the_virtual_clock() {
    let wall = std::time::Instant::now();
    let o = run(
        json!({"StartAt": "W1", "States": {
            "W1": {"Type": "Wait", "Seconds": 86400, "Next": "W2"},
            "W2": {"Type": "Wait", "SecondsPath": "$.s", "Next": "W3"},
            "W3": {"Type": "Wait", "Timestamp": "2026-01-05T00:00:00Z", "Next": "W4"},
            "W4": {"Type": "Wait", "TimestampPath": "$.t", "End": true}
        }}),
        json!({"s": 3600, "t": "2026-01-04T00:00:00Z"}),
        Handlers::new(),
    )
    .await;
    ok(&o);
    // 1 day, 1 hour, then to Jan 5th; W4's timestamp is already past.
    assert_eq!(o.stopped - o.started, chrono::Duration::days(4));
    assert!(wall.elapsed() < Duration::from_secs(30));
    let o = run(json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}}), json!({"s": "x"}), Handlers::new()).await;
    assert_eq!(o.error.as_deref(), Some("States.Runtime"));
}

#[tokio::test]
async fn choice_routes_and_reports_no_match() {
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.n", "IsPresent": true}, {"Variable": "$.n", "NumericGreaterThanPath": "$.limit"}], "Next": "Big"},
            {"Not": {"Variable": "$.kind", "StringMatches": "prov*"}, "Next": "Migrate"}
        ]},
        "Big": {"Type": "Pass", "Result": "big", "End": true},
        "Migrate": {"Type": "Pass", "Result": "migrate", "End": true}
    }});
    assert_eq!(
        ok(&run(def.clone(), json!({"n": 5, "limit": 3}), Handlers::new()).await),
        json!("big")
    );
    assert_eq!(
        ok(&run(def.clone(), json!({"kind": "migrate"}), Handlers::new()).await),
        json!("migrate")
    );
    let o = run(def.clone(), json!({"kind": "provision"}), Handlers::new()).await;
    assert_eq!(o.error.as_deref(), Some("States.NoChoiceMatched"));
    let mut with_default = def;
    with_default["States"]["C"]["Default"] = json!("Big");
    assert_eq!(
        ok(&run(with_default, json!({"kind": "provision"}), Handlers::new()).await),
        json!("big")
    );
}

// ---------- input and output processing ----------

/// The developer guide's InputPath / ResultPath / OutputPath example.
#[tokio::test]
async fn guide_example_input_result_and_output_paths() {
    let hello = FnHandler(|v: Value, _c: TaskContext| async move {
        Ok(json!(format!(
            "Hello, {}!",
            v["who"].as_str().unwrap_or("?")
        )))
    });
    let o = run(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": format!("{FN}HelloFunction"),
            "InputPath": "$.lambda", "ResultPath": "$.data.lambdaresult", "OutputPath": "$.data", "End": true}}}),
        json!({"comment": "An input comment.", "data": {"val1": 23, "val2": 17}, "extra": "foo", "lambda": {"who": "AWS Step Functions"}}),
        Handlers::new().lambda("HelloFunction", hello),
    )
    .await;
    assert_eq!(
        ok(&o),
        json!({"val1": 23, "val2": 17, "lambdaresult": "Hello, AWS Step Functions!"})
    );
}

/// The developer guide's ResultPath examples: `$`, null, a new field, a nested new field.
#[tokio::test]
async fn guide_example_result_path_variants() {
    let input = json!({"comment": "This is a test of the input and output of a Task state.", "details": "Default example", "who": "AWS Step Functions"});
    let pass = |rp: Value| {
        let mut s = json!({"Type": "Pass", "Result": "Hello, AWS Step Functions!", "End": true});
        if !rp.is_string() || rp != "omit" {
            s["ResultPath"] = rp;
        }
        json!({"StartAt": "P", "States": {"P": s}})
    };
    assert_eq!(
        ok(&run(pass(json!("omit")), input.clone(), Handlers::new()).await),
        json!("Hello, AWS Step Functions!")
    );
    assert_eq!(
        ok(&run(pass(json!("$")), input.clone(), Handlers::new()).await),
        json!("Hello, AWS Step Functions!")
    );
    assert_eq!(
        ok(&run(pass(Value::Null), input.clone(), Handlers::new()).await),
        input
    );
    let mut with_field = input.clone();
    with_field["taskresult"] = json!("Hello, AWS Step Functions!");
    assert_eq!(
        ok(&run(pass(json!("$.taskresult")), input.clone(), Handlers::new()).await),
        with_field
    );
    let mut nested = input.clone();
    nested["strings"] = json!({"lambdaresult": "Hello, AWS Step Functions!"});
    assert_eq!(
        ok(&run(
            pass(json!("$.strings.lambdaresult")),
            input.clone(),
            Handlers::new()
        )
        .await),
        nested
    );
    // Writing under a string is a ResultPathMatchFailure.
    let o = run(pass(json!("$.who.x")), input, Handlers::new()).await;
    assert_eq!(o.error.as_deref(), Some("States.ResultPathMatchFailure"));
}

/// The guide's lambda:invoke + ResultSelector example: the wrapped response is trimmed.
#[tokio::test]
async fn lambda_invoke_wraps_and_result_selector_trims() {
    let o = run(
        json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": format!("{FN}export:live"), "Payload": {"code.$": "$.school_code", "exec.$": "$$.Execution.Name"}},
            "ResultSelector": {"rows.$": "$.Payload.rows", "status.$": "$.StatusCode"},
            "ResultPath": "$.export", "End": true}}}),
        json!({"school_code": "08012345"}),
        Handlers::new().lambda("export", FnHandler(|v: Value, _c: TaskContext| async move { Ok(json!({"rows": 10, "got": v})) })),
    )
    .await;
    assert_eq!(
        ok(&o),
        json!({"school_code": "08012345", "export": {"rows": 10, "status": 200}})
    );
    // Without ResultSelector the whole wrapper is the result.
    let o = run(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "export", "Payload.$": "$"}, "End": true}}}),
        json!({"a": 1}),
        Handlers::new().lambda("export", echo()),
    )
    .await;
    let out = ok(&o);
    assert_eq!(out["Payload"], json!({"a": 1}));
    assert_eq!(out["StatusCode"], 200);
    assert_eq!(out["ExecutedVersion"], "$LATEST");
    assert!(out["SdkResponseMetadata"]["RequestId"].is_string());
    assert_eq!(
        events(&o)[2..5],
        ["TaskScheduled", "TaskStarted", "TaskSucceeded"]
    );
}

#[tokio::test]
async fn context_object_fields() {
    let o = run(
        json!({"StartAt": "Wait", "States": {
            "Wait": {"Type": "Wait", "Seconds": 10, "Next": "P"},
            "P": {"Type": "Pass", "Parameters": {
                "id.$": "$$.Execution.Id", "input.$": "$$.Execution.Input", "name.$": "$$.Execution.Name",
                "state.$": "$$.State.Name", "entered.$": "$$.State.EnteredTime", "sm.$": "$$.StateMachine.Name"
            }, "End": true}
        }}),
        json!({"school_code": "08012345"}),
        Handlers::new(),
    )
    .await;
    assert_eq!(
        ok(&o),
        json!({
            "id": "arn:aws:states:us-east-1:123456789012:execution:test:exec-1",
            "input": {"school_code": "08012345"}, "name": "exec-1", "state": "P",
            "entered": "2026-01-01T00:00:10.000Z", "sm": "test"
        })
    );
    // Served under an ARN of its own (the stack rehearsal's endpoint): the context names
    // the execution as that endpoint's StartExecution answered.
    let arn = "arn:aws:states:eu-west-1:111122223333:stateMachine:a2a-migrate-instance-t1";
    let o = Execution::run(
        &sm(json!({"StartAt": "P", "States": {"P": {"Type": "Pass",
            "Parameters": {"id.$": "$$.Execution.Id", "sm.$": "$$.StateMachine.Name"},
            "End": true}}})),
        json!({}),
        ExecutionOptions {
            arn: Some(arn.into()),
            ..opts(Handlers::new())
        },
    )
    .await;
    assert_eq!(
        ok(&o),
        json!({
            "id": "arn:aws:states:eu-west-1:111122223333:execution:a2a-migrate-instance-t1:exec-1",
            "sm": "a2a-migrate-instance-t1"
        })
    );
}

#[tokio::test]
async fn missing_paths_fail_with_states_runtime_and_are_not_caught() {
    for (field, value) in [("InputPath", "$.nope"), ("OutputPath", "$.nope")] {
        let mut st = json!({"Type": "Task", "Resource": format!("{FN}f"), "End": true,
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]});
        st[field] = json!(value);
        let o = run(
            json!({"StartAt": "T", "States": {"T": st, "Caught": {"Type": "Succeed"}}}),
            json!({"a": 1}),
            Handlers::new().lambda("f", echo()),
        )
        .await;
        assert_eq!(o.status, Status::Failed, "{field}");
        assert_eq!(o.error.as_deref(), Some("States.Runtime"), "{field}");
        assert!(o.cause.as_deref().unwrap().contains("$.nope"));
    }
    let o = run(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"x.$": "$.gone"}, "End": true}}}),
        json!({}),
        Handlers::new(),
    )
    .await;
    assert_eq!(o.error.as_deref(), Some("States.Runtime"));
}

#[tokio::test]
async fn null_input_and_output_paths_give_empty_objects() {
    let o = run(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": null, "End": true}}}),
        json!({"a": 1}),
        Handlers::new(),
    )
    .await;
    assert_eq!(ok(&o), json!({}));
    let o = run(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "OutputPath": null, "End": true}}}),
        json!({"a": 1}),
        Handlers::new(),
    )
    .await;
    assert_eq!(ok(&o), json!({}));
}

// ---------- errors ----------

/// Records the virtual time of every attempt, then fails.
fn attempts_log(
    log: Arc<std::sync::Mutex<Vec<DateTime<Utc>>>>,
    errors: &'static [&'static str],
) -> FnHandler<
    impl Fn(Value, TaskContext) -> std::future::Ready<Result<Value, TaskError>> + Send + Sync,
> {
    FnHandler(move |_v: Value, c: TaskContext| {
        let mut l = log.lock().unwrap();
        l.push(c.now());
        let n = l.len() - 1;
        std::future::ready(match errors.get(n) {
            Some(e) => Err(TaskError::new(*e, format!("attempt {n}"))),
            None => Ok(json!({"attempt": n})),
        })
    })
}

fn gaps(log: &[DateTime<Utc>]) -> Vec<i64> {
    log.windows(2)
        .map(|w| (w[1] - w[0]).num_seconds())
        .collect()
}

#[tokio::test]
async fn retry_intervals_backoff_and_max_delay_on_the_virtual_clock() {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let wall = std::time::Instant::now();
    let o = run(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": format!("{FN}f"), "End": true,
            "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 4, "MaxDelaySeconds": 30}]}}}),
        json!({}),
        Handlers::new().lambda("f", attempts_log(log.clone(), &["Busy", "Busy", "Busy", "Busy"])),
    )
    .await;
    assert_eq!(ok(&o), json!({"attempt": 4}));
    // 2, 6, 18, then 54 capped at 30.
    assert_eq!(gaps(&log.lock().unwrap()), [2, 6, 18, 30]);
    assert!(wall.elapsed() < Duration::from_secs(30));

    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = run(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": format!("{FN}f"), "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"]}]}}}),
        json!({}),
        Handlers::new().lambda("f", attempts_log(log.clone(), &["A", "A", "A", "A"])),
    )
    .await;
    // Defaults: 1 s, rate 2.0, 3 attempts; then the error stands.
    assert_eq!(gaps(&log.lock().unwrap()), [1, 2, 4]);
    assert_eq!(o.error.as_deref(), Some("A"));
}

#[tokio::test]
async fn full_jitter_stays_under_the_capped_delay() {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    run(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": format!("{FN}f"), "End": true,
            "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 10, "BackoffRate": 2, "MaxAttempts": 5, "MaxDelaySeconds": 25, "JitterStrategy": "FULL"}]}}}),
        json!({}),
        Handlers::new().lambda("f", attempts_log(log.clone(), &["Busy"; 5])),
    )
    .await;
    let g = gaps(&log.lock().unwrap());
    assert_eq!(g.len(), 5);
    for (gap, cap) in g.iter().zip([10, 20, 25, 25, 25]) {
        assert!((0..=cap).contains(gap), "{g:?}");
    }
}

/// The guide's example: ErrorA, ErrorB, ErrorC, ErrorB. Each retrier counts its own
/// attempts, and the exhausted one hands the error to Catch.
#[tokio::test]
async fn each_retrier_counts_its_own_attempts_then_catch_takes_over() {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = run(
        json!({"StartAt": "X", "States": {
            "X": {"Type": "Task", "Resource": format!("{FN}f"), "Next": "Y",
                "Retry": [
                    {"ErrorEquals": ["ErrorA", "ErrorB"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 2},
                    {"ErrorEquals": ["ErrorC"], "IntervalSeconds": 5}
                ],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Z"}]},
            "Y": {"Type": "Succeed"},
            "Z": {"Type": "Pass", "End": true}
        }}),
        json!({}),
        Handlers::new().lambda("f", attempts_log(log.clone(), &["ErrorA", "ErrorB", "ErrorC", "ErrorB"])),
    )
    .await;
    assert_eq!(gaps(&log.lock().unwrap()), [1, 2, 5]);
    let out = ok(&o);
    assert_eq!(out["Error"], "ErrorB");
    assert!(out["Cause"].as_str().unwrap().contains("attempt 3"));
}

#[tokio::test]
async fn max_attempts_zero_never_retries() {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = run(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": format!("{FN}f"), "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}]}}}),
        json!({}),
        Handlers::new().lambda("f", attempts_log(log.clone(), &["A"])),
    )
    .await;
    assert_eq!(log.lock().unwrap().len(), 1);
    assert_eq!(o.error.as_deref(), Some("A"));
}

#[tokio::test]
async fn catch_takes_the_first_matching_catcher_and_its_result_path() {
    let def = |err: &str| {
        json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": format!("{FN}{err}"), "End": true, "Catch": [
                {"ErrorEquals": ["Specific"], "ResultPath": "$.error", "Next": "One"},
                {"ErrorEquals": ["States.TaskFailed"], "ResultPath": null, "Next": "Two"},
                {"ErrorEquals": ["States.ALL"], "Next": "Three"}
            ]},
            "One": {"Type": "Pass", "Result": 1, "ResultPath": "$.via", "End": true},
            "Two": {"Type": "Pass", "Result": 2, "ResultPath": "$.via", "End": true},
            "Three": {"Type": "Pass", "Result": 3, "ResultPath": "$.via", "End": true}
        }})
    };
    let h = || {
        Handlers::new()
            .lambda("Specific", fails_with("Specific"))
            .lambda("Other", fails_with("Other"))
            .lambda(
                "Slow",
                FnHandler(|_v: Value, c: TaskContext| async move {
                    c.sleep(Duration::from_secs(100)).await;
                    Ok(json!(null))
                }),
            )
    };
    let one = ok(&run(def("Specific"), json!({"in": 1}), h()).await);
    assert_eq!(one["via"], 1);
    assert_eq!(one["error"]["Error"], "Specific");
    let cause: Value = serde_json::from_str(one["error"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(cause["errorMessage"], "it broke");
    assert_eq!(cause["errorType"], "Specific");
    assert_eq!(
        ok(&run(def("Other"), json!({"in": 1}), h()).await),
        json!({"in": 1, "via": 2})
    );
    // States.TaskFailed does not match States.Timeout; States.ALL does.
    let mut slow = def("Slow");
    slow["States"]["T"]["TimeoutSeconds"] = json!(10);
    let three = ok(&run(slow, json!({"in": 1}), h()).await);
    assert_eq!(three["Error"], "States.Timeout");
    assert_eq!(three["via"], 3);
}

#[tokio::test]
async fn task_timeout_and_heartbeat_on_the_virtual_clock() {
    let h = || {
        Handlers::new()
            .lambda("slow", slow_clone())
            .lambda("silent", silent_clone())
    };
    fn slow_clone() -> impl crate::TaskHandler {
        FnHandler(|_v: Value, c: TaskContext| async move {
            for _ in 0..10 {
                c.sleep(Duration::from_secs(5)).await;
                c.heartbeat();
            }
            Ok(json!("done"))
        })
    }
    fn silent_clone() -> impl crate::TaskHandler {
        FnHandler(|_v: Value, c: TaskContext| async move {
            c.sleep(Duration::from_secs(50)).await;
            Ok(json!("done"))
        })
    }
    let def = |f: &str, extra: Value| {
        let mut t = task(&format!("{FN}{f}"));
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        json!({"StartAt": "T", "States": {"T": t}})
    };
    // 50 s of work with a heartbeat every 5 s: fine under a 60 s timeout and 10 s heartbeat.
    assert_eq!(
        ok(&run(
            def(
                "slow",
                json!({"TimeoutSeconds": 60, "HeartbeatSeconds": 10})
            ),
            json!({}),
            h()
        )
        .await),
        json!("done")
    );
    let o = run(def("slow", json!({"TimeoutSeconds": 30})), json!({}), h()).await;
    assert_eq!(o.error.as_deref(), Some("States.Timeout"));
    assert_eq!(o.stopped - o.started, chrono::Duration::seconds(30));
    assert!(events(&o).contains(&"LambdaFunctionTimedOut"));
    let o = run(
        def(
            "silent",
            json!({"TimeoutSeconds": 60, "HeartbeatSeconds": 10}),
        ),
        json!({}),
        h(),
    )
    .await;
    assert_eq!(o.error.as_deref(), Some("States.HeartbeatTimeout"));
    assert_eq!(o.stopped - o.started, chrono::Duration::seconds(10));
}

#[tokio::test]
async fn execution_timeout_gives_timed_out() {
    let o = run(
        json!({"StartAt": "W", "TimeoutSeconds": 60, "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
        json!({}),
        Handlers::new(),
    )
    .await;
    assert_eq!(o.status, Status::TimedOut);
    assert_eq!(o.error.as_deref(), Some("States.Timeout"));
    assert_eq!(*events(&o).last().unwrap(), "ExecutionTimedOut");
}

#[tokio::test]
async fn a_handler_error_becomes_the_state_error_as_a_lambda_error_does() {
    let o = run(
        json!({"StartAt": "T", "States": {"T": task(&format!("{FN}f"))}}),
        json!({}),
        Handlers::new().lambda("f", fails_with("Export.TableMissing")),
    )
    .await;
    assert_eq!(o.error.as_deref(), Some("Export.TableMissing"));
    let cause: Value = serde_json::from_str(o.cause.as_deref().unwrap()).unwrap();
    assert_eq!(cause["errorType"], "Export.TableMissing");
    assert_eq!(
        events(&o),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionFailed",
            "ExecutionFailed"
        ]
    );
    let o = run(
        json!({"StartAt": "T", "States": {"T": task(&format!("{FN}nobody"))}}),
        json!({}),
        Handlers::new(),
    )
    .await;
    assert_eq!(o.error.as_deref(), Some("Lambda.ResourceNotFoundException"));
}

// ---------- Parallel and Map ----------

#[tokio::test]
async fn parallel_runs_branches_and_propagates_a_failure() {
    let def = |second: Value| {
        json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100, "Next": "A"}, "A": {"Type": "Pass", "Result": "a", "End": true}}},
            {"StartAt": "B", "States": {"B": second}}
        ]}}})
    };
    let o = run(
        def(json!({"Type": "Pass", "InputPath": "$.x", "End": true})),
        json!({"x": 1}),
        Handlers::new(),
    )
    .await;
    assert_eq!(ok(&o), json!(["a", 1]));
    // The branches ran side by side: the parent waited 100 s, not the sum.
    assert_eq!(o.stopped - o.started, chrono::Duration::seconds(100));
    let o = run(
        def(json!({"Type": "Fail", "Error": "Branch.Broke", "Cause": "b"})),
        json!({}),
        Handlers::new(),
    )
    .await;
    assert_eq!(o.status, Status::Failed);
    assert_eq!(o.error.as_deref(), Some("Branch.Broke"));
    assert!(events(&o).contains(&"ParallelStateFailed"));
    // And the Parallel's own Catch sees it.
    let mut caught = def(json!({"Type": "Fail", "Error": "Branch.Broke", "Cause": "b"}));
    caught["States"]["P"]["Catch"] = json!([{"ErrorEquals": ["Branch.Broke"], "Next": "Done"}]);
    caught["States"]["P"].as_object_mut().unwrap().remove("End");
    caught["States"]["P"]["Next"] = json!("Never");
    caught["States"]["Never"] = json!({"Type": "Succeed"});
    caught["States"]["Done"] = json!({"Type": "Succeed"});
    assert_eq!(
        ok(&run(caught, json!({}), Handlers::new()).await),
        json!({"Error": "Branch.Broke", "Cause": "b"})
    );
}

#[tokio::test]
async fn map_item_selector_context_and_failure() {
    // The guide's ItemSelector example (with a dashed name, read as Step Functions reads it).
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.shipped", "End": true,
        "ItemSelector": {"parcel.$": "$$.Map.Item.Value", "courier.$": "$.delivery-partner", "index.$": "$$.Map.Item.Index"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}});
    let o = run(
        def,
        json!({"delivery-partner": "UQS", "shipped": [{"prod": "R31"}, {"prod": "S39"}]}),
        Handlers::new(),
    )
    .await;
    assert_eq!(
        ok(&o),
        json!([{"parcel": {"prod": "R31"}, "courier": "UQS", "index": 0}, {"parcel": {"prod": "S39"}, "courier": "UQS", "index": 1}])
    );
    assert_eq!(
        events(&o)
            .iter()
            .filter(|e| **e == "MapIterationSucceeded")
            .count(),
        2
    );
    // Iterator (the older name) with Parameters, and a failing item.
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "Parameters": {"v.$": "$$.Map.Item.Value"},
        "Iterator": {"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.v", "NumericGreaterThan": 2, "Next": "Bad"}], "Default": "Good"},
            "Bad": {"Type": "Fail", "Error": "Item.TooBig", "Cause": "over 2"},
            "Good": {"Type": "Pass", "End": true}}}}}});
    let o = run(def.clone(), json!([1, 2]), Handlers::new()).await;
    assert_eq!(ok(&o), json!([{"v": 1}, {"v": 2}]));
    let o = run(def, json!([1, 2, 3, 1]), Handlers::new()).await;
    assert_eq!(o.error.as_deref(), Some("Item.TooBig"));
    assert!(events(&o).contains(&"MapStateFailed"));
    assert!(events(&o).contains(&"MapIterationFailed"));
    let o = run(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ItemsPath": "$.x",
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}}),
        json!({"x": 5}),
        Handlers::new(),
    )
    .await;
    assert_eq!(o.error.as_deref(), Some("States.Runtime"));
}

async fn highest_concurrency(max: u64, items: usize) -> usize {
    let now = Arc::new(AtomicUsize::new(0));
    let high = Arc::new(AtomicUsize::new(0));
    let (n, h) = (now.clone(), high.clone());
    let handler = FnHandler(move |v: Value, c: TaskContext| {
        let (n, h) = (n.clone(), h.clone());
        async move {
            let running = n.fetch_add(1, Ordering::SeqCst) + 1;
            h.fetch_max(running, Ordering::SeqCst);
            for _ in 0..5 {
                c.sleep(Duration::from_secs(1)).await;
            }
            n.fetch_sub(1, Ordering::SeqCst);
            Ok(v)
        }
    });
    let o = run(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": max, "End": true,
            "ItemProcessor": {"StartAt": "T", "States": {"T": task(&format!("{FN}work"))}}}}}),
        json!((0..items).collect::<Vec<_>>()),
        Handlers::new().lambda("work", handler),
    )
    .await;
    assert_eq!(ok(&o), json!((0..items).collect::<Vec<_>>()));
    high.load(Ordering::SeqCst)
}

#[tokio::test]
async fn map_keeps_max_concurrency() {
    assert_eq!(highest_concurrency(2, 7).await, 2);
    assert_eq!(highest_concurrency(1, 4).await, 1);
    assert_eq!(highest_concurrency(0, 6).await, 6);
}

// ---------- mocks, history, concurrency ----------

#[tokio::test]
async fn mock_config_drives_tasks_with_no_step_code() {
    let mocks = MockConfig::parse(
        &json!({
            "StateMachines": {"test": {"TestCases": {"RetryPath": {"Export": "Flaky", "Notify": "Sent"}}}},
            "MockedResponses": {
                "Flaky": {
                    "0": {"Throw": {"Error": "Lambda.ServiceException", "Cause": "busy"}},
                    "1-2": {"Throw": {"Error": "Lambda.TooManyRequestsException", "Cause": "slow down"}},
                    "3": {"Return": {"StatusCode": 200, "Payload": {"rows": 42}}}
                },
                "Sent": {"0": {"Return": {"MessageId": "m-1"}}}
            }
        })
        .to_string(),
    )
    .unwrap();
    let def = json!({"StartAt": "Export", "States": {
        "Export": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "export", "Payload.$": "$"},
            "ResultSelector": {"rows.$": "$.Payload.rows"}, "ResultPath": "$.export", "Next": "Notify",
            "Retry": [{"ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"], "IntervalSeconds": 1, "MaxAttempts": 3}]},
        "Notify": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "Parameters": {"QueueUrl": "q", "MessageBody.$": "$"}, "ResultPath": "$.sent", "End": true}
    }});
    let mut o = opts(Handlers::new());
    o.mock = Some(mocks.test_case("test", "RetryPath").unwrap());
    let out = Execution::run(&sm(def), json!({"school_code": "08012345"}), o).await;
    assert_eq!(
        ok(&out),
        json!({"school_code": "08012345", "export": {"rows": 42}, "sent": {"MessageId": "m-1"}})
    );
    assert_eq!(
        out.stopped - out.started,
        chrono::Duration::seconds(1 + 2 + 4)
    );
    assert_eq!(
        events(&out).iter().filter(|e| **e == "TaskFailed").count(),
        3
    );
}

#[tokio::test]
async fn history_lists_aws_event_types_with_state_names_and_times() {
    let o = run(
        json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Next": "W"},
            "W": {"Type": "Wait", "Seconds": 5, "Next": "T"},
            "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "f", "Payload": {}}, "End": true}
        }}),
        json!({}),
        Handlers::new().lambda("f", echo()),
    )
    .await;
    ok(&o);
    assert_eq!(
        events(&o),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "WaitStateEntered",
            "WaitStateExited",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let names: Vec<_> = o.history.iter().filter_map(|e| e.state_name()).collect();
    assert_eq!(names, ["A", "A", "W", "W", "T", "T"]);
    let ids: Vec<u64> = o.history.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=11).collect::<Vec<_>>());
    assert_eq!(
        o.history[4].timestamp - o.history[3].timestamp,
        chrono::Duration::seconds(5)
    );
    let j = o.to_json(true);
    assert_eq!(j["history"][1]["type"], "PassStateEntered");
    assert_eq!(j["history"][1]["stateEnteredEventDetails"]["name"], "A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_executions_run_concurrently() {
    let machine = Arc::new(sm(json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 3600, "Next": "T"},
        "T": {"Type": "Task", "Resource": format!("{FN}f"), "End": true}}})));
    let handlers = Arc::new(Handlers::new().lambda("f", echo()));
    let mut joins = Vec::new();
    for i in 0..200 {
        let machine = machine.clone();
        let mut o = opts(Handlers::new());
        o.resolver = handlers.clone();
        o.name = Some(format!("exec-{i}"));
        o.clock = Arc::new(VirtualClock::new());
        joins.push(tokio::spawn(async move {
            Execution::run(&machine, json!({"i": i}), o).await
        }));
    }
    for (i, j) in joins.into_iter().enumerate() {
        assert_eq!(ok(&j.await.unwrap()), json!({"i": i}));
    }
}

#[tokio::test]
async fn parallel_reports_the_failure_that_came_first_on_the_clock() {
    let branch = |wait: u64, error: &str| {
        json!({"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": wait, "Next": "F"},
            "F": {"Type": "Fail", "Error": error}}})
    };
    let o = run(
        json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
            "Branches": [branch(100, "Late"), branch(10, "Early")]}}}),
        json!({}),
        Handlers::new(),
    )
    .await;
    assert_eq!(o.error.as_deref(), Some("Early"));
    assert_eq!(o.stopped - o.started, chrono::Duration::seconds(10));
}

#[tokio::test]
async fn task_timeout_and_heartbeat_on_the_real_clock() {
    let stuck = || {
        FnHandler(|_v: Value, _c: TaskContext| async move {
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(json!("never"))
        })
    };
    let def = |extra: Value| {
        let mut t = task(&format!("{FN}stuck"));
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        json!({"StartAt": "T", "States": {"T": t}})
    };
    let real = |h: Handlers| ExecutionOptions {
        clock: Arc::new(crate::RealClock),
        ..opts(h)
    };
    let o = Execution::run(
        &sm(def(json!({"TimeoutSeconds": 1}))),
        json!({}),
        real(Handlers::new().lambda("stuck", stuck())),
    )
    .await;
    assert_eq!(o.error.as_deref(), Some("States.Timeout"));
    let o = Execution::run(
        &sm(def(json!({"TimeoutSeconds": 60, "HeartbeatSeconds": 1}))),
        json!({}),
        real(Handlers::new().lambda("stuck", stuck())),
    )
    .await;
    assert_eq!(o.error.as_deref(), Some("States.HeartbeatTimeout"));
}

#[tokio::test]
async fn payloads_over_256_kib_fail_as_in_aws() {
    let big = "x".repeat(300_000);
    let o = run(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": big, "End": true}}}),
        json!({}),
        Handlers::new(),
    )
    .await;
    assert_eq!(o.error.as_deref(), Some("States.DataLimitExceeded"));
    // Terminal: a Catch on States.ALL does not catch it.
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": format!("{FN}big"), "ResultPath": null, "Next": "Done",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}]},
        "Done": {"Type": "Succeed"}}});
    let h = Handlers::new().lambda(
        "big",
        FnHandler(|_v: Value, _c: TaskContext| async move { Ok(json!("y".repeat(300_000))) }),
    );
    let o = run(def, json!({}), h).await;
    assert_eq!(o.status, Status::Failed);
    assert_eq!(o.error.as_deref(), Some("States.DataLimitExceeded"));
    assert!(o.cause.unwrap().contains("task \"T\""));
}

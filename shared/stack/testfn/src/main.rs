//! A Lambda for the tests of `a2a_stack::functions`: each event says what to do, so that
//! one small binary shows what the rehearsal does with a function that answers, sleeps
//! past its timeout, fails with an error of its own, or dies.
//!
//! * `{"env": true}`: its environment's keys, its working directory and what is in it;
//! * `{"sleep_ms": N}`: sleeps, then answers;
//! * `{"fail": {"type": T, "message": M}}`: fails with `errorType` T;
//! * `{"exit": N}`: ends the process with status N, without answering;
//! * anything else: echoed back.
//!
//! Every answer holds its process id (`pid`), by which a test tells instances apart.

#![warn(missing_docs)]

use std::time::Duration;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let e = event.payload;
    let pid = std::process::id();
    if e["env"] == true {
        let mut keys: Vec<String> = std::env::vars_os()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        keys.sort();
        let cwd = std::env::current_dir().map_err(|e| diag("Test.Cwd", e))?;
        let entries: Vec<String> = std::fs::read_dir(&cwd)
            .map_err(|e| diag("Test.Cwd", e))?
            .filter_map(|d| d.ok())
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .collect();
        let values = |k: &str| std::env::var(k).ok();
        return Ok(json!({
            "pid": pid,
            "keys": keys,
            "cwd": cwd,
            "cwd_entries": entries,
            "name": values("AWS_LAMBDA_FUNCTION_NAME"),
            "memory": values("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            "task_root": values("LAMBDA_TASK_ROOT"),
            "deadline_ms": event.context.deadline,
        }));
    }
    if let Some(ms) = e["sleep_ms"].as_u64() {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(json!({"pid": pid, "slept_ms": ms}));
    }
    if let Some(f) = e.get("fail") {
        return Err(Diagnostic {
            error_type: f["type"].as_str().unwrap_or("Test.Failure").to_owned(),
            error_message: f["message"].as_str().unwrap_or("").to_owned(),
        });
    }
    if let Some(code) = e["exit"].as_i64() {
        std::process::exit(i32::try_from(code).unwrap_or(1));
    }
    Ok(json!({"pid": pid, "echo": e}))
}

fn diag(error_type: &str, e: impl std::fmt::Display) -> Diagnostic {
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message: e.to_string(),
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(handle)).await
}

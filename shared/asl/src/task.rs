//! Tasks: a resolver maps a Task state's `Resource` to a handler, the code that does the
//! work. Lambda resources are recognised so the same handler serves a plain function ARN
//! and `arn:aws:states:::lambda:invoke`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::clock::Clock;

/// The optimised Lambda integration.
pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";

/// What a Task state calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaskTarget {
    /// A Lambda function, by name (from a function ARN or `FunctionName`).
    Lambda {
        /// The function name, without region, account or qualifier.
        function: String,
    },
    /// Any other resource (an activity, another service integration), as written.
    Resource(String),
}

impl TaskTarget {
    /// The target of a plain `Resource` (not `lambda:invoke`, whose function is a parameter).
    pub fn of_resource(resource: &str) -> Self {
        match lambda_name(resource) {
            Some(f) if resource.starts_with("arn:") => TaskTarget::Lambda { function: f },
            _ => TaskTarget::Resource(resource.to_owned()),
        }
    }
}

/// The function name in a Lambda function ARN, partial ARN (`ACCOUNT:function:NAME`) or
/// plain name, without a version or alias qualifier.
pub fn lambda_name(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split(':').collect();
    let name = if let Some(i) = parts.iter().position(|p| *p == "function") {
        if s.starts_with("arn:") && parts.get(2) != Some(&"lambda") {
            return None;
        }
        parts.get(i + 1)?
    } else if s.starts_with("arn:") {
        return None;
    } else {
        parts.first()?
    };
    (!name.is_empty()).then(|| (*name).to_owned())
}

/// An error a handler reports: a name (as a Lambda's `errorType`) and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {message}")]
pub struct TaskError {
    /// The error name that Retry and Catch match.
    pub error: String,
    /// What went wrong.
    pub message: String,
}

impl TaskError {
    /// An error with a name and a message.
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            message: message.into(),
        }
    }
}

/// What a handler gets besides its input: the clock, heartbeats, and where it runs.
#[derive(Debug, Clone)]
pub struct TaskContext {
    clock: Arc<dyn Clock>,
    heartbeats: Arc<Mutex<Vec<DateTime<Utc>>>>,
    /// The Task state's name.
    pub state: String,
    /// The execution's name.
    pub execution: String,
    /// How many times this state was retried before this attempt.
    pub retry_count: u32,
}

impl TaskContext {
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        state: &str,
        execution: &str,
        retry_count: u32,
    ) -> Self {
        Self {
            clock,
            heartbeats: Arc::new(Mutex::new(Vec::new())),
            state: state.to_owned(),
            execution: execution.to_owned(),
            retry_count,
        }
    }

    /// The execution's time (virtual or real).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Spends time as the work would: on the virtual clock this costs no wall time.
    pub async fn sleep(&self, d: Duration) {
        self.clock.sleep(d).await;
    }

    /// Reports progress, as `SendTaskHeartbeat` does.
    pub fn heartbeat(&self) {
        let now = self.clock.now();
        self.heartbeats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(now);
    }

    pub(crate) fn heartbeat_times(&self) -> Vec<DateTime<Utc>> {
        self.heartbeats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The code behind a resource.
#[async_trait]
pub trait TaskHandler: Send + Sync {
    /// Does the work on `input`; the result becomes the task's result.
    async fn call(&self, input: Value, ctx: &TaskContext) -> Result<Value, TaskError>;
}

/// Maps a target to its handler; `None` when nothing serves it.
pub trait TaskResolver: Send + Sync {
    /// The handler for `target`.
    fn resolve(&self, target: &TaskTarget) -> Option<Arc<dyn TaskHandler>>;
}

/// A handler made from an async closure.
pub struct FnHandler<F>(pub F);

#[async_trait]
impl<F, Fut> TaskHandler for FnHandler<F>
where
    F: Fn(Value, TaskContext) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<Value, TaskError>> + Send,
{
    async fn call(&self, input: Value, ctx: &TaskContext) -> Result<Value, TaskError> {
        (self.0)(input, ctx.clone()).await
    }
}

/// A resolver from a table: Lambda functions by name, other resources by exact text.
#[derive(Default, Clone)]
pub struct Handlers {
    map: HashMap<TaskTarget, Arc<dyn TaskHandler>>,
}

impl Handlers {
    /// An empty table: every task fails as an unknown function would.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves the Lambda function `name`.
    pub fn lambda(mut self, name: &str, h: impl TaskHandler + 'static) -> Self {
        self.map.insert(
            TaskTarget::Lambda {
                function: name.to_owned(),
            },
            Arc::new(h),
        );
        self
    }

    /// Serves a non-Lambda resource, by its exact text.
    pub fn resource(mut self, resource: &str, h: impl TaskHandler + 'static) -> Self {
        self.map
            .insert(TaskTarget::Resource(resource.to_owned()), Arc::new(h));
        self
    }
}

impl TaskResolver for Handlers {
    fn resolve(&self, target: &TaskTarget) -> Option<Arc<dyn TaskHandler>> {
        self.map.get(target).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_names_from_arns_and_names() {
        assert_eq!(
            lambda_name("arn:aws:lambda:eu-west-1:123456789012:function:a2a-export"),
            Some("a2a-export".into())
        );
        assert_eq!(
            lambda_name("arn:aws:lambda:eu-west-1:123456789012:function:a2a-export:live"),
            Some("a2a-export".into())
        );
        assert_eq!(lambda_name("123456789012:function:f"), Some("f".into()));
        assert_eq!(lambda_name("f:live"), Some("f".into()));
        assert_eq!(lambda_name("arn:aws:states:::sqs:sendMessage"), None);
        assert_eq!(
            TaskTarget::of_resource("arn:aws:lambda:eu-west-1:1:function:x"),
            TaskTarget::Lambda {
                function: "x".into()
            }
        );
        assert_eq!(
            TaskTarget::of_resource("arn:aws:states:eu-west-1:1:activity:x"),
            TaskTarget::Resource("arn:aws:states:eu-west-1:1:activity:x".into())
        );
    }
}

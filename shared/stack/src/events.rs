//! How the rehearsal invokes a function ([`Invoke`]: the functions' runtime, or a test's
//! stand-in), and the count of invocations in flight that the virtual clock's schedule
//! waits on. The events themselves (the upload notification, the SQS mapping, the
//! schedule) are the CLI's (`a2a stack up`), which holds the SDK clients.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// A function's error as Lambda reports it: `errorType` and `errorMessage`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// `errorType`.
    pub error_type: String,
    /// `errorMessage`.
    pub message: String,
}

/// What invokes a function by name (the functions' runtime, or a test's stand-in).
pub trait Invoke: Send + Sync + 'static {
    /// Invokes `function` with `payload`; its answer or its error.
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        payload: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, Failure>> + Send + 'a>>;
}

/// Counts the invocations in flight, so that the virtual clock knows when all is idle.
#[derive(Debug, Default)]
pub struct InFlight(AtomicU64);

impl InFlight {
    /// How many now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Counts one more until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> Guard {
        self.0.fetch_add(1, Ordering::SeqCst);
        Guard(self.clone())
    }
}

/// One invocation in flight, until dropped.
pub struct Guard(Arc<InFlight>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Invokes `function` through `invoker`, counted in `inflight`.
pub async fn invoke_counted(
    invoker: &dyn Invoke,
    inflight: &Arc<InFlight>,
    function: &str,
    payload: Value,
) -> Result<Value, Failure> {
    let _g = inflight.enter();
    invoker.invoke(function, payload).await
}

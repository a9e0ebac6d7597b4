//! What the Lambda Runtime API of this crate is built on: state behind a lock that callers
//! can wait on, and an HTTP/1 server on a free local port that lives as long as its handle.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

/// A fake's state, and a signal for those waiting on it to change.
pub(crate) struct Watched<S> {
    state: Mutex<S>,
    changed: Notify,
}

impl<S> Watched<S> {
    pub(crate) fn new(state: S) -> Self {
        Self {
            state: Mutex::new(state),
            changed: Notify::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        // A panic elsewhere while holding the lock leaves usable data: take it anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes every [`Watched::wait`] to look again.
    pub(crate) fn changed(&self) {
        self.changed.notify_waiters();
    }

    /// The first `Some` that `check` finds in the state, looking again at each change,
    /// for at most `timeout`; then `check`'s last word.
    pub(crate) async fn wait<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&mut S) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so a change in between is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(v) = check(&mut self.lock()) {
                return Some(v);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return check(&mut self.lock());
            }
        }
    }
}

/// An HTTP/1 server on `127.0.0.1`, serving until dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Aborting the accept loop drops its connections too (they live in its JoinSet).
        self.task.abort();
    }
}

/// The answer of a server's `route` (by default a whole body).
pub(crate) type Reply<B = Full<Bytes>> = Result<Response<B>, Infallible>;

impl Server {
    /// Serves `route(request, shared)` on a free port of 127.0.0.1. Must be called inside
    /// a Tokio runtime.
    pub(crate) async fn start<S, F, Fut, B>(shared: Arc<S>, route: F) -> std::io::Result<Self>
    where
        S: Send + Sync + 'static,
        F: Fn(Request<Incoming>, Arc<S>) -> Fut + Copy + Send + Sync + 'static,
        Fut: Future<Output = Reply<B>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(listener, shared, route)
    }

    /// Serves `route(request, shared)` on `listener`, bound already.
    pub(crate) fn serve<S, F, Fut, B>(
        listener: tokio::net::TcpListener,
        shared: Arc<S>,
        route: F,
    ) -> std::io::Result<Self>
    where
        S: Send + Sync + 'static,
        F: Fn(Request<Incoming>, Arc<S>) -> Fut + Copy + Send + Sync + 'static,
        Fut: Future<Output = Reply<B>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, say: wait instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| route(req, shared.clone()));
                    // A client that hangs up mid-request is not the server's problem.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self { addr, task })
    }
}

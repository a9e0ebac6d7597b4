//! A fake Step Functions endpoint of the four activity calls a worker makes, for the
//! tests of the `Activities` adapter (moto has no `GetActivityTask`). AWS JSON 1.0 over
//! HTTP: `POST /` with `X-Amz-Target: AWSStepFunctions.<Operation>`:
//!
//! * `GetActivityTask` `{activityArn, workerName}`: a queued task's `{taskToken, input}`,
//!   or `{}` when none came within the poll's wait;
//! * `SendTaskHeartbeat` `{taskToken}`; `SendTaskSuccess` `{taskToken, output}`;
//!   `SendTaskFailure` `{taskToken, error, cause}`: `{}`, or a 400 `TaskTimedOut` for a
//!   task that was answered, timed out ([`FakeActivities::time_out`]) or never handed out.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// How a task ended, as the endpoint received it.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `SendTaskSuccess`, with the output parsed.
    Succeeded(Value),
    /// `SendTaskFailure`.
    Failed {
        /// The error name.
        error: String,
        /// The cause.
        cause: String,
    },
}

#[derive(Default)]
struct State {
    queued: HashMap<String, VecDeque<(String, Value)>>,
    /// Handed out and not yet answered: token → heartbeats so far.
    open: HashMap<String, u32>,
    answers: HashMap<String, Answer>,
    /// Every call, as `Operation`, in order.
    calls: Vec<String>,
    next: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Notify,
    wait: Duration,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake endpoint, served on a local port until dropped.
pub struct FakeActivities {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeActivities {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeActivities {
    /// Serves on a free local port; a poll with nothing queued waits `wait` (60 s in AWS).
    pub async fn start(wait: Duration) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            wait,
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// The endpoint URL (`AWS_ENDPOINT_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a task of `activity` with `input`, and returns its token.
    pub fn schedule(&self, activity: &str, input: Value) -> String {
        let token = {
            let mut s = self.shared.lock();
            s.next += 1;
            let token = format!("token-{:06}-{}", s.next, "x".repeat(40));
            s.queued
                .entry(activity.to_owned())
                .or_default()
                .push_back((token.clone(), input));
            token
        };
        self.shared.changed.notify_waiters();
        token
    }

    /// Ends a task as Step Functions does when its heartbeat or timeout runs out: its
    /// worker's next call about it is refused.
    pub fn time_out(&self, token: &str) {
        self.shared.lock().open.remove(token);
    }

    /// The heartbeats received for `token` while it was open.
    pub fn heartbeats(&self, token: &str) -> u32 {
        self.shared.lock().open.get(token).copied().unwrap_or(0)
    }

    /// Every call received so far, by operation name, in order.
    pub fn calls(&self) -> Vec<String> {
        self.shared.lock().calls.clone()
    }

    /// The answer to `token`, waiting at most `within` for it.
    pub async fn answer(&self, token: &str, within: Duration) -> Option<Answer> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(a) = self.shared.lock().answers.get(token) {
                return Some(a.clone());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| route(req, shared.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    r
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    reply(status, json!({"__type": kind, "message": message}))
}

async fn route(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("AWSStepFunctions."))
        .unwrap_or("")
        .to_owned();
    let body: Value = match req.into_body().collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                &e.to_string(),
            ));
        }
    };
    shared.lock().calls.push(target.clone());
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let token = field("taskToken");
    let closed = |s: &mut State| s.open.remove(&token).is_none();
    let gone = || error(StatusCode::BAD_REQUEST, "TaskTimedOut", "Task Timed Out");
    let response = match target.as_str() {
        "GetActivityTask" => {
            let activity = field("activityArn");
            let deadline = tokio::time::Instant::now() + shared.wait;
            loop {
                let changed = shared.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                let task = {
                    let mut s = shared.lock();
                    let t = s.queued.get_mut(&activity).and_then(VecDeque::pop_front);
                    if let Some((token, _)) = &t {
                        s.open.insert(token.clone(), 0);
                    }
                    t
                };
                if let Some((token, input)) = task {
                    break reply(
                        StatusCode::OK,
                        json!({"taskToken": token, "input": input.to_string()}),
                    );
                }
                if tokio::time::timeout_at(deadline, changed).await.is_err() {
                    break reply(StatusCode::OK, json!({}));
                }
            }
        }
        "SendTaskHeartbeat" => match shared.lock().open.get_mut(&token) {
            Some(n) => {
                *n += 1;
                reply(StatusCode::OK, json!({}))
            }
            None => gone(),
        },
        "SendTaskSuccess" | "SendTaskFailure" => {
            let answer = if target == "SendTaskSuccess" {
                Answer::Succeeded(serde_json::from_str(&field("output")).unwrap_or(Value::Null))
            } else {
                Answer::Failed {
                    error: field("error"),
                    cause: field("cause"),
                }
            };
            let mut s = shared.lock();
            if closed(&mut s) {
                gone()
            } else {
                s.answers.insert(token.clone(), answer);
                drop(s);
                shared.changed.notify_waiters();
                reply(StatusCode::OK, json!({}))
            }
        }
        other => error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("the fake serves activity calls only, not {other:?}"),
        ),
    };
    Ok(response)
}

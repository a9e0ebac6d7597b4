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
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::http::{Reply, Server, Watched};

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
    state: Watched<State>,
    wait: Duration,
}

/// The fake endpoint, served on a local port until dropped.
pub struct FakeActivities {
    server: Server,
    shared: Arc<Shared>,
}

impl FakeActivities {
    /// Serves on a free local port; a poll with nothing queued waits `wait` (60 s in AWS).
    pub async fn start(wait: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Watched::new(State::default()),
            wait,
        });
        let server = Server::start(shared.clone(), route).await?;
        Ok(Self { server, shared })
    }

    /// The endpoint URL (`AWS_ENDPOINT_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Queues a task of `activity` with `input`, and returns its token.
    pub fn schedule(&self, activity: &str, input: Value) -> String {
        let token = {
            let mut s = self.shared.state.lock();
            s.next += 1;
            let token = format!("token-{:06}-{}", s.next, "x".repeat(40));
            s.queued
                .entry(activity.to_owned())
                .or_default()
                .push_back((token.clone(), input));
            token
        };
        self.shared.state.changed();
        token
    }

    /// Ends a task as Step Functions does when its heartbeat or timeout runs out: its
    /// worker's next call about it is refused.
    pub fn time_out(&self, token: &str) {
        self.shared.state.lock().open.remove(token);
    }

    /// The heartbeats received for `token` while it was open.
    pub fn heartbeats(&self, token: &str) -> u32 {
        self.shared
            .state
            .lock()
            .open
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    /// Every call received so far, by operation name, in order.
    pub fn calls(&self) -> Vec<String> {
        self.shared.state.lock().calls.clone()
    }

    /// The answer to `token`, waiting at most `within` for it.
    pub async fn answer(&self, token: &str, within: Duration) -> Option<Answer> {
        self.shared
            .state
            .wait(within, |s| s.answers.get(token).cloned())
            .await
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

async fn route(req: Request<Incoming>, shared: Arc<Shared>) -> Reply {
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
    shared.state.lock().calls.push(target.clone());
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let token = field("taskToken");
    let closed = |s: &mut State| s.open.remove(&token).is_none();
    let gone = || error(StatusCode::BAD_REQUEST, "TaskTimedOut", "Task Timed Out");
    let response = match target.as_str() {
        "GetActivityTask" => {
            let activity = field("activityArn");
            let task = shared.state.wait(shared.wait, |s| {
                let t = s.queued.get_mut(&activity).and_then(VecDeque::pop_front)?;
                s.open.insert(t.0.clone(), 0);
                Some(t)
            });
            match task.await {
                Some((token, input)) => reply(
                    StatusCode::OK,
                    json!({"taskToken": token, "input": input.to_string()}),
                ),
                None => reply(StatusCode::OK, json!({})),
            }
        }
        "SendTaskHeartbeat" => match shared.state.lock().open.get_mut(&token) {
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
            let mut s = shared.state.lock();
            if closed(&mut s) {
                gone()
            } else {
                s.answers.insert(token.clone(), answer);
                drop(s);
                shared.state.changed();
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

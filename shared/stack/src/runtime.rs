//! The Lambda Runtime API (version 2018-06-01) as Lambda serves it inside one execution
//! environment: the one implementation of the project, behind the rehearsal's functions
//! ([`crate::functions`]), the functions' own tests and the cold-start benchmark (through
//! `a2a_testkit::lambda`). A real binary talks to it exactly as to Lambda's, so what
//! passes here is the runtime client the deployed binary links.
//!
//! It serves the four calls a custom runtime makes:
//!
//! * `GET /2018-06-01/runtime/invocation/next`: waits for a queued event and sends it with
//!   the `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms` (the moment it is
//!   handed out plus the event's time limit), `Lambda-Runtime-Invoked-Function-Arn` and
//!   `Lambda-Runtime-Trace-Id` headers;
//! * `POST …/invocation/{id}/response`: the result;
//! * `POST …/invocation/{id}/error`: `{"errorType", "errorMessage"}`;
//! * `POST /2018-06-01/runtime/init/error`: a failure before the first event.
//!
//! One server is one execution environment: the runtime client finds it by
//! `AWS_LAMBDA_RUNTIME_API` alone, so concurrent instances need a server each.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Notify;

use crate::http::{Reply, Server, Watched};

const PREFIX: &str = "/2018-06-01/runtime/";

/// The time limit given with an event queued by [`RuntimeApi::invoke`] (its deadline
/// header).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Request ids unique across every server of the process, so that logs of several
/// instances never share one.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The ARN Lambda gives function `name` in the rehearsal's region and account.
pub fn function_arn(name: &str) -> String {
    format!(
        "arn:aws:lambda:{}:{}:function:{name}",
        crate::REGION,
        crate::ACCOUNT
    )
}

/// An error a function reported, as the runtime API receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReport {
    /// `errorType`: what a state machine's Retry and Catch match.
    pub error_type: String,
    /// `errorMessage`.
    pub error_message: String,
    /// The `Lambda-Runtime-Function-Error-Type` header, if sent.
    pub header: Option<String>,
}

/// What a function answered to one event.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Posted to `…/response`: the body, parsed as JSON (a JSON string of the text if it
    /// is not JSON, `null` if it was empty).
    Response(serde_json::Value),
    /// Posted to `…/error`.
    Error(ErrorReport),
}

impl Outcome {
    /// The response, or a panic naming the error: for tests that expect success.
    pub fn expect_response(self, what: &str) -> serde_json::Value {
        match self {
            Outcome::Response(v) => v,
            Outcome::Error(e) => panic!(
                "{what}: expected a response, got error {}: {}",
                e.error_type, e.error_message
            ),
        }
    }

    /// The error, or a panic showing the response: for tests that expect failure.
    pub fn expect_error(self, what: &str) -> ErrorReport {
        match self {
            Outcome::Error(e) => e,
            Outcome::Response(v) => panic!("{what}: expected an error, got response {v}"),
        }
    }
}

/// Where one event stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Queued, not yet asked for (the runtime is still starting, or busy).
    Queued,
    /// Handed out by `/next` at this moment: the function is working on it.
    Delivered(Instant),
    /// Answered.
    Answered(Outcome),
    /// The runtime reported `/init/error` instead: the event will never be handled.
    InitFailed(ErrorReport),
    /// No event of that id was queued here.
    Unknown,
}

struct Event {
    id: String,
    body: Bytes,
    limit: Duration,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Event>,
    delivered: HashMap<String, Instant>,
    outcomes: HashMap<String, Outcome>,
    first_next: Option<Instant>,
    nexts: usize,
    init_error: Option<ErrorReport>,
    unknown: Vec<String>,
}

impl State {
    fn progress(&self, id: &str) -> Progress {
        if let Some(o) = self.outcomes.get(id) {
            Progress::Answered(o.clone())
        } else if let Some(e) = &self.init_error {
            Progress::InitFailed(e.clone())
        } else if let Some(at) = self.delivered.get(id) {
            Progress::Delivered(*at)
        } else if self.queue.iter().any(|e| e.id == id) {
            Progress::Queued
        } else {
            Progress::Unknown
        }
    }
}

struct Shared {
    state: Watched<State>,
    /// An event was queued.
    queued: Notify,
    function_arn: String,
}

/// The runtime API of one execution environment, listening on `127.0.0.1` at a free port
/// until dropped.
pub struct RuntimeApi {
    server: Server,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    /// Starts a server for the function `function_name` (its ARN, [`function_arn`], is
    /// sent with each event). Must be called inside a Tokio runtime.
    pub async fn start(function_name: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Watched::new(State::default()),
            queued: Notify::new(),
            function_arn: function_arn(function_name),
        });
        let server = Server::start(shared.clone(), route).await?;
        Ok(Self { server, shared })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.server.addr.to_string()
    }

    /// Queues an event (any bytes: a test may send what is not JSON) with the time limit
    /// [`DEADLINE`], and returns its request id.
    pub fn invoke(&self, payload: impl Into<Bytes>) -> String {
        self.invoke_with_limit(payload, DEADLINE)
    }

    /// Queues an event whose deadline header will be `limit` after it is handed out, and
    /// returns its request id.
    pub fn invoke_with_limit(&self, payload: impl Into<Bytes>, limit: Duration) -> String {
        let n = REQUESTS.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("req-{n:04}-{:x}", std::process::id());
        self.shared.state.lock().queue.push_back(Event {
            id: id.clone(),
            body: payload.into(),
            limit,
        });
        self.shared.queued.notify_one();
        self.shared.state.changed();
        id
    }

    /// Queues a JSON event and returns its request id.
    pub fn invoke_json(&self, event: &serde_json::Value) -> String {
        self.invoke(event.to_string())
    }

    /// The outcome of request `id`, if it has come.
    pub fn outcome(&self, id: &str) -> Option<Outcome> {
        self.shared.state.lock().outcomes.get(id).cloned()
    }

    /// Waits up to `timeout` for the outcome of request `id`.
    pub async fn wait_outcome(&self, id: &str, timeout: Duration) -> Option<Outcome> {
        self.shared
            .state
            .wait(timeout, |s| s.outcomes.get(id).cloned())
            .await
    }

    /// Where request `id` stands.
    pub fn progress(&self, id: &str) -> Progress {
        self.shared.state.lock().progress(id)
    }

    /// Waits up to `timeout` for request `id` to stand where `done` says, and returns
    /// where it stands then.
    pub async fn wait_progress(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Progress) -> bool,
    ) -> Progress {
        let found = self
            .shared
            .state
            .wait(timeout, |s| Some(s.progress(id)).filter(|p| done(p)))
            .await;
        found.unwrap_or_else(|| self.progress(id))
    }

    /// When the first `/next` came: the end of the cold start.
    pub fn first_next(&self) -> Option<Instant> {
        self.shared.state.lock().first_next
    }

    /// Waits up to `timeout` for the first `/next`.
    pub async fn wait_first_next(&self, timeout: Duration) -> Option<Instant> {
        self.shared.state.wait(timeout, |s| s.first_next).await
    }

    /// How many `/next` requests came.
    pub fn nexts(&self) -> usize {
        self.shared.state.lock().nexts
    }

    /// Waits up to `timeout` until `n` `/next` requests came: after its answer, a function
    /// that is still well asks for the next event.
    pub async fn wait_nexts(&self, n: usize, timeout: Duration) -> bool {
        self.shared
            .state
            .wait(timeout, |s| (s.nexts >= n).then_some(()))
            .await
            .is_some()
    }

    /// The init error the function reported, if any.
    pub fn init_error(&self) -> Option<ErrorReport> {
        self.shared.state.lock().init_error.clone()
    }

    /// Requests the server did not recognise (method and path): a test asserts there are
    /// none.
    pub fn unknown_requests(&self) -> Vec<String> {
        self.shared.state.lock().unknown.clone()
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r
}

async fn route(req: Request<Incoming>, shared: Arc<Shared>) -> Reply {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    let parts: Vec<&str> = rest.split('/').collect();
    let header = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = match (&method, parts.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => next(&shared).await,
        (&Method::POST, ["invocation", id, kind @ ("response" | "error")]) => {
            let id = (*id).to_owned();
            let kind = *kind;
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return Ok(reply(StatusCode::BAD_REQUEST, &e.to_string())),
            };
            let outcome = if kind == "response" {
                Outcome::Response(if body.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::from_slice(&body).unwrap_or_else(|_| {
                        serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
                    })
                })
            } else {
                Outcome::Error(error_report(&body, header))
            };
            let mut s = shared.state.lock();
            if s.outcomes.contains_key(&id) {
                // The real API refuses a second answer to one request.
                reply(StatusCode::BAD_REQUEST, "already answered")
            } else if !s.delivered.contains_key(&id) {
                reply(StatusCode::NOT_FOUND, "no such request")
            } else {
                s.outcomes.insert(id, outcome);
                drop(s);
                shared.state.changed();
                reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
        }
        (&Method::POST, ["init", "error"]) => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            shared.state.lock().init_error = Some(error_report(&body, header));
            shared.state.changed();
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        _ => {
            shared.state.lock().unknown.push(format!("{method} {path}"));
            shared.state.changed();
            reply(StatusCode::NOT_FOUND, "unknown path")
        }
    };
    Ok(response)
}

/// `{"errorType", "errorMessage"}`; a body that is not that shape is kept as the message.
fn error_report(body: &[u8], header: Option<String>) -> ErrorReport {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    ErrorReport {
        error_type: field("errorType").unwrap_or_default(),
        error_message: field("errorMessage")
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
        header,
    }
}

/// Long-polls until an event is queued, as the real API does.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    {
        let mut s = shared.state.lock();
        s.first_next.get_or_insert_with(Instant::now);
        s.nexts += 1;
    }
    shared.state.changed();
    let event = loop {
        let queued = shared.queued.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        let popped = {
            let mut s = shared.state.lock();
            let e = s.queue.pop_front();
            if let Some(e) = &e {
                s.delivered.insert(e.id.clone(), Instant::now());
            }
            e
        };
        if let Some(e) = popped {
            shared.state.changed();
            break e;
        }
        queued.await;
    };
    let deadline = SystemTime::now()
        .checked_add(event.limit)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let mut r = Response::new(Full::new(event.body));
    let h = r.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = value.parse() {
            h.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", event.id.clone());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        shared.function_arn.clone(),
    );
    set(
        "lambda-runtime-trace-id",
        format!("Root=1-00000000-{:024x};Sampled=0", deadline),
    );
    set("content-type", "application/json".to_owned());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw HTTP/1.1 exchange, as a runtime client makes it: no client library needed.
    async fn http(addr: &str, request: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    fn post(path: &str, body: &str, extra: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n{extra}\r\n{body}",
            body.len()
        )
    }

    const NEXT: &str =
        "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

    #[tokio::test]
    async fn serves_events_and_records_answers() {
        let rt = RuntimeApi::start("fn-test").await.unwrap();
        assert_eq!(rt.first_next(), None);
        let a = rt.invoke_json(&serde_json::json!({"n": 1}));
        let b = rt.invoke_with_limit("not json", Duration::from_secs(3));
        assert_eq!(rt.progress(&a), Progress::Queued);
        assert_eq!(rt.progress("req-none"), Progress::Unknown);
        // An answer to a request not handed out yet is refused.
        let early = http(
            &rt.address(),
            post(&format!("{PREFIX}invocation/{a}/response"), "{}", ""),
        )
        .await;
        assert!(early.starts_with("HTTP/1.1 404"), "{early}");
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let got = http(&rt.address(), NEXT.to_owned()).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        let lower = got.to_ascii_lowercase();
        assert!(
            lower.contains(&format!("lambda-runtime-aws-request-id: {a}")),
            "{got}"
        );
        assert!(
            lower.contains(&format!(
                "lambda-runtime-invoked-function-arn: arn:aws:lambda:{}:{}:function:fn-test",
                crate::REGION,
                crate::ACCOUNT
            )),
            "{got}"
        );
        assert!(got.ends_with(r#"{"n":1}"#), "{got}");
        assert!(matches!(rt.progress(&a), Progress::Delivered(_)));
        assert!(rt.first_next().is_some());
        let got = http(&rt.address(), NEXT.to_owned()).await;
        assert!(got.contains(&b) && got.ends_with("not json"), "{got}");
        // The deadline is the event's own limit after it was handed out.
        let deadline: u128 = got
            .to_ascii_lowercase()
            .lines()
            .find_map(|l| l.strip_prefix("lambda-runtime-deadline-ms: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let limit = deadline - before.as_millis();
        assert!((3000..4000).contains(&limit), "{limit} ms");
        assert_eq!(rt.nexts(), 2);

        let ok = http(
            &rt.address(),
            post(
                &format!("{PREFIX}invocation/{a}/response"),
                r#"{"done":true}"#,
                "",
            ),
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 202"), "{ok}");
        assert_eq!(
            rt.wait_outcome(&a, Duration::from_secs(1)).await,
            Some(Outcome::Response(serde_json::json!({"done": true})))
        );
        let err = http(
            &rt.address(),
            post(
                &format!("{PREFIX}invocation/{b}/error"),
                r#"{"errorType":"A2A.Transient","errorMessage":"later"}"#,
                "lambda-runtime-function-error-type: unhandled\r\n",
            ),
        )
        .await;
        assert!(err.starts_with("HTTP/1.1 202"), "{err}");
        let e = rt.outcome(&b).unwrap().expect_error("b");
        assert_eq!(
            (
                e.error_type.as_str(),
                e.error_message.as_str(),
                e.header.as_deref()
            ),
            ("A2A.Transient", "later", Some("unhandled"))
        );
        // A second answer to one request is refused, and not recorded.
        let again = http(
            &rt.address(),
            post(&format!("{PREFIX}invocation/{a}/error"), "{}", ""),
        )
        .await;
        assert!(again.starts_with("HTTP/1.1 400"), "{again}");
        assert!(matches!(rt.outcome(&a), Some(Outcome::Response(_))));

        let init = http(
            &rt.address(),
            post(
                &format!("{PREFIX}init/error"),
                r#"{"errorType":"Runtime.InitError","errorMessage":"A2A_TABLE is not set"}"#,
                "",
            ),
        )
        .await;
        assert!(init.starts_with("HTTP/1.1 202"), "{init}");
        assert_eq!(
            rt.init_error().unwrap().error_message,
            "A2A_TABLE is not set"
        );
        // An answered request stays answered; one still queued can no longer be handled.
        assert!(matches!(rt.progress(&a), Progress::Answered(_)));
        let c = rt.invoke("{}");
        assert!(matches!(rt.progress(&c), Progress::InitFailed(_)));
        assert!(rt.unknown_requests().is_empty());
        let lost = http(&rt.address(), post("/2018-06-01/elsewhere", "", "")).await;
        assert!(lost.starts_with("HTTP/1.1 404"), "{lost}");
        assert_eq!(rt.unknown_requests(), ["POST /2018-06-01/elsewhere"]);
    }

    #[tokio::test]
    async fn next_waits_for_an_event() {
        let rt = RuntimeApi::start("fn-wait").await.unwrap();
        let addr = rt.address();
        let poll = tokio::spawn(async move { http(&addr, NEXT.to_owned()).await });
        assert!(rt.wait_first_next(Duration::from_secs(5)).await.is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!poll.is_finished(), "no event queued yet: /next must wait");
        let id = rt.invoke("{}");
        let got = tokio::time::timeout(Duration::from_secs(5), poll)
            .await
            .expect("/next answers once an event is queued")
            .unwrap();
        assert!(got.contains(&id), "{got}");
        let p = rt
            .wait_progress(&id, Duration::from_secs(1), |p| {
                matches!(p, Progress::Delivered(_))
            })
            .await;
        assert!(matches!(p, Progress::Delivered(_)), "{p:?}");
        assert_eq!(
            rt.wait_outcome(&id, Duration::from_millis(50)).await,
            None,
            "not answered yet"
        );
    }
}

//! A fake Lambda Runtime API, for tests and the cold-start benchmark: a local HTTP server
//! that hands queued events to a real Lambda binary and records what it answers.
//!
//! It serves the four calls a custom runtime makes:
//!
//! * `GET /2018-06-01/runtime/invocation/next`: waits for a queued event and sends it with
//!   the `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//!   `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id` headers;
//! * `POST …/invocation/{id}/response`: the result;
//! * `POST …/invocation/{id}/error`: `{"errorType", "errorMessage"}`;
//! * `POST /2018-06-01/runtime/init/error`: a failure before the first event.
//!
//! The time of the first `/next` is kept: that is when a cold start ends.
//! [`LambdaProcess`] starts a binary against the server with the environment Lambda gives
//! a function, and kills it when dropped.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Notify;

use crate::http::{Reply, Server, Watched};

const PREFIX: &str = "/2018-06-01/runtime/";

/// The function's time limit given with each event (its deadline header).
pub const DEADLINE: Duration = Duration::from_secs(60);

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
    /// Posted to `…/response`: the body, parsed as JSON (`null` if it was empty).
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

struct Event {
    id: String,
    body: Bytes,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Event>,
    outcomes: HashMap<String, Outcome>,
    first_next: Option<Instant>,
    nexts: usize,
    init_error: Option<ErrorReport>,
    unknown: Vec<String>,
    counter: u64,
}

struct Shared {
    state: Watched<State>,
    /// An event was queued.
    queued: Notify,
    function_arn: String,
}

/// The fake runtime API server, listening on `127.0.0.1` at a free port until dropped.
pub struct FakeRuntime {
    server: Server,
    shared: Arc<Shared>,
}

impl FakeRuntime {
    /// Starts a server for the function `function_name` (its ARN is sent with each event).
    /// Must be called inside a Tokio runtime.
    pub async fn start(function_name: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Watched::new(State::default()),
            queued: Notify::new(),
            function_arn: format!("arn:aws:lambda:eu-west-1:123456789012:function:{function_name}"),
        });
        let server = Server::start(shared.clone(), route).await?;
        Ok(Self { server, shared })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.server.addr.to_string()
    }

    /// Queues an event (any bytes: a test may send what is not JSON) and returns its
    /// request id.
    pub fn invoke(&self, payload: impl Into<Bytes>) -> String {
        let id = {
            let mut s = self.shared.state.lock();
            s.counter += 1;
            let id = format!("req-{:04}-{:x}", s.counter, std::process::id());
            s.queue.push_back(Event {
                id: id.clone(),
                body: payload.into(),
            });
            id
        };
        self.shared.queued.notify_one();
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
        self.wait(timeout, |s| s.outcomes.get(id).cloned()).await
    }

    /// When the first `/next` came: the end of the cold start.
    pub fn first_next(&self) -> Option<Instant> {
        self.shared.state.lock().first_next
    }

    /// Waits up to `timeout` for the first `/next`.
    pub async fn wait_first_next(&self, timeout: Duration) -> Option<Instant> {
        self.wait(timeout, |s| s.first_next).await
    }

    /// How many `/next` requests came.
    pub fn nexts(&self) -> usize {
        self.shared.state.lock().nexts
    }

    /// Waits up to `timeout` until `n` `/next` requests came: after its answer, a function
    /// that is still well asks for the next event.
    pub async fn wait_nexts(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |s| (s.nexts >= n).then_some(()))
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

    /// The environment Lambda gives a function of `name`, with this server as its
    /// runtime API.
    pub fn lambda_env(&self, name: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/01/01/[$LATEST]0123456789abcdef".to_owned(),
            ),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
            ("LAMBDA_TASK_ROOT", "/var/task".to_owned()),
            ("_HANDLER", "bootstrap".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    async fn wait<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> Option<T> {
        self.shared.state.wait(timeout, |s| check(s)).await
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
            if let std::collections::hash_map::Entry::Vacant(slot) = s.outcomes.entry(id) {
                slot.insert(outcome);
                drop(s);
                shared.state.changed();
                reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            } else {
                // The real API refuses a second answer to one request.
                reply(StatusCode::BAD_REQUEST, "already answered")
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
        if let Some(e) = shared.state.lock().queue.pop_front() {
            break e;
        }
        queued.await;
    };
    let deadline = SystemTime::now()
        .checked_add(DEADLINE)
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

/// The path of binary `name` built beside the running test: cargo puts a test in
/// `target/<profile>/deps/` and the package's binaries in `target/<profile>/`.
pub fn binary_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Starts `binary` as function `name`, with `env`, against a runtime of its own, for a
/// start that must fail as [`LambdaProcess::expect_failed_start`] checks; returns the ended
/// process, whose output the caller may read.
pub async fn expect_failed_cold_start(
    binary: &Path,
    name: &str,
    env: &[(&str, String)],
    error_type: &str,
    needle: &str,
) -> LambdaProcess {
    let rt = FakeRuntime::start(name)
        .await
        .expect("the fake runtime listens");
    let mut process =
        LambdaProcess::spawn(binary, name, &rt, env).unwrap_or_else(|e| panic!("{e}"));
    process.expect_failed_start(&rt, error_type, needle).await;
    process
}

/// The file opened for appending: stdout and stderr share it without overwriting.
fn append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().append(true).open(path)
}

/// A Lambda binary running against a [`FakeRuntime`]; killed when dropped. Its output
/// (JSON logs) goes to a file, shown by [`LambdaProcess::output`] when a test fails.
pub struct LambdaProcess {
    name: String,
    child: Child,
    log: Option<tempfile::NamedTempFile>,
}

impl LambdaProcess {
    /// Starts `binary` as function `name` against `runtime`, with `env` added to the
    /// Lambda environment (and the test's own, which holds the AWS endpoint and keys).
    pub fn spawn(
        binary: &Path,
        name: &str,
        runtime: &FakeRuntime,
        env: &[(&str, String)],
    ) -> std::io::Result<Self> {
        let log = tempfile::NamedTempFile::new()?;
        let mut cmd = Command::new(binary);
        cmd.envs(runtime.lambda_env(name))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(append(log.path())?)
            .stderr(append(log.path())?);
        let child = cmd.spawn().map_err(|e| {
            std::io::Error::new(e.kind(), format!("starting {}: {e}", binary.display()))
        })?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: Some(log),
        })
    }

    /// Starts `command` as it is (the benchmark's way: output discarded, spawn timed by the
    /// caller).
    pub fn from_command(name: &str, mut command: Command) -> std::io::Result<Self> {
        let child = command.stdin(Stdio::null()).spawn()?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The resident set size in KiB (`VmRSS` of `/proc/<pid>/status`), on Linux.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to end.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a start that must fail: the process ends with a failure status before it
    /// asks for an event, having posted `/init/error` with `error_type` (in the body and the
    /// header) and a message that contains `needle`. Returns that message.
    pub async fn expect_failed_start(
        &mut self,
        runtime: &FakeRuntime,
        error_type: &str,
        needle: &str,
    ) -> String {
        let status = self.wait_exit(Duration::from_secs(20)).await;
        let out = self.output();
        let status = status.unwrap_or_else(|| panic!("{}: still running:\n{out}", self.name));
        assert!(
            !status.success(),
            "{}: exited with {status}:\n{out}",
            self.name
        );
        assert_eq!(
            runtime.nexts(),
            0,
            "{}: asked for an event:\n{out}",
            self.name
        );
        let report = runtime
            .init_error()
            .unwrap_or_else(|| panic!("{}: no /init/error:\n{out}", self.name));
        assert_eq!(report.error_type, error_type, "{}: {report:?}", self.name);
        assert_eq!(report.header.as_deref(), Some(error_type), "{}", self.name);
        assert!(
            report.error_message.contains(needle),
            "{}: {needle:?} not in {report:?}",
            self.name
        );
        report.error_message
    }

    /// Checks, at the end of a test, that the process still serves `runtime`: it has not
    /// ended, and the runtime saw no request it does not know and no `/init/error`.
    pub fn expect_serving(&mut self, runtime: &FakeRuntime) {
        let out = self.output();
        assert!(self.exited().is_none(), "{}: ended:\n{out}", self.name);
        assert!(
            runtime.unknown_requests().is_empty(),
            "{}: unknown requests {:?}",
            self.name,
            runtime.unknown_requests()
        );
        assert_eq!(runtime.init_error(), None, "{}", self.name);
    }

    /// What the process wrote so far (its last 8 KB).
    pub fn output(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let text = std::fs::read(log.path()).unwrap_or_default();
        let tail = &text[text.len().saturating_sub(8192)..];
        String::from_utf8_lossy(tail).into_owned()
    }

    /// Sends `payload` through `runtime` and waits up to `timeout` for the answer. Fails
    /// with the process's output if it ends or does not answer in time.
    pub async fn call(
        &mut self,
        runtime: &FakeRuntime,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Outcome, String> {
        let id = runtime.invoke(payload);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(o) = runtime.wait_outcome(&id, Duration::from_millis(100)).await {
                return Ok(o);
            }
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} ended ({status}) before answering {id}; its output:\n{}",
                    self.name,
                    self.output()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not answer {id} within {timeout:?}; its output:\n{}",
                    self.name,
                    self.output()
                ));
            }
        }
    }

    /// [`LambdaProcess::call`] with a JSON event; panics with the process's output on
    /// failure to answer.
    pub async fn call_json(&mut self, runtime: &FakeRuntime, event: &serde_json::Value) -> Outcome {
        self.call(runtime, event.to_string(), Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

    #[tokio::test]
    async fn serves_events_and_records_answers() {
        let rt = FakeRuntime::start("fn-test").await.unwrap();
        assert_eq!(rt.first_next(), None);
        let a = rt.invoke_json(&serde_json::json!({"n": 1}));
        let b = rt.invoke("not json");
        let next = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_owned();
        let got = http(&rt.address(), next.clone()).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        let lower = got.to_ascii_lowercase();
        assert!(
            lower.contains(&format!("lambda-runtime-aws-request-id: {a}")),
            "{got}"
        );
        assert!(lower.contains("lambda-runtime-deadline-ms: "), "{got}");
        assert!(
            lower.contains("lambda-runtime-invoked-function-arn: arn:aws:lambda:eu-west-1:123456789012:function:fn-test"),
            "{got}"
        );
        assert!(got.ends_with(r#"{"n":1}"#), "{got}");
        assert!(rt.first_next().is_some());
        let got = http(&rt.address(), next).await;
        assert!(got.contains(&b) && got.ends_with("not json"), "{got}");
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
        assert!(rt.unknown_requests().is_empty());
        let lost = http(&rt.address(), post("/2018-06-01/elsewhere", "", "")).await;
        assert!(lost.starts_with("HTTP/1.1 404"), "{lost}");
        assert_eq!(rt.unknown_requests(), ["POST /2018-06-01/elsewhere"]);
    }

    #[tokio::test]
    async fn next_waits_for_an_event() {
        let rt = FakeRuntime::start("fn-wait").await.unwrap();
        let addr = rt.address();
        let poll = tokio::spawn(async move {
            http(
                &addr,
                "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
                    .to_owned(),
            )
            .await
        });
        assert!(rt.wait_first_next(Duration::from_secs(5)).await.is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!poll.is_finished(), "no event queued yet: /next must wait");
        let id = rt.invoke("{}");
        let got = tokio::time::timeout(Duration::from_secs(5), poll)
            .await
            .expect("/next answers once an event is queued")
            .unwrap();
        assert!(got.contains(&id), "{got}");
        assert_eq!(
            rt.wait_outcome(&id, Duration::from_millis(50)).await,
            None,
            "not answered yet"
        );
    }

    #[test]
    fn binaries_are_found_beside_the_test() {
        let p = binary_path("intake");
        assert_eq!(
            p.file_name().unwrap(),
            format!("intake{}", std::env::consts::EXE_SUFFIX).as_str()
        );
        assert_ne!(p.parent().unwrap().file_name().unwrap(), "deps");
    }
}

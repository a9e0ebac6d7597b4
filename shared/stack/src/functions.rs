//! Every Lambda of the template as its real binary, invoked as Lambda invokes it.
//!
//! Running the step code in process proves the code, not the deployed function: its
//! environment, its time limit, its concurrency, its runtime client and what happens when
//! its process dies are where a night of migrations fails first. So each invoke here goes
//! to an instance (a process of the built binary behind a [`RuntimeApi`] of its own) as
//! Lambda's execution environments do:
//!
//! * an idle instance is reused (warm); when every instance is busy a new one is started
//!   (a cold start), with a cleared environment holding only the template's variables,
//!   what the stack gives every function (`base_env`: the emulator's endpoint,
//!   credentials, region) and what Lambda sets, in an empty directory of its own;
//! * one instance handles one invocation at a time;
//! * past the template's `Timeout` the instance is killed and the invoke fails as
//!   `Sandbox.Timedout`; an instance that dies mid-invocation fails it as
//!   `Runtime.ExitError` and is discarded, so the next invoke starts a new one;
//! * `ReservedConcurrentExecutions` caps the instances; an invoke beyond it is throttled
//!   (`Lambda.TooManyRequestsException`, as Step Functions names it);
//! * a function's own error keeps its `errorType`, which the state machines' Retry and
//!   Catch match; a failed start (`/init/error`) fails the invoke with the start's error.
//!
//! An invocation runs to its end even when its caller stops waiting, as in Lambda. What
//! this cannot show: memory limits (`MemorySize` is only told to the function), the
//! account's concurrency quota, and a frozen environment between invokes.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::runtime::{Outcome, Progress, RuntimeApi};

/// The error name of an invoke beyond the function's reserved concurrency.
pub const THROTTLED: &str = "Lambda.TooManyRequestsException";
/// The error name of an invocation that ran past the function's timeout.
pub const TIMED_OUT: &str = "Sandbox.Timedout";
/// The error name of an invocation whose process ended before it answered.
pub const EXITED: &str = "Runtime.ExitError";
/// The error name of an invoke of a function the stack does not have.
pub const NOT_FOUND: &str = "Lambda.ResourceNotFoundException";
/// The error name of an invoke the rehearsal could not serve (it is shutting down, or a
/// local resource failed): a Lambda service error, which the state machines retry.
pub const SERVICE: &str = "Lambda.ServiceException";
/// The error name of a binary that cannot be started.
pub const INVALID_ENTRYPOINT: &str = "Runtime.InvalidEntrypoint";

/// How long a new instance may take to ask for its first event beyond the function's
/// timeout: Lambda's init phase has 10 s of its own.
pub const INIT_LIMIT: Duration = Duration::from_secs(10);

/// The variables Lambda sets itself and refuses in a function's configuration.
pub const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// One function of the template, as the rehearsal runs it.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    /// The deployed `FunctionName` (what the state machines' ARNs end with).
    pub name: String,
    /// The built executable.
    pub binary: PathBuf,
    /// The template's `Environment.Variables`, already resolved.
    pub env: BTreeMap<String, String>,
    /// The template's `Timeout`.
    pub timeout: Duration,
    /// `MemorySize`, in MB.
    pub memory_mb: u32,
    /// `ReservedConcurrentExecutions`: at most this many instances at once.
    pub reserved_concurrency: Option<u32>,
}

impl FunctionSpec {
    /// The keys of [`FunctionSpec::env`] that Lambda reserves ([`RESERVED_ENV`]): a
    /// deployment with any is refused, so a template reader refuses it too. The
    /// rehearsal never passes them on.
    pub fn reserved_keys(&self) -> Vec<&str> {
        self.env
            .keys()
            .map(String::as_str)
            .filter(|k| RESERVED_ENV.contains(k))
            .collect()
    }
}

/// The variables Lambda gives an instance of function `name` (beside its configuration
/// and its role's credentials), with `runtime_api` as its runtime API and `task_root` as
/// its code's directory. The unreserved ones (`TZ`, `LANG`, `PATH`) may be overridden by
/// the function's configuration.
pub fn lambda_environment(
    name: &str,
    memory_mb: u32,
    region: &str,
    runtime_api: &str,
    task_root: &Path,
) -> BTreeMap<String, String> {
    let root = task_root.display().to_string();
    let stream = format!(
        "{}/[$LATEST]{:016x}",
        chrono::Utc::now().format("%Y/%m/%d"),
        rand_suffix()
    );
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", region.to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", root.clone()),
        ("LAMBDA_RUNTIME_DIR", root),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The unreserved variables Lambda sets, which a configuration may override.
fn lambda_defaults() -> BTreeMap<String, String> {
    [
        ("TZ", ":UTC"),
        ("LANG", "en_US.UTF-8"),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Enough to tell log streams apart: no randomness crate for this.
fn rand_suffix() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    t ^ (u64::from(std::process::id()) << 32) ^ N.fetch_add(1, Ordering::Relaxed)
}

/// A failed invoke, as Step Functions sees it: its error name (what Retry and Catch
/// match) and its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvokeError {
    /// The error name: the function's `errorType`, or Lambda's own (see the constants of
    /// this module).
    pub error_type: String,
    /// What went wrong.
    pub message: String,
}

impl InvokeError {
    fn new(error_type: &str, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.to_owned(),
            message: message.into(),
        }
    }

    /// The `Cause` Step Functions records: the invoke's error payload as JSON
    /// (`{"errorType", "errorMessage"}`) for what the function or its runtime reported,
    /// the plain message for a Lambda service error (`Lambda.…`).
    pub fn cause(&self) -> String {
        if self.error_type.starts_with("Lambda.") {
            self.message.clone()
        } else {
            serde_json::json!({"errorType": self.error_type, "errorMessage": self.message})
                .to_string()
        }
    }
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for InvokeError {}

impl From<InvokeError> for a2a_asl::TaskError {
    /// The task's error as Step Functions gives it to Retry and Catch: the name, and the
    /// cause ([`InvokeError::cause`]).
    fn from(e: InvokeError) -> Self {
        a2a_asl::TaskError::new(e.error_type.clone(), e.cause())
    }
}

/// The functions of the stack, each with its instances. Cloning shares them.
#[derive(Clone)]
pub struct Functions {
    inner: Arc<Inner>,
}

struct Inner {
    functions: BTreeMap<String, Function>,
    base_env: BTreeMap<String, String>,
    region: String,
    closed: watch::Sender<bool>,
    instance_ids: AtomicU64,
}

struct Function {
    spec: FunctionSpec,
    pool: Mutex<Pool>,
    cold_starts: AtomicU64,
}

impl Function {
    fn pool(&self) -> MutexGuard<'_, Pool> {
        // A panic while holding the lock leaves usable data: take it anyway.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
struct Pool {
    idle: Vec<Instance>,
    /// Instances handling an invocation: their id and process id (none while starting).
    busy: BTreeMap<u64, Option<u32>>,
}

/// One execution environment: a process, its runtime API and its directory.
struct Instance {
    id: u64,
    child: Child,
    api: RuntimeApi,
    /// The function's last lines of output, for the log when it dies.
    tail: Arc<Mutex<VecDeque<String>>>,
    _dir: tempfile::TempDir,
}

/// How an invocation ended for its instance.
enum Ended {
    /// The instance is well and may serve again.
    Kept(Result<Value, InvokeError>),
    /// The instance is gone or must go.
    Lost(Result<Value, InvokeError>),
}

const TAIL_LINES: usize = 20;

impl Functions {
    /// The functions of `specs`; an instance starts at the first invoke. `base_env`: what
    /// the stack gives every function beside the template's env (`AWS_ENDPOINT_URL`,
    /// credentials, region).
    pub fn new(specs: Vec<FunctionSpec>, base_env: BTreeMap<String, String>) -> Self {
        let region = base_env
            .get("AWS_REGION")
            .or_else(|| base_env.get("AWS_DEFAULT_REGION"))
            .cloned()
            .unwrap_or_else(|| crate::REGION.to_owned());
        let functions = specs
            .into_iter()
            .map(|spec| {
                let f = Function {
                    spec,
                    pool: Mutex::default(),
                    cold_starts: AtomicU64::new(0),
                };
                (f.spec.name.clone(), f)
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                functions,
                base_env,
                region,
                closed: watch::Sender::new(false),
                instance_ids: AtomicU64::new(0),
            }),
        }
    }

    /// The names of the functions, in order.
    pub fn names(&self) -> Vec<String> {
        self.inner.functions.keys().cloned().collect()
    }

    /// Invokes function `name` with `payload` (a synchronous `RequestResponse` invoke)
    /// and returns its response, or its failure as Step Functions sees it.
    pub async fn invoke(&self, name: &str, payload: Value) -> Result<Value, InvokeError> {
        let this = self.clone();
        let name = name.to_owned();
        // Spawned: the invocation runs to its end even if the caller stops waiting.
        match tokio::spawn(async move { this.run(&name, payload).await }).await {
            Ok(r) => r,
            Err(e) => Err(InvokeError::new(
                SERVICE,
                format!("the invocation's task ended: {e}"),
            )),
        }
    }

    /// How many instances of `name` were started so far (0 for an unknown name).
    pub fn cold_starts(&self, name: &str) -> u64 {
        self.inner
            .functions
            .get(name)
            .map_or(0, |f| f.cold_starts.load(Ordering::Relaxed))
    }

    /// The process ids of the instances of `name` handling an invocation now: what a
    /// test kills to see a function die mid-invocation.
    pub fn busy_pids(&self, name: &str) -> Vec<u32> {
        self.inner.functions.get(name).map_or_else(Vec::new, |f| {
            f.pool().busy.values().filter_map(|p| *p).collect()
        })
    }

    /// Ends every instance: idle ones at once, busy ones (whose invokes fail as
    /// [`SERVICE`]) as their invokes notice, which this waits for (up to 10 s). Invokes
    /// after this fail the same way.
    pub async fn shutdown(&self) {
        self.inner.closed.send_replace(true);
        for f in self.inner.functions.values() {
            let idle = std::mem::take(&mut f.pool().idle);
            for i in idle {
                end(i).await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self
                .inner
                .functions
                .values()
                .any(|f| !f.pool().busy.is_empty())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn run(&self, name: &str, payload: Value) -> Result<Value, InvokeError> {
        let Some(f) = self.inner.functions.get(name) else {
            return Err(InvokeError::new(
                NOT_FOUND,
                format!("Function not found: {}", crate::runtime::function_arn(name)),
            ));
        };
        if *self.inner.closed.borrow() {
            return Err(closing(name));
        }
        let (mut instance, cold) = match self.take(f)? {
            Some(i) => (i, false),
            None => {
                let id = self.inner.instance_ids.fetch_add(1, Ordering::Relaxed) + 1;
                f.pool().busy.insert(id, None);
                f.cold_starts.fetch_add(1, Ordering::Relaxed);
                match self.start(f, id).await {
                    Ok(i) => (i, true),
                    Err(e) => {
                        f.pool().busy.remove(&id);
                        return Err(e);
                    }
                }
            }
        };
        tracing::debug!(
            function = name,
            instance = instance.id,
            cold,
            "lambda: invoke"
        );
        match self.call(f, &mut instance, payload).await {
            Ended::Kept(r) => {
                let leftover = {
                    let mut pool = f.pool();
                    pool.busy.remove(&instance.id);
                    // Read under the lock: `shutdown` sets it before it empties the pool.
                    if *self.inner.closed.borrow() {
                        Some(instance)
                    } else {
                        pool.idle.push(instance);
                        None
                    }
                };
                if let Some(i) = leftover {
                    end(i).await;
                }
                r
            }
            Ended::Lost(r) => {
                let id = instance.id;
                end(instance).await;
                f.pool().busy.remove(&id);
                r
            }
        }
    }

    /// An idle instance marked busy, or `None` when a new one may start; a throttle when
    /// none may.
    fn take(&self, f: &Function) -> Result<Option<Instance>, InvokeError> {
        let mut pool = f.pool();
        while let Some(mut i) = pool.idle.pop() {
            // One that ended while idle is dropped (and reaped); Lambda would start anew.
            if matches!(i.child.try_wait(), Ok(None)) {
                let pid = i.child.id();
                pool.busy.insert(i.id, pid);
                return Ok(Some(i));
            }
        }
        if let Some(n) = f.spec.reserved_concurrency
            && pool.busy.len() >= n as usize
        {
            return Err(InvokeError::new(
                THROTTLED,
                format!(
                    "Rate Exceeded. (Service: Lambda, Status Code: 429, Reason: \
                     ReservedFunctionConcurrentInvocationLimitExceeded: {} of {n} \
                     reserved for {} busy)",
                    pool.busy.len(),
                    f.spec.name
                ),
            ));
        }
        Ok(None)
    }

    /// A cold start: a new process of the binary against a runtime API of its own.
    async fn start(&self, f: &Function, id: u64) -> Result<Instance, InvokeError> {
        let name = &f.spec.name;
        let service = |what: &str, e: std::io::Error| {
            InvokeError::new(SERVICE, format!("{name}: {what}: {e}"))
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("a2a-lambda-{name}-"))
            .tempdir()
            .map_err(|e| service("creating its working directory", e))?;
        let api = RuntimeApi::start(name)
            .await
            .map_err(|e| service("starting its runtime API", e))?;
        let mut env = lambda_defaults();
        env.extend(
            f.spec
                .env
                .iter()
                .filter(|(k, _)| !RESERVED_ENV.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        env.extend(self.inner.base_env.clone());
        env.extend(lambda_environment(
            name,
            f.spec.memory_mb,
            &self.inner.region,
            &api.address(),
            dir.path(),
        ));
        let mut child = Command::new(&f.spec.binary)
            .env_clear()
            .envs(&env)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                InvokeError::new(
                    INVALID_ENTRYPOINT,
                    format!(
                        "{name}: cannot start {}: {e}; build it first",
                        f.spec.binary.display()
                    ),
                )
            })?;
        if let Some(pid) = child.id()
            && let Some(slot) = f.pool().busy.get_mut(&id)
        {
            *slot = Some(pid);
        }
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let label = format!("{name}#{id}");
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump(out, label.clone(), tail.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump(err, label, tail.clone()));
        }
        tracing::info!(function = %name, instance = id, "lambda: cold start");
        Ok(Instance {
            id,
            child,
            api,
            tail,
            _dir: dir,
        })
    }

    /// Hands `payload` to `instance` and waits for its answer, its death, its timeout or
    /// the stack's shutdown.
    async fn call(&self, f: &Function, instance: &mut Instance, payload: Value) -> Ended {
        let name = &f.spec.name;
        let limit = f.spec.timeout;
        let id = instance.api.invoke_with_limit(payload.to_string(), limit);
        let mut closed = self.inner.closed.subscribe();
        // Until the event is handed out the instance may still be starting.
        let mut deadline = Instant::now() + INIT_LIMIT + limit;
        let mut delivered = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let progress = tokio::select! {
                status = instance.child.wait() => {
                    // It may have answered, or reported a failed start, just before.
                    return match instance.api.progress(&id) {
                        Progress::Answered(o) => Ended::Lost(answer(o)),
                        Progress::InitFailed(e) => Ended::Lost(Err(init_failed(e))),
                        _ => {
                            let how = match status {
                                Ok(s) => exit_reason(s),
                                Err(e) => format!("Runtime exited with error: {e}"),
                            };
                            let tail = instance.tail_text();
                            tracing::warn!(function = %name, instance = instance.id, "lambda: {how}; its last output:\n{tail}");
                            Ended::Lost(Err(InvokeError::new(EXITED, format!("RequestId: {id} Error: {how}"))))
                        }
                    };
                }
                () = closing_signal(&mut closed) => return Ended::Lost(Err(closing(name))),
                p = instance.api.wait_progress(&id, left, |p| match p {
                    Progress::Queued => false,
                    Progress::Delivered(_) => !delivered,
                    _ => true,
                }) => p,
            };
            match progress {
                Progress::Answered(o) => return Ended::Kept(answer(o)),
                Progress::InitFailed(e) => return Ended::Lost(Err(init_failed(e))),
                Progress::Delivered(at) if !delivered => {
                    delivered = true;
                    deadline = at + limit;
                }
                Progress::Unknown => {
                    return Ended::Lost(Err(InvokeError::new(
                        SERVICE,
                        format!("{name}: request {id} was lost by its runtime API"),
                    )));
                }
                Progress::Queued | Progress::Delivered(_) if Instant::now() >= deadline => {
                    let what = if delivered {
                        format!("Task timed out after {:.2} seconds", limit.as_secs_f64())
                    } else {
                        format!(
                            "Task timed out after {:.2} seconds (the instance never asked \
                             for the event)",
                            (INIT_LIMIT + limit).as_secs_f64()
                        )
                    };
                    tracing::warn!(function = %name, instance = instance.id, "lambda: {what}");
                    return Ended::Lost(Err(InvokeError::new(
                        TIMED_OUT,
                        format!("RequestId: {id} Error: {what}"),
                    )));
                }
                Progress::Queued | Progress::Delivered(_) => {}
            }
        }
    }
}

impl Instance {
    fn tail_text(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

fn answer(o: Outcome) -> Result<Value, InvokeError> {
    match o {
        Outcome::Response(v) => Ok(v),
        Outcome::Error(e) => {
            let error_type = if !e.error_type.is_empty() {
                e.error_type
            } else {
                e.header.unwrap_or_else(|| "Lambda.Unknown".to_owned())
            };
            Err(InvokeError {
                error_type,
                message: e.error_message,
            })
        }
    }
}

fn init_failed(e: crate::runtime::ErrorReport) -> InvokeError {
    answer(Outcome::Error(e))
        .err()
        .unwrap_or_else(|| InvokeError::new(EXITED, "Runtime exited without providing a reason"))
}

fn closing(name: &str) -> InvokeError {
    InvokeError::new(SERVICE, format!("{name}: the stack is shutting down"))
}

/// Resolves once the stack is shutting down.
async fn closing_signal(closed: &mut watch::Receiver<bool>) {
    while !*closed.borrow_and_update() {
        if closed.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Lambda's words for how a runtime process ended.
fn exit_reason(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let what = match sig {
                6 => "aborted".to_owned(),
                9 => "killed".to_owned(),
                11 => "segmentation fault".to_owned(),
                15 => "terminated".to_owned(),
                n => format!("signal {n}"),
            };
            return format!("Runtime exited with error: signal: {what}");
        }
    }
    match status.code() {
        Some(0) | None => "Runtime exited without providing a reason".to_owned(),
        Some(n) => format!("Runtime exited with error: exit status {n}"),
    }
}

/// Kills an instance and reaps it.
async fn end(mut i: Instance) {
    let _ = i.child.start_kill();
    let _ = i.child.wait().await;
}

/// Forwards a function's output to the stack's log, line by line, keeping the last lines.
async fn pump(stream: impl AsyncRead + Unpin, label: String, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "a2a_stack::lambda", "{label}: {line}");
        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line);
    }
}

/// Why [`build`] failed.
#[derive(Debug)]
pub struct BuildError(pub String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// Builds `binaries` as SAM's Rust builder does (`cargo build --bin NAME …` run in the
/// template's `CodeUri`, `workspace`, so that cargo finds them where SAM's builder does:
/// in the default members of the workspace, or the package of that directory), for this
/// machine, in the release profile or the debug one. Returns each binary's path, as cargo
/// reports it. Cargo's progress goes to this process's stderr.
pub fn build(
    workspace: &Path,
    binaries: &[String],
    release: bool,
) -> Result<BTreeMap<String, PathBuf>, BuildError> {
    if binaries.is_empty() {
        return Ok(BTreeMap::new());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(&cargo);
    cmd.arg("build")
        .arg("--message-format=json-render-diagnostics");
    if release {
        cmd.arg("--release");
    }
    for b in binaries {
        cmd.arg("--bin").arg(b);
    }
    let shown = format!(
        "cargo build{} --bin {} (in {})",
        if release { " --release" } else { "" },
        binaries.join(" --bin "),
        workspace.display()
    );
    let out = cmd
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BuildError(format!("{shown}: cannot run cargo: {e}")))?;
    if !out.status.success() {
        return Err(BuildError(format!(
            "{shown} failed ({}): cargo's errors are above",
            out.status
        )));
    }
    let mut found = BTreeMap::new();
    for line in out.stdout.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let is_bin = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"));
        if msg["reason"] == "compiler-artifact"
            && is_bin
            && let (Some(name), Some(exe)) =
                (msg["target"]["name"].as_str(), msg["executable"].as_str())
            && binaries.iter().any(|b| b == name)
        {
            found.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    let missing: Vec<&str> = binaries
        .iter()
        .filter(|b| !found.contains_key(*b))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(BuildError(format!(
            "{shown} built no executable for {}",
            missing.join(", ")
        )));
    }
    Ok(found)
}

//! Real Lambda binaries under test: the Lambda Runtime API of `a2a_stack::runtime` (the
//! project's one implementation, re-exported here as [`FakeRuntime`]: a test queues the
//! events and reads the answers) and a child-process harness, [`LambdaProcess`], that
//! starts a binary against it with the environment Lambda gives a function and kills it
//! when dropped. For the functions' tests and the cold-start benchmark; the rehearsal's
//! own instances are `a2a_stack::Functions`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use a2a_stack::runtime::{DEADLINE, ErrorReport, Outcome, Progress};

/// The runtime API a test drives: queue events with `invoke`, read `outcome`s.
pub type FakeRuntime = a2a_stack::runtime::RuntimeApi;

/// The environment Lambda gives function `name` (512 MB, code in `/var/task`), with `rt`
/// as its runtime API, in the test's region (`AWS_REGION`, else the rehearsal's).
pub fn lambda_env(rt: &FakeRuntime, name: &str) -> Vec<(String, String)> {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| a2a_stack::REGION.to_owned());
    a2a_stack::functions::lambda_environment(
        name,
        512,
        &region,
        &rt.address(),
        Path::new("/var/task"),
    )
    .into_iter()
    .collect()
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
        cmd.envs(lambda_env(runtime, name))
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

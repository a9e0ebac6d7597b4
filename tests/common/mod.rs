//! What every end-to-end test needs: running the real `a2a` binary in a given home.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `a2a --home HOME ARGS...` with no A2A_HOME or RUST_LOG from the caller's
/// environment, and waits for it.
pub fn a2a(home: &Path, args: &[&str]) -> Output {
    command(home)
        .args(args)
        .output()
        .expect("the a2a binary runs")
}

/// The same command, not yet run, for tests that set its environment or stdin.
pub fn command(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_a2a"));
    c.arg("--home")
        .arg(home)
        .env_remove("A2A_HOME")
        .env_remove("RUST_LOG");
    c
}

/// Makes a fixture site (`a2a fixture site`): its database at `db`, its moodledata in the
/// folder `files`, run from the home `home`; a failure fails the test.
pub fn fixture_site(home: &Path, db: &str, files: &str) {
    let o = a2a(home, &["fixture", "site", "--db", db, "--files", files]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// Everything a failed assertion should show of a run: exit code, stdout and stderr.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// The `a2a.toml` of a `[site]` with one shard `a` at `shard` and the template `primary`
/// at `template`, whose moodledata is `{work}/tpl-moodledata`. The URLs hold no '"' or
/// '\\' (TOML basic strings).
pub fn site_toml(shard: &str, template: &str, work: &str) -> String {
    format!(
        "[site]\nhost = \"campus.example.cat\"\n\
         old_wwwroot = \"https://agora.xtec.cat/{{dns}}/moodle\"\n\
         [[site.shards]]\nname = \"a\"\ndb = \"{shard}\"\ncapacity = 10\n\
         [site.templates.primary]\ndb = \"{template}\"\nfiles = \"{work}/tpl-moodledata\"\n\
         wwwroot = \"https://plantilla.example.cat/moodle\"\n"
    )
}

/// Writes `work/list.csv` with one migration `(code, dns, source database)`, whose
/// moodledata is `work/src-moodledata`, and one provision `(code, dns)` of the template
/// `primary`; returns its path.
pub fn pair_list(work: &Path, migrate: (&str, &str, &str), provision: (&str, &str)) -> PathBuf {
    let ((m, m_dns, src), (p, p_dns)) = (migrate, provision);
    let w = work.display();
    let list = work.join("list.csv");
    let text = format!(
        "school_code,name,kind,dns,template,source_db,source_files\n\
         {m},Institut Exemple,migrate,{m_dns},,{src},{w}/src-moodledata\n\
         {p},Escola Nova,provision,{p_dns},primary,,\n"
    );
    std::fs::write(&list, text).unwrap();
    list
}

/// The string `field` of every item of the JSON array `items`: a report's keys, types or
/// fields, as a test compares them.
pub fn strings<'a, C: FromIterator<&'a str>>(items: &'a serde_json::Value, field: &str) -> C {
    let items = items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"));
    items
        .iter()
        .map(|e| {
            e[field]
                .as_str()
                .unwrap_or_else(|| panic!("no string {field}: {e}"))
        })
        .collect()
}

/// A deployed stack in the emulator at `AWS_ENDPOINT_URL`, as `--stack NAME` finds one:
/// a CloudFormation stack `name` whose fan-out queue is a real resource (`FanOutQueue`,
/// its URL the `FanOutQueueUrl` output, as in template.yaml) and whose other outputs
/// carry the given values (moto cannot deploy the SAM template, nor make activities).
pub async fn deployed_stack(
    conf: &a2a_aws::config::SdkConfig,
    name: &str,
    outputs: &[(&str, String)],
) {
    let mut out = serde_json::Map::new();
    out.insert(
        a2a_aws::stack::QUEUE_URL.into(),
        serde_json::json!({"Value": {"Ref": "FanOutQueue"}}),
    );
    for (k, v) in outputs {
        out.insert((*k).into(), serde_json::json!({ "Value": v }));
    }
    let template = serde_json::json!({
        "Resources": {"FanOutQueue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": out,
    });
    a2a_aws::aws_sdk_cloudformation::Client::new(conf)
        .create_stack()
        .stack_name(name)
        .template_body(template.to_string())
        .send()
        .await
        .expect("the emulator makes the stack");
}

/// A child process of a test, with the file its stderr goes to; killed (SIGKILL) when
/// dropped, unless `terminate` stopped it first.
pub struct Process {
    /// The process.
    pub child: std::process::Child,
    /// Its log (stderr).
    pub log: PathBuf,
}

impl Process {
    /// The end of its log, for a failure's message.
    pub fn tail(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let from = t.len().saturating_sub(4000);
        format!(
            "--- {}:\n{}\n",
            self.log.display(),
            &t[t.floor_char_boundary(from)..]
        )
    }

    /// SIGTERM, and its exit code once it has stopped.
    pub fn terminate(mut self) -> Option<i32> {
        self.signal("-TERM");
        self.child.wait().unwrap().code()
    }

    /// SIGKILL: no time to say anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn signal(&self, which: &str) {
        let _ = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that a start refused as a duplicate left the school as it was: active, with
/// the attempt, execution and target it had `before`.
pub fn assert_left_as_it_was(
    before: &a2a_core::Instance,
    after: &a2a_core::Instance,
    why: &dyn std::fmt::Debug,
) {
    assert_eq!(
        (after.status, after.attempt, &after.execution, &after.target),
        (
            a2a_core::Status::Active,
            before.attempt,
            &before.execution,
            &before.target
        ),
        "{why:?}"
    );
}

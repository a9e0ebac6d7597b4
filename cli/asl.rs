//! `a2a asl`: check and run Amazon States Language definitions on this machine, with the
//! same interpreter the local runner uses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use a2a_asl::{
    Clock, Execution, ExecutionOptions, Handlers, MockConfig, RealClock, StateMachine, Status,
    VirtualClock,
};
use clap::{Subcommand, ValueEnum};
use serde_json::Value;

use crate::template::{self, Template};
use crate::{CliError, CliResult, Outcome};

/// What to do with a definition.
#[derive(Debug, Subcommand)]
pub enum AslCommand {
    /// Check definitions as Step Functions would before accepting them.
    ///
    /// A file that a state machine of `template.yaml` names (beside the file's folder, or
    /// `--template`) has its placeholders bound from that machine's
    /// `DefinitionSubstitutions`, with stand-in ARNs of the resources they name. Elsewhere a
    /// placeholder that is a whole Task `Resource` is checked as a stand-in ARN and said to be
    /// unbound. Exits 0 when every file is valid, 2 otherwise; each problem names the state
    /// and field.
    Validate {
        /// The definitions (`statemachines/*.asl.json`).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Fills a `${NAME}` placeholder (repeatable), before the template's.
        #[arg(long = "substitution", value_name = "NAME=VALUE")]
        substitutions: Vec<String>,
        /// The SAM template whose state machines name the files (default: `template.yaml`
        /// beside each file's folder, if there is one).
        #[arg(long, value_name = "FILE")]
        template: Option<PathBuf>,
    },
    /// Run one execution and print `{"status": ..., "output" | "error", "cause"}` as JSON.
    ///
    /// Exits 0 on SUCCEEDED, 1 on FAILED or TIMED_OUT, 2 on an invalid definition or input.
    Run {
        /// The definition.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The execution input, as JSON text (default `{}`).
        #[arg(long, value_name = "JSON", conflicts_with = "input_file")]
        input: Option<String>,
        /// The execution input, from a JSON file.
        #[arg(long, value_name = "F")]
        input_file: Option<PathBuf>,
        /// Fills a `${NAME}` placeholder (repeatable).
        #[arg(long = "substitution", value_name = "NAME=VALUE")]
        substitutions: Vec<String>,
        /// A Step Functions Local mock configuration file: tasks answer from it.
        #[arg(long, value_name = "F", requires = "test_case")]
        mock_config: Option<PathBuf>,
        /// The test case of the mock configuration to use.
        #[arg(long, value_name = "NAME", requires = "mock_config")]
        test_case: Option<String>,
        /// The state machine's name in the mock configuration and in ARNs (default: the
        /// file name without `.asl.json`).
        #[arg(long, value_name = "NAME")]
        state_machine: Option<String>,
        /// The execution name (default: a UUID).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// `virtual`: Wait states, retry back-off and timeouts cost no wall time.
        #[arg(long, value_enum, default_value_t = ClockKind::Real)]
        clock: ClockKind,
        /// Add the execution's history events to the report.
        #[arg(long)]
        history: bool,
    },
}

/// Which clock an execution runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClockKind {
    /// Wall-clock time: a 60-second Wait takes a minute.
    Real,
    /// Simulated time: sleeping moves the execution's clock, not the wall's.
    Virtual,
}

/// Runs an `a2a asl` command.
pub async fn run(cmd: AslCommand) -> CliResult {
    match cmd {
        AslCommand::Validate {
            files,
            substitutions,
            template,
        } => validate(
            &files,
            &parse_substitutions(&substitutions)?,
            template.as_deref(),
        ),
        AslCommand::Run {
            file,
            input,
            input_file,
            substitutions,
            mock_config,
            test_case,
            state_machine,
            name,
            clock,
            history,
        } => {
            let subs = parse_substitutions(&substitutions)?;
            let sm = load(&file, &subs).map_err(|problems| {
                for p in &problems {
                    eprintln!("{}: {p}", file.display());
                }
                CliError::input(
                    format!("{} is not a valid state machine", file.display()),
                    "fix the fields named above; `a2a asl validate FILE` lists every problem",
                )
            })?;
            let input = read_input(input.as_deref(), input_file.as_deref())?;
            let machine_name = state_machine.unwrap_or_else(|| machine_name(&file));
            let mock = match (mock_config, test_case) {
                (Some(path), Some(case)) => {
                    let text = read(&path)?;
                    let config = MockConfig::parse(&text).map_err(|e| {
                        CliError::input(
                            format!("{}: {e}", path.display()),
                            "see the Step Functions Local mock configuration format",
                        )
                    })?;
                    Some(config.test_case(&machine_name, &case).map_err(|e| {
                        CliError::input(
                            format!("{}: {e}", path.display()),
                            "pass --state-machine NAME when the file name differs",
                        )
                    })?)
                }
                _ => None,
            };
            let clock: Arc<dyn Clock> = match clock {
                ClockKind::Real => Arc::new(RealClock),
                ClockKind::Virtual => Arc::new(VirtualClock::new()),
            };
            let opts = ExecutionOptions {
                name,
                state_machine_name: machine_name,
                clock,
                // No step code is linked into the CLI yet: tasks answer from the mocks.
                resolver: Arc::new(Handlers::new()),
                mock,
                history,
                arn: None,
            };
            let outcome = Execution::run(&sm, input, opts).await;
            out(&outcome.to_json(history).to_string())?;
            Ok(match outcome.status {
                Status::Succeeded => Outcome::Ok,
                Status::Failed | Status::TimedOut => Outcome::Failed,
            })
        }
    }
}

fn validate(
    files: &[PathBuf],
    given: &HashMap<String, String>,
    template: Option<&Path>,
) -> CliResult {
    let named = template.map(Template::read).transpose()?;
    let mut bad = 0;
    for f in files {
        let (subs, bound) = bindings(f, given, named.as_ref())?;
        match load(f, &subs) {
            Ok(sm) => out(&format!(
                "{}: ok ({} states{bound})",
                f.display(),
                sm.state_count()
            ))?,
            Err(problems) => {
                bad += 1;
                for p in problems {
                    eprintln!("{}: {p}", f.display());
                }
            }
        }
    }
    if bad == 0 {
        Ok(Outcome::Ok)
    } else {
        Err(CliError::input(
            format!("{bad} of {} definition(s) are invalid", files.len()),
            "each line above names the file, the state and the field to fix",
        ))
    }
}

/// The substitutions to check `file` with: those given, then its state machine's in the
/// template, else stand-ins for unbound whole-`Resource` placeholders (each said on stderr).
/// Also a few words for the `ok` line on where they came from.
fn bindings(
    file: &Path,
    given: &HashMap<String, String>,
    named: Option<&Template>,
) -> Result<(HashMap<String, String>, String), CliError> {
    let near = match named {
        Some(_) => None,
        None => Template::near(file)
            .map(|p| Template::read(&p))
            .transpose()?,
    };
    let mut subs = given.clone();
    if let Some(b) = named.or(near.as_ref()).and_then(|t| t.state_machine(file)) {
        let n = b.substitutions.len();
        for (k, v) in b.substitutions {
            subs.entry(k).or_insert(v);
        }
        return Ok((
            subs,
            format!("; {n} placeholders bound from {}", b.resource),
        ));
    }
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut unbound = 0;
    for name in template::resource_placeholders(&text) {
        if !subs.contains_key(&name) {
            eprintln!(
                "{}: ${{{name}}} is unbound (no template names this file); checked as a stand-in \
                 ARN; pass --substitution {name}=ARN or --template FILE",
                file.display()
            );
            subs.insert(
                name.clone(),
                format!("arn:aws:lambda:eu-west-1:123456789012:function:{name}"),
            );
            unbound += 1;
        }
    }
    let said = if unbound > 0 {
        format!("; {unbound} unbound")
    } else {
        String::new()
    };
    Ok((subs, said))
}

/// Prints a line on stdout; a closed pipe (`| head`) is not an error worth a panic.
fn out(line: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::environment(
            format!("cannot write to stdout: {e}"),
            "check where the output goes",
        )),
        _ => Ok(()),
    }
}

/// Reads and loads a definition; the problems are ready to print.
fn load(path: &Path, subs: &HashMap<String, String>) -> Result<StateMachine, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read it: {e}")])?;
    StateMachine::load(&text, subs).map_err(|e| e.problems())
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::input(
            format!("cannot read {}: {e}", path.display()),
            "check the path",
        )
    })
}

fn read_input(text: Option<&str>, file: Option<&Path>) -> Result<Value, CliError> {
    let (text, source) = match (text, file) {
        (Some(t), _) => (t.to_owned(), "--input".to_owned()),
        (None, Some(f)) => (read(f)?, f.display().to_string()),
        (None, None) => return Ok(Value::Object(Default::default())),
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        CliError::input(
            format!("{source} is not JSON: {e}"),
            "the execution input is one JSON value, e.g. '{\"school_code\": \"08012345\"}'",
        )
    })?;
    // StartExecution refuses a larger input, so the local run does too.
    let size = value.to_string().len();
    if size > a2a_asl::engine::MAX_PAYLOAD_BYTES {
        return Err(CliError::input(
            format!(
                "{source} is {size} bytes; Step Functions accepts at most {}",
                a2a_asl::engine::MAX_PAYLOAD_BYTES
            ),
            "pass a reference (an S3 key) instead of the data itself",
        ));
    }
    Ok(value)
}

fn parse_substitutions(list: &[String]) -> Result<HashMap<String, String>, CliError> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(CliError::input(
                format!("--substitution {kv}: expected NAME=VALUE"),
                "e.g. --substitution ExportFunctionArn=arn:aws:lambda:eu-west-1:123456789012:function:export",
            )),
        })
        .collect()
}

/// `statemachines/migrate-instance.asl.json` → `migrate-instance`.
fn machine_name(file: &Path) -> String {
    let base = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = base
        .strip_suffix(".asl.json")
        .or_else(|| base.strip_suffix(".json"))
        .unwrap_or(&base);
    base.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names_and_substitutions() {
        assert_eq!(
            machine_name(Path::new("statemachines/migrate-instance.asl.json")),
            "migrate-instance"
        );
        assert_eq!(machine_name(Path::new("x.json")), "x");
        let s = parse_substitutions(&["A=b=c".into()]).unwrap();
        assert_eq!(s["A"], "b=c");
        assert!(parse_substitutions(&["nope".into()]).is_err());
        assert!(parse_substitutions(&["=x".into()]).is_err());
    }
}

//! Loading a definition: substitutions, parsing into typed states, and every check the
//! service makes before it accepts a state machine. Each problem names the state and field.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use crate::choice::{self, COMPARISONS, Operand, Rule, TESTS};
use crate::error::{DefinitionError, LoadError, names};
use crate::intrinsic::Expr;
use crate::path::{Path, RefPath, Template};
use crate::task::LAMBDA_INVOKE;

/// The largest timeout or wait the service accepts, in seconds.
const MAX_SECONDS: u64 = 99_999_999;
/// The longest state name.
const MAX_NAME: usize = 80;

/// A loaded, checked state machine, ready to run.
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub(crate) root: Arc<Machine>,
    /// The execution timeout (`TimeoutSeconds` at the top level).
    pub timeout_seconds: Option<u64>,
    /// The top-level `Comment`.
    pub comment: Option<String>,
}

impl StateMachine {
    /// Parses and checks a definition with no substitutions.
    pub fn parse(text: &str) -> Result<Self, LoadError> {
        Self::load(text, &HashMap::new())
    }

    /// Parses a definition, fills its `${Name}` placeholders from `substitutions`, and
    /// checks it. Every problem found is returned, each naming its state and field.
    pub fn load(text: &str, substitutions: &HashMap<String, String>) -> Result<Self, LoadError> {
        let mut v: Value =
            serde_json::from_str(text).map_err(|e| LoadError::Json(e.to_string()))?;
        let mut ck = Ck::default();
        substitute(&mut v, None, None, substitutions, &mut ck);
        let sm = ck.top(&v);
        match sm {
            Some(sm) if ck.errs.is_empty() => Ok(sm),
            _ => Err(LoadError::Invalid(ck.errs)),
        }
    }

    /// The names of the top-level states, in no particular order.
    pub fn state_names(&self) -> Vec<&str> {
        self.root.states.keys().map(String::as_str).collect()
    }

    /// The number of states, counting those inside Parallel branches and Map processors.
    pub fn state_count(&self) -> usize {
        self.root.count()
    }
}

/// A set of states with a start: the whole machine, a Parallel branch, or a Map processor.
#[derive(Debug)]
pub(crate) struct Machine {
    pub start_at: String,
    pub states: HashMap<String, State>,
}

impl Machine {
    fn count(&self) -> usize {
        self.states
            .values()
            .map(|s| {
                1 + match &s.kind {
                    Kind::Parallel { branches } => branches.iter().map(|b| b.count()).sum(),
                    Kind::Map { processor, .. } => processor.count(),
                    _ => 0,
                }
            })
            .sum()
    }
}

/// A path field that may be absent (the default `$`), `null`, or a path.
#[derive(Debug, Clone)]
pub(crate) enum Io<T> {
    Default,
    Null,
    Set(T),
}

#[derive(Debug)]
pub(crate) struct State {
    pub name: String,
    pub kind: Kind,
    pub input_path: Io<Path>,
    pub output_path: Io<Path>,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: Io<RefPath>,
    /// `None` when the state ends its machine (or is a Choice, Succeed or Fail).
    pub next: Option<String>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task {
        resource: String,
        timeout: Option<Secs>,
        heartbeat: Option<Secs>,
    },
    Choice {
        choices: Vec<(Rule, String)>,
        default: Option<String>,
    },
    Wait(WaitFor),
    Succeed,
    Fail {
        error: Option<Source>,
        cause: Option<Source>,
    },
    Parallel {
        branches: Vec<Arc<Machine>>,
    },
    Map {
        processor: Arc<Machine>,
        items_path: Option<Path>,
        item_selector: Option<Template>,
        max_concurrency: Secs,
    },
}

impl Kind {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "Pass",
            Kind::Task { .. } => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
            Kind::Parallel { .. } => "Parallel",
            Kind::Map { .. } => "Map",
        }
    }
}

/// A number given literally or read from the input.
#[derive(Debug, Clone)]
pub(crate) enum Secs {
    Fixed(u64),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum WaitFor {
    Seconds(u64),
    Timestamp(DateTime<FixedOffset>),
    SecondsPath(Path),
    TimestampPath(Path),
}

/// A Fail state's error or cause: a literal, a path or an intrinsic function.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Lit(String),
    Path(Path),
    Call(Expr),
}

#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    pub full_jitter: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: Io<RefPath>,
}

/// Fills `${Name}` placeholders in every string, reporting unfilled ones where they are.
fn substitute(
    v: &mut Value,
    state: Option<&str>,
    field: Option<&str>,
    subs: &HashMap<String, String>,
    ck: &mut Ck,
) {
    match v {
        Value::String(s) => {
            if !s.contains("${") {
                return;
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                out.push_str(&rest[..i]);
                let after = &rest[i + 2..];
                let Some(j) = after.find('}') else {
                    out.push_str(&rest[i..]);
                    rest = "";
                    break;
                };
                let name = &after[..j];
                match subs.get(name) {
                    Some(val) => out.push_str(val),
                    None => {
                        ck.err(
                            state,
                            field.unwrap_or("(definition)"),
                            format!("the placeholder ${{{name}}} has no substitution; pass it (--substitution {name}=VALUE)"),
                        );
                        out.push_str(&rest[i..i + 3 + j]);
                    }
                }
                rest = &after[j + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Array(a) => {
            for x in a {
                substitute(x, state, field, subs, ck);
            }
        }
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "States" && x.is_object() && field.is_none() {
                    if let Value::Object(states) = x {
                        for (name, st) in states.iter_mut() {
                            substitute(st, Some(name), None, subs, ck);
                        }
                    }
                } else {
                    substitute(x, state, Some(field.unwrap_or(k)), subs, ck);
                }
            }
        }
        _ => {}
    }
}

/// The checker: collects every problem instead of stopping at the first.
#[derive(Default)]
struct Ck {
    errs: Vec<DefinitionError>,
}

/// The fields each state type accepts, besides `Type` and `Comment`.
#[rustfmt::skip] // one line a state type reads as the table it is
fn allowed(t: &str) -> Option<&'static [&'static str]> {
    Some(match t {
        "Pass" => &["Next", "End", "InputPath", "OutputPath", "Parameters", "ResultPath", "Result"],
        "Task" => &["Next", "End", "InputPath", "OutputPath", "Parameters", "ResultSelector",
            "ResultPath", "Resource", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds",
            "HeartbeatSecondsPath", "Retry", "Catch"],
        "Choice" => &["InputPath", "OutputPath", "Choices", "Default"],
        "Wait" => &["Next", "End", "InputPath", "OutputPath", "Seconds", "Timestamp",
            "SecondsPath", "TimestampPath"],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        "Parallel" => &["Next", "End", "InputPath", "OutputPath", "Parameters", "ResultSelector",
            "ResultPath", "Branches", "Retry", "Catch"],
        "Map" => &["Next", "End", "InputPath", "OutputPath", "Parameters", "ItemSelector",
            "ResultSelector", "ResultPath", "ItemsPath", "Iterator", "ItemProcessor",
            "MaxConcurrency", "MaxConcurrencyPath", "Retry", "Catch"],
        _ => return None,
    })
}

/// Fields the service knows but this engine does not run; refused rather than ignored.
const UNSUPPORTED: &[&str] = &[
    "Assign",
    "Arguments",
    "Output",
    "QueryLanguage",
    "Credentials",
    "ItemReader",
    "ItemBatcher",
    "ResultWriter",
    "ToleratedFailurePercentage",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCount",
    "ToleratedFailureCountPath",
    "Label",
    "Items",
];

/// What a JSON value is, for messages that must not quote it.
pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Ck {
    fn err(&mut self, state: Option<&str>, field: &str, message: impl Into<String>) {
        self.errs.push(DefinitionError {
            state: state.map(str::to_owned),
            field: field.to_owned(),
            message: message.into(),
        });
    }

    fn top(&mut self, v: &Value) -> Option<StateMachine> {
        let Some(o) = v.as_object() else {
            self.err(
                None,
                "(definition)",
                format!("a definition is a JSON object, not {}", describe(v)),
            );
            return None;
        };
        for k in o.keys() {
            match k.as_str() {
                "StartAt" | "States" | "Comment" | "Version" | "TimeoutSeconds" => {}
                "QueryLanguage" => {
                    if o[k] != Value::String("JSONPath".into()) {
                        self.err(
                            None,
                            k,
                            "only JSONPath is supported by the local engine (JSONata is not)",
                        );
                    }
                }
                other => self.err(None, other, "unknown field"),
            }
        }
        let timeout_seconds = match o.get("TimeoutSeconds") {
            None => None,
            Some(t) => self.seconds(None, "TimeoutSeconds", t, 1),
        };
        if let Some(c) = o.get("Comment")
            && !c.is_string()
        {
            self.err(None, "Comment", "must be a string");
        }
        if let Some(ver) = o.get("Version")
            && ver != "1.0"
        {
            self.err(None, "Version", "the only version is \"1.0\"");
        }
        let root = self.machine(o, None)?;
        Some(StateMachine {
            root: Arc::new(root),
            timeout_seconds,
            comment: o.get("Comment").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// A set of states (`StartAt` + `States`); `parent` is the qualified name of the
    /// Parallel or Map that holds it.
    fn machine(&mut self, o: &Map<String, Value>, parent: Option<&str>) -> Option<Machine> {
        let start_at = match o.get("StartAt") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.err(
                    parent,
                    "StartAt",
                    format!("must be a string, not {}", describe(other)),
                );
                None
            }
            None => {
                self.err(parent, "StartAt", "is missing");
                None
            }
        };
        let states_v = match o.get("States") {
            Some(Value::Object(m)) if !m.is_empty() => m,
            Some(Value::Object(_)) => {
                self.err(parent, "States", "holds no state");
                return None;
            }
            Some(other) => {
                self.err(
                    parent,
                    "States",
                    format!("must be an object, not {}", describe(other)),
                );
                return None;
            }
            None => {
                self.err(parent, "States", "is missing");
                return None;
            }
        };
        let errs_before = self.errs.len();
        let mut states = HashMap::new();
        for (name, sv) in states_v {
            let q = match parent {
                Some(p) => format!("{p}/{name}"),
                None => name.clone(),
            };
            if name.is_empty() || name.chars().count() > MAX_NAME {
                self.err(
                    Some(&q),
                    "(name)",
                    format!("a state name has 1 to {MAX_NAME} characters"),
                );
            }
            if let Some(s) = self.state(name, &q, sv) {
                states.insert(name.clone(), s);
            }
        }
        let start_at = start_at?;
        if !states_v.contains_key(&start_at) {
            self.err(
                parent,
                "StartAt",
                format!("names \"{start_at}\", which is not a state here"),
            );
            return None;
        }
        let m = Machine { start_at, states };
        // A state that failed to parse has no edges: the graph checks would only echo it.
        if self.errs.len() == errs_before {
            self.graph(&m, states_v, parent);
        }
        Some(m)
    }

    /// Transitions must exist; every state must be reachable and reach an end.
    fn graph(&mut self, m: &Machine, raw: &Map<String, Value>, parent: Option<&str>) {
        let q = |n: &str| match parent {
            Some(p) => format!("{p}/{n}"),
            None => n.to_owned(),
        };
        let mut edges: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut dangling = false;
        for (name, s) in &m.states {
            let mut out: Vec<(&str, String)> = Vec::new();
            if let Some(n) = &s.next {
                out.push((n, "Next".into()));
            }
            for (i, c) in s.catch.iter().enumerate() {
                out.push((&c.next, format!("Catch[{i}].Next")));
            }
            if let Kind::Choice { choices, default } = &s.kind {
                for (i, (_, n)) in choices.iter().enumerate() {
                    out.push((n, format!("Choices[{i}].Next")));
                }
                if let Some(d) = default {
                    out.push((d, "Default".into()));
                }
            }
            let list = edges.entry(name).or_default();
            for (target, field) in out {
                if raw.contains_key(target) {
                    list.push(target);
                } else {
                    dangling = true;
                    self.err(
                        Some(&q(name)),
                        &field,
                        format!("names \"{target}\", which is not a state here"),
                    );
                }
            }
        }
        // With a transition to nowhere, reachability would only echo that error.
        if dangling {
            return;
        }
        let mut seen: HashSet<&str> = HashSet::new();
        let mut todo = VecDeque::from([m.start_at.as_str()]);
        while let Some(n) = todo.pop_front() {
            if seen.insert(n) {
                todo.extend(edges.get(n).into_iter().flatten());
            }
        }
        let mut names: Vec<&String> = m.states.keys().collect();
        names.sort();
        for n in &names {
            if !seen.contains(n.as_str()) {
                self.err(
                    Some(&q(n)),
                    "(reachability)",
                    format!("no transition leads to it from StartAt \"{}\"", m.start_at),
                );
            }
        }
        // A state ends somewhere when a terminal state is reachable from it.
        let mut ends: HashSet<&str> = m
            .states
            .iter()
            .filter(|(_, s)| s.next.is_none() && !matches!(s.kind, Kind::Choice { .. }))
            .map(|(n, _)| n.as_str())
            .collect();
        loop {
            let before = ends.len();
            for (n, out) in &edges {
                if !ends.contains(n) && out.iter().any(|t| ends.contains(t)) {
                    ends.insert(n);
                }
            }
            if ends.len() == before {
                break;
            }
        }
        for n in names {
            if seen.contains(n.as_str()) && !ends.contains(n.as_str()) {
                self.err(Some(&q(n)), "Next", "every path from this state loops forever: none reaches an End, Succeed or Fail");
            }
        }
    }

    fn seconds(&mut self, state: Option<&str>, field: &str, v: &Value, min: u64) -> Option<u64> {
        match v.as_u64() {
            Some(n) if n >= min && n <= MAX_SECONDS => Some(n),
            _ => {
                self.err(
                    state,
                    field,
                    format!("must be an integer from {min} to {MAX_SECONDS}, not {v}"),
                );
                None
            }
        }
    }

    fn path(&mut self, state: &str, field: &str, v: &Value) -> Option<Path> {
        match v {
            Value::String(s) => match Path::parse(s) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.err(Some(state), field, e);
                    None
                }
            },
            other => {
                self.err(
                    Some(state),
                    field,
                    format!("must be a path string, not {}", describe(other)),
                );
                None
            }
        }
    }

    fn io_path(&mut self, state: &str, field: &str, o: &Map<String, Value>) -> Io<Path> {
        match o.get(field) {
            None => Io::Default,
            Some(Value::Null) => Io::Null,
            Some(v) => self.path(state, field, v).map_or(Io::Default, Io::Set),
        }
    }

    fn ref_path(&mut self, state: &str, field: &str, v: Option<&Value>) -> Io<RefPath> {
        match v {
            None => Io::Default,
            Some(Value::Null) => Io::Null,
            Some(Value::String(s)) => match RefPath::parse(s) {
                Ok(p) => Io::Set(p),
                Err(e) => {
                    self.err(Some(state), field, e);
                    Io::Default
                }
            },
            Some(other) => {
                self.err(
                    Some(state),
                    field,
                    format!("must be a reference path or null, not {}", describe(other)),
                );
                Io::Default
            }
        }
    }

    fn template(&mut self, state: &str, field: &str, v: Option<&Value>) -> Option<Template> {
        let v = v?;
        if !v.is_object() && field != "Parameters" {
            self.err(
                Some(state),
                field,
                format!("must be an object, not {}", describe(v)),
            );
            return None;
        }
        match Template::compile(v) {
            Ok(t) => Some(t),
            Err((key, e)) => {
                self.err(Some(state), &format!("{field}.{key}"), e);
                None
            }
        }
    }

    fn string(&mut self, state: &str, field: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            other => {
                self.err(
                    Some(state),
                    field,
                    format!("must be a string, not {}", describe(other)),
                );
                None
            }
        }
    }

    fn state(&mut self, name: &str, q: &str, v: &Value) -> Option<State> {
        let Some(o) = v.as_object() else {
            self.err(
                Some(q),
                "(state)",
                format!("a state is an object, not {}", describe(v)),
            );
            return None;
        };
        let t = self.string_field(q, o, "Type", "")?;
        let Some(fields) = allowed(t) else {
            self.err(Some(q), "Type", format!("\"{t}\" is not a state type (Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map)"));
            return None;
        };
        for k in o.keys() {
            if k == "Type" || k == "Comment" || fields.contains(&k.as_str()) {
                continue;
            }
            if UNSUPPORTED.contains(&k.as_str()) {
                self.err(Some(q), k, "is not supported by the local engine");
            } else {
                self.err(Some(q), k, format!("is not a field of a {t} state"));
            }
        }
        // Next / End.
        let terminal = matches!(t, "Choice" | "Succeed" | "Fail");
        let next = match (o.get("Next"), o.get("End")) {
            _ if terminal => None,
            (Some(_), Some(_)) => {
                self.err(Some(q), "End", "a state has either Next or End, not both");
                None
            }
            (Some(n), None) => self.string(q, "Next", n),
            (None, Some(Value::Bool(true))) => None,
            (None, Some(e)) => {
                self.err(Some(q), "End", format!("must be true, not {e}"));
                None
            }
            (None, None) => {
                self.err(Some(q), "Next", "is missing (or set \"End\": true)");
                None
            }
        };
        let input_path = self.io_path(q, "InputPath", o);
        let output_path = self.io_path(q, "OutputPath", o);
        let parameters = self.template(q, "Parameters", o.get("Parameters"));
        let result_selector = self.template(q, "ResultSelector", o.get("ResultSelector"));
        let result_path = self.ref_path(q, "ResultPath", o.get("ResultPath"));
        let retry = self.retry(q, o.get("Retry"));
        let catch = self.catch(q, o.get("Catch"));
        let kind = match t {
            "Pass" => Kind::Pass {
                result: o.get("Result").cloned(),
            },
            "Task" => self.task(q, o)?,
            "Choice" => self.choice(q, o)?,
            "Wait" => Kind::Wait(self.wait(q, o)?),
            "Succeed" => Kind::Succeed,
            "Fail" => self.fail(q, o)?,
            "Parallel" => self.parallel(q, o)?,
            "Map" => self.map(q, o)?,
            _ => return None,
        };
        Some(State {
            name: name.to_owned(),
            kind,
            input_path,
            output_path,
            parameters,
            result_selector,
            result_path,
            next,
            retry,
            catch,
        })
    }

    fn error_equals(&mut self, q: &str, at: &str, o: &Map<String, Value>) -> Vec<String> {
        let field = format!("{at}.ErrorEquals");
        let Some(Value::Array(a)) = o.get("ErrorEquals") else {
            self.err(Some(q), &field, "must be a non-empty array of error names");
            return Vec::new();
        };
        if a.is_empty() {
            self.err(Some(q), &field, "must be a non-empty array of error names");
        }
        let mut out = Vec::new();
        for e in a {
            match e.as_str() {
                Some(s) if s.starts_with("States.") && !names::KNOWN.contains(&s) => {
                    self.err(
                        Some(q),
                        &field,
                        format!("\"{s}\" is not a predefined error name"),
                    );
                }
                Some(s) => out.push(s.to_owned()),
                None => self.err(Some(q), &field, format!("error names are strings, not {e}")),
            }
        }
        if out.iter().any(|s| s == names::ALL) && a.len() > 1 {
            self.err(Some(q), &field, "States.ALL must appear alone");
        }
        out
    }

    /// The entries of a `Retry` or `Catch` list (`field`), each with its place
    /// (`Retry[0]`) and its `ErrorEquals`, after the checks both lists share: an array of
    /// objects (`what`s) with known `fields`, and `States.ALL` only in the last.
    fn handlers<'v>(
        &mut self,
        q: &str,
        v: Option<&'v Value>,
        field: &str,
        what: &str,
        fields: &[&str],
    ) -> Vec<(String, &'v Map<String, Value>, Vec<String>)> {
        let Some(v) = v else { return Vec::new() };
        let Some(list) = v.as_array() else {
            self.err(Some(q), field, format!("must be an array of {what}s"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let Some(o) = r.as_object() else {
                self.err(Some(q), &at, format!("a {what} is an object"));
                continue;
            };
            for k in o.keys().filter(|k| !fields.contains(&k.as_str())) {
                let msg = if UNSUPPORTED.contains(&k.as_str()) {
                    "is not supported by the local engine".to_owned()
                } else {
                    format!("is not a field of a {what}")
                };
                self.err(Some(q), &format!("{at}.{k}"), msg);
            }
            let error_equals = self.error_equals(q, &at, o);
            if error_equals.iter().any(|e| e == names::ALL) && i + 1 != list.len() {
                self.err(
                    Some(q),
                    &format!("{at}.ErrorEquals"),
                    format!("the {what} with States.ALL must come last"),
                );
            }
            out.push((at, o, error_equals));
        }
        out
    }

    fn retry(&mut self, q: &str, v: Option<&Value>) -> Vec<Retrier> {
        let fields = [
            "ErrorEquals",
            "IntervalSeconds",
            "MaxAttempts",
            "BackoffRate",
            "MaxDelaySeconds",
            "JitterStrategy",
            "Comment",
        ];
        let mut out = Vec::new();
        for (at, o, error_equals) in self.handlers(q, v, "Retry", "retrier", &fields) {
            let interval_seconds = match o.get("IntervalSeconds") {
                None => 1,
                Some(v) => self
                    .seconds(Some(q), &format!("{at}.IntervalSeconds"), v, 1)
                    .unwrap_or(1),
            };
            let max_attempts = match o.get("MaxAttempts") {
                None => 3,
                Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) if n <= MAX_SECONDS as u32 => n,
                    _ => {
                        self.err(
                            Some(q),
                            &format!("{at}.MaxAttempts"),
                            format!("must be a non-negative integer, not {v}"),
                        );
                        0
                    }
                },
            };
            let backoff_rate = match o.get("BackoffRate") {
                None => 2.0,
                Some(v) => match v.as_f64() {
                    Some(f) if f >= 1.0 => f,
                    _ => {
                        self.err(
                            Some(q),
                            &format!("{at}.BackoffRate"),
                            format!("must be a number of at least 1.0, not {v}"),
                        );
                        1.0
                    }
                },
            };
            let max_delay_seconds = o
                .get("MaxDelaySeconds")
                .and_then(|v| self.seconds(Some(q), &format!("{at}.MaxDelaySeconds"), v, 1));
            let full_jitter = match o.get("JitterStrategy") {
                None => false,
                Some(v) if v == "FULL" => true,
                Some(v) if v == "NONE" => false,
                Some(v) => {
                    self.err(
                        Some(q),
                        &format!("{at}.JitterStrategy"),
                        format!("must be \"FULL\" or \"NONE\", not {v}"),
                    );
                    false
                }
            };
            out.push(Retrier {
                error_equals,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
                full_jitter,
            });
        }
        out
    }

    fn catch(&mut self, q: &str, v: Option<&Value>) -> Vec<Catcher> {
        let fields = ["ErrorEquals", "Next", "ResultPath", "Comment"];
        let mut out = Vec::new();
        for (at, o, error_equals) in self.handlers(q, v, "Catch", "catcher", &fields) {
            let next = match o.get("Next") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    self.err(
                        Some(q),
                        &format!("{at}.Next"),
                        "must name the state to go to",
                    );
                    continue;
                }
            };
            let result_path = self.ref_path(q, &format!("{at}.ResultPath"), o.get("ResultPath"));
            out.push(Catcher {
                error_equals,
                next,
                result_path,
            });
        }
        out
    }

    /// `field` or `<field>Path` of `o`, which exclude each other: `Ok` the literal,
    /// `Err` the path's value and its field name; `None` when neither (or both, an error).
    #[allow(clippy::type_complexity)]
    fn field_or_path<'o>(
        &mut self,
        q: &str,
        o: &'o Map<String, Value>,
        field: &str,
    ) -> Option<Result<&'o Value, (&'o Value, String)>> {
        let path_field = format!("{field}Path");
        match (o.get(field), o.get(&path_field)) {
            (Some(_), Some(_)) => {
                let message = format!("{field} and {path_field} exclude each other");
                self.err(Some(q), field, message);
                None
            }
            (Some(v), None) => Some(Ok(v)),
            (None, Some(v)) => Some(Err((v, path_field))),
            (None, None) => None,
        }
    }

    fn secs_or_path(&mut self, q: &str, o: &Map<String, Value>, field: &str) -> Option<Secs> {
        match self.field_or_path(q, o, field)? {
            Ok(v) => self.seconds(Some(q), field, v, 1).map(Secs::Fixed),
            Err((v, path_field)) => self.path(q, &path_field, v).map(Secs::Path),
        }
    }

    /// A field that must be a string: it, or an error saying it is missing or of another
    /// type (`what` says more of the string, e.g. " (an ARN)").
    fn string_field<'o>(
        &mut self,
        q: &str,
        o: &'o Map<String, Value>,
        field: &str,
        what: &str,
    ) -> Option<&'o str> {
        match o.get(field) {
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                let msg = format!("must be a string{what}, not {}", describe(other));
                self.err(Some(q), field, msg);
                None
            }
            None => {
                self.err(Some(q), field, "is missing");
                None
            }
        }
    }

    fn task(&mut self, q: &str, o: &Map<String, Value>) -> Option<Kind> {
        let resource = self.string_field(q, o, "Resource", " (an ARN)")?.to_owned();
        if resource.is_empty() {
            self.err(Some(q), "Resource", "is empty");
            return None;
        }
        if resource.starts_with(LAMBDA_INVOKE) && resource != LAMBDA_INVOKE {
            self.err(Some(q), "Resource", format!("\"{resource}\": only the request-response form {LAMBDA_INVOKE} is supported by the local engine"));
        }
        if resource == LAMBDA_INVOKE {
            let p = o.get("Parameters").and_then(Value::as_object);
            if !p
                .is_some_and(|p| p.contains_key("FunctionName") || p.contains_key("FunctionName.$"))
            {
                self.err(
                    Some(q),
                    "Parameters.FunctionName",
                    format!("{LAMBDA_INVOKE} needs the function to call"),
                );
            }
        }
        let timeout = self.secs_or_path(q, o, "TimeoutSeconds");
        let heartbeat = self.secs_or_path(q, o, "HeartbeatSeconds");
        if let (Some(Secs::Fixed(t)), Some(Secs::Fixed(h))) = (&timeout, &heartbeat)
            && h >= t
        {
            self.err(
                Some(q),
                "HeartbeatSeconds",
                format!("must be less than TimeoutSeconds ({h} >= {t})"),
            );
        }
        Some(Kind::Task {
            resource,
            timeout,
            heartbeat,
        })
    }

    /// The array `field` of `o`, or an error that it must be a non-empty array of `what`.
    fn non_empty<'o>(
        &mut self,
        q: &str,
        o: &'o Map<String, Value>,
        field: &str,
        what: &str,
    ) -> Option<&'o Vec<Value>> {
        match o.get(field) {
            Some(Value::Array(list)) if !list.is_empty() => Some(list),
            _ => {
                self.err(
                    Some(q),
                    field,
                    format!("must be a non-empty array of {what}"),
                );
                None
            }
        }
    }

    fn choice(&mut self, q: &str, o: &Map<String, Value>) -> Option<Kind> {
        let list = self.non_empty(q, o, "Choices", "rules")?;
        let mut choices = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let at = format!("Choices[{i}]");
            if let Some((rule, next)) = self.rule(q, &at, r, true) {
                match next {
                    Some(n) => choices.push((rule, n)),
                    None => self.err(
                        Some(q),
                        &format!("{at}.Next"),
                        "a top-level Choice rule needs Next",
                    ),
                }
            }
        }
        let default = match o.get("Default") {
            None => None,
            Some(v) => self.string(q, "Default", v),
        };
        Some(Kind::Choice { choices, default })
    }

    fn rule(&mut self, q: &str, at: &str, v: &Value, top: bool) -> Option<(Rule, Option<String>)> {
        let Some(o) = v.as_object() else {
            self.err(
                Some(q),
                at,
                format!("a rule is an object, not {}", describe(v)),
            );
            return None;
        };
        let next = match o.get("Next") {
            None => None,
            Some(_) if !top => {
                self.err(
                    Some(q),
                    &format!("{at}.Next"),
                    "a rule nested in And/Or/Not has no Next",
                );
                None
            }
            Some(n) => self.string(q, &format!("{at}.Next"), n),
        };
        let is_op = |k: &str| {
            matches!(k, "And" | "Or" | "Not" | "StringMatches")
                || COMPARISONS
                    .iter()
                    .any(|c| c.0 == k || k.strip_suffix("Path") == Some(c.0))
                || TESTS.iter().any(|t| t.0 == k)
        };
        let ops: Vec<&String> = o.keys().filter(|k| is_op(k)).collect();
        for k in o.keys() {
            if !is_op(k) && !matches!(k.as_str(), "Variable" | "Next" | "Comment") {
                self.err(
                    Some(q),
                    &format!("{at}.{k}"),
                    "is not a comparison operator or a field of a Choice rule",
                );
            }
        }
        let op = match ops.as_slice() {
            [one] => one.as_str(),
            [] => {
                self.err(
                    Some(q),
                    at,
                    "a rule needs one comparison operator (or And, Or, Not)",
                );
                return None;
            }
            many => {
                let names: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                self.err(
                    Some(q),
                    at,
                    format!("a rule has exactly one operator, not {}", names.join(", ")),
                );
                return None;
            }
        };
        let field = format!("{at}.{op}");
        let val = &o[op];
        if matches!(op, "And" | "Or" | "Not") {
            if o.contains_key("Variable") {
                self.err(
                    Some(q),
                    &format!("{at}.Variable"),
                    format!("{op} takes no Variable"),
                );
            }
            let rule = if op == "Not" {
                let (r, _) = self.rule(q, &field, val, false)?;
                Rule::Not(Box::new(r))
            } else {
                let Some(list) = val.as_array().filter(|l| !l.is_empty()) else {
                    self.err(Some(q), &field, "must be a non-empty array of rules");
                    return None;
                };
                let mut rs = Vec::new();
                for (j, r) in list.iter().enumerate() {
                    rs.push(self.rule(q, &format!("{field}[{j}]"), r, false)?.0);
                }
                if op == "And" {
                    Rule::And(rs)
                } else {
                    Rule::Or(rs)
                }
            };
            return Some((rule, next));
        }
        let variable = match o.get("Variable") {
            Some(v) => self.path(q, &format!("{at}.Variable"), v)?,
            None => {
                self.err(Some(q), &format!("{at}.Variable"), "is missing");
                return None;
            }
        };
        if op == "StringMatches" {
            let pattern = self.string(q, &field, val)?;
            return Some((Rule::Matches { variable, pattern }, next));
        }
        if let Some(&(_, test)) = TESTS.iter().find(|t| t.0 == op) {
            let Some(expect) = val.as_bool() else {
                self.err(Some(q), &field, format!("must be true or false, not {val}"));
                return None;
            };
            return Some((
                Rule::Is {
                    variable,
                    test,
                    expect,
                },
                next,
            ));
        }
        let (base, is_path) = match op.strip_suffix("Path") {
            Some(b) if COMPARISONS.iter().any(|c| c.0 == b) => (b, true),
            _ => (op, false),
        };
        let &(_, kind, cmp) = COMPARISONS.iter().find(|c| c.0 == base)?;
        let operand = if is_path {
            Operand::Path(self.path(q, &field, val)?)
        } else {
            let ok = match kind {
                choice::Kind::String => val.is_string(),
                choice::Kind::Numeric => val.is_number(),
                choice::Kind::Boolean => val.is_boolean(),
                choice::Kind::Timestamp => val.as_str().and_then(choice::timestamp).is_some(),
            };
            if !ok {
                let want = match kind {
                    choice::Kind::String => "a string",
                    choice::Kind::Numeric => "a number",
                    choice::Kind::Boolean => "a boolean",
                    choice::Kind::Timestamp => "an RFC 3339 timestamp (uppercase T and Z)",
                };
                self.err(Some(q), &field, format!("must be {want}, not {val}"));
                return None;
            }
            Operand::Lit(val.clone())
        };
        Some((
            Rule::Compare {
                variable,
                kind,
                cmp,
                operand,
            },
            next,
        ))
    }

    fn wait(&mut self, q: &str, o: &Map<String, Value>) -> Option<WaitFor> {
        let given: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
            .into_iter()
            .filter(|k| o.contains_key(*k))
            .collect();
        let [field] = given.as_slice() else {
            self.err(
                Some(q),
                given.first().copied().unwrap_or("Seconds"),
                "a Wait state has exactly one of Seconds, Timestamp, SecondsPath, TimestampPath",
            );
            return None;
        };
        let v = &o[*field];
        match *field {
            "Seconds" => self.seconds(Some(q), "Seconds", v, 0).map(WaitFor::Seconds),
            "Timestamp" => match v.as_str().and_then(choice::timestamp) {
                Some(t) => Some(WaitFor::Timestamp(t)),
                None => {
                    self.err(
                        Some(q),
                        "Timestamp",
                        format!("must be an RFC 3339 timestamp (uppercase T and Z), not {v}"),
                    );
                    None
                }
            },
            "SecondsPath" => self.path(q, "SecondsPath", v).map(WaitFor::SecondsPath),
            _ => self.path(q, "TimestampPath", v).map(WaitFor::TimestampPath),
        }
    }

    fn source(&mut self, q: &str, o: &Map<String, Value>, field: &str) -> Option<Source> {
        match self.field_or_path(q, o, field)? {
            Ok(v) => self.string(q, field, v).map(Source::Lit),
            Err((Value::String(s), path_field)) if s.starts_with("States.") => {
                match Expr::parse(s) {
                    Ok(e) => Some(Source::Call(e)),
                    Err(e) => {
                        self.err(Some(q), &path_field, e);
                        None
                    }
                }
            }
            Err((v, path_field)) => self.path(q, &path_field, v).map(Source::Path),
        }
    }

    fn fail(&mut self, q: &str, o: &Map<String, Value>) -> Option<Kind> {
        let error = self.source(q, o, "Error");
        let cause = self.source(q, o, "Cause");
        Some(Kind::Fail { error, cause })
    }

    fn parallel(&mut self, q: &str, o: &Map<String, Value>) -> Option<Kind> {
        let list = self.non_empty(q, o, "Branches", "branches")?;
        let mut branches = Vec::new();
        for (i, b) in list.iter().enumerate() {
            let at = format!("{q}/Branches[{i}]");
            let Some(bo) = b.as_object() else {
                self.err(
                    Some(q),
                    &format!("Branches[{i}]"),
                    "a branch is an object with StartAt and States",
                );
                continue;
            };
            for k in bo.keys() {
                if !matches!(k.as_str(), "StartAt" | "States" | "Comment") {
                    self.err(Some(&at), k, "is not a field of a branch");
                }
            }
            if let Some(m) = self.machine(bo, Some(&at)) {
                branches.push(Arc::new(m));
            }
        }
        (branches.len() == list.len()).then_some(Kind::Parallel { branches })
    }

    fn map(&mut self, q: &str, o: &Map<String, Value>) -> Option<Kind> {
        let (field, proc) = match (o.get("Iterator"), o.get("ItemProcessor")) {
            (Some(_), Some(_)) => {
                self.err(
                    Some(q),
                    "ItemProcessor",
                    "Iterator and ItemProcessor exclude each other",
                );
                return None;
            }
            (Some(i), None) => ("Iterator", i),
            (None, Some(p)) => ("ItemProcessor", p),
            (None, None) => {
                self.err(Some(q), "ItemProcessor", "is missing (or Iterator)");
                return None;
            }
        };
        let Some(po) = proc.as_object() else {
            self.err(Some(q), field, "must be an object with StartAt and States");
            return None;
        };
        for k in po.keys() {
            match k.as_str() {
                "StartAt" | "States" | "Comment" => {}
                "ProcessorConfig" if field == "ItemProcessor" => {
                    let mode = po[k]
                        .get("Mode")
                        .and_then(Value::as_str)
                        .unwrap_or("INLINE");
                    if mode != "INLINE" {
                        self.err(
                            Some(q),
                            "ItemProcessor.ProcessorConfig.Mode",
                            format!("\"{mode}\": only INLINE is supported by the local engine"),
                        );
                    }
                }
                other => self.err(
                    Some(q),
                    &format!("{field}.{other}"),
                    format!("is not a field of {field}"),
                ),
            }
        }
        let items_path = match o.get("ItemsPath") {
            None => None,
            Some(v) => Some(self.path(q, "ItemsPath", v)?),
        };
        if o.contains_key("Parameters") && o.contains_key("ItemSelector") {
            self.err(
                Some(q),
                "ItemSelector",
                "Parameters and ItemSelector exclude each other",
            );
        }
        let item_selector = self.template(q, "ItemSelector", o.get("ItemSelector"));
        let max_concurrency = match (o.get("MaxConcurrency"), o.get("MaxConcurrencyPath")) {
            (Some(_), Some(_)) => {
                self.err(
                    Some(q),
                    "MaxConcurrency",
                    "MaxConcurrency and MaxConcurrencyPath exclude each other",
                );
                Secs::Fixed(0)
            }
            (Some(v), None) => match v.as_u64() {
                Some(n) => Secs::Fixed(n),
                None => {
                    self.err(
                        Some(q),
                        "MaxConcurrency",
                        format!("must be a non-negative integer, not {v}"),
                    );
                    Secs::Fixed(0)
                }
            },
            (None, Some(v)) => Secs::Path(self.path(q, "MaxConcurrencyPath", v)?),
            (None, None) => Secs::Fixed(0),
        };
        let processor = self.machine(po, Some(&format!("{q}/{field}")))?;
        Some(Kind::Map {
            processor: Arc::new(processor),
            items_path,
            item_selector,
            max_concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(def: Value) -> Vec<String> {
        match StateMachine::parse(&def.to_string()) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems(),
        }
    }

    fn one(def: Value, state: &str, field: &str) {
        let p = problems(def);
        let want_state = format!("state \"{state}\"");
        let want_field = format!("field \"{field}\"");
        assert!(
            p.iter()
                .any(|m| m.contains(&want_state) && m.contains(&want_field)),
            "expected {want_state} {want_field} in {p:?}"
        );
    }

    #[test]
    fn a_good_definition_loads() {
        let def = json!({
            "StartAt": "A",
            "TimeoutSeconds": 60,
            "States": {
                "A": {"Type": "Pass", "Next": "B"},
                "B": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": 1, "Next": "C"}], "Default": "D"},
                "C": {"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "End": true},
                "D": {"Type": "Fail", "Error": "E"}
            }
        });
        let sm = StateMachine::parse(&def.to_string()).unwrap();
        assert_eq!(sm.state_count(), 5);
        assert_eq!(sm.timeout_seconds, Some(60));
    }

    #[test]
    fn errors_name_state_and_field() {
        one(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}}),
            "A",
            "Next",
        );
        one(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}, "B": {"Type": "Pass", "End": true}}}),
            "B",
            "(reachability)",
        );
        one(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}}),
            "A",
            "Next",
        );
        one(
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}}),
            "A",
            "Retry[0].ErrorEquals",
        );
        one(
            json!({"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 1, "Result": 1, "End": true}}}),
            "A",
            "Result",
        );
        one(
            json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": "1", "Next": "A"}]}}}),
            "A",
            "Choices[0].NumericEquals",
        );
        one(
            json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "Next": "Gone"}}}}}}),
            "M/ItemProcessor/I",
            "Next",
        );
    }

    #[test]
    fn a_field_and_its_path_exclude_each_other_and_either_loads_alone() {
        let state = |mut a: Value, extra: Value| {
            a.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            json!({"StartAt": "A", "States": {"A": a}})
        };
        let task = |extra| state(json!({"Type": "Task", "Resource": "r", "End": true}), extra);
        let fail = |extra| state(json!({"Type": "Fail"}), extra);
        let both = json!({"TimeoutSeconds": 5, "TimeoutSecondsPath": "$.t"});
        one(task(both), "A", "TimeoutSeconds");
        one(
            fail(json!({"Error": "E", "ErrorPath": "$.e"})),
            "A",
            "Error",
        );
        one(
            fail(json!({"CausePath": "States.Nope(1)"})),
            "A",
            "CausePath",
        );
        for ok in [
            task(json!({"TimeoutSeconds": 5})),
            task(json!({"HeartbeatSecondsPath": "$.h"})),
            fail(json!({"Error": "E", "CausePath": "States.Format('x{}', $.c)"})),
        ] {
            assert_eq!(problems(ok.clone()), Vec::<String>::new(), "{ok}");
        }
    }

    #[test]
    fn substitutions_fill_placeholders_and_report_unfilled_ones() {
        let def = r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${ExportArn}", "End": true}}}"#;
        let subs = HashMap::from([(
            "ExportArn".to_owned(),
            "arn:aws:lambda:eu-west-1:1:function:export".to_owned(),
        )]);
        let sm = StateMachine::load(def, &subs).unwrap();
        let Kind::Task { resource, .. } = &sm.root.states["A"].kind else {
            panic!()
        };
        assert_eq!(resource, "arn:aws:lambda:eu-west-1:1:function:export");
        let e = StateMachine::load(def, &HashMap::new())
            .unwrap_err()
            .problems();
        assert!(
            e[0].contains("state \"A\", field \"Resource\"") && e[0].contains("${ExportArn}"),
            "{e:?}"
        );
    }
}

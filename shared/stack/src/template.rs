//! `template.yaml` (SAM/CloudFormation YAML, with its short-form tags) resolved as
//! CloudFormation would resolve it: parameters from their defaults and overrides, checked
//! against `AllowedPattern`, `AllowedValues` and `MinValue`/`MaxValue`; the conditions;
//! and the intrinsic functions the template uses (`!Ref`, `!GetAtt`, `!Sub`, `!If`,
//! `!Join`, `!Equals`, `!Not`, `!And`, `!Or`, `!Condition`, `!Select`, `AWS::NoValue`),
//! in their long forms too. A resource's `!Ref` and `!GetAtt` are what the caller records
//! for it ([`Resolver::set`]) once it exists; a value that needs a resource not recorded yet
//! is [`Unresolved::Pending`], so that the caller creates that one first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use yaml_serde::{Mapping, Value as Yaml};

/// A template that cannot be read or served: what (a parameter, a resource, a field) and
/// why.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    /// The template's path.
    pub file: String,
    /// What is wrong: `parameter Stage`, `resource FanOutQueue`, …
    pub what: String,
    /// Why, and what to do.
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.what, self.message)
    }
}

impl std::error::Error for TemplateError {}

/// A parsed template: its sections, not yet resolved.
#[derive(Debug, Clone)]
pub struct Template {
    path: PathBuf,
    parameters: Mapping,
    conditions: Mapping,
    globals: Mapping,
    resources: Mapping,
}

fn section(doc: &Yaml, name: &str) -> Mapping {
    match doc.get(name) {
        Some(Yaml::Mapping(m)) => m.clone(),
        _ => Mapping::new(),
    }
}

impl Template {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|e| TemplateError {
            file: path.display().to_string(),
            what: "the file".into(),
            message: format!("cannot be read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`, read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TemplateError> {
        let doc: Yaml = yaml_serde::from_str(text).map_err(|e| TemplateError {
            file: path.display().to_string(),
            what: "the file".into(),
            message: format!("is not YAML: {e}"),
        })?;
        Ok(Self {
            path: path.to_owned(),
            parameters: section(&doc, "Parameters"),
            conditions: section(&doc, "Conditions"),
            globals: match section(&doc, "Globals").get("Function") {
                Some(Yaml::Mapping(m)) => m.clone(),
                _ => Mapping::new(),
            },
            resources: section(&doc, "Resources"),
        })
    }

    /// The template's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder the template's relative paths (`DefinitionUri`, `CodeUri`) start from.
    pub fn base(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// Every resource: logical id and type, in the template's order.
    pub fn resources(&self) -> Vec<(String, String)> {
        self.resources
            .iter()
            .filter_map(|(id, r)| {
                Some((
                    id.as_str()?.to_owned(),
                    r.get("Type")
                        .and_then(Yaml::as_str)
                        .unwrap_or("")
                        .to_owned(),
                ))
            })
            .collect()
    }

    /// The resource `id`'s field `key` (`Properties`, `Metadata`, `Condition`), unresolved.
    pub fn field(&self, id: &str, key: &str) -> Option<&Yaml> {
        self.resources.get(id)?.get(key)
    }

    /// The parameter `name`'s field `key` (`Default`, `Type`, …), unresolved.
    pub fn parameter(&self, name: &str, key: &str) -> Option<&Yaml> {
        self.parameters.get(name)?.get(key)
    }

    /// Whether the template has the parameter `name`.
    pub fn has_parameter(&self, name: &str) -> bool {
        self.parameters.contains_key(name)
    }

    /// The `Globals.Function` field `key`, unresolved.
    pub fn global(&self, key: &str) -> Option<&Yaml> {
        self.globals.get(key)
    }

    /// An error about `what` in this template.
    pub fn error(&self, what: impl Into<String>, message: impl Into<String>) -> TemplateError {
        TemplateError {
            file: self.path.display().to_string(),
            what: what.into(),
            message: message.into(),
        }
    }
}

/// The pseudo parameters: where the stack is.
#[derive(Debug, Clone)]
pub struct Pseudo {
    /// `AWS::Region`.
    pub region: String,
    /// `AWS::AccountId`.
    pub account: String,
    /// `AWS::StackName`.
    pub stack_name: String,
}

/// What a resource gives `!Ref` and `!GetAtt`.
#[derive(Debug, Clone, Default)]
pub struct Attrs {
    /// `!Ref`.
    pub reference: String,
    /// `!GetAtt X.<name>`.
    pub get: BTreeMap<String, String>,
}

impl Attrs {
    /// `!Ref` gives `reference`, and `!GetAtt` each of `get`.
    pub fn new(reference: impl Into<String>, get: &[(&str, String)]) -> Self {
        Self {
            reference: reference.into(),
            get: get
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }
}

/// Why a value could not be resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Unresolved {
    /// It needs the resource of this logical id, not recorded yet.
    Pending(String),
    /// It cannot be: the message says why.
    Bad(String),
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pending(id) => write!(f, "it needs resource {id}, which is not served"),
            Self::Bad(m) => f.write_str(m),
        }
    }
}

type R<T> = Result<T, Unresolved>;

fn bad<T>(m: impl Into<String>) -> R<T> {
    Err(Unresolved::Bad(m.into()))
}

/// A template's values resolved: parameters, conditions, and the resources recorded so
/// far.
#[derive(Debug)]
pub struct Resolver {
    template: Template,
    pseudo: Pseudo,
    params: BTreeMap<String, Value>,
    conditions: BTreeMap<String, bool>,
    attrs: BTreeMap<String, Attrs>,
}

/// A parameter's checks, as CloudFormation makes them before it creates anything.
fn check_parameter(name: &str, spec: &Yaml, value: &str) -> Result<(), String> {
    let ty = spec.get("Type").and_then(Yaml::as_str).unwrap_or("String");
    let number = |y: &Yaml| match y {
        Yaml::Number(n) => n.as_f64(),
        Yaml::String(s) => s.parse().ok(),
        _ => None,
    };
    if ty == "Number" {
        let Ok(v) = value.trim().parse::<f64>() else {
            return Err(format!("{value:?} is not a number"));
        };
        if let Some(min) = spec.get("MinValue").and_then(number)
            && v < min
        {
            return Err(format!("{value} is under its MinValue {min}"));
        }
        if let Some(max) = spec.get("MaxValue").and_then(number)
            && v > max
        {
            return Err(format!("{value} is over its MaxValue {max}"));
        }
    }
    if let Some(Yaml::Sequence(allowed)) = spec.get("AllowedValues") {
        let ok = allowed.iter().any(|a| match a {
            Yaml::String(s) => s == value,
            Yaml::Number(n) => n.to_string() == value,
            Yaml::Bool(b) => b.to_string() == value,
            _ => false,
        });
        if !ok {
            return Err(format!("{value:?} is not one of its AllowedValues"));
        }
    }
    if let Some(pattern) = spec.get("AllowedPattern").and_then(Yaml::as_str) {
        let re = regex_lite::Regex::new(pattern)
            .map_err(|e| format!("its AllowedPattern {pattern:?} is not a pattern: {e}"))?;
        // CloudFormation matches the whole value.
        let whole = re
            .find(value)
            .is_some_and(|m| m.start() == 0 && m.end() == value.len());
        // A list is checked item by item.
        let items_ok = ty.starts_with("CommaDelimitedList")
            && value.split(',').all(|v| {
                re.find(v.trim())
                    .is_some_and(|m| m.start() == 0 && m.end() == v.trim().len())
            });
        if !whole && !items_ok {
            return Err(format!(
                "{value:?} does not match its AllowedPattern {pattern:?}"
            ));
        }
    }
    let _ = name;
    Ok(())
}

impl Resolver {
    /// The parameters of `template` from their defaults and `overrides`, checked, and the
    /// conditions evaluated. An override that names no parameter, a parameter with neither,
    /// or a value its checks refuse, is an error naming the parameter.
    pub fn new(
        template: Template,
        pseudo: Pseudo,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        for name in overrides.keys() {
            if !template.parameters.contains_key(name.as_str()) {
                return Err(template.error(
                    format!("parameter {name}"),
                    "--parameter-overrides names a parameter the template does not have",
                ));
            }
        }
        let mut params = BTreeMap::new();
        for (name, spec) in &template.parameters {
            let Some(name) = name.as_str() else { continue };
            let text = match overrides.get(name) {
                Some(v) => v.clone(),
                None => match spec.get("Default") {
                    Some(Yaml::String(s)) => s.clone(),
                    Some(Yaml::Number(n)) => n.to_string(),
                    Some(Yaml::Bool(b)) => b.to_string(),
                    _ => {
                        return Err(template.error(
                            format!("parameter {name}"),
                            format!(
                                "it has no Default and was not given: add --parameter-overrides {name}=…"
                            ),
                        ));
                    }
                },
            };
            check_parameter(name, spec, &text)
                .map_err(|e| template.error(format!("parameter {name}"), e))?;
            let ty = spec.get("Type").and_then(Yaml::as_str).unwrap_or("String");
            let value = if ty.starts_with("CommaDelimitedList") || ty.starts_with("List<") {
                Value::Array(
                    text.split(',')
                        .map(|s| Value::String(s.trim().to_owned()))
                        .collect(),
                )
            } else {
                Value::String(text)
            };
            params.insert(name.to_owned(), value);
        }
        let mut r = Self {
            template,
            pseudo,
            params,
            conditions: BTreeMap::new(),
            attrs: BTreeMap::new(),
        };
        let names: Vec<String> = r
            .template
            .conditions
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        for name in names {
            let v = r
                .condition(&name, 0)
                .map_err(|e| r.template.error(format!("condition {name}"), e.to_string()))?;
            r.conditions.insert(name, v);
        }
        Ok(r)
    }

    /// The template.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The pseudo parameters.
    pub fn pseudo(&self) -> &Pseudo {
        &self.pseudo
    }

    /// The parameter `name`'s value, as text (a list joined by commas).
    pub fn parameter(&self, name: &str) -> Option<String> {
        self.params.get(name).map(|v| match v {
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            v => v.as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Records what resource `id` gives `!Ref` and `!GetAtt`.
    pub fn set(&mut self, id: &str, attrs: Attrs) {
        self.attrs.insert(id.to_owned(), attrs);
    }

    /// What resource `id` gives, if recorded.
    pub fn attrs(&self, id: &str) -> Option<&Attrs> {
        self.attrs.get(id)
    }

    /// Whether resource `id` exists under its `Condition` (no condition: it does).
    pub fn exists(&self, id: &str) -> bool {
        match self.template.field(id, "Condition").and_then(Yaml::as_str) {
            Some(c) => self.conditions.get(c).copied().unwrap_or(false),
            None => true,
        }
    }

    fn condition(&self, name: &str, depth: usize) -> R<bool> {
        if let Some(v) = self.conditions.get(name) {
            return Ok(*v);
        }
        if depth > 32 {
            return bad(format!("condition {name} refers to itself"));
        }
        let Some(def) = self.template.conditions.get(name) else {
            return bad(format!("there is no condition {name}"));
        };
        self.truth(def, depth + 1)
    }

    fn truth(&self, v: &Yaml, depth: usize) -> R<bool> {
        if let Some((f, arg)) = intrinsic(v)
            && f == "Condition"
        {
            let Some(name) = arg.as_str() else {
                return bad("!Condition takes a condition's name");
            };
            return self.condition(name, depth);
        }
        match self.eval(v, depth)? {
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            other => bad(format!("expected a condition, found {other:?}")),
        }
    }

    /// `v` resolved to JSON; `None` for `AWS::NoValue` (the caller leaves the field out).
    pub fn value(&self, v: &Yaml) -> R<Option<Value>> {
        self.eval(v, 0)
    }

    /// The resource `id`'s `Properties`, resolved (an empty object when it has none).
    pub fn properties(&self, id: &str) -> R<Map<String, Value>> {
        match self.template.field(id, "Properties") {
            None => Ok(Map::new()),
            Some(p) => match self.value(p)? {
                Some(Value::Object(m)) => Ok(m),
                None => Ok(Map::new()),
                Some(other) => bad(format!("Properties is not a mapping: {other}")),
            },
        }
    }

    fn eval(&self, v: &Yaml, depth: usize) -> R<Option<Value>> {
        if depth > 64 {
            return bad("the value nests too deep");
        }
        if let Some((f, arg)) = intrinsic(v) {
            return self.function(&f, arg, depth + 1);
        }
        Ok(Some(match v {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => Value::Bool(*b),
            Yaml::Number(n) => serde_json::to_value(n).unwrap_or(Value::Null),
            Yaml::String(s) => Value::String(s.clone()),
            Yaml::Sequence(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Some(x) = self.eval(item, depth + 1)? {
                        out.push(x);
                    }
                }
                Value::Array(out)
            }
            Yaml::Mapping(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Number(n) => n.to_string(),
                        Yaml::Bool(b) => b.to_string(),
                        _ => return bad(format!("a mapping key that is not text: {k:?}")),
                    };
                    if let Some(x) = self.eval(x, depth + 1)? {
                        out.insert(key, x);
                    }
                }
                Value::Object(out)
            }
            Yaml::Tagged(t) => return bad(format!("the tag {} is not served", t.tag)),
        }))
    }

    fn text(&self, v: &Yaml, depth: usize, what: &str) -> R<String> {
        match self.eval(v, depth)? {
            Some(Value::String(s)) => Ok(s),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            other => bad(format!("{what}: expected text, found {other:?}")),
        }
    }

    fn reference(&self, name: &str) -> R<Option<Value>> {
        let pseudo = match name {
            "AWS::Region" => Some(self.pseudo.region.clone()),
            "AWS::AccountId" => Some(self.pseudo.account.clone()),
            "AWS::StackName" => Some(self.pseudo.stack_name.clone()),
            "AWS::Partition" => Some("aws".to_owned()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            "AWS::NoValue" => return Ok(None),
            _ => None,
        };
        if let Some(p) = pseudo {
            return Ok(Some(Value::String(p)));
        }
        if let Some(p) = self.params.get(name) {
            return Ok(Some(p.clone()));
        }
        if !self.template.resources.contains_key(name) {
            return bad(format!(
                "!Ref {name}: no parameter or resource has that name"
            ));
        }
        match self.attrs.get(name) {
            Some(a) => Ok(Some(Value::String(a.reference.clone()))),
            None => Err(Unresolved::Pending(name.to_owned())),
        }
    }

    fn get_att(&self, id: &str, attr: &str) -> R<String> {
        if !self.template.resources.contains_key(id) {
            return bad(format!("!GetAtt {id}.{attr}: there is no resource {id}"));
        }
        let Some(a) = self.attrs.get(id) else {
            return Err(Unresolved::Pending(id.to_owned()));
        };
        a.get.get(attr).cloned().ok_or_else(|| {
            Unresolved::Bad(format!(
                "!GetAtt {id}.{attr}: the rehearsal knows {id}'s {} only",
                a.get.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    fn sub(&self, arg: &Yaml, depth: usize) -> R<String> {
        let (text, vars) = match arg {
            Yaml::String(s) => (s.clone(), Map::new()),
            Yaml::Sequence(s) if s.len() == 2 => {
                let text = self.text(&s[0], depth, "!Sub")?;
                let vars = match self.eval(&s[1], depth)? {
                    Some(Value::Object(m)) => m,
                    _ => return bad("!Sub's second item is not a mapping"),
                };
                (text, vars)
            }
            _ => return bad("!Sub takes text, or [text, mapping]"),
        };
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(len) = rest[start..].find('}') else {
                return bad(format!("!Sub {text:?}: a ${{ without its }}"));
            };
            let name = &rest[start + 2..start + len];
            rest = &rest[start + len + 1..];
            if let Some(lit) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(lit);
                out.push('}');
                continue;
            }
            let value = if let Some(v) = vars.get(name) {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            } else if let Some((id, attr)) = name.split_once('.') {
                self.get_att(id, attr)?
            } else {
                match self.reference(name)? {
                    Some(Value::String(s)) => s,
                    Some(v) => v.to_string(),
                    None => return bad(format!("!Sub {text:?}: ${{{name}}} has no value")),
                }
            };
            out.push_str(&value);
        }
        out.push_str(rest);
        Ok(out)
    }

    fn list(&self, v: &Yaml, depth: usize, what: &str) -> R<Vec<Value>> {
        match self.eval(v, depth)? {
            Some(Value::Array(a)) => Ok(a),
            other => bad(format!("{what}: expected a list, found {other:?}")),
        }
    }

    fn function(&self, f: &str, arg: &Yaml, depth: usize) -> R<Option<Value>> {
        let seq = |n: usize| -> R<&Vec<Yaml>> {
            match arg {
                Yaml::Sequence(s) if s.len() == n => Ok(s),
                _ => bad(format!("!{f} takes a list of {n}")),
            }
        };
        Ok(Some(match f {
            "Ref" => {
                let Some(name) = arg.as_str() else {
                    return bad("!Ref takes a name");
                };
                return self.reference(name);
            }
            "GetAtt" => {
                let (id, attr) = match arg {
                    Yaml::String(s) => match s.split_once('.') {
                        Some((i, a)) => (i.to_owned(), a.to_owned()),
                        None => return bad(format!("!GetAtt {s}: expected RESOURCE.ATTRIBUTE")),
                    },
                    Yaml::Sequence(s) if s.len() == 2 => (
                        self.text(&s[0], depth, "!GetAtt")?,
                        self.text(&s[1], depth, "!GetAtt")?,
                    ),
                    _ => return bad("!GetAtt takes RESOURCE.ATTRIBUTE"),
                };
                Value::String(self.get_att(&id, &attr)?)
            }
            "Sub" => Value::String(self.sub(arg, depth)?),
            "If" => {
                let s = seq(3)?;
                let Some(name) = s[0].as_str() else {
                    return bad("!If takes a condition's name first");
                };
                let pick = if self.condition(name, depth)? {
                    &s[1]
                } else {
                    &s[2]
                };
                return self.eval(pick, depth);
            }
            "Join" => {
                let s = seq(2)?;
                let sep = self.text(&s[0], depth, "!Join")?;
                let items = self.list(&s[1], depth, "!Join")?;
                let parts: Vec<String> = items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect();
                Value::String(parts.join(&sep))
            }
            "Select" => {
                let s = seq(2)?;
                let i = self.text(&s[0], depth, "!Select")?;
                let items = self.list(&s[1], depth, "!Select")?;
                let i: usize = i
                    .parse()
                    .map_err(|_| Unresolved::Bad(format!("!Select {i:?}: not an index")))?;
                match items.into_iter().nth(i) {
                    Some(v) => v,
                    None => return bad(format!("!Select {i}: the list is shorter")),
                }
            }
            "Equals" => {
                let s = seq(2)?;
                Value::Bool(self.eval(&s[0], depth)? == self.eval(&s[1], depth)?)
            }
            "Not" => Value::Bool(!self.truth(&seq(1)?[0], depth)?),
            "And" | "Or" => {
                let Yaml::Sequence(s) = arg else {
                    return bad(format!("!{f} takes a list"));
                };
                let mut all = Vec::new();
                for c in s {
                    all.push(self.truth(c, depth)?);
                }
                Value::Bool(if f == "And" {
                    all.iter().all(|b| *b)
                } else {
                    all.iter().any(|b| *b)
                })
            }
            "Condition" => {
                let Some(name) = arg.as_str() else {
                    return bad("!Condition takes a condition's name");
                };
                Value::Bool(self.condition(name, depth)?)
            }
            other => {
                return bad(format!(
                    "the function {other} is not served by the rehearsal"
                ));
            }
        }))
    }
}

/// The intrinsic function of `v`, short form (`!Ref X`) or long (`{"Fn::Sub": …}`), and
/// its argument.
fn intrinsic(v: &Yaml) -> Option<(String, &Yaml)> {
    match v {
        Yaml::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        Yaml::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            if k == "Ref" || k == "Condition" {
                Some((k.to_owned(), arg))
            } else {
                k.strip_prefix("Fn::").map(|f| (f.to_owned(), arg))
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = r#"
Parameters:
  Stage:
    Type: String
    Default: dev
    AllowedPattern: "^[a-z0-9-]{1,16}$"
  Receives:
    Type: Number
    Default: 10
    MinValue: 5
  Topic:
    Type: String
  Subnets:
    Type: CommaDelimitedList
    Default: ""
Conditions:
  InVpc: !Not [!Equals [!Join ["", !Ref Subnets], ""]]
  Both: !And [!Condition InVpc, !Equals [!Ref Stage, prod]]
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "q-${Stage}"
      Redrive:
        deadLetterTargetArn: !GetAtt Dlq.Arn
        maxReceiveCount: !Ref Receives
  Dlq:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Condition: InVpc
    Properties:
      Vpc: !If [InVpc, {Subnets: !Ref Subnets}, !Ref AWS::NoValue]
      Env:
        A: !Sub ["${X}-${AWS::Region}-${!Literal}", {X: !Ref Topic}]
        B: {"Fn::Join": [",", ["a", {"Ref": "Stage"}]]}
        C: !Select [1, [x, y]]
"#;

    fn resolver(overrides: &[(&str, &str)]) -> Result<Resolver, TemplateError> {
        let t = Template::parse(T, Path::new("t.yaml")).unwrap();
        let o = overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Resolver::new(
            t,
            Pseudo {
                region: "eu-west-1".into(),
                account: "123456789012".into(),
                stack_name: "s".into(),
            },
            &o,
        )
    }

    #[test]
    fn parameters_default_override_and_are_checked() {
        let e = resolver(&[]).unwrap_err();
        assert_eq!(e.what, "parameter Topic");
        assert!(e.message.contains("--parameter-overrides Topic="), "{e}");
        let e = resolver(&[("Topic", "t"), ("Stage", "Bad Stage")]).unwrap_err();
        assert!(e.to_string().contains("AllowedPattern"), "{e}");
        let e = resolver(&[("Topic", "t"), ("Receives", "2")]).unwrap_err();
        assert!(e.to_string().contains("MinValue"), "{e}");
        let e = resolver(&[("Topic", "t"), ("Nope", "2")]).unwrap_err();
        assert_eq!(e.what, "parameter Nope");
        let r = resolver(&[("Topic", "t")]).unwrap();
        assert_eq!(r.parameter("Stage").as_deref(), Some("dev"));
        assert_eq!(r.parameter("Receives").as_deref(), Some("10"));
    }

    #[test]
    fn conditions_and_functions_resolve_and_pending_resources_are_named() {
        let mut r = resolver(&[("Topic", "t")]).unwrap();
        assert!(!r.exists("Fn"), "no subnets: not in a VPC");
        assert_eq!(
            r.properties("Queue").unwrap_err(),
            Unresolved::Pending("Dlq".into())
        );
        r.set("Dlq", Attrs::new("url", &[("Arn", "arn:dlq".to_owned())]));
        let q = r.properties("Queue").unwrap();
        assert_eq!(q["QueueName"], "q-dev");
        assert_eq!(q["Redrive"]["deadLetterTargetArn"], "arn:dlq");
        assert_eq!(q["Redrive"]["maxReceiveCount"], "10");
        let f = r.properties("Fn").unwrap();
        assert!(f.get("Vpc").is_none(), "NoValue drops the field: {f:?}");
        assert_eq!(f["Env"]["A"], "t-eu-west-1-${Literal}");
        assert_eq!(f["Env"]["B"], "a,dev");
        assert_eq!(f["Env"]["C"], "y");

        let r = resolver(&[("Topic", "t"), ("Subnets", "a,b")]).unwrap();
        assert!(r.exists("Fn"));
        assert_eq!(r.properties("Fn").unwrap()["Vpc"]["Subnets"][1], "b");
    }

    #[test]
    fn unknown_functions_and_attributes_are_refused_with_their_name() {
        let mut r = resolver(&[("Topic", "t")]).unwrap();
        let y: Yaml = yaml_serde::from_str("!FindInMap [a, b, c]").unwrap();
        assert!(r.value(&y).unwrap_err().to_string().contains("FindInMap"));
        r.set("Dlq", Attrs::new("url", &[]));
        let y: Yaml = yaml_serde::from_str("!GetAtt Dlq.Arn").unwrap();
        assert!(r.value(&y).unwrap_err().to_string().contains("Dlq.Arn"));
        let y: Yaml = yaml_serde::from_str("!Ref Nothing").unwrap();
        assert!(r.value(&y).unwrap_err().to_string().contains("Nothing"));
    }
}

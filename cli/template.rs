//! `template.yaml`, read for what the CLI needs of it: which state machine a definition file
//! is, and its `DefinitionSubstitutions` bound to stand-in ARNs of the resources they name,
//! so that `a2a asl validate statemachines/…` checks the project's own files as deployed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use yaml_serde::Value;

use crate::CliError;

/// The account, region and partition of every stand-in ARN.
const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "123456789012";

/// A parsed SAM/CloudFormation template: the stack rehearsal's reader
/// ([`a2a_stack::template::Template`]), with stand-ins for what only a deployment knows.
#[derive(Debug)]
pub struct Template(a2a_stack::template::Template);

/// A state machine of the template, with its substitutions bound.
#[derive(Debug)]
pub struct Bound {
    /// The state machine's logical id.
    pub resource: String,
    /// `${Name}` → a stand-in of what the template gives it.
    pub substitutions: HashMap<String, String>,
}

impl Template {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, CliError> {
        a2a_stack::template::Template::read(path)
            .map(Self)
            .map_err(Self::refused)
    }

    #[cfg(test)]
    fn parse(text: &str, path: &Path) -> Result<Self, CliError> {
        a2a_stack::template::Template::parse(text, path)
            .map(Self)
            .map_err(Self::refused)
    }

    /// A template that cannot be read or parsed, as the input error that names it.
    fn refused(e: a2a_stack::template::TemplateError) -> CliError {
        CliError::input(
            format!("{} {}", e.file, e.message),
            "check the path of the template, or fix it where the parser says",
        )
    }

    /// The template a definition file belongs to: `template.yaml` in the file's folder or
    /// the one above it (where `statemachines/` sits beside it).
    pub fn near(definition: &Path) -> Option<PathBuf> {
        let dir = definition.parent()?;
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        [dir.join("template.yaml"), dir.join("../template.yaml")]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// The state machine whose `DefinitionUri` is `definition`, with its substitutions.
    pub fn state_machine(&self, definition: &Path) -> Option<Bound> {
        let want = std::fs::canonicalize(definition).ok()?;
        self.0.resources().into_iter().find_map(|(id, _)| {
            let props = self.0.field(&id, "Properties")?;
            let uri = props.get("DefinitionUri")?.as_str()?;
            if std::fs::canonicalize(self.0.base().join(uri)).ok()? != want {
                return None;
            }
            let substitutions = match props.get("DefinitionSubstitutions") {
                Some(Value::Mapping(m)) => m
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), self.stand_in(v))))
                    .collect(),
                _ => HashMap::new(),
            };
            Some(Bound {
                resource: id,
                substitutions,
            })
        })
    }

    /// What a value would be once deployed, near enough to check a definition with.
    fn stand_in(&self, v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Tagged(t) => {
                let arg = &t.value;
                match t.tag.to_string().trim_start_matches('!') {
                    "GetAtt" => {
                        let target = match arg {
                            Value::String(s) => s.split('.').next().unwrap_or(s).to_owned(),
                            Value::Sequence(s) => {
                                s.first().and_then(Value::as_str).unwrap_or("").to_owned()
                            }
                            _ => String::new(),
                        };
                        self.arn(&target)
                    }
                    "Ref" => self.reference(arg.as_str().unwrap_or("")),
                    "Sub" => self.sub(arg.as_str().unwrap_or("")),
                    _ => format!("unresolved-{}", t.tag),
                }
            }
            _ => "unresolved".to_owned(),
        }
    }

    /// `!Ref NAME`: a parameter's default, or a resource's ARN.
    fn reference(&self, name: &str) -> String {
        match name {
            "AWS::Region" => return REGION.to_owned(),
            "AWS::AccountId" => return ACCOUNT.to_owned(),
            "AWS::Partition" => return "aws".to_owned(),
            _ => {}
        }
        if self.0.has_parameter(name) {
            return self
                .0
                .parameter(name, "Default")
                .map(|d| self.stand_in(d))
                .unwrap_or_else(|| name.to_owned());
        }
        self.arn(name)
    }

    /// `!Sub "…${X}…"` with each `${X}` a stand-in.
    fn sub(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                break;
            };
            let name = &rest[start + 2..start + end];
            out.push_str(&self.reference(name.split('.').next().unwrap_or(name)));
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A stand-in ARN of the resource `id`, in the shape of its type.
    fn arn(&self, id: &str) -> String {
        let kind = self
            .0
            .resources()
            .into_iter()
            .find(|(r, _)| r == id)
            .map(|(_, kind)| kind)
            .unwrap_or_default();
        let (service, path) = match kind.as_str() {
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => ("lambda", "function:"),
            "AWS::StepFunctions::Activity" => ("states", "activity:"),
            "AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine" => {
                ("states", "stateMachine:")
            }
            "AWS::DynamoDB::Table" => ("dynamodb", "table/"),
            "AWS::SQS::Queue" => ("sqs", ""),
            "AWS::S3::Bucket" => return format!("arn:aws:s3:::{}", id.to_lowercase()),
            _ => ("cloudformation", "resource/"),
        };
        format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{path}{id}")
    }
}

/// The `${Name}` placeholders that stand as a whole `Resource` of a Task (which a stand-in
/// ARN may fill when no template names the file).
pub fn resource_placeholders(definition: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let name = x
                        .as_str()
                        .and_then(|s| s.strip_prefix("${"))
                        .and_then(|s| s.strip_suffix('}'));
                    match name {
                        Some(n) if k == "Resource" && !out.iter().any(|o| o == n) => {
                            out.push(n.to_owned())
                        }
                        _ => walk(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str(definition) {
        walk(&v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Stage:
    Type: String
    Default: dev
Resources:
  FreezeFunction:
    Type: AWS::Serverless::Function
  FreezeActivity:
    Type: AWS::StepFunctions::Activity
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: machine.asl.json
      DefinitionSubstitutions:
        Freeze: !GetAtt FreezeFunction.Arn
        FreezeTask: !Ref FreezeActivity
        Name: !Sub "a2a-${Stage}-${AWS::Region}"
        Plain: text
"#;

    #[test]
    fn substitutions_bind_to_arns_of_their_resources_types() {
        let dir = tempfile::tempdir().unwrap();
        let def = dir.path().join("machine.asl.json");
        std::fs::write(&def, "{}").unwrap();
        let path = dir.path().join("template.yaml");
        std::fs::write(&path, TEMPLATE).unwrap();
        assert_eq!(Template::near(&def).as_deref(), Some(path.as_path()));
        let t = Template::read(&path).unwrap();
        let b = t.state_machine(&def).expect("the file is the machine's");
        assert_eq!(b.resource, "Machine");
        let s = &b.substitutions;
        assert_eq!(
            s["Freeze"],
            "arn:aws:lambda:eu-west-1:123456789012:function:FreezeFunction"
        );
        assert_eq!(
            s["FreezeTask"],
            "arn:aws:states:eu-west-1:123456789012:activity:FreezeActivity"
        );
        assert_eq!(s["Name"], "a2a-dev-eu-west-1");
        assert_eq!(s["Plain"], "text");
        // Another file is not this template's.
        let other = dir.path().join("other.asl.json");
        std::fs::write(&other, "{}").unwrap();
        assert!(t.state_machine(&other).is_none());
    }

    #[test]
    fn a_template_that_is_not_yaml_is_an_input_error_naming_it() {
        let e = Template::parse("a: [", Path::new("t.yaml")).unwrap_err();
        assert!(e.to_string().contains("t.yaml is not YAML"), "{e}");
    }

    #[test]
    fn only_whole_resource_placeholders_are_listed() {
        let def = r#"{"States": {"A": {"Type": "Task", "Resource": "${Freeze}",
            "Parameters": {"x": "${Other}"}}, "B": {"Type": "Task", "Resource": "${Freeze}"}}}"#;
        assert_eq!(resource_placeholders(def), vec!["Freeze".to_owned()]);
    }
}

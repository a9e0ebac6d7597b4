//! Paths (`$.a.b`, `$$.Execution.Id`), reference paths (for `ResultPath`), and payload
//! templates (`Parameters`, `ResultSelector`, `ItemSelector`, with their `.$` keys).

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::error::{StateError, names};
use crate::intrinsic::Expr;

/// Where `$$` paths read from: the context object, built only when a path asks for it.
pub trait ContextSource: Sync {
    /// The context object (`Execution`, `StateMachine`, `State`, `Map`, ...).
    fn context(&self) -> Value;
}

impl ContextSource for Value {
    fn context(&self) -> Value {
        self.clone()
    }
}

/// A compiled JSONPath that reads either the state's data (`$`) or the context (`$$`).
#[derive(Debug, Clone)]
pub struct Path {
    text: String,
    context: bool,
    /// `None` for the bare root, which needs no query.
    compiled: Option<JsonPath>,
    /// A definite path selects one node; an indefinite one (wildcards, filters,
    /// slices, descent) selects a list, returned as an array.
    definite: bool,
}

impl Path {
    /// Compiles a path; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (context, rest) = if let Some(r) = text.strip_prefix("$$") {
            (true, r)
        } else if let Some(r) = text.strip_prefix('$') {
            (false, r)
        } else {
            return Err(format!("'{text}' is not a path: a path starts with '$'"));
        };
        let compiled = if rest.is_empty() {
            None
        } else {
            let q = format!("${}", normalize(rest));
            Some(
                JsonPath::parse(&q)
                    .map_err(|e| format!("'{text}' is not a valid JSONPath: {e}"))?,
            )
        };
        let definite = !(rest.contains('*')
            || rest.contains("..")
            || rest.contains('?')
            || bracket_has(rest, &[':', ',']));
        Ok(Self {
            text: text.to_owned(),
            context,
            compiled,
            definite,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it reads the context object.
    pub fn is_context(&self) -> bool {
        self.context
    }

    /// Selects from `input` (or the context); `None` when nothing matches.
    pub fn select(&self, input: &Value, ctx: &dyn ContextSource) -> Option<Value> {
        if self.context {
            let c = ctx.context();
            self.select_in(&c)
        } else {
            self.select_in(input)
        }
    }

    fn select_in(&self, v: &Value) -> Option<Value> {
        let Some(q) = &self.compiled else {
            return Some(v.clone());
        };
        let nodes = q.query(v);
        if self.definite {
            nodes.first().cloned()
        } else {
            Some(Value::Array(nodes.iter().map(|n| (*n).clone()).collect()))
        }
    }

    /// Selects, or fails with `States.Runtime` naming the path and the field.
    pub fn get(
        &self,
        input: &Value,
        ctx: &dyn ContextSource,
        field: &str,
    ) -> Result<Value, StateError> {
        self.select(input, ctx).ok_or_else(|| {
            StateError::runtime(format!(
                "Invalid path '{}' in {field}: the path references a value that does not exist in the {}",
                self.text,
                if self.context { "context object" } else { "input" }
            ))
        })
    }
}

/// Step Functions reads dot names the way Jayway JsonPath does, so `$.delivery-partner`
/// is one name; RFC 9535 shorthand is stricter. Such names are rewritten as `['...']`.
fn normalize(rest: &str) -> String {
    let shorthand = |n: &str| {
        let mut cs = n.chars();
        cs.next()
            .is_some_and(|c| c.is_alphabetic() || c == '_' || !c.is_ascii())
            && cs.all(|c| c.is_alphanumeric() || c == '_' || !c.is_ascii())
    };
    let mut out = String::with_capacity(rest.len() + 8);
    let mut nesting = Nesting::default();
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match nesting.take(c) {
            Some('.') if nesting.depth == 0 => {
                let mut j = i + 1;
                let dots = if chars.get(j) == Some(&'.') {
                    j += 1;
                    ".."
                } else {
                    "."
                };
                let start = j;
                while j < chars.len() && chars[j] != '.' && chars[j] != '[' {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                if name == "*" || name.is_empty() || shorthand(&name) {
                    out.push_str(dots);
                    out.push_str(&name);
                } else {
                    if dots == ".." {
                        out.push_str("..");
                    }
                    out.push_str("['");
                    out.push_str(&name.replace('\\', "\\\\").replace('\'', "\\'"));
                    out.push_str("']");
                }
                i = j;
                continue;
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Where a path's characters stand as it is read: how deep in brackets, and in which
/// quote inside them.
#[derive(Default)]
struct Nesting {
    depth: i32,
    quote: Option<char>,
}

impl Nesting {
    /// Reads `c`: `Some(c)` when it is neither a bracket nor quoted (nor a quote).
    fn take(&mut self, c: char) -> Option<char> {
        match (self.quote, c) {
            (Some(q), c) if c == q => self.quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') if self.depth > 0 => self.quote = Some(c),
            (None, '[') => self.depth += 1,
            (None, ']') => self.depth -= 1,
            (None, c) => return Some(c),
        }
        None
    }
}

fn bracket_has(s: &str, chars: &[char]) -> bool {
    let mut nesting = Nesting::default();
    s.chars().any(|c| {
        nesting
            .take(c)
            .is_some_and(|c| nesting.depth > 0 && chars.contains(&c))
    })
}

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A reference path: a definite path into the state's data, where `ResultPath` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefPath {
    text: String,
    segs: Vec<Seg>,
}

impl RefPath {
    /// Parses `$`, `$.a.b`, `$['a b']`, `$.list[2]`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("'{text}' is not a reference path: {why}");
        if text.starts_with("$$") {
            return Err(bad("the context object cannot be written"));
        }
        let Some(mut rest) = text.strip_prefix('$') else {
            return Err(bad("it must start with '$'"));
        };
        let mut segs = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let name = &r[..end];
                if name.is_empty() || name.contains(['*', '?', '@', ']', '\'', '"']) {
                    return Err(bad("a field name is empty or holds an operator"));
                }
                segs.push(Seg::Key(name.to_owned()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let Some(end) = r.find(']') else {
                    return Err(bad("a '[' is not closed"));
                };
                let inner = r[..end].trim();
                if let Some(q) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    segs.push(Seg::Key(q.to_owned()));
                } else if let Ok(n) = inner.parse::<usize>() {
                    segs.push(Seg::Index(n));
                } else {
                    return Err(bad("only a quoted name or an index may stand in brackets"));
                }
                rest = &r[end + 1..];
            } else {
                return Err(bad("expected '.' or '['"));
            }
        }
        Ok(Self {
            text: text.to_owned(),
            segs,
        })
    }

    /// Writes `value` into a copy of `input` at this path, creating missing objects.
    pub fn write(&self, input: &Value, value: Value) -> Result<Value, StateError> {
        if self.segs.is_empty() {
            return Ok(value);
        }
        let mut root = input.clone();
        let mut node = &mut root;
        let fail = |why: String| {
            StateError::new(
                names::RESULT_PATH_MATCH_FAILURE,
                format!(
                    "Unable to apply ResultPath '{}' to the state's input: {why}",
                    self.text
                ),
            )
        };
        let last = self.segs.len() - 1;
        for (i, seg) in self.segs.iter().enumerate() {
            let here = node;
            node = match seg {
                Seg::Key(k) => {
                    let Value::Object(m) = here else {
                        return Err(fail(format!(
                            "'{k}' is looked up in a value that is not an object"
                        )));
                    };
                    if i == last {
                        m.insert(k.clone(), value);
                        return Ok(root);
                    }
                    m.entry(k.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                }
                Seg::Index(n) => {
                    let Value::Array(a) = here else {
                        return Err(fail(format!(
                            "[{n}] is looked up in a value that is not an array"
                        )));
                    };
                    let Some(slot) = a.get_mut(*n) else {
                        return Err(fail(format!("index {n} is out of range")));
                    };
                    if i == last {
                        *slot = value;
                        return Ok(root);
                    }
                    slot
                }
            };
        }
        Ok(root)
    }
}

/// A compiled payload template: the value of `Parameters`, `ResultSelector` or
/// `ItemSelector`, whose keys ending in `.$` take a path or an intrinsic function.
#[derive(Debug, Clone)]
pub enum Template {
    /// Copied as written.
    Literal(Value),
    /// An object, some of whose fields are computed.
    Object(Vec<(String, Template)>),
    /// An array whose elements may hold computed objects.
    Array(Vec<Template>),
    /// The value a path selects.
    Path(Path),
    /// The value an intrinsic function returns.
    Call(Expr),
}

impl Template {
    /// Compiles a template; errors name the key (as `a.b.$`) and what is wrong.
    pub fn compile(v: &Value) -> Result<Self, (String, String)> {
        match v {
            Value::Object(m) => {
                let mut fields = Vec::with_capacity(m.len());
                for (k, val) in m {
                    if let Some(name) = k.strip_suffix(".$") {
                        let Value::String(s) = val else {
                            return Err((k.clone(), "a key ending in '.$' needs a string: a path or an intrinsic function".into()));
                        };
                        let t = if s.starts_with('$') {
                            Template::Path(Path::parse(s).map_err(|e| (k.clone(), e))?)
                        } else if s.starts_with("States.") {
                            Template::Call(Expr::parse(s).map_err(|e| (k.clone(), e))?)
                        } else {
                            return Err((
                                k.clone(),
                                format!("'{s}' is neither a path nor an intrinsic function"),
                            ));
                        };
                        fields.push((name.to_owned(), t));
                    } else {
                        let t = Template::compile(val).map_err(|(p, e)| (format!("{k}.{p}"), e))?;
                        fields.push((k.clone(), t));
                    }
                }
                Ok(Template::Object(fields))
            }
            Value::Array(a) => {
                let items = a
                    .iter()
                    .enumerate()
                    .map(|(i, x)| Template::compile(x).map_err(|(p, e)| (format!("[{i}].{p}"), e)))
                    .collect::<Result<Vec<_>, _>>()?;
                if items.iter().all(|t| matches!(t, Template::Literal(_))) {
                    Ok(Template::Literal(v.clone()))
                } else {
                    Ok(Template::Array(items))
                }
            }
            other => Ok(Template::Literal(other.clone())),
        }
    }

    /// Builds the payload from `input` and the context. `field` names the template in errors.
    pub fn render(
        &self,
        input: &Value,
        ctx: &dyn ContextSource,
        field: &str,
    ) -> Result<Value, StateError> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    m.insert(k.clone(), t.render(input, ctx, field)?);
                }
                Ok(Value::Object(m))
            }
            Template::Array(items) => items
                .iter()
                .map(|t| t.render(input, ctx, field))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Template::Path(p) => p.get(input, ctx, field),
            Template::Call(e) => e.eval(input, ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_names_are_bracketed_and_quoted_brackets_are_left_alone() {
        assert_eq!(
            normalize(".a.delivery-partner['x.y'].b..c-d"),
            ".a['delivery-partner']['x.y'].b..['c-d']"
        );
        assert!(bracket_has("$.a[1:2]", &[':']));
        assert!(!bracket_has("$['a:b']", &[':']), "quoted");
        assert!(!bracket_has("$.a:b", &[':']), "outside brackets");
        assert!(bracket_has("$['a', 'b']", &[':', ',']));
    }
    use serde_json::json;

    fn no_ctx() -> Value {
        json!({"Execution": {"Id": "arn:x"}})
    }

    #[test]
    fn definite_and_indefinite_paths() {
        let v = json!({"a": {"b": [1, 2, 3]}, "c": [{"d": 1}, {"d": 2}]});
        let ctx = no_ctx();
        assert_eq!(Path::parse("$").unwrap().select(&v, &ctx), Some(v.clone()));
        assert_eq!(
            Path::parse("$.a.b[1]").unwrap().select(&v, &ctx),
            Some(json!(2))
        );
        assert_eq!(
            Path::parse("$.c[*].d").unwrap().select(&v, &ctx),
            Some(json!([1, 2]))
        );
        assert_eq!(Path::parse("$.nope").unwrap().select(&v, &ctx), None);
        assert_eq!(
            Path::parse("$$.Execution.Id").unwrap().select(&v, &ctx),
            Some(json!("arn:x"))
        );
        let e = Path::parse("$.nope")
            .unwrap()
            .get(&v, &ctx, "InputPath")
            .unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert!(Path::parse("a.b").is_err());
        let dashed = json!({"delivery-partner": "UQS", "a b": {"c-d": 1}});
        assert_eq!(
            Path::parse("$.delivery-partner")
                .unwrap()
                .select(&dashed, &ctx),
            Some(json!("UQS"))
        );
        assert_eq!(
            Path::parse("$['a b'].c-d").unwrap().select(&dashed, &ctx),
            Some(json!(1))
        );
        assert!(Path::parse("$.a[").is_err());
    }

    #[test]
    fn result_path_writes_create_objects_and_refuse_non_objects() {
        let input = json!({"a": 1, "list": [1, 2]});
        let p = RefPath::parse("$.x.y").unwrap();
        assert_eq!(
            p.write(&input, json!(5)).unwrap(),
            json!({"a": 1, "list": [1, 2], "x": {"y": 5}})
        );
        assert_eq!(
            RefPath::parse("$")
                .unwrap()
                .write(&input, json!(7))
                .unwrap(),
            json!(7)
        );
        assert_eq!(
            RefPath::parse("$.list[1]")
                .unwrap()
                .write(&input, json!(9))
                .unwrap(),
            json!({"a": 1, "list": [1, 9]})
        );
        assert_eq!(
            RefPath::parse("$['a b']")
                .unwrap()
                .write(&json!({}), json!(1))
                .unwrap(),
            json!({"a b": 1})
        );
        let e = RefPath::parse("$.a.b")
            .unwrap()
            .write(&input, json!(1))
            .unwrap_err();
        assert_eq!(e.error, "States.ResultPathMatchFailure");
        assert!(RefPath::parse("$.a[*]").is_err());
        assert!(RefPath::parse("$$.x").is_err());
    }

    #[test]
    fn templates_fill_dollar_keys_recursively() {
        let t = Template::compile(&json!({
            "flagged": true,
            "parts": {"first.$": "$.vals[0]", "last.$": "$.vals[-1:]"},
            "list": [{"id.$": "$.id"}],
            "exec.$": "$$.Execution.Id",
            "n.$": "States.ArrayLength($.vals)"
        }))
        .unwrap();
        let out = t
            .render(
                &json!({"vals": [1, 2, 3], "id": "x"}),
                &no_ctx(),
                "Parameters",
            )
            .unwrap();
        assert_eq!(
            out,
            json!({"flagged": true, "parts": {"first": 1, "last": [3]}, "list": [{"id": "x"}], "exec": "arn:x", "n": 3})
        );
        assert!(Template::compile(&json!({"a.$": 1})).is_err());
        assert!(Template::compile(&json!({"a.$": "nope"})).is_err());
        assert!(
            Template::compile(&json!({"a": {"b.$": "States.Nope()"}}))
                .unwrap_err()
                .0
                == "a.b.$"
        );
    }
}

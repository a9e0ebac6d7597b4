//! The 18 intrinsic functions (`States.Format(...)` and friends): a parser, run once at
//! load time, and an evaluator.

use base64::Engine as _;
use serde_json::{Number, Value};

use crate::error::StateError;
use crate::path::{ContextSource, Path};

/// How deep calls may nest, as Step Functions allows.
const MAX_NESTING: usize = 10;
/// The longest string Base64 and Hash accept.
const MAX_STRING: usize = 10_000;
/// The most elements ArrayRange may build.
const MAX_RANGE: i64 = 1000;

/// One argument of a call.
#[derive(Debug, Clone)]
pub enum Arg {
    /// A quoted string.
    Str {
        /// As written, escapes kept: `States.Format` tells `\{` from `{`.
        raw: String,
        /// With its escapes decoded.
        text: String,
    },
    /// A number, boolean or null literal.
    Lit(Value),
    /// A path into the input or the context.
    Path(Path),
    /// A nested call.
    Call(Expr),
}

/// A parsed intrinsic function call.
#[derive(Debug, Clone)]
pub struct Expr {
    /// The name without `States.`.
    pub name: String,
    /// The arguments, in order.
    pub args: Vec<Arg>,
}

/// (name, least arguments, most arguments)
const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("Format", 1, usize::MAX),
    ("StringToJson", 1, 1),
    ("JsonToString", 1, 1),
    ("Array", 0, usize::MAX),
    ("ArrayPartition", 2, 2),
    ("ArrayContains", 2, 2),
    ("ArrayRange", 3, 3),
    ("ArrayGetItem", 2, 2),
    ("ArrayLength", 1, 1),
    ("ArrayUnique", 1, 1),
    ("Base64Encode", 1, 1),
    ("Base64Decode", 1, 1),
    ("Hash", 2, 2),
    ("JsonMerge", 3, 3),
    ("MathRandom", 2, 3),
    ("MathAdd", 2, 2),
    ("StringSplit", 2, 2),
    ("UUID", 0, 0),
];

impl Expr {
    /// Parses a whole call; the message says what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            src: text,
            i: 0,
        };
        let e = p.call(1)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!(
                "unexpected text after the call at offset {} in '{text}'",
                p.i
            ));
        }
        Ok(e)
    }

    /// Evaluates the call against the input and the context.
    pub fn eval(&self, input: &Value, ctx: &dyn ContextSource) -> Result<Value, StateError> {
        let fname = format!("States.{}", self.name);
        let fail = |why: String| StateError::intrinsic(format!("{fname}: {why}"));
        if self.name == "Format" {
            return format(self, input, ctx).map_err(fail);
        }
        let mut a = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            a.push(arg_value(arg, input, ctx)?);
        }
        call(&self.name, a).map_err(fail)
    }
}

fn arg_value(arg: &Arg, input: &Value, ctx: &dyn ContextSource) -> Result<Value, StateError> {
    Ok(match arg {
        Arg::Str { text, .. } => Value::String(text.clone()),
        Arg::Lit(v) => v.clone(),
        Arg::Path(p) => p.get(input, ctx, "an intrinsic function argument")?,
        Arg::Call(e) => e.eval(input, ctx)?,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn call(&mut self, depth: usize) -> Result<Expr, String> {
        if depth > MAX_NESTING {
            return Err(format!(
                "more than {MAX_NESTING} nested intrinsic functions"
            ));
        }
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'.')
        {
            self.i += 1;
        }
        let full = &self.src[start..self.i];
        let Some(name) = full.strip_prefix("States.") else {
            return Err(format!(
                "'{full}' is not an intrinsic function (they start with 'States.')"
            ));
        };
        let Some(&(_, min, max)) = FUNCTIONS.iter().find(|f| f.0 == name) else {
            return Err(format!("unknown intrinsic function '{full}'"));
        };
        self.ws();
        if self.s.get(self.i) != Some(&b'(') {
            return Err(format!("'(' expected after '{full}'"));
        }
        self.i += 1;
        let mut args = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b')') {
            self.i += 1;
        } else {
            loop {
                args.push(self.arg(depth)?);
                self.ws();
                match self.s.get(self.i) {
                    Some(b',') => self.i += 1,
                    Some(b')') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(format!("',' or ')' expected in the arguments of '{full}'")),
                }
            }
        }
        if args.len() < min || args.len() > max {
            let want = if min == max {
                format!("{min}")
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(format!(
                "'{full}' takes {want} argument(s), not {}",
                args.len()
            ));
        }
        Ok(Expr {
            name: name.to_owned(),
            args,
        })
    }

    fn arg(&mut self, depth: usize) -> Result<Arg, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'\'') => self.string(),
            Some(b'$') => {
                let start = self.i;
                let mut bracket = 0i32;
                let mut quote: Option<u8> = None;
                while self.i < self.s.len() {
                    let c = self.s[self.i];
                    match (quote, c) {
                        (Some(q), c) if c == q => quote = None,
                        (Some(_), _) => {}
                        (None, b'\'' | b'"') if bracket > 0 => quote = Some(c),
                        (None, b'[') => bracket += 1,
                        (None, b']') => bracket -= 1,
                        (None, b',' | b')') if bracket == 0 => break,
                        _ => {}
                    }
                    self.i += 1;
                }
                let text = self.src[start..self.i].trim();
                Ok(Arg::Path(Path::parse(text)?))
            }
            Some(b'S') => Ok(Arg::Call(self.call(depth + 1)?)),
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len() && !matches!(self.s[self.i], b',' | b')') {
                    self.i += 1;
                }
                let word = self.src[start..self.i].trim();
                match word {
                    "true" => Ok(Arg::Lit(Value::Bool(true))),
                    "false" => Ok(Arg::Lit(Value::Bool(false))),
                    "null" => Ok(Arg::Lit(Value::Null)),
                    _ => match serde_json::from_str::<Value>(word) {
                        Ok(v @ Value::Number(_)) => Ok(Arg::Lit(v)),
                        _ => Err(format!("'{word}' is not a valid argument")),
                    },
                }
            }
            None => Err("the call is not closed".into()),
        }
    }

    fn string(&mut self) -> Result<Arg, String> {
        self.i += 1;
        let start = self.i;
        let mut text = String::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("a quoted string is not closed".into());
            };
            match c {
                b'\\' => {
                    let Some(&n) = self.s.get(self.i + 1) else {
                        return Err("a '\\' ends the text".into());
                    };
                    if !matches!(n, b'\'' | b'{' | b'}' | b'\\') {
                        return Err(format!(
                            "'\\{}' is not an escape (only \\' \\{{ \\}} \\\\)",
                            n as char
                        ));
                    }
                    text.push(n as char);
                    self.i += 2;
                }
                b'\'' => {
                    let raw = self.src[start..self.i].to_owned();
                    self.i += 1;
                    return Ok(Arg::Str { raw, text });
                }
                _ => {
                    let ch = self.src[self.i..].chars().next().unwrap_or('\0');
                    text.push(ch);
                    self.i += ch.len_utf8().max(1);
                }
            }
        }
    }
}

/// `States.Format`: `{}` placeholders, `\{` `\}` literal braces in a quoted template.
fn format(e: &Expr, input: &Value, ctx: &dyn ContextSource) -> Result<Value, String> {
    let (template, escaped) = match &e.args[0] {
        Arg::Str { raw, .. } => (raw.clone(), true),
        other => match arg_value(other, input, ctx).map_err(|x| x.cause)? {
            Value::String(s) => (s, false),
            v => return Err(format!("the template must be a string, not {v}")),
        },
    };
    let mut values = Vec::new();
    for a in &e.args[1..] {
        let v = arg_value(a, input, ctx).map_err(|x| x.cause)?;
        values.push(match v {
            Value::String(s) => s,
            Value::Number(_) | Value::Bool(_) | Value::Null => v.to_string(),
            other => {
                return Err(format!(
                    "arguments must be strings, numbers, booleans or null, not {other}"
                ));
            }
        });
    }
    let mut out = String::new();
    let mut used = 0;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if escaped => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                let Some(v) = values.get(used) else {
                    return Err(format!(
                        "the template has more '{{}}' than the {} argument(s) given",
                        values.len()
                    ));
                };
                out.push_str(v);
                used += 1;
            }
            c => out.push(c),
        }
    }
    if used != values.len() {
        return Err(format!(
            "the template has {used} '{{}}' but {} argument(s) were given",
            values.len()
        ));
    }
    Ok(Value::String(out))
}

fn int(v: &Value, what: &str) -> Result<i64, String> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else {
                // Step Functions rounds non-integer numbers to the nearest integer.
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.is_finite() && f.abs() < 9.0e15 {
                    Ok(f.round() as i64)
                } else {
                    Err(format!("{what} must be an integer, not {v}"))
                }
            }
        }
        _ => Err(format!("{what} must be an integer, not {v}")),
    }
}

fn strict_int(v: &Value, what: &str) -> Result<i64, String> {
    match v.as_i64() {
        Some(i) => Ok(i),
        None => Err(format!("{what} must be an integer, not {v}")),
    }
}

fn string<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{what} must be a string, not {v}"))
}

fn array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what} must be an array, not {v}"))
}

fn call(name: &str, mut a: Vec<Value>) -> Result<Value, String> {
    match name {
        "StringToJson" => {
            let s = string(&a[0], "the argument")?;
            serde_json::from_str(s).map_err(|e| format!("'{s}' is not JSON: {e}"))
        }
        "JsonToString" => Ok(Value::String(a[0].to_string())),
        "Array" => Ok(Value::Array(a)),
        "ArrayPartition" => {
            let items = array(&a[0], "the first argument")?;
            let size = strict_int(&a[1], "the chunk size")?;
            if size <= 0 {
                return Err(format!("the chunk size must be positive, not {size}"));
            }
            Ok(Value::Array(
                items
                    .chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        "ArrayContains" => {
            let items = array(&a[0], "the first argument")?;
            Ok(Value::Bool(items.contains(&a[1])))
        }
        "ArrayRange" => {
            let first = strict_int(&a[0], "the first element")?;
            let last = strict_int(&a[1], "the last element")?;
            let step = strict_int(&a[2], "the step")?;
            if step == 0 {
                return Err("the step must not be zero".into());
            }
            // i128: the span of two i64 values can overflow i64.
            let (first, last, step) = (first as i128, last as i128, step as i128);
            let count = if (last - first).signum() * step.signum() < 0 {
                0
            } else {
                (last - first) / step + 1
            };
            if count > MAX_RANGE as i128 {
                return Err(format!(
                    "the range would hold {count} elements; at most {MAX_RANGE} are allowed"
                ));
            }
            Ok(Value::Array(
                (0..count)
                    .map(|k| Value::from((first + k * step) as i64))
                    .collect(),
            ))
        }
        "ArrayGetItem" => {
            let items = array(&a[0], "the first argument")?;
            let i = strict_int(&a[1], "the index")?;
            usize::try_from(i)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| format!("index {i} is out of range for an array of {}", items.len()))
        }
        "ArrayLength" => Ok(Value::from(array(&a[0], "the argument")?.len())),
        "ArrayUnique" => {
            let items = array(&a[0], "the argument")?;
            let mut out: Vec<Value> = Vec::with_capacity(items.len());
            for v in items {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        "Base64Encode" => {
            let s = string(&a[0], "the argument")?;
            if s.chars().count() > MAX_STRING {
                return Err(format!("the input is longer than {MAX_STRING} characters"));
            }
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s),
            ))
        }
        "Base64Decode" => {
            let s = string(&a[0], "the argument")?;
            if s.chars().count() > MAX_STRING {
                return Err(format!("the input is longer than {MAX_STRING} characters"));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("'{s}' is not Base64: {e}"))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| "the decoded bytes are not UTF-8 text".into())
        }
        "Hash" => {
            let data = string(&a[0], "the data")?;
            if data.chars().count() > MAX_STRING {
                return Err(format!("the data is longer than {MAX_STRING} characters"));
            }
            let alg = string(&a[1], "the algorithm")?;
            Ok(Value::String(hash(data.as_bytes(), alg)?))
        }
        "JsonMerge" => {
            if a[2] != Value::Bool(false) {
                return Err(
                    "only a shallow merge is supported: the third argument must be false".into(),
                );
            }
            let right = a.swap_remove(1);
            let left = a.swap_remove(0);
            let (Value::Object(mut l), Value::Object(r)) = (left, right) else {
                return Err("both values to merge must be objects".into());
            };
            for (k, v) in r {
                l.insert(k, v);
            }
            Ok(Value::Object(l))
        }
        "MathRandom" => {
            let start = int(&a[0], "the start")?;
            let end = int(&a[1], "the end")?;
            if end <= start {
                return Err(format!(
                    "the end ({end}) must be greater than the start ({start})"
                ));
            }
            let seed = match a.get(2) {
                Some(s) => int(s, "the seed")? as u64,
                None => u64::from_le_bytes(
                    uuid::Uuid::new_v4().as_bytes()[..8]
                        .try_into()
                        .unwrap_or([7; 8]),
                ),
            };
            let span = (end as i128 - start as i128) as u128;
            Ok(Value::from(
                (start as i128 + (splitmix(seed) as u128 % span) as i128) as i64,
            ))
        }
        "MathAdd" => {
            let x = int(&a[0], "the first value")?;
            let y = int(&a[1], "the second value")?;
            for v in [x, y] {
                if i32::try_from(v).is_err() {
                    return Err(format!("{v} is outside the 32-bit integer range"));
                }
            }
            Ok(Value::Number(Number::from(x + y)))
        }
        "StringSplit" => {
            let s = string(&a[0], "the string")?;
            let d = string(&a[1], "the delimiter")?;
            // Every character of the delimiter splits; empty pieces are dropped.
            let parts: Vec<Value> = s
                .split(|c| d.contains(c))
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_owned()))
                .collect();
            Ok(Value::Array(parts))
        }
        "UUID" => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
        other => Err(format!("unknown intrinsic function States.{other}")),
    }
}

/// A seeded 64-bit mix (SplitMix64): the same seed always gives the same number.
pub(crate) fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(data: &[u8], alg: &str) -> Result<String, String> {
    use sha2::Digest as _;
    Ok(match alg {
        "MD5" => hex(&md5::Md5::digest(data)),
        "SHA-1" => hex(&sha1::Sha1::digest(data)),
        "SHA-256" => hex(&sha2::Sha256::digest(data)),
        "SHA-384" => hex(&sha2::Sha384::digest(data)),
        "SHA-512" => hex(&sha2::Sha512::digest(data)),
        other => {
            return Err(format!(
                "'{other}' is not a hash algorithm (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(text: &str, input: Value) -> Result<Value, StateError> {
        Expr::parse(text)
            .unwrap()
            .eval(&input, &json!({"Execution": {"Name": "run-1"}}))
    }

    fn ok(text: &str, input: Value) -> Value {
        ev(text, input).unwrap()
    }

    fn fails(text: &str, input: Value) -> String {
        let e = ev(text, input).unwrap_err();
        assert_eq!(e.error, "States.IntrinsicFailure", "{text}: {e}");
        e.cause
    }

    #[test]
    fn format_fills_placeholders_and_honours_escapes() {
        assert_eq!(
            ok(
                "States.Format('Hello, my name is {}.', $.name)",
                json!({"name": "Arnau"})
            ),
            json!("Hello, my name is Arnau.")
        );
        assert_eq!(
            ok("States.Format('{} {} {}', 1, true, null)", json!({})),
            json!("1 true null")
        );
        assert_eq!(
            ok(
                r"States.Format('literal \{\} and {}, it\'s \\ ok', 'x')",
                json!({})
            ),
            json!(r"literal {} and x, it's \ ok")
        );
        assert_eq!(
            ok(
                "States.Format($.t, $$.Execution.Name)",
                json!({"t": "run {}"})
            ),
            json!("run run-1")
        );
        fails("States.Format('{} {}', 'a')", json!({}));
        fails("States.Format('{}', $.o)", json!({"o": {"a": 1}}));
        fails("States.Format('x', 'extra')", json!({}));
    }

    #[test]
    fn json_functions() {
        assert_eq!(
            ok("States.StringToJson($.s)", json!({"s": "{\"a\":[1,2]}"})),
            json!({"a": [1, 2]})
        );
        fails("States.StringToJson('{nope')", json!({}));
        fails("States.StringToJson(1)", json!({}));
        assert_eq!(
            ok("States.JsonToString($.o)", json!({"o": {"a": 1}})),
            json!("{\"a\":1}")
        );
        assert_eq!(
            ok(
                "States.JsonMerge($.a, $.b, false)",
                json!({"a": {"x": 1, "y": {"k": 1}}, "b": {"y": {"z": 2}}})
            ),
            json!({"x": 1, "y": {"z": 2}})
        );
        fails(
            "States.JsonMerge($.a, $.b, true)",
            json!({"a": {}, "b": {}}),
        );
        fails(
            "States.JsonMerge($.a, $.b, false)",
            json!({"a": [], "b": {}}),
        );
    }

    #[test]
    fn array_functions() {
        assert_eq!(
            ok(
                "States.Array($.id, 'a', 2, States.Array())",
                json!({"id": 7})
            ),
            json!([7, "a", 2, []])
        );
        assert_eq!(
            ok(
                "States.ArrayPartition($.a, 2)",
                json!({"a": [1, 2, 3, 4, 5]})
            ),
            json!([[1, 2], [3, 4], [5]])
        );
        fails("States.ArrayPartition($.a, 0)", json!({"a": [1]}));
        fails("States.ArrayPartition('x', 1)", json!({}));
        assert_eq!(
            ok(
                "States.ArrayContains($.a, $.v)",
                json!({"a": [1, {"b": 2}], "v": {"b": 2}})
            ),
            json!(true)
        );
        assert_eq!(
            ok("States.ArrayContains($.a, 3)", json!({"a": [1]})),
            json!(false)
        );
        fails("States.ArrayContains(1, 3)", json!({}));
        assert_eq!(
            ok("States.ArrayRange(1, 9, 2)", json!({})),
            json!([1, 3, 5, 7, 9])
        );
        assert_eq!(
            ok("States.ArrayRange(5, 1, -2)", json!({})),
            json!([5, 3, 1])
        );
        assert_eq!(ok("States.ArrayRange(1, 0, 1)", json!({})), json!([]));
        fails("States.ArrayRange(1, 9, 0)", json!({}));
        fails("States.ArrayRange(1, 2000, 1)", json!({}));
        fails("States.ArrayRange(1.5, 3, 1)", json!({}));
        assert_eq!(
            ok("States.ArrayGetItem($.a, 1)", json!({"a": [1, 2]})),
            json!(2)
        );
        fails("States.ArrayGetItem($.a, 5)", json!({"a": [1]}));
        fails("States.ArrayGetItem($.a, -1)", json!({"a": [1]}));
        assert_eq!(
            ok("States.ArrayLength($.a)", json!({"a": [1, 2, 3]})),
            json!(3)
        );
        fails("States.ArrayLength($.a)", json!({"a": "abc"}));
        assert_eq!(
            ok("States.ArrayUnique($.a)", json!({"a": [1, 2, 1, "1", 2]})),
            json!([1, 2, "1"])
        );
        fails("States.ArrayUnique(3)", json!({}));
    }

    #[test]
    fn encoding_and_hash() {
        assert_eq!(
            ok("States.Base64Encode('Data to encode')", json!({})),
            json!("RGF0YSB0byBlbmNvZGU=")
        );
        assert_eq!(
            ok("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", json!({})),
            json!("Data to encode")
        );
        fails("States.Base64Decode('***')", json!({}));
        fails("States.Base64Encode($.s)", json!({"s": "x".repeat(10_001)}));
        assert_eq!(
            ok("States.Hash('abc', 'MD5')", json!({})),
            json!("900150983cd24fb0d6963f7d28e17f72")
        );
        assert_eq!(
            ok("States.Hash('abc', 'SHA-1')", json!({})),
            json!("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            ok("States.Hash('abc', 'SHA-256')", json!({})),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            ok("States.Hash('abc', 'SHA-384')", json!({}))
                .as_str()
                .unwrap()
                .len(),
            96
        );
        assert_eq!(
            ok("States.Hash('abc', 'SHA-512')", json!({}))
                .as_str()
                .unwrap()
                .len(),
            128
        );
        fails("States.Hash('abc', 'CRC32')", json!({}));
    }

    #[test]
    fn math_string_and_uuid() {
        assert_eq!(ok("States.MathAdd($.v, -3)", json!({"v": 10})), json!(7));
        assert_eq!(ok("States.MathAdd(1.6, 1)", json!({})), json!(3));
        fails("States.MathAdd(3000000000, 1)", json!({}));
        fails("States.MathAdd('1', 1)", json!({}));
        let r = ok("States.MathRandom(1, 10)", json!({})).as_i64().unwrap();
        assert!((1..10).contains(&r));
        assert_eq!(
            ok("States.MathRandom(1, 1000, 42)", json!({})),
            ok("States.MathRandom(1, 1000, 42)", json!({}))
        );
        fails("States.MathRandom(5, 5)", json!({}));
        assert_eq!(
            ok("States.StringSplit('1,2,3', ',')", json!({})),
            json!(["1", "2", "3"])
        );
        assert_eq!(
            ok(
                "States.StringSplit($.s, '.+,=')",
                json!({"s": "This.is+a,test=string"})
            ),
            json!(["This", "is", "a", "test", "string"])
        );
        fails("States.StringSplit(1, ',')", json!({}));
        let u = ok("States.UUID()", json!({}));
        assert_eq!(
            uuid::Uuid::parse_str(u.as_str().unwrap())
                .unwrap()
                .get_version_num(),
            4
        );
    }

    #[test]
    fn odd_text_is_refused_or_evaluated_never_a_panic() {
        let odd = [
            "",
            "States.",
            "States.Format",
            "States.Format(",
            "States.Format(')",
            "States.Format('é{}ü', 'ñ')",
            "States.Array($",
            "States.Array($[)",
            "States.Array($['a,b'])",
            "States.Array(1,)",
            "States.Array(,)",
            "States.Array('\\",
            "States.Array(1 2)",
            "States.Array(States.UUID(), $$.x)",
            "States.Hash('ü', 'MD5')",
            "States.ArrayRange(-9223372036854775808, 9223372036854775807, 1)",
            "States.MathAdd(1e400, 1)",
            "States.ArrayPartition($.a, 9223372036854775807)",
            "States.Array(ü)",
            "States.Format('{', '}')",
        ];
        for text in odd {
            if let Ok(e) = Expr::parse(text) {
                let _ = e.eval(&json!({"a": [1, 2], "a,b": 3}), &json!({}));
            }
        }
    }

    #[test]
    fn nesting_and_parse_errors() {
        assert_eq!(
            ok(
                "States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.arn, '/'), 1), '.'), 0)",
                json!({"arn": "a/b.c/d"})
            ),
            json!("b")
        );
        assert!(Expr::parse("States.Nope(1)").is_err());
        assert!(Expr::parse("States.ArrayLength()").is_err());
        assert!(Expr::parse("States.UUID(1)").is_err());
        assert!(Expr::parse("States.Format('x'").is_err());
        assert!(Expr::parse("States.Format('\\n')").is_err());
        assert!(Expr::parse("States.Array(nope)").is_err());
        let deep = format!("{}1{}", "States.Array(".repeat(11), ")".repeat(11));
        assert!(Expr::parse(&deep).unwrap_err().contains("nested"));
        let e = ev("States.ArrayLength($.missing)", json!({})).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
    }
}

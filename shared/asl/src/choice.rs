//! Choice rules: every comparison operator, its `...Path` form, the type tests, and
//! `And`/`Or`/`Not`.

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use crate::error::StateError;
use crate::path::{ContextSource, Path};

/// What a comparison compares against: a literal or the value of a path.
#[derive(Debug, Clone)]
pub enum Operand {
    /// A literal from the definition.
    Lit(Value),
    /// A path into the input or the context.
    Path(Path),
}

/// The comparison family of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `String...`
    String,
    /// `Numeric...`
    Numeric,
    /// `Boolean...`
    Boolean,
    /// `Timestamp...`
    Timestamp,
}

/// How two values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `...Equals`
    Eq,
    /// `...LessThan`
    Lt,
    /// `...GreaterThan`
    Gt,
    /// `...LessThanEquals`
    Le,
    /// `...GreaterThanEquals`
    Ge,
}

/// A type test (`IsNull`, ...); `bool` is the expected answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// `IsPresent`
    Present,
    /// `IsNull`
    Null,
    /// `IsNumeric`
    Numeric,
    /// `IsString`
    String,
    /// `IsBoolean`
    Boolean,
    /// `IsTimestamp`
    Timestamp,
}

/// A Choice rule (without its `Next`).
#[derive(Debug, Clone)]
pub enum Rule {
    /// All must match.
    And(Vec<Rule>),
    /// One must match.
    Or(Vec<Rule>),
    /// Must not match.
    Not(Box<Rule>),
    /// `Variable` compared with an operand.
    Compare {
        /// The value tested.
        variable: Path,
        /// The family.
        kind: Kind,
        /// The comparison.
        cmp: Cmp,
        /// The other side.
        operand: Operand,
    },
    /// `StringMatches` with its pattern.
    Matches {
        /// The value tested.
        variable: Path,
        /// The pattern (`*` any run of characters, `\*` and `\\` escapes).
        pattern: String,
    },
    /// A type or presence test.
    Is {
        /// The value tested.
        variable: Path,
        /// Which test.
        test: Test,
        /// The expected answer.
        expect: bool,
    },
}

/// The comparison operators by name, with their family and comparison.
pub const COMPARISONS: &[(&str, Kind, Cmp)] = &[
    ("StringEquals", Kind::String, Cmp::Eq),
    ("StringLessThan", Kind::String, Cmp::Lt),
    ("StringGreaterThan", Kind::String, Cmp::Gt),
    ("StringLessThanEquals", Kind::String, Cmp::Le),
    ("StringGreaterThanEquals", Kind::String, Cmp::Ge),
    ("NumericEquals", Kind::Numeric, Cmp::Eq),
    ("NumericLessThan", Kind::Numeric, Cmp::Lt),
    ("NumericGreaterThan", Kind::Numeric, Cmp::Gt),
    ("NumericLessThanEquals", Kind::Numeric, Cmp::Le),
    ("NumericGreaterThanEquals", Kind::Numeric, Cmp::Ge),
    ("BooleanEquals", Kind::Boolean, Cmp::Eq),
    ("TimestampEquals", Kind::Timestamp, Cmp::Eq),
    ("TimestampLessThan", Kind::Timestamp, Cmp::Lt),
    ("TimestampGreaterThan", Kind::Timestamp, Cmp::Gt),
    ("TimestampLessThanEquals", Kind::Timestamp, Cmp::Le),
    ("TimestampGreaterThanEquals", Kind::Timestamp, Cmp::Ge),
];

/// The type tests by name.
pub const TESTS: &[(&str, Test)] = &[
    ("IsPresent", Test::Present),
    ("IsNull", Test::Null),
    ("IsNumeric", Test::Numeric),
    ("IsString", Test::String),
    ("IsBoolean", Test::Boolean),
    ("IsTimestamp", Test::Timestamp),
];

/// Parses a timestamp as the States language does: RFC 3339 with an uppercase `T`
/// (and `Z` when there is no numeric offset).
pub fn timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    if s.len() < 11 || s.as_bytes()[10] != b'T' || s.ends_with('z') {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok()
}

/// Whether `s` matches a `StringMatches` pattern.
pub fn string_matches(s: &str, pattern: &str) -> bool {
    // Tokens: Some(c) a literal character, None a star.
    let mut toks: Vec<Option<char>> = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some(n) => toks.push(Some(n)),
                None => toks.push(Some('\\')),
            },
            '*' => toks.push(None),
            c => toks.push(Some(c)),
        }
    }
    let text: Vec<char> = s.chars().collect();
    // Classic wildcard match with backtracking to the last star.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < toks.len() && toks[p] == Some(text[t]) {
            t += 1;
            p += 1;
        } else if p < toks.len() && toks[p].is_none() {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p < toks.len() && toks[p].is_none() {
        p += 1;
    }
    p == toks.len()
}

fn order<T: PartialOrd>(a: T, b: T, cmp: Cmp) -> bool {
    match cmp {
        Cmp::Eq => a == b,
        Cmp::Lt => a < b,
        Cmp::Gt => a > b,
        Cmp::Le => a <= b,
        Cmp::Ge => a >= b,
    }
}

impl Rule {
    /// Evaluates the rule. A missing `Variable` (except for `IsPresent`) or a missing
    /// operand path is a `States.Runtime` error; a value of another type does not match.
    pub fn eval(&self, input: &Value, ctx: &dyn ContextSource) -> Result<bool, StateError> {
        match self {
            Rule::And(rs) => {
                for r in rs {
                    if !r.eval(input, ctx)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rs) => {
                for r in rs {
                    if r.eval(input, ctx)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(r) => Ok(!r.eval(input, ctx)?),
            Rule::Is {
                variable,
                test,
                expect,
            } => {
                let v = variable.select(input, ctx);
                let got = match (test, &v) {
                    (Test::Present, v) => v.is_some(),
                    (_, None) => return Err(missing(variable)),
                    (Test::Null, Some(v)) => v.is_null(),
                    (Test::Numeric, Some(v)) => v.is_number(),
                    (Test::String, Some(v)) => v.is_string(),
                    (Test::Boolean, Some(v)) => v.is_boolean(),
                    (Test::Timestamp, Some(v)) => v.as_str().and_then(timestamp).is_some(),
                };
                Ok(got == *expect)
            }
            Rule::Matches { variable, pattern } => {
                let v = variable
                    .select(input, ctx)
                    .ok_or_else(|| missing(variable))?;
                Ok(v.as_str().is_some_and(|s| string_matches(s, pattern)))
            }
            Rule::Compare {
                variable,
                kind,
                cmp,
                operand,
            } => {
                let a = variable
                    .select(input, ctx)
                    .ok_or_else(|| missing(variable))?;
                let b = match operand {
                    Operand::Lit(v) => v.clone(),
                    Operand::Path(p) => p.select(input, ctx).ok_or_else(|| missing(p))?,
                };
                Ok(match kind {
                    Kind::String => match (a.as_str(), b.as_str()) {
                        (Some(x), Some(y)) => order(x, y, *cmp),
                        _ => false,
                    },
                    Kind::Numeric => match (a.as_f64(), b.as_f64()) {
                        (Some(x), Some(y)) => order(x, y, *cmp),
                        _ => false,
                    },
                    Kind::Boolean => match (a.as_bool(), b.as_bool()) {
                        (Some(x), Some(y)) => x == y,
                        _ => false,
                    },
                    Kind::Timestamp => match (
                        a.as_str().and_then(timestamp),
                        b.as_str().and_then(timestamp),
                    ) {
                        (Some(x), Some(y)) => order(x, y, *cmp),
                        _ => false,
                    },
                })
            }
        }
    }
}

fn missing(p: &Path) -> StateError {
    StateError::runtime(format!(
        "Invalid path '{}': the choice state's condition path references an undefined value",
        p.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    fn cmp(var: &str, op: &str, operand: Operand, input: &Value) -> Result<bool, StateError> {
        let &(_, kind, c) = COMPARISONS.iter().find(|x| x.0 == op).unwrap();
        Rule::Compare {
            variable: p(var),
            kind,
            cmp: c,
            operand,
        }
        .eval(input, &json!({}))
    }

    #[test]
    fn every_comparison_operator_literal_and_path() {
        let input = json!({
            "s": "b", "s2": "b", "sa": "a", "sc": "c",
            "n": 5, "n2": 5.0, "n4": 4, "n6": 6,
            "t": true, "f": false,
            "ts": "2026-01-01T10:00:00Z", "ts2": "2026-01-01T11:00:00+01:00", "tsb": "2026-01-02T00:00:00Z"
        });
        let cases: &[(&str, &str, Value, &str, bool)] = &[
            ("$.s", "StringEquals", json!("b"), "$.s2", true),
            ("$.s", "StringLessThan", json!("c"), "$.sc", true),
            ("$.s", "StringGreaterThan", json!("a"), "$.sa", true),
            ("$.s", "StringLessThanEquals", json!("b"), "$.sa", false),
            ("$.s", "StringGreaterThanEquals", json!("c"), "$.s2", true),
            ("$.n", "NumericEquals", json!(5), "$.n2", true),
            ("$.n", "NumericLessThan", json!(6), "$.n4", false),
            ("$.n", "NumericGreaterThan", json!(4), "$.n6", false),
            ("$.n", "NumericLessThanEquals", json!(5), "$.n6", true),
            ("$.n", "NumericGreaterThanEquals", json!(6), "$.n4", true),
            ("$.t", "BooleanEquals", json!(true), "$.f", false),
            (
                "$.ts",
                "TimestampEquals",
                json!("2026-01-01T10:00:00Z"),
                "$.ts2",
                true,
            ),
            (
                "$.ts",
                "TimestampLessThan",
                json!("2026-01-02T00:00:00Z"),
                "$.tsb",
                true,
            ),
            (
                "$.ts",
                "TimestampGreaterThan",
                json!("2025-12-31T00:00:00Z"),
                "$.tsb",
                false,
            ),
            (
                "$.ts",
                "TimestampLessThanEquals",
                json!("2026-01-01T10:00:00Z"),
                "$.ts2",
                true,
            ),
            (
                "$.ts",
                "TimestampGreaterThanEquals",
                json!("2026-01-01T10:00:01Z"),
                "$.tsb",
                false,
            ),
        ];
        let lit_expect = [
            true, true, true, true, false, true, true, true, true, false, true, true, true, true,
            true, false,
        ];
        for (i, (var, op, lit, path, path_expect)) in cases.iter().enumerate() {
            assert_eq!(
                cmp(var, op, Operand::Lit(lit.clone()), &input).unwrap(),
                lit_expect[i],
                "{op} literal"
            );
            assert_eq!(
                cmp(var, op, Operand::Path(p(path)), &input).unwrap(),
                *path_expect,
                "{op}Path"
            );
        }
    }

    #[test]
    fn type_mismatch_is_false_and_missing_paths_are_runtime_errors() {
        let input = json!({"s": "5", "n": 5});
        assert!(!cmp("$.s", "NumericEquals", Operand::Lit(json!(5)), &input).unwrap());
        assert!(!cmp("$.n", "StringEquals", Operand::Lit(json!("5")), &input).unwrap());
        assert!(
            !cmp(
                "$.s",
                "TimestampEquals",
                Operand::Lit(json!("2026-01-01T00:00:00Z")),
                &input
            )
            .unwrap()
        );
        let e = cmp("$.nope", "NumericEquals", Operand::Lit(json!(5)), &input).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        let e = cmp("$.n", "NumericEquals", Operand::Path(p("$.nope")), &input).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
    }

    #[test]
    fn type_tests() {
        let input = json!({"null": null, "n": 1.5, "s": "x", "b": false, "ts": "2026-03-01T00:00:00Z", "bad": "2026-03-01t00:00:00Z"});
        let is = |var: &str, test: Test, expect: bool| {
            Rule::Is {
                variable: p(var),
                test,
                expect,
            }
            .eval(&input, &json!({}))
        };
        assert!(is("$.null", Test::Present, true).unwrap());
        assert!(is("$.nope", Test::Present, false).unwrap());
        assert!(is("$.null", Test::Null, true).unwrap());
        assert!(is("$.n", Test::Null, false).unwrap());
        assert!(is("$.n", Test::Numeric, true).unwrap());
        assert!(!is("$.s", Test::Numeric, true).unwrap());
        assert!(is("$.s", Test::String, true).unwrap());
        assert!(is("$.b", Test::Boolean, true).unwrap());
        assert!(is("$.ts", Test::Timestamp, true).unwrap());
        assert!(!is("$.bad", Test::Timestamp, true).unwrap());
        assert!(!is("$.s", Test::Timestamp, true).unwrap());
        assert_eq!(
            is("$.nope", Test::Null, true).unwrap_err().error,
            "States.Runtime"
        );
    }

    #[test]
    fn string_matches_with_stars_and_escapes() {
        assert!(string_matches("log-2026.txt", "log-*.txt"));
        assert!(string_matches("anything", "*"));
        assert!(string_matches("", "*"));
        assert!(!string_matches("log.csv", "log-*.txt"));
        assert!(string_matches("a*b", r"a\*b"));
        assert!(!string_matches("axb", r"a\*b"));
        assert!(string_matches(r"a\b", r"a\\b"));
        assert!(string_matches("abcbc", "a*bc"));
        assert!(string_matches("mdl_user", "mdl_*"));
        assert!(!string_matches("x", ""));
    }

    #[test]
    fn and_or_not() {
        let input = json!({"a": 1, "b": "x"});
        let a1 = Rule::Compare {
            variable: p("$.a"),
            kind: Kind::Numeric,
            cmp: Cmp::Eq,
            operand: Operand::Lit(json!(1)),
        };
        let bx = Rule::Compare {
            variable: p("$.b"),
            kind: Kind::String,
            cmp: Cmp::Eq,
            operand: Operand::Lit(json!("y")),
        };
        let ctx = json!({});
        assert!(
            !Rule::And(vec![a1.clone(), bx.clone()])
                .eval(&input, &ctx)
                .unwrap()
        );
        assert!(
            Rule::Or(vec![a1.clone(), bx.clone()])
                .eval(&input, &ctx)
                .unwrap()
        );
        assert!(Rule::Not(Box::new(bx)).eval(&input, &ctx).unwrap());
    }
}

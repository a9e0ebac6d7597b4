//! The mock configuration file of AWS Step Functions Local: state machines → test cases →
//! state → mocked response; each response lists what the 1st, 2nd... call returns or throws.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Why a mock configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MockError {
    /// Not JSON.
    #[error("the mock configuration is not valid JSON: {0}")]
    Json(String),
    /// JSON of the wrong shape; the message names the field.
    #[error("the mock configuration is invalid: {0}")]
    Invalid(String),
    /// The state machine or test case asked for is not in the file.
    #[error("{0}")]
    NotFound(String),
}

/// What one call returns.
#[derive(Debug, Clone, PartialEq)]
pub enum MockAnswer {
    /// The task succeeds with this result (the whole service response).
    Return(Value),
    /// The task fails with this error and cause.
    Throw {
        /// The error name.
        error: String,
        /// The cause.
        cause: String,
    },
}

/// A named mocked response: answers by call number (0-based, inclusive ranges).
#[derive(Debug, Clone, PartialEq)]
pub struct MockedResponse {
    name: String,
    answers: Vec<(u32, u32, MockAnswer)>,
}

/// A parsed mock configuration file.
#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    machines: HashMap<String, HashMap<String, HashMap<String, String>>>,
    responses: HashMap<String, Arc<MockedResponse>>,
}

fn obj<'a>(v: &'a Value, at: &str) -> Result<&'a serde_json::Map<String, Value>, MockError> {
    v.as_object()
        .ok_or_else(|| MockError::Invalid(format!("{at} must be an object")))
}

impl MockConfig {
    /// Parses and checks a mock configuration file.
    pub fn parse(text: &str) -> Result<Self, MockError> {
        let v: Value = serde_json::from_str(text).map_err(|e| MockError::Json(e.to_string()))?;
        let top = obj(&v, "the file")?;
        for k in top.keys() {
            if k != "StateMachines" && k != "MockedResponses" {
                return Err(MockError::Invalid(format!(
                    "unknown top-level field \"{k}\""
                )));
            }
        }
        let mut responses = HashMap::new();
        if let Some(r) = top.get("MockedResponses") {
            for (name, calls) in obj(r, "MockedResponses")? {
                responses.insert(name.clone(), Arc::new(parse_response(name, calls)?));
            }
        }
        let mut machines = HashMap::new();
        if let Some(m) = top.get("StateMachines") {
            for (machine, body) in obj(m, "StateMachines")? {
                let at = format!("StateMachines.{machine}");
                let body = obj(body, &at)?;
                let cases = body
                    .get("TestCases")
                    .ok_or_else(|| MockError::Invalid(format!("{at}.TestCases is missing")))?;
                let mut out = HashMap::new();
                for (case, states) in obj(cases, &format!("{at}.TestCases"))? {
                    let at = format!("{at}.TestCases.{case}");
                    let mut map = HashMap::new();
                    for (state, resp) in obj(states, &at)? {
                        let Some(r) = resp.as_str() else {
                            return Err(MockError::Invalid(format!(
                                "{at}.{state} must name a mocked response"
                            )));
                        };
                        if !responses.contains_key(r) {
                            return Err(MockError::Invalid(format!(
                                "{at}.{state} names \"{r}\", which is not in MockedResponses"
                            )));
                        }
                        map.insert(state.clone(), r.to_owned());
                    }
                    out.insert(case.clone(), map);
                }
                machines.insert(machine.clone(), out);
            }
        }
        Ok(Self {
            machines,
            responses,
        })
    }

    /// The mocks of one test case of one state machine.
    pub fn test_case(&self, machine: &str, case: &str) -> Result<MockCase, MockError> {
        let cases = self.machines.get(machine).ok_or_else(|| {
            let mut known: Vec<_> = self.machines.keys().cloned().collect();
            known.sort();
            MockError::NotFound(format!(
                "state machine \"{machine}\" is not in the mock configuration (it has: {})",
                known.join(", ")
            ))
        })?;
        let states = cases.get(case).ok_or_else(|| {
            let mut known: Vec<_> = cases.keys().cloned().collect();
            known.sort();
            MockError::NotFound(format!(
                "test case \"{case}\" is not in state machine \"{machine}\" (it has: {})",
                known.join(", ")
            ))
        })?;
        Ok(MockCase {
            states: states
                .iter()
                .map(|(s, r)| (s.clone(), self.responses[r].clone()))
                .collect(),
        })
    }
}

fn parse_response(name: &str, calls: &Value) -> Result<MockedResponse, MockError> {
    let at = format!("MockedResponses.{name}");
    let mut answers = Vec::new();
    for (key, body) in obj(calls, &at)? {
        let at = format!("{at}.\"{key}\"");
        let bad_key = || {
            MockError::Invalid(format!(
                "{at}: a key is a call number (\"0\") or a range (\"1-2\")"
            ))
        };
        let (from, to) = match key.split_once('-') {
            Some((a, b)) => (
                a.parse::<u32>().map_err(|_| bad_key())?,
                b.parse::<u32>().map_err(|_| bad_key())?,
            ),
            None => {
                let n = key.parse::<u32>().map_err(|_| bad_key())?;
                (n, n)
            }
        };
        if to < from {
            return Err(MockError::Invalid(format!(
                "{at}: the range ends before it starts"
            )));
        }
        let body = obj(body, &at)?;
        let answer = match (body.get("Return"), body.get("Throw"), body.len()) {
            (Some(r), None, 1) => MockAnswer::Return(r.clone()),
            (None, Some(t), 1) => {
                let t = obj(t, &format!("{at}.Throw"))?;
                let s = |k: &str| {
                    t.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                if s("Error").is_empty() {
                    return Err(MockError::Invalid(format!(
                        "{at}.Throw.Error must be a non-empty string"
                    )));
                }
                MockAnswer::Throw {
                    error: s("Error"),
                    cause: s("Cause"),
                }
            }
            _ => {
                return Err(MockError::Invalid(format!(
                    "{at} must hold exactly one of Return or Throw"
                )));
            }
        };
        answers.push((from, to, answer));
    }
    answers.sort_by_key(|a| a.0);
    let mut next = 0;
    for (from, to, _) in &answers {
        if *from != next {
            return Err(MockError::Invalid(format!(
                "{at}: calls are numbered from 0 without gaps or overlaps; call {next} has no answer"
            )));
        }
        next = to + 1;
    }
    if answers.is_empty() {
        return Err(MockError::Invalid(format!("{at} has no answers")));
    }
    Ok(MockedResponse {
        name: name.to_owned(),
        answers,
    })
}

/// The mocks of one test case: state name → mocked response. Clone it per execution:
/// each execution counts its own calls.
#[derive(Debug, Clone, Default)]
pub struct MockCase {
    states: HashMap<String, Arc<MockedResponse>>,
}

/// Call counters of one execution.
#[derive(Debug, Default)]
pub(crate) struct MockRun {
    case: MockCase,
    calls: Mutex<HashMap<String, u32>>,
}

impl MockRun {
    pub(crate) fn new(case: MockCase) -> Self {
        Self {
            case,
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// The answer for the next call of `state`: `None` when the state is not mocked,
    /// `Some(Err(..))` when its answers ran out.
    pub(crate) fn next(&self, state: &str) -> Option<Result<MockAnswer, String>> {
        let resp = self.case.states.get(state)?;
        let n = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            let c = calls.entry(state.to_owned()).or_insert(0);
            let n = *c;
            *c += 1;
            n
        };
        Some(
            resp.answers
                .iter()
                .find(|(f, t, _)| (*f..=*t).contains(&n))
                .map(|a| a.2.clone())
                .ok_or_else(|| {
                    format!(
                        "mocked response \"{}\" of state \"{state}\" has no answer for call {n} (calls count from 0)",
                        resp.name
                    )
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = r#"{
      "StateMachines": {"m": {"TestCases": {"Happy": {"A": "Flaky"}}}},
      "MockedResponses": {
        "Flaky": {
          "0": {"Throw": {"Error": "Lambda.ServiceException", "Cause": "busy"}},
          "1-2": {"Throw": {"Error": "Lambda.TooManyRequestsException", "Cause": "slow down"}},
          "3": {"Return": {"StatusCode": 200, "Payload": {"ok": true}}}
        }
      }
    }"#;

    #[test]
    fn answers_follow_call_numbers_and_ranges() {
        let run = MockRun::new(
            MockConfig::parse(FILE)
                .unwrap()
                .test_case("m", "Happy")
                .unwrap(),
        );
        let errs: Vec<_> = (0..3)
            .map(|_| match run.next("A").unwrap().unwrap() {
                MockAnswer::Throw { error, .. } => error,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            errs,
            [
                "Lambda.ServiceException",
                "Lambda.TooManyRequestsException",
                "Lambda.TooManyRequestsException"
            ]
        );
        assert_eq!(
            run.next("A").unwrap().unwrap(),
            MockAnswer::Return(json!({"StatusCode": 200, "Payload": {"ok": true}}))
        );
        assert!(run.next("A").unwrap().is_err());
        assert!(run.next("B").is_none());
    }

    #[test]
    fn bad_files_are_refused_with_the_field() {
        let c = MockConfig::parse(FILE).unwrap();
        assert!(matches!(
            c.test_case("x", "Happy"),
            Err(MockError::NotFound(_))
        ));
        assert!(matches!(
            c.test_case("m", "Sad"),
            Err(MockError::NotFound(_))
        ));
        let gap = r#"{"MockedResponses": {"R": {"0": {"Return": 1}, "2": {"Return": 2}}}}"#;
        assert!(
            MockConfig::parse(gap)
                .unwrap_err()
                .to_string()
                .contains("call 1")
        );
        let both = r#"{"MockedResponses": {"R": {"0": {"Return": 1, "Throw": {"Error": "E"}}}}}"#;
        assert!(MockConfig::parse(both).is_err());
        let dangling = r#"{"StateMachines": {"m": {"TestCases": {"T": {"A": "Nope"}}}}, "MockedResponses": {}}"#;
        assert!(
            MockConfig::parse(dangling)
                .unwrap_err()
                .to_string()
                .contains("Nope")
        );
        assert!(MockConfig::parse("{").is_err());
        assert!(MockConfig::parse(r#"{"MockedResponses": {"R": {"x": {"Return": 1}}}}"#).is_err());
    }
}

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A school's code: exactly eight ASCII digits, the first two naming one of the four
/// provinces of Catalonia. It names databases, users, paths and keys, so it is the only
/// type that may carry one, and it can only be built by [`SchoolCode::parse`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SchoolCode(String);

/// The province a school code belongs to, from its first two digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Province {
    /// 08
    Barcelona,
    /// 17
    Girona,
    /// 25
    Lleida,
    /// 43
    Tarragona,
}

/// Why a string is not a school code. The message says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not eight characters long.
    #[error(
        "school code {input:?} has {len} characters; a school code is exactly 8 digits, such as 08012345"
    )]
    Length {
        /// What was given (cut to 32 characters).
        input: String,
        /// Its length in characters.
        len: usize,
    },
    /// A character that is not an ASCII digit.
    #[error(
        "school code {input:?} has {found:?} at position {position}; a school code holds only the digits 0-9"
    )]
    NotDigit {
        /// What was given.
        input: String,
        /// 1-based position of the first bad character.
        position: usize,
        /// The bad character.
        found: char,
    },
    /// The first two digits are not 08, 17, 25 or 43.
    #[error(
        "school code {input:?} starts with {prefix}, which is no province; codes start with 08 (Barcelona), 17 (Girona), 25 (Lleida) or 43 (Tarragona)"
    )]
    Province {
        /// What was given.
        input: String,
        /// Its first two digits.
        prefix: String,
    },
}

impl SchoolCode {
    /// Parses a code. Surrounding white space is an error too: a code that names things
    /// must be exactly what it looks like.
    pub fn parse(input: &str) -> Result<Self, CodeError> {
        let len = input.chars().count();
        if len != 8 {
            return Err(CodeError::Length {
                input: input.chars().take(32).collect(),
                len,
            });
        }
        if let Some((i, c)) = input.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(CodeError::NotDigit {
                input: input.to_owned(),
                position: i + 1,
                found: c,
            });
        }
        if province_of(&input[..2]).is_none() {
            return Err(CodeError::Province {
                input: input.to_owned(),
                prefix: input[..2].to_owned(),
            });
        }
        Ok(Self(input.to_owned()))
    }

    /// The eight digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The province, from the first two digits.
    pub fn province(&self) -> Province {
        province_of(&self.0[..2]).expect("checked in parse")
    }
}

fn province_of(prefix: &str) -> Option<Province> {
    match prefix {
        "08" => Some(Province::Barcelona),
        "17" => Some(Province::Girona),
        "25" => Some(Province::Lleida),
        "43" => Some(Province::Tarragona),
        _ => None,
    }
}

impl FromStr for SchoolCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for SchoolCode {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SchoolCode> for String {
    fn from(c: SchoolCode) -> Self {
        c.0
    }
}

impl fmt::Display for SchoolCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SchoolCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SchoolCode({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_four_provinces_and_keeps_leading_zeros() {
        for c in ["08000013", "17001234", "25999999", "43000000"] {
            assert_eq!(SchoolCode::parse(c).unwrap().as_str(), c);
        }
        assert_eq!(
            SchoolCode::parse("08000013").unwrap().province(),
            Province::Barcelona
        );
    }

    #[test]
    fn rejects_with_a_reason() {
        assert!(matches!(
            SchoolCode::parse("0800001"),
            Err(CodeError::Length { len: 7, .. })
        ));
        assert!(matches!(
            SchoolCode::parse(" 8000013"),
            Err(CodeError::NotDigit { position: 1, .. })
        ));
        assert!(matches!(
            SchoolCode::parse("a8000013"),
            Err(CodeError::NotDigit { found: 'a', .. })
        ));
        assert!(matches!(
            SchoolCode::parse("12345678"),
            Err(CodeError::Province { .. })
        ));
        // Eight characters but more than eight bytes must not slice mid-character.
        assert!(matches!(
            SchoolCode::parse("08ààààà1"),
            Err(CodeError::NotDigit { position: 3, .. })
        ));
        let msg = SchoolCode::parse("99000000").unwrap_err().to_string();
        assert!(msg.contains("08 (Barcelona)"), "{msg}");
    }

    #[test]
    fn serde_goes_through_parse() {
        let ok: SchoolCode = serde_json::from_str("\"08012345\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"08012345\"");
        assert!(serde_json::from_str::<SchoolCode>("\"../etc/x\"").is_err());
        assert!(serde_json::from_str::<SchoolCode>("8012345").is_err());
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_valid_codes(s in "\\PC{0,10}") {
            let valid = s.len() == 8
                && s.bytes().all(|b| b.is_ascii_digit())
                && ["08", "17", "25", "43"].contains(&&s[..2]);
            prop_assert_eq!(SchoolCode::parse(&s).is_ok(), valid);
        }

        #[test]
        fn eight_digits_pass_iff_the_province_is_known(s in "[0-9]{8}") {
            let known = ["08", "17", "25", "43"].contains(&&s[..2]);
            prop_assert_eq!(SchoolCode::parse(&s).is_ok(), known);
        }
    }
}

//! The neutral schema, modelled on Moodle's XMLDB, and the neutral values that travel
//! between engines.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A column type every engine can hold, modelled on XMLDB (plus boolean, date and
/// timestamp for non-Moodle schemas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColType {
    /// A signed integer of `bytes` storage bytes (1, 2, 3, 4 or 8).
    Int {
        /// Storage width in bytes.
        bytes: u8,
    },
    /// An exact decimal.
    Number {
        /// Total digits.
        precision: u32,
        /// Digits after the point.
        scale: u32,
    },
    /// A binary float; `double` is 8 bytes, otherwise 4.
    Float {
        /// 8-byte float.
        double: bool,
    },
    /// Text of at most `len` characters.
    Char {
        /// Maximum length in characters.
        len: u32,
    },
    /// Unbounded text.
    Text,
    /// Unbounded bytes.
    Binary,
    /// True or false.
    Bool,
    /// A calendar date.
    Date,
    /// A date and time without time zone.
    Timestamp,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its neutral type.
    #[serde(flatten)]
    pub ty: ColType,
    /// Whether it takes NULL.
    pub nullable: bool,
    /// Its default, as a literal's text (never an expression).
    pub default: Option<String>,
    /// Whether the engine hands out its values (sequence, auto-increment, rowid).
    pub auto_increment: bool,
}

/// A secondary index (the primary key is not one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Its name.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// Whether it is unique.
    pub unique: bool,
}

/// One table, engine-neutral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Its name, prefix included.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// Primary-key column names, in key order; empty when it has none.
    pub primary_key: Vec<String>,
    /// Secondary indexes.
    pub indexes: Vec<Index>,
    /// The next value the source would hand out for its auto-increment column, if any.
    pub next_id: Option<i64>,
}

impl Table {
    /// Positions of the primary-key columns in `columns`.
    pub fn pk_positions(&self) -> Vec<usize> {
        self.primary_key
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| &c.name == k))
            .collect()
    }

    /// The auto-increment column, if any.
    pub fn auto_column(&self) -> Option<&Column> {
        self.columns.iter().find(|c| c.auto_increment)
    }
}

/// One value, engine-neutral. Decimals, dates and timestamps are kept as normalised text
/// so that they stay exact.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL (distinct from the empty string).
    Null,
    /// A boolean.
    Bool(bool),
    /// Any integer, exact to 64 bits.
    Int(i64),
    /// A binary float (a 4-byte float is held as the f64 of its value).
    Float(f64),
    /// An exact decimal, normalised (see [`normalize_decimal`]).
    Decimal(String),
    /// Text.
    Text(String),
    /// Bytes, exact.
    Bytes(Vec<u8>),
    /// `YYYY-MM-DD`.
    Date(String),
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]`, trailing fraction zeros removed.
    Timestamp(String),
}

/// One row: values in column order.
pub type Row = Vec<Value>;

impl Value {
    /// A rough size in bytes, for bounding chunks and batches.
    pub fn weight(&self) -> usize {
        match self {
            Value::Null | Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 8,
            Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) => {
                s.len() + 2
            }
            Value::Bytes(b) => b.len() * 4 / 3 + 2,
        }
    }

    /// Appends the canonical encoding: the same on every engine for the same content.
    /// Booleans count as the integers 0 and 1 (MySQL has no boolean); text and char alike.
    pub fn canonical(&self, out: &mut Vec<u8>) {
        let lp = |out: &mut Vec<u8>, tag: u8, b: &[u8]| {
            out.push(tag);
            out.extend_from_slice(&(b.len() as u64).to_be_bytes());
            out.extend_from_slice(b);
        };
        match self {
            Value::Null => out.push(0),
            Value::Bool(b) => {
                out.push(1);
                out.extend_from_slice(&i64::from(*b).to_be_bytes());
            }
            Value::Int(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Float(f) => {
                out.push(2);
                // One NaN, and one zero: SQLite stores -0.0 as the integer 0.
                let bits = if f.is_nan() {
                    f64::NAN.to_bits()
                } else if *f == 0.0 {
                    0u64
                } else {
                    f.to_bits()
                };
                out.extend_from_slice(&bits.to_be_bytes());
            }
            Value::Decimal(s) => lp(out, 3, s.as_bytes()),
            Value::Text(s) => lp(out, 4, s.as_bytes()),
            Value::Bytes(b) => lp(out, 5, b),
            Value::Date(s) => lp(out, 6, s.as_bytes()),
            Value::Timestamp(s) => lp(out, 7, s.as_bytes()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Decimal(s) => f.write_str(s),
            Value::Text(s) | Value::Date(s) | Value::Timestamp(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "0x{}", hex::encode(b)),
        }
    }
}

/// Orders two key values the way the engines are asked to order them (numbers by value,
/// text by bytes), so that two sides can be walked together.
pub fn key_cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let as_int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    };
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => {
            if let (Some(x), Some(y)) = (as_int(a), as_int(b)) {
                return x.cmp(&y);
            }
            match (a, b) {
                (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
                (Value::Decimal(x), Value::Decimal(y)) => decimal_cmp(x, y),
                (Value::Text(x), Value::Text(y))
                | (Value::Date(x), Value::Date(y))
                | (Value::Timestamp(x), Value::Timestamp(y)) => x.as_bytes().cmp(y.as_bytes()),
                (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
                _ => {
                    let (mut x, mut y) = (Vec::new(), Vec::new());
                    a.canonical(&mut x);
                    b.canonical(&mut y);
                    x.cmp(&y)
                }
            }
        }
    }
}

fn decimal_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x != y => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}

/// Normalises a decimal's text: no `+`, no leading zeros, no trailing fraction zeros,
/// no `-0`. `"0012.500"` → `"12.5"`.
pub fn normalize_decimal(s: &str) -> String {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    };
    if neg && body != "0" {
        format!("-{body}")
    } else {
        body
    }
}

/// Normalises a timestamp's text: a space between date and time, no trailing fraction
/// zeros. `"2024-01-02T03:04:05.120000"` → `"2024-01-02 03:04:05.12"`.
pub fn normalize_timestamp(s: &str) -> String {
    let s = s.trim().replacen('T', " ", 1);
    match s.split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{frac}")
            }
        }
        None => s,
    }
}

/// Reads a column default as the engines report it (`'abc'::character varying`, `0`,
/// `(-1)`, `NULL`, `'x'`) into a literal's text. `Ok(None)`: no default. `Err(())`: an
/// expression that cannot be carried as a literal.
#[allow(clippy::result_unit_err)]
pub fn parse_default(raw: &str) -> Result<Option<String>, ()> {
    let mut s = raw.trim();
    while s.starts_with('(') && s.ends_with(')') {
        s = s[1..s.len() - 1].trim();
    }
    if s.eq_ignore_ascii_case("null") || s.to_ascii_lowercase().starts_with("null::") {
        return Ok(None);
    }
    if let Some(rest) = s.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                    continue;
                }
                let tail: String = chars.collect();
                return if tail.is_empty() || tail.starts_with("::") {
                    Ok(Some(out))
                } else {
                    Err(())
                };
            }
            out.push(c);
        }
        return Err(());
    }
    let lit = s.split("::").next().unwrap_or(s).trim();
    let lit = lit.trim_start_matches('(').trim_end_matches(')');
    match lit.to_ascii_lowercase().as_str() {
        "true" => return Ok(Some("1".into())),
        "false" => return Ok(Some("0".into())),
        _ => {}
    }
    let numeric = !lit.is_empty()
        && lit
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || c == '.' || (i == 0 && (c == '-' || c == '+')));
    if numeric {
        Ok(Some(lit.to_owned()))
    } else {
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_normalise() {
        assert_eq!(normalize_decimal("0012.500"), "12.5");
        assert_eq!(normalize_decimal("-0.000"), "0");
        assert_eq!(normalize_decimal("-0.50"), "-0.5");
        assert_eq!(normalize_decimal("100"), "100");
        assert_eq!(normalize_decimal("0"), "0");
    }

    #[test]
    fn timestamps_normalise() {
        assert_eq!(
            normalize_timestamp("2024-01-02T03:04:05.120000"),
            "2024-01-02 03:04:05.12"
        );
        assert_eq!(
            normalize_timestamp("2024-01-02 03:04:05.000"),
            "2024-01-02 03:04:05"
        );
    }

    #[test]
    fn defaults_parse() {
        assert_eq!(
            parse_default("'abc'::character varying"),
            Ok(Some("abc".into()))
        );
        assert_eq!(parse_default("'it''s'"), Ok(Some("it's".into())));
        assert_eq!(parse_default("''"), Ok(Some(String::new())));
        assert_eq!(parse_default("(-1)"), Ok(Some("-1".into())));
        assert_eq!(parse_default("'0'::bigint"), Ok(Some("0".into())));
        assert_eq!(parse_default("NULL"), Ok(None));
        assert_eq!(parse_default("NULL::character varying"), Ok(None));
        assert_eq!(parse_default("true"), Ok(Some("1".into())));
        assert_eq!(parse_default("now()"), Err(()));
        assert_eq!(parse_default("current_timestamp()"), Err(()));
    }

    #[test]
    fn booleans_and_ints_encode_alike() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Value::Bool(true).canonical(&mut a);
        Value::Int(1).canonical(&mut b);
        assert_eq!(a, b);
        let (mut n, mut e) = (Vec::new(), Vec::new());
        Value::Null.canonical(&mut n);
        Value::Text(String::new()).canonical(&mut e);
        assert_ne!(n, e);
    }
}

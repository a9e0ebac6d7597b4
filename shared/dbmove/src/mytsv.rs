//! MySQL/MariaDB's `LOAD DATA` text, as staged by a MySQL-family source: one line a row,
//! fields separated by tabs, NULL as `\N`, backslash, newline, carriage return, tab and NUL
//! escaped with a backslash, integers in decimal, floats as the shortest text that reads
//! back to the same bits (`NaN`, `Infinity`, `-Infinity`), booleans `1`/`0`, binary values
//! as bare lower-case hex (the load un-hexes them with `UNHEX`). The MySQL engine's load
//! writes its rows in the same lines, so a MySQL target with `local_infile` loads a staged
//! chunk as it is; another target gets it decoded here into the values a JSON chunk gives.

use crate::DbError;
use crate::engine::{TsvStyle, tsv_line};
use crate::schema::{ColType, Row, Table, Value};

/// `LOAD DATA`'s text: booleans as numbers, binary as bare hex (through `UNHEX`).
pub(crate) const LOAD_TEXT: TsvStyle = TsvStyle {
    bools: (b"1", b"0"),
    hex_prefix: b"",
};

/// Appends one row as a line of `LOAD DATA` text.
pub fn line(row: &Row, out: &mut Vec<u8>) {
    tsv_line(row, &LOAD_TEXT, out);
}

/// The rows of a chunk: its lines (a newline inside a value is always escaped).
pub fn count_rows(raw: &[u8]) -> u64 {
    raw.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Decodes a chunk of `LOAD DATA` lines into rows typed by `table`'s columns. `what` names
/// the chunk in errors, which also give the line (from 1) and the column.
pub fn decode_stream(what: &str, table: &Table, raw: &[u8]) -> Result<Vec<Row>, DbError> {
    let Some(body) = raw.strip_suffix(b"\n") else {
        if raw.is_empty() {
            return Ok(Vec::new());
        }
        return Err(DbError::Corrupt(format!(
            "{what}: its last line has no end; the stage is damaged: export again"
        )));
    };
    let width = table.columns.len();
    let mut rows = Vec::with_capacity(count_rows(raw) as usize);
    let mut text = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let bad = |col: Option<&str>, why: String| {
            let at = col.map(|c| format!(", column {c}")).unwrap_or_default();
            DbError::Corrupt(format!(
                "{what}: line {}{at}: {why}; the stage is damaged: export again",
                i + 1
            ))
        };
        // Counted first: a field too many or too few shifts every value after it.
        let n = line.iter().filter(|&&b| b == b'\t').count() + 1;
        if n != width {
            return Err(bad(None, format!("{n} fields for {width} columns")));
        }
        let mut row = Vec::with_capacity(width);
        for (field, col) in line.split(|&b| b == b'\t').zip(&table.columns) {
            let v =
                field_value(col.ty, field, &mut text).map_err(|why| bad(Some(&col.name), why))?;
            row.push(v);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// One field as a value of type `ty`; `text` is room to undo its escapes in.
fn field_value(ty: ColType, field: &[u8], text: &mut Vec<u8>) -> Result<Value, String> {
    if field == b"\\N" {
        return Ok(Value::Null);
    }
    let bytes = unescape(field, text)?;
    let utf8 = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| "text is not UTF-8".to_owned())
    };
    let word = || String::from_utf8_lossy(bytes).into_owned();
    Ok(match ty {
        ColType::Int { .. } => Value::Int(
            std::str::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("{:?} is not an integer", word()))?,
        ),
        ColType::Float { .. } => Value::Float(match bytes {
            b"NaN" => f64::NAN,
            b"Infinity" => f64::INFINITY,
            b"-Infinity" => f64::NEG_INFINITY,
            _ => std::str::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("{:?} is not a float", word()))?,
        }),
        ColType::Bool => match bytes {
            b"1" => Value::Bool(true),
            b"0" => Value::Bool(false),
            _ => return Err(format!("{:?} is not a boolean (1 or 0)", word())),
        },
        ColType::Binary => {
            Value::Bytes(hex::decode(bytes).map_err(|e| format!("{:?} is not hex: {e}", word()))?)
        }
        ColType::Number { .. } => Value::Decimal(utf8(bytes)?),
        ColType::Date => Value::Date(utf8(bytes)?),
        ColType::Timestamp => Value::Timestamp(utf8(bytes)?),
        ColType::Char { .. } | ColType::Text => Value::Text(utf8(bytes)?),
    })
}

/// The field with its escapes undone: the field itself when it has none, else `text`.
fn unescape<'a>(field: &'a [u8], text: &'a mut Vec<u8>) -> Result<&'a [u8], String> {
    if !field.contains(&b'\\') {
        return Ok(field);
    }
    text.clear();
    let mut rest = field;
    while let Some(at) = rest.iter().position(|&b| b == b'\\') {
        text.extend_from_slice(&rest[..at]);
        text.push(match rest.get(at + 1) {
            Some(b'\\') => b'\\',
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'0') => 0,
            Some(&c) => {
                return Err(format!(
                    "bad escape \\{} at byte {}",
                    char::from(c).escape_default(),
                    field.len() - rest.len() + at
                ));
            }
            None => return Err("a backslash ends the field".into()),
        });
        rest = &rest[at + 2..];
    }
    text.extend_from_slice(rest);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;

    fn table(types: &[ColType]) -> Table {
        Table {
            name: "t".into(),
            columns: types
                .iter()
                .enumerate()
                .map(|(i, &ty)| Column {
                    name: format!("c{i}"),
                    ty,
                    nullable: true,
                    default: None,
                    auto_increment: false,
                })
                .collect(),
            primary_key: vec![],
            indexes: vec![],
            next_id: None,
        }
    }

    #[test]
    fn lines_write_numbers_for_bools_and_bare_hex() {
        let mut out = Vec::new();
        let row = vec![
            Value::Bool(true),
            Value::Bool(false),
            Value::Bytes(vec![0, 0xab]),
            Value::Text("a\0b\\".into()),
            Value::Null,
        ];
        line(&row, &mut out);
        assert_eq!(out, b"1\t0\t00ab\ta\\0b\\\\\t\\N\n");
    }

    #[test]
    fn lines_escape_every_special_byte_between_runs_of_text() {
        let mut out = Vec::new();
        let row = vec![
            Value::Text("plain".into()),
            Value::Text("\\lead\ttab\nnl\rcr\0nul end\\".into()),
            Value::Int(-9_223_372_036_854_775_808),
            Value::Text(String::new()),
        ];
        line(&row, &mut out);
        assert_eq!(
            out,
            b"plain\t\\\\lead\\ttab\\nnl\\rcr\\0nul end\\\\\t-9223372036854775808\t\n"
        );
    }

    #[test]
    fn a_line_of_one_empty_text_is_a_row_not_nothing() {
        let t = table(&[ColType::Text]);
        let raw = b"\n\\N\n\n";
        assert_eq!(count_rows(raw), 3);
        assert_eq!(
            decode_stream("c", &t, raw).unwrap(),
            vec![
                vec![Value::Text(String::new())],
                vec![Value::Null],
                vec![Value::Text(String::new())]
            ]
        );
        assert_eq!(decode_stream("c", &t, b"").unwrap(), Vec::<Row>::new());
    }

    /// Each damage is named with the chunk, its line and its column.
    #[test]
    fn a_damaged_chunk_names_its_line_and_column() {
        let t = table(&[
            ColType::Int { bytes: 8 },
            ColType::Text,
            ColType::Binary,
            ColType::Float { double: true },
            ColType::Bool,
        ]);
        let good = "1\ta\t00\t1.5\t1\n";
        for (raw, expect) in [
            (
                format!("{good}2\tb\t00\t1.5\n"),
                "line 2: 4 fields for 5 columns",
            ),
            (
                format!("{good}2\tb\t00\t1.5\t1\tx\n"),
                "line 2: 6 fields for 5",
            ),
            (
                "x\tb\t00\t1.5\t1\n".into(),
                "line 1, column c0: \"x\" is not an integer",
            ),
            (
                format!("{good}{good}3\tb\\q\t00\t1.5\t1\n"),
                "line 3, column c1: bad escape \\q",
            ),
            (
                "1\tb\\\t00\t1.5\t1\n".into(),
                "column c1: a backslash ends the field",
            ),
            (
                "1\tb\t0g\t1.5\t1\n".into(),
                "line 1, column c2: \"0g\" is not hex",
            ),
            ("1\tb\t000\t1.5\t1\n".into(), "column c2"),
            (
                "1\tb\t00\tone\t1\n".into(),
                "column c3: \"one\" is not a float",
            ),
            (
                "1\tb\t00\t1\t2\n".into(),
                "column c4: \"2\" is not a boolean",
            ),
            (
                format!("{good}1\tb\t00\t1.5\t1"),
                "its last line has no end",
            ),
        ] {
            match decode_stream("staged chunk k", &t, raw.as_bytes()) {
                Err(DbError::Corrupt(e)) => {
                    assert!(e.starts_with("staged chunk k: "), "{e}");
                    assert!(e.contains(expect), "{raw:?}: {e}");
                }
                r => panic!("{raw:?}: {r:?}"),
            }
        }
        let bad_utf8 = b"1\t\xff\xfe\t00\t1.5\t1\n";
        match decode_stream("k", &t, bad_utf8) {
            Err(DbError::Corrupt(e)) => assert!(e.contains("line 1, column c1: text is not UTF-8")),
            r => panic!("{r:?}"),
        }
    }
}

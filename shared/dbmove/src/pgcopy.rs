//! PostgreSQL's binary `COPY` stream (`COPY … TO STDOUT (FORMAT binary)`), as staged by a
//! PostgreSQL source: split into tuples, and decoded into neutral values for a target of
//! another engine (a PostgreSQL target takes the stream as it is).
//!
//! The stream: an 11-byte signature, a 32-bit flags field, a 32-bit header extension
//! length and that many bytes; then per tuple a 16-bit field count and per field a 32-bit
//! length (-1 for NULL) and the value in the type's binary send format; then the
//! trailer, a field count of -1. All integers big-endian.

use crate::DbError;
use crate::schema::{ColType, Row, Table, Value, normalize_decimal, normalize_timestamp};

/// The stream's signature.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// The header this crate writes before a chunk's tuples: no flags, no extension.
pub fn header() -> Vec<u8> {
    let mut h = SIGNATURE.to_vec();
    h.extend_from_slice(&[0; 8]);
    h
}

/// The trailer after the last tuple.
pub const TRAILER: [u8; 2] = [0xff, 0xff];

/// Tuples read from a stream, one after the other in one buffer.
#[derive(Debug, Default)]
pub struct Tuples {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Tuples {
    /// How many.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Their bytes, field count included.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.data[s..e])
    }

    /// The last one.
    pub fn last(&self) -> Option<&[u8]> {
        let e = *self.ends.last()?;
        let s = if self.ends.len() > 1 {
            self.ends[self.ends.len() - 2]
        } else {
            0
        };
        Some(&self.data[s..e])
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    fn push(&mut self, tuple: &[u8]) {
        self.data.extend_from_slice(tuple);
        self.ends.push(self.data.len());
    }
}

/// Splits a stream, given in pieces as they arrive, into whole tuples; checks its
/// header, every tuple's field count and its trailer.
pub struct Splitter {
    what: String,
    columns: usize,
    pending: Vec<u8>,
    header_done: bool,
    ended: bool,
}

impl Splitter {
    /// A splitter of the stream of `table` (`what` names it in errors).
    pub fn new(what: impl Into<String>, table: &Table) -> Self {
        Self {
            what: what.into(),
            columns: table.columns.len(),
            pending: Vec::new(),
            header_done: false,
            ended: false,
        }
    }

    fn bad(&self, why: impl std::fmt::Display) -> DbError {
        DbError::Corrupt(format!("{}: binary COPY stream {why}", self.what))
    }

    /// Takes the next piece; the whole tuples now complete go to `out`.
    pub fn feed(&mut self, piece: &[u8], out: &mut Tuples) -> Result<(), DbError> {
        if self.pending.is_empty() {
            let used = self.parse(piece, out)?;
            self.pending.extend_from_slice(&piece[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(piece);
            let used = self.parse(&buf, out)?;
            buf.drain(..used);
            self.pending = buf;
        }
        Ok(())
    }

    /// Parses what it can of `b`; returns the bytes used.
    fn parse(&mut self, b: &[u8], out: &mut Tuples) -> Result<usize, DbError> {
        let mut at = 0;
        if !self.header_done {
            if b.len() < 19 {
                return Ok(0);
            }
            if &b[..11] != SIGNATURE {
                return Err(self.bad("does not start with PostgreSQL's signature"));
            }
            let ext = u32::from_be_bytes([b[15], b[16], b[17], b[18]]) as usize;
            if b.len() < 19 + ext {
                return Ok(0);
            }
            at = 19 + ext;
            self.header_done = true;
        }
        while at + 2 <= b.len() {
            if self.ended {
                return Err(self.bad("goes on after its trailer"));
            }
            let count = i16::from_be_bytes([b[at], b[at + 1]]);
            if count == -1 {
                self.ended = true;
                at += 2;
                continue;
            }
            if count as usize != self.columns {
                return Err(self.bad(format_args!(
                    "has a tuple of {count} fields for {} columns",
                    self.columns
                )));
            }
            let mut p = at + 2;
            let mut whole = true;
            for _ in 0..count {
                if p + 4 > b.len() {
                    whole = false;
                    break;
                }
                let len = i32::from_be_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]);
                p += 4;
                if len > 0 {
                    p += len as usize;
                }
                if p > b.len() {
                    whole = false;
                    break;
                }
            }
            if !whole {
                break;
            }
            out.push(&b[at..p]);
            at = p;
        }
        Ok(at)
    }

    /// Checks that the stream ended with its trailer and nothing after.
    pub fn finish(&self) -> Result<(), DbError> {
        if !self.ended || !self.pending.is_empty() {
            return Err(self.bad("is cut short (no trailer)"));
        }
        Ok(())
    }
}

/// The fields of one tuple (as [`Splitter`] gives it): NULL as `None`.
fn fields(tuple: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let mut at = 2;
    std::iter::from_fn(move || {
        let len = i32::from_be_bytes(tuple.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if len < 0 {
            return Some(None);
        }
        let v = tuple.get(at..at + len as usize)?;
        at += len as usize;
        Some(Some(v))
    })
}

/// A whole staged stream as rows, for a target of another engine.
pub fn decode_stream(what: &str, t: &Table, raw: &[u8]) -> Result<Vec<Row>, DbError> {
    let mut s = Splitter::new(what, t);
    let mut tuples = Tuples::default();
    s.feed(raw, &mut tuples)?;
    s.finish()?;
    tuples.iter().map(|tu| decode_tuple(t, tu)).collect()
}

/// One tuple as a row, typed by the table's columns.
pub fn decode_tuple(t: &Table, tuple: &[u8]) -> Result<Row, DbError> {
    let mut row = Vec::with_capacity(t.columns.len());
    let mut it = fields(tuple);
    for c in &t.columns {
        let f = it.next().ok_or_else(|| short(t, &c.name))?;
        row.push(decode_field(t, c.ty, &c.name, f)?);
    }
    Ok(row)
}

/// The values of the key columns (`key`: their positions, in key order) of one tuple,
/// the other fields skipped.
pub fn decode_key(t: &Table, key: &[usize], tuple: &[u8]) -> Result<Row, DbError> {
    let all: Vec<Option<&[u8]>> = fields(tuple).collect();
    key.iter()
        .map(|&i| {
            let c = &t.columns[i];
            let f = all.get(i).copied().ok_or_else(|| short(t, &c.name))?;
            decode_field(t, c.ty, &c.name, f)
        })
        .collect()
}

fn short(t: &Table, column: &str) -> DbError {
    DbError::Corrupt(format!(
        "binary COPY tuple of {} ends before column {column}",
        t.name
    ))
}

/// One field in its type's binary send format.
fn decode_field(t: &Table, ty: ColType, column: &str, f: Option<&[u8]>) -> Result<Value, DbError> {
    let Some(b) = f else {
        return Ok(Value::Null);
    };
    let bad = || {
        DbError::Corrupt(format!(
            "binary COPY field {}.{column} ({} bytes) is not PostgreSQL's binary form of {ty:?}",
            t.name,
            b.len()
        ))
    };
    let be = |n: usize| -> Result<[u8; 8], DbError> {
        if b.len() != n {
            return Err(bad());
        }
        let mut a = [0u8; 8];
        a[8 - n..].copy_from_slice(b);
        Ok(a)
    };
    Ok(match ty {
        ColType::Bool => match b {
            [0] => Value::Bool(false),
            [1] => Value::Bool(true),
            _ => return Err(bad()),
        },
        // By length: int2, int4 and int8 alike, whatever width the schema says.
        ColType::Int { .. } => Value::Int(match b.len() {
            2 => i16::from_be_bytes([b[0], b[1]]).into(),
            4 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]).into(),
            8 => i64::from_be_bytes(be(8)?),
            _ => return Err(bad()),
        }),
        ColType::Float { .. } => Value::Float(match b.len() {
            4 => f32::from_be_bytes([b[0], b[1], b[2], b[3]]).into(),
            8 => f64::from_be_bytes(be(8)?),
            _ => return Err(bad()),
        }),
        ColType::Number { .. } => {
            Value::Decimal(normalize_decimal(&numeric_text(b).ok_or_else(bad)?))
        }
        ColType::Char { .. } | ColType::Text => {
            Value::Text(String::from_utf8(b.to_vec()).map_err(|_| bad())?)
        }
        ColType::Binary => Value::Bytes(b.to_vec()),
        ColType::Date => {
            let days = i32::from_be_bytes(be(4)?[4..].try_into().map_err(|_| bad())?);
            Value::Date(date_text(days))
        }
        ColType::Timestamp => {
            let us = i64::from_be_bytes(be(8)?);
            Value::Timestamp(normalize_timestamp(&timestamp_text(us)))
        }
    })
}

/// `numeric`'s binary form as its text: digit count, weight (of the first base-10000
/// digit), sign, display scale, then base-10000 digits.
fn numeric_text(b: &[u8]) -> Option<String> {
    let u16at = |i: usize| Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]));
    let ndigits = u16at(0)? as usize;
    let weight = u16at(2)? as i16 as i64;
    let sign = u16at(4)?;
    let dscale = u16at(6)? as usize;
    if b.len() != 8 + 2 * ndigits {
        return None;
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| u16at(8 + 2 * i))
        .collect::<Option<_>>()?;
    if digits.iter().any(|&d| d >= 10000) {
        return None;
    }
    let digit = |i: i64| -> u16 {
        if i >= 0 && (i as usize) < ndigits {
            digits[i as usize]
        } else {
            0
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    // Integer part: base-10000 digits at weights weight..=0.
    if weight < 0 {
        out.push('0');
    } else {
        for w in 0..=weight {
            let d = digit(w);
            if w == 0 {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Some(out)
}

/// Days since 2000-01-01 as PostgreSQL's ISO text (`YYYY-MM-DD`, `… BC`, `infinity`).
fn date_text(days: i32) -> String {
    match days {
        i32::MAX => return "infinity".into(),
        i32::MIN => return "-infinity".into(),
        _ => {}
    }
    let (y, m, d) = civil(i64::from(days) + 10_957);
    ymd_text(y, m, d)
}

fn ymd_text(y: i64, m: u32, d: u32) -> String {
    if y <= 0 {
        format!("{:04}-{m:02}-{d:02} BC", 1 - y)
    } else {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// Microseconds since 2000-01-01 00:00:00 as PostgreSQL's ISO text.
fn timestamp_text(us: i64) -> String {
    match us {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let day_us = 86_400_000_000i64;
    let days = us.div_euclid(day_us);
    let rest = us.rem_euclid(day_us);
    let (y, m, d) = civil(days + 10_957);
    let secs = rest / 1_000_000;
    let frac = rest % 1_000_000;
    let mut time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac > 0 {
        // As PostgreSQL writes it: no trailing zeros.
        time.push_str(format!(".{frac:06}").trim_end_matches('0'));
    }
    let date = ymd_text(y, m, d);
    match date.strip_suffix(" BC") {
        Some(date) => format!("{date} {time} BC"),
        None => format!("{date} {time}"),
    }
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (year 0 is 1 BC).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_read_back_as_text() {
        // 12345.678 dscale 3: weight 1, digits 1 2345 6780.
        let mut b = vec![0, 3, 0, 1, 0, 0, 0, 3];
        for d in [1u16, 2345, 6780] {
            b.extend_from_slice(&d.to_be_bytes());
        }
        assert_eq!(numeric_text(&b).as_deref(), Some("12345.678"));
        // -0.0012, dscale 4: weight -1, digit 12.
        let b = [0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 12];
        assert_eq!(numeric_text(&b).as_deref(), Some("-0.0012"));
        // zero, dscale 2.
        assert_eq!(
            numeric_text(&[0, 0, 0, 0, 0, 0, 0, 2]).as_deref(),
            Some("0.00")
        );
        // 20000 (weight 1, digits 2): trailing zero digits are not sent.
        assert_eq!(
            numeric_text(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 2]).as_deref(),
            Some("20000")
        );
        assert_eq!(
            numeric_text(&[0, 1, 0, 0, 0x12, 0, 0, 0, 0, 2]),
            None,
            "bad sign"
        );
    }

    #[test]
    fn dates_and_timestamps_read_back_as_text() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(-1), "1999-12-31");
        assert_eq!(date_text(-730_119), "0001-01-01");
        assert_eq!(date_text(-730_120), "0001-12-31 BC");
        assert_eq!(timestamp_text(0), "2000-01-01 00:00:00");
        assert_eq!(timestamp_text(-1), "1999-12-31 23:59:59.999999");
        assert_eq!(timestamp_text(i64::MAX), "infinity");
    }

    #[test]
    fn a_cut_stream_and_a_wrong_field_count_are_refused() {
        let t = Table {
            name: "t".into(),
            columns: vec![crate::schema::Column {
                name: "c".into(),
                ty: ColType::Int { bytes: 4 },
                nullable: true,
                default: None,
                auto_increment: false,
            }],
            primary_key: vec![],
            indexes: vec![],
            next_id: None,
        };
        let mut s = header();
        s.extend_from_slice(&[0, 1, 0, 0, 0, 4, 0, 0, 0, 7]);
        assert!(matches!(
            decode_stream("c", &t, &s),
            Err(DbError::Corrupt(e)) if e.contains("cut short")
        ));
        s.extend_from_slice(&TRAILER);
        assert_eq!(
            decode_stream("c", &t, &s).unwrap(),
            vec![vec![Value::Int(7)]]
        );
        // Fed a byte at a time, the same.
        let mut sp = Splitter::new("c", &t);
        let mut tu = Tuples::default();
        for b in &s {
            sp.feed(std::slice::from_ref(b), &mut tu).unwrap();
        }
        sp.finish().unwrap();
        assert_eq!(tu.len(), 1);
        let mut two = header();
        two.extend_from_slice(&[0, 2, 0, 0, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff]);
        two.extend_from_slice(&TRAILER);
        assert!(decode_stream("c", &t, &two).is_err());
    }
}

//! The staging format: per table a JSON manifest and zstd-compressed chunks, typed by the
//! manifest's neutral schema. A chunk is JSON Lines (one JSON array per row), or the
//! source engine's own bulk format: from PostgreSQL the server's binary `COPY` stream
//! ([`crate::pgcopy`]), from MySQL/MariaDB `LOAD DATA` text ([`crate::mytsv`]); the
//! manifest's `format` says which.
//!
//! Layout in the blob store (under an optional root):
//! `dbmove/export.json` (written last: the export is complete),
//! `dbmove/export.partial.json` (an export under way), `dbmove/tables.json` (its tables'
//! schemas and source sizes, for an import that follows it),
//! `dbmove/tables/<table>/manifest.json`, `dbmove/tables/<table>/<n>.jsonl.zst` (or
//! `<n>.pgcopy.zst`, `<n>.mytsv.zst`).

use a2a_core::BlobKey;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::DbError;
use crate::schema::{ColType, Row, Table, Value};

/// One staged chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    /// Its number, from 1.
    pub n: u64,
    /// Its blob key.
    pub key: String,
    /// Rows in it.
    pub rows: u64,
    /// Compressed size.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the compressed blob.
    pub sha256: String,
}

/// What is staged of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format, for readers to check.
    pub format: String,
    /// The export it belongs to.
    #[serde(default)]
    pub export_id: String,
    /// The table's neutral schema.
    pub table: Table,
    /// Its chunks, in order.
    pub chunks: Vec<ChunkInfo>,
    /// Rows in all chunks.
    pub rows: u64,
    /// Whether every row of the table is staged. A budgeted export that stopped inside
    /// the table leaves `false` and the key to go on after.
    #[serde(default = "yes")]
    pub complete: bool,
    /// The key of the last staged row (a JSON array), while not complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_after: Option<String>,
}

fn yes() -> bool {
    true
}

/// A key's values as one JSON array, as rows are staged.
pub fn encode_key(key: &Row) -> String {
    let mut out = Vec::new();
    encode_row(key, &mut out);
    String::from_utf8_lossy(&out).trim_end().to_owned()
}

/// Reads a key written by [`encode_key`] back, typed by the table's key columns.
pub fn decode_key(table: &Table, text: &str) -> Result<Row, DbError> {
    let bad =
        |what: String| DbError::Corrupt(format!("manifest of {}: resume key {what}", table.name));
    let items: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let pk = table.pk_positions();
    if items.len() != pk.len() || pk.is_empty() {
        return Err(bad(format!(
            "has {} values for {} key columns",
            items.len(),
            pk.len()
        )));
    }
    items
        .into_iter()
        .zip(pk)
        .map(|(v, i)| {
            decode_value(table.columns[i].ty, v)
                .ok_or_else(|| bad(format!("does not fit column {}", table.columns[i].name)))
        })
        .collect()
}

/// The whole export, written once every table is staged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportIndex {
    /// The format, for readers to check.
    pub format: String,
    /// The source, password hidden.
    pub source: String,
    /// This export's id: an import resumes only the export it started.
    pub export_id: String,
    /// The table prefix used.
    pub prefix: String,
    /// Tables, in export order.
    pub tables: Vec<String>,
    /// Rows in all tables.
    pub rows: u64,
}

/// The tables of an export under way, staged when it begins: an import that follows the
/// export creates them before their manifests exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportTables {
    /// The export they belong to: tables of another export are never used.
    pub export_id: String,
    /// Every table's neutral schema, in export order.
    pub tables: Vec<Table>,
    /// Each table's size on disk in the source (bytes, as the engine estimates it).
    pub sizes: Vec<(String, u64)>,
}

/// The format tag of manifests and indexes of JSON Lines chunks.
pub const FORMAT: &str = "a2a-dbmove/jsonl-zstd/1";
/// The format tag of manifests of binary `COPY` chunks, and of the index of an export
/// holding them (older readers refuse it rather than misread its chunks).
pub const PGCOPY_FORMAT: &str = "a2a-dbmove/pgcopy-zstd/1";
/// The format tag of manifests of `LOAD DATA` text chunks, and of the index of an export
/// holding them.
pub const MYTSV_FORMAT: &str = "a2a-dbmove/mytsv-zstd/1";

/// What a chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkFormat {
    /// JSON Lines, one array per row.
    JsonLines,
    /// PostgreSQL's binary `COPY` stream, header and trailer included.
    PgCopy,
    /// MySQL/MariaDB's `LOAD DATA` text, one line per row ([`crate::mytsv`]).
    MyTsv,
}

impl ChunkFormat {
    /// The tag in manifests.
    pub fn tag(self) -> &'static str {
        match self {
            ChunkFormat::JsonLines => FORMAT,
            ChunkFormat::PgCopy => PGCOPY_FORMAT,
            ChunkFormat::MyTsv => MYTSV_FORMAT,
        }
    }

    /// The format a tag names; a corrupt-stage error naming `what` for any other.
    pub fn of(tag: &str, what: &str) -> Result<Self, DbError> {
        match tag {
            FORMAT => Ok(ChunkFormat::JsonLines),
            PGCOPY_FORMAT => Ok(ChunkFormat::PgCopy),
            MYTSV_FORMAT => Ok(ChunkFormat::MyTsv),
            _ => Err(DbError::Corrupt(format!(
                "{what}: format {tag:?}, expected {FORMAT:?}, {PGCOPY_FORMAT:?} or \
                 {MYTSV_FORMAT:?} (a newer version's stage? import it with that version)"
            ))),
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ChunkFormat::JsonLines => "jsonl.zst",
            ChunkFormat::PgCopy => "pgcopy.zst",
            ChunkFormat::MyTsv => "mytsv.zst",
        }
    }
}

/// Key of the export index.
pub fn index_key() -> Result<BlobKey, DbError> {
    key("dbmove/export.json")
}

/// Key of the marker of a budgeted export still under way.
pub fn partial_key() -> Result<BlobKey, DbError> {
    key("dbmove/export.partial.json")
}

/// Key of the tables of the export under way ([`ExportTables`]).
pub fn tables_key() -> Result<BlobKey, DbError> {
    key("dbmove/tables.json")
}

/// Key of a table's manifest.
pub fn manifest_key(table: &str) -> Result<BlobKey, DbError> {
    key(&format!("dbmove/tables/{table}/manifest.json"))
}

/// Key of a table's chunk `n`.
pub fn chunk_key(table: &str, n: u64, format: ChunkFormat) -> Result<BlobKey, DbError> {
    key(&format!(
        "dbmove/tables/{table}/{n:06}.{}",
        format.extension()
    ))
}

fn key(s: &str) -> Result<BlobKey, DbError> {
    BlobKey::parse(s).map_err(|e| DbError::Input(format!("cannot stage under {s:?}: {e}")))
}

/// Builds one chunk: rows go in as JSON or `LOAD DATA` lines, or binary `COPY` tuples as
/// they are; the whole chunk is compressed with zstd when it is finished.
pub struct ChunkWriter {
    raw: Vec<u8>,
    line: Vec<u8>,
    /// What it holds.
    pub format: ChunkFormat,
    /// Whether [`ChunkWriter::finish`] gives the uncompressed chunk back too (a target
    /// that takes its format loads it as it is).
    keep_raw: bool,
    /// Rows written.
    pub rows: u64,
    /// Uncompressed bytes written.
    pub raw_bytes: u64,
}

/// zstd's level for chunks. Compression was a third of the client's CPU in a copy at
/// level 3, fed a row at a time; the whole chunk at once at level 1 costs about a third of
/// that, for a stage about a tenth bigger.
const LEVEL: i32 = 1;

fn zstd_err(e: std::io::Error) -> DbError {
    DbError::Backend(format!("zstd: {e}"))
}

impl ChunkWriter {
    /// A new, empty chunk of JSON Lines.
    pub fn new() -> Result<Self, DbError> {
        Self::with(ChunkFormat::JsonLines, false, 0)
    }

    /// A new, empty chunk of `format`, with room for `bytes` uncompressed (a chunk cut at
    /// a size, plus its last row, then never grows by doubling); with `keep_raw`,
    /// [`ChunkWriter::finish`] also gives back the uncompressed bytes.
    pub fn with(format: ChunkFormat, keep_raw: bool, bytes: usize) -> Result<Self, DbError> {
        let mut w = Self {
            raw: Vec::with_capacity(bytes),
            line: Vec::with_capacity(4096),
            format,
            keep_raw,
            rows: 0,
            raw_bytes: 0,
        };
        if format == ChunkFormat::PgCopy {
            w.write(&crate::pgcopy::header());
        }
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) {
        self.raw.extend_from_slice(b);
        self.raw_bytes += b.len() as u64;
    }

    /// Appends one row (a JSON Lines or `LOAD DATA` chunk).
    pub fn push(&mut self, row: &Row) -> Result<(), DbError> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        match self.format {
            ChunkFormat::JsonLines => encode_row(row, &mut line),
            ChunkFormat::MyTsv => crate::mytsv::line(row, &mut line),
            ChunkFormat::PgCopy => {
                self.line = line;
                return Err(DbError::Backend(
                    "a binary COPY chunk takes tuples, not rows".into(),
                ));
            }
        }
        self.write(&line);
        self.line = line;
        self.rows += 1;
        Ok(())
    }

    /// Appends one tuple of a binary `COPY` stream (a binary chunk).
    pub fn push_tuple(&mut self, tuple: &[u8]) -> Result<(), DbError> {
        self.rows += 1;
        self.write(tuple);
        Ok(())
    }

    /// The compressed chunk, its SHA-256, and the uncompressed bytes if kept.
    pub fn finish(mut self) -> Result<Finished, DbError> {
        if self.format == ChunkFormat::PgCopy {
            self.write(&crate::pgcopy::TRAILER);
        }
        let mut body = zstd::bulk::compress(&self.raw, LEVEL).map_err(zstd_err)?;
        // It was given room for the worst case, several times what it took.
        body.shrink_to_fit();
        let sha256 = hex::encode(sha2::Sha256::digest(&body));
        Ok(Finished {
            body,
            sha256,
            raw: self.keep_raw.then_some(self.raw),
        })
    }
}

/// A finished chunk.
pub struct Finished {
    /// The compressed bytes.
    pub body: Vec<u8>,
    /// Their lower-case hex SHA-256.
    pub sha256: String,
    /// The uncompressed bytes, if the writer kept them.
    pub raw: Option<Vec<u8>>,
}

fn encode_row(row: &Row, out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let s = |out: &mut Vec<u8>, s: &str| {
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, s);
        };
        match v {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Value::Float(f) if f.is_finite() => {
                let _ = serde_json::to_writer(&mut *out, f);
            }
            Value::Float(f) => s(
                out,
                if f.is_nan() {
                    "NaN"
                } else if *f > 0.0 {
                    "inf"
                } else {
                    "-inf"
                },
            ),
            Value::Decimal(t) | Value::Text(t) | Value::Date(t) | Value::Timestamp(t) => s(out, t),
            Value::Bytes(b) => s(out, &base64::engine::general_purpose::STANDARD.encode(b)),
        }
    }
    out.extend_from_slice(b"]\n");
}

/// A chunk's uncompressed bytes, its SHA-256 checked first.
pub fn open_chunk(info: &ChunkInfo, body: &[u8]) -> Result<Vec<u8>, DbError> {
    let sha = hex::encode(sha2::Sha256::digest(body));
    if sha != info.sha256 {
        return Err(DbError::Corrupt(format!(
            "staged chunk {} has SHA-256 {sha}, but its manifest says {}; the stage is \
             damaged: export again",
            info.key, info.sha256
        )));
    }
    let bad = |e: std::io::Error| DbError::Corrupt(format!("staged chunk {}: {e}", info.key));
    // A chunk compressed whole records its size: decompressed into one buffer of that
    // size, not one grown by doubling (copies and page faults were a tenth of an
    // import's CPU). Older, streamed chunks do not: read as a stream.
    match zstd::zstd_safe::get_frame_content_size(body) {
        Ok(Some(size)) if size <= MAX_CHUNK_RAW => {
            zstd::bulk::decompress(body, size as usize).map_err(bad)
        }
        _ => zstd::decode_all(body).map_err(bad),
    }
}

/// The most a chunk's frame may claim to hold before it is read as a stream instead
/// (chunks are cut at a few MB; one row may make a bigger one).
const MAX_CHUNK_RAW: u64 = 1 << 30;

/// Reads a chunk of `format` back as rows, checking its SHA-256 first.
pub fn decode_chunk_as(
    format: ChunkFormat,
    table: &Table,
    info: &ChunkInfo,
    body: &[u8],
) -> Result<Vec<Row>, DbError> {
    let what = || format!("staged chunk {}", info.key);
    let rows = match format {
        ChunkFormat::JsonLines => return decode_chunk(table, info, body),
        ChunkFormat::PgCopy => {
            crate::pgcopy::decode_stream(&what(), table, &open_chunk(info, body)?)?
        }
        ChunkFormat::MyTsv => {
            crate::mytsv::decode_stream(&what(), table, &open_chunk(info, body)?)?
        }
    };
    check_count(info, rows.len() as u64)?;
    Ok(rows)
}

/// A chunk of a native `format` (not JSON Lines) as it is, for a target that loads it so:
/// its SHA-256 checked, and its rows counted against its manifest. A binary `COPY`
/// stream is counted by the load instead: PostgreSQL's `COPY` reports the rows it took,
/// checked before the chunk commits, so the client does not parse the stream again.
pub fn open_native(format: ChunkFormat, info: &ChunkInfo, body: &[u8]) -> Result<Vec<u8>, DbError> {
    let raw = open_chunk(info, body)?;
    match format {
        ChunkFormat::PgCopy => {}
        ChunkFormat::MyTsv => check_count(info, crate::mytsv::count_rows(&raw))?,
        ChunkFormat::JsonLines => {
            return Err(DbError::Backend(format!(
                "staged chunk {}: JSON Lines are loaded as rows, not as they are",
                info.key
            )));
        }
    }
    Ok(raw)
}

/// A chunk's row count must be its manifest's.
pub fn check_count(info: &ChunkInfo, rows: u64) -> Result<(), DbError> {
    if rows != info.rows {
        return Err(DbError::Corrupt(format!(
            "staged chunk {}: {rows} rows, but its manifest says {}",
            info.key, info.rows
        )));
    }
    Ok(())
}

/// Reads a chunk of JSON Lines back, checking its SHA-256 first.
pub fn decode_chunk(table: &Table, info: &ChunkInfo, body: &[u8]) -> Result<Vec<Row>, DbError> {
    let raw = open_chunk(info, body)?;
    let bad = |what: String| DbError::Corrupt(format!("staged chunk {}: {what}", info.key));
    let mut rows = Vec::with_capacity(info.rows as usize);
    for line in raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let items: Vec<serde_json::Value> =
            serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
        if items.len() != table.columns.len() {
            return Err(bad(format!(
                "a row has {} values for {} columns",
                items.len(),
                table.columns.len()
            )));
        }
        let mut row = Vec::with_capacity(items.len());
        for (item, col) in items.into_iter().zip(&table.columns) {
            row.push(decode_value(col.ty, item).ok_or_else(|| {
                bad(format!(
                    "column {} holds a value that is not a {:?}",
                    col.name, col.ty
                ))
            })?);
        }
        rows.push(row);
    }
    check_count(info, rows.len() as u64)?;
    Ok(rows)
}

fn decode_value(ty: ColType, v: serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match (ty, v) {
        (_, J::Null) => Value::Null,
        (ColType::Bool, J::Bool(b)) => Value::Bool(b),
        (ColType::Int { .. }, J::Number(n)) => Value::Int(n.as_i64()?),
        (ColType::Float { .. }, J::Number(n)) => Value::Float(n.as_f64()?),
        (ColType::Float { .. }, J::String(s)) => Value::Float(match s.as_str() {
            "NaN" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            _ => return None,
        }),
        (ColType::Number { .. }, J::String(s)) => Value::Decimal(s),
        (ColType::Char { .. } | ColType::Text, J::String(s)) => Value::Text(s),
        (ColType::Binary, J::String(s)) => {
            Value::Bytes(base64::engine::general_purpose::STANDARD.decode(s).ok()?)
        }
        (ColType::Date, J::String(s)) => Value::Date(s),
        (ColType::Timestamp, J::String(s)) => Value::Timestamp(s),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;

    #[test]
    fn a_chunk_round_trips_exactly() {
        let mut table = every_type();
        let kept = ["i", "f", "d", "s", "b", "o"];
        table.columns.retain(|c| kept.contains(&c.name.as_str()));
        let rows = vec![
            vec![
                Value::Int(i64::MIN),
                Value::Float(0.1 + 0.2),
                Value::Decimal("-12345678901234.56789".into()),
                Value::Text("Lluís Puig i Ferrer 🎓 \"\n".into()),
                Value::Bytes(vec![0, 255, 10, 13]),
                Value::Bool(true),
            ],
            vec![
                Value::Int(i64::MAX),
                Value::Float(f64::NEG_INFINITY),
                Value::Null,
                Value::Text(String::new()),
                Value::Bytes(vec![]),
                Value::Null,
            ],
        ];
        let mut w = ChunkWriter::new().unwrap();
        for r in &rows {
            w.push(r).unwrap();
        }
        let Finished { body, sha256, .. } = w.finish().unwrap();
        let info = ChunkInfo {
            n: 1,
            key: "k".into(),
            rows: 2,
            bytes: body.len() as u64,
            sha256,
        };
        assert_eq!(decode_chunk(&table, &info, &body).unwrap(), rows);
        let mut bad = body.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            decode_chunk(&table, &info, &bad),
            Err(DbError::Corrupt(_))
        ));
    }

    fn col(name: &str, ty: ColType) -> Column {
        Column {
            name: name.into(),
            ty,
            nullable: true,
            default: None,
            auto_increment: false,
        }
    }

    /// A table of every column type.
    fn every_type() -> Table {
        Table {
            name: "t".into(),
            columns: vec![
                col("i", ColType::Int { bytes: 8 }),
                col("f", ColType::Float { double: true }),
                col(
                    "d",
                    ColType::Number {
                        precision: 20,
                        scale: 5,
                    },
                ),
                col("c", ColType::Char { len: 10 }),
                col("s", ColType::Text),
                col("b", ColType::Binary),
                col("o", ColType::Bool),
                col("day", ColType::Date),
                col("ts", ColType::Timestamp),
            ],
            primary_key: vec![],
            indexes: vec![],
            next_id: None,
        }
    }

    /// Rows of `format` through a writer: the finished chunk and its info.
    fn staged(format: ChunkFormat, rows: &[Row]) -> (Vec<u8>, ChunkInfo, Option<Vec<u8>>) {
        let mut w = ChunkWriter::with(format, true, 0).unwrap();
        for r in rows {
            w.push(r).unwrap();
        }
        let Finished { body, sha256, raw } = w.finish().unwrap();
        let info = ChunkInfo {
            n: 1,
            key: format!("dbmove/tables/t/000001.{}", format.extension()),
            rows: rows.len() as u64,
            bytes: body.len() as u64,
            sha256,
        };
        (body, info, raw)
    }

    /// Rows compare equal, value for value (a boolean is not an integer), NaN equal to NaN.
    fn assert_same(a: &[Row], b: &[Row]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(x.len(), y.len(), "row {i}");
            for (j, (v, w)) in x.iter().zip(y).enumerate() {
                match (v, w) {
                    (Value::Float(f), Value::Float(g)) if f.is_nan() => assert!(g.is_nan()),
                    _ => assert_eq!(v, w, "row {i}, column {j}"),
                }
            }
        }
    }

    #[test]
    fn a_load_data_chunk_round_trips_every_type_as_json_does() {
        let table = every_type();
        let text = |s: &str| Value::Text(s.into());
        let rows: Vec<Row> = vec![
            vec![
                Value::Int(i64::MIN),
                Value::Float(0.1 + 0.2),
                Value::Decimal("-12345678901234.56789".into()),
                text("Lluís 🎓"),
                text("\\lead\ttab\nnl\rcr\0nul \\N end\\"),
                Value::Bytes(vec![0, 0x0a, 0x5c, 0x09, 0x0d, 255]),
                Value::Bool(true),
                Value::Date("2024-02-29".into()),
                Value::Timestamp("2024-01-02 03:04:05.12".into()),
            ],
            vec![
                Value::Int(i64::MAX),
                Value::Float(f64::NAN),
                Value::Decimal("0".into()),
                text(""),
                text("\\N"),
                Value::Bytes(vec![]),
                Value::Bool(false),
                Value::Date("0044-03-15 BC".into()),
                Value::Timestamp("1970-01-01 00:00:00".into()),
            ],
            vec![
                Value::Int(-1),
                Value::Float(f64::INFINITY),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ],
            vec![
                Value::Int(0),
                Value::Float(f64::NEG_INFINITY),
                Value::Decimal("1e-7".into()),
                text("\t"),
                text("N"),
                Value::Bytes(vec![b'\\', b'N']),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
            vec![
                Value::Null,
                Value::Float(-1.5e-300),
                Value::Null,
                text("\\"),
                text("\n"),
                Value::Bytes(vec![0]),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
        ];
        let (body, info, raw) = staged(ChunkFormat::MyTsv, &rows);
        let decoded = decode_chunk_as(ChunkFormat::MyTsv, &table, &info, &body).unwrap();
        assert_same(&decoded, &rows);
        // What the JSON path gives for the same rows, value for value.
        let (jbody, jinfo, _) = staged(ChunkFormat::JsonLines, &rows);
        let json = decode_chunk_as(ChunkFormat::JsonLines, &table, &jinfo, &jbody).unwrap();
        assert_same(&decoded, &json);
        // As it is: the lines the MySQL engine's load writes, counted by their newlines.
        let raw = raw.unwrap();
        let mut lines = Vec::new();
        for r in &rows {
            crate::mytsv::line(r, &mut lines);
        }
        assert_eq!(raw, lines);
        assert_eq!(open_native(ChunkFormat::MyTsv, &info, &body).unwrap(), raw);
        let short = ChunkInfo {
            rows: 4,
            ..info.clone()
        };
        let e = open_native(ChunkFormat::MyTsv, &short, &body);
        assert!(
            matches!(&e, Err(DbError::Corrupt(m)) if m.contains("5 rows, but its manifest says 4")),
            "{e:?}"
        );
        let e = decode_chunk_as(ChunkFormat::MyTsv, &table, &short, &body);
        assert!(matches!(&e, Err(DbError::Corrupt(_))), "{e:?}");
    }

    #[test]
    fn a_damaged_load_data_chunk_names_its_key_line_and_column() {
        let table = every_type();
        let good = b"1\t1.5\t2\tc\ts\t00\t1\t2024-01-01\t2024-01-01 00:00:00\n";
        let mut raw = good.repeat(2);
        raw.extend_from_slice(b"1\t1.5\t2\tc\ts\t0x\t1\t2024-01-01\t2024-01-01 00:00:00\n");
        let body = zstd::bulk::compress(&raw, LEVEL).unwrap();
        let info = ChunkInfo {
            n: 1,
            key: "dbmove/tables/t/000001.mytsv.zst".into(),
            rows: 3,
            bytes: body.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(&body)),
        };
        match decode_chunk_as(ChunkFormat::MyTsv, &table, &info, &body) {
            Err(DbError::Corrupt(e)) => assert!(
                e.contains("staged chunk dbmove/tables/t/000001.mytsv.zst: line 3, column b:"),
                "{e}"
            ),
            r => panic!("{r:?}"),
        }
        // As it is, only the checksum and the count are read.
        assert!(open_native(ChunkFormat::MyTsv, &info, &body).is_ok());
        assert_eq!(
            ChunkFormat::of(MYTSV_FORMAT, "m").unwrap(),
            ChunkFormat::MyTsv
        );
        assert!(matches!(
            ChunkFormat::of("a2a-dbmove/other/9", "m"),
            Err(DbError::Corrupt(_))
        ));
    }
}

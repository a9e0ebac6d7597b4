//! Reading a school list: size limit, encoding, delimiter, header, records with their line
//! numbers. Nothing here knows what a school is; it only turns bytes into named cells,
//! whose columns [`crate::columns::settle`] then checks against their values.

use std::borrow::Cow;
use std::fmt;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// The default size limit of a school list: 50 MB.
pub const DEFAULT_MAX_BYTES: u64 = 50 * 1024 * 1024;

/// Why a file was refused as a whole. Nothing is registered from a refused file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct Refusal {
    /// The file, as named by the caller.
    pub file: String,
    /// What is wrong with it.
    pub reason: Reason,
}

/// What makes a file unreadable as a school list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// No bytes, or only white space.
    #[error(
        "the file is empty; a school list is CSV text with a header line (school code, name) and one line per school"
    )]
    Empty,
    /// A NUL or too many control characters: not text.
    #[error(
        "the file is not text (binary content near byte {offset}); export the list as CSV (UTF-8 or Windows-1252)"
    )]
    Binary {
        /// Byte offset of the first tell-tale character, in the decoded text.
        offset: usize,
    },
    /// Over the size limit.
    #[error(
        "the file has {size} bytes, over the limit of {limit}; split the list, or raise the limit"
    )]
    TooLarge {
        /// Its size, or at least this much when read from a stream.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A required column is not in the header.
    #[error(
        "line 1: no {} column; the header has {}. Name the columns as in the school directory (`Codi centre`, `Denominació completa`) or the plan file (`school_code`, `name`)",
        missing.join(" and no "),
        found_list(found)
    )]
    MissingColumns {
        /// The fields missing: `school_code`, `name`.
        missing: Vec<&'static str>,
        /// The header's cells as written.
        found: Vec<String>,
    },
    /// Two columns mean the same field.
    #[error(
        "line 1: columns {first:?} and {second:?} both name the field {field}; keep one of them"
    )]
    AmbiguousColumn {
        /// The field.
        field: &'static str,
        /// The first column's header.
        first: String,
        /// The second column's header.
        second: String,
    },
    /// The file could not be read at all (an I/O error).
    #[error("cannot read the file: {0}")]
    Io(String),
}

fn found_list(found: &[String]) -> String {
    if found.is_empty() {
        return "no columns".into();
    }
    let shown: Vec<String> = found.iter().take(40).map(|c| format!("{c:?}")).collect();
    let more = found.len().saturating_sub(40);
    if more > 0 {
        format!("the columns {} and {more} more", shown.join(", "))
    } else {
        format!("the columns {}", shown.join(", "))
    }
}

/// The fields intake understands. Every other column is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The school code (required).
    Code,
    /// The school's name (required).
    Name,
    /// `migrate` or `provision`.
    Kind,
    /// An explicit wave.
    Wave,
    /// Higher goes first.
    Priority,
    /// The source database URL (migrate).
    SourceDb,
    /// The source moodledata folder or `s3://` prefix (migrate).
    SourceFiles,
    /// The site's short name in its address.
    Dns,
    /// The school's web address (directory export).
    Web,
    /// The levels taught, as one list (`EINF2C|EPRI`).
    Levels,
    /// The primary-level flag column (`EPRI`).
    Primary,
    /// An explicit site template, `primary` or `secondary`.
    Template,
}

impl Field {
    /// Every field, in report order.
    pub const ALL: [Field; 12] = [
        Field::Code,
        Field::Name,
        Field::Kind,
        Field::Wave,
        Field::Priority,
        Field::SourceDb,
        Field::SourceFiles,
        Field::Dns,
        Field::Web,
        Field::Levels,
        Field::Primary,
        Field::Template,
    ];

    /// The field's name in reports (the plan file's column name).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Code => "school_code",
            Field::Name => "name",
            Field::Kind => "kind",
            Field::Wave => "wave",
            Field::Priority => "priority",
            Field::SourceDb => "source_db",
            Field::SourceFiles => "source_files",
            Field::Dns => "dns",
            Field::Web => "web",
            Field::Levels => "estudis",
            Field::Primary => "EPRI",
            Field::Template => "template",
        }
    }

    /// Normalised header names that mean this field, best first.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::Code => &["codicentre", "schoolcode", "id"],
            // `denominaci_completa` is how one year's export mangled the accent.
            Field::Name => &[
                "denominaciocompleta",
                "denominacicompleta",
                "name",
                "nom",
                "nomcentre",
            ],
            // `tipus` is kept only when it holds kinds (see `columns::settle`).
            Field::Kind => &["kind", "tipus"],
            Field::Wave => &["wave", "onada"],
            Field::Priority => &["priority", "prioritat"],
            Field::SourceDb => &["sourcedb"],
            Field::SourceFiles => &["sourcefiles"],
            Field::Dns => &["dns"],
            Field::Web => &["web", "url", "paginaweb", "adrecaweb", "webcentre"],
            Field::Levels => &["estudis", "levels", "nivells"],
            Field::Primary => &["epri"],
            Field::Template => &["template", "plantilla"],
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Folds a header cell for matching: lower case, accents off, and no spaces, underscores,
/// quotes or dashes. `"Denominació completa"` and `denominacio_completa` both give
/// `denominaciocompleta`.
pub fn normalise_header(cell: &str) -> String {
    cell.chars()
        .filter(|c| !c.is_whitespace() && !"_-'\"`’‘“”·.\u{feff}".contains(*c))
        .flat_map(fold_char)
        .flat_map(char::to_lowercase)
        .collect()
}

/// One character without its accent (Catalan, Spanish, French letters); others unchanged.
pub(crate) fn fold_char(c: char) -> std::iter::Once<char> {
    let folded = match c {
        'à' | 'á' | 'â' | 'ä' | 'ã' => 'a',
        'À' | 'Á' | 'Â' | 'Ä' | 'Ã' => 'A',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'È' | 'É' | 'Ê' | 'Ë' => 'E',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
        'ò' | 'ó' | 'ô' | 'ö' | 'õ' => 'o',
        'Ò' | 'Ó' | 'Ô' | 'Ö' | 'Õ' => 'O',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
        'ç' => 'c',
        'Ç' => 'C',
        'ñ' => 'n',
        'Ñ' => 'N',
        other => other,
    };
    std::iter::once(folded)
}

/// Which header column holds each field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Columns {
    index: [Option<usize>; Field::ALL.len()],
    /// The header's cells as written.
    pub header: Vec<String>,
}

impl Columns {
    /// Maps a header row. Unknown columns are ignored; a missing code or name column, or
    /// two columns for one field, refuse the file.
    pub fn from_header(header: &[String]) -> Result<Columns, Reason> {
        let normal: Vec<String> = header.iter().map(|h| normalise_header(h)).collect();
        let mut cols = Columns {
            index: [None; Field::ALL.len()],
            header: header.to_vec(),
        };
        for (slot, field) in Field::ALL.into_iter().enumerate() {
            // The best alias present wins; the same alias twice is ambiguous.
            for alias in field.aliases() {
                let mut hits = normal.iter().enumerate().filter(|(_, n)| n == alias);
                if let Some((first, _)) = hits.next() {
                    if let Some((second, _)) = hits.next() {
                        return Err(Reason::AmbiguousColumn {
                            field: field.as_str(),
                            first: header[first].clone(),
                            second: header[second].clone(),
                        });
                    }
                    cols.index[slot] = Some(first);
                    break;
                }
            }
        }
        let missing: Vec<&'static str> = [Field::Code, Field::Name]
            .into_iter()
            .filter(|f| cols.get(*f).is_none())
            .map(Field::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Reason::MissingColumns {
                missing,
                found: header
                    .iter()
                    .filter(|h| !h.trim().is_empty())
                    .cloned()
                    .collect(),
            });
        }
        Ok(cols)
    }

    /// The column index of `field`, if the header has it.
    pub fn get(&self, field: Field) -> Option<usize> {
        self.index[Field::ALL
            .iter()
            .position(|f| *f == field)
            .expect("every field is in ALL")]
    }

    /// Whether the header has `field`.
    pub fn has(&self, field: Field) -> bool {
        self.get(field).is_some()
    }

    /// Reads `field` from column `col`, or from none.
    pub(crate) fn set(&mut self, field: Field, col: Option<usize>) {
        if let Some(slot) = Field::ALL.iter().position(|f| *f == field) {
            self.index[slot] = col;
        }
    }
}

/// One data record of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The 1-based file line it starts on (the header is line 1).
    pub line: u64,
    /// Its cells.
    pub cells: Vec<String>,
    /// Set when the record could not be read whole (an unclosed quote).
    pub broken: Option<String>,
}

impl Record {
    /// The cell of `field`, trimmed; `""` when the column or the cell is absent.
    pub fn get<'a>(&'a self, cols: &Columns, field: Field) -> &'a str {
        cols.get(field)
            .and_then(|i| self.cells.get(i))
            .map_or("", |s| s.trim())
    }
}

/// A decoded, split school list.
#[derive(Clone, Debug)]
pub struct Table {
    /// The encoding the bytes were read in.
    pub encoding: &'static str,
    /// The delimiter found.
    pub delimiter: char,
    /// The header's columns.
    pub columns: Columns,
    /// Every non-blank record after the header, in file order.
    pub records: Vec<Record>,
    /// What the columns were found to hold (see [`crate::columns::settle`]).
    pub profile: crate::columns::Profile,
}

/// Decodes the bytes: a BOM names the encoding; else valid UTF-8 is UTF-8; else the file
/// is read as Windows-1252, the superset of ISO-8859-1 that spreadsheets write.
pub fn decode(bytes: &[u8]) -> (Cow<'_, str>, &'static Encoding) {
    if let Some((enc, bom)) = Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom..]);
        return (text, enc);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => (Cow::Borrowed(s), UTF_8),
        Err(_) => {
            let (text, _) = WINDOWS_1252.decode_without_bom_handling(bytes);
            (text, WINDOWS_1252)
        }
    }
}

/// Where the text stops looking like text: a NUL, or more than one control character in
/// twenty within the first 64 KiB.
fn binary_at(text: &str) -> Option<usize> {
    if let Some(i) = text.find('\0') {
        return Some(i);
    }
    let mut controls = 0usize;
    let mut seen = 0usize;
    let mut first = None;
    for (i, c) in text.char_indices().take(65_536) {
        seen += 1;
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}') {
            controls += 1;
            first.get_or_insert(i);
        }
    }
    (seen > 0 && controls * 20 > seen).then(|| first.unwrap_or(0))
}

/// The delimiter of the first line: whichever of `,` `;` tab appears most there outside
/// quotes. A header with none of them is one column, read with `,`.
pub fn sniff_delimiter(text: &str) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '\n' if !quoted => break,
            ',' if !quoted => counts[0] += 1,
            ';' if !quoted => counts[1] += 1,
            '\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let candidates = [b',', b';', b'\t'];
    let best = (0..3).max_by_key(|&i| (counts[i], i)).unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        candidates[best]
    }
}

/// The line on which a quote opens that the file never closes, if any.
fn unclosed_quote(text: &str, delimiter: u8) -> Option<u64> {
    let delimiter = delimiter as char;
    let mut line = 1u64;
    let mut quoted = false;
    let mut field_start = true;
    let mut opened_at = 0u64;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                }
                '"' => quoted = false,
                '\n' => line += 1,
                _ => {}
            }
            continue;
        }
        match c {
            '"' if field_start => {
                quoted = true;
                opened_at = line;
            }
            '\n' => {
                line += 1;
                field_start = true;
                continue;
            }
            c if c == delimiter => {
                field_start = true;
                continue;
            }
            _ => {}
        }
        field_start = false;
    }
    quoted.then_some(opened_at)
}

/// Reads a whole school list held in memory. `file` names it in messages.
pub fn read_table(file: &str, bytes: &[u8], max_bytes: u64) -> Result<Table, Refusal> {
    let refuse = |reason| Refusal {
        file: file.to_owned(),
        reason,
    };
    if bytes.len() as u64 > max_bytes {
        return Err(refuse(Reason::TooLarge {
            size: bytes.len() as u64,
            limit: max_bytes,
        }));
    }
    let (text, encoding) = decode(bytes);
    if let Some(offset) = binary_at(&text) {
        return Err(refuse(Reason::Binary { offset }));
    }
    if text.trim().is_empty() {
        return Err(refuse(Reason::Empty));
    }
    let delimiter = sniff_delimiter(&text);
    let unclosed = unclosed_quote(&text, delimiter);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut header: Option<Columns> = None;
    let mut records = Vec::new();
    let mut row = csv::StringRecord::new();
    // csv's own line count skips blank lines, so lines are counted from byte offsets.
    let (mut at_byte, mut at_line) = (0usize, 1u64);
    loop {
        match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            // The text is UTF-8 already and the reader is flexible: what is left is I/O.
            Err(e) => return Err(refuse(Reason::Io(e.to_string()))),
        }
        let byte = row.position().map_or(at_byte, |p| p.byte() as usize);
        // The position may sit before the line ends (and blank lines) that precede the
        // record: step over them to where the record really starts.
        let mut upto = byte.clamp(at_byte, text.len());
        while matches!(text.as_bytes().get(upto), Some(b'\r' | b'\n')) {
            upto += 1;
        }
        at_line += text.as_bytes()[at_byte..upto]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        at_byte = upto;
        let line = at_line;
        let cells: Vec<String> = row.iter().map(str::to_owned).collect();
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        match &header {
            None => header = Some(Columns::from_header(&cells).map_err(refuse)?),
            Some(_) => {
                let broken = (unclosed == Some(line)).then(|| {
                    format!(
                        "a quote opened on line {line} is never closed, so every line from \
                         {line} to the end was read as one cell; close the quote"
                    )
                });
                records.push(Record {
                    line,
                    cells,
                    broken,
                });
            }
        }
    }
    let Some(columns) = header else {
        return Err(refuse(Reason::Empty));
    };
    let mut table = Table {
        encoding: encoding.name(),
        delimiter: delimiter as char,
        columns,
        records,
        profile: Default::default(),
    };
    table.profile = crate::columns::settle(&mut table);
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(bytes: &[u8]) -> Table {
        read_table("t.csv", bytes, DEFAULT_MAX_BYTES).unwrap()
    }

    fn refusal(bytes: &[u8]) -> Reason {
        read_table("t.csv", bytes, DEFAULT_MAX_BYTES)
            .unwrap_err()
            .reason
    }

    #[test]
    fn headers_match_by_name_ignoring_case_accents_spaces_and_quotes() {
        for h in [
            "Denominació completa",
            "denominaci_completa",
            "DENOMINACIO COMPLETA",
            "'nom'",
            "Name",
        ] {
            let cols = Columns::from_header(&["Codi centre".into(), h.into()]).unwrap();
            assert_eq!(cols.get(Field::Name), Some(1), "{h}");
        }
        for h in ["codi_centre", "ID", "School Code", "\"Codi centre\""] {
            let cols = Columns::from_header(&[h.into(), "nom".into()]).unwrap();
            assert_eq!(cols.get(Field::Code), Some(0), "{h}");
        }
    }

    #[test]
    fn the_best_alias_wins_and_a_repeated_one_is_ambiguous() {
        let cols =
            Columns::from_header(&["id".into(), "nom".into(), "Codi centre".into()]).unwrap();
        assert_eq!(cols.get(Field::Code), Some(2), "Codi centre beats id");
        let e = Columns::from_header(&["nom".into(), "codi_centre".into(), "Codi centre".into()])
            .unwrap_err();
        assert!(matches!(
            e,
            Reason::AmbiguousColumn {
                field: "school_code",
                ..
            }
        ));
    }

    #[test]
    fn a_missing_column_names_what_was_found() {
        let e = refusal(b"codi_centre;adreca;municipi\n08000013;x;y\n");
        let msg = e.to_string();
        assert!(msg.contains("no name column"), "{msg}");
        assert!(msg.contains("\"adreca\""), "{msg}");
        assert!(msg.contains("\"municipi\""), "{msg}");
        let e = refusal(b"foo,bar\n1,2\n").to_string();
        assert!(e.contains("no school_code and no name column"), "{e}");
    }

    #[test]
    fn delimiters_are_sniffed() {
        assert_eq!(sniff_delimiter("a,b;c;d\n"), b';');
        assert_eq!(sniff_delimiter("a\tb\tc\n1,2,3,4,5\n"), b'\t');
        assert_eq!(sniff_delimiter("\"a;b\",c\n"), b',');
        assert_eq!(sniff_delimiter("nom\n"), b',');
        let t = table(b"school_code\tname\n08000013\tEscola, la nostra\n");
        assert_eq!(t.delimiter, '\t');
        assert_eq!(t.records[0].cells[1], "Escola, la nostra");
    }

    #[test]
    fn encodings_are_detected() {
        let utf8 = "school_code,name\n08000013,Escola Bertí\n";
        let t = table(utf8.as_bytes());
        assert_eq!(t.encoding, "UTF-8");
        assert_eq!(t.records[0].cells[1], "Escola Bertí");

        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(utf8.as_bytes());
        let t = table(&bom);
        assert_eq!(
            t.columns.get(Field::Code),
            Some(0),
            "the BOM is not in the header"
        );

        let (latin1, _, _) = WINDOWS_1252.encode(utf8);
        assert!(std::str::from_utf8(&latin1).is_err());
        let t = table(&latin1);
        assert_eq!(t.encoding, "windows-1252");
        assert_eq!(t.records[0].cells[1], "Escola Bertí");

        let mut utf16 = vec![0xFF, 0xFE];
        for u in utf8.encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        let t = table(&utf16);
        assert_eq!(t.encoding, "UTF-16LE");
        assert_eq!(t.records[0].cells[1], "Escola Bertí");
    }

    #[test]
    fn quoted_fields_crlf_and_line_numbers() {
        let t = table(
            b"school_code,name\r\n08000013,\"Escola\r\nde dalt, i \"\"baix\"\"\"\r\n\r\n08000021,B\r\n",
        );
        assert_eq!(t.records.len(), 2);
        assert_eq!(t.records[0].line, 2);
        assert_eq!(t.records[0].cells[1], "Escola\r\nde dalt, i \"baix\"");
        assert_eq!(
            t.records[1].line, 5,
            "the quoted newline and blank line count"
        );
    }

    #[test]
    fn blank_and_delimiter_only_lines_are_skipped() {
        let t = table(b"school_code;name\n;\n\n08000013;A\n ; \n");
        assert_eq!(t.records.len(), 1);
        assert_eq!(t.records[0].line, 4);
    }

    #[test]
    fn an_unclosed_quote_marks_its_record() {
        let t = table(b"school_code,name\n08000013,A\n08000021,\"B\n08000034,C\n");
        assert_eq!(t.records.len(), 2);
        assert!(t.records[0].broken.is_none());
        let why = t.records[1].broken.as_deref().unwrap();
        assert!(why.contains("line 3"), "{why}");
    }

    #[test]
    fn unreadable_files_are_refused() {
        assert_eq!(refusal(b""), Reason::Empty);
        assert_eq!(refusal(b" \r\n\t\n"), Reason::Empty);
        assert_eq!(refusal(b";;;\n;;\n"), Reason::Empty);
        assert!(matches!(
            refusal(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Reason::Binary { .. }
        ));
        let controls: Vec<u8> = (0..200u8).map(|i| i % 8 + 1).collect();
        assert!(matches!(refusal(&controls), Reason::Binary { .. }));
        let e = read_table("big.csv", b"school_code,name\n", 10).unwrap_err();
        assert_eq!(
            e.reason,
            Reason::TooLarge {
                size: 17,
                limit: 10
            }
        );
        assert!(e.to_string().starts_with("big.csv: "), "{e}");
    }
}

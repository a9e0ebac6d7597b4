//! Reports: the error CSV (`line,school_code,field,value,message`), defused against
//! spreadsheet formula injection, and the JSON summary.

use serde::Serialize;

use crate::columns::Warning;
use crate::plan::{Plan, Shape, Slug, WaveJson};
use crate::register::Registration;
use crate::validate::RowError;

/// Makes a cell safe to open in a spreadsheet: a cell that begins with `= + - @` (or a tab
/// or carriage return, which some spreadsheets skip before a formula) gets a leading `'`,
/// so it shows as text and never runs.
pub fn defuse(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// The error report as CSV text, one line per error, every cell defused.
pub fn errors_csv(errors: &[RowError]) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let _ = w.write_record(["line", "school_code", "field", "value", "message"]);
    for e in errors {
        let line = e.line.to_string();
        let _ = w.write_record([
            line.as_str(),
            &defuse(&e.school_code),
            &defuse(&e.field),
            &defuse(&e.value),
            &defuse(&e.message),
        ]);
    }
    // Writing to a Vec cannot fail, and every cell is valid UTF-8.
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// The error report of a refused file: one row, for the file as a whole (no line).
pub fn refusal_csv(refusal: &crate::read::Refusal) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let _ = w.write_record(["line", "school_code", "field", "value", "message"]);
    let _ = w.write_record(["", "", "file", "", &defuse(&refusal.to_string())]);
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// A school that an upload did not change because it is already under way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnderWay {
    /// The school.
    pub school_code: String,
    /// Its status now.
    pub status: String,
}

/// The JSON summary written beside the error report.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// What the reader must know first: a field on which most rows fail, a column set
    /// aside ([`Plan::warnings`]).
    pub warnings: Vec<Warning>,
    /// The list's name.
    pub file: String,
    /// The SHA-256 of its bytes.
    pub sha256: String,
    /// Its shape.
    pub shape: Shape,
    /// Its encoding.
    pub encoding: String,
    /// Its delimiter.
    pub delimiter: String,
    /// Data rows read.
    pub rows: usize,
    /// Schools accepted.
    pub accepted: usize,
    /// Rows rejected.
    pub rejected: usize,
    /// The waves.
    pub waves: Vec<WaveJson>,
    /// Short names made from school names.
    pub slugs: Vec<Slug>,
    /// Schools registered now.
    pub created: Vec<String>,
    /// Registered schools whose row changed, updated.
    pub updated: Vec<String>,
    /// Registered schools whose row is as before.
    pub unchanged: Vec<String>,
    /// Schools left alone because they are already under way.
    pub under_way: Vec<UnderWay>,
    /// Schools of the previous version of this list that this one no longer has. Nothing is
    /// deleted.
    pub removed: Vec<String>,
    /// The blob key of the error report.
    pub error_report: String,
}

impl Summary {
    /// The summary of `plan`, registered as `reg`, for the file with `sha256`.
    pub fn new(plan: &Plan, sha256: &str, reg: &Registration, error_report: &str) -> Self {
        let codes = |v: &[a2a_core::SchoolCode]| v.iter().map(|c| c.to_string()).collect();
        Self {
            warnings: plan.warnings(),
            file: plan.file.clone(),
            sha256: sha256.to_owned(),
            shape: plan.shape,
            encoding: plan.encoding.to_owned(),
            delimiter: plan.delimiter.escape_default().to_string(),
            rows: plan.rows,
            accepted: plan.schools.len(),
            rejected: plan.rejected(),
            waves: plan.waves(),
            slugs: plan.slugs.clone(),
            created: codes(&reg.created),
            updated: codes(&reg.updated),
            unchanged: codes(&reg.unchanged),
            under_way: reg
                .under_way
                .iter()
                .map(|(c, s)| UnderWay {
                    school_code: c.to_string(),
                    status: s.to_string(),
                })
                .collect(),
            removed: codes(&reg.removed),
            error_report: error_report.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        for bad in [
            "=1+1",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "\t=x",
            "\r=x",
        ] {
            assert_eq!(defuse(bad), format!("'{bad}"));
        }
        for ok in ["08000013", "Escola", "", "a=b", "'already"] {
            assert_eq!(defuse(ok), ok);
        }
    }

    #[test]
    fn a_refusal_is_one_row_for_the_file() {
        let r = crate::read::read_table("x.csv", b"", 10).unwrap_err();
        let text = refusal_csv(&r);
        assert!(
            text.starts_with(
                "line,school_code,field,value,message\r\n,,file,,\"x.csv: the file is empty"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_error_csv_has_its_header_and_quotes_what_needs_it() {
        let e = RowError {
            line: 7,
            school_code: "=HYPERLINK(\"http://x\")".into(),
            field: "name".into(),
            value: "a,b\nc".into(),
            message: "-bad".into(),
        };
        let text = errors_csv(&[e]);
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            r.headers().unwrap(),
            vec!["line", "school_code", "field", "value", "message"]
        );
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "7");
        assert_eq!(&row[1], "'=HYPERLINK(\"http://x\")");
        assert_eq!(&row[3], "a,b\nc");
        assert_eq!(&row[4], "'-bad");
    }
}

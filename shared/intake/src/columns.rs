//! Settling the columns by what they hold. A header name matched through an alias is only a
//! guess: the department's exports call the school's type `tipus` (`ESC`, `INS`, `ZER`…),
//! which is not the row's kind. So an optional field found through a secondary alias is
//! kept only when its values fit the field, a column is the kind when it is named `kind` or
//! holds `migrate`/`provision`, and what was decided is kept for the plan's warnings.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::read::{Field, Record, Table};
use crate::validate::{agora_dns, check_db, check_dns, check_files, parse_code, parse_template};

/// Rows looked at to find the columns that could stand for a field.
const SAMPLE: usize = 200;

/// Something the plan's reader must know about the file as a whole, said once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The field concerned (`kind`, `school_code`…, or `row`).
    pub field: String,
    /// The column concerned, as the header writes it: the one read for the field, or the
    /// one set aside; `None` when no column was read for it.
    pub column: Option<String>,
    /// Other columns whose values fit the field.
    pub could_use: Vec<String>,
    /// What happened and what to do.
    pub message: String,
}

/// What the columns were found to hold: for each field, the column read and the other
/// columns whose values fit it, and the columns set aside by their values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    used: BTreeMap<Field, String>,
    fitting: BTreeMap<Field, Vec<String>>,
    notes: Vec<Warning>,
    width: usize,
    delimiter: char,
}

/// Whether `cell` is a value of `field`; `None` for the fields any value fits.
fn fits(field: Field, cell: &str) -> Option<bool> {
    let cell = cell.trim();
    Some(match field {
        Field::Code => parse_code(cell).is_ok(),
        Field::Name => cell.chars().any(char::is_alphabetic) && !cell.chars().any(char::is_control),
        Field::Kind => is_kind(cell),
        Field::Wave => cell.parse::<u32>().is_ok_and(|n| n >= 1),
        Field::Priority => cell.parse::<i32>().is_ok(),
        Field::SourceDb => check_db(cell).is_ok(),
        Field::SourceFiles => check_files(cell).is_ok(),
        // A short name has a letter: postal codes and phone numbers are not short names.
        Field::Dns => check_dns(cell).is_ok() && cell.bytes().any(|b| b.is_ascii_lowercase()),
        Field::Web => agora_dns(cell).is_some(),
        Field::Template => parse_template(cell).is_some(),
        Field::Levels | Field::Primary => return None,
    })
}

fn is_kind(cell: &str) -> bool {
    cell.eq_ignore_ascii_case("migrate") || cell.eq_ignore_ascii_case("provision")
}

/// The fields whose column is dropped, with a warning, when none of its values fits and
/// the header names it only through a secondary alias (`tipus`, `onada`, `prioritat`,
/// `plantilla`). Under its own name (`kind`, `wave`…) a bad value is a row error instead.
const CHECKED: [Field; 4] = [Field::Kind, Field::Wave, Field::Priority, Field::Template];

fn cells(records: &[Record], col: usize) -> impl Iterator<Item = &str> {
    records
        .iter()
        .filter_map(move |r| r.cells.get(col))
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
}

/// A few distinct values of a column, for a message: `"ESC", "INS", "ZER"`.
fn examples(records: &[Record], col: usize) -> String {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in cells(records, col) {
        if seen.insert(c) {
            out.push(format!("{c:?}"));
            if out.len() == 5 {
                break;
            }
        }
    }
    out.join(", ")
}

/// Settles `table`'s columns by their values (see the module's comment) and returns what
/// was found, for [`Profile::warnings`].
pub fn settle(table: &mut Table) -> Profile {
    let header = table.columns.header.clone();
    let mut notes = Vec::new();
    for field in CHECKED {
        let Some(col) = table.columns.get(field) else {
            continue;
        };
        if crate::read::normalise_header(&header[col]) == field.as_str() {
            continue;
        }
        let mut values = cells(&table.records, col).peekable();
        if values.peek().is_none() || values.any(|c| fits(field, c) == Some(true)) {
            continue;
        }
        table.columns.set(field, None);
        let what = match field {
            Field::Kind => format!(
                "holds {} (in the department's exports, the type of school), not `migrate` \
                 or `provision`: it is not read as the kind, and every row takes the default \
                 kind (`--kind`; `A2A_INTAKE_KIND` in the Lambda)",
                examples(&table.records, col)
            ),
            _ => format!(
                "holds {}, which are not values of {field}: it is not read as {field}",
                examples(&table.records, col)
            ),
        };
        notes.push(Warning {
            field: field.as_str().into(),
            column: Some(header[col].clone()),
            could_use: Vec::new(),
            message: format!("column {:?} {what}", header[col]),
        });
    }
    if !table.columns.has(Field::Kind) {
        // A column of nothing but kinds is the kind, whatever its name; two are a guess.
        let taken: BTreeSet<usize> = Field::ALL
            .iter()
            .filter_map(|f| table.columns.get(*f))
            .collect();
        let only_kinds: Vec<usize> = (0..header.len())
            .filter(|c| !taken.contains(c))
            .filter(|&c| {
                let mut values = cells(&table.records, c).peekable();
                values.peek().is_some() && values.all(is_kind)
            })
            .collect();
        if let [col] = only_kinds[..] {
            table.columns.set(Field::Kind, Some(col));
        }
    }

    // What each field's column is, and which others would fit it, from the first rows.
    let sample = &table.records[..table.records.len().min(SAMPLE)];
    let mut used = BTreeMap::new();
    let mut fitting = BTreeMap::new();
    for field in Field::ALL {
        let col = table.columns.get(field);
        if let Some(c) = col {
            used.insert(field, header[c].clone());
        }
        if fits(field, "").is_none() || sample.is_empty() {
            continue;
        }
        let others: Vec<String> = (0..header.len())
            .filter(|c| Some(*c) != col && !header[*c].trim().is_empty())
            .filter(|&c| {
                let n = sample
                    .iter()
                    .filter(|r| r.cells.get(c).is_some_and(|v| fits(field, v) == Some(true)))
                    .count();
                n * 2 > sample.len()
            })
            .map(|c| header[c].clone())
            .collect();
        fitting.insert(field, others);
    }
    Profile {
        used,
        fitting,
        notes,
        width: header.len(),
        delimiter: table.delimiter,
    }
}

impl Profile {
    /// The column read for `field`; a missing `dns` is read from the Àgora address in
    /// `web`.
    fn column(&self, field: Field) -> Option<String> {
        match (field, self.used.get(&field)) {
            (_, Some(c)) => Some(c.clone()),
            (Field::Dns, None) => self
                .used
                .get(&Field::Web)
                .map(|w| format!("{w} (its Àgora address)")),
            _ => None,
        }
    }

    /// The plan's warnings, most important first: every field on which more than half of
    /// the `rows` fail (by `failing`, the distinct failing lines per field name, most first),
    /// then the columns set aside by their values.
    pub fn warnings(&self, rows: usize, failing: &BTreeMap<String, usize>) -> Vec<Warning> {
        let mut majority: Vec<(&String, &usize)> =
            failing.iter().filter(|(_, n)| **n * 2 > rows).collect();
        majority.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut out: Vec<Warning> = majority
            .into_iter()
            .map(|(name, n)| self.majority(name, *n, rows))
            .collect();
        out.extend(self.notes.iter().cloned());
        out
    }

    fn majority(&self, name: &str, n: usize, rows: usize) -> Warning {
        let head = format!("{n} of {rows} rows fail on {name}");
        let Some(field) = Field::ALL.into_iter().find(|f| f.as_str() == name) else {
            // `row`: the rows do not split as the header does.
            return Warning {
                field: name.into(),
                column: None,
                could_use: Vec::new(),
                message: format!(
                    "{head}: they do not split into the header's {} columns with the \
                     delimiter {:?}; check the delimiter and the quotes of the file",
                    self.width,
                    self.delimiter.escape_default().to_string()
                ),
            };
        };
        let column = self.column(field);
        let could_use = self.fitting.get(&field).cloned().unwrap_or_default();
        let used = match &column {
            Some(c) => format!("the column read for it is {c:?}"),
            None => format!("no column was read as {name}"),
        };
        let others = if could_use.is_empty() {
            "no other column holds values that fit it".to_owned()
        } else {
            let list: Vec<String> = could_use.iter().map(|c| format!("{c:?}")).collect();
            format!("columns that could have been read: {}", list.join(", "))
        };
        Warning {
            field: name.into(),
            column,
            could_use,
            message: format!(
                "{head}: {used}; {others}. Check the header (or --kind) before taking it in"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{DEFAULT_MAX_BYTES, read_table};

    fn table(text: &str) -> Table {
        read_table("t.csv", text.as_bytes(), DEFAULT_MAX_BYTES).unwrap()
    }

    #[test]
    fn a_tipus_of_school_types_is_not_the_kind_and_is_said_once() {
        let t = table("id,tipus,nom\n08000013,ESC,A\n08000021,INS,B\n08000034,ZER,C\n");
        assert!(!t.columns.has(Field::Kind));
        let w = t.profile.warnings(3, &BTreeMap::new());
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].field, "kind");
        assert_eq!(w[0].column.as_deref(), Some("tipus"));
        assert!(w[0].message.contains("\"tipus\""), "{}", w[0].message);
        assert!(
            w[0].message.contains("\"ESC\", \"INS\", \"ZER\""),
            "{}",
            w[0].message
        );
    }

    #[test]
    fn a_column_of_kinds_is_the_kind_whatever_its_name() {
        let t = table("id,tipus,nom\n08000013,migrate,A\n08000021,sideways,B\n");
        assert_eq!(t.columns.get(Field::Kind), Some(1), "tipus holding kinds");
        let t = table("id,nom,accio\n08000013,A,provision\n08000021,B,\n");
        assert_eq!(t.columns.get(Field::Kind), Some(2));
        let t = table("id,nom,a,b\n08000013,A,provision,migrate\n");
        assert!(!t.columns.has(Field::Kind), "two candidates: neither");
        let t = table("id,nom,kind\n08000013,A,ESC\n");
        assert_eq!(t.columns.get(Field::Kind), Some(2), "named kind: kept");
        assert!(t.profile.notes.is_empty());
    }

    #[test]
    fn secondary_aliases_of_other_fields_are_checked_too() {
        let t = table("id,nom,onada,prioritat\n08000013,A,primera,alta\n08000021,B,,\n");
        assert!(!t.columns.has(Field::Wave) && !t.columns.has(Field::Priority));
        assert_eq!(t.profile.notes.len(), 2);
        let t = table("id,nom,onada\n08000013,A,2\n08000021,B,x\n");
        assert!(
            t.columns.has(Field::Wave),
            "one value fits: bad ones are row errors"
        );
    }

    #[test]
    fn a_majority_failure_names_the_column_read_and_the_ones_that_fit() {
        let t = table("id,codi,nom\n1,08000013,A\n2,08000021,B\n3,17000034,C\n");
        let failing = BTreeMap::from([("school_code".to_owned(), 3), ("name".to_owned(), 1)]);
        let w = t.profile.warnings(3, &failing);
        assert_eq!(w.len(), 1, "only the field failing on more than half");
        assert_eq!(w[0].column.as_deref(), Some("id"));
        assert_eq!(w[0].could_use, ["codi"]);
        assert!(w[0].message.starts_with("3 of 3 rows fail on school_code"));
        assert!(
            t.profile.warnings(6, &failing).is_empty(),
            "half is not more"
        );

        let t = table("id,nom,web\n08000013,A,https://agora.xtec.cat/a/\n");
        let w = t
            .profile
            .warnings(1, &BTreeMap::from([("dns".to_owned(), 1)]));
        assert_eq!(w[0].column.as_deref(), Some("web (its Àgora address)"));
        let w = t
            .profile
            .warnings(1, &BTreeMap::from([("row".to_owned(), 1)]));
        assert!(w[0].message.contains("delimiter \",\""), "{}", w[0].message);
    }
}

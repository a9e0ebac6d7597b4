//! One side of a verify at a time. The source side (on premises) sums the source's tables
//! and lists its moodledata, and writes both to the stage; the target side (in AWS) sums
//! the target's tables and lists the copy, and compares. The sums are those of
//! `a2a_dbmove::verify` (row count, and SHA-256 of the canonical rows in key order, or an
//! order-free sum for a table without a key), so either side can be recomputed alone.

use std::collections::BTreeMap;

use a2a_dbmove::schema::Table;
use a2a_dbmove::{Db, DbError};
use serde::{Deserialize, Serialize};

use crate::StepError;

/// One table's sum, with the column order and key it was taken in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSum {
    /// The table.
    pub table: String,
    /// Its columns, in the order their values were summed.
    pub columns: Vec<String>,
    /// Its primary key, in key order; empty when it has none.
    pub key: Vec<String>,
    /// Rows.
    pub rows: u64,
    /// The content checksum (hex).
    pub checksum: String,
}

/// The source's side of a database check: every table of the part, summed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceTables {
    /// Every table of the prefix in the source (the target must have the same ones).
    pub all: Vec<String>,
    /// The sums of the part's tables.
    pub sums: Vec<TableSum>,
}

/// The sum of `t` in `db`, its rows read in the order of `t`'s key.
pub async fn table_sum(db: &Db, t: &Table) -> Result<TableSum, DbError> {
    let (rows, checksum) = a2a_dbmove::verify::table_sum(db, t).await?;
    Ok(TableSum {
        table: t.name.clone(),
        columns: t.columns.iter().map(|c| c.name.clone()).collect(),
        key: t.primary_key.clone(),
        rows,
        checksum,
    })
}

/// The target's table `t` as the source summed it: its columns in the source's order and
/// the source's key; a column on one side only is a difference, named.
pub fn aligned(t: &Table, source: &TableSum) -> Result<Table, String> {
    a2a_dbmove::verify::aligned_to(t, &source.columns, &source.key)
}

/// The files of a moodledata folder, as the source side lists them: key under the site
/// root to size.
pub type FileList = BTreeMap<String, u64>;

/// Compares the source's file list with the copy's (key to size): missing, extra and
/// different keys, each list sorted, the first few named.
pub fn compare_files(source: &FileList, copy: &FileList) -> Result<u64, StepError> {
    let missing: Vec<&String> = source.keys().filter(|k| !copy.contains_key(*k)).collect();
    let extra: Vec<&String> = copy.keys().filter(|k| !source.contains_key(*k)).collect();
    let different: Vec<&String> = source
        .iter()
        .filter(|(k, s)| copy.get(*k).is_some_and(|c| c != *s))
        .map(|(k, _)| k)
        .collect();
    if missing.is_empty() && extra.is_empty() && different.is_empty() {
        return Ok(source.len() as u64);
    }
    let first = missing
        .first()
        .map(|k| format!("{k} is missing"))
        .or_else(|| extra.first().map(|k| format!("{k} has no source file")))
        .or_else(|| different.first().map(|k| format!("{k} differs in size")))
        .unwrap_or_default();
    Err(StepError::Verify(format!(
        "files differ: {} missing, {} extra, {} different (e.g. {first})",
        missing.len(),
        extra.len(),
        different.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lists_compare_by_key_and_size() {
        let a: FileList = [("filedir/ab/cd/abcd".into(), 3), ("moodledata/x".into(), 1)].into();
        assert_eq!(compare_files(&a, &a.clone()).unwrap(), 2);
        let mut b = a.clone();
        b.insert("moodledata/x".into(), 2);
        b.insert("moodledata/y".into(), 2);
        let e = compare_files(&a, &b).unwrap_err().to_string();
        assert!(e.contains("0 missing, 1 extra, 1 different"), "{e}");
        let e = compare_files(&b, &a).unwrap_err().to_string();
        assert!(e.contains("moodledata/y is missing"), "{e}");
    }
}

//! One side of a verify at a time. The source side (on premises) sums the source's tables
//! and hashes its moodledata, and writes both to the stage; the target side (in AWS) sums
//! the target's tables and reads the copy's stored checksums, and compares. The sums are those of
//! `a2a_dbmove::verify` (row count, and SHA-256 of the canonical rows in key order, or an
//! order-free sum for a table without a key), so either side can be recomputed alone.

use a2a_core::SchoolCode;
use a2a_dbmove::schema::Table;
use a2a_dbmove::{Db, DbError};
use a2a_files::sums::CopyCheck;
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

/// The files of a moodledata folder, as the source side sums them: key under the site
/// root to size and content checksum (SHA-1 for `filedir`, SHA-256 for the rest).
pub type FileList = a2a_files::sums::Sums;

/// Source files hashed at once (the disk or NFS is the limit), as many as the sync copies.
pub const HASH_JOBS: usize = 8;

/// Stored checksums read at once on the target side (each a `HeadObject`: latency-bound).
pub const HEAD_JOBS: usize = 32;

/// The verdict on a copy of school `code`: the number of files compared, or
/// `A2A.Permanent.Verify` with the counts of missing, extra and different keys, the first
/// key of each kind named, and why it differs.
pub fn compare_files(code: &SchoolCode, found: &CopyCheck) -> Result<u64, StepError> {
    if found.equal() {
        return Ok(found.compared);
    }
    let mut named = Vec::new();
    if let Some(k) = found.missing.first() {
        named.push(format!("{k} is missing"));
    }
    if let Some(k) = found.extra.first() {
        named.push(format!("{k} has no source file"));
    }
    if let Some(d) = found.different.first() {
        named.push(format!("{} differs ({})", d.key, d.why));
    }
    Err(StepError::Verify(format!(
        "school {code}: files differ: {} missing, {} extra, {} different (e.g. {})",
        found.missing.len(),
        found.extra.len(),
        found.different.len(),
        named.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_check_names_the_school_and_each_kind_of_key() {
        let code = SchoolCode::parse("08012345").unwrap();
        let clean = CopyCheck {
            compared: 2,
            ..CopyCheck::default()
        };
        assert_eq!(compare_files(&code, &clean).unwrap(), 2);
        let wrong = CopyCheck {
            compared: 2,
            missing: vec!["instances/08012345/moodledata/a".into()],
            extra: vec![],
            different: vec![a2a_files::Difference {
                key: "instances/08012345/filedir/ab/cd/abcd".into(),
                why: "content: the copy's SHA-1 is 00, the source's abcd".into(),
            }],
        };
        let e = compare_files(&code, &wrong).unwrap_err();
        assert_eq!(e.name(), "A2A.Permanent.Verify");
        let e = e.to_string();
        assert!(e.contains("school 08012345"), "{e}");
        assert!(e.contains("1 missing, 0 extra, 1 different"), "{e}");
        assert!(
            e.contains("instances/08012345/moodledata/a is missing"),
            "{e}"
        );
        assert!(
            e.contains("instances/08012345/filedir/ab/cd/abcd differs (content: the copy's SHA-1"),
            "{e}"
        );
    }
}

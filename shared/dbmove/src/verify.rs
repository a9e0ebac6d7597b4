//! Verify: both databases are read directly (never the stage), each table in primary-key
//! order, into a row count and a SHA-256 over the canonical encoding of every row; the two
//! sides are walked together to name the first differing key.
//!
//! Between two databases of the same engine whose columns have the same types, each server
//! first sums a hash of its rows itself ([`Db::digest`]): equal sums and counts say the
//! table is equal without a row crossing the wire. Only a table whose sums differ is read
//! row by row, to name its first differing row (a difference the hash sees and the rows do
//! not, such as two servers that lay a value out differently, costs that read and nothing
//! else).

use std::cmp::Ordering;

use serde::Serialize;
use sha2::Digest as _;
use tokio::sync::mpsc;

use crate::DbError;
use crate::engine::Db;
use crate::mover::Progress;
use crate::schema::{Row, Table, key_cmp};

/// The result for one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    /// The table.
    pub table: String,
    /// Rows in the source (`None`: the table is missing there).
    pub source_rows: Option<u64>,
    /// Rows in the target.
    pub target_rows: Option<u64>,
    /// Content checksum of the source (hex SHA-256).
    pub source_checksum: Option<String>,
    /// Content checksum of the target.
    pub target_checksum: Option<String>,
    /// Whether both sides hold the same rows.
    pub equal: bool,
    /// What differs first, naming the key (`id=42`), when not equal.
    pub difference: Option<String>,
}

/// The result of a verify.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Whether every table is equal.
    pub equal: bool,
    /// One check per table, in name order.
    pub tables: Vec<TableCheck>,
}

impl VerifyReport {
    /// The tables that differ.
    pub fn differing(&self) -> impl Iterator<Item = &TableCheck> {
        self.tables.iter().filter(|t| !t.equal)
    }
}

/// Compares every table of `prefix` in `a` (the source) with `b` (the target).
pub async fn verify(
    a: &Db,
    b: &Db,
    prefix: &str,
    progress: &dyn Progress,
) -> Result<VerifyReport, DbError> {
    verify_tables(a, b, prefix, None, progress).await
}

/// How a table that both servers can sum is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Depth {
    /// By the servers' digests first; rows only where they differ.
    #[default]
    Digest,
    /// Every row read by the client on both sides, whatever the digests say.
    Rows,
}

/// [`verify`] of the tables `only` (every table of the prefix on either side when
/// `None`); a table of `only` that is on neither side is reported missing in the source.
pub async fn verify_tables(
    a: &Db,
    b: &Db,
    prefix: &str,
    only: Option<&[String]>,
    progress: &dyn Progress,
) -> Result<VerifyReport, DbError> {
    verify_with(a, b, prefix, only, Depth::Digest, progress).await
}

/// [`verify_tables`] at `depth`.
pub async fn verify_with(
    a: &Db,
    b: &Db,
    prefix: &str,
    only: Option<&[String]>,
    depth: Depth,
    progress: &dyn Progress,
) -> Result<VerifyReport, DbError> {
    let ta = a.introspect(prefix).await?;
    let tb = b.introspect(prefix).await?;
    let mut names: Vec<&String> = ta.iter().chain(&tb).map(|t| &t.name).collect();
    if let Some(only) = only {
        names.retain(|n| only.contains(n));
        names.extend(
            only.iter()
                .filter(|n| !ta.iter().chain(&tb).any(|t| &t.name == *n)),
        );
    }
    names.sort();
    names.dedup();
    // The biggest tables first, on two pairs of connections, so that one long table
    // does not leave the other pair idle at the end.
    let sizes: std::collections::HashMap<String, i64> =
        a.table_sizes().await?.into_iter().collect();
    names.sort_by_key(|n| std::cmp::Reverse(sizes.get(*n).copied().unwrap_or(0)));
    let mut extra = Vec::new();
    if names.len() > 1 {
        extra.push((
            Db::connect(a.locator(), false).await?,
            Db::connect(b.locator(), false).await?,
        ));
    }
    let pairs: Vec<(&Db, &Db)> = std::iter::once((a, b))
        .chain(extra.iter().map(|(x, y)| (x, y)))
        .collect();
    let (ta, tb) = (&ta, &tb);
    let mut checks = crate::mover::pool(&pairs, &names, |(a, b), name| async move {
        progress.table("verify", name);
        let sa = ta.iter().find(|t| &t.name == *name);
        let sb = tb.iter().find(|t| &t.name == *name);
        Ok(match (sa, sb) {
            (Some(sa), Some(sb)) => match aligned(sa, sb) {
                Ok(sb) => match digests(a, b, sa, &sb, depth).await? {
                    Some(same) => {
                        progress.rows(same.source_rows.unwrap_or(0));
                        same
                    }
                    None => compare(a, b, sa, &sb, progress).await?,
                },
                Err(why) => unmatched(name, why),
            },
            _ => unmatched(
                name,
                if sa.is_none() {
                    "missing in the source".into()
                } else {
                    "missing in the target".into()
                },
            ),
        })
    })
    .await?;
    checks.sort_by(|x, y| x.table.cmp(&y.table));
    Ok(VerifyReport {
        equal: checks.iter().all(|c| c.equal),
        tables: checks,
    })
}

/// The table's check from the servers' own digests, when both compute one, the column
/// types match, and the digests are equal; `None` when the rows must be compared (and
/// always at [`Depth::Rows`]).
async fn digests(
    a: &Db,
    b: &Db,
    ta: &Table,
    tb: &Table,
    depth: Depth,
) -> Result<Option<TableCheck>, DbError> {
    let same_types = ta
        .columns
        .iter()
        .zip(&tb.columns)
        .all(|(x, y)| x.ty == y.ty);
    if depth == Depth::Rows || a.engine() != b.engine() || !same_types {
        return Ok(None);
    }
    let (da, db) = tokio::try_join!(a.digest(ta), b.digest(tb))?;
    let (Some(da), Some(db)) = (da, db) else {
        return Ok(None);
    };
    if da != db {
        return Ok(None);
    }
    let rows = da.split(':').next().and_then(|r| r.parse().ok());
    let sum = format!("server-sum:{da}");
    Ok(Some(TableCheck {
        table: ta.name.clone(),
        source_rows: rows,
        target_rows: rows,
        source_checksum: Some(sum.clone()),
        target_checksum: Some(sum),
        equal: true,
        difference: None,
    }))
}

/// A table that cannot be compared row by row (missing on a side, columns differ).
fn unmatched(name: &str, why: String) -> TableCheck {
    TableCheck {
        table: name.into(),
        source_rows: None,
        target_rows: None,
        source_checksum: None,
        target_checksum: None,
        equal: false,
        difference: Some(why),
    }
}

/// The target's table with its columns in the source's order and the source's key.
fn aligned(a: &Table, b: &Table) -> Result<Table, String> {
    let columns: Vec<String> = a.columns.iter().map(|c| c.name.clone()).collect();
    aligned_to(b, &columns, &a.primary_key)
}

/// `t` with its columns in the order of `columns` and the key `key` (another side's, for
/// checksums taken in the same order); a column on one side only is a difference, named.
pub fn aligned_to(t: &Table, columns: &[String], key: &[String]) -> Result<Table, String> {
    let mut cols = Vec::with_capacity(columns.len());
    for name in columns {
        match t.columns.iter().find(|c| &c.name == name) {
            Some(c) => cols.push(c.clone()),
            None => return Err(format!("column {name} is missing in the target")),
        }
    }
    if let Some(extra) = t.columns.iter().find(|c| !columns.contains(&c.name)) {
        return Err(format!("column {} is missing in the source", extra.name));
    }
    Ok(Table {
        columns: cols,
        primary_key: key.to_vec(),
        ..t.clone()
    })
}

/// The row count and checksum of `t` in `db` alone, as [`verify`] computes each side's
/// (SHA-256 of the canonical rows in key order, or an order-free sum without a key): for
/// a check whose two sides run in different places.
pub async fn table_sum(db: &Db, t: &Table) -> Result<(u64, String), DbError> {
    const PAGE: usize = 50_000;
    let keyed = !t.pk_positions().is_empty();
    let (tx, mut rx) = mpsc::channel::<Vec<Row>>(4);
    let read = async move {
        let r = db.stream_rows(t, true, PAGE, None, &tx).await;
        drop(tx);
        r
    };
    let sum = async {
        let mut side = Side::default();
        while let Some(batch) = rx.recv().await {
            for row in &batch {
                side.add(&encode(row), keyed);
            }
        }
        side
    };
    let (read, side) = tokio::join!(read, sum);
    read?;
    Ok((side.rows, side.checksum(keyed)))
}

/// One side's running totals.
#[derive(Default)]
struct Side {
    rows: u64,
    hash: sha2::Sha256,
    /// Order-free sum of per-row hashes, for tables without a key.
    lanes: [u64; 4],
}

impl Side {
    fn add(&mut self, enc: &[u8], keyed: bool) {
        self.rows += 1;
        if keyed {
            self.hash.update((enc.len() as u64).to_be_bytes());
            self.hash.update(enc);
        } else {
            let h = sha2::Sha256::digest(enc);
            for (i, lane) in self.lanes.iter_mut().enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(&h[i * 8..i * 8 + 8]);
                *lane = lane.wrapping_add(u64::from_be_bytes(b));
            }
        }
    }

    fn checksum(self, keyed: bool) -> String {
        if keyed {
            hex::encode(self.hash.finalize())
        } else {
            self.lanes.iter().map(|l| format!("{l:016x}")).collect()
        }
    }
}

fn encode(row: &Row) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for v in row {
        v.canonical(&mut out);
    }
    out
}

/// The first column whose values differ (values are not shown: they may be personal data).
fn first_column(t: &Table, a: &Row, b: &Row) -> String {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let (mut ex, mut ey) = (Vec::new(), Vec::new());
        x.canonical(&mut ex);
        y.canonical(&mut ey);
        if ex != ey {
            return t.columns[i].name.clone();
        }
    }
    "?".into()
}

fn show_key(t: &Table, pk: &[usize], row: &Row) -> String {
    let parts: Vec<String> = pk
        .iter()
        .map(|&i| format!("{}={}", t.columns[i].name, row[i]))
        .collect();
    parts.join(", ")
}

async fn compare(
    a: &Db,
    b: &Db,
    ta: &Table,
    tb: &Table,
    progress: &dyn Progress,
) -> Result<TableCheck, DbError> {
    const PAGE: usize = 50_000;
    let pk = ta.pk_positions();
    let keyed = !pk.is_empty();
    let (txa, mut rxa) = mpsc::channel::<Vec<Row>>(4);
    let (txb, mut rxb) = mpsc::channel::<Vec<Row>>(4);
    let pa = async move {
        let r = a.stream_rows(ta, true, PAGE, None, &txa).await;
        drop(txa);
        r
    };
    let pb = async move {
        let r = b.stream_rows(tb, true, PAGE, None, &txb).await;
        drop(txb);
        r
    };
    let walk = async {
        let (mut sa, mut sb) = (Side::default(), Side::default());
        let mut first: Option<String> = None;
        let mut qa: std::collections::VecDeque<Row> = Default::default();
        let mut qb: std::collections::VecDeque<Row> = Default::default();
        let (mut ea, mut eb) = (false, false);
        loop {
            if qa.is_empty() && !ea {
                match rxa.recv().await {
                    Some(batch) => {
                        progress.rows(batch.len() as u64);
                        qa.extend(batch)
                    }
                    None => ea = true,
                }
                continue;
            }
            if qb.is_empty() && !eb {
                match rxb.recv().await {
                    Some(batch) => qb.extend(batch),
                    None => eb = true,
                }
                continue;
            }
            match (qa.front(), qb.front()) {
                (None, None) => break,
                (Some(ra), Some(rb)) if keyed => {
                    let ord = pk
                        .iter()
                        .map(|&i| key_cmp(&ra[i], &rb[i]))
                        .find(|o| *o != Ordering::Equal)
                        .unwrap_or(Ordering::Equal);
                    match ord {
                        Ordering::Equal => {
                            let (ra, rb) = (
                                qa.pop_front().unwrap_or_default(),
                                qb.pop_front().unwrap_or_default(),
                            );
                            let (x, y) = (encode(&ra), encode(&rb));
                            if x != y && first.is_none() {
                                first = Some(format!(
                                    "row {} differs in column {}",
                                    show_key(ta, &pk, &ra),
                                    first_column(ta, &ra, &rb)
                                ));
                            }
                            sa.add(&x, true);
                            sb.add(&y, true);
                        }
                        Ordering::Less => {
                            let ra = qa.pop_front().unwrap_or_default();
                            if first.is_none() {
                                first = Some(format!(
                                    "row {} is missing in the target",
                                    show_key(ta, &pk, &ra)
                                ));
                            }
                            sa.add(&encode(&ra), true);
                        }
                        Ordering::Greater => {
                            let rb = qb.pop_front().unwrap_or_default();
                            if first.is_none() {
                                first = Some(format!(
                                    "row {} is missing in the source",
                                    show_key(ta, &pk, &rb)
                                ));
                            }
                            sb.add(&encode(&rb), true);
                        }
                    }
                }
                _ => {
                    // No key, or one side is exhausted: take what each side has.
                    if let Some(ra) = qa.pop_front() {
                        if keyed && first.is_none() {
                            first = Some(format!(
                                "row {} is missing in the target",
                                show_key(ta, &pk, &ra)
                            ));
                        }
                        sa.add(&encode(&ra), keyed);
                    }
                    if let Some(rb) = qb.pop_front() {
                        if keyed && first.is_none() {
                            first = Some(format!(
                                "row {} is missing in the source",
                                show_key(ta, &pk, &rb)
                            ));
                        }
                        sb.add(&encode(&rb), keyed);
                    }
                }
            }
        }
        (sa, sb, first)
    };
    let (ra, rb, (sa, sb, first)) = tokio::join!(pa, pb, walk);
    ra?;
    rb?;
    let (rows_a, rows_b) = (sa.rows, sb.rows);
    let (ca, cb) = (sa.checksum(keyed), sb.checksum(keyed));
    let equal = rows_a == rows_b && ca == cb;
    let difference = if equal {
        None
    } else if keyed {
        first.or_else(|| Some("the checksums differ".into()))
    } else {
        Some(format!(
            "the rows differ ({rows_a} vs {rows_b}); the table has no primary key, so no key can be named"
        ))
    };
    Ok(TableCheck {
        table: ta.name.clone(),
        source_rows: Some(rows_a),
        target_rows: Some(rows_b),
        source_checksum: Some(ca),
        target_checksum: Some(cb),
        equal,
        difference,
    })
}

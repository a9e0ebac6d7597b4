//! Splitting a database into parts of about equal size, so that a workflow can export,
//! import and verify it as a Map of parts, each small enough for one Lambda run.

use std::time::Duration;

use crate::DbError;
use crate::engine::Db;

/// Parts of a workflow's export or import: the `MaxConcurrency` of the migrate
/// workflow's Maps over them (`migrate-instance.asl.json`; a test of `a2a-steps` checks it).
pub const PARTS: usize = 4;

/// How long one run of a part may start chunks: a Lambda run lasts at most 900 s, which
/// leaves time for the chunk or the keyless table under way and the step's bookkeeping.
pub const PART_TIME: Duration = Duration::from_secs(480);

/// The weights to [`balance`] the tables `names` by: their sizes in `sizes` (as
/// [`table_sizes`] reads them), 0 for a table the catalog does not list.
pub fn weights(names: &[String], sizes: &[(String, u64)]) -> Vec<(String, u64)> {
    let size = |name: &str| sizes.iter().find(|s| s.0 == name).map_or(0, |s| s.1);
    names.iter().map(|n| (n.clone(), size(n))).collect()
}

/// The size on disk (bytes, indexes included) of every table of `prefix`, as the engine
/// reports it: PostgreSQL `pg_total_relation_size`, MySQL `DATA_LENGTH + INDEX_LENGTH`
/// (InnoDB's estimate), SQLite the pages of its `dbstat` table. Only a weight for
/// balancing parts, never a count to check.
pub async fn table_sizes(db: &Db, prefix: &str) -> Result<Vec<(String, u64)>, DbError> {
    let mut sizes: Vec<(String, u64)> = db
        .table_sizes()
        .await?
        .into_iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(n, s)| (n, s.max(0) as u64))
        .collect();
    sizes.sort();
    Ok(sizes)
}

/// Splits tables into at most `parts` groups of about equal total size: the largest
/// table first, each into the lightest group so far (a group never splits a table). Empty
/// groups are left out; each group lists its tables biggest first, the order a part is
/// exported in (an import that follows the export can then start on the big tables
/// early). Ties are broken by name, so the same sizes always give the same parts.
pub fn balance(sizes: &[(String, u64)], parts: usize) -> Vec<Vec<String>> {
    let mut order: Vec<&(String, u64)> = sizes.iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut groups: Vec<(u64, Vec<String>)> = vec![(0, Vec::new()); parts.max(1)];
    for (name, size) in order {
        // The lightest group; among equals, the first, so small tables spread out.
        let g = groups
            .iter_mut()
            .enumerate()
            .min_by_key(|(i, g)| (g.0, g.1.len(), *i))
            .map(|(_, g)| g)
            .expect("at least one group");
        g.0 += size;
        g.1.push(name.clone());
    }
    groups
        .into_iter()
        .filter(|g| !g.1.is_empty())
        .map(|g| g.1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        v.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect()
    }

    #[test]
    fn parts_are_balanced_by_size_and_cover_every_table_once() {
        let s = sizes(&[
            ("a", 100),
            ("b", 60),
            ("c", 50),
            ("d", 40),
            ("e", 10),
            ("f", 0),
        ]);
        let parts = balance(&s, 2);
        assert_eq!(parts.len(), 2);
        let weight = |p: &Vec<String>| {
            p.iter()
                .map(|n| s.iter().find(|x| &x.0 == n).unwrap().1)
                .sum::<u64>()
        };
        let (w0, w1) = (weight(&parts[0]), weight(&parts[1]));
        assert_eq!(w0 + w1, 260);
        assert!(w0.abs_diff(w1) <= 20, "{parts:?}: {w0} vs {w1}");
        for p in &parts {
            let w: Vec<u64> = p
                .iter()
                .map(|n| s.iter().find(|x| &x.0 == n).unwrap().1)
                .collect();
            assert!(w.is_sorted_by(|a, b| a >= b), "biggest first: {parts:?}");
        }
        let mut all: Vec<&String> = parts.iter().flatten().collect();
        all.sort();
        assert_eq!(all, ["a", "b", "c", "d", "e", "f"]);
    }

    #[test]
    fn fewer_tables_than_parts_gives_one_part_per_table() {
        let parts = balance(&sizes(&[("x", 5), ("y", 5)]), 8);
        assert_eq!(parts, vec![vec!["x".to_owned()], vec!["y".to_owned()]]);
        assert!(balance(&[], 4).is_empty());
        // Zero parts asked still gives one.
        assert_eq!(balance(&sizes(&[("x", 1)]), 0).len(), 1);
    }

    #[test]
    fn unknown_sizes_spread_tables_evenly() {
        let s = sizes(&[("a", 0), ("b", 0), ("c", 0), ("d", 0), ("e", 0)]);
        let parts = balance(&s, 2);
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 2],
            "{parts:?}"
        );
    }
}

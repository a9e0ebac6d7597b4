//! The key layout of the data store, in one place, and where each moodledata file goes.
//!
//! `filedir/ab/cd/abcd…` (named by the SHA-1 of its content) becomes
//! `instances/<code>/filedir/ab/cd/abcd…`, the layout that Moodle's `tool_objectfs` reads;
//! everything else kept becomes `instances/<code>/moodledata/<relative path>`.
//!
//! Every other key the steps use is made here too:
//!
//! | key | what |
//! |---|---|
//! | `instances/<code>/…` | a site's files and its manifest ([`site_root`]) |
//! | `templates/<name>/…` | an EIX template's files ([`named_template_root`]) |
//! | `stage/<code>/…` | a migration's stage: staged chunks, plans ([`stage_root`], [`plan_key`]) |
//! | `stage/<code>/imported.json` | the mark of a complete import ([`imported_key`]) |
//! | `stage/<code>/journal/<attempt>/…` | the results of an attempt's finished steps ([`journal_root`]) |
//! | `stage/<code>/clone.json` | the mark of a whole template clone ([`clone_key`]) |
//! | `routes/<dns>.json` | the route of a site address ([`route_key`]) |
//! | `shards/<shard>/<code>` | a site's allocation on a shard ([`shard_root`], [`allocation_key`]) |
//! | `frozen/<code>.json` | the source's maintenance setting before a freeze ([`frozen_key`]) |
//! | `frozen/<code>/climaintenance.html` | the source's own maintenance page before a freeze ([`frozen_page_key`]) |
//! | `abandoned/<code>/<attempt>.json` | the target a rollback gave up ([`abandoned_key`]) |

use a2a_core::{BlobKey, SchoolCode};

/// Top-level folders that Moodle rebuilds by itself, and so are not copied.
pub const SKIPPED_DIRS: &[&str] = &[
    "cache",
    "localcache",
    "temp",
    "sessions",
    "trashdir",
    "lock",
];

/// The maintenance page: it belongs to the frozen source, not to the copy.
pub const MAINTENANCE_FILE: &str = "climaintenance.html";

/// The manifest's name under a site's root.
pub const MANIFEST: &str = "manifest.json";

/// Where a site's blobs live: `instances/<code>/`.
pub fn site_root(code: &SchoolCode) -> String {
    format!("instances/{}/", code.as_str())
}

/// Where an EIX template's files live: `templates/<name>/`.
pub fn named_template_root(name: &str) -> String {
    format!("templates/{name}/")
}

/// A school's migration stage: `stage/<code>/`.
pub fn stage_root(code: &SchoolCode) -> String {
    format!("stage/{}/", code.as_str())
}

/// The mark of a complete import: `stage/<code>/imported.json`.
pub fn imported_key(code: &SchoolCode) -> BlobKey {
    key_under(&stage_root(code), "imported.json")
        .expect("a school code and a fixed name make a key")
}

/// The results of the finished steps of one attempt, which a rerun of the attempt
/// returns instead of running them again: `stage/<code>/journal/<attempt>/`.
pub fn journal_root(code: &SchoolCode, attempt: u32) -> String {
    format!("{}journal/{attempt}/", stage_root(code))
}

/// The mark of a whole clone of the template, written after its last table and counter:
/// `stage/<code>/clone.json`.
pub fn clone_key(code: &SchoolCode) -> BlobKey {
    key_under(&stage_root(code), "clone.json").expect("a school code and a fixed name make a key")
}

/// The `what` plan (`export`, `import`) of a school's stage: `stage/<code>/plan/<what>.json`.
pub fn plan_key(code: &SchoolCode, what: &str) -> Result<BlobKey, a2a_core::KeyError> {
    key_under(&stage_root(code), &format!("plan/{what}.json"))
}

/// What the source side of a verify found, for its target side to compare:
/// `stage/<code>/source/<part>.json` (`files`, `database`, `database-<n>`).
pub fn source_check_key(code: &SchoolCode, part: &str) -> Result<BlobKey, a2a_core::KeyError> {
    key_under(&stage_root(code), &format!("source/{part}.json"))
}

/// The route of the site address `dns`: `routes/<dns>.json`.
pub fn route_key(dns: &str) -> Result<BlobKey, a2a_core::KeyError> {
    BlobKey::parse(&format!("routes/{dns}.json"))
}

/// The allocations on the shard `shard`: `shards/<shard>/`, one key per site.
pub fn shard_root(shard: &str) -> String {
    format!("shards/{shard}/")
}

/// The allocation of a school's site on the shard `shard`: `shards/<shard>/<code>`.
pub fn allocation_key(shard: &str, code: &SchoolCode) -> Result<BlobKey, a2a_core::KeyError> {
    key_under(&shard_root(shard), code.as_str())
}

/// The source's maintenance setting before the freeze: `frozen/<code>.json`.
pub fn frozen_key(code: &SchoolCode) -> BlobKey {
    BlobKey::parse(&format!("frozen/{}.json", code.as_str())).expect("a school code makes a key")
}

/// The source's own maintenance page from before the freeze, byte for byte, when it had
/// one: `frozen/<code>/climaintenance.html`.
pub fn frozen_page_key(code: &SchoolCode) -> BlobKey {
    BlobKey::parse(&format!("frozen/{}/{MAINTENANCE_FILE}", code.as_str()))
        .expect("a school code and a fixed name make a key")
}

/// The record of the target that the rollback of attempt `attempt` gave up:
/// `abandoned/<code>/<attempt>.json`.
pub fn abandoned_key(code: &SchoolCode, attempt: u32) -> BlobKey {
    BlobKey::parse(&format!("abandoned/{}/{attempt}.json", code.as_str()))
        .expect("a school code and a number make a key")
}

/// The key of a site's manifest.
pub fn manifest_key(code: &SchoolCode) -> BlobKey {
    key_under(&site_root(code), MANIFEST).expect("a school code and a fixed name make a key")
}

/// `root` (ending in '/') joined with `rest`, as a key.
pub(crate) fn key_under(root: &str, rest: &str) -> Result<BlobKey, a2a_core::KeyError> {
    BlobKey::parse(&format!("{root}{rest}"))
}

/// What becomes of one file of moodledata, by its path relative to the moodledata root
/// (with '/' separators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Left out: Moodle rebuilds it, or it is the maintenance page.
    Skipped,
    /// A content-addressed file: its SHA-1 (lower-case hex) and its key's path under the
    /// site root (`filedir/ab/cd/<sha1>`).
    Filedir {
        /// The SHA-1 the content must have.
        sha1: String,
        /// `filedir/<h0h1>/<h2h3>/<sha1>`.
        rel_key: String,
    },
    /// A file named like a content hash but in the wrong folder: Moodle would never find it.
    Misplaced,
    /// Any other file kept: `moodledata/<relative path>`.
    Other {
        /// `moodledata/<relative path>`.
        rel_key: String,
    },
}

/// Whether a top-level folder (first path segment) is left out.
pub fn skipped_top(name: &str) -> bool {
    SKIPPED_DIRS.contains(&name)
}

/// Where the file at `rel` goes.
pub fn place(rel: &str) -> Place {
    let segs: Vec<&str> = rel.split('/').collect();
    if segs.len() == 1 && segs[0] == MAINTENANCE_FILE {
        return Place::Skipped;
    }
    if segs.len() > 1 && skipped_top(segs[0]) {
        return Place::Skipped;
    }
    if segs[0] == "filedir" && segs.len() > 1 {
        let name = segs[segs.len() - 1];
        if is_sha1_hex(name) {
            if segs.len() == 4 && segs[1] == &name[..2] && segs[2] == &name[2..4] {
                return Place::Filedir {
                    sha1: name.to_owned(),
                    rel_key: format!("filedir/{}/{}/{name}", &name[..2], &name[2..4]),
                };
            }
            return Place::Misplaced;
        }
        // filedir/warning.txt and the like: kept, as plain files.
    }
    Place::Other {
        rel_key: format!("moodledata/{rel}"),
    }
}

/// 40 lower-case hex digits, as Moodle names content.
pub fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

    #[test]
    fn every_key_of_the_steps_is_laid_out_here() {
        let code = SchoolCode::parse("08012345").unwrap();
        assert_eq!(site_root(&code), "instances/08012345/");
        assert_eq!(named_template_root("primary"), "templates/primary/");
        assert_eq!(stage_root(&code), "stage/08012345/");
        assert_eq!(imported_key(&code).as_str(), "stage/08012345/imported.json");
        assert_eq!(
            plan_key(&code, "export").unwrap().as_str(),
            "stage/08012345/plan/export.json"
        );
        assert_eq!(route_key("ins-x").unwrap().as_str(), "routes/ins-x.json");
        assert_eq!(
            allocation_key("shard-1", &code).unwrap().as_str(),
            "shards/shard-1/08012345"
        );
        assert!(
            allocation_key("sh", &code)
                .unwrap()
                .as_str()
                .starts_with(&shard_root("sh"))
        );
        assert_eq!(frozen_key(&code).as_str(), "frozen/08012345.json");
        assert_eq!(
            frozen_page_key(&code).as_str(),
            "frozen/08012345/climaintenance.html"
        );
        assert_eq!(
            abandoned_key(&code, 3).as_str(),
            "abandoned/08012345/3.json"
        );
        // A name that would climb out of its folder is no key.
        assert!(route_key("../x").is_err());
        assert!(allocation_key("..", &code).is_err());
    }

    #[test]
    fn filedir_goes_to_the_objectfs_layout() {
        assert_eq!(
            place(&format!("filedir/da/39/{H}")),
            Place::Filedir {
                sha1: H.into(),
                rel_key: format!("filedir/da/39/{H}")
            }
        );
        assert_eq!(place(&format!("filedir/ab/39/{H}")), Place::Misplaced);
        assert_eq!(place(&format!("filedir/{H}")), Place::Misplaced);
        assert_eq!(
            place("filedir/warning.txt"),
            Place::Other {
                rel_key: "moodledata/filedir/warning.txt".into()
            }
        );
        // Upper case is not Moodle's naming: kept as a plain file.
        let upper = H.to_ascii_uppercase();
        assert!(matches!(
            place(&format!("filedir/DA/39/{upper}")),
            Place::Other { .. }
        ));
    }

    #[test]
    fn what_moodle_rebuilds_is_skipped() {
        for p in [
            "cache/x",
            "localcache/a/b",
            "temp/y",
            "sessions/sess_1",
            "trashdir/ab/cd/x",
            "lock/l",
            "climaintenance.html",
        ] {
            assert_eq!(place(p), Place::Skipped, "{p}");
        }
        for p in [
            "lang/ca/langconfig.php",
            "muc/config.php",
            "x/cache/y",
            "x/climaintenance.html",
        ] {
            assert!(matches!(place(p), Place::Other { .. }), "{p}");
        }
    }

    #[test]
    fn keys_sit_under_the_site() {
        let code = SchoolCode::parse("08012345").unwrap();
        assert_eq!(site_root(&code), "instances/08012345/");
        assert_eq!(
            manifest_key(&code).as_str(),
            "instances/08012345/manifest.json"
        );
    }
}

//! Where each moodledata file goes: the key layout, and what is left out.
//!
//! `filedir/ab/cd/abcd…` (named by the SHA-1 of its content) becomes
//! `instances/<code>/filedir/ab/cd/abcd…`, the layout that Moodle's `tool_objectfs` reads;
//! everything else kept becomes `instances/<code>/moodledata/<relative path>`.

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

//! Reading a moodledata folder: every file that is kept, with its size and modification
//! time, and every file that cannot be taken, as a problem.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::FilesError;
use crate::layout::{self, Place};

/// Something wrong with one file: it is reported, and the run ends with exit 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The file's path relative to the moodledata folder.
    pub path: String,
    /// What is wrong.
    pub what: String,
}

/// One file of moodledata.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the moodledata folder, '/'-separated.
    pub rel: String,
    /// Where to read it.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since 1970 (0 if unknown).
    pub mtime_ns: i64,
    /// Where it goes.
    pub place: Place,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Walked {
    /// Files to copy or check, in path order.
    pub files: Vec<SourceFile>,
    /// Files that cannot be taken.
    pub problems: Vec<Problem>,
    /// Files left out on purpose (what Moodle rebuilds, the maintenance page).
    pub excluded: u64,
}

/// Walks the moodledata folder `root`. Symbolic links are followed only to files inside
/// the folder; one leading outside, or to a folder, is a problem and is not followed.
/// [`walk`] on a blocking thread, for the async sync and verify.
pub async fn walk_blocking(root: &Path) -> Result<Walked, FilesError> {
    let owned = root.to_owned();
    tokio::task::spawn_blocking(move || walk(&owned))
        .await
        .map_err(|e| FilesError::Source {
            path: root.to_owned(),
            why: format!("the walk failed: {e}"),
        })?
}

/// Lists the moodledata under `root`, blocking: the files to copy with their sizes and
/// times, and the problems met ([`walk_blocking`] runs it off the async threads).
pub fn walk(root: &Path) -> Result<Walked, FilesError> {
    let src_err = |why: String| FilesError::Source {
        path: root.to_owned(),
        why,
    };
    let canonical = root
        .canonicalize()
        .map_err(|e| src_err(format!("cannot open it: {e}")))?;
    if !canonical.is_dir() {
        return Err(src_err("is not a folder".into()));
    }
    let mut out = Walked::default();
    let mut stack: Vec<(PathBuf, String)> = vec![(canonical.clone(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let unreadable = |e: std::io::Error| Problem {
            path: display_rel(&prefix),
            what: format!("cannot read the folder: {e}"),
        };
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                out.problems.push(unreadable(e));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.problems.push(unreadable(e));
                    continue;
                }
            };
            let path = entry.path();
            let Ok(name) = entry.file_name().into_string() else {
                out.problems.push(Problem {
                    path: format!("{prefix}{}", entry.file_name().to_string_lossy()),
                    what: "the name is not UTF-8, so it cannot be a key".into(),
                });
                continue;
            };
            let rel = format!("{prefix}{name}");
            let ft = match entry.file_type() {
                Ok(t) => t,
                Err(e) => {
                    out.problems.push(Problem {
                        path: rel,
                        what: format!("cannot inspect it: {e}"),
                    });
                    continue;
                }
            };
            if ft.is_dir() {
                if prefix.is_empty() && layout::skipped_top(&name) {
                    out.excluded += count_files(&path);
                } else {
                    stack.push((path, format!("{rel}/")));
                }
                continue;
            }
            let meta = if ft.is_symlink() {
                match fs::canonicalize(&path) {
                    Err(e) => {
                        out.problems.push(Problem {
                            path: rel,
                            what: format!("symbolic link that leads nowhere ({e}); not followed"),
                        });
                        continue;
                    }
                    Ok(real) if !real.starts_with(&canonical) => {
                        out.problems.push(Problem {
                            path: rel,
                            what: format!(
                                "symbolic link to {}, outside the moodledata folder: refused",
                                real.display()
                            ),
                        });
                        continue;
                    }
                    Ok(real) => match fs::metadata(&real) {
                        Ok(m) if m.is_file() => m,
                        Ok(_) => {
                            out.problems.push(Problem {
                                path: rel,
                                what: "symbolic link to a folder: not followed".into(),
                            });
                            continue;
                        }
                        Err(e) => {
                            out.problems.push(Problem {
                                path: rel,
                                what: format!("cannot inspect it: {e}"),
                            });
                            continue;
                        }
                    },
                }
            } else if ft.is_file() {
                match entry.metadata() {
                    Ok(m) => m,
                    // Removed since the folder was read.
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => {
                        out.problems.push(Problem {
                            path: rel,
                            what: format!("cannot inspect it: {e}"),
                        });
                        continue;
                    }
                }
            } else {
                out.problems.push(Problem {
                    path: rel,
                    what: "not a regular file (a device, socket or pipe): not copied".into(),
                });
                continue;
            };
            let place = layout::place(&rel);
            if place == Place::Skipped {
                out.excluded += 1;
                continue;
            }
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_nanos()).ok())
                .unwrap_or(0);
            out.files.push(SourceFile {
                rel,
                path,
                size: meta.len(),
                mtime_ns,
                place,
            });
        }
    }
    out.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    out.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn display_rel(prefix: &str) -> String {
    if prefix.is_empty() {
        ".".into()
    } else {
        prefix.trim_end_matches('/').to_owned()
    }
}

/// Files under a folder left out, for the report; symbolic links are not followed.
fn count_files(dir: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => n += 1,
                Err(_) => {}
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_keeps_skips_and_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("moodledata");
        fs::create_dir_all(md.join("lang/ca")).unwrap();
        fs::create_dir_all(md.join("cache/x")).unwrap();
        fs::write(md.join("lang/ca/langconfig.php"), "Català").unwrap();
        fs::write(md.join("cache/x/a"), "a").unwrap();
        fs::write(md.join("climaintenance.html"), "off").unwrap();
        fs::write(dir.path().join("secret"), "outside").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret"), md.join("out")).unwrap();
            std::os::unix::fs::symlink(md.join("lang/ca/langconfig.php"), md.join("in")).unwrap();
        }
        let w = walk(&md).unwrap();
        let rels: Vec<_> = w.files.iter().map(|f| f.rel.as_str()).collect();
        #[cfg(unix)]
        {
            assert_eq!(rels, ["in", "lang/ca/langconfig.php"]);
            assert_eq!(w.problems.len(), 1);
            assert_eq!(w.problems[0].path, "out");
            assert!(w.problems[0].what.contains("outside"));
        }
        assert_eq!(w.excluded, 2);
        assert!(matches!(
            walk(&dir.path().join("none")),
            Err(FilesError::Source { .. })
        ));
    }
}

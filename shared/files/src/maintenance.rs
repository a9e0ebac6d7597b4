//! Moodle's maintenance switch, file half: `climaintenance.html` in moodledata. While it is
//! there, Moodle shows it instead of the site. The `maintenance_enabled` setting, the
//! database half, belongs to the database data plane.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::Path;

use crate::layout::MAINTENANCE_FILE;

/// Puts the maintenance page in place, with `message` (HTML-escaped here). Idempotent:
/// `Ok(false)` when the page was already there with this content. The page appears whole
/// or not at all.
pub fn enable(moodledata: &Path, message: &str) -> std::io::Result<bool> {
    let page = page(message);
    let path = moodledata.join(MAINTENANCE_FILE);
    if fs::read(&path).is_ok_and(|old| old == page.as_bytes()) {
        return Ok(false);
    }
    if !moodledata.is_dir() {
        return Err(std::io::Error::new(
            ErrorKind::NotFound,
            format!("{} is not a folder", moodledata.display()),
        ));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".climaintenance-")
        .tempfile_in(moodledata)?;
    tmp.write_all(page.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(true)
}

/// Removes the maintenance page. Idempotent: `Ok(false)` when there was none.
pub fn disable(moodledata: &Path) -> std::io::Result<bool> {
    match fs::remove_file(moodledata.join(MAINTENANCE_FILE)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the maintenance page is in place.
pub fn is_enabled(moodledata: &Path) -> bool {
    moodledata.join(MAINTENANCE_FILE).is_file()
}

fn page(message: &str) -> String {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Manteniment</title></head>\n\
         <body><h1>{escaped}</h1></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_is_idempotent_and_reversible() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_enabled(dir.path()));
        assert!(enable(dir.path(), "Migrant <l'escola>").unwrap());
        assert!(!enable(dir.path(), "Migrant <l'escola>").unwrap());
        assert!(is_enabled(dir.path()));
        let page = fs::read_to_string(dir.path().join(MAINTENANCE_FILE)).unwrap();
        assert!(page.contains("Migrant &lt;l'escola&gt;"));
        assert!(
            enable(dir.path(), "other").unwrap(),
            "a new message rewrites it"
        );
        assert!(disable(dir.path()).unwrap());
        assert!(!disable(dir.path()).unwrap());
        assert!(!is_enabled(dir.path()));
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 0, "no temporary file left");
        assert!(enable(&dir.path().join("none"), "x").is_err());
    }
}

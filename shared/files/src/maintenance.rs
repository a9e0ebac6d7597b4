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
    write(moodledata, page(message).as_bytes(), None)
}

/// The page in place now, if any: its bytes and its permission bits, so that a page the
/// site had before a freeze can be put back exactly ([`restore`]).
pub fn read(moodledata: &Path) -> std::io::Result<Option<(Vec<u8>, u32)>> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = moodledata.join(MAINTENANCE_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some((
            bytes,
            fs::metadata(&path)?.permissions().mode() & 0o7777,
        ))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Puts back a page that [`read`] found: these bytes, with these permission bits.
/// Idempotent, and whole or not at all, like [`enable`].
pub fn restore(moodledata: &Path, bytes: &[u8], mode: u32) -> std::io::Result<bool> {
    write(moodledata, bytes, Some(mode))
}

/// Writes the page by rename, unless it holds `bytes` already (with `mode`, when given).
fn write(moodledata: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = moodledata.join(MAINTENANCE_FILE);
    if fs::read(&path).is_ok_and(|old| old == bytes)
        && mode.is_none_or(|m| {
            fs::metadata(&path).is_ok_and(|md| md.permissions().mode() & 0o7777 == m)
        })
    {
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
    tmp.write_all(bytes)?;
    if let Some(m) = mode {
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(m))?;
    }
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

    #[test]
    fn a_page_read_is_restored_byte_for_byte_with_its_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let path = dir.path().join(MAINTENANCE_FILE);
        let own = b"<p>Tancat per vacances \xff</p>\r\n".to_vec();
        fs::write(&path, &own).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let (bytes, mode) = read(dir.path()).unwrap().unwrap();
        assert_eq!((bytes.as_slice(), mode), (own.as_slice(), 0o640));
        assert!(enable(dir.path(), "moving").unwrap());
        assert!(restore(dir.path(), &bytes, mode).unwrap());
        assert!(!restore(dir.path(), &bytes, mode).unwrap(), "idempotent");
        assert_eq!(fs::read(&path).unwrap(), own);
        let md = fs::metadata(&path).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o640);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }
}

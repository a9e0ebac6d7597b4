//! Intake: school lists in, instances registered, every bad row explained.
//!
//! A list is read ([`read`]: size limit, encoding, delimiter, columns by name, then
//! [`columns`]: checked against what they hold), each row
//! validated ([`validate`]: codes through `SchoolCode`, names, kinds, sources), the good
//! ones planned ([`plan`]: templates, short names, waves), then taken in ([`take_in`]:
//! idempotent by the content's SHA-256, recorded in the `UploadLedger`), registering
//! ([`register`]) and writing an error report and a summary ([`report`]). `a2a plan`,
//! `a2a upload` and the intake Lambda all run this same code.
//!
//! No I/O of its own beyond reading a list file: the stores come in as ports.

#![warn(missing_docs)]

pub mod columns;
pub mod plan;
pub mod read;
pub mod redact;
pub mod register;
pub mod report;
pub mod take;
pub mod validate;

use std::io::Read;
use std::path::Path;

use sha2::Digest;

pub use columns::Warning;
pub use plan::{Options, Plan, PlanJson, Planned, Shape, Slug};
pub use read::{DEFAULT_MAX_BYTES, Reason, Refusal};
pub use redact::{Redacted, redact};
pub use register::Registration;
pub use report::{Summary, defuse, errors_csv, refusal_csv};
pub use take::{Intake, Ports, TakeError, Taken, take_in, take_list};
pub use validate::{RowError, School, Template};

/// Plans a list held in memory. `file` names it in messages.
pub fn plan_bytes(file: &str, bytes: &[u8], opts: &Options) -> Result<Plan, Refusal> {
    let table = read::read_table(file, bytes, opts.max_bytes)?;
    let (schools, errors) = validate::validate(&table, opts.kind);
    Ok(plan::plan_schools(&table, file, schools, errors, opts))
}

/// Reads at most `max_bytes` from `reader`; more is a refusal, found without reading on.
pub fn read_limited(file: &str, reader: impl Read, max_bytes: u64) -> Result<Vec<u8>, Refusal> {
    let mut bytes = Vec::new();
    reader
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Refusal {
            file: file.to_owned(),
            reason: Reason::Io(e.to_string()),
        })?;
    if bytes.len() as u64 > max_bytes {
        return Err(Refusal {
            file: file.to_owned(),
            reason: Reason::TooLarge {
                size: bytes.len() as u64,
                limit: max_bytes,
            },
        });
    }
    Ok(bytes)
}

/// Reads a list from a file: its size is checked before a byte is read.
pub fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, Refusal> {
    let file = path.display().to_string();
    let io = |e: std::io::Error| Refusal {
        file: file.clone(),
        reason: Reason::Io(e.to_string()),
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    if size > max_bytes {
        return Err(Refusal {
            file: file.clone(),
            reason: Reason::TooLarge {
                size,
                limit: max_bytes,
            },
        });
    }
    read_limited(&file, f, max_bytes)
}

/// Lower-case hex SHA-256 of the bytes: the upload's identity.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Where a list taken in is kept in the data store: `uploads/<its base name made safe for
/// a key>` (as [`report_keys`] makes it), the key the intake Lambda is notified of.
pub fn upload_key(name: &str) -> String {
    format!("uploads/{}", safe_base(name))
}

/// A list's base name made safe for a key: `[A-Za-z0-9._-]`, at most 100 characters, never
/// only dots.
fn safe_base(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    // No segment of only dots, which a key refuses.
    if safe.chars().all(|c| c == '.') {
        safe = format!("list{safe}").replace('.', "_");
    }
    safe
}

/// The blob keys of an upload's reports, under `reports/`: the list's base name made safe
/// for a key, and the first 12 hex digits of its SHA-256, so that two versions of a list
/// keep their own reports. Returns `(errors CSV, summary JSON)`.
pub fn report_keys(name: &str, sha256: &str) -> (String, String) {
    let safe = safe_base(name);
    let short = &sha256[..sha256.len().min(12)];
    (
        format!("reports/{safe}.{short}.errors.csv"),
        format!("reports/{safe}.{short}.summary.json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_keys_are_valid_blob_keys() {
        let sha = sha256_hex(b"x");
        for name in ["eix 2026.csv", "uploads/llista ò.csv", "..", "a\\b.csv", ""] {
            let (e, s) = report_keys(name, &sha);
            assert!(a2a_core::BlobKey::parse(&e).is_ok(), "{e}");
            assert!(a2a_core::BlobKey::parse(&s).is_ok(), "{s}");
            assert!(e.starts_with("reports/") && e.ends_with(".errors.csv"));
            let u = upload_key(name);
            assert!(a2a_core::BlobKey::parse(&u).is_ok(), "{u}");
        }
        assert_eq!(upload_key("lists/eix 2026.csv"), "uploads/eix_2026.csv");
        assert_eq!(
            report_keys("uploads/eix 2026.csv", &sha).0,
            format!("reports/eix_2026.csv.{}.errors.csv", &sha[..12])
        );
    }

    #[test]
    fn reading_stops_past_the_limit() {
        let e = read_limited("s", &b"0123456789"[..], 5).unwrap_err();
        assert_eq!(e.reason, Reason::TooLarge { size: 6, limit: 5 });
        assert_eq!(read_limited("s", &b"01234"[..], 5).unwrap(), b"01234");
    }
}

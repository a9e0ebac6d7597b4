//! A school list with its source database passwords taken out: each password goes to the
//! secret store first, and the list is rewritten to name the secret instead
//! (`user:secret%3Aa2a%2F<code>%2Fsource-db-password@…`), which intake reads back as it reads
//! a list that named a secret itself. The rewritten list is what is kept (`uploads/`) and
//! what is taken in, so no copy of the list holds a password.
//!
//! Only the `source_db` cells change, and only their user info: every other byte of the
//! text, its line breaks and its line numbers stay as they were, so the error report of the
//! rewritten list names the lines of the original. The text is written back in the
//! encoding it came in (a BOM kept), except that UTF-16 stays UTF-16 and anything else
//! that is not Windows-1252 becomes UTF-8.

use std::collections::HashMap;

use a2a_core::{Locator, Secret, SecretName, SecretStore};
use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, WINDOWS_1252};

use crate::plan::Plan;
use crate::read::{self, Field, Reason, Refusal};
use crate::take::TakeError;

/// What the secret holding a school's source database password is called, under
/// `a2a/<code>/`.
pub const SOURCE_PASSWORD: &str = "source-db-password";

/// A list rewritten without its passwords.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redacted {
    /// The list's bytes, rewritten.
    pub bytes: Vec<u8>,
    /// How many passwords went to the secret store (rows that were accepted).
    pub moved: usize,
    /// How many were dropped from rows that were rejected: with no school to name a
    /// secret after, the password is only taken out.
    pub dropped: usize,
}

/// The password of a `source_db` cell that must not be kept: a plain one, not a
/// `secret:NAME` reference.
fn has_plain_password(cell: &str) -> bool {
    let l = Locator::new(cell);
    l.credentials().is_some() && l.secret_ref().is_none()
}

/// Moves the source database passwords of the list `bytes` (planned as `plan`) into
/// `secrets` and returns the list rewritten to name them; `None` when it holds none.
///
/// A password is stored (replacing one stored before) before the list naming it exists,
/// so a run cut short leaves the password stored and the original list unchanged; run
/// again, it does the same. The rewritten list plans as the original did.
pub async fn redact(
    plan: &Plan,
    bytes: &[u8],
    secrets: &dyn SecretStore,
) -> Result<Option<Redacted>, TakeError> {
    let table = read::read_table(&plan.file, bytes, u64::MAX)?;
    let Some(col) = table.columns.get(Field::SourceDb) else {
        return Ok(None);
    };
    let cell = |r: &read::Record| r.cells.get(col).map_or("", |c| c.trim()).to_owned();
    if !table.records.iter().any(|r| has_plain_password(&cell(r))) {
        return Ok(None);
    }
    let accepted: HashMap<u64, &a2a_core::SchoolCode> = plan
        .schools
        .iter()
        .map(|p| (p.school.line, &p.school.code))
        .collect();
    let (text, encoding) = read::decode(bytes);
    let text = text.into_owned();
    // Where each line starts, so that each record is rewritten within its own lines.
    let mut line_starts = vec![0usize];
    line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    let start_of = |line: u64| {
        line_starts
            .get((line as usize).saturating_sub(1))
            .copied()
            .unwrap_or(text.len())
    };
    let mut out = String::with_capacity(text.len());
    let mut copied = 0usize;
    let (mut moved, mut dropped) = (0, 0);
    for (i, r) in table.records.iter().enumerate() {
        let url = cell(r);
        if !has_plain_password(&url) {
            continue;
        }
        let loc = Locator::new(url.clone());
        let with = match accepted.get(&r.line) {
            Some(code) => {
                let name = SecretName::of(code, SOURCE_PASSWORD).map_err(TakeError::Secrets)?;
                let (_, password) = loc.credentials().unwrap_or_default();
                secrets
                    .put(&name, &Secret::new(password))
                    .await
                    .map_err(TakeError::Secrets)?;
                moved += 1;
                loc.with_secret_ref(name.as_str())
            }
            None => {
                dropped += 1;
                loc.without_password()
            }
        };
        let from = start_of(r.line).max(copied);
        let to = table
            .records
            .get(i + 1)
            .map_or(text.len(), |next| start_of(next.line))
            .max(from);
        let segment = &text[from..to];
        // The cell as the text holds it: as read, or with its quotes doubled (CSV quoting).
        let quoted = url.replace('"', "\"\"");
        let (found, with) = if segment.contains(url.as_str()) {
            (url.as_str(), with.expose().to_owned())
        } else if segment.contains(quoted.as_str()) {
            (quoted.as_str(), with.expose().replace('"', "\"\""))
        } else {
            return Err(TakeError::Refused(Refusal {
                file: plan.file.clone(),
                reason: Reason::Io(format!(
                    "line {}: the source_db password could not be taken out of the list; \
                     write the URL without quotes, or name a secret instead (secret:NAME)",
                    r.line
                )),
            }));
        };
        out.push_str(&text[copied..from]);
        out.push_str(&segment.replace(found, &with));
        copied = to;
    }
    out.push_str(&text[copied..]);
    Ok(Some(Redacted {
        bytes: encode(&out, encoding, bytes),
        moved,
        dropped,
    }))
}

/// The text in the encoding it was read in, with the BOM the original had.
fn encode(text: &str, encoding: &'static Encoding, original: &[u8]) -> Vec<u8> {
    let mut out = match Encoding::for_bom(original) {
        Some((_, bom)) => original[..bom].to_vec(),
        None => Vec::new(),
    };
    if encoding == UTF_16LE {
        out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    } else if encoding == UTF_16BE {
        out.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    } else if encoding == WINDOWS_1252 {
        out.extend_from_slice(&WINDOWS_1252.encode(text).0);
    } else {
        out.extend_from_slice(text.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Options;
    use a2a_core::SchoolCode;

    fn plan(bytes: &[u8]) -> Plan {
        crate::plan_bytes("l.csv", bytes, &Options::default()).unwrap()
    }

    async fn stored(secrets: &a2a_local::FileSecrets, code: &str) -> Option<String> {
        let code = SchoolCode::parse(code).unwrap();
        let name = SecretName::of(&code, SOURCE_PASSWORD).unwrap();
        secrets
            .get(&name)
            .await
            .unwrap()
            .map(|s| s.expose().to_owned())
    }

    #[tokio::test]
    async fn passwords_go_to_the_store_and_the_list_names_them_line_for_line() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = a2a_local::FileSecrets::new(dir.path().join("secrets"));
        let list = "school_code;name;kind;source_db;source_files;dns\r\n\
                    08000013;Escola Bertí;migrate;mysql://moodle:Xq9%40one@db/m1;/srv/a;a\r\n\
                    \r\n\
                    17000014;B;migrate;\"postgres://pg:p\"\"w@db/m2\";/srv/b;b\r\n\
                    25000015;C;migrate;mysql://moodle:secret:agora%2Fsrc@db/m3;/srv/c;c\r\n\
                    0800001X;Bad code;migrate;mysql://moodle:Lost-pw@db/m4;/srv/d;d\r\n\
                    43000016;D;migrate;mysql://nopass@db/m5;/srv/e;e\r\n";
        // Windows-1252, as a spreadsheet writes it.
        let bytes = WINDOWS_1252.encode(list).0.into_owned();
        let before = plan(&bytes);
        let r = redact(&before, &bytes, &secrets).await.unwrap().unwrap();
        assert_eq!((r.moved, r.dropped), (2, 1));
        assert_eq!(
            stored(&secrets, "08000013").await.as_deref(),
            Some("Xq9@one")
        );
        assert_eq!(stored(&secrets, "17000014").await.as_deref(), Some("p\"w"));
        assert_eq!(stored(&secrets, "25000015").await, None, "its own secret");
        let (text, enc) = read::decode(&r.bytes);
        assert_eq!(enc, WINDOWS_1252, "the encoding it came in");
        for pw in ["Xq9", "p\"\"w", "Lost-pw"] {
            assert!(!text.contains(pw), "{pw} in {text}");
        }
        assert!(text.contains("Escola Bertí"), "{text}");
        assert!(
            text.contains("mysql://moodle:secret%3Aa2a%2F08000013%2Fsource-db-password@db/m1"),
            "{text}"
        );
        assert!(text.contains("mysql://moodle@db/m4"), "{text}");
        assert!(text.contains("mysql://nopass@db/m5"), "{text}");
        assert_eq!(text.lines().count(), list.lines().count(), "line for line");
        // The rewritten list plans as the original, same lines, same errors; and the
        // state would keep what intake keeps for a password it moved itself.
        let after = plan(&r.bytes);
        assert_eq!(after.schools.len(), before.schools.len());
        let lines = |p: &Plan| p.errors.iter().map(|e| e.line).collect::<Vec<_>>();
        assert_eq!(lines(&after), lines(&before));
        let name =
            SecretName::of(&SchoolCode::parse("08000013").unwrap(), SOURCE_PASSWORD).unwrap();
        let want = before.schools[0]
            .school
            .source_db
            .clone()
            .unwrap()
            .with_secret_ref(name.as_str());
        assert_eq!(after.schools[0].school.source_db, Some(want));
        // Nothing left to take out: the rewritten list stays as it is.
        assert_eq!(redact(&after, &r.bytes, &secrets).await.unwrap(), None);
    }

    #[tokio::test]
    async fn utf16_stays_utf16_and_a_list_without_passwords_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = a2a_local::FileSecrets::new(dir.path().join("secrets"));
        let list = "school_code,name,kind,source_db,source_files,dns\n\
                    08000013,À,migrate,mysql://u:pw-16@db/m,/srv/a,a\n";
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(list.encode_utf16().flat_map(u16::to_le_bytes));
        let r = redact(&plan(&bytes), &bytes, &secrets)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&r.bytes[..2], &[0xFF, 0xFE]);
        let (text, enc) = read::decode(&r.bytes);
        assert_eq!(enc, UTF_16LE);
        assert!(!text.contains("pw-16") && text.contains(",À,"), "{text}");
        let plain = b"school_code,name\n08000013,A\n";
        assert_eq!(redact(&plan(plain), plain, &secrets).await.unwrap(), None);
    }
}

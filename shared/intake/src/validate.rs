//! Validating: each record becomes a [`School`] or one or more [`RowError`]s. A bad row
//! never stops the good ones.

use std::collections::BTreeMap;

use a2a_core::{CodeError, InstanceKind, Locator, SchoolCode};
use serde::Serialize;

use crate::read::{Field, Record, Table};

/// The longest name kept (Moodle's site full name holds 254 characters).
const MAX_NAME: usize = 254;

/// The site template of a provision ("same code, different template").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// For schools that teach primary (`EPRI`).
    Primary,
    /// For the others.
    Secondary,
}

impl Template {
    /// The template's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Template::Primary => "primary",
            Template::Secondary => "secondary",
        }
    }

    /// The locator the instance records as its source: `template:primary`. The provision
    /// workflow resolves it to the template's database and files.
    pub fn locator(self) -> Locator {
        Locator::new(format!("template:{}", self.as_str()))
    }
}

/// One accepted row.
#[derive(Clone, Debug, PartialEq)]
pub struct School {
    /// Its file line.
    pub line: u64,
    /// The code, in its 8-digit form.
    pub code: SchoolCode,
    /// The name, trimmed, with runs of white space made one space.
    pub name: String,
    /// Migrate or provision.
    pub kind: InstanceKind,
    /// Teaches primary (`EPRI`).
    pub primary: bool,
    /// An explicit template from the file.
    pub template: Option<Template>,
    /// An explicit wave from the file.
    pub wave: Option<u32>,
    /// Higher goes first; 0 when empty.
    pub priority: i32,
    /// The source database (migrate).
    pub source_db: Option<Locator>,
    /// The source files (migrate).
    pub source_files: Option<Locator>,
    /// The site's short name, from the `dns` column or an Àgora web address.
    pub dns: Option<String>,
    /// The Àgora address the short name was taken from, when the row gave no `dns`.
    pub web: Option<String>,
}

/// Why one row, or one cell of it, was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// The 1-based file line (the header is line 1).
    pub line: u64,
    /// The school code cell as written (trimmed, cut to 64 characters).
    pub school_code: String,
    /// The field: a column name of the plan file, or `row` for the row as a whole.
    pub field: String,
    /// The offending value (cut to 200 characters).
    pub value: String,
    /// What is wrong and what to do.
    pub message: String,
}

fn clip(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

/// Reads a school code in its 8-digit form (`08000013`) or Àgora's client form, where the
/// first digit is a letter (0→a, 1→b, 2→c, 4→e: `a8000013`). The message says what to do.
pub fn parse_code(raw: &str) -> Result<SchoolCode, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("the school code is empty; every row needs its 8-digit code".into());
    }
    let mut chars = raw.chars();
    let first = chars.next().map(|c| c.to_ascii_lowercase());
    let rest = chars.as_str();
    let digit = match first {
        Some('a') => Some('0'),
        Some('b') => Some('1'),
        Some('c') => Some('2'),
        Some('e') => Some('4'),
        _ => None,
    };
    let candidate = match digit {
        Some(d) if rest.len() == 7 && rest.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{d}{rest}")
        }
        _ => raw.to_owned(),
    };
    SchoolCode::parse(&candidate).map_err(|e| match e {
        CodeError::Length { len: 7, .. } if raw.bytes().all(|b| b.is_ascii_digit()) => format!(
            "{e}; a spreadsheet may have dropped its leading zero (did you mean 0{raw}?): \
             keep codes as text"
        ),
        other => other.to_string(),
    })
}

/// The site's short name in `https://<host>/<dns>/moodle`: 1 to 30 of `a-z 0-9 - _`.
pub fn check_dns(dns: &str) -> Result<(), String> {
    let ok_len = (1..=30).contains(&dns.len());
    let ok_chars = dns
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a site short name: 1 to 30 characters of a-z, 0-9, '-' and '_'",
            clip(dns, 40)
        ))
    }
}

/// The short name in an Àgora address (`https://agora.xtec.cat/<dns>/`, then nothing or
/// one of its services, `moodle`, `intranet` or `nodes`, and anything under it), if the
/// web address is one; any other web site gives `None`.
pub fn agora_dns(web: &str) -> Option<String> {
    let web = web.trim().to_ascii_lowercase();
    let rest = web
        .strip_prefix("https://")
        .or_else(|| web.strip_prefix("http://"))
        .unwrap_or(&web);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (host, path) = rest.split_once('/')?;
    if !(host == "agora.xtec.cat" || host.starts_with("agora.")) {
        return None;
    }
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    let dns = segs.next()?;
    match segs.next() {
        None | Some("moodle" | "intranet" | "nodes") => {}
        Some(_) => return None,
    }
    check_dns(dns).ok()?;
    Some(dns.to_owned())
}

/// A template's name, in English or Catalan.
pub(crate) fn parse_template(cell: &str) -> Option<Template> {
    match cell.trim().to_lowercase().as_str() {
        "primary" | "primaria" | "primària" => Some(Template::Primary),
        "secondary" | "secundaria" | "secundària" => Some(Template::Secondary),
        _ => None,
    }
}

/// Whether a flag cell (`EPRI` under the `EPRI` column) says yes.
fn flag_set(cell: &str) -> bool {
    let c = cell.trim().to_ascii_lowercase();
    !c.is_empty() && !matches!(c.as_str(), "0" | "n" | "no" | "false" | "-")
}

fn teaches_primary(list: &str) -> bool {
    list.split(['|', ',', ';', '/', ' '])
        .any(|l| l.trim().eq_ignore_ascii_case("epri"))
}

/// A database URL of an engine A2A moves.
pub(crate) fn check_db(url: &str) -> Result<Locator, String> {
    let schemes = [
        "postgres://",
        "postgresql://",
        "mysql://",
        "mariadb://",
        "sqlite://",
    ];
    let ok = schemes
        .iter()
        .any(|s| url.len() > s.len() && url.starts_with(s))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        let l = Locator::new(url);
        // A password may name a secret instead (`secret:NAME`): the name must be one.
        if let Some(name) = l.secret_ref() {
            a2a_core::SecretName::parse(&name).map_err(|e| format!("names a secret: {e}"))?;
        }
        Ok(l)
    } else {
        Err(
            "is not a database URL; use postgres://, mysql://, mariadb:// or sqlite:// \
             (user:password@host/database)"
                .into(),
        )
    }
}

/// An absolute folder or an `s3://bucket/prefix`, with no `..` segment.
pub(crate) fn check_files(path: &str) -> Result<Locator, String> {
    let bad = || {
        Err(
            "is not a moodledata location; use an absolute folder (/srv/moodledata/...) or \
             s3://bucket/prefix, with no '..'"
                .to_owned(),
        )
    };
    if path.chars().any(char::is_control) || path.split('/').any(|s| s == "..") {
        return bad();
    }
    if let Some(rest) = path.strip_prefix("s3://") {
        let bucket = rest.split('/').next().unwrap_or("");
        if bucket.len() < 3 {
            return bad();
        }
    } else if !path.starts_with('/') {
        return bad();
    }
    Ok(Locator::new(path))
}

/// Validates every record of `table`. Rows without a `kind` take `default_kind`.
/// Returns the accepted schools in file order and the errors in line order.
pub fn validate(table: &Table, default_kind: InstanceKind) -> (Vec<School>, Vec<RowError>) {
    let width = table.columns.header.len();
    let mut schools = Vec::new();
    let mut errors = Vec::new();
    for rec in &table.records {
        match validate_row(table, rec, width, default_kind) {
            Ok(s) => schools.push(s),
            Err(mut e) => errors.append(&mut e),
        }
    }
    // A code or a given short name twice: neither row can be trusted, so both are reported.
    let mut by_code: BTreeMap<&SchoolCode, Vec<u64>> = BTreeMap::new();
    let mut by_dns: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for s in &schools {
        by_code.entry(&s.code).or_default().push(s.line);
        if let (Some(d), None) = (&s.dns, &s.web) {
            by_dns.entry(d).or_default().push(s.line);
        }
    }
    // A short name read from an Àgora address another school has already: the schools of
    // a rural zone (ZER) share one site, which goes with the first school that names it.
    let mut site_of: BTreeMap<&str, &School> = schools
        .iter()
        .filter(|s| s.web.is_none())
        .filter_map(|s| s.dns.as_deref().map(|d| (d, s)))
        .collect();
    let mut dropped: BTreeMap<u64, Vec<RowError>> = BTreeMap::new();
    for s in &schools {
        let lines = &by_code[&s.code];
        if lines.len() > 1 {
            dropped.entry(s.line).or_default().push(RowError {
                line: s.line,
                school_code: s.code.to_string(),
                field: Field::Code.as_str().into(),
                value: s.code.to_string(),
                message: format!(
                    "school {} appears on lines {}; keep one row per school",
                    s.code,
                    join(lines)
                ),
            });
        }
        let Some(d) = &s.dns else { continue };
        if let Some(web) = &s.web {
            match site_of.get(d.as_str()) {
                None => {
                    site_of.insert(d, s);
                }
                Some(first) => dropped.entry(s.line).or_default().push(RowError {
                    line: s.line,
                    school_code: s.code.to_string(),
                    field: Field::Web.as_str().into(),
                    value: clip(web, 200),
                    message: format!(
                        "the Àgora site {d:?} ({}) is already school {}'s ({}, line {}): \
                         the schools of a rural zone (ZER) share one site, kept with the \
                         first school that names it; give this school a short name of its \
                         own in a dns column if it needs a site, or leave the row out",
                        clip(web, 80),
                        first.code,
                        clip(&first.name, 80),
                        first.line
                    ),
                }),
            }
            continue;
        }
        let lines = &by_dns[d.as_str()];
        if lines.len() > 1 {
            dropped.entry(s.line).or_default().push(RowError {
                line: s.line,
                school_code: s.code.to_string(),
                field: Field::Dns.as_str().into(),
                value: d.clone(),
                message: format!(
                    "the short name {d:?} is on lines {}; each site needs its own",
                    join(lines)
                ),
            });
        }
    }
    schools.retain(|s| !dropped.contains_key(&s.line));
    errors.extend(dropped.into_values().flatten());
    errors.sort_by_key(|e| e.line);
    (schools, errors)
}

fn join(lines: &[u64]) -> String {
    let words: Vec<String> = lines.iter().map(u64::to_string).collect();
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => words.join(""),
    }
}

fn validate_row(
    table: &Table,
    rec: &Record,
    width: usize,
    default_kind: InstanceKind,
) -> Result<School, Vec<RowError>> {
    let cols = &table.columns;
    let raw_code = rec.get(cols, Field::Code);
    let mut errors = Vec::new();
    let mut err = |field: &str, value: &str, message: String| {
        errors.push(RowError {
            line: rec.line,
            school_code: clip(raw_code, 64),
            field: field.to_owned(),
            value: clip(value, 200),
            message,
        })
    };

    if let Some(why) = &rec.broken {
        err("row", "", why.clone());
        return Err(errors);
    }
    let extra_filled = rec.cells.iter().skip(width).any(|c| !c.trim().is_empty());
    if rec.cells.len() < width || extra_filled {
        err(
            "row",
            "",
            format!(
                "the row has {} cells but the header has {width}; a cell is missing or a \
                 value holds an unquoted '{}'",
                rec.cells.len(),
                table.delimiter.escape_default()
            ),
        );
        return Err(errors);
    }

    let code = parse_code(raw_code)
        .map_err(|m| err(Field::Code.as_str(), raw_code, m))
        .ok();

    let raw_name = rec.get(cols, Field::Name);
    let name = raw_name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        err(
            Field::Name.as_str(),
            raw_name,
            "the name is empty; give the school's full name".into(),
        );
    } else if name.chars().any(char::is_control) {
        err(
            Field::Name.as_str(),
            raw_name,
            "the name holds a control character; retype it".into(),
        );
    } else if name.chars().count() > MAX_NAME {
        err(
            Field::Name.as_str(),
            raw_name,
            format!("the name is longer than {MAX_NAME} characters; shorten it"),
        );
    }

    let raw_kind = rec.get(cols, Field::Kind);
    let kind = match raw_kind.to_ascii_lowercase().as_str() {
        "" => Some(default_kind),
        "migrate" => Some(InstanceKind::Migrate),
        "provision" => Some(InstanceKind::Provision),
        _ => {
            err(
                Field::Kind.as_str(),
                raw_kind,
                "the kind is neither `migrate` nor `provision`".into(),
            );
            None
        }
    };

    let raw_wave = rec.get(cols, Field::Wave);
    let wave = match raw_wave {
        "" => None,
        w => match w.parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                err(
                    Field::Wave.as_str(),
                    w,
                    "the wave is not a whole number from 1 up; leave it empty to let the plan \
                     choose"
                        .into(),
                );
                None
            }
        },
    };

    let raw_priority = rec.get(cols, Field::Priority);
    let priority = match raw_priority {
        "" => 0,
        p => p.parse::<i32>().unwrap_or_else(|_| {
            err(
                Field::Priority.as_str(),
                p,
                "the priority is not a whole number (higher goes first; empty is 0)".into(),
            );
            0
        }),
    };

    let raw_template = rec.get(cols, Field::Template);
    let template = match parse_template(raw_template) {
        _ if raw_template.is_empty() => None,
        Some(t) => Some(t),
        None => {
            err(
                Field::Template.as_str(),
                raw_template,
                "the template is neither `primary` nor `secondary`".into(),
            );
            None
        }
    };
    let primary = match template {
        Some(t) => t == Template::Primary,
        None => {
            flag_set(rec.get(cols, Field::Primary)) || teaches_primary(rec.get(cols, Field::Levels))
        }
    };

    let raw_db = rec.get(cols, Field::SourceDb);
    let source_db = match raw_db {
        "" => None,
        url => check_db(url)
            .map_err(|m| {
                // The value may hold a password: the report shows it redacted.
                let shown = Locator::new(url).redacted();
                err(Field::SourceDb.as_str(), &shown, format!("{shown:?} {m}"))
            })
            .ok(),
    };
    let raw_files = rec.get(cols, Field::SourceFiles);
    let source_files = match raw_files {
        "" => None,
        p => check_files(p)
            .map_err(|m| {
                err(
                    Field::SourceFiles.as_str(),
                    p,
                    format!("{:?} {m}", clip(p, 80)),
                )
            })
            .ok(),
    };

    let raw_dns = rec.get(cols, Field::Dns);
    let raw_web = rec.get(cols, Field::Web);
    let (dns, web) = match raw_dns {
        "" => match agora_dns(raw_web) {
            Some(d) => (Some(d), Some(raw_web.to_owned())),
            None => (None, None),
        },
        d => match check_dns(d) {
            Ok(()) => (Some(d.to_owned()), None),
            Err(m) => {
                err(Field::Dns.as_str(), d, m);
                (None, None)
            }
        },
    };

    match kind {
        Some(InstanceKind::Migrate) => {
            if raw_db.is_empty() || raw_files.is_empty() {
                let missing = if raw_db.is_empty() && raw_files.is_empty() {
                    "source_db and source_files are"
                } else if raw_db.is_empty() {
                    "source_db is"
                } else {
                    "source_files is"
                };
                err(
                    if raw_db.is_empty() {
                        Field::SourceDb.as_str()
                    } else {
                        Field::SourceFiles.as_str()
                    },
                    "",
                    format!(
                        "a migrate row needs a source: {missing} empty (the site's database \
                         URL and its moodledata folder or s3:// prefix)"
                    ),
                );
            }
            if dns.is_none() && raw_dns.is_empty() {
                err(
                    Field::Dns.as_str(),
                    "",
                    "a migrated site keeps its address: give its short name in dns, or its \
                     Àgora address in the web column"
                        .into(),
                );
            }
        }
        Some(InstanceKind::Provision) => {
            for (field, raw) in [(Field::SourceDb, raw_db), (Field::SourceFiles, raw_files)] {
                if !raw.is_empty() {
                    let shown = if field == Field::SourceDb {
                        Locator::new(raw).redacted()
                    } else {
                        raw.to_owned()
                    };
                    err(
                        field.as_str(),
                        &shown,
                        "a provision row takes no source: a new site is made from the \
                         template; empty the cell or make the row kind=migrate"
                            .into(),
                    );
                }
            }
        }
        None => {}
    }

    match (code, kind, errors.is_empty()) {
        (Some(code), Some(kind), true) => Ok(School {
            line: rec.line,
            code,
            name,
            kind,
            primary,
            template,
            wave,
            priority,
            source_db,
            source_files,
            dns,
            web,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{DEFAULT_MAX_BYTES, read_table};

    fn run(text: &str, kind: InstanceKind) -> (Vec<School>, Vec<RowError>) {
        let t = read_table("t.csv", text.as_bytes(), DEFAULT_MAX_BYTES).unwrap();
        validate(&t, kind)
    }

    const PLAN: &str = "school_code,name,kind,wave,priority,source_db,source_files,dns\n";

    #[test]
    fn codes_in_both_forms_become_eight_digits() {
        for (raw, want) in [
            ("08000013", "08000013"),
            ("a8000013", "08000013"),
            ("A8000013", "08000013"),
            ("b7001234", "17001234"),
            ("c5000001", "25000001"),
            ("e3000009", "43000009"),
            (" 08000013 ", "08000013"),
        ] {
            assert_eq!(parse_code(raw).unwrap().as_str(), want, "{raw}");
        }
    }

    #[test]
    fn bad_codes_say_why() {
        let m = parse_code("8000013").unwrap_err();
        assert!(m.contains("did you mean 08000013"), "{m}");
        assert!(
            parse_code("080000131")
                .unwrap_err()
                .contains("9 characters")
        );
        assert!(parse_code("0800001X").unwrap_err().contains("'X'"));
        assert!(parse_code("d8000013").unwrap_err().contains("'d'"));
        assert!(parse_code("a800001").is_err());
        assert!(parse_code("").unwrap_err().contains("empty"));
        assert!(parse_code("08001234'; DROP").is_err());
        assert!(parse_code("../../etc").is_err());
        assert!(parse_code("99000000").unwrap_err().contains("province"));
    }

    #[test]
    fn agora_addresses_give_their_short_name() {
        assert_eq!(
            agora_dns("https://agora.xtec.cat/escola-berti/moodle/").as_deref(),
            Some("escola-berti")
        );
        assert_eq!(
            agora_dns("http://AGORA.xtec.cat/iesx/").as_deref(),
            Some("iesx")
        );
        assert_eq!(agora_dns("https://www.escolaberti.cat/"), None);
        assert_eq!(agora_dns("https://agora.xtec.cat/a/b/c"), None);
        assert_eq!(agora_dns("https://agora.xtec.cat/"), None);
        assert_eq!(agora_dns("ftp://agora.xtec.cat/x/moodle"), None);
        assert_eq!(agora_dns("https://agora.xtec.cat/Bad Name/moodle"), None);
        for web in [
            "https://agora.xtec.cat/zer-alt-bergueda/",
            "agora.xtec.cat/zer-alt-bergueda",
            "http://agora.xtec.cat/zer-alt-bergueda/intranet/index.php",
            "https://agora.xtec.cat/zer-alt-bergueda/nodes/?p=2",
            "https://agora.xtec.cat/zer-alt-bergueda#inici",
        ] {
            assert_eq!(agora_dns(web).as_deref(), Some("zer-alt-bergueda"), "{web}");
        }
        assert_eq!(agora_dns("https://agora.xtec.cat/x/blog/moodle"), None);
    }

    #[test]
    fn a_shared_agora_site_stays_with_its_first_school() {
        let (s, e) = run(
            "id,tipus,nom,web\n\
             25000013,ZER,Escola de Bagà,https://agora.xtec.cat/zer-alt-bergueda/\n\
             25000021,ZER,Escola de Guardiola,https://agora.xtec.cat/zer-alt-bergueda/\n\
             25000034,ESC,Escola Vall,https://agora.xtec.cat/esc-vall/\n\
             25000042,ZER,Escola de Saldes,http://agora.xtec.cat/zer-alt-bergueda/moodle\n",
            InstanceKind::Provision,
        );
        let kept: Vec<&str> = s.iter().map(|s| s.code.as_str()).collect();
        assert_eq!(kept, ["25000013", "25000034"]);
        assert_eq!(s[0].dns.as_deref(), Some("zer-alt-bergueda"));
        let got: Vec<(u64, &str)> = e.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(got, [(3, "web"), (5, "web")]);
        let m = &e[0].message;
        assert!(m.contains("\"zer-alt-bergueda\""), "{m}");
        assert!(
            m.contains("school 25000013's (Escola de Bagà, line 2)"),
            "{m}"
        );
        assert_eq!(e[0].value, "https://agora.xtec.cat/zer-alt-bergueda/");

        // A given short name owns its site even against an earlier address.
        let (s, e) = run(
            "id,nom,dns,web\n08000013,A,,https://agora.xtec.cat/esc-a/\n08000021,B,esc-a,\n",
            InstanceKind::Provision,
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].code.as_str(), "08000021");
        assert!(
            e[0].message.contains("school 08000021's"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn a_tipus_column_never_makes_a_kind() {
        let text = "id,tipus,nom,estudis\n08000013,ESC,Escola A,EINF2C EPRI\n\
                    08000021,INS,Institut B,ESO BATX\n";
        let (s, e) = run(text, InstanceKind::Provision);
        assert!(e.is_empty(), "{e:?}");
        assert!(s.iter().all(|s| s.kind == InstanceKind::Provision));
        assert!(s[0].primary && !s[1].primary);
        let (s, e) = run(text, InstanceKind::Migrate);
        assert!(s.is_empty());
        assert!(e.iter().all(|e| e.field != "kind"), "{e:?}");
    }

    #[test]
    fn a_good_plan_file_is_accepted_whole() {
        let (s, e) = run(
            &format!(
                "{PLAN}08000013,Escola A,migrate,2,5,postgres://u:p@db/m1,/srv/md/1,esc-a\n\
                 a8000021,  Escola   B ,provision,,,,,\n"
            ),
            InstanceKind::Provision,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].wave, Some(2));
        assert_eq!(s[0].priority, 5);
        assert_eq!(s[0].dns.as_deref(), Some("esc-a"));
        assert_eq!(
            s[0].source_db.as_ref().unwrap().expose(),
            "postgres://u:p@db/m1"
        );
        assert_eq!(s[1].code.as_str(), "08000021");
        assert_eq!(s[1].name, "Escola B");
        assert_eq!(s[1].kind, InstanceKind::Provision);
    }

    #[test]
    fn sources_follow_the_kind() {
        let (s, e) = run(
            &format!(
                "{PLAN}08000013,A,migrate,,,,,a\n\
                 08000021,B,provision,,,mysql://x/y,,\n\
                 08000034,C,migrate,,,postgres://h/d,relative/path,c\n\
                 08000042,D,migrate,,,oracle://h/d,/srv/x,d\n\
                 08000055,E,migrate,,,postgres://h/d,/srv/../etc,e\n\
                 08000063,F,migrate,,,postgres://h/d,s3://bucket/p,\n"
            ),
            InstanceKind::Provision,
        );
        assert!(s.is_empty(), "{s:?}");
        let got: Vec<(u64, &str)> = e.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            got,
            [
                (2, "source_db"),
                (3, "source_db"),
                (4, "source_files"),
                (5, "source_db"),
                (6, "source_files"),
                (7, "dns"),
            ]
        );
        assert!(e[0].message.contains("needs a source"), "{}", e[0].message);
        assert!(e[1].message.contains("takes no source"), "{}", e[1].message);
    }

    #[test]
    fn passwords_never_reach_a_report() {
        let (_, e) = run(
            &format!("{PLAN}08000021,B,provision,,,postgres://u:s3cret@h/d,,\n"),
            InstanceKind::Provision,
        );
        assert_eq!(e.len(), 1);
        assert!(!e[0].value.contains("s3cret") && !e[0].message.contains("s3cret"));
    }

    #[test]
    fn one_row_can_have_several_errors_and_the_good_rows_stay() {
        let (s, e) = run(
            &format!(
                "{PLAN}0800001X,,sideways,0,high,,,BAD NAME\n08000013,Escola,provision,,,,,\n"
            ),
            InstanceKind::Provision,
        );
        assert_eq!(s.len(), 1);
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["school_code", "name", "kind", "wave", "priority", "dns"]
        );
        assert!(e.iter().all(|e| e.line == 2 && e.school_code == "0800001X"));
    }

    #[test]
    fn duplicates_are_reported_against_both_lines() {
        let (s, e) = run(
            "school_code,name\n08000013,A\n08000021,B\na8000013,C\n",
            InstanceKind::Provision,
        );
        assert_eq!(s.len(), 1);
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].line, e[1].line), (2, 4));
        assert!(e[0].message.contains("lines 2 and 4"), "{}", e[0].message);

        let (s, e) = run(
            "school_code,name,dns\n08000013,A,x\n08000021,B,x\n",
            InstanceKind::Provision,
        );
        assert!(s.is_empty());
        assert!(e.iter().all(|e| e.field == "dns"));
    }

    #[test]
    fn ragged_rows_are_rejected_but_trailing_empty_cells_are_not() {
        let (s, e) = run(
            "school_code;name;kind\n08000013;A\n08000021;B;provision;extra\n08000034;C;;;\n",
            InstanceKind::Provision,
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].code.as_str(), "08000034");
        assert_eq!(e.len(), 2);
        assert!(e.iter().all(|e| e.field == "row"));
        assert!(
            e[0].message.contains("2 cells but the header has 3"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn primary_comes_from_a_flag_column_a_list_column_or_the_template() {
        let (s, _) = run(
            "Codi centre;Denominació completa;EINF2C;EPRI;ESO\n\
             08000013;A;EINF2C;EPRI;\n08000021;B;;;ESO\n",
            InstanceKind::Provision,
        );
        assert!(s[0].primary && !s[1].primary);
        let (s, _) = run(
            "codi_centre,nom,estudis\n08000013,A,EINF2C|EPRI\n08000021,B,ESO|BATX\n",
            InstanceKind::Provision,
        );
        assert!(s[0].primary && !s[1].primary);
        let (s, _) = run(
            "school_code,name,template\n08000013,A,secondary\n08000021,B,primary\n",
            InstanceKind::Provision,
        );
        assert_eq!(s[0].template, Some(Template::Secondary));
        assert!(!s[0].primary && s[1].primary);
    }

    #[test]
    fn a_migrate_row_needs_its_address() {
        let (s, e) = run(
            "school_code,name,kind,source_db,source_files,web\n\
             08000013,A,migrate,postgres://h/a,/srv/a,https://agora.xtec.cat/esc-a/moodle\n\
             08000021,B,migrate,postgres://h/b,/srv/b,https://www.escolab.cat\n",
            InstanceKind::Provision,
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].dns.as_deref(), Some("esc-a"));
        assert_eq!((e[0].line, e[0].field.as_str()), (3, "dns"));
    }

    #[test]
    fn an_unclosed_quote_is_one_row_error() {
        let (s, e) = run(
            "school_code,name\n08000013,A\n08000021,\"B\n08000034,C\n",
            InstanceKind::Provision,
        );
        assert_eq!(s.len(), 1);
        assert_eq!((e[0].line, e[0].field.as_str()), (3, "row"));
    }
}

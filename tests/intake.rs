//! End-to-end tests of `a2a plan` and `a2a upload`: the bad-input corpus under
//! `tests/fixtures/intake/`, each file with its expected outcome, and idempotent upload.

mod common;
use common::a2a;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use a2a_core::{
    BlobKey, BlobStore, InstanceStore, ListFilter, SchoolCode, Status, UploadLedger, list_all,
};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/intake")
        .join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What one corpus file must give.
enum Expect {
    /// Refused as a whole (exit 2); stderr holds these words.
    Refused(&'static [&'static str]),
    /// Read: this many accepted, and exactly these (line, field) errors.
    Read {
        accepted: u64,
        rejected: u64,
        errors: &'static [(u64, &'static str)],
    },
}

use Expect::{Read, Refused};

/// Every corpus file and its outcome. A file in the folder but not here fails the test.
const CORPUS: &[(&str, Expect)] = &[
    ("empty.csv", Refused(&["the file is empty"])),
    ("whitespace-only.csv", Refused(&["the file is empty"])),
    ("binary.png", Refused(&["not text"])),
    (
        "missing-name-column.csv",
        Refused(&["line 1: no name column", "\"Adreça\"", "\"Nom municipi\""]),
    ),
    (
        "missing-code-column.csv",
        Refused(&["no school_code column", "\"municipi\""]),
    ),
    (
        "no-header.csv",
        Refused(&["no school_code and no name column", "\"08000013\""]),
    ),
    (
        "ambiguous-columns.csv",
        Refused(&["both name the field school_code"]),
    ),
    (
        "header-only.csv",
        Read {
            accepted: 0,
            rejected: 0,
            errors: &[],
        },
    ),
    (
        "latin1-accents.csv",
        Read {
            accepted: 4,
            rejected: 0,
            errors: &[],
        },
    ),
    (
        "utf8-bom.csv",
        Read {
            accepted: 2,
            rejected: 0,
            errors: &[],
        },
    ),
    (
        "utf16-excel.csv",
        Read {
            accepted: 2,
            rejected: 0,
            errors: &[],
        },
    ),
    (
        "semicolon-directory.csv",
        Read {
            accepted: 3,
            rejected: 0,
            errors: &[],
        },
    ),
    (
        "tab-delimited.csv",
        Read {
            accepted: 2,
            rejected: 0,
            errors: &[],
        },
    ),
    (
        "quoted-newlines.csv",
        Read {
            accepted: 3,
            rejected: 1,
            errors: &[(7, "school_code")],
        },
    ),
    (
        "crlf-line-ends.csv",
        Read {
            accepted: 2,
            rejected: 0,
            errors: &[],
        },
    ),
    (
        "blank-lines.csv",
        Read {
            accepted: 1,
            rejected: 1,
            errors: &[(6, "school_code")],
        },
    ),
    (
        "duplicate-code.csv",
        Read {
            accepted: 1,
            rejected: 2,
            errors: &[(2, "school_code"), (4, "school_code")],
        },
    ),
    (
        "code-7-digits.csv",
        Read {
            accepted: 1,
            rejected: 1,
            errors: &[(2, "school_code")],
        },
    ),
    (
        "code-9-digits.csv",
        Read {
            accepted: 1,
            rejected: 1,
            errors: &[(2, "school_code")],
        },
    ),
    (
        "code-non-digit.csv",
        Read {
            accepted: 1,
            rejected: 2,
            errors: &[(2, "school_code"), (3, "school_code")],
        },
    ),
    (
        "code-sql-payload.csv",
        Read {
            accepted: 1,
            rejected: 1,
            errors: &[(2, "school_code")],
        },
    ),
    (
        "code-path-payload.csv",
        Read {
            accepted: 1,
            rejected: 1,
            errors: &[(2, "school_code")],
        },
    ),
    (
        "agora-client-codes.csv",
        Read {
            accepted: 4,
            rejected: 0,
            errors: &[],
        },
    ),
    (
        "ragged-row.csv",
        Read {
            accepted: 2,
            rejected: 2,
            errors: &[(3, "row"), (4, "row")],
        },
    ),
    (
        "unclosed-quote.csv",
        Read {
            accepted: 1,
            rejected: 1,
            errors: &[(3, "row")],
        },
    ),
    (
        "formula-injection.csv",
        Read {
            accepted: 1,
            rejected: 3,
            errors: &[(2, "school_code"), (4, "school_code"), (5, "school_code")],
        },
    ),
    (
        "plan-file.csv",
        Read {
            accepted: 3,
            rejected: 0,
            errors: &[],
        },
    ),
    (
        "migrate-without-source.csv",
        Read {
            accepted: 0,
            rejected: 2,
            errors: &[(2, "source_db"), (3, "source_files")],
        },
    ),
    (
        "provision-with-source.csv",
        Read {
            accepted: 1,
            rejected: 1,
            errors: &[(2, "source_db")],
        },
    ),
    (
        "bad-dns.csv",
        Read {
            accepted: 1,
            rejected: 2,
            errors: &[(2, "dns"), (3, "dns")],
        },
    ),
    (
        "bad-kind-wave-priority.csv",
        Read {
            accepted: 1,
            rejected: 1,
            errors: &[(2, "kind"), (2, "wave"), (2, "priority")],
        },
    ),
    (
        "renamed-columns.csv",
        Read {
            accepted: 2,
            rejected: 0,
            errors: &[],
        },
    ),
    (
        "web-agora-address.csv",
        Read {
            accepted: 3,
            rejected: 0,
            errors: &[],
        },
    ),
    // The school map export (`id,tipus,nom,municipi,…,estudis,…,web,…,mail,…`): `tipus` is
    // the type of school, and line 7 is the second school of a ZER, sharing its site.
    (
        "map-export-comma.csv",
        Read {
            accepted: 10,
            rejected: 1,
            errors: &[(7, "web")],
        },
    ),
    (
        "map-export-semicolon-bom.csv",
        Read {
            accepted: 10,
            rejected: 1,
            errors: &[(7, "web")],
        },
    ),
    (
        "map-export-tab-bom.csv",
        Read {
            accepted: 10,
            rejected: 1,
            errors: &[(7, "web")],
        },
    ),
    (
        "map-export-windows-1252.csv",
        Read {
            accepted: 10,
            rejected: 1,
            errors: &[(7, "web")],
        },
    ),
    (
        "id-row-numbers.csv",
        Read {
            accepted: 0,
            rejected: 4,
            errors: &[
                (2, "school_code"),
                (3, "school_code"),
                (4, "school_code"),
                (5, "school_code"),
            ],
        },
    ),
];

/// The map exports: one list of 11 schools, in each delimiter and encoding.
const MAP_EXPORTS: [&str; 4] = [
    "map-export-comma.csv",
    "map-export-semicolon-bom.csv",
    "map-export-tab-bom.csv",
    "map-export-windows-1252.csv",
];

/// Their schools that teach primary (`EPRI` in `estudis`), in plan order.
const MAP_PRIMARY: [&str; 5] = ["08013275", "08052271", "08071534", "17002893", "25002011"];

/// Their other schools, in plan order.
const MAP_OTHERS: [&str; 5] = ["08019411", "17005225", "17006321", "43004251", "43006110"];

fn plan_json(file: &Path, extra: &[&str]) -> (Output, Option<Value>) {
    let home = tempfile::tempdir().unwrap();
    let mut args = vec!["plan", "--json"];
    args.extend_from_slice(extra);
    let f = file.to_str().unwrap();
    args.push(f);
    let out = a2a(home.path(), &args);
    assert!(
        std::fs::read_dir(home.path()).unwrap().next().is_none(),
        "plan writes nothing"
    );
    let json = serde_json::from_slice(&out.stdout).ok();
    (out, json)
}

#[test]
fn every_corpus_file_gives_its_expected_outcome() {
    let dir = fixture("");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = CORPUS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, listed, "every corpus file has an expected outcome");
    assert!(CORPUS.len() >= 25, "the corpus has at least 25 files");

    for (name, expect) in CORPUS {
        let (out, json) = plan_json(&fixture(name), &[]);
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{name}: {err}");
        match expect {
            Refused(words) => {
                assert_eq!(out.status.code(), Some(2), "{name}: {err}");
                assert!(out.stdout.is_empty(), "{name}: no plan for a refused file");
                assert!(err.contains(name), "{name}: names the file: {err}");
                assert!(err.contains("hint:"), "{name}: says what to do: {err}");
                for w in *words {
                    assert!(err.contains(w), "{name}: expected {w:?} in: {err}");
                }
            }
            Read {
                accepted,
                rejected,
                errors,
            } => {
                let code = if *rejected == 0 { 0 } else { 1 };
                assert_eq!(out.status.code(), Some(code), "{name}: {err}");
                let json = json.unwrap_or_else(|| panic!("{name}: stdout is JSON"));
                assert_eq!(json["accepted"], *accepted, "{name}: {json}");
                assert_eq!(json["rejected"], *rejected, "{name}: {json}");
                let got: Vec<(u64, String)> = json["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
                        assert!(e["school_code"].is_string());
                        (
                            e["line"].as_u64().unwrap(),
                            e["field"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                let want: Vec<(u64, String)> =
                    errors.iter().map(|(l, f)| (*l, f.to_string())).collect();
                assert_eq!(got, want, "{name}: {json}");
                let planned: usize = json["waves"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w["schools"].as_array().unwrap().len())
                    .sum();
                assert_eq!(
                    planned as u64, *accepted,
                    "{name}: every accepted school planned"
                );
            }
        }
    }
}

fn waves(json: &Value) -> Vec<(u64, Vec<String>)> {
    json["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["wave"].as_u64().unwrap(),
                w["schools"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn w(n: u64, codes: &[&str]) -> (u64, Vec<String>) {
    (n, codes.iter().map(|s| s.to_string()).collect())
}

#[test]
fn plans_put_primary_first_keep_given_waves_and_normalise_codes() {
    let (_, j) = plan_json(&fixture("semicolon-directory.csv"), &[]);
    assert_eq!(
        waves(&j.unwrap()),
        [w(1, &["08000013", "17000034", "08000021"])]
    );
    let (_, j) = plan_json(&fixture("plan-file.csv"), &[]);
    assert_eq!(
        waves(&j.unwrap()),
        [w(1, &["08000013"]), w(2, &["08000021", "17000034"])]
    );
    let (_, j) = plan_json(&fixture("agora-client-codes.csv"), &["--wave-size", "3"]);
    assert_eq!(
        waves(&j.unwrap()),
        [
            w(1, &["08000013", "17000021", "25000034"]),
            w(2, &["43000042"])
        ]
    );
    let (_, j) = plan_json(&fixture("renamed-columns.csv"), &[]);
    assert_eq!(waves(&j.unwrap()), [w(1, &["08000013", "08000021"])]);
}

#[test]
fn the_text_plan_names_file_line_field_and_school() {
    let home = tempfile::tempdir().unwrap();
    let f = fixture("code-7-digits.csv");
    let out = a2a(home.path(), &["plan", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let o = text(&out.stdout);
    assert!(
        o.contains("code-7-digits.csv:2: school \"8000013\": school_code:"),
        "{o}"
    );
    assert!(o.contains("did you mean 08000013"), "{o}");

    let f = fixture("latin1-accents.csv");
    let out = a2a(home.path(), &["plan", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let o = text(&out.stdout);
    assert!(o.contains("windows-1252"), "{o}");
    assert!(o.contains("08000013 escola-berti (Escola Bertí)"), "{o}");
    assert!(o.contains("43000042 collegi-sant-jaume-de-l ("), "{o}");
}

#[test]
fn a_directory_list_taken_as_migrate_needs_sources() {
    let (out, j) = plan_json(&fixture("tab-delimited.csv"), &["--kind", "migrate"]);
    assert_eq!(out.status.code(), Some(1));
    let j = j.unwrap();
    assert_eq!(
        (j["accepted"].as_u64(), j["rejected"].as_u64()),
        (Some(0), Some(2))
    );
    let home = tempfile::tempdir().unwrap();
    let f = fixture("tab-delimited.csv");
    let out = a2a(
        home.path(),
        &["plan", "--kind", "move", f.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "a bad --kind is a usage error");
    let out = a2a(
        home.path(),
        &["plan", "--wave-size", "0", f.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_file_over_the_limit_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.csv");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        writeln!(f, "school_code,name").unwrap();
        let row = format!("08000013,{}\n", "Escola ".repeat(140));
        let mut written = 0usize;
        while written < 60 * 1024 * 1024 {
            f.write_all(row.as_bytes()).unwrap();
            written += row.len();
        }
    }
    let home = dir.path().join("home");
    for args in [
        vec!["plan", big.to_str().unwrap()],
        vec!["upload", big.to_str().unwrap()],
    ] {
        let out = a2a(&home, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("big.csv") && err.contains("over the limit"),
            "{err}"
        );
        assert!(!home.exists(), "nothing written for a refused file");
    }
    // The limit is a flag: 1.2 MB passes by default and is refused under --max-mb 1.
    let mid = dir.path().join("mid.csv");
    let mut body = String::from("school_code,name\n");
    for n in 0..60_000 {
        body.push_str(&format!("08{n:06},Escola {n}\n"));
    }
    assert!(body.len() > 1_000_000);
    std::fs::write(&mid, body).unwrap();
    let out = a2a(&home, &["plan", "--json", mid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = a2a(&home, &["plan", "--max-mb", "1", mid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("over the limit"));
}

async fn sqlite(home: &Path) -> a2a_local::SqliteStore {
    a2a_local::SqliteStore::open(&home.join("state.db"))
        .await
        .unwrap()
}

fn code(c: &str) -> SchoolCode {
    SchoolCode::parse(c).unwrap()
}

/// Everything the state holds that an upload writes: instances and the upload records.
async fn snapshot(
    home: &Path,
    sha: &str,
) -> (Vec<a2a_core::Instance>, Option<a2a_core::UploadRecord>) {
    let s = sqlite(home).await;
    (
        list_all(&s, ListFilter::default()).await.unwrap(),
        s.upload(sha).await.unwrap(),
    )
}

fn sha_of(path: &Path) -> String {
    a2a_intake::sha256_hex(&std::fs::read(path).unwrap())
}

#[tokio::test]
async fn the_same_upload_twice_leaves_the_same_store_and_says_so() {
    let home = tempfile::tempdir().unwrap();
    let f = fixture("semicolon-directory.csv");
    let first = a2a(home.path(), &["upload", f.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let o = text(&first.stdout);
    assert!(o.contains("registered 3 new"), "{o}");
    let sha = sha_of(&f);
    let before = snapshot(home.path(), &sha).await;
    assert_eq!(before.0.len(), 3);
    assert!(before.1.is_some(), "the upload is recorded");

    let second = a2a(home.path(), &["upload", f.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(0));
    let o = text(&second.stdout);
    assert!(o.contains("already taken in"), "{o}");
    assert!(o.contains("nothing changed"), "{o}");
    assert_eq!(snapshot(home.path(), &sha).await, before);

    let json = a2a(home.path(), &["upload", "--json", f.to_str().unwrap()]);
    let j: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(j["already_taken_in"], true);
    assert_eq!(j["sha256"], sha);

    // The instances carry what the list said.
    let s = sqlite(home.path()).await;
    let berti = s.get(&code("08000013")).await.unwrap().unwrap();
    assert_eq!(berti.name, "Escola Bertí");
    assert_eq!(berti.status, Status::Registered);
    assert_eq!(
        berti.target.dns.as_deref(),
        Some("escola-berti"),
        "kept from its Àgora address"
    );
    assert_eq!(berti.source.db.unwrap().expose(), "template:primary");
    let nou = s.get(&code("08000021")).await.unwrap().unwrap();
    assert_eq!(nou.source.db.unwrap().expose(), "template:secondary");
    assert_eq!(nou.target.dns.as_deref(), Some("institut-nou"));
}

#[tokio::test]
async fn reports_are_written_defused_with_a_summary() {
    let home = tempfile::tempdir().unwrap();
    let f = fixture("formula-injection.csv");
    let out = a2a(home.path(), &["upload", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let sha = sha_of(&f);
    let reports = home.path().join("blobs/reports");
    let csv_path = reports.join(format!("formula-injection.csv.{}.errors.csv", &sha[..12]));
    let body = std::fs::read_to_string(&csv_path).unwrap();
    let mut r = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        r.headers().unwrap(),
        vec!["line", "school_code", "field", "value", "message"]
    );
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "a cell that could run as a formula: {cell:?}"
            );
        }
    }
    assert!(rows[0][1].starts_with("'=HYPERLINK"), "{:?}", &rows[0]);
    assert_eq!(&rows[1][1], "'+08000034");

    let summary: Value = serde_json::from_slice(
        &std::fs::read(reports.join(format!("formula-injection.csv.{}.summary.json", &sha[..12])))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["accepted"], 1);
    assert_eq!(summary["rejected"], 3);
    assert_eq!(summary["created"], serde_json::json!(["08000021"]));
    assert_eq!(summary["sha256"], sha);
}

#[tokio::test]
async fn short_names_come_from_agora_addresses_or_are_made_unique() {
    let home = tempfile::tempdir().unwrap();
    let f = fixture("web-agora-address.csv");
    let out = a2a(home.path(), &["upload", "--json", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        j["slugs"],
        serde_json::json!([
            {"school_code": "08000021", "name": "Escola Bertí", "dns": "escola-berti"},
            {"school_code": "08000034", "name": "Escola Bertí", "dns": "escola-berti-2"},
        ])
    );
    let s = sqlite(home.path()).await;
    let dns = |c| {
        let s = s.clone();
        async move { s.get(&code(c)).await.unwrap().unwrap().target.dns.unwrap() }
    };
    assert_eq!(dns("08000013").await, "ceip-berti");
    assert_eq!(dns("08000021").await, "escola-berti");
    assert_eq!(dns("08000034").await, "escola-berti-2");
}

#[tokio::test]
async fn a_changed_list_adds_updates_leaves_under_way_alone_and_reports_removed() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let list = dir.path().join("eix.csv");
    std::fs::write(
        &list,
        "school_code,name\n08000013,A\n08000021,B\n08000034,C\n",
    )
    .unwrap();
    let out = a2a(&home, &["upload", list.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    {
        let s = sqlite(&home).await;
        let mut b = s.get(&code("08000021")).await.unwrap().unwrap();
        b.move_to(Status::Queued, chrono::Utc::now()).unwrap();
        s.save(&b).await.unwrap();
    }
    std::fs::write(
        &list,
        "school_code,name\n08000013,A renamed\n08000021,B renamed\n08000042,D\n",
    )
    .unwrap();
    let out = a2a(&home, &["upload", "--json", list.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["created"], serde_json::json!(["08000042"]));
    assert_eq!(j["updated"], serde_json::json!(["08000013"]));
    assert_eq!(
        j["under_way"],
        serde_json::json!([{"school_code": "08000021", "status": "queued"}])
    );
    assert_eq!(j["removed"], serde_json::json!(["08000034"]));
    let s = sqlite(&home).await;
    let all = list_all(&s, ListFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4, "nothing deleted");
    assert_eq!(s.get(&code("08000021")).await.unwrap().unwrap().name, "B");
    assert_eq!(
        s.get(&code("08000013")).await.unwrap().unwrap().name,
        "A renamed"
    );
}

#[test]
fn a_refused_upload_registers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    for name in ["binary.png", "missing-name-column.csv", "empty.csv"] {
        let f = fixture(name);
        let out = a2a(&home, &["upload", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(
            text(&out.stderr).contains("nothing was registered"),
            "{name}"
        );
        assert!(!home.exists(), "{name}: nothing written");
    }
    let out = a2a(
        &home,
        &["upload", dir.path().join("nope.csv").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nope.csv"));
}

#[tokio::test]
async fn an_upload_into_dynamodb_and_s3_is_taken_in_once() {
    let test = "an_upload_into_dynamodb_and_s3_is_taken_in_once";
    let Some(moto) = a2a_testkit::moto::Moto::for_test(test).await else {
        return;
    };
    let conf = moto.conf.clone();
    let store = moto.state_table().await.unwrap();
    let table = store.table().to_owned();
    let bucket = moto.bucket("a2a-intake-cli").await.unwrap();

    let home = tempfile::tempdir().unwrap();
    let f = fixture("duplicate-code.csv");
    let (state, blobs) = (format!("dynamodb:{table}"), format!("s3://{bucket}/a2a"));
    let args = [
        "--state",
        &state,
        "--blobs",
        &blobs,
        "upload",
        f.to_str().unwrap(),
    ];
    let first = a2a(home.path(), &args);
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains("registered 1 new"));
    let second = a2a(home.path(), &args);
    assert_eq!(second.status.code(), Some(1), "rows are still rejected");
    assert!(text(&second.stdout).contains("already taken in"));

    let all = list_all(&store, ListFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].code, code("08000021"));
    let sha = sha_of(&f);
    assert!(store.upload(&sha).await.unwrap().is_some());
    let key = format!("a2a/reports/duplicate-code.csv.{}.errors.csv", &sha[..12]);
    let report = a2a_aws::S3Blob::from_conf(&conf, &bucket, "")
        .get(&BlobKey::parse(&key).unwrap())
        .await
        .unwrap();
    let report = String::from_utf8(report.to_vec()).unwrap();
    assert_eq!(report.lines().count(), 3, "{report}");
}

#[test]
fn the_map_export_in_every_delimiter_and_encoding_plans_every_valid_row_primary_first() {
    let first = std::fs::read(fixture(MAP_EXPORTS[0])).unwrap();
    assert!(!first.starts_with(b"\xEF\xBB\xBF"), "one without a BOM");
    let bytes = std::fs::read(fixture("map-export-windows-1252.csv")).unwrap();
    assert!(std::str::from_utf8(&bytes).is_err(), "not UTF-8");
    assert!(
        bytes.windows(7).any(|w| w == b"P\xFAblica"),
        "\"Pública\" in Windows-1252"
    );
    for name in MAP_EXPORTS {
        let f = fixture(name);
        let (out, j) = plan_json(&f, &["--kind", "provision", "--wave-size", "50"]);
        assert_eq!(out.status.code(), Some(1), "{name}: one row rejected");
        let j = j.unwrap();
        assert_eq!(
            (j["accepted"].as_u64(), j["rejected"].as_u64()),
            (Some(10), Some(1))
        );
        let all: Vec<&str> = MAP_PRIMARY.iter().chain(&MAP_OTHERS).copied().collect();
        assert_eq!(
            waves(&j),
            [w(1, &all)],
            "{name}: every valid row, primary first"
        );
        assert!(
            j["errors"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["field"] != "kind"),
            "{name}: {j}"
        );
        let warning = &j["warnings"][0];
        assert_eq!(warning["field"], "kind", "{name}: {j}");
        assert_eq!(warning["column"], "tipus", "{name}: {j}");
        assert_eq!(j["warnings"].as_array().unwrap().len(), 1, "said once: {j}");

        let (_, j) = plan_json(&f, &["--wave-size", "5"]);
        assert_eq!(
            waves(&j.unwrap()),
            [w(1, &MAP_PRIMARY), w(2, &MAP_OTHERS)],
            "{name}: the stages come from estudis"
        );
    }
}

#[test]
fn a_zers_second_school_is_rejected_naming_the_shared_site_and_the_first() {
    let (_, j) = plan_json(&fixture("map-export-tab-bom.csv"), &[]);
    let j = j.unwrap();
    let e = &j["errors"][0];
    assert_eq!(
        (e["line"].as_u64(), e["school_code"].as_str()),
        (Some(7), Some("25002023"))
    );
    let m = e["message"].as_str().unwrap();
    for want in [
        "\"zer-alturgell\"",
        "https://agora.xtec.cat/zer-alturgell/",
        "school 25002011's (Escola Sant Miquel, line 6)",
        "ZER",
    ] {
        assert!(m.contains(want), "{want:?} in {m}");
    }
}

#[tokio::test]
async fn a_tipus_column_never_makes_a_rows_kind() {
    // Asked to migrate, no row reads its kind from tipus: each fails for want of a source,
    // and the summary says first that every row failed on it.
    let (out, j) = plan_json(&fixture("map-export-comma.csv"), &["--kind", "migrate"]);
    assert_eq!(out.status.code(), Some(1));
    let j = j.unwrap();
    assert_eq!(
        (j["accepted"].as_u64(), j["rejected"].as_u64()),
        (Some(0), Some(11))
    );
    let fields: BTreeSet<&str> = common::strings(&j["errors"], "field");
    assert!(
        !fields.contains("kind") && fields.contains("source_db"),
        "{fields:?}"
    );
    assert_eq!(j["warnings"][0]["field"], "source_db", "{j}");

    // Taken in as provisions: every school is one, from the template its stages say.
    let home = tempfile::tempdir().unwrap();
    let f = fixture("map-export-windows-1252.csv");
    let out = a2a(
        home.path(),
        &["upload", "--kind", "provision", f.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    assert!(o.starts_with("warning: ") && o.contains("\"tipus\""), "{o}");
    assert!(o.contains("registered 10 new"), "{o}");
    let s = sqlite(home.path()).await;
    let all = list_all(&s, ListFilter::default()).await.unwrap();
    assert_eq!(all.len(), 10);
    assert!(
        all.iter()
            .all(|i| i.kind == a2a_core::InstanceKind::Provision)
    );
    let sitges = s.get(&code("08052271")).await.unwrap().unwrap();
    assert_eq!(sitges.name, "Escola Pública Mediterrània");
    assert_eq!(sitges.source.db.unwrap().expose(), "template:primary");
    let vayreda = s.get(&code("17002893")).await.unwrap().unwrap();
    assert_eq!(
        vayreda.target.dns.as_deref(),
        Some("ceip-vayreda"),
        "from web"
    );
    let balmes = s.get(&code("08019411")).await.unwrap().unwrap();
    assert_eq!(balmes.source.db.unwrap().expose(), "template:secondary");
}

#[test]
fn when_most_rows_fail_on_one_field_plan_and_upload_say_so_first() {
    let f = fixture("id-row-numbers.csv");
    let (_, j) = plan_json(&f, &[]);
    let j = j.unwrap();
    let first = &j["warnings"][0];
    assert_eq!(first["field"], "school_code", "{j}");
    assert_eq!(first["column"], "id");
    assert_eq!(first["could_use"], serde_json::json!(["codi"]));
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .starts_with("4 of 4 rows fail on school_code"),
        "{first}"
    );

    let home = tempfile::tempdir().unwrap();
    let out = a2a(home.path(), &["plan", f.to_str().unwrap()]);
    let o = text(&out.stdout);
    assert!(
        o.lines().next().unwrap().starts_with(&format!(
            "warning: {}: 4 of 4 rows fail on school_code: the column read for it is \"id\"; \
             columns that could have been read: \"codi\"",
            f.display()
        )),
        "{o}"
    );

    let out = a2a(home.path(), &["upload", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let o = text(&out.stdout);
    assert!(
        o.lines()
            .next()
            .unwrap()
            .contains("4 of 4 rows fail on school_code"),
        "{o}"
    );
    let out = a2a(home.path(), &["upload", "--json", f.to_str().unwrap()]);
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["already_taken_in"], true);
    assert_eq!(j["warnings"][0]["could_use"], serde_json::json!(["codi"]));
    let sha = sha_of(&f);
    let summary: Value = serde_json::from_slice(
        &std::fs::read(home.path().join(format!(
            "blobs/reports/id-row-numbers.csv.{}.summary.json",
            &sha[..12]
        )))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["warnings"][0]["column"], "id", "{summary}");
}

/// A list whose source URL holds a password, as `a2a upload` takes it in on one machine:
/// the password goes to the home's secret store, the list is kept under `uploads/` naming
/// the secret instead, and no other file of the home holds the password; the same file
/// again is already taken in.
#[tokio::test]
async fn an_uploaded_list_is_kept_with_its_passwords_moved_to_the_secret_store() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let list = dir.path().join("migracions.csv");
    let pw = "Up7-local%23pw";
    std::fs::write(
        &list,
        format!(
            "school_code,name,kind,source_db,source_files,dns\n\
             08000013,A,migrate,postgres://moodle:{pw}@db.internal/m1,/srv/md/a,a\n\
             0800002X,Bad,migrate,postgres://moodle:{pw}@db.internal/m2,/srv/md/b,b\n"
        ),
    )
    .unwrap();
    let out = a2a(&home, &["upload", list.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("1 source database password moved to the secret store, 1 dropped"),
        "{said}"
    );
    let kept = std::fs::read_to_string(home.join("blobs/uploads/migracions.csv")).unwrap();
    assert!(
        kept.contains(
            "postgres://moodle:secret%3Aa2a%2F08000013%2Fsource-db-password@db.internal/m1"
        ),
        "{kept}"
    );
    assert!(kept.contains("postgres://moodle@db.internal/m2"), "{kept}");
    let secrets = home.join("secrets");
    for needle in ["Up7-local", "Up7-local#pw"] {
        let leaks: Vec<String> = common::files_containing(&home, needle.as_bytes())
            .into_iter()
            .filter(|f| !Path::new(f).starts_with(&secrets))
            .collect();
        assert!(leaks.is_empty(), "{needle} in {leaks:#?}");
        assert!(!said.contains(needle), "{said}");
    }
    let shown = a2a(
        &home,
        &["secret", "show", "08000013", "--what", "source-db-password"],
    );
    assert_eq!(text(&shown.stdout).trim(), "Up7-local#pw");
    let s = sqlite(&home).await;
    let a = s.get(&code("08000013")).await.unwrap().unwrap();
    assert_eq!(
        a.source.db.unwrap().secret_ref().as_deref(),
        Some("a2a/08000013/source-db-password")
    );
    let again = a2a(&home, &["upload", list.to_str().unwrap()]);
    assert!(
        text(&again.stdout).contains("already taken in"),
        "{}",
        text(&again.stdout)
    );
}

/// The same against DynamoDB, S3 and Secrets Manager (moto): the password is in Secrets
/// Manager under `A2A_SECRET_PREFIX`, and the list kept under `uploads/` names it.
#[tokio::test]
async fn an_upload_to_aws_keeps_the_list_without_its_passwords() {
    let test = "an_upload_to_aws_keeps_the_list_without_its_passwords";
    let Some(moto) = a2a_testkit::moto::Moto::for_test(test).await else {
        return;
    };
    let conf = moto.conf.clone();
    let store = moto.state_table().await.unwrap();
    let table = store.table().to_owned();
    let bucket = moto.bucket("a2a-redact-cli").await.unwrap();
    let prefix = format!("{}/", a2a_testkit::unique_name("sites"));
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("llista.csv");
    std::fs::write(
        &list,
        "school_code,name,kind,source_db,source_files,dns\n\
         17000014,B,migrate,mysql://moodle:Up7-aws-pw@db.internal/m17,/srv/md/b,b\n",
    )
    .unwrap();
    let (state, blobs) = (format!("dynamodb:{table}"), format!("s3://{bucket}/"));
    let out = common::command(dir.path())
        .env("A2A_SECRET_PREFIX", &prefix)
        .args(["--state", &state, "--blobs", &blobs, "upload"])
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let b = a2a_aws::S3Blob::from_conf(&conf, &bucket, "");
    let kept = b
        .get(&BlobKey::parse("uploads/llista.csv").unwrap())
        .await
        .unwrap();
    let kept = String::from_utf8(kept.to_vec()).unwrap();
    assert!(!kept.contains("Up7-aws-pw"), "{kept}");
    assert!(
        kept.contains("mysql://moodle:secret%3Aa2a%2F17000014%2Fsource-db-password@"),
        "{kept}"
    );
    let secrets = a2a_aws::SmSecrets::from_conf(&conf, prefix);
    let name = a2a_core::SecretName::of(&code("17000014"), "source-db-password").unwrap();
    use a2a_core::SecretStore;
    assert_eq!(
        secrets.get(&name).await.unwrap().unwrap().expose(),
        "Up7-aws-pw"
    );
    let i = store.get(&code("17000014")).await.unwrap().unwrap();
    assert_eq!(
        i.source.db.unwrap().secret_ref().as_deref(),
        Some(name.as_str())
    );
    // What is recorded as taken in is the kept list: its notification would change nothing.
    let sha = a2a_intake::sha256_hex(kept.as_bytes());
    assert!(store.upload(&sha).await.unwrap().is_some());
}

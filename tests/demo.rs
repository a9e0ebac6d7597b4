//! `a2a demo`, small: generated sites and templates, a school list taken in, every
//! instance run through the real state machines, a summary.

mod common;

use common::{a2a, text};

#[test]
fn a_small_demo_ends_with_every_instance_active_and_a_rerun_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let args = ["demo", "--migrations", "2", "--eix", "6"];
    let o = a2a(home.path(), &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("8 of 8 instances active"), "{}", text(&o));
    assert!(
        out.contains("migrate    active            2"),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("provision  active            6"),
        "{}",
        text(&o)
    );

    let o = a2a(home.path(), &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let o = a2a(home.path(), &["status", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["instances"], 8, "{v}");
    assert_eq!(v["by_status"]["active"], 8, "{v}");
}

/// The README's command runs with the default home, `.a2a`, a relative path: what the
/// demo generates under it must still be named by absolute paths.
#[test]
fn a_demo_in_the_default_relative_home_runs() {
    let cwd = tempfile::tempdir().unwrap();
    let o = common::command(std::path::Path::new(".a2a"))
        .current_dir(cwd.path())
        .args(["demo", "--migrations", "1", "--eix", "1"])
        .output()
        .expect("the a2a binary runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("2 of 2 instances active"),
        "{}",
        text(&o)
    );
    assert!(cwd.path().join(".a2a/state.db").is_file());
}

#[test]
fn the_demo_refuses_remote_backends() {
    let home = tempfile::tempdir().unwrap();
    let o = a2a(
        home.path(),
        &["--state", "dynamodb:x", "demo", "--eix", "1"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn a_small_demo_runs_on_postgres() {
    let test = "a_small_demo_runs_on_postgres";
    let Some(url) = a2a_testkit::service_url("A2A_TEST_PG_URL", test) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let o = a2a(
        home.path(),
        &["demo", "--db", &url, "--migrations", "1", "--eix", "3"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("4 of 4 instances active"),
        "{}",
        text(&o)
    );
}

#[test]
fn run_takes_a_real_list_in_and_runs_each_school() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/site.db", work.path().display());
    let files = work.path().join("moodledata");
    let o = a2a(
        home.path(),
        &[
            "fixture",
            "site",
            "--db",
            &db,
            "--files",
            files.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let list = work.path().join("list.csv");
    std::fs::write(
        &list,
        format!(
            "school_code,name,kind,dns,template,source_db,source_files\n\
             08012345,Institut Exemple,migrate,ins-exemple,,{db},{}\n\
             17000011,Escola Nova,provision,escola-nova,secondary,,\n\
             25000013,Escola Bona,provision,escola-bona,,,\n\
             1234,Escola Dolenta,provision,escola-dolenta,,,\n",
            files.display()
        ),
    )
    .unwrap();
    let o = a2a(
        home.path(),
        &["run", list.to_str().unwrap(), "--clock", "virtual"],
    );
    // The bad row is rejected (exit 1); the three good ones end active.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("3 of 3 schools active"),
        "{}",
        text(&o)
    );
    let o = a2a(home.path(), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["by_status"]["active"], 3, "{v}");
}

#[test]
fn run_refuses_a_file_that_is_not_there() {
    let home = tempfile::tempdir().unwrap();
    let o = a2a(home.path(), &["run", "/nonexistent/list.csv"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // --start sets the virtual clock only; a bad time is named.
    let o = a2a(
        home.path(),
        &["run", "list.csv", "--start", "2026-12-07T19:00:00Z"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--clock virtual"), "{}", text(&o));
    let o = a2a(
        home.path(),
        &[
            "run", "list.csv", "--clock", "virtual", "--start", "tonight",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--start \"tonight\""), "{}", text(&o));
}

#[test]
fn run_takes_its_shards_and_templates_from_a2a_toml() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display().to_string();
    for (db, files) in [("tpl.db", "tpl-moodledata"), ("src.db", "src-moodledata")] {
        common::fixture_site(
            home.path(),
            &format!("sqlite://{w}/{db}"),
            &format!("{w}/{files}"),
        );
    }
    std::fs::create_dir(work.path().join("shard-a")).unwrap();
    let toml = common::site_toml(
        &format!("sqlite://{w}/shard-a"),
        &format!("sqlite://{w}/tpl.db"),
        &w,
    );
    std::fs::write(home.path().join("a2a.toml"), &toml).unwrap();
    let source = format!("sqlite://{w}/src.db");
    let list = common::pair_list(
        work.path(),
        ("08012345", "ins-exemple", &source),
        ("17000011", "escola-nova"),
    );
    let o = a2a(
        home.path(),
        &["run", list.to_str().unwrap(), "--clock", "virtual"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("2 of 2 schools active"),
        "{}",
        text(&o)
    );
    // Both sites went to the configured shard.
    let on_shard: Vec<String> = std::fs::read_dir(work.path().join("shard-a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for code in ["08012345", "17000011"] {
        assert!(
            on_shard.iter().any(|f| f.contains(code)),
            "{code} not on the shard: {on_shard:?}"
        );
    }

    // A [site] with a misspelt key is refused, naming the file; so is --db beside [site].
    let no_shard = toml.replace(
        "[[site.shards]]\nname = \"a\"",
        "[[site.nope]]\nname = \"a\"",
    );
    std::fs::write(home.path().join("a2a.toml"), no_shard).unwrap();
    let o = a2a(
        home.path(),
        &["run", list.to_str().unwrap(), "--clock", "virtual"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("a2a.toml"), "{}", text(&o));
    std::fs::write(home.path().join("a2a.toml"), &toml).unwrap();
    let both = a2a(
        home.path(),
        &[
            "run",
            list.to_str().unwrap(),
            "--db",
            "postgres://x@127.0.0.1/postgres",
        ],
    );
    assert_eq!(both.status.code(), Some(2), "{}", text(&both));
    assert!(
        text(&both).contains("--db and the [site]"),
        "{}",
        text(&both)
    );
}

//! The design's rules, checked against the real dependency graph (`cargo metadata`), so a
//! change that breaks one fails here instead of in review:
//!
//! * the domain and the pure crates (`a2a-core`, `a2a-intake`, `a2a-asl`, `a2a-schedule`)
//!   never reach, even indirectly, an AWS SDK crate, a SQL driver or an adapter crate;
//! * `a2a-steps` and `a2a-files` depend on none of those directly (the steps reach
//!   databases only through `a2a-dbmove`, and AWS only through the ports);
//! * the stack rehearsal (`a2a-stack`) knows no step, no data plane and no AWS SDK: it
//!   serves the local engine that its caller builds (the CLI passes the step callback);
//! * a Lambda's `main` is thin: at most 40 lines;
//! * the graph drawn in `ARCHITECTURE.md` is the graph cargo resolves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace's resolved graph: package name → the names of its normal (and build)
/// dependencies, for every package in the tree; and the names of the workspace's members.
struct Graph {
    deps: BTreeMap<String, BTreeSet<String>>,
    members: BTreeSet<String>,
}

/// `cargo metadata` of the workspace, with `extra` arguments.
fn metadata(extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .args(extra)
        .arg("--manifest-path")
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn graph() -> Graph {
    let meta = metadata(&[]);
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let members = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| name_of[id.as_str().unwrap()].to_owned())
        .collect();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let from = name_of[node["id"].as_str().unwrap()].to_owned();
        let entry = deps.entry(from).or_default();
        for d in node["deps"].as_array().unwrap() {
            // Dev-dependencies are the tests' business; what ships is normal and build.
            let ships = d["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if ships {
                entry.insert(name_of[d["pkg"].as_str().unwrap()].to_owned());
            }
        }
    }
    Graph { deps, members }
}

impl Graph {
    /// Every package `name` reaches through shipped dependencies, itself excluded.
    fn reaches(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_owned()];
        while let Some(n) = todo.pop() {
            for d in self.deps.get(&n).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    }

    fn direct(&self, name: &str) -> &BTreeSet<String> {
        self.deps
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the workspace's graph"))
    }
}

/// What the domain and the pure crates must never reach: the AWS SDK, a SQL driver, an
/// adapter crate.
fn forbidden(package: &str) -> bool {
    package.starts_with("aws-sdk-")
        || package.starts_with("aws-config")
        || package.starts_with("aws-smithy-")
        || matches!(
            package,
            "tokio-postgres"
                | "postgres"
                | "mysql_async"
                | "mysql_common"
                | "rusqlite"
                | "libsqlite3-sys"
                | "sqlx"
                | "a2a-local"
                | "a2a-aws"
        )
}

#[test]
fn the_check_itself_sees_the_sdk_and_the_drivers_where_they_are() {
    // Without these, an empty graph would pass every rule below.
    let g = graph();
    assert!(g.reaches("a2a-aws").iter().any(|p| forbidden(p)));
    assert!(g.reaches("a2a-dbmove").contains("tokio-postgres"));
    assert!(g.reaches("a2a-local").contains("rusqlite"));
    assert!(g.reaches("a2a-steps").contains("a2a-core"));
}

#[test]
fn the_domain_and_the_pure_crates_reach_no_sdk_no_driver_and_no_adapter() {
    let g = graph();
    let mut broken = Vec::new();
    for krate in ["a2a-core", "a2a-intake", "a2a-asl", "a2a-schedule"] {
        let bad: Vec<String> = g
            .reaches(krate)
            .into_iter()
            .filter(|p| forbidden(p))
            .collect();
        if !bad.is_empty() {
            broken.push(format!("{krate} reaches {}", bad.join(", ")));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn steps_and_files_use_no_sdk_no_driver_and_no_adapter_directly() {
    let g = graph();
    let mut broken = Vec::new();
    for krate in ["a2a-steps", "a2a-files"] {
        let bad: Vec<&String> = g.direct(krate).iter().filter(|p| forbidden(p)).collect();
        if !bad.is_empty() {
            broken.push(format!("{krate} depends on {bad:?}"));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_stack_rehearsal_depends_on_no_step_and_no_sdk() {
    let g = graph();
    let reached = g.reaches("a2a-stack");
    assert!(reached.contains("a2a-local"), "it serves the local engine");
    let bad: Vec<&String> = reached
        .iter()
        .filter(|p| {
            matches!(
                p.as_str(),
                "a2a-steps" | "a2a-aws" | "a2a-dbmove" | "a2a-files"
            ) || p.starts_with("aws-sdk-")
                || p.starts_with("aws-config")
        })
        .collect();
    assert!(bad.is_empty(), "a2a-stack reaches {bad:?}");
}

/// The Lambdas' `main`s: each function's `src/main.rs` and each binary in `src/bin/`.
fn lambda_mains() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(root().join("functions")).unwrap() {
        let src = f.unwrap().path().join("src");
        let main = src.join("main.rs");
        if main.is_file() {
            out.push(main);
        }
        if let Ok(bins) = std::fs::read_dir(src.join("bin")) {
            out.extend(bins.map(|b| b.unwrap().path()));
        }
    }
    out.sort();
    out
}

#[test]
fn every_lambda_main_is_at_most_40_lines() {
    let mains = lambda_mains();
    assert!(
        mains.len() >= 4,
        "found only {} Lambda mains under functions/",
        mains.len()
    );
    let long: Vec<String> = mains
        .iter()
        .filter_map(|p| {
            let n = std::fs::read_to_string(p).unwrap().lines().count();
            (n > 40).then(|| format!("{} has {n} lines", relative(p)))
        })
        .collect();
    assert!(
        long.is_empty(),
        "a Lambda main is thin (the work goes in the library): {}",
        long.join("; ")
    );
}

fn relative(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// The graph `ARCHITECTURE.md` draws: the `text` block under the heading
/// "How the crates depend on each other", one line per member, `name → dep, dep` (or
/// `name → (none)`).
fn drawn() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let section = doc
        .split_once("## How the crates depend on each other")
        .expect("ARCHITECTURE.md has the section \"How the crates depend on each other\"")
        .1;
    let block = section
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the section holds a ```text block")
        .0;
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, deps) = l
                .split_once('→')
                .unwrap_or_else(|| panic!("ARCHITECTURE.md: {l:?} is not `name → deps`"));
            let deps = deps.trim();
            let deps = if deps == "(none)" {
                BTreeSet::new()
            } else {
                deps.split(',').map(|d| d.trim().to_owned()).collect()
            };
            (name.trim().to_owned(), deps)
        })
        .collect()
}

#[test]
fn the_graph_in_architecture_md_is_the_graph_cargo_resolves() {
    let g = graph();
    let real: BTreeMap<String, BTreeSet<String>> = g
        .members
        .iter()
        .filter(|m| m.starts_with("a2a"))
        .map(|m| {
            let inner = g
                .direct(m)
                .iter()
                .filter(|d| g.members.contains(*d))
                .cloned()
                .collect();
            (m.clone(), inner)
        })
        .collect();
    let drawn = drawn();
    let mut wrong = Vec::new();
    for (name, deps) in &real {
        match drawn.get(name) {
            None => wrong.push(format!("{name} is missing (it depends on {deps:?})")),
            Some(d) if d != deps => {
                wrong.push(format!("{name}: drawn {d:?}, but cargo resolves {deps:?}"))
            }
            Some(_) => {}
        }
    }
    for name in drawn.keys() {
        if !real.contains_key(name) {
            wrong.push(format!("{name} is drawn but is no member of the workspace"));
        }
    }
    // On a mismatch, print the block as it should read, ready to paste.
    let block: String = real
        .iter()
        .map(|(name, deps)| {
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            let deps = if deps.is_empty() {
                "(none)".to_owned()
            } else {
                deps.join(", ")
            };
            format!("{name} → {deps}\n")
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "ARCHITECTURE.md's graph is out of date:\n{}\n\nas cargo resolves it:\n```text\n{block}```",
        wrong.join("\n")
    );
}

/// No test enables a feature of a dependency that no shipped declaration enables: such a
/// feature gives `cargo test`'s build another variant of that crate and of everything
/// above it, which the functions' own build (`a2a stack up`, as SAM builds them) cannot
/// reuse, and CI pays for every dependency twice (tokio's `test-util` once cost 10 minutes).
#[test]
fn dev_dependencies_enable_no_feature_the_shipped_build_lacks() {
    let meta = metadata(&["--no-deps"]);
    let packages = meta["packages"].as_array().unwrap();
    let deps = || {
        packages.iter().flat_map(|p| {
            let from = p["name"].as_str().unwrap();
            p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |d| (from, d))
        })
    };
    let mut shipped: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (_, d) in deps().filter(|(_, d)| d["kind"] != "dev") {
        let features = d["features"].as_array().unwrap().iter();
        shipped
            .entry(d["name"].as_str().unwrap())
            .or_default()
            .extend(features.map(|f| f.as_str().unwrap()));
    }
    let mut extra = Vec::new();
    for (from, d) in deps().filter(|(_, d)| d["kind"] == "dev") {
        let name = d["name"].as_str().unwrap();
        // The workspace's own crates are built with every feature by the CLI's
        // declarations; a test-only crate is in no shipped build.
        let Some(known) = shipped.get(name).filter(|_| d["source"].is_string()) else {
            continue;
        };
        for f in d["features"].as_array().unwrap() {
            let f = f.as_str().unwrap();
            if !known.contains(f) {
                extra.push(format!("{from}: {name}/{f}"));
            }
        }
    }
    assert!(extra.is_empty(), "test-only features: {extra:?}");
}

//! The benchmark driver of `bench/dbmove.sh`: the same library calls as `a2a db copy`,
//! `a2a fixture site` and `a2a db clone`, in a release build of `a2a-dbmove` alone (the
//! CLI's release build also compiles the AWS SDK, about 20 minutes cold).
//!
//! ```text
//! dbmove_bench create ADMIN_URL NAME          prints the new database's URL
//! dbmove_bench drop ADMIN_URL NAME
//! dbmove_bench fixture URL SCALE [SHAPE]    SHAPE: small (default) or moodle
//! dbmove_bench copy FROM TO JOBS STAGE_DIR    `a2a db copy`'s call; prints "seconds peak_rss_mb"
//! dbmove_bench workflow FROM TO STAGE_DIR     the migrate workflow's database steps'
//!                                             calls (the import following the export);
//!                                             prints "seconds peak_rss_mb"
//! dbmove_bench verify FROM TO                 exit 1 if they differ
//! dbmove_bench verify-rows FROM TO            the same, every row read (`a2a db verify --rows`)
//! dbmove_bench clones ADMIN_URL TEMPLATE N    prints "seconds"; drops the clones again
//! ```

use std::time::Instant;

use a2a_core::{Locator, SchoolCode};
use a2a_dbmove::fixture::{FixtureOptions, Shape, generate};
use a2a_dbmove::plan::{PART_TIME, PARTS, balance, weights};
use a2a_dbmove::server;
use a2a_dbmove::{
    Budget, CopyLimits, Db, DbError, Depth, ImportFrom, NoProgress, Progress, begin_export,
    begin_import_following, copy, export_part, finish_import, import_part_from, seal_export, site,
    verify_with,
};

/// Prints when each phase of a copy ends (seconds since the start), for the profile;
/// with `DBMOVE_TRACE` set, also when each table's work starts.
#[derive(Clone, Copy)]
struct Phases(Instant, bool);

impl Progress for Phases {
    fn table(&self, what: &str, table: &str) {
        if self.1 {
            eprintln!(
                "table {what} {table} {:.3} s",
                self.0.elapsed().as_secs_f64()
            );
        }
    }

    fn phase(&self, what: &str) {
        eprintln!("phase {what} {:.3} s", self.0.elapsed().as_secs_f64());
    }
}

/// The database half of the migrate workflow, as its steps call the library: plan the
/// export (its parts balanced by the source sizes that `begin_export` staged); then at
/// once, as the state machine's Parallel runs them, the export's parts and the import
/// that follows them: begun from the export's tables, its parts the export's parts
/// (the Maps' `MaxConcurrency` is [`PARTS`]), each part a loop of runs within
/// [`PART_TIME`] on a connection of its own (one loading connection each, as
/// `import_database`, and an import part's own one that creates its small tables);
/// then seal, and finish.
async fn workflow(
    from: &Locator,
    to: &Locator,
    store: &a2a_local::FsBlob,
    phases: &Phases,
) -> Result<u64, DbError> {
    let prefix = "mdl_";
    let src = Db::connect(from, false).await?;
    let (index, staged) = begin_export(&src, store, prefix).await?;
    let parts = balance(&weights(&index.tables, &staged.sizes), PARTS);
    drop(src);
    phases.phase("plan-export");
    let (f, st, ph) = (from.clone(), store.clone(), *phases);
    let exporting = in_parts(parts.clone(), move |tables| {
        let (from, store) = (f.clone(), st.clone());
        async move {
            let src = Db::connect(&from, false).await?;
            let budget = Budget::new(None, Some(PART_TIME));
            let limits = CopyLimits::default();
            let only = Some(&tables[..]);
            let r = export_part(&src, &store, prefix, only, limits, &budget, &ph);
            Ok(r.await?.complete)
        }
    });
    let exporting = async {
        exporting.await?;
        phases.phase("export-parts");
        Ok::<_, DbError>(())
    };
    let importing = async {
        let dst = Db::connect(to, true).await?;
        begin_import_following(&dst, store, false).await?;
        phases.phase("plan-import");
        let (t, st, ph) = (to.clone(), store.clone(), *phases);
        in_parts(parts, move |tables| {
            let (to, store) = (t.clone(), st.clone());
            async move {
                let dst = Db::connect(&to, false).await?;
                let budget = Budget::new(None, Some(PART_TIME));
                let only = Some(&tables[..]);
                let r =
                    import_part_from(ImportFrom::Following, &dst, &store, only, 1, &budget, &ph);
                Ok(r.await?.complete)
            }
        })
        .await?;
        phases.phase("import-parts");
        Ok::<_, DbError>(dst)
    };
    let (exported, dst) = tokio::join!(exporting, importing);
    exported?;
    let dst = dst?;
    seal_export(store).await?;
    phases.phase("seal-export");
    let index = finish_import(&dst, store).await?;
    phases.phase("finish-import");
    Ok(index.rows)
}

/// Runs `run` for every part at once, each a task of its own (deployed, each is a
/// process of its own), and again while it answers `false` (incomplete), as the Map's
/// Choice does; the first error.
async fn in_parts<F, Fut>(parts: Vec<Vec<String>>, run: F) -> Result<(), DbError>
where
    F: Fn(Vec<String>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<bool, DbError>> + Send + 'static,
{
    let tasks = parts.into_iter().map(|tables| {
        let run = run.clone();
        tokio::spawn(async move {
            while !run(tables.clone()).await? {}
            Ok::<_, DbError>(())
        })
    });
    for r in futures::future::join_all(tasks).await {
        r.map_err(|e| DbError::Backend(e.to_string()))??;
    }
    Ok(())
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("dbmove_bench: {e}");
    std::process::exit(2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // On a worker thread, as `a2a` runs its command (cli/main.rs).
    if let Err(e) = tokio::spawn(run()).await {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .unwrap_or_else(|| fail("missing argument"))
    };
    match arg(0).as_str() {
        "create" => {
            let url = server::create(&Locator::new(arg(1)), &arg(2))
                .await
                .unwrap_or_else(|e| fail(e));
            println!("{}", url.expose());
        }
        "drop" => server::drop(&Locator::new(arg(1)), &arg(2))
            .await
            .unwrap_or_else(|e| fail(e)),
        "fixture" => {
            let db = Db::connect(&Locator::new(arg(1)), true)
                .await
                .unwrap_or_else(|e| fail(e));
            let shape = match args.get(3).map(String::as_str) {
                None | Some("small") => Shape::Small,
                Some("moodle") => Shape::Moodle,
                Some(other) => fail(format!("shape {other:?}: small or moodle")),
            };
            let options = FixtureOptions {
                scale: arg(2).parse().unwrap_or_else(|e| fail(e)),
                shape,
                ..FixtureOptions::default()
            };
            let r = generate(&db, &options).await.unwrap_or_else(|e| fail(e));
            eprintln!("generated {} rows", r.rows);
        }
        "copy" => {
            let (from, to) = (Locator::new(arg(1)), Locator::new(arg(2)));
            let jobs: usize = arg(3).parse().unwrap_or_else(|e| fail(e));
            let store = a2a_local::FsBlob::new(arg(4)).unwrap_or_else(|e| fail(e));
            let start = Instant::now();
            let src = Db::connect(&from, false).await.unwrap_or_else(|e| fail(e));
            let dst = Db::connect(&to, true).await.unwrap_or_else(|e| fail(e));
            let limits = CopyLimits::default();
            let phases = Phases(start, std::env::var_os("DBMOVE_TRACE").is_some());
            let (ex, _) = copy(&src, &dst, &store, "mdl_", limits, jobs, false, &phases)
                .await
                .unwrap_or_else(|e| fail(e));
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "copied {} rows, {} chunks, {} bytes staged",
                ex.rows, ex.chunks, ex.bytes
            );
            println!("{secs:.3} {:.0}", peak_rss_mb());
        }
        "workflow" => {
            let (from, to) = (Locator::new(arg(1)), Locator::new(arg(2)));
            let store = a2a_local::FsBlob::new(arg(3)).unwrap_or_else(|e| fail(e));
            let start = Instant::now();
            let phases = Phases(start, std::env::var_os("DBMOVE_TRACE").is_some());
            let rows = workflow(&from, &to, &store, &phases)
                .await
                .unwrap_or_else(|e| fail(e));
            let secs = start.elapsed().as_secs_f64();
            eprintln!("moved {rows} rows through the workflow's steps");
            println!("{secs:.3} {:.0}", peak_rss_mb());
        }
        "verify" | "verify-rows" => {
            let a = Db::connect(&Locator::new(arg(1)), false)
                .await
                .unwrap_or_else(|e| fail(e));
            let b = Db::connect(&Locator::new(arg(2)), false)
                .await
                .unwrap_or_else(|e| fail(e));
            let depth = if arg(0) == "verify-rows" {
                Depth::Rows
            } else {
                Depth::Digest
            };
            let r = verify_with(&a, &b, "mdl_", None, depth, &NoProgress)
                .await
                .unwrap_or_else(|e| fail(e));
            for t in r.differing() {
                eprintln!("differs {}: {:?}", t.table, t.difference);
            }
            std::process::exit(if r.equal { 0 } else { 1 });
        }
        "clones" => {
            let admin = Locator::new(arg(1));
            let template = Locator::new(arg(2));
            let n: u32 = arg(3).parse().unwrap_or_else(|e| fail(e));
            let name = |i: u32| format!("a2a_bench_clone_{i}");
            let start = Instant::now();
            for i in 0..n {
                let to = server::with_database(&admin, &name(i));
                site::clone_database(&template, &to)
                    .await
                    .unwrap_or_else(|e| fail(e));
                let db = Db::connect(&to, false).await.unwrap_or_else(|e| fail(e));
                let code =
                    SchoolCode::parse(&format!("08{:06}", 100 + i)).unwrap_or_else(|e| fail(e));
                site::customise(&db, "mdl_", &code, "Escola de prova", &format!("esc{i}"))
                    .await
                    .unwrap_or_else(|e| fail(e));
            }
            let secs = start.elapsed().as_secs_f64();
            for i in 0..n {
                server::drop(&admin, &name(i))
                    .await
                    .unwrap_or_else(|e| fail(e));
            }
            println!("{secs:.3}");
        }
        other => fail(format!("unknown command {other:?}")),
    }
}

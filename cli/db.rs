//! `a2a db …`: the database data plane from the command line — copy a Moodle database
//! between PostgreSQL, MySQL/MariaDB and SQLite through staged chunks, export and import
//! as separate steps, verify, and generate a Moodle-like fixture.

use std::path::PathBuf;
use std::sync::Arc;

use a2a_core::{BlobStore, Locator};
use a2a_dbmove::fixture::FixtureOptions;
use a2a_dbmove::{CopyLimits, Db, DbError, ImportOptions, Progress, VerifyReport};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backends::Backends;
use crate::{CliError, CliResult, Outcome};

/// The two databases a copy or a comparison is between, and their tables' prefix.
#[derive(Debug, Args)]
pub struct Pair {
    /// The source database.
    #[arg(long, value_name = "URL")]
    from: String,
    /// The target database.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Moodle's table prefix.
    #[arg(long, default_value = a2a_dbmove::DEFAULT_PREFIX)]
    prefix: String,
}

/// What to do with a site's database.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy every table of the prefix from one database to another, through staged chunks.
    ///
    /// URLs: postgres://…, mysql://…, sqlite://PATH. A target that already holds tables of
    /// the prefix is refused (exit 2, nothing changed) unless --replace. An unmappable
    /// column type stops it before anything is written (exit 2). An unreachable database
    /// is exit 3.
    Copy {
        #[command(flatten)]
        pair: Pair,
        /// Where the chunks are staged: a folder or s3://BUCKET/PREFIX. Default: a
        /// temporary folder, removed after a successful copy.
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        stage: Option<String>,
        /// Drop the target's tables of the prefix first.
        #[arg(long)]
        replace: bool,
        /// Verify the copy afterwards (exit 1 if it differs).
        #[arg(long)]
        verify: bool,
        /// Tables moved at once, each on its own connection. The export shares one
        /// snapshot across connections on PostgreSQL only; elsewhere it uses one.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Rows in one staged chunk at most.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
        chunk_rows: u64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Export every table of the prefix to staged chunks (one consistent snapshot).
    Export {
        /// The source database.
        #[arg(long, value_name = "URL")]
        from: String,
        /// Where to stage: a folder or s3://BUCKET/PREFIX.
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        stage: String,
        /// Tables read at once (PostgreSQL: one shared snapshot; elsewhere one connection).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Stop after writing this many chunks (a Lambda's time budget); rerun with the
        /// same stage to go on after the last staged key. One connection, no snapshot
        /// across runs: freeze the site first.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max_chunks: Option<u64>,
        /// Moodle's table prefix.
        #[arg(long, default_value = a2a_dbmove::DEFAULT_PREFIX)]
        prefix: String,
        /// Rows in one staged chunk at most.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
        chunk_rows: u64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Import a staged export; a rerun resumes where an interrupted import stopped.
    Import {
        /// The stage: a folder or s3://BUCKET/PREFIX.
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        stage: String,
        /// The target database.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Drop the target's tables of the prefix first.
        #[arg(long)]
        replace: bool,
        /// Stop after committing this many chunks (a time budget); rerun to continue.
        #[arg(long, value_name = "N")]
        max_chunks: Option<u64>,
        /// Tables loaded at once, each on its own connection.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare two databases table by table: row counts and content checksums in key
    /// order, read from both sides. Exit 0 when equal; 1 listing the tables that differ,
    /// each with its first differing key.
    Verify {
        #[command(flatten)]
        pair: Pair,
        /// Read every row of both sides, even where the two servers' own sums of a table
        /// (same engine, same column types) already agree.
        #[arg(long)]
        rows: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Clone a template database into a new one on the same server (PostgreSQL:
    /// CREATE DATABASE … TEMPLATE; MySQL: per-table copy; SQLite: VACUUM INTO). An
    /// existing target is refused (exit 2).
    Clone {
        /// The template database.
        #[arg(long, value_name = "URL")]
        template: String,
        /// The new database.
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Replace a text (the old wwwroot) in every text column, with the skip list of
    /// Moodle's admin/tool/replace (config, sessions, files, logs, hashes, …).
    Replace {
        /// The site's database.
        #[arg(long, value_name = "URL")]
        db: String,
        /// Moodle's table prefix.
        #[arg(long, default_value = a2a_dbmove::DEFAULT_PREFIX)]
        prefix: String,
        /// The text to look for.
        #[arg(long, value_name = "OLD")]
        search: String,
        /// What to put instead.
        #[arg(long, value_name = "NEW")]
        replace: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Customise a cloned site for its school: site course full and short names, the
    /// admin user's institution and <letter code>@xtec.cat e-mail.
    Customise {
        /// The site's database.
        #[arg(long, value_name = "URL")]
        db: String,
        /// Moodle's table prefix.
        #[arg(long, default_value = a2a_dbmove::DEFAULT_PREFIX)]
        prefix: String,
        /// The school's code (8 digits).
        #[arg(long, value_name = "CODE")]
        school: String,
        /// The school's name.
        #[arg(long)]
        name: String,
        /// The site's short name (its `dns`).
        #[arg(long)]
        dns: String,
    },
}

/// What a report adds when a budgeted run stopped before the end.
fn stopped_early(complete: bool) -> &'static str {
    if complete {
        ""
    } else {
        "; stopped early: rerun to continue"
    }
}

/// Runs one `db` command.
pub async fn run(ports: &Backends, command: DbCommand) -> CliResult {
    match command {
        DbCommand::Copy {
            pair: Pair { from, to, prefix },
            stage,
            replace,
            verify,
            jobs,
            chunk_rows,
            json,
        } => {
            let (from, to) = (Locator::new(from), Locator::new(to));
            let src = connect(&from, false).await?;
            // Every column must map before anything is written anywhere.
            src.introspect(&prefix).await.map_err(db_error)?;
            let dst = connect(&to, true).await?;
            let all = dst.list_tables("").await.map_err(db_error)?;
            if !replace && all.iter().any(|t| t == a2a_dbmove::LEDGER_TABLE) {
                return Err(CliError::input(
                    format!("{to} holds an interrupted import; nothing was changed"),
                    "finish it with `a2a db import --stage DIR --to URL` (the stage it came from), or start over with --replace",
                ));
            }
            if !replace {
                let existing = dst.list_tables(&prefix).await.map_err(db_error)?;
                if let Some(first) = existing.first() {
                    return Err(db_error(DbError::NotEmpty(format!(
                        "{to} already holds {} table(s) with prefix {prefix:?} (e.g. {first}); nothing was changed",
                        existing.len()
                    ))));
                }
            }
            let (store, temp) = match &stage {
                Some(s) => (open_stage(ports, s).await?, None),
                None => {
                    let dir = temp_stage();
                    (
                        open_stage(ports, &dir.display().to_string()).await?,
                        Some(dir),
                    )
                }
            };
            let bar = Bar::new();
            let limits = limits(chunk_rows);
            let jobs = usize::from(jobs);
            // Each chunk is staged and loaded while the next is read.
            let (ex, im) = a2a_dbmove::copy(
                &src,
                &dst,
                store.as_ref(),
                &prefix,
                limits,
                jobs,
                replace,
                &bar,
            )
            .await
            .map_err(db_error)?;
            let checked = if verify {
                Some(
                    a2a_dbmove::verify(&src, &dst, &prefix, &bar)
                        .await
                        .map_err(db_error)?,
                )
            } else {
                None
            };
            bar.done();
            if let Some(dir) = temp {
                let _ = std::fs::remove_dir_all(dir);
            }
            let equal = checked.as_ref().is_none_or(|v| v.equal);
            crate::print_report(
                json,
                &serde_json::json!({
                    "from": from.to_string(),
                    "to": to.to_string(),
                    "export": ex,
                    "import": im,
                    "verify": checked,
                }),
                || {
                    println!(
                        "copied {} tables, {} rows from {from} to {to} ({} chunks, {} bytes staged)",
                        ex.tables, im.rows, ex.chunks, ex.bytes
                    );
                    if let Some(v) = &checked {
                        print_verify(v);
                    }
                },
            )?;
            Ok(if equal { Outcome::Ok } else { Outcome::Failed })
        }
        DbCommand::Export {
            from,
            stage,
            jobs,
            max_chunks,
            prefix,
            chunk_rows,
            json,
        } => {
            let from = Locator::new(from);
            let src = connect(&from, false).await?;
            let store = open_stage(ports, &stage).await?;
            let bar = Bar::new();
            let limits = limits(chunk_rows);
            let jobs = usize::from(jobs);
            let ex = match max_chunks {
                Some(max) => {
                    a2a_dbmove::export_budgeted(&src, store.as_ref(), &prefix, limits, max, &bar)
                        .await
                }
                None => a2a_dbmove::export(&src, store.as_ref(), &prefix, limits, jobs, &bar).await,
            }
            .map_err(db_error)?;
            bar.done();
            crate::print_report(json, &ex, || {
                println!(
                    "exported {} tables, {} rows from {from} to {stage} ({} chunks, {} bytes){}",
                    ex.tables,
                    ex.rows,
                    ex.chunks,
                    ex.bytes,
                    stopped_early(ex.complete)
                );
            })?;
            Ok(Outcome::Ok)
        }
        DbCommand::Import {
            stage,
            to,
            replace,
            max_chunks,
            jobs,
            json,
        } => {
            let to = Locator::new(to);
            let store = open_stage(ports, &stage).await?;
            // Reading the stage first: a missing export is bad input, before any connection.
            a2a_dbmove::mover::read_index(store.as_ref())
                .await
                .map_err(db_error)?;
            let dst = connect(&to, true).await?;
            let bar = Bar::new();
            let options = ImportOptions {
                replace,
                max_chunks,
                jobs: usize::from(jobs),
            };
            let im = a2a_dbmove::import(&dst, store.as_ref(), &options, &bar)
                .await
                .map_err(db_error)?;
            bar.done();
            crate::print_report(json, &im, || {
                println!(
                    "imported {} rows in {} chunks into {to} ({} chunks already there){}",
                    im.rows,
                    im.chunks,
                    im.chunks_skipped,
                    stopped_early(im.complete)
                );
            })?;
            Ok(Outcome::Ok)
        }
        DbCommand::Verify {
            pair: Pair { from, to, prefix },
            rows,
            json,
        } => {
            let (from, to) = (Locator::new(from), Locator::new(to));
            let a = connect(&from, false).await?;
            let b = connect(&to, false).await?;
            let bar = Bar::new();
            let depth = if rows {
                a2a_dbmove::Depth::Rows
            } else {
                a2a_dbmove::Depth::Digest
            };
            let report = a2a_dbmove::verify_with(&a, &b, &prefix, None, depth, &bar)
                .await
                .map_err(db_error)?;
            bar.done();
            crate::print_report(json, &report, || {
                print_verify(&report);
            })?;
            Ok(if report.equal {
                Outcome::Ok
            } else {
                Outcome::Failed
            })
        }
        DbCommand::Clone { template, to } => {
            let (template, to) = (Locator::new(template), Locator::new(to));
            a2a_dbmove::site::clone_database(&template, &to)
                .await
                .map_err(db_error)?;
            println!("cloned {template} into {to}");
            Ok(Outcome::Ok)
        }
        DbCommand::Replace {
            db,
            prefix,
            search,
            replace,
            json,
        } => {
            let loc = Locator::new(db);
            let db = connect(&loc, false).await?;
            let report = a2a_dbmove::site::replace_text(&db, &prefix, &search, &replace)
                .await
                .map_err(db_error)?;
            crate::print_report(json, &report, || {
                println!(
                    "replaced in {} rows over {} columns of {loc}",
                    report.rows, report.columns
                );
                for t in &report.too_long {
                    println!("left alone, the new text would not fit: {t}");
                }
            })?;
            Ok(if report.too_long.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Failed
            })
        }
        DbCommand::Customise {
            db,
            prefix,
            school,
            name,
            dns,
        } => {
            let code = a2a_core::SchoolCode::parse(&school).map_err(|e| {
                CliError::input(format!("--school: {e}"), "give the 8-digit school code")
            })?;
            let loc = Locator::new(db);
            let db = connect(&loc, false).await?;
            let rows = a2a_dbmove::site::customise(&db, &prefix, &code, &name, &dns)
                .await
                .map_err(db_error)?;
            if rows < 2 {
                return Err(CliError::Failed(format!(
                    "{loc}: changed {rows} of 2 rows: the site course (id 1) or the admin user is missing"
                )));
            }
            println!(
                "customised {loc} for {code}: {name} ({dns}), admin e-mail {}@xtec.cat",
                a2a_dbmove::site::letter_code(&code)
            );
            Ok(Outcome::Ok)
        }
    }
}

/// Generated test data.
#[derive(Debug, Subcommand)]
pub enum FixtureCommand {
    /// Generate a Moodle-like site: its database (tables modelled on Moodle's
    /// install.xml; Catalan names, HTML with absolute URLs, NULLs and empty strings,
    /// blobs, big integers, decimals) and, with --files, a moodledata whose filedir
    /// matches the files table.
    Site {
        /// The database to fill; it must hold no table of the prefix.
        #[arg(long, value_name = "URL")]
        db: String,
        /// Also write the matching moodledata folder here.
        #[arg(long, value_name = "DIR")]
        files: Option<PathBuf>,
        /// Moodle's table prefix.
        #[arg(long, default_value = a2a_dbmove::DEFAULT_PREFIX)]
        prefix: String,
        /// Size factor: rows grow linearly with it (scale 1 is about 1 MB).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        scale: u64,
        /// Seed of the generated data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also non-Moodle tables: booleans, dates, timestamps, floats, a composite text
        /// key, a table without a key.
        #[arg(long)]
        extras: bool,
        /// `small`: the core tables, each growing with the scale. `moodle`: about 500
        /// tables as on a real site, most under 10 rows, a few big ones growing with the
        /// scale (scale 1000 is about 1 GB).
        #[arg(long, value_enum, default_value = "small")]
        shape: ShapeArg,
    },
}

/// The fixture's shape on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ShapeArg {
    /// The core tables alone.
    Small,
    /// About 500 tables with a real site's long tail.
    Moodle,
}

/// Runs one `fixture` command.
pub async fn run_fixture(command: FixtureCommand) -> CliResult {
    let FixtureCommand::Site {
        db,
        files,
        prefix,
        scale,
        seed,
        extras,
        shape,
    } = command;
    let loc = Locator::new(db);
    let db = connect(&loc, true).await?;
    let options = FixtureOptions {
        prefix,
        scale,
        seed,
        extras,
        shape: match shape {
            ShapeArg::Small => a2a_dbmove::fixture::Shape::Small,
            ShapeArg::Moodle => a2a_dbmove::fixture::Shape::Moodle,
        },
        ..FixtureOptions::default()
    };
    let report = a2a_dbmove::fixture::generate(&db, &options)
        .await
        .map_err(db_error)?;
    println!(
        "generated {} tables, {} rows in {loc}",
        report.tables, report.rows
    );
    if let Some(dir) = files {
        let o = options.clone();
        let d = dir.clone();
        let n = tokio::task::spawn_blocking(move || a2a_dbmove::fixture::write_files(&d, &o))
            .await
            .map_err(|e| CliError::Failed(e.to_string()))?
            .map_err(|e| {
                CliError::environment(
                    format!("cannot write {}: {e}", dir.display()),
                    "check the folder is writable and the disk has room",
                )
            })?;
        println!("wrote {n} files under {}", dir.join("filedir").display());
    }
    Ok(Outcome::Ok)
}

fn limits(chunk_rows: u64) -> CopyLimits {
    CopyLimits {
        chunk_rows: usize::try_from(chunk_rows).unwrap_or(usize::MAX),
        ..CopyLimits::default()
    }
}

fn print_verify(v: &VerifyReport) {
    let differ: Vec<_> = v.differing().collect();
    for t in &differ {
        println!(
            "differs {}: {} (rows {} vs {})",
            t.table,
            t.difference.as_deref().unwrap_or("content differs"),
            t.source_rows.map_or("-".into(), |n| n.to_string()),
            t.target_rows.map_or("-".into(), |n| n.to_string()),
        );
    }
    if differ.is_empty() {
        println!("verify: {} tables equal", v.tables.len());
    } else {
        println!(
            "verify: {} of {} tables differ",
            differ.len(),
            v.tables.len()
        );
    }
}

async fn connect(loc: &Locator, create: bool) -> Result<Db, CliError> {
    Db::connect(loc, create).await.map_err(db_error)
}

fn temp_stage() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("a2a-stage-{}-{nanos}", std::process::id()))
}

/// The stage named by `--stage`: a folder or s3://BUCKET/PREFIX.
async fn open_stage(ports: &Backends, stage: &str) -> Result<Arc<dyn BlobStore>, CliError> {
    Ok(ports.blob_arg("--stage", stage, "stage").await?.0)
}

fn db_error(e: DbError) -> CliError {
    match e {
        DbError::Input(_) | DbError::Unmappable { .. } => CliError::Input {
            message: e.to_string(),
            hint: None,
        },
        DbError::NotEmpty(_) => CliError::input(
            e.to_string(),
            "pass --replace to drop the target's tables of the prefix first",
        ),
        DbError::Unreachable(_) => CliError::environment(
            e.to_string(),
            "check the host, port, user and that the server runs",
        ),
        DbError::Stage(p) => CliError::from_port("stage", p),
        DbError::Backend(_) | DbError::Corrupt(_) => CliError::Failed(e.to_string()),
    }
}

/// One bar on stderr: the step and table as its message, rows as its count. Hidden when
/// stderr is not a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, crate::progress_target());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {msg:40} {human_pos} rows  {rate}")
        {
            bar.set_style(style.with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} rows/s", state.per_sec());
                },
            ));
        }
        Self(bar)
    }

    fn done(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn table(&self, what: &str, table: &str) {
        self.0.set_message(format!("{what} {table}"));
    }
    fn rows(&self, n: u64) {
        self.0.inc(n);
    }
}

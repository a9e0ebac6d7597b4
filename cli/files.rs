//! `a2a files …`: the moodledata data plane from the command line — sync a site's folder
//! to a folder or S3, verify the copy, copy a template to a new site, and switch Moodle's
//! maintenance page.

use std::path::{Path, PathBuf};

use a2a_core::SchoolCode;
use a2a_files::{FilesError, Progress};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::backends::Backends;
use crate::{CliError, CliResult, Outcome};

/// A site's moodledata folder, its copy, and its school.
#[derive(Debug, Args)]
pub struct SiteFiles {
    /// The site's moodledata folder.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The copy: a folder, or `s3://BUCKET/PREFIX`.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    to: String,
    /// The site's school code (8 digits).
    #[arg(long, value_name = "CODE")]
    school: String,
}

/// What to do with moodledata.
#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// Copy a moodledata folder to a folder or S3; a rerun copies only what is missing.
    ///
    /// `filedir` goes content-addressed to `instances/<code>/filedir/`, the rest to
    /// `instances/<code>/moodledata/`, caches and sessions are left out, and a manifest is
    /// written beside it. Exit 1 if a file could not be taken (damaged, a symlink out of
    /// the tree).
    Sync {
        #[command(flatten)]
        site: SiteFiles,
        /// Files in flight at once.
        #[arg(long, default_value_t = a2a_files::DEFAULT_JOBS as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: u16,
        /// List the target instead of trusting the manifest of the last sync: puts back
        /// what was deleted from the target behind it.
        #[arg(long)]
        list_target: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare a moodledata folder with its copy; exit 1 listing the keys that differ.
    ///
    /// By manifest and listing, and with --rehash by downloading and hashing every file.
    /// Keys missing, extra or different are listed.
    Verify {
        #[command(flatten)]
        site: SiteFiles,
        /// Also download every file of an S3 copy and check its hash (a folder copy is
        /// always re-hashed: reading it is cheap).
        #[arg(long)]
        rehash: bool,
        /// Files re-hashed at once.
        #[arg(long, default_value_t = a2a_files::DEFAULT_JOBS as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: u16,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Copy a template's files to a new site, server-side; a rerun resumes.
    ///
    /// Inside one store (S3 CopyObject: no bytes through this process).
    CopyTemplate {
        /// The store: a folder, or `s3://BUCKET/PREFIX`.
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        to: String,
        /// The template: a synced site's school code, or a name under `templates/`.
        #[arg(long, value_name = "CODE|NAME")]
        template: String,
        /// The new site's school code (8 digits).
        #[arg(long, value_name = "CODE")]
        school: String,
        /// Files in flight at once.
        #[arg(long, default_value_t = a2a_files::DEFAULT_JOBS as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: u16,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Switch Moodle's maintenance page (`climaintenance.html`) on or off.
    ///
    /// Idempotent. The database half (`maintenance_enabled`) is the database data plane's.
    Maintenance {
        /// The site's moodledata folder.
        #[arg(long, value_name = "DIR")]
        moodledata: PathBuf,
        /// `on` or `off`.
        #[arg(value_name = "on|off")]
        switch: Switch,
        /// The text the page shows.
        #[arg(
            long,
            default_value = "Aquest lloc s'està migrant. Torneu-hi d'aquí a una estona."
        )]
        message: String,
    },
}

/// The maintenance page's two positions.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Switch {
    /// Show the page: the site is frozen.
    On,
    /// Remove it.
    Off,
}

/// Runs one `files` command.
pub async fn run(ports: &Backends, command: FilesCommand) -> CliResult {
    match command {
        FilesCommand::Sync {
            site: SiteFiles { from, to, school },
            jobs,
            list_target,
            json,
        } => {
            let code = school_code(&school)?;
            refuse_nested(&from, &to)?;
            let (store, label) = ports.blob_arg("--to", &to, "target").await?;
            let bars = Bars::new("copy");
            let options = a2a_files::SyncOptions {
                jobs: usize::from(jobs),
                list_target,
            };
            let report = a2a_files::sync(&from, store, &code, &options, &bars)
                .await
                .map_err(|e| files_error(e, &label))?;
            crate::print_report(json, &report, || {
                println!(
                    "school {}: {} files, {} bytes in {label}; copied {} files ({} bytes), {} already there, {} left out (caches, sessions, temp), {} deleted (gone from the source)",
                    report.school,
                    report.files,
                    report.bytes,
                    report.copied_files,
                    report.copied_bytes,
                    report.skipped_files,
                    report.excluded_files,
                    report.deleted_files
                );
                for p in &report.problems {
                    println!("problem {}: {}", p.path, p.what);
                }
                println!("manifest {}", report.manifest);
            })?;
            if report.problems.is_empty() {
                Ok(Outcome::Ok)
            } else {
                eprintln!(
                    "a2a: school {}: {} file(s) of {} could not be copied (listed above)",
                    report.school,
                    report.problems.len(),
                    from.display()
                );
                Ok(Outcome::Failed)
            }
        }
        FilesCommand::Verify {
            site: SiteFiles { from, to, school },
            rehash,
            jobs,
            json,
        } => {
            let code = school_code(&school)?;
            let (store, label) = ports.blob_arg("--to", &to, "target").await?;
            let bars = Bars::new("re-hash");
            let options = a2a_files::VerifyOptions {
                rehash: rehash || !to.starts_with("s3://"),
                jobs: usize::from(jobs),
            };
            let report = a2a_files::verify(&from, store, &code, &options, &bars)
                .await
                .map_err(|e| files_error(e, &label))?;
            crate::print_report(json, &report, || {
                for k in &report.missing {
                    println!("missing {k}");
                }
                for k in &report.extra {
                    println!("extra {k}");
                }
                for d in &report.different {
                    println!("different {}: {}", d.key, d.why);
                }
                for p in &report.problems {
                    println!("problem {}: {}", p.path, p.what);
                }
                if report.manifest_dropped {
                    println!(
                        "the copy's manifest was wrong and is deleted: the next sync lists the \
                         copy and puts back what differs"
                    );
                }
                println!(
                    "school {}: {} files compared{}: {}",
                    report.school,
                    report.compared,
                    if report.rehashed { ", re-hashed" } else { "" },
                    if report.equal {
                        "equal".to_owned()
                    } else {
                        format!(
                            "{} missing, {} extra, {} different, {} problems",
                            report.missing.len(),
                            report.extra.len(),
                            report.different.len(),
                            report.problems.len()
                        )
                    }
                );
            })?;
            Ok(if report.equal {
                Outcome::Ok
            } else {
                Outcome::Failed
            })
        }
        FilesCommand::CopyTemplate {
            to,
            template,
            school,
            jobs,
            json,
        } => {
            let code = school_code(&school)?;
            let from = a2a_files::template_root(&template).map_err(|e| {
                CliError::input(
                    format!("--template: {e}"),
                    "give the template site's school code or its name under templates/",
                )
            })?;
            let (store, label) = ports.blob_arg("--to", &to, "target").await?;
            let bars = Bars::new("copy");
            let report = a2a_files::copy_site(store, &from, &code, usize::from(jobs), &bars)
                .await
                .map_err(|e| files_error(e, &label))?;
            crate::print_report(json, &report, || {
                println!(
                    "school {}: {} files ({} bytes) from {} in {label}; copied {}, {} already there",
                    report.school,
                    report.files,
                    report.bytes,
                    report.from,
                    report.copied_files,
                    report.skipped_files
                );
            })?;
            Ok(Outcome::Ok)
        }
        FilesCommand::Maintenance {
            moodledata,
            switch,
            message,
        } => {
            let changed = match switch {
                Switch::On => a2a_files::maintenance::enable(&moodledata, &message),
                Switch::Off => a2a_files::maintenance::disable(&moodledata),
            }
            .map_err(|e| {
                CliError::input(
                    format!("moodledata folder {}: {e}", moodledata.display()),
                    "give --moodledata the site's moodledata folder",
                )
            })?;
            let now = match switch {
                Switch::On => "on",
                Switch::Off => "off",
            };
            println!(
                "maintenance page {now} in {}{}",
                moodledata.display(),
                if changed { "" } else { " (already so)" }
            );
            Ok(Outcome::Ok)
        }
    }
}

/// A folder target inside the source would be copied into itself on the next run.
fn refuse_nested(from: &Path, to: &str) -> Result<(), CliError> {
    if to.contains("://") {
        return Ok(());
    }
    let (Ok(from), Ok(target)) = (from.canonicalize(), absolute(Path::new(to))) else {
        // A missing source is reported, with its name, by the sync itself.
        return Ok(());
    };
    if target.starts_with(&from) {
        return Err(CliError::input(
            format!(
                "--to {to} is inside the moodledata folder {}",
                from.display()
            ),
            "put the copy outside the folder being copied",
        ));
    }
    Ok(())
}

/// `path` made absolute, resolving symbolic links in the part that exists.
fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    let mut existing = std::path::absolute(path)?;
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_owned();
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize()?;
    out.extend(rest.iter().rev());
    Ok(out)
}

fn school_code(s: &str) -> Result<SchoolCode, CliError> {
    SchoolCode::parse(s).map_err(|e| {
        CliError::input(
            format!("--school {s:?}: {e}"),
            "a school code is 8 digits, starting with the province (08, 17, 25 or 43)",
        )
    })
}

fn files_error(e: FilesError, label: &str) -> CliError {
    match e {
        FilesError::Source { .. } => CliError::input(
            e.to_string(),
            "give --from the site's moodledata folder (the one holding filedir/)",
        ),
        FilesError::Store {
            school,
            what,
            source,
        } => CliError::from_port(&format!("school {school}: {what} ({label})"), source),
    }
}

/// Two progress bars on stderr, files and bytes, each with its rate. Hidden when stderr
/// is not a terminal, so logs and pipes stay clean.
struct Bars {
    files: ProgressBar,
    bytes: ProgressBar,
    _multi: MultiProgress,
}

impl Bars {
    fn new(verb: &str) -> Self {
        let target = crate::progress_target();
        let multi = MultiProgress::with_draw_target(target);
        let files = multi.add(ProgressBar::new(0));
        let bytes = multi.add(ProgressBar::new(0));
        // The templates are constants: a failure here is a programming error caught by the
        // first test run, so fall back to the default style rather than fail the command.
        if let Ok(style) = ProgressStyle::with_template(&format!(
            "{verb} {{bar:30}} {{pos}}/{{len}} files  {{files_per_sec}}  eta {{eta}}"
        )) {
            files.set_style(style.with_key(
                "files_per_sec",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} files/s", state.per_sec());
                },
            ));
        }
        if let Ok(style) = ProgressStyle::with_template(
            "     {bar:30} {bytes}/{total_bytes}  {binary_bytes_per_sec}",
        ) {
            bytes.set_style(style);
        }
        Self {
            files,
            bytes,
            _multi: multi,
        }
    }
}

impl Progress for Bars {
    fn start(&self, files: u64, bytes: u64) {
        self.files.set_length(files);
        self.bytes.set_length(bytes);
    }

    fn advance(&self, files: u64, bytes: u64) {
        self.files.inc(files);
        self.bytes.inc(bytes);
    }

    fn finish(&self) {
        self.files.finish_and_clear();
        self.bytes.finish_and_clear();
    }
}

//! `a2a plan` (a dry run) and `a2a upload` (take a school list in): the same intake code
//! the S3-triggered Lambda runs.

use a2a_core::InstanceKind;
use a2a_intake::{Intake, Options, Plan, TakeError};
use chrono::Utc;
use clap::Args;
use std::path::PathBuf;

use crate::backends::Backends;
use crate::{CliError, CliResult, Config, Outcome};

/// What `plan` and `upload` share: the file and how to plan it.
#[derive(Debug, Clone, Args)]
pub struct IntakeArgs {
    /// The school list (CSV: the school directory or school map export, or A2A's plan file).
    pub file: PathBuf,

    /// The kind of rows that do not say: `migrate` or `provision`. Only a column named
    /// `kind`, or holding these values, says; an export's `tipus` (ESC, INS…) never does.
    #[arg(long, value_parser = crate::parse_kind, default_value = "provision")]
    pub kind: InstanceKind,

    /// Schools per wave.
    #[arg(long, default_value_t = a2a_intake::plan::DEFAULT_WAVE_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub wave_size: u32,

    /// The largest file taken, in MB (10^6 bytes).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_mb: u64,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl IntakeArgs {
    fn options(&self) -> Options {
        Options {
            kind: self.kind,
            wave_size: self.wave_size,
            max_bytes: self.max_mb * 1_000_000,
        }
    }

    /// The list's name in messages, reports and the ledger: its file name.
    fn name(&self) -> String {
        self.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.file.display().to_string())
    }
}

/// A refused file is bad input (exit 2).
fn refused(e: a2a_intake::Refusal) -> CliError {
    CliError::input(
        e.to_string(),
        "nothing was registered; fix the file and run again",
    )
}

fn outcome(rejected: u64) -> Outcome {
    if rejected == 0 {
        Outcome::Ok
    } else {
        Outcome::Failed
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), CliError> {
    let text = serde_json::to_string(v)
        .map_err(|e| CliError::Failed(format!("cannot write the report as JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// The warnings, before anything else: a file whose rows mostly fail on one field is
/// most likely read through the wrong column.
fn print_warnings(plan: &Plan) {
    for w in plan.warnings() {
        println!("warning: {}: {}", plan.file, w.message);
    }
}

fn print_head(plan: &Plan) {
    print_warnings(plan);
    println!(
        "{}: {} rows, {} accepted, {} rejected ({} list, {}, delimiter {:?})",
        plan.file,
        plan.rows,
        plan.schools.len(),
        plan.rejected(),
        match plan.shape {
            a2a_intake::Shape::Plan => "plan",
            a2a_intake::Shape::Directory => "directory",
        },
        plan.encoding,
        plan.delimiter
    );
}

fn print_errors(plan: &Plan, max: usize) {
    for e in plan.errors.iter().take(max) {
        println!(
            "  {}:{}: school {:?}: {}: {}",
            plan.file, e.line, e.school_code, e.field, e.message
        );
    }
    if plan.errors.len() > max {
        println!("  … and {} more errors", plan.errors.len() - max);
    }
}

/// `a2a plan`: reads, validates and plans; changes nothing, writes nothing.
pub async fn plan(args: &IntakeArgs) -> CliResult {
    let opts = args.options();
    let bytes = a2a_intake::read_file(&args.file, opts.max_bytes).map_err(refused)?;
    let plan =
        a2a_intake::plan_bytes(&args.file.display().to_string(), &bytes, &opts).map_err(refused)?;
    if args.json {
        print_json(&plan.to_json())?;
    } else {
        print_head(&plan);
        for w in plan.waves() {
            println!("wave {}: {}", w.wave, w.schools.join(" "));
        }
        for s in &plan.slugs {
            println!("short name made: {} {} ({})", s.school_code, s.dns, s.name);
        }
        if !plan.errors.is_empty() {
            println!("errors:");
            print_errors(&plan, usize::MAX);
        }
    }
    Ok(outcome(plan.rejected() as u64))
}

/// `a2a upload`: takes the list in, registers it, writes its reports.
pub async fn upload(config: &Config, ports: &Backends, args: &IntakeArgs) -> CliResult {
    let opts = args.options();
    let file = args.file.display().to_string();
    // Refused before any backend is opened: a bad file leaves the home untouched.
    let bytes = a2a_intake::read_file(&args.file, opts.max_bytes).map_err(refused)?;
    let plan = a2a_intake::plan_bytes(&file, &bytes, &opts).map_err(refused)?;
    let (store, ledger) = ports
        .state_and_ledger(config, true)
        .await?
        .ok_or_else(|| CliError::Failed("the state store did not open".into()))?;
    let (blobs, shown) = ports.blobs(config).await?;
    // Source passwords go where the state goes: Secrets Manager beside DynamoDB.
    let aws = matches!(config.state, crate::backends::StateSpec::DynamoDb { .. });
    let prefix = std::env::var("A2A_SECRET_PREFIX").unwrap_or_default();
    let (secrets, secrets_label) = ports.secrets(config, aws.then_some(&prefix)).await;
    // The list's source passwords go to the secret store first; what is taken in, and
    // kept under uploads/, is the list rewritten to name them.
    let taken = a2a_intake::take_list(
        &args.name(),
        plan,
        &bytes,
        &opts,
        a2a_intake::Ports {
            store: &*store,
            ledger: &*ledger,
            blobs: &*blobs,
            secrets: &*secrets,
        },
        Utc::now(),
    )
    .await
    .map_err(|e| match e {
        TakeError::Refused(r) => refused(r),
        TakeError::State(e) => CliError::from_port(&config.state.label(), e),
        TakeError::Secrets(e) => CliError::from_port(secrets_label, e),
        TakeError::Blobs { key, error } => {
            CliError::from_port(&format!("blobs ({}): writing {key}", config.blobs), error)
        }
    })?;
    let kept = a2a_intake::upload_key(&args.name());
    let body = taken
        .redacted
        .as_ref()
        .map_or_else(|| bytes.clone(), |r| r.bytes.clone());
    let blob_error =
        |error| CliError::from_port(&format!("blobs ({}): writing {kept}", config.blobs), error);
    let key = a2a_core::BlobKey::parse(&kept)
        .map_err(|e| blob_error(a2a_core::PortError::Invalid(e.to_string())))?;
    blobs.put(&key, body.into()).await.map_err(blob_error)?;
    if let Some(r) = &taken.redacted
        && !args.json
    {
        println!(
            "{}: {} source database password{} moved to the secret store, {} dropped from \
             rejected rows; the list is kept as {shown}{kept}, naming them",
            args.name(),
            r.moved,
            if r.moved == 1 { "" } else { "s" },
            r.dropped
        );
    }
    let taken = taken.intake;
    match taken {
        Intake::Already { plan, record } => {
            if args.json {
                print_json(&serde_json::json!({
                    "warnings": plan.warnings(),
                    "already_taken_in": true,
                    "file": plan.file,
                    "sha256": record.sha256,
                    "taken_at": record.taken_at,
                    "accepted": record.accepted,
                    "rejected": record.rejected,
                }))?;
            } else {
                print_warnings(&plan);
                println!(
                    "{}: already taken in on {} (sha256 {}…): {} accepted, {} rejected; \
                     nothing changed",
                    plan.file,
                    record
                        .taken_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    &record.sha256[..12],
                    record.accepted,
                    record.rejected
                );
            }
            Ok(outcome(record.rejected))
        }
        Intake::New {
            plan,
            registration: reg,
            summary,
            errors_key,
            summary_key,
        } => {
            if args.json {
                print_json(&summary)?;
            } else {
                print_head(&plan);
                println!(
                    "registered {} new, {} updated, {} unchanged; {} left alone (already \
                     under way); {} in the previous version of {} but not in this one (kept)",
                    reg.created.len(),
                    reg.updated.len(),
                    reg.unchanged.len(),
                    reg.under_way.len(),
                    reg.removed.len(),
                    args.name()
                );
                for (code, status) in &reg.under_way {
                    println!("  left alone: {code} is {status}");
                }
                for code in &reg.removed {
                    println!("  removed from the list, kept in the store: {code}");
                }
                if !plan.slugs.is_empty() {
                    println!("short names made: {} (see the summary)", plan.slugs.len());
                }
                if !plan.errors.is_empty() {
                    println!("errors:");
                    print_errors(&plan, 20);
                }
                println!("error report: {shown}{errors_key}");
                println!("summary:      {shown}{summary_key}");
            }
            Ok(outcome(plan.rejected() as u64))
        }
    }
}

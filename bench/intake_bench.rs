//! The intake benchmark's A2A side (run by `bench/intake.sh`): what `a2a upload` does with
//! the default backends — read, validate, plan, register into SQLite, write both reports
//! to a folder, record the upload (`take_in`, the CLI's and the Lambda's code) — timed,
//! with only the library and the embedded adapters built, so the release build needs no
//! AWS SDK.
//!
//! Usage: `intake_bench FILE HOME`; prints the seconds taken on stdout, counts on stderr.

use std::path::PathBuf;
use std::time::Instant;

use a2a_intake::{Intake, Options};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(file), Some(home)) = (args.next(), args.next()) else {
        return Err("usage: intake_bench FILE HOME".into());
    };
    let (file, home) = (PathBuf::from(file), PathBuf::from(home));
    let opts = Options::default();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let t0 = Instant::now();
    let bytes = a2a_intake::read_file(&file, opts.max_bytes)?;
    let store = a2a_local::SqliteStore::open(&home.join("state.db")).await?;
    let blobs = a2a_local::FsBlob::new(home.join("blobs"))?;
    let shown = file.display().to_string();
    let taken = a2a_intake::take_in(
        &name,
        &shown,
        &bytes,
        &opts,
        a2a_intake::Ports {
            store: &store,
            ledger: &store,
            blobs: &blobs,
            secrets: &a2a_local::FileSecrets::new(home.join("secrets")),
        },
        chrono::Utc::now(),
    )
    .await?;
    let total = t0.elapsed();
    let Intake::New {
        plan, registration, ..
    } = taken
    else {
        return Err(format!("{shown} was taken in before: use a fresh HOME").into());
    };
    eprintln!(
        "intake_bench: {} rows, {} accepted, {} rejected, {} registered, {} short names made; \
         {:.3} s",
        plan.rows,
        plan.schools.len(),
        plan.rejected(),
        registration.created.len(),
        plan.slugs.len(),
        total.as_secs_f64()
    );
    println!("{:.3}", total.as_secs_f64());
    Ok(())
}

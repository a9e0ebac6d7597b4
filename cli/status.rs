//! `a2a status`: how many instances stand where, and which failed and why.

use std::collections::BTreeMap;

use a2a_core::{Instance, ListFilter, Status, list_all};
use serde::Serialize;

use crate::backends::Backends;
use crate::{CliError, Config, Outcome};

/// The report, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    /// All instances.
    pub instances: usize,
    /// Every status, with zero counts too.
    pub by_status: BTreeMap<&'static str, usize>,
    /// Instances per wave.
    pub by_wave: BTreeMap<u32, usize>,
    /// The failed instances, by wave then code.
    pub failed: Vec<Failed>,
}

/// One failed instance.
#[derive(Debug, Serialize)]
pub struct Failed {
    /// The school code.
    pub school_code: String,
    /// The school's name.
    pub name: String,
    /// Its wave.
    pub wave: u32,
    /// Runs started so far.
    pub attempt: u32,
    /// The last error recorded.
    pub last_error: Option<String>,
}

impl Report {
    /// Counts `instances`.
    pub fn of(instances: &[Instance]) -> Self {
        let mut by_status: BTreeMap<&'static str, usize> =
            Status::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        let mut by_wave = BTreeMap::new();
        let mut failed: Vec<&Instance> = Vec::new();
        for i in instances {
            *by_status.entry(i.status.as_str()).or_default() += 1;
            *by_wave.entry(i.wave.0).or_default() += 1;
            if i.status == Status::Failed {
                failed.push(i);
            }
        }
        failed.sort_by_key(|i| (i.wave, i.code.clone()));
        Self {
            instances: instances.len(),
            by_status,
            by_wave,
            failed: failed
                .into_iter()
                .map(|i| Failed {
                    school_code: i.code.to_string(),
                    name: i.name.clone(),
                    wave: i.wave.0,
                    attempt: i.attempt,
                    last_error: i.last_error.clone(),
                })
                .collect(),
        }
    }

    fn print_text(&self, config: &Config) {
        println!(
            "A2A home {} (state: {})",
            config.home.display(),
            config.state
        );
        println!("instances: {}", self.instances);
        println!("by status:");
        for s in Status::ALL {
            println!("  {:<12} {:>6}", s.as_str(), self.by_status[s.as_str()]);
        }
        if self.by_wave.is_empty() {
            println!("by wave: none");
        } else {
            println!("by wave:");
            for (w, n) in &self.by_wave {
                println!("  wave {w:<7} {n:>6}");
            }
        }
        if self.failed.is_empty() {
            println!("failed: none");
        } else {
            println!("failed ({}):", self.failed.len());
            for f in &self.failed {
                println!(
                    "  {} wave {} attempt {} {}: {}",
                    f.school_code,
                    f.wave,
                    f.attempt,
                    f.name,
                    f.last_error.as_deref().unwrap_or("(no error recorded)")
                );
            }
        }
    }
}

/// Prints the report. Reading only: an empty home stays empty.
pub async fn run(config: &Config, ports: &Backends, json: bool) -> Result<Outcome, CliError> {
    let instances = match ports.existing_state(config).await? {
        Some(store) => list_all(&*store, ListFilter::default())
            .await
            .map_err(|e| CliError::from_port(&config.state.label(), e))?,
        None => Vec::new(),
    };
    let report = Report::of(&instances);
    if json {
        let text = serde_json::to_string(&report)
            .map_err(|e| CliError::Failed(format!("cannot write the report as JSON: {e}")))?;
        println!("{text}");
    } else {
        report.print_text(config);
    }
    Ok(Outcome::Ok)
}

//! `a2a status`: how many instances stand where, and which failed and why.

use std::collections::BTreeMap;

use a2a_core::{Instance, InstanceKind, ListFilter, Status, list_all};
use serde::Serialize;

use crate::backends::Backends;
use crate::{CliError, CliResult, Config, Outcome};

/// The report, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    /// All instances.
    pub instances: usize,
    /// Every status, with zero counts too.
    pub by_status: BTreeMap<&'static str, usize>,
    /// Instances per wave.
    pub by_wave: BTreeMap<u32, usize>,
    /// Per kind (`migrate`, `provision`), every status with its count.
    pub by_kind: BTreeMap<&'static str, BTreeMap<&'static str, usize>>,
    /// Per wave, every status with its count: what is left of each wave.
    pub by_wave_status: BTreeMap<u32, BTreeMap<&'static str, usize>>,
    /// The failed instances, by wave then code.
    pub failed: Vec<Line>,
    /// What runs now: the instances with an execution under way, by wave then code.
    pub running: Vec<Line>,
    /// With `--cost`: what the recorded work costs, or would cost, on AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::report::Cost>,
}

/// One instance in a list of the report (the failed ones, or those running now).
#[derive(Debug, Serialize)]
pub struct Line {
    /// The school code.
    pub school_code: String,
    /// The school's name.
    pub name: String,
    /// `migrate` or `provision`.
    pub kind: &'static str,
    /// Its wave.
    pub wave: u32,
    /// Its status.
    pub status: &'static str,
    /// Runs started so far.
    pub attempt: u32,
    /// The execution now or last working on it, once recorded.
    pub execution: Option<String>,
    /// When the instance last changed.
    pub since: chrono::DateTime<chrono::Utc>,
    /// The last error recorded.
    pub last_error: Option<String>,
    /// With `--aws`: how Step Functions says its execution stands (`RUNNING`, `FAILED`,
    /// …, or `NOT_FOUND`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_status: Option<String>,
}

impl Line {
    fn of(i: &Instance) -> Self {
        Self {
            school_code: i.code.to_string(),
            name: i.name.clone(),
            kind: i.kind.as_str(),
            wave: i.wave.0,
            status: i.status.as_str(),
            attempt: i.attempt,
            execution: i.execution.clone(),
            since: i.updated_at,
            last_error: i.last_error.clone(),
            execution_status: None,
        }
    }
}

/// Every status with a zero count, so that a table or a JSON reader sees each one.
fn zeroes() -> BTreeMap<&'static str, usize> {
    Status::ALL.iter().map(|s| (s.as_str(), 0)).collect()
}

impl Report {
    /// Counts `instances`.
    pub fn of(instances: &[Instance]) -> Self {
        let mut by_status = zeroes();
        let mut by_wave = BTreeMap::new();
        let mut by_kind: BTreeMap<&'static str, BTreeMap<&'static str, usize>> = BTreeMap::new();
        let mut by_wave_status: BTreeMap<u32, BTreeMap<&'static str, usize>> = BTreeMap::new();
        let mut failed: Vec<&Instance> = Vec::new();
        let mut running: Vec<&Instance> = Vec::new();
        for i in instances {
            let status = i.status.as_str();
            *by_status.entry(status).or_default() += 1;
            *by_wave.entry(i.wave.0).or_default() += 1;
            *by_kind
                .entry(i.kind.as_str())
                .or_insert_with(zeroes)
                .entry(status)
                .or_default() += 1;
            *by_wave_status
                .entry(i.wave.0)
                .or_insert_with(zeroes)
                .entry(status)
                .or_default() += 1;
            if i.status == Status::Failed {
                failed.push(i);
            }
            if a2a_schedule::IN_FLIGHT.contains(&i.status) {
                running.push(i);
            }
        }
        failed.sort_by_key(|i| (i.wave, i.code.clone()));
        running.sort_by_key(|i| (i.wave, i.code.clone()));
        Self {
            instances: instances.len(),
            by_status,
            by_wave,
            failed: failed.into_iter().map(Line::of).collect(),
            by_kind,
            by_wave_status,
            cost: None,
            running: running.into_iter().map(Line::of).collect(),
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
        for (kind, counts) in &self.by_kind {
            let line: Vec<String> = counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            println!("{kind}: {}", line.join(", "));
        }
        print_list("running now", &self.running, |r| {
            let mut line = format!(
                "{} wave {} attempt {} {} since {} {}",
                r.school_code,
                r.wave,
                r.attempt,
                r.status,
                r.since.format("%Y-%m-%d %H:%M:%S"),
                r.execution
                    .as_deref()
                    .unwrap_or("(execution not recorded yet)")
            );
            if let Some(s) = &r.execution_status {
                line.push_str(&format!(" ({s} in Step Functions)"));
            }
            line
        });
        print_list("failed", &self.failed, |f| {
            format!(
                "{} wave {} attempt {} {}: {}",
                f.school_code,
                f.wave,
                f.attempt,
                f.name,
                f.last_error.as_deref().unwrap_or("(no error recorded)")
            )
        });
    }
}

/// `title: none`, or `title (N):` and one indented line per item.
fn print_list<T>(title: &str, items: &[T], line: impl Fn(&T) -> String) {
    if items.is_empty() {
        println!("{title}: none");
        return;
    }
    println!("{title} ({}):", items.len());
    for i in items {
        println!("  {}", line(i));
    }
}

/// Which instances `a2a status` counts.
#[derive(Debug, Default, Clone)]
pub struct Only {
    /// Only this wave.
    pub wave: Option<u32>,
    /// Only this kind.
    pub kind: Option<InstanceKind>,
    /// Also the cost estimate, at this region's prices.
    pub cost: Option<String>,
}

/// Asks Step Functions how each running instance's execution stands.
async fn ask_executions(
    lines: &mut [Line],
    flows: &dyn a2a_core::Workflows,
) -> Result<(), CliError> {
    for line in lines {
        let Some(id) = &line.execution else { continue };
        line.execution_status = Some(crate::deployed::execution_status(flows, id).await?.0);
    }
    Ok(())
}

/// Prints the report. Reading only: an empty home stays empty. With `aws`, the running
/// instances' executions are looked up in Step Functions (when the state machines are
/// known).
pub async fn run(
    config: &Config,
    ports: &Backends,
    only: Only,
    json: bool,
    aws: bool,
) -> CliResult {
    let keep = |i: &Instance| {
        only.wave.is_none_or(|w| i.wave.0 == w) && only.kind.is_none_or(|k| i.kind == k)
    };
    let report = match &only.cost {
        // The histories too, read once for both.
        Some(region) => {
            let prices = crate::report::prices(region)?;
            let mut all = crate::report::histories(config, ports).await?;
            all.retain(|(i, _)| keep(i));
            let instances: Vec<Instance> = all.iter().map(|(i, _)| i.clone()).collect();
            let mut r = Report::of(&instances);
            r.cost = Some(crate::report::Cost::estimate(&all, &prices));
            r
        }
        None => {
            let mut instances = match ports.existing_state(config).await? {
                Some(store) => list_all(&*store, ListFilter::default())
                    .await
                    .map_err(|e| CliError::from_port(&config.state.label(), e))?,
                None => Vec::new(),
            };
            instances.retain(keep);
            Report::of(&instances)
        }
    };
    let mut report = report;
    if aws && let Some(flows) = crate::deployed::workflows(config, ports).await {
        ask_executions(&mut report.running, &*flows).await?;
    }
    if json {
        let text = serde_json::to_string(&report)
            .map_err(|e| CliError::Failed(format!("cannot write the report as JSON: {e}")))?;
        println!("{text}");
    } else {
        report.print_text(config);
        if let (Some(c), Some(region)) = (&report.cost, &only.cost) {
            println!(
                "cost on AWS ({region}, list prices of {}): ${:.4} in all, ${:.5} per instance; \
                 one EC2 worker for the same {:.1} h: ${:.4}",
                crate::report::PRICES_AS_OF,
                c.total,
                c.per_instance,
                c.span_hours,
                c.ec2_peer
            );
        }
    }
    Ok(Outcome::Ok)
}

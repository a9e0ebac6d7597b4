//! `a2a report`: one self-contained HTML file (inline CSS and SVG, nothing fetched) and a
//! CSV of every school, from the state store and the step histories; and the estimate of
//! what the run costs, or would cost, on AWS.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use a2a_core::{Instance, ListFilter, Outcome as StepOutcome, Status, StepEvent, list_all};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::Args;

use crate::backends::Backends;
use crate::{CliError, CliResult, Config, Outcome};

/// What `a2a report` writes.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The HTML report to write.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
    /// Also a CSV with one row per school.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// The AWS region whose list prices the cost estimate uses.
    #[arg(long, default_value = "eu-west-1")]
    pub region: String,
    /// The host of the sites' new addresses (`https://<host>/<dns>/moodle`); default the
    /// `[site]` host of the configuration.
    #[arg(long)]
    pub host: Option<String>,
    /// The deployed system (`--aws`, `--stack NAME`).
    #[command(flatten)]
    pub aws: crate::deployed::AwsArgs,
}

/// List prices in US dollars, per region, as of [`PRICES_AS_OF`] (the AWS pricing pages;
/// check them before quoting a figure). Lambda at arm64, as the template deploys it.
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// Step Functions Standard, per state transition.
    pub transition: f64,
    /// Lambda, per GB-second (arm64).
    pub gb_second: f64,
    /// Lambda, per request.
    pub lambda_request: f64,
    /// SQS standard, per request.
    pub sqs_request: f64,
    /// DynamoDB on-demand, per write request unit.
    pub write_unit: f64,
    /// DynamoDB on-demand, per read request unit.
    pub read_unit: f64,
    /// S3 Standard, per PUT/COPY/POST/LIST request.
    pub s3_put: f64,
    /// S3 Standard, per GET request.
    pub s3_get: f64,
    /// S3 Standard, per GB-month stored.
    pub s3_gb_month: f64,
    /// The peer: one m7g.large on-demand instance, per hour.
    pub ec2_hour: f64,
}

/// When the price table was last checked against its sources (each figure's comment says
/// where it was read, or that no source was found for it).
pub const PRICES_AS_OF: &str = "2026-12";

/// The price table: regions A2A is likely deployed in. Sources, as read on 2026-12-06:
/// [SFN] AWS's Step Functions pricing page, its table of prices per region;
/// [DDB-US] the DynamoDB on-demand prices for US East after the November 2024 cut, as
/// third-party summaries of AWS's page quote them (AWS's page renders its figures by script
/// and no stored copy holds them); [LAMBDA] AWS's Lambda pricing page gives the model and
/// the Arm tiers, the figures quoted for US East by a third-party summary; [EC2-US] a
/// third-party summary of EC2 on-demand prices in us-east-1 (June 2026). Figures marked
/// "no source found" were written from memory and could not be checked here: confirm
/// them in the AWS Pricing Calculator before quoting a total.
pub const PRICES: &[(&str, Prices)] = &[
    (
        "eu-west-1",
        Prices {
            // [SFN]: Europe (Ireland) $0.0250 per 1,000.
            transition: 0.025 / 1000.0,
            // No source found for Ireland; the US East Arm first tier of [LAMBDA].
            gb_second: 0.000_013_333_4,
            // No source found for Ireland; US East's $0.20 per million of [LAMBDA].
            lambda_request: 0.20 / 1e6,
            // No source found.
            sqs_request: 0.40 / 1e6,
            // No source found: half the pre-cut Ireland rate ($1.4135 per million, as a
            // third-party page quotes it), the cut being 50% in every region.
            write_unit: 0.7068 / 1e6,
            // No source found: half the pre-cut $0.283 would be $0.1415; kept as written.
            read_unit: 0.1413 / 1e6,
            // No source found.
            s3_put: 0.005 / 1000.0,
            // No source found.
            s3_get: 0.0004 / 1000.0,
            // No source found.
            s3_gb_month: 0.023,
            // No source found.
            ec2_hour: 0.0892,
        },
    ),
    (
        "us-east-1",
        Prices {
            // [SFN]: US East (N. Virginia) $0.0250 per 1,000.
            transition: 0.025 / 1000.0,
            // [LAMBDA]: Arm, first 7.5 billion GB-seconds a month.
            gb_second: 0.000_013_333_4,
            // [LAMBDA].
            lambda_request: 0.20 / 1e6,
            // No source found.
            sqs_request: 0.40 / 1e6,
            // [DDB-US]: $0.625 per million write request units.
            write_unit: 0.625 / 1e6,
            // [DDB-US]: $0.125 per million read request units.
            read_unit: 0.125 / 1e6,
            // No source found (a third-party page uses $0.005 per 1,000 as its example).
            s3_put: 0.005 / 1000.0,
            // No source found.
            s3_get: 0.0004 / 1000.0,
            // No source found.
            s3_gb_month: 0.023,
            // [EC2-US]: m7g.large, Linux, $0.0816 an hour.
            ec2_hour: 0.0816,
        },
    ),
];

/// The prices of `region`, or an input error naming the ones known.
pub fn prices(region: &str) -> Result<Prices, CliError> {
    PRICES
        .iter()
        .find(|(r, _)| *r == region)
        .map(|(_, p)| *p)
        .ok_or_else(|| {
            let known: Vec<&str> = PRICES.iter().map(|(r, _)| *r).collect();
            CliError::input(
                format!("no prices for region {region:?}"),
                format!("use one of {}", known.join(", ")),
            )
        })
}

/// What the recorded work would use on AWS, and what it would cost.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Cost {
    /// Workflow executions.
    pub executions: u64,
    /// Step Functions state transitions (estimated: two per step run, ten per execution).
    pub transitions: u64,
    /// Lambda invocations of the target-side steps and the dispatcher.
    pub invocations: u64,
    /// Lambda GB-seconds, each target-side step run at its function's configured memory
    /// (source-side steps run on the on-premises worker).
    pub gb_seconds: f64,
    /// SQS requests (send, receive, delete per execution).
    pub sqs_requests: u64,
    /// DynamoDB write request units (start, end and status save per step run).
    pub write_units: u64,
    /// DynamoDB read request units (two per step run).
    pub read_units: u64,
    /// S3 PUT requests (staged chunks and files).
    pub s3_puts: u64,
    /// S3 GET requests (the same objects read back).
    pub s3_gets: u64,
    /// GB kept in S3 for a month (the sites' files).
    pub s3_gb: f64,
    /// Hours from the first recorded step to the last.
    pub span_hours: f64,
    /// The total, in dollars.
    pub total: f64,
    /// The total over the instances that ran.
    pub per_instance: f64,
    /// One EC2 worker running for the whole span, in dollars.
    pub ec2_peer: f64,
}

/// 8 MiB: a staged chunk and an S3 part.
const CHUNK: u64 = 8 << 20;

/// The Lambda memory a history step is billed at (`import-database` → ImportDatabase,
/// `verify-files` → Verify: the longest step name whose kebab form starts the event's);
/// `None` for a source-side step, which runs on the on-premises worker, not as a Lambda.
fn lambda_mb(step: &str) -> Option<u32> {
    let row = a2a_steps::STEPS
        .iter()
        .filter(|s| {
            let kebab = s.bin_name();
            let kebab = kebab.trim_start_matches("step-");
            step == kebab || step.starts_with(&format!("{kebab}-"))
        })
        .max_by_key(|s| s.name.len());
    match row {
        Some(s) if s.side == a2a_steps::Side::Source => None,
        Some(s) => Some(s.memory_mb),
        None => Some(256),
    }
}

fn is_step(e: &StepEvent) -> bool {
    !e.step.contains('.')
}

impl Cost {
    /// Estimates from every instance's history, at `p`.
    pub fn estimate(histories: &[(Instance, Vec<StepEvent>)], p: &Prices) -> Self {
        let mut c = Cost::default();
        let (mut first, mut last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (None, None);
        let mut ran = 0u64;
        for (_, events) in histories {
            let ends: Vec<&StepEvent> = events
                .iter()
                .filter(|e| is_step(e) && e.outcome != StepOutcome::Started)
                .collect();
            if ends.is_empty() {
                continue;
            }
            ran += 1;
            let starts = events
                .iter()
                .filter(|e| e.step == a2a_schedule::START_STEP)
                .count()
                .max(1) as u64;
            c.executions += starts;
            for e in &ends {
                let end = e.ended_at.unwrap_or(e.started_at);
                first = Some(first.map_or(e.started_at, |f| f.min(e.started_at)));
                last = Some(last.map_or(end, |l| l.max(end)));
                // Lambda bills each run rounded up to the millisecond.
                if let Some(mb) = lambda_mb(&e.step) {
                    let ms = (end - e.started_at).num_milliseconds().max(1) as f64;
                    c.gb_seconds += ms / 1000.0 * f64::from(mb) / 1024.0;
                    c.invocations += 1;
                }
                let bytes = e.bytes.unwrap_or(0);
                let objects = match e.step.as_str() {
                    "export-database" => bytes.div_ceil(CHUNK) + 1,
                    "sync-files" | "copy-template-files" => {
                        c.s3_gb += bytes as f64 / 1e9;
                        e.rows.unwrap_or(bytes.div_ceil(256 << 10))
                    }
                    _ => 0,
                };
                c.s3_puts += objects;
                c.s3_gets += objects;
            }
            let runs = ends.len() as u64;
            c.invocations += starts;
            c.transitions += 2 * runs + 10 * starts;
            c.sqs_requests += 3 * starts;
            c.write_units += 3 * runs;
            c.read_units += 2 * runs;
        }
        if let (Some(a), Some(b)) = (first, last) {
            c.span_hours = (b - a).num_milliseconds() as f64 / 3_600_000.0;
        }
        c.total = c.transitions as f64 * p.transition
            + c.invocations as f64 * p.lambda_request
            + c.gb_seconds * p.gb_second
            + c.sqs_requests as f64 * p.sqs_request
            + c.write_units as f64 * p.write_unit
            + c.read_units as f64 * p.read_unit
            + c.s3_puts as f64 * p.s3_put
            + c.s3_gets as f64 * p.s3_get
            + c.s3_gb * p.s3_gb_month;
        if ran > 0 {
            c.per_instance = c.total / ran as f64;
        }
        // The peer runs the whole span, an hour at the least.
        c.ec2_peer = c.span_hours.max(1.0).ceil() * p.ec2_hour;
        c
    }
}

/// The p-th percentile (0–100) of sorted values, nearest rank.
fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One colour per status, the same in every chart.
fn colour(s: Status) -> &'static str {
    match s {
        Status::Registered => "#c9ced6",
        Status::Queued => "#9fb3c8",
        Status::Running => "#f0b429",
        Status::Migrated | Status::Provisioned => "#7bc4c4",
        Status::Verified => "#4cb782",
        Status::Active => "#2f8f5b",
        Status::Failed => "#d64545",
        Status::RolledBack => "#8d5cd6",
    }
}

/// One segment of a bar: its value, its colour and its tooltip.
type Segment = (f64, &'static str, String);

/// Horizontal bars: one row per label, made of coloured segments.
fn bars(rows: &[(String, Vec<Segment>)], unit: &str) -> String {
    let max = rows
        .iter()
        .map(|(_, segs)| segs.iter().map(|s| s.0).sum::<f64>())
        .fold(0.0, f64::max)
        .max(1e-9);
    let (label_w, bar_w, row_h) = (150.0, 520.0, 22.0);
    let height = rows.len() as f64 * row_h + 4.0;
    let mut svg = format!(
        "<svg role=\"img\" width=\"{}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        label_w + bar_w + 90.0
    );
    for (i, (label, segs)) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 2.0;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 14.0,
            esc(label)
        );
        let mut x = label_w;
        let mut sum = 0.0;
        for (v, fill, title) in segs {
            let w = v / max * bar_w;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{fill}\"><title>{}</title></rect>",
                row_h - 6.0,
                esc(title)
            );
            x += w;
            sum += v;
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{} {unit}</text>",
            x + 6.0,
            y + 14.0,
            fmt_num(sum)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The night an event belongs to: its UTC date, shifted back 12 hours so that a window
/// from the evening to the morning counts as the evening's.
fn night_of(t: DateTime<Utc>) -> NaiveDate {
    (t - Duration::hours(12)).date_naive()
}

/// Everything the report shows, computed once.
struct Facts<'a> {
    histories: &'a [(Instance, Vec<StepEvent>)],
    host: Option<String>,
}

impl Facts<'_> {
    fn site(&self, i: &Instance) -> Option<String> {
        let dns = i.target.dns.as_deref().or(i.source.dns.as_deref())?;
        Some(match &self.host {
            Some(h) => format!("https://{h}/{dns}/moodle"),
            None => dns.to_owned(),
        })
    }

    fn html(&self, cost: &Cost, region: &str, now: DateTime<Utc>) -> String {
        let mut h = String::new();
        let n = self.histories.len();
        let _ = write!(
            h,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>A2A report</title><style>\
             body{{font-family:system-ui,sans-serif;margin:2em;color:#1f2933}}\
             h1{{font-size:1.5em}}h2{{font-size:1.15em;margin-top:2em}}\
             table{{border-collapse:collapse;font-size:13px}}td,th{{border-bottom:1px solid #e4e7eb;padding:3px 8px;text-align:left}}\
             th{{background:#f5f7fa}}.num{{text-align:right}}.key span{{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}}\
             </style></head><body><h1>A2A report</h1><p>{n} schools, written {}.</p>",
            now.format("%Y-%m-%d %H:%M UTC")
        );

        // Progress per wave.
        let mut waves: BTreeMap<u32, BTreeMap<Status, usize>> = BTreeMap::new();
        for (i, _) in self.histories {
            *waves
                .entry(i.wave.0)
                .or_default()
                .entry(i.status)
                .or_default() += 1;
        }
        h.push_str("<h2>Progress per wave</h2><p class=\"key\">");
        for s in Status::ALL {
            let _ = write!(h, "<span style=\"background:{}\"></span>{}", colour(s), s);
        }
        h.push_str("</p>");
        let rows: Vec<_> = waves
            .iter()
            .map(|(w, counts)| {
                let segs = Status::ALL
                    .iter()
                    .filter_map(|s| {
                        counts
                            .get(s)
                            .map(|c| (*c as f64, colour(*s), format!("{s}: {c}")))
                    })
                    .collect();
                (format!("wave {w}"), segs)
            })
            .collect();
        h.push_str(&bars(&rows, "schools"));

        // Instances per night.
        let mut nights: BTreeMap<NaiveDate, usize> = BTreeMap::new();
        for (i, _) in self.histories {
            if i.status == Status::Active {
                *nights.entry(night_of(i.updated_at)).or_default() += 1;
            }
        }
        h.push_str("<h2>Schools made active per night</h2>");
        let rows: Vec<_> = nights
            .iter()
            .map(|(d, c)| {
                (
                    d.to_string(),
                    vec![(*c as f64, colour(Status::Active), format!("{d}: {c}"))],
                )
            })
            .collect();
        h.push_str(&bars(&rows, "active"));

        // Step durations.
        let mut durations: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        let mut failures: BTreeMap<(String, String), usize> = BTreeMap::new();
        let (mut rows_moved, mut bytes_moved) = (0u64, 0u64);
        for (_, events) in self.histories {
            for e in events.iter().filter(|e| is_step(e)) {
                let Some(end) = e.ended_at else { continue };
                match e.outcome {
                    StepOutcome::Succeeded => {
                        durations
                            .entry(&e.step)
                            .or_default()
                            .push((end - e.started_at).num_milliseconds());
                        rows_moved += e.rows.unwrap_or(0);
                        bytes_moved += e.bytes.unwrap_or(0);
                    }
                    StepOutcome::Failed => {
                        let why = e.error.as_deref().unwrap_or("(no error recorded)");
                        let why: String =
                            why.lines().next().unwrap_or("").chars().take(120).collect();
                        *failures.entry((e.step.clone(), why)).or_default() += 1;
                    }
                    StepOutcome::Started => {}
                }
            }
        }
        h.push_str("<h2>Step durations</h2><table><tr><th>step</th><th class=\"num\">runs</th><th class=\"num\">p50 s</th><th class=\"num\">p95 s</th></tr>");
        let mut rows = Vec::new();
        for (step, d) in &mut durations {
            d.sort_unstable();
            let (p50, p95) = (percentile(d, 50.0), percentile(d, 95.0));
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td></tr>",
                esc(step),
                d.len(),
                p50 as f64 / 1000.0,
                p95 as f64 / 1000.0
            );
            rows.push((
                step.to_string(),
                vec![
                    (p50 as f64 / 1000.0, "#2f8f5b", format!("p50 {} ms", p50)),
                    (
                        (p95 - p50) as f64 / 1000.0,
                        "#9fd8b8",
                        format!("p95 {} ms", p95),
                    ),
                ],
            ));
        }
        h.push_str("</table>");
        h.push_str(&bars(&rows, "s (p95)"));

        // Failures.
        h.push_str("<h2>Failures by step and error</h2>");
        if failures.is_empty() {
            h.push_str("<p>No step failed.</p>");
        } else {
            h.push_str("<table><tr><th>step</th><th>error</th><th class=\"num\">times</th></tr>");
            for ((step, why), c) in &failures {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"num\">{c}</td></tr>",
                    esc(step),
                    esc(why)
                );
            }
            h.push_str("</table>");
        }

        // Data moved and cost.
        let _ = write!(
            h,
            "<h2>Data moved</h2><p>{rows_moved} rows and {:.1} MB moved or checked by the steps that succeeded.</p>",
            bytes_moved as f64 / 1e6
        );
        let _ = write!(
            h,
            "<h2>Cost on AWS ({region}, list prices of {PRICES_AS_OF})</h2><table>\
             <tr><td>executions</td><td class=\"num\">{}</td></tr>\
             <tr><td>state transitions (estimated)</td><td class=\"num\">{}</td></tr>\
             <tr><td>Lambda invocations</td><td class=\"num\">{}</td></tr>\
             <tr><td>Lambda GB-seconds</td><td class=\"num\">{:.1}</td></tr>\
             <tr><td>SQS requests</td><td class=\"num\">{}</td></tr>\
             <tr><td>DynamoDB writes / reads</td><td class=\"num\">{} / {}</td></tr>\
             <tr><td>S3 PUTs / GETs</td><td class=\"num\">{} / {}</td></tr>\
             <tr><td>S3 GB-month</td><td class=\"num\">{:.3}</td></tr>\
             <tr><th>total</th><th class=\"num\">${:.4}</th></tr>\
             <tr><td>per instance</td><td class=\"num\">${:.5}</td></tr>\
             <tr><td>one m7g.large worker for the same {:.1} h</td><td class=\"num\">${:.4}</td></tr>\
             </table><p>Estimated from the recorded step runs: each target-side run at its function's memory (source-side steps run on the on-premises worker), \
             two state transitions per step run and ten per execution, three SQS requests per \
             execution, three DynamoDB writes and two reads per step run, one S3 request per \
             staged 8 MiB chunk or file each way. Free tiers are not subtracted.</p>",
            cost.executions,
            cost.transitions,
            cost.invocations,
            cost.gb_seconds,
            cost.sqs_requests,
            cost.write_units,
            cost.read_units,
            cost.s3_puts,
            cost.s3_gets,
            cost.s3_gb,
            cost.total,
            cost.per_instance,
            cost.span_hours,
            cost.ec2_peer
        );

        // Every school.
        h.push_str("<h2>Schools</h2><table><tr><th>code</th><th>name</th><th>kind</th><th>wave</th><th>status</th><th class=\"num\">attempts</th><th>site</th><th>last error</th></tr>");
        for (i, _) in self.histories {
            let site = match self.site(i) {
                Some(s) if s.starts_with("https://") => {
                    format!("<a href=\"{}\">{}</a>", esc(&s), esc(&s))
                }
                Some(s) => esc(&s),
                None => String::new(),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"color:{}\">{}</td><td class=\"num\">{}</td><td>{site}</td><td>{}</td></tr>",
                i.code,
                esc(&i.name),
                i.kind,
                i.wave.0,
                colour(i.status),
                i.status,
                i.attempt,
                esc(i.last_error.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table></body></html>\n");
        h
    }

    fn csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "school_code",
            "name",
            "kind",
            "wave",
            "status",
            "attempts",
            "site",
            "last_error",
        ])?;
        for (i, _) in self.histories {
            w.write_record([
                i.code.to_string(),
                i.name.clone(),
                i.kind.to_string(),
                i.wave.0.to_string(),
                i.status.to_string(),
                i.attempt.to_string(),
                self.site(i).unwrap_or_default(),
                i.last_error.clone().unwrap_or_default(),
            ])?;
        }
        w.into_inner().map_err(|e| e.into_error().into())
    }
}

/// Every instance with its history, by wave then code.
pub async fn histories(
    config: &Config,
    ports: &Backends,
) -> Result<Vec<(Instance, Vec<StepEvent>)>, CliError> {
    let label = config.state.label();
    let port = |e| CliError::from_port(&label, e);
    let Some(store) = ports.existing_state(config).await? else {
        return Ok(Vec::new());
    };
    let mut all = list_all(&*store, ListFilter::default())
        .await
        .map_err(port)?;
    all.sort_by_key(|i| (i.wave, i.code.clone()));
    let mut out = Vec::with_capacity(all.len());
    for i in all {
        let h = store.history(&i.code).await.map_err(port)?;
        out.push((i, h));
    }
    Ok(out)
}

/// Writes the report (and the CSV). Reading only, but for the files it writes.
pub async fn run(config: &Config, ports: &Backends, args: &ReportArgs) -> CliResult {
    let p = prices(&args.region)?;
    let histories = histories(config, ports).await?;
    let cost = Cost::estimate(&histories, &p);
    let facts = Facts {
        histories: &histories,
        host: args
            .host
            .clone()
            .or_else(|| config.site.as_ref().map(|s| s.host.clone())),
    };
    let write = |path: &PathBuf, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|e| {
            CliError::environment(
                format!("cannot write {}: {e}", path.display()),
                "check that the folder exists and is writable",
            )
        })
    };
    write(
        &args.html,
        facts.html(&cost, &args.region, Utc::now()).as_bytes(),
    )?;
    println!("{}: {} schools", args.html.display(), histories.len());
    if let Some(csv) = &args.csv {
        let bytes = facts
            .csv()
            .map_err(|e| CliError::Failed(format!("cannot write the CSV: {e}")))?;
        write(csv, &bytes)?;
        println!("{}: {} rows", csv.display(), histories.len());
    }
    println!(
        "cost on AWS ({}, prices of {PRICES_AS_OF}): ${:.4} in all, ${:.5} per instance; \
         one EC2 worker for the same {:.1} h: ${:.4}",
        args.region, cost.total, cost.per_instance, cost.span_hours, cost.ec2_peer
    );
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use a2a_core::{InstanceKind, SchoolCode, Wave};
    use chrono::TimeZone;

    fn ended(step: &str, at: DateTime<Utc>, ms: i64, rows: u64, bytes: u64) -> StepEvent {
        StepEvent {
            ended_at: Some(at + Duration::milliseconds(ms)),
            outcome: StepOutcome::Succeeded,
            rows: Some(rows),
            bytes: Some(bytes),
            ..StepEvent::started(step, at)
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=20).collect();
        assert_eq!(percentile(&v, 50.0), 10);
        assert_eq!(percentile(&v, 95.0), 19);
        assert_eq!(percentile(&[7], 95.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn target_steps_are_billed_at_their_functions_memory() {
        assert_eq!(lambda_mb("import-database"), Some(1769));
        assert_eq!(lambda_mb("verify-files"), Some(1769));
        assert_eq!(lambda_mb("switch-route"), Some(256));
        assert_eq!(lambda_mb("scheduler.enqueue"), Some(256));
        // Source-side steps run on the on-premises worker: no Lambda to bill.
        assert_eq!(lambda_mb("export-database"), None);
        assert_eq!(lambda_mb("verify-source-files"), None);
    }

    #[test]
    fn the_estimate_adds_up_per_service_and_per_instance() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 21, 0, 0).unwrap();
        let code = SchoolCode::parse("08000001").unwrap();
        let inst = Instance::new(code, InstanceKind::Migrate, "A", Wave(1), t0);
        let events = vec![
            StepEvent {
                ended_at: Some(t0),
                outcome: StepOutcome::Succeeded,
                ..StepEvent::started(a2a_schedule::START_STEP, t0)
            },
            // A 20 MiB export on the worker (three chunks, no Lambda), one second of
            // import at 1769 MB and one of the switch at 256 MB.
            ended("export-database", t0, 1000, 100, 20 << 20),
            ended("import-database", t0, 1000, 100, 0),
            ended("switch-route", t0 + Duration::hours(2), 1000, 0, 0),
        ];
        let p = prices("eu-west-1").unwrap();
        let c = Cost::estimate(&[(inst.clone(), events)], &p);
        assert_eq!(c.executions, 1);
        assert_eq!(c.invocations, 2 + 1, "two step Lambdas and the dispatcher");
        assert_eq!(c.transitions, 2 * 3 + 10);
        assert_eq!(c.s3_puts, 4);
        let gbs = 1769.0 / 1024.0 + 256.0 / 1024.0;
        assert!((c.gb_seconds - gbs).abs() < 1e-9, "{}", c.gb_seconds);
        assert!(c.total > 0.0 && (c.per_instance - c.total).abs() < 1e-12);
        assert!((c.span_hours - (2.0 + 1.0 / 3600.0)).abs() < 1e-6);
        assert!((c.ec2_peer - 3.0 * p.ec2_hour).abs() < 1e-9);
        // An instance with no step run adds nothing and is not counted per instance.
        let idle = (inst, Vec::new());
        let c2 = Cost::estimate(&[idle], &p);
        assert_eq!((c2.executions, c2.total), (0, 0.0));
        assert!(prices("mars-1").is_err());
    }

    #[test]
    fn the_html_is_escaped_and_fetches_nothing() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 21, 0, 0).unwrap();
        let code = SchoolCode::parse("08000002").unwrap();
        let mut inst = Instance::new(code, InstanceKind::Provision, "<b>Escola</b>", Wave(2), t0);
        inst.status = Status::Failed;
        inst.last_error = Some("A2A.Permanent: <script>".into());
        let h = vec![(inst, vec![ended("clone-template", t0, 500, 10, 0)])];
        let facts = Facts {
            histories: &h,
            host: Some("agora.example.cat".into()),
        };
        let html = facts.html(&Cost::default(), "eu-west-1", t0);
        assert!(html.contains("&lt;b&gt;Escola&lt;/b&gt;"));
        assert!(!html.contains("<script"));
        assert!(!html.contains(" src="), "nothing is fetched");
        assert!(html.contains("<svg"));
        let csv = String::from_utf8(facts.csv().unwrap()).unwrap();
        assert_eq!(csv.lines().count(), 2, "{csv}");
        assert!(
            csv.contains("08000002,<b>Escola</b>,provision,2,failed,0"),
            "{csv}"
        );
    }
}

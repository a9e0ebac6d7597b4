//! `a2a stack up`: the stack rehearsal, first slice. Both state machines run on the local
//! engine behind a Step Functions endpoint (`a2a_stack`): the target steps in this
//! process, as the demo runs them, and the source steps as activities that only a worker
//! serves, over the endpoint (`a2a worker`, with `AWS_ENDPOINT_URL_SFN`), as in AWS.
//! State and blobs are the backends the CLI opens (`--state dynamodb:TABLE`, `--blobs
//! s3://…` on the emulator at `AWS_ENDPOINT_URL`, or the embedded ones).
//!
//! Not yet (issue 20): resources created from `template.yaml`, the functions as their
//! real binaries behind a Lambda Runtime API, the template's events (the upload
//! notification, the queue's mapping, the schedule).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use a2a_stack::{Endpoint, Engine};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::backends::{Backends, BlobSpec, StateSpec};
use crate::run::ClockArg;
use crate::{CliError, CliResult, Config, Outcome};

/// `a2a stack …`.
#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Serves both state machines behind a Step Functions endpoint on 127.0.0.1 until
    /// SIGINT or SIGTERM: target steps in this process, source steps as activities for
    /// `a2a worker`. When ready, prints one JSON line on stdout: `states_endpoint`,
    /// `state_machines` (`migrate`, `provision`), `activities` (step name → ARN), and
    /// `table`/`bucket` when the state and blobs are DynamoDB and S3. Logs go to stderr.
    ///
    /// Exit 0: stopped by a signal; 2: a bad site configuration or state machine; 3: the
    /// state or blob store does not answer (the emulator at `AWS_ENDPOINT_URL`), or the
    /// port could not be bound.
    Up(UpArgs),
}

/// The arguments of `a2a stack up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The site configuration of the target steps, as the stack's `SiteConfig` parameter
    /// (JSON), or `@FILE`.
    #[arg(long, env = "A2A_SITE", value_name = "JSON")]
    pub site: String,
    /// The prefix in Secrets Manager of the sites' secrets (the stack's `SecretPrefix`);
    /// without it, the home's secret folder.
    #[arg(long, value_name = "PREFIX")]
    pub secret_prefix: Option<String>,
    /// The folder holding `migrate-instance.asl.json` and `provision-instance.asl.json`.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/statemachines"))]
    pub statemachines: PathBuf,
    /// `real`: every timeout, heartbeat, wait and retry back-off takes wall time, as in
    /// AWS (a worker that dies is noticed when its `HeartbeatSeconds` run out).
    /// `virtual`: they take none (the demo's engine); a dead worker's task is then never
    /// timed out.
    #[arg(long, value_enum, default_value = "real")]
    pub clock: ClockArg,
    /// The endpoint's port on 127.0.0.1 (0: a free one, named in the ready line).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Runs a `stack` subcommand.
pub async fn run(config: &Config, ports: &Backends, command: StackCommand) -> CliResult {
    match command {
        StackCommand::Up(args) => up(config, ports, &args).await,
    }
}

/// How long a `GetActivityTask` waits for a task, as Step Functions holds it.
const POLL_WAIT: Duration = Duration::from_secs(60);

async fn up(config: &Config, ports: &Backends, args: &UpArgs) -> CliResult {
    let ctx =
        crate::worker::context(config, ports, &args.site, args.secret_prefix.as_deref()).await?;
    // The emulator (or the embedded stores) must answer before anything is served:
    // unreachable is exit 3, as for any command.
    ctx.store
        .list(a2a_core::ListFilter::default(), 1, None)
        .await
        .map_err(|e| CliError::from_port(&config.state.label(), e))?;
    ctx.blob
        .list("", None)
        .await
        .map_err(|e| CliError::from_port(&format!("blobs ({})", config.blobs), e))?;
    let (flows, loopback, activities) =
        crate::demo::engine(ctx, &args.statemachines, POLL_WAIT, None)?;
    let flows = match args.clock {
        ClockArg::Real => flows.with_clock(Arc::new(a2a_asl::RealClock)),
        ClockArg::Virtual => flows,
    };
    let engine = Engine::new(flows, loopback, &activities);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let endpoint = Endpoint::bind(engine.clone(), addr).await.map_err(|e| {
        CliError::environment(
            format!("the Step Functions endpoint: cannot listen on {addr}: {e}"),
            "give a free --port, or 0 for any",
        )
    })?;
    let machines = engine.machines();
    let mut ready = json!({
        "states_endpoint": endpoint.url(),
        "state_machines": {"migrate": machines.migrate, "provision": machines.provision},
        "activities": engine.activities(),
    });
    if let StateSpec::DynamoDb { table } = &config.state {
        ready["table"] = json!(table);
    }
    if let BlobSpec::S3 { bucket, .. } = &config.blobs {
        ready["bucket"] = json!(bucket);
    }
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{ready}")
            .and_then(|()| out.flush())
            .map_err(|e| CliError::Failed(format!("writing the ready line: {e}")))?;
    }
    eprintln!(
        "stack up: Step Functions at {} ({} clock); serve the source steps with \
         `AWS_ENDPOINT_URL_SFN={} a2a worker --activity …`; Ctrl-C or SIGTERM stops it",
        endpoint.url(),
        match args.clock {
            ClockArg::Real => "real",
            ClockArg::Virtual => "virtual",
        },
        endpoint.url()
    );
    crate::worker::stopped().await;
    drop(endpoint);
    eprintln!("stack stopped: running executions end with this process");
    Ok(Outcome::Ok)
}

//! `a2a secret show CODE`: a site's own secret, for the operator who must log in as its
//! admin. The plain text is kept only in the secret store (`<home>/secrets/`, or Secrets
//! Manager with `--aws`); this is the one command that prints it, to stdout only.

use a2a_core::{SchoolCode, SecretName};
use clap::{Args, Subcommand};

use crate::backends::Backends;
use crate::{CliError, CliResult, Config, Outcome};

/// The `secret` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Prints a site's secret (by default its admin password) to stdout.
    ///
    /// Exit 0: printed; 1: the site has no such secret (it was never customised);
    /// 2: the code is malformed.
    Show(ShowArgs),
}

/// Which secret to show, and where it is kept.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The school's code (8 digits).
    pub code: String,
    /// Which of the site's secrets: `admin-password`, `site-identifier`, `cron-password`.
    #[arg(long, default_value = "admin-password")]
    pub what: String,
    /// Read Secrets Manager (the deployed stack's secrets) instead of the home.
    #[arg(long)]
    pub aws: bool,
    /// With --aws: the prefix of the secrets' names (the stack's `SecretPrefix`).
    #[arg(long, default_value = "", requires = "aws")]
    pub prefix: String,
}

/// Runs a `secret` subcommand.
pub async fn run(config: &Config, ports: &Backends, command: SecretCommand) -> CliResult {
    let SecretCommand::Show(args) = command;
    let code = SchoolCode::parse(&args.code)
        .map_err(|e| CliError::input(e.to_string(), "give the school's 8-digit code"))?;
    let name = SecretName::of(&code, &args.what).map_err(|e| {
        CliError::input(
            e.to_string(),
            "use admin-password, site-identifier or cron-password",
        )
    })?;
    let (store, backend) = ports
        .secrets(config, args.aws.then_some(args.prefix.as_str()))
        .await;
    match store
        .get(&name)
        .await
        .map_err(|e| CliError::from_port(backend, e))?
    {
        Some(secret) => {
            println!("{}", secret.expose());
            Ok(Outcome::Ok)
        }
        None => {
            eprintln!(
                "school {code} has no secret {name} in the {backend}: a site gets its own \
                 when the Customise step runs"
            );
            Ok(Outcome::Failed)
        }
    }
}

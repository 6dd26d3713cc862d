//! `meshgate policy ...`: check and explain a policy against a configuration
//! (offline, on a gateway built here), or read and change the policy of a
//! running gateway through its admin API.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use meshgate_gateway::admin::{AdminClient, AdminTarget};
use meshgate_gateway::{Config, Gateway};
use meshgate_planner::datafusion::arrow::util::pretty::pretty_format_batches;
use meshgate_planner::policy::Policy;
use meshgate_planner::{Identity, QueryOutput, SessionOptions};

use super::CliError;

#[derive(Subcommand)]
pub(super) enum PolicyCommand {
    /// Validate a policy file against the live catalogs of a configuration.
    Check {
        file: PathBuf,
        #[arg(short, long, default_value = "meshgate.toml")]
        config: PathBuf,
    },
    /// Show what a user would see of a query, and why (a dry run).
    Explain {
        #[arg(short, long, default_value = "meshgate.toml")]
        config: PathBuf,
        #[arg(long)]
        user: String,
        sql: String,
    },
    /// Print the policy in force on a running gateway (TOML, with its version).
    Get {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List the rules in force on a running gateway.
    List {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Show what applying FILE would change, and whether it would be accepted.
    Diff {
        file: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Replace the policy of a running gateway with FILE.
    ///
    /// Refused when the policy changed since the version FILE was based on
    /// (its `version` key, or --expected-version).
    Apply {
        file: PathBuf,
        #[arg(long)]
        expected_version: Option<u64>,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// Where the gateway's admin API is (its Flight SQL listener) and who signs in.
#[derive(clap::Args)]
pub(crate) struct TargetArgs {
    #[arg(
        long,
        env = "MESHGATE_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    #[arg(long, env = "MESHGATE_USER")]
    user: Option<String>,
    /// Prefer the MESHGATE_PASSWORD environment variable to this flag.
    #[arg(long, env = "MESHGATE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A bearer token (a JWT from the configured issuer) instead of a password.
    #[arg(long, env = "MESHGATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The CA certificate (PEM) to trust for an https:// server.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
}

impl TargetArgs {
    pub(super) async fn connect(self) -> Result<AdminClient, CliError> {
        Ok(AdminClient::connect(&AdminTarget {
            server: self.server,
            user: self.user,
            password: self.password,
            token: self.token,
            ca_cert: self.ca_cert,
        })
        .await?)
    }
}

/// The text of `file`.
pub(super) fn read(file: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(file).map_err(|source| CliError::Read {
        path: file.to_path_buf(),
        source,
    })
}

/// `text`, the content of `file`, as a policy.
fn parse(file: &Path, text: &str) -> Result<Policy, CliError> {
    Policy::from_toml(text).map_err(|e| CliError::InvalidPolicy {
        file: file.to_path_buf(),
        message: e.to_string(),
    })
}

pub(super) async fn run(action: PolicyCommand) -> Result<(), CliError> {
    match action {
        PolicyCommand::Check { file, config } => check(&file, &config).await,
        PolicyCommand::Explain { config, user, sql } => explain(&config, &user, &sql).await,
        PolicyCommand::Get { target } => {
            let doc = target.connect().await?.get().await?;
            print!("{}", doc.toml);
            Ok(())
        }
        PolicyCommand::List { target } => {
            let list = target.connect().await?.list().await?;
            println!("policy version {}", list.version);
            for rule in list.rules {
                println!("{}[{}]\t{}", rule.kind, rule.index, rule.summary);
            }
            Ok(())
        }
        PolicyCommand::Diff { file, target } => {
            let text = read(&file)?;
            let diff = target.connect().await?.diff(text).await?;
            if diff.diff.is_empty() {
                println!(
                    "{}: no changes to policy version {}",
                    file.display(),
                    diff.version
                );
            } else {
                print!("{}", diff.diff);
            }
            for p in &diff.problems {
                eprintln!("{}: {p}", file.display());
            }
            if diff.problems.is_empty() {
                Ok(())
            } else {
                Err(CliError::WouldBeRefused {
                    file,
                    count: diff.problems.len(),
                })
            }
        }
        PolicyCommand::Apply {
            file,
            expected_version,
            target,
        } => {
            let text = read(&file)?;
            let expected = match expected_version {
                Some(v) => v,
                None => parse(&file, &text)?.document().version,
            };
            let version = target.connect().await?.apply(text, expected).await?;
            println!("{}: applied as policy version {version}", file.display());
            Ok(())
        }
    }
}

/// `policy check`: the policy in `file` against the catalogs of `config`.
async fn check(file: &Path, config: &Path) -> Result<(), CliError> {
    let config = Config::load(config)?;
    let policy = parse(file, &read(file)?)?;
    let gateway = Gateway::build(config).await?;
    let problems = gateway.service().check_policy(&policy).await;
    if problems.is_empty() {
        println!(
            "{}: OK ({} grants, {} row filters, {} masks)",
            file.display(),
            policy.document().grants.len(),
            policy.document().row_filters.len(),
            policy.document().masks.len()
        );
        Ok(())
    } else {
        for p in &problems {
            eprintln!("{}: {p}", file.display());
        }
        Err(CliError::PolicyProblems {
            file: file.to_path_buf(),
            count: problems.len(),
        })
    }
}

/// `policy explain`: what `user` may see of `sql` under the configured
/// policy, and the plan they would get.
async fn explain(config: &Path, user: &str, sql: &str) -> Result<(), CliError> {
    let config = Config::load(config)?;
    let gateway = Gateway::build(config).await?;
    let service = gateway.service();
    let mut session = service.open_session(Identity::new(user), SessionOptions::default())?;
    if service.policy().is_none() {
        println!("no policy is configured: {user} reads every table unrestricted");
    }
    for (table, access) in session.explain_access(sql)? {
        match access {
            None => println!("{table}: allowed (no policy)"),
            Some(a) => {
                println!("{table}: {}", if a.allowed { "ALLOWED" } else { "DENIED" });
                for line in &a.explanation {
                    println!("  - {line}");
                }
            }
        }
    }
    match session.run(&format!("EXPLAIN {sql}")).await {
        Ok(outputs) => {
            for output in outputs {
                if let QueryOutput::Rows(stream) = output {
                    let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await?;
                    println!("\nplan for {user}:\n{}", pretty_format_batches(&batches)?);
                }
            }
        }
        Err(e) => println!("\n{user} cannot run this query: [{}] {e}", e.sqlstate()),
    }
    Ok(())
}

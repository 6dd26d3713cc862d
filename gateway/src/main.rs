//! The `meshgate` command line.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use meshgate_gateway::admin::{AdminClient, AdminTarget};
use meshgate_gateway::auth::PasswordHash;
use meshgate_gateway::demo::{self, DemoOptions, DEMO_PASSWORD, DEMO_USER};
use meshgate_gateway::{Config, Gateway};
use meshgate_planner::policy::Policy;
use meshgate_planner::{Identity, QueryOutput, SessionOptions};

#[derive(Parser)]
#[command(
    name = "meshgate",
    version,
    about = "A federated SQL gateway for data meshes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the catalogs of a configuration file.
    Serve {
        #[arg(short, long, default_value = "meshgate.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file without serving it.
    CheckConfig { file: PathBuf },
    /// Print a password hash for `[users.NAME] password = "..."`.
    ///
    /// Reads the password from standard input (one line) unless given.
    HashPassword { password: Option<String> },
    /// Check or explain the access policy.
    Policy {
        #[command(subcommand)]
        action: PolicyCommand,
    },
    /// Write the demo health-insurance mesh and serve it.
    Demo {
        /// Where the demo data and its meshgate.toml are written.
        #[arg(long, default_value = "meshgate-data")]
        data_dir: PathBuf,
        /// pgwire address.
        #[arg(long, default_value = "127.0.0.1:5433")]
        pgwire: String,
        /// Flight SQL address.
        #[arg(long, default_value = "127.0.0.1:50051")]
        flight_sql: String,
        /// Write the data and config, then exit without serving.
        #[arg(long)]
        write_only: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
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
struct TargetArgs {
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
    async fn connect(self) -> anyhow::Result<AdminClient> {
        AdminClient::connect(&AdminTarget {
            server: self.server,
            user: self.user,
            password: self.password,
            token: self.token,
            ca_cert: self.ca_cert,
        })
        .await
    }
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", status.code(), status.message())
}

/// Worker threads plan and run queries; their stacks are large so that a
/// complex statement within the planner's limits never exhausts one.
const WORKER_STACK_BYTES: usize = 16 << 20;

fn main() -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
    {
        Ok(runtime) => runtime.block_on(serve_cli()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_cli() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "meshgate=info,meshgate_gateway=info,meshgate_planner=info,warn".into()
            }),
        )
        // No source secret reaches the log, whatever printed it.
        .with_writer(meshgate_gateway::log_redaction::RedactingWriter::new(
            std::io::stderr,
        ))
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            serve(config).await
        }
        Command::CheckConfig { file } => {
            let config = Config::load(&file)?;
            println!(
                "{}: OK ({} catalog(s): {}; {} user(s))",
                file.display(),
                config.catalogs.len(),
                config
                    .catalogs
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                config.users.len()
            );
            Ok(())
        }
        Command::HashPassword { password } => {
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("reading the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            anyhow::ensure!(!password.is_empty(), "the password is empty");
            println!("{}", PasswordHash::generate(&password));
            Ok(())
        }
        Command::Policy { action } => policy_command(action).await,
        Command::Demo {
            data_dir,
            pgwire,
            flight_sql,
            write_only,
        } => {
            let options = DemoOptions {
                data_dir,
                pgwire_address: pgwire,
                flight_sql_address: Some(flight_sql),
            };
            let path = demo::write_demo(&options).await?;
            eprintln!("demo mesh written to {}", options.data_dir.display());
            if write_only {
                return Ok(());
            }
            let config = Config::load(&path)?;
            let gateway = Gateway::build(config).await?;
            let running = gateway.start().await?;
            if let Some(addr) = running.pgwire_addr {
                println!("meshgate demo is serving the members, claims and providers domains.");
                println!("Connect with (password: {DEMO_PASSWORD}):");
                println!(
                    "  PGPASSWORD={DEMO_PASSWORD} psql \"host={} port={} user={DEMO_USER} dbname=members\"",
                    addr.ip(),
                    addr.port()
                );
                println!("Try the cross-domain join:\n  {}", demo::CROSS_DOMAIN_JOIN);
            }
            if let Some(addr) = running.flight_sql_addr {
                println!(
                    "Arrow Flight SQL: grpc://{addr} (user {DEMO_USER}, password {DEMO_PASSWORD})"
                );
            }
            running.run_until_signal().await;
            Ok(())
        }
    }
}

async fn policy_command(action: PolicyCommand) -> anyhow::Result<()> {
    match action {
        PolicyCommand::Check { file, config } => {
            let config = Config::load(&config)?;
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
            let policy =
                Policy::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
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
                anyhow::bail!("{} problem(s) in {}", problems.len(), file.display())
            }
        }
        PolicyCommand::Get { target } => {
            let doc = target.connect().await?.get().await.map_err(status_error)?;
            print!("{}", doc.toml);
            Ok(())
        }
        PolicyCommand::List { target } => {
            let list = target.connect().await?.list().await.map_err(status_error)?;
            println!("policy version {}", list.version);
            for rule in list.rules {
                println!("{}[{}]\t{}", rule.kind, rule.index, rule.summary);
            }
            Ok(())
        }
        PolicyCommand::Diff { file, target } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
            let diff = target
                .connect()
                .await?
                .diff(text)
                .await
                .map_err(status_error)?;
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
                anyhow::bail!(
                    "{} would be refused: {} problem(s)",
                    file.display(),
                    diff.problems.len()
                )
            }
        }
        PolicyCommand::Apply {
            file,
            expected_version,
            target,
        } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
            let expected = match expected_version {
                Some(v) => v,
                None => {
                    Policy::from_toml(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
                        .document()
                        .version
                }
            };
            let version = target
                .connect()
                .await?
                .apply(text, expected)
                .await
                .map_err(status_error)?;
            println!("{}: applied as policy version {version}", file.display());
            Ok(())
        }
        PolicyCommand::Explain { config, user, sql } => {
            let config = Config::load(&config)?;
            let gateway = Gateway::build(config).await?;
            let service = gateway.service();
            let mut session =
                service.open_session(Identity::new(&user), SessionOptions::default())?;
            if service.policy().is_none() {
                println!("no policy is configured: {user} reads every table unrestricted");
            }
            for (table, access) in session.explain_access(&sql)? {
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
                            let batches: Vec<_> =
                                futures::TryStreamExt::try_collect(stream).await?;
                            println!("\nplan for {user}:\n{}", meshgate_planner::datafusion::arrow::util::pretty::pretty_format_batches(&batches)?);
                        }
                    }
                }
                Err(e) => println!("\n{user} cannot run this query: [{}] {e}", e.sqlstate()),
            }
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let gateway = Gateway::build(config).await?;
    let running = gateway.start().await?;
    running.run_until_signal().await;
    Ok(())
}

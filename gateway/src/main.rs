//! The `meshgate` command line.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use meshgate_gateway::auth::PasswordHash;
use meshgate_gateway::demo::{self, DemoOptions, DEMO_PASSWORD, DEMO_USER};
use meshgate_gateway::{Config, Gateway};

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

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "meshgate=info,meshgate_gateway=info,meshgate_planner=info,warn".into()
            }),
        )
        .with_writer(std::io::stderr)
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

async fn serve(config: Config) -> anyhow::Result<()> {
    let gateway = Gateway::build(config).await?;
    let running = gateway.start().await?;
    running.run_until_signal().await;
    Ok(())
}

//! The `meshgate` command line: the clap definitions of its subcommands and
//! what each one does.
//!
//! Commands run on the library exactly as an embedding program would
//! (`Config::load`, `Gateway::build`, `AdminClient`); nothing here decides
//! anything the gateway would decide differently. Every command returns a
//! [`CliError`], whose message (with its causes) `main` prints.

mod demo;
mod error;
mod healthcheck;
mod policy;
mod product;
mod setup;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use meshgate_gateway::{Config, Gateway};

pub use error::CliError;
use policy::PolicyCommand;

#[derive(Parser)]
#[command(
    name = "meshgate",
    version,
    about = "A federated SQL gateway for data meshes"
)]
pub struct Cli {
    /// How log lines are written to standard error: `text` for people,
    /// `json` for log collectors (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// Reload a running gateway's catalogs from its configuration file
    /// (as SIGHUP does); prints what changed.
    ReloadCatalogs {
        #[command(flatten)]
        target: policy::TargetArgs,
    },
    /// Draft and check data product descriptors.
    Product {
        #[command(subcommand)]
        action: product::ProductCommand,
    },
    /// Ask a running gateway's `/readyz`: exit 0 when it is ready (the
    /// container health check; the image has no curl).
    Healthcheck {
        /// The readiness URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
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
        /// HTTP address (health, metrics, the data products page and API).
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        /// Write the data and config, then exit without serving.
        #[arg(long)]
        write_only: bool,
    },
    /// Run a Ballista scheduler that gateways with `[execution] ballista`
    /// send large queries over files to (it decodes meshgate's plans).
    BallistaScheduler {
        /// Address its gRPC service listens on (port 0: any free port).
        #[arg(long, default_value = "0.0.0.0:50050")]
        bind: String,
    },
    /// Run a Ballista executor for a `meshgate ballista-scheduler`.
    BallistaExecutor {
        /// The scheduler, `df://host:port`.
        #[arg(long, default_value = "df://127.0.0.1:50050")]
        scheduler: String,
        /// Address its Flight service (results, shuffles) listens on.
        #[arg(long, default_value = "0.0.0.0:50051")]
        bind: String,
        /// Host name or IP gateways and other executors reach it at
        /// (default: the bind address's IP).
        #[arg(long)]
        advertise_host: Option<String>,
        /// Tasks it runs at once (default: the CPU count).
        #[arg(long)]
        concurrent_tasks: Option<usize>,
        /// A meshgate.toml whose file and Delta catalogs' object stores
        /// (credentials included) and `[limits]` the executor reads with.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Run the command `cli` names.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve { config } => serve(Config::load(&config)?).await,
        Command::CheckConfig { file } => setup::check_config(&file),
        Command::HashPassword { password } => setup::hash_password(password),
        Command::Policy { action } => policy::run(action).await,
        Command::Product { action } => product::run(action).await,
        Command::ReloadCatalogs { target } => {
            let changes = target.connect().await?.reload_catalogs().await?;
            for (what, names) in [
                ("added", &changes.added),
                ("removed", &changes.removed),
                ("changed", &changes.changed),
            ] {
                if !names.is_empty() {
                    println!("{what}: {}", names.join(", "));
                }
            }
            println!("catalog set {}", changes.generation);
            Ok(())
        }
        Command::Healthcheck { url } => healthcheck::run(&url).await,
        Command::Demo {
            data_dir,
            pgwire,
            flight_sql,
            http,
            write_only,
        } => demo::run(data_dir, pgwire, flight_sql, http, write_only).await,
        Command::BallistaScheduler { bind } => {
            Ok(meshgate_gateway::ballista::run_scheduler(&bind).await?)
        }
        Command::BallistaExecutor {
            scheduler,
            bind,
            advertise_host,
            concurrent_tasks,
            config,
        } => Ok(meshgate_gateway::ballista::run_executor(
            meshgate_gateway::ballista::ExecutorOptions {
                scheduler: &scheduler,
                bind: &bind,
                advertise_host: advertise_host.as_deref(),
                concurrent_tasks,
                config: config.as_deref(),
            },
        )
        .await?),
    }
}

/// Serve `config` until Ctrl-C or SIGTERM.
async fn serve(config: Config) -> Result<(), CliError> {
    let running = Gateway::build(config).await?.start().await?;
    running.run_until_signal().await;
    Ok(())
}

//! The `meshgate` binary: starts the async runtime and logging, then runs
//! the command line (see `cli`). The only place errors are untyped: a
//! command's error is printed with its causes, and the exit code says it
//! failed.
//!
//! Logs go to standard error, as text or (`--log-format json`) as one JSON
//! object per line: `timestamp`, `level`, `target`, `message` and the
//! event's fields at the top level, and the fields of the spans it happened
//! in under `span` (innermost) and `spans` (all, outermost first). Either
//! way no source secret reaches the log.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::LogFormat;
use meshgate_gateway::log_redaction::RedactingWriter;

/// Worker threads plan and run queries; their stacks are large so that a
/// complex statement within the planner's limits never exhausts one.
const WORKER_STACK_BYTES: usize = 16 << 20;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "meshgate=info,meshgate_gateway=info,meshgate_planner=info,warn".into()
    });
    // No source secret reaches the log, whatever printed it.
    let writer = RedactingWriter::new(std::io::stderr);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

async fn run(cli: cli::Cli) -> ExitCode {
    let format = cli.log_format;
    init_logging(format);
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message and its causes, one after another.
            let message = format!("{:#}", anyhow::Error::new(e));
            match format {
                LogFormat::Text => eprintln!("error: {message}"),
                // One JSON object per line on stderr, like the log.
                LogFormat::Json => eprintln!(
                    "{}",
                    serde_json::json!({
                        "timestamp": chrono::Utc::now().to_rfc3339(),
                        "level": "ERROR",
                        "message": format!("error: {message}"),
                    })
                ),
            }
            ExitCode::FAILURE
        }
    }
}

//! The `meshgate` binary: starts the async runtime and logging, then runs
//! the command line (see `cli`). The only place errors are untyped: a
//! command's error is printed with its causes, and the exit code says it
//! failed.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Worker threads plan and run queries; their stacks are large so that a
/// complex statement within the planner's limits never exhausts one.
const WORKER_STACK_BYTES: usize = 16 << 20;

fn main() -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
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
    match cli::run(cli::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message and its causes, one after another.
            eprintln!("error: {:#}", anyhow::Error::new(e));
            ExitCode::FAILURE
        }
    }
}

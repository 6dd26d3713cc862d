//! Why a command failed. Each variant's message, followed by its causes,
//! is what `meshgate` prints after `error: `.

use std::path::PathBuf;

use meshgate_gateway::admin::AdminClientError;
use meshgate_gateway::demo::DemoError;
use meshgate_gateway::{ConfigError, GatewayError};
use meshgate_planner::datafusion::arrow::error::ArrowError;
use meshgate_planner::datafusion::error::DataFusionError;
use meshgate_planner::QueryError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Demo(#[from] DemoError),
    #[error(transparent)]
    Cluster(#[from] meshgate_gateway::ballista::ClusterError),
    #[error(transparent)]
    Admin(#[from] AdminClientError),
    /// The gateway answered an admin call with an error.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(tonic::Status),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// A file named on the command line could not be read.
    #[error("{}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the password from stdin")]
    Stdin(#[source] std::io::Error),
    #[error("the password is empty")]
    EmptyPassword,
    /// A policy file that is not a valid policy document.
    #[error("{}: {message}", file.display())]
    InvalidPolicy { file: PathBuf, message: String },
    /// `meshgate healthcheck`: the gateway did not answer, or is not ready.
    #[error("{url}: {problem}")]
    NotReady { url: String, problem: String },
    /// A valid policy document that does not fit the live catalogs (each
    /// problem has been printed).
    #[error("{count} problem(s) in {}", file.display())]
    PolicyProblems { file: PathBuf, count: usize },
    /// A policy the gateway would refuse to apply (each problem has been
    /// printed).
    #[error("{} would be refused: {count} problem(s)", file.display())]
    WouldBeRefused { file: PathBuf, count: usize },
    /// A command-line argument that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// Products whose sources break their contracts (each has been printed).
    #[error("{count} product table(s) break their contract")]
    ProductProblems { count: usize },
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}

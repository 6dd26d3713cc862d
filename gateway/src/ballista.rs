//! A Ballista cluster that runs meshgate's plans: `meshgate
//! ballista-scheduler` and `meshgate ballista-executor`.
//!
//! Ballista's own scheduler and executor cannot decode meshgate's policy
//! barrier (see `meshgate_planner::MeshgatePhysicalCodec`), so a cluster
//! that gateways send queries to (`[execution] ballista`) runs these two
//! commands. They schedule pull-based: executors ask the scheduler for
//! work, and the gateway fetches results from the executors' Flight
//! services at the host they advertise.
//!
//! The cluster has no sign-in of its own: run it on a network only the
//! gateways and its own processes reach. No plan carries a secret; an
//! executor reads object storage with the credentials of its own
//! `--config`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_core::serde::protobuf::ExecutorRegistration;
use ballista_core::serde::scheduler::{
    ExecutorOperatingSystemSpecification, ExecutorSpecification,
};
use ballista_core::serde::{BallistaCodec, BallistaLogicalExtensionCodec};
use ballista_core::utils::{
    create_grpc_server, default_config_producer, default_session_builder, GrpcServerConfig,
};
use ballista_core::{ConfigProducer, RuntimeProducer, BALLISTA_PROTOCOL_VERSION};
use ballista_executor::executor::Executor;
use ballista_executor::flight_service::BallistaFlightService;
use ballista_executor::metrics::LoggingMetricsCollector;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::metrics::default_metrics_collector;
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::SessionStateBuilder;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use meshgate_planner::{CatalogRegistry, MeshgatePhysicalCodec};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::Config;

/// Why a scheduler or executor stopped or did not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot reach the Ballista scheduler at {url}: {source}")]
    Scheduler {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("{0}")]
    Config(#[from] crate::ConfigError),
    #[error("Ballista: {0}")]
    Ballista(String),
}

fn ballista(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Ballista(e.to_string())
}

/// Ballista's codecs with meshgate's plan nodes.
fn codec() -> BallistaCodec<LogicalPlanNode, PhysicalPlanNode> {
    BallistaCodec::new(
        Arc::new(BallistaLogicalExtensionCodec::default()),
        Arc::new(MeshgatePhysicalCodec::default()),
    )
}

async fn listen(addr: &str) -> Result<TcpListener, ClusterError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ClusterError::Listen {
            addr: addr.to_owned(),
            source,
        })
}

/// Serve a scheduler on `bind` (`host:port`, port 0 for any) until the
/// process ends; logs "Ballista scheduler listening" with its address.
pub async fn run_scheduler(bind: &str) -> Result<(), ClusterError> {
    let listener = listen(bind).await?;
    let addr = listener.local_addr().map_err(ballista)?;
    let config_producer: ConfigProducer = Arc::new(default_config_producer);
    let cluster = BallistaCluster::new_memory(
        addr.to_string(),
        Arc::new(default_session_builder),
        config_producer.clone(),
    );
    let config = SchedulerConfig::default().with_scheduler_policy(TaskSchedulingPolicy::PullStaged);
    let mut scheduler: SchedulerServer<LogicalPlanNode, PhysicalPlanNode> = SchedulerServer::new(
        addr.to_string(),
        cluster,
        codec(),
        Arc::new(config),
        default_metrics_collector().map_err(ballista)?,
    );
    scheduler.init().await.map_err(ballista)?;
    tracing::info!(%addr, "Ballista scheduler listening");
    create_grpc_server(&GrpcServerConfig::default())
        .add_service(SchedulerGrpcServer::new(scheduler))
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
        .map_err(ballista)
}

/// How an executor joins the cluster.
pub struct ExecutorOptions<'a> {
    /// `df://host:port` or `http://host:port` of the scheduler.
    pub scheduler: &'a str,
    /// Where its Flight service listens (`host:port`, port 0 for any).
    pub bind: &'a str,
    /// The host the gateway fetches results from (default: the bind
    /// address's IP).
    pub advertise_host: Option<&'a str>,
    /// Tasks it runs at once (default: the CPU count).
    pub concurrent_tasks: Option<usize>,
    /// A meshgate configuration whose file and Delta catalogs' object
    /// stores (and `[limits]` memory) the executor reads with.
    pub config: Option<&'a Path>,
}

/// Join the scheduler and run its tasks until the process ends; logs
/// "Ballista executor listening" with its Flight address.
pub async fn run_executor(options: ExecutorOptions<'_>) -> Result<(), ClusterError> {
    let runtime = match options.config {
        Some(path) => executor_runtime(&Config::load(path)?).await?,
        None => Arc::new(RuntimeEnv::default()),
    };
    let scheduler_url = meshgate_planner::BallistaOptions::parse(options.scheduler, 0)
        .map_err(ClusterError::Ballista)?
        .scheduler;
    let scheduler = SchedulerGrpcClient::connect(scheduler_url.clone())
        .await
        .map_err(|source| ClusterError::Scheduler {
            url: scheduler_url,
            source,
        })?;
    let listener = listen(options.bind).await?;
    let addr: SocketAddr = listener.local_addr().map_err(ballista)?;
    let host = options
        .advertise_host
        .map(str::to_owned)
        .unwrap_or_else(|| addr.ip().to_string());
    let vcores = options.concurrent_tasks.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let registration = ExecutorRegistration {
        id: uuid::Uuid::new_v4().to_string(),
        host: Some(host),
        port: addr.port() as u32,
        // Used by push scheduling only; this cluster pulls.
        grpc_port: 0,
        specification: Some(
            ExecutorSpecification::default()
                .with_vcores(vcores as u32)
                .into(),
        ),
        os_info: Some(ExecutorOperatingSystemSpecification::default().into()),
        ballista_protocol_version: BALLISTA_PROTOCOL_VERSION,
    };
    let work_dir = tempfile::tempdir().map_err(ballista)?;
    let work = work_dir.path().to_string_lossy().into_owned();
    let runtime_producer: RuntimeProducer = Arc::new(move |_| Ok(runtime.clone()));
    let functions: BallistaFunctionRegistry =
        (&SessionStateBuilder::new().with_default_features().build()).into();
    let executor = Arc::new(Executor::with_default_execution_engine(
        registration,
        &work,
        runtime_producer,
        Arc::new(default_config_producer),
        Arc::new(functions),
        Arc::new(LoggingMetricsCollector::default()),
        vcores,
    ));
    let flight = arrow_flight::flight_service_server::FlightServiceServer::new(
        BallistaFlightService::new(work.clone()),
    );
    tracing::info!(%addr, "Ballista executor listening");
    let serve = create_grpc_server(&GrpcServerConfig::default())
        .add_service(flight)
        .serve_with_incoming(TcpListenerStream::new(listener));
    let poll = ballista_executor::execution_loop::poll_loop(
        scheduler,
        executor,
        codec(),
        None,
        None,
        ballista_executor::health::ExecutorHealth::new(),
    );
    tokio::select! {
        served = serve => served.map_err(ballista),
        polled = poll => polled.map_err(ballista),
    }
}

/// The runtime an executor reads with: the object stores of `config`'s file
/// and Delta catalogs (the only ones whose scans run on the cluster) and
/// its memory limits. Its SQL sources are not contacted.
async fn executor_runtime(config: &Config) -> Result<Arc<RuntimeEnv>, ClusterError> {
    let limits = config
        .limits
        .runtime()
        .map_err(|(key, problem)| config.invalid(key, problem))?;
    let specs: Vec<_> = config
        .catalog_specs()?
        .into_iter()
        .filter(|spec| matches!(spec.connector.as_str(), "files" | "delta"))
        .collect();
    let registry = CatalogRegistry::build(
        &specs,
        &meshgate_connectors::ConnectorRegistry::builtin(),
        config.base_dir.clone(),
        &limits,
    )
    .await
    .map_err(|e| config.registry_error(e))?;
    Ok(registry.runtime())
}

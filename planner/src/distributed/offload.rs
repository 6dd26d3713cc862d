//! Which queries run on the Ballista cluster, and the plan node that runs
//! them there.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use ballista_core::config::BallistaConfig;
use ballista_core::execution_plans::execute_physical_plan;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, SessionStateBuilder, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    replace_children_if_necessary, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties,
};
use datafusion_proto::physical_plan::AsExecutionPlan;
use datafusion_proto::protobuf::PhysicalPlanNode;
use futures::{StreamExt, TryStreamExt};

use super::MeshgatePhysicalCodec;

/// Where the Ballista scheduler is, and from which scan size a query goes
/// there (`[execution] ballista`, `ballista_min_scan_bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BallistaOptions {
    /// The scheduler's gRPC endpoint, `http://host:port`.
    pub scheduler: String,
    /// A query whose file scans add up to fewer bytes runs in the gateway.
    pub min_scan_bytes: u64,
}

impl BallistaOptions {
    /// The scheduler's port when the URL names none (Ballista's default).
    pub const DEFAULT_PORT: u16 = 50050;

    /// `url` is `df://host[:port]` (as Ballista's clients write it) or
    /// `http://host[:port]`; the problem otherwise.
    pub fn parse(url: &str, min_scan_bytes: u64) -> std::result::Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "df" | "http") {
            return Err(format!(
                "`{url}`: the scheduler is written df://host:port (scheme `{}` is not supported)",
                parsed.scheme()
            ));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{url}` names no scheduler host"))?;
        if !parsed.path().trim_start_matches('/').is_empty() || parsed.query().is_some() {
            return Err(format!("`{url}`: only df://host:port is expected"));
        }
        let port = parsed.port().unwrap_or(Self::DEFAULT_PORT);
        Ok(Self {
            scheduler: format!("http://{host}:{port}"),
            min_scan_bytes,
        })
    }
}

/// The last physical optimiser rule of a session with `[execution]
/// ballista`: a plan that qualifies (see [`Offload::verdict`]) becomes one
/// [`BallistaExec`] that runs it on the cluster.
///
/// A restricted table's barrier plans its own scan with the same rules, so
/// that inner plan may come back offloaded; the rule undoes that first and
/// decides for the whole query, which runs on the cluster whole or not at
/// all.
#[derive(Debug)]
pub(crate) struct Offload {
    options: Arc<BallistaOptions>,
    /// What the cluster decodes plans with: DataFusion's own functions.
    cluster: Arc<TaskContext>,
    /// Each of those functions' implementation, by name: a function of the
    /// same name that meshgate implements otherwise must not go.
    builtins: HashMap<String, TypeId>,
}

impl Offload {
    pub(crate) fn new(options: Arc<BallistaOptions>) -> Self {
        let state = SessionStateBuilder::new().with_default_features().build();
        let builtins = state
            .scalar_functions()
            .iter()
            .map(|(name, udf)| (name.clone(), (udf.inner().as_ref() as &dyn Any).type_id()))
            .collect();
        Self {
            options,
            cluster: Arc::new(TaskContext::from(&state)),
            builtins,
        }
    }

    /// The bytes `plan` scans when it may run on the cluster; why not
    /// otherwise: it reads something other than files (a SQL source, a
    /// Delta table, a system table) or no file at all, scans less than the
    /// threshold, calls
    /// a function of meshgate's own, or does not survive the trip to the
    /// cluster (encoded and decoded as the scheduler will).
    fn verdict(&self, plan: &Arc<dyn ExecutionPlan>) -> std::result::Result<u64, String> {
        let mut bytes = 0u64;
        let mut files = 0usize;
        let mut refused = None;
        plan.apply(|node| {
            if let Some(expr) = self.own_function(node.as_ref()) {
                refused = Some(format!("calls {expr}, which only the gateway runs"));
                return Ok(TreeNodeRecursion::Stop);
            }
            if !node.children().is_empty() {
                return Ok(TreeNodeRecursion::Continue);
            }
            match file_scan(node.as_ref()) {
                Some((n, size)) => {
                    files += n;
                    bytes += size;
                }
                None => {
                    refused = Some(format!(
                        "reads {}, which only the gateway runs",
                        node.name()
                    ));
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(|e| e.to_string())?;
        if let Some(reason) = refused {
            return Err(reason);
        }
        if files == 0 {
            return Err("reads no file".into());
        }
        if bytes < self.options.min_scan_bytes {
            return Err(format!(
                "scans {bytes} bytes, under ballista_min_scan_bytes ({})",
                self.options.min_scan_bytes
            ));
        }
        let codec = MeshgatePhysicalCodec::default();
        let encoded = PhysicalPlanNode::try_from_physical_plan(plan.clone(), &codec)
            .map_err(|e| format!("cannot be sent: {}", e.strip_backtrace()))?;
        encoded
            .try_into_physical_plan(&self.cluster, &codec)
            .map_err(|e| format!("cannot be decoded by the cluster: {}", e.strip_backtrace()))?;
        Ok(bytes)
    }

    /// The first function `node` calls that is not DataFusion's own.
    fn own_function(&self, node: &dyn ExecutionPlan) -> Option<String> {
        let mut found = None;
        let _ = node.apply_expressions(&mut |expr: &Arc<dyn PhysicalExpr>| {
            expr.apply(|e| {
                if let Some(call) = e.downcast_ref::<ScalarFunctionExpr>() {
                    let implementation = (call.fun().inner().as_ref() as &dyn Any).type_id();
                    if self.builtins.get(call.name()) != Some(&implementation) {
                        found = Some(format!("{}()", call.name()));
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        });
        found
    }
}

/// The files a leaf reads and their bytes, when it reads files (or
/// nothing at all); `None` for any other leaf.
fn file_scan(leaf: &dyn ExecutionPlan) -> Option<(usize, u64)> {
    if leaf.downcast_ref::<EmptyExec>().is_some()
        || leaf.downcast_ref::<PlaceholderRowExec>().is_some()
    {
        return Some((0, 0));
    }
    let scan = leaf
        .downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()?;
    let files = scan.file_groups.iter().flat_map(|group| group.iter());
    Some(files.fold((0, 0), |(n, bytes), file| {
        let size = match &file.range {
            Some(range) => range.end.saturating_sub(range.start) as u64,
            None => file.object_meta.size,
        };
        (n + 1, bytes + size)
    }))
}

/// `plan` with every [`BallistaExec`] in it replaced by the plan it holds.
fn local(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(offloaded) = plan.downcast_ref::<BallistaExec>() {
        return Ok(offloaded.input.clone());
    }
    let children = plan.children();
    if children.is_empty() {
        return Ok(plan);
    }
    let local_children = children
        .into_iter()
        .map(|c| local(c.clone()))
        .collect::<Result<Vec<_>>>()?;
    replace_children_if_necessary(plan, local_children)
}

impl PhysicalOptimizerRule for Offload {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Unchanged nodes are kept as they are (nothing to undo: no copy).
        let plan = local(plan)?;
        match self.verdict(&plan) {
            Ok(scan_bytes) => Ok(Arc::new(BallistaExec::new(
                plan,
                self.options.clone(),
                scan_bytes,
            ))),
            Err(reason) => {
                tracing::debug!(%reason, "query runs in the gateway");
                Ok(plan)
            }
        }
    }

    fn name(&self) -> &str {
        "meshgate_ballista_offload"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A query run on the Ballista cluster: its physical plan (planned and
/// policy-checked in the gateway) is sent to the scheduler, and its result
/// partitions stream back from the executors as one partition. Its child
/// is that plan, shown by EXPLAIN but never run in the gateway.
#[derive(Debug)]
pub struct BallistaExec {
    input: Arc<dyn ExecutionPlan>,
    options: Arc<BallistaOptions>,
    scan_bytes: u64,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl BallistaExec {
    fn new(input: Arc<dyn ExecutionPlan>, options: Arc<BallistaOptions>, scan_bytes: u64) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            input,
            options,
            scan_bytes,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for BallistaExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BallistaExec: scheduler={}, scan_bytes={}",
            self.options.scheduler, self.scan_bytes
        )
    }
}

impl ExecutionPlan for BallistaExec {
    fn name(&self) -> &str {
        "BallistaExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    /// The plan the cluster runs, so EXPLAIN shows it (and hides a policy
    /// barrier's inside as it does elsewhere); it is never run here.
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children).map_err(|_| {
            DataFusionError::Internal("BallistaExec takes the one plan it sends".into())
        })?;
        Ok(Arc::new(Self::new(
            input,
            self.options.clone(),
            self.scan_bytes,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "BallistaExec has one partition, not {partition}"
            )));
        }
        let plan = self.input.clone();
        let scheduler = self.options.scheduler.clone();
        let session_config = context.session_config().clone();
        let session_id = context.session_id();
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let stream = futures::stream::once(async move {
            tracing::info!(%scheduler, "query runs on the Ballista cluster");
            execute_physical_plan::<PhysicalPlanNode>(
                scheduler.clone(),
                &BallistaConfig::default(),
                plan,
                &MeshgatePhysicalCodec::default(),
                session_id,
                session_config,
            )
            .await
            .map_err(|e| {
                DataFusionError::External(
                    format!("Ballista cluster at {scheduler}: {}", e.strip_backtrace()).into(),
                )
            })
        })
        .try_flatten()
        .inspect(move |batch| {
            if let Ok(batch) = batch {
                rows.add(batch.num_rows());
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_urls() {
        let ok = BallistaOptions::parse("df://scheduler:50051", 7).unwrap();
        assert_eq!(ok.scheduler, "http://scheduler:50051");
        assert_eq!(ok.min_scan_bytes, 7);
        assert_eq!(
            BallistaOptions::parse("df://10.0.0.5", 0)
                .unwrap()
                .scheduler,
            "http://10.0.0.5:50050"
        );
        for bad in ["scheduler:50050", "grpc://x:1", "df://", "df://x:1/path"] {
            assert!(BallistaOptions::parse(bad, 0).is_err(), "{bad}");
        }
    }
}

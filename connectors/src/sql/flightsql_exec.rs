//! How a `flightsql` catalog's tables run: SQL sent to the remote (a
//! federated sub-plan, or a plain scan with `pushdown = false`) as the
//! service account or as the end user, the answer's endpoints fetched in
//! parallel.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::sql::unparser::dialect::{CustomDialectBuilder, Dialect};
use datafusion_federation::sql::SQLExecutor;
use futures::{StreamExt, TryStreamExt};

use super::flightsql::{remote_error, Remote};
use super::flightsql_identity::Forwarder;
use crate::EndUser;

/// The table as scanned without federation (`pushdown = false`): every
/// row, projected here.
pub(super) fn remote_table(
    schema: SchemaRef,
    reference: &TableReference,
    executor: Arc<FlightExecutor>,
) -> DfResult<Arc<dyn TableProvider>> {
    // Named columns: a remote that reorders its columns cannot move
    // values under other names (where a local mask would miss them).
    let columns = schema
        .fields()
        .iter()
        .map(|f| quote_part(f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let scan = RemoteScan {
        sql: format!("SELECT {columns} FROM {}", quoted(reference)),
        schema: schema.clone(),
        executor,
    };
    Ok(Arc::new(StreamingTable::try_new(
        schema,
        vec![Arc::new(scan)],
    )?))
}

/// `"name"`.
fn quote_part(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"catalog"."schema"."table"`.
fn quoted(reference: &TableReference) -> String {
    let part = quote_part;
    match reference {
        TableReference::Full {
            catalog,
            schema,
            table,
        } => format!("{}.{}.{}", part(catalog), part(schema), part(table)),
        TableReference::Partial { schema, table } => format!("{}.{}", part(schema), part(table)),
        TableReference::Bare { table } => part(table),
    }
}

#[derive(Debug)]
struct RemoteScan {
    sql: String,
    schema: SchemaRef,
    executor: Arc<FlightExecutor>,
}

impl std::fmt::Debug for FlightExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlightExecutor({})", self.reference)
    }
}

impl PartitionStream for RemoteScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        match self.executor.execute(&self.sql, self.schema.clone(), &[]) {
            Ok(stream) => stream,
            Err(e) => Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async move { Err(e) }),
            )),
        }
    }
}

/// The end user a table's queries run as at the remote.
pub(super) struct RunAs {
    pub forwarder: Arc<Forwarder>,
    pub user: EndUser,
}

/// Runs SQL on the remote server for federation.
pub(super) struct FlightExecutor {
    pub remote: Arc<Remote>,
    pub schema: SchemaRef,
    pub reference: TableReference,
    /// The remote's identifier quote (GetSqlInfo).
    pub quote: char,
    /// `None`: as the service account.
    pub run_as: Option<RunAs>,
    /// The federation context: same server, catalog and identity.
    pub context: String,
}

#[async_trait]
impl SQLExecutor for FlightExecutor {
    fn name(&self) -> &str {
        "flightsql"
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.context.clone())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        Arc::new(
            CustomDialectBuilder::new()
                .with_identifier_quote_style(self.quote)
                .build(),
        )
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> DfResult<SendableRecordBatchStream> {
        let remote = self.remote.clone();
        let sql = query.to_owned();
        let target = schema.clone();
        // A token per query: it lives only `forward_ttl_secs`.
        let authorization = match &self.run_as {
            Some(run_as) => run_as.forwarder.authorization(&run_as.user)?,
            None => remote.authorization.clone(),
        };
        let batches = futures::stream::once(async move {
            let info = remote
                .client_as(&authorization)
                .execute(sql, None)
                .await
                .map_err(remote_error)?;
            remote.fetch_all_as(info, &authorization).await
        })
        .try_flatten()
        .map(move |batch| super::direct::conform(batch?, &target, "the Flight SQL server"));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }

    async fn table_names(&self) -> DfResult<Vec<String>> {
        Ok(vec![self.reference.to_string()])
    }

    async fn get_table_schema(&self, _table_name: &str) -> DfResult<SchemaRef> {
        Ok(self.schema.clone())
    }
}

//! Statements over Flight SQL: SQL held to `max_statement_bytes` where it
//! arrives, prepared statements created (and recorded in the audit log
//! with their outcome, including a refusal by the prepared-statement
//! budgets), parameters bound by DoPut, and statements run into a stream of
//! Flight data.

use std::sync::Arc;
use std::time::Instant;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    CommandPreparedStatementQuery, DoPutPreparedStatementResult,
};
use arrow_flight::{IpcMessage, SchemaAsIpc};
use futures::{stream, TryStreamExt};
use meshgate_planner::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use meshgate_planner::datafusion::arrow::ipc::writer::IpcWriteOptions;
use meshgate_planner::datafusion::common::{ParamValues, ScalarValue};
use meshgate_planner::{AuditRecord, Identity, Prepared, QueryError, QueryOutput};
use tonic::{Request, Status};

use super::audit::statement_text;
use super::errors::to_status;
use super::prepared::{read_parameters, PreparedEntry};
use super::{BatchStream, DoGetStream, FlightSqlFrontend, PREPARED};
use crate::auth::TokenError;

impl FlightSqlFrontend {
    /// Refuse SQL over `max_statement_bytes` before it is parsed (or kept
    /// in a ticket), and record the refusal: the planner never sees it.
    pub(super) fn check_statement(
        &self,
        identity: &Identity,
        client: Option<std::net::SocketAddr>,
        call: &str,
        sql: &str,
    ) -> Result<(), Status> {
        self.limits.check_statement(sql).map_err(|e| {
            let message = format!(
                "[{}] {e}",
                crate::request_limits::StatementTooLong::SQLSTATE
            );
            let mut record = self.access(
                identity,
                client,
                format!("Flight SQL {call}: {}", statement_text(sql)),
            );
            record.decision = AuditRecord::ERROR.into();
            record.error = Some(message.clone());
            self.audit(record);
            Status::resource_exhausted(message)
        })
    }

    /// The prepared statement a handle names, with its id, if it is the
    /// caller's.
    pub(super) async fn prepared_entry(
        &self,
        identity: &Identity,
        handle: &[u8],
    ) -> Result<(String, Arc<PreparedEntry>), Status> {
        let token = std::str::from_utf8(handle)
            .map_err(|_| Status::invalid_argument("malformed prepared statement handle"))?;
        let claims = self.signer.verify(token, PREPARED).map_err(|e| match e {
            TokenError::Expired => {
                Status::not_found("prepared statement has expired: prepare it again")
            }
            _ => Status::invalid_argument("invalid prepared statement handle"),
        })?;
        if claims.sub != identity.user {
            return Err(Status::permission_denied(
                "this prepared statement belongs to another user",
            ));
        }
        let id = claims.data.unwrap_or_default();
        let entry = self.prepared.get(&id).await.ok_or_else(|| {
            Status::not_found("prepared statement was closed or has expired: prepare it again")
        })?;
        if entry.user != identity.user {
            return Err(Status::permission_denied(
                "this prepared statement belongs to another user",
            ));
        }
        Ok((id, entry))
    }

    /// Plan and run `sql` for `identity`, streaming the result as Flight data.
    pub(super) async fn run(
        &self,
        identity: Identity,
        client: Option<std::net::SocketAddr>,
        sql: &str,
        params: Option<Vec<ScalarValue>>,
    ) -> Result<DoGetStream, Status> {
        let mut session = self.session(identity, client)?;
        let prepared = session.prepare(sql).await.map_err(|e| to_status(&e))?;
        let output = session
            .execute(&prepared, params.map(ParamValues::from))
            .await
            .map_err(|e| to_status(&e))?;
        let (schema, batches): (SchemaRef, BatchStream) = match output {
            QueryOutput::Rows(rows) => (
                rows.schema(),
                Box::pin(
                    rows.map_err(|e| FlightError::Tonic(Box::new(to_status(&QueryError::from(e))))),
                ),
            ),
            QueryOutput::CopyOut { .. } => {
                return Err(to_status(&QueryError::FeatureNotSupported(
                    "COPY TO STDOUT is a PostgreSQL protocol feature; Flight SQL streams results directly".into(),
                )))
            }
            QueryOutput::Command { .. } | QueryOutput::Empty => {
                (Arc::new(Schema::empty()), Box::pin(stream::empty()))
            }
        };
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Box::pin(data))
    }

    /// CreatePreparedStatement: plan the statement, keep it within the
    /// budgets, and record the attempt whatever its outcome.
    pub(super) async fn create_prepared(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let started = Instant::now();
        let identity = self.authenticate(request.metadata())?;
        let client = request.remote_addr();
        self.check_statement(&identity, client, "CreatePreparedStatement", &query.query)?;
        let record = self.access(
            &identity,
            client,
            format!(
                "Flight SQL CreatePreparedStatement: {}",
                statement_text(&query.query)
            ),
        );
        let session = self.session(identity.clone(), client)?;
        let planned = match session.prepare(&query.query).await {
            Ok(prepared) => prepared.parameter_types().map(|types| (prepared, types)),
            Err(e) => Err(e),
        };
        // Which tables it names, and whether the policy hides any of them.
        let tables = session.explain_access(&query.query).unwrap_or_default();
        let (prepared, param_types) = match planned {
            Ok(planned) => planned,
            Err(e) => {
                self.audit(
                    record
                        .with_outcome(Some(&e))
                        .with_tables(tables)
                        .with_duration(started),
                );
                return Err(to_status(&e));
            }
        };
        let result = self
            .keep_prepared(&identity, query.query, &prepared, param_types)
            .await;
        let mut record = record.with_tables(tables).with_duration(started);
        if let Err(status) = &result {
            record.decision = AuditRecord::ERROR.into();
            record.error = Some(status.message().to_owned());
        }
        self.audit(record);
        result
    }

    /// Keep a planned statement for `identity` and hand out its handle.
    async fn keep_prepared(
        &self,
        identity: &Identity,
        sql: String,
        prepared: &Prepared,
        param_types: Vec<Option<DataType>>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let parameter_schema = Schema::new(
            param_types
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    Field::new(
                        format!("${}", i + 1),
                        t.clone().unwrap_or(DataType::Utf8),
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        );
        let id = format!("{:032x}", rand::random::<u128>());
        let entry = PreparedEntry::new(identity.user.clone(), sql, param_types, None);
        self.prepared.insert(id.clone(), entry, None).await?;
        let handle = self
            .signer
            .issue(&identity.user, PREPARED, Some(id), self.ttl);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: schema_bytes(&prepared.output_schema())?,
            parameter_schema: schema_bytes(&parameter_schema)?,
        })
    }

    /// DoPut of parameters: read message by message up to
    /// `max_parameter_bytes` (an upload over it is refused without being
    /// buffered), then keep the one row with the statement.
    pub(super) async fn bind_parameters(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let identity = self.authenticate(request.metadata())?;
        let (id, entry) = self
            .prepared_entry(&identity, &query.prepared_statement_handle)
            .await?;
        let row = read_parameters(
            request.into_inner(),
            self.limits.max_parameter_bytes,
            &entry.param_types,
        )
        .await?;
        self.prepared
            .insert(id, entry.with_params(row), Some(&entry))
            .await?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }
}

pub(super) fn schema_bytes(schema: &Schema) -> Result<prost::bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(
            |e: meshgate_planner::datafusion::arrow::error::ArrowError| {
                Status::internal(format!("cannot encode schema: {e}"))
            },
        )?;
    Ok(bytes)
}

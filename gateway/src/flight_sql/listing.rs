//! The Flight SQL metadata listings that depend on the caller: catalogs,
//! schemas and tables as the policy lets this session see them, key
//! listings, and the static listings; each is recorded in the audit log
//! (see [`super::audit`]).

use std::time::Instant;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{CommandGetCatalogs, CommandGetDbSchemas, CommandGetTables};
use arrow_flight::Ticket;
use futures::{stream, TryStreamExt};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::SchemaRef;
use tonic::{Request, Response, Status};

use super::audit::{self, KeyListing};
use super::errors::to_status;
use super::{DoGetStream, FlightSqlFrontend};

impl FlightSqlFrontend {
    /// GetCatalogs: the catalogs this session sees.
    pub(super) async fn list_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let identity = self.authenticate(request.metadata())?;
        let client = request.remote_addr();
        let session = self.session(identity.clone(), client)?;
        let mut builder = query.into_builder();
        let catalogs = session.catalog_names();
        for catalog in &catalogs {
            builder.append(catalog);
        }
        let schema = builder.schema();
        let batch = builder.build();
        let rows = batch.as_ref().map_or(0, |b| b.num_rows() as u64);
        self.audit(
            self.access(&identity, client, "Flight SQL GetCatalogs")
                .with_objects(catalogs)
                .with_rows(rows),
        );
        Ok(Response::new(one_batch(schema, batch)))
    }

    /// GetDbSchemas; recorded `denied` when it names a catalog the policy
    /// hides entirely.
    pub(super) async fn list_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let identity = self.authenticate(request.metadata())?;
        let client = request.remote_addr();
        let session = self.session(identity.clone(), client)?;
        let mut record = self.access(&identity, client, audit::describe_schemas(&query));
        let scope = query.catalog.clone().filter(|c| !c.is_empty());
        let mut builder = query.into_builder();
        for catalog in session.catalog_names() {
            for schema in session.schema_names(&catalog) {
                builder.append(&catalog, schema);
            }
        }
        let schema = builder.schema();
        let batch = builder.build();
        if let Some(rule) = self.hidden_catalog(&session, scope.as_deref()).await {
            record = record.denied(rule);
        }
        let rows = batch.as_ref().map_or(0, |b| b.num_rows() as u64);
        self.audit(
            record
                .with_objects(scope.into_iter().collect())
                .with_rows(rows),
        );
        Ok(Response::new(one_batch(schema, batch)))
    }

    /// GetTables; recorded `denied` when it names a catalog the policy
    /// hides entirely.
    pub(super) async fn list_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let started = Instant::now();
        let identity = self.authenticate(request.metadata())?;
        let client = request.remote_addr();
        let session = self.session(identity.clone(), client)?;
        let catalog = query.catalog.clone().filter(|c| !c.is_empty());
        let mut record = self
            .access(&identity, client, audit::describe_tables(&query))
            .with_objects(catalog.clone().into_iter().collect());
        let tables = match session.tables(catalog.as_deref()).await {
            Ok(tables) => tables,
            Err(e) => {
                self.audit(record.with_outcome(Some(&e)).with_duration(started));
                return Err(to_status(&e));
            }
        };
        let mut builder = query.into_builder();
        for t in tables {
            builder
                .append(&t.catalog, &t.schema, &t.table, t.table_type, &t.columns)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        let schema = builder.schema();
        let batch = builder.build();
        if let Some(rule) = self.hidden_catalog(&session, catalog.as_deref()).await {
            record = record.denied(rule);
        }
        let rows = batch.as_ref().map_or(0, |b| b.num_rows() as u64);
        self.audit(record.with_rows(rows).with_duration(started));
        Ok(Response::new(one_batch(schema, batch)))
    }

    /// A key listing (always empty: federated sources expose no enforced
    /// keys), recorded with the tables it names.
    pub(super) async fn key_listing(
        &self,
        command: &impl KeyListing,
        request: Request<Ticket>,
        schema: SchemaRef,
    ) -> Result<Response<DoGetStream>, Status> {
        let identity = self.authenticate(request.metadata())?;
        let client = request.remote_addr();
        let session = self.session(identity.clone(), client)?;
        let (call, tables) = command.describe(&session);
        let names: Vec<String> = tables.iter().map(ToString::to_string).collect();
        let mut record = self
            .access(
                &identity,
                client,
                format!("Flight SQL {call} {}", names.join(", ")),
            )
            .with_objects(names);
        let hidden: Vec<String> = tables
            .iter()
            .filter_map(|t| self.hidden_table(&identity, t))
            .collect();
        if !hidden.is_empty() {
            record = record.denied(hidden.join("; "));
        }
        self.audit(record);
        Ok(Response::new(empty_result(schema)))
    }

    /// A listing that needs no session (server capabilities, types),
    /// recorded as asked.
    pub(super) fn static_listing(
        &self,
        request: &Request<Ticket>,
        call: &str,
        stream: impl FnOnce() -> DoGetStream,
    ) -> Result<Response<DoGetStream>, Status> {
        let identity = self.authenticate(request.metadata())?;
        self.audit(self.access(
            &identity,
            request.remote_addr(),
            format!("Flight SQL {call}"),
        ));
        Ok(Response::new(stream()))
    }
}

pub(super) fn one_batch<E: Into<FlightError> + Send + 'static>(
    schema: SchemaRef,
    batch: Result<RecordBatch, E>,
) -> DoGetStream {
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(stream::once(async move { batch.map_err(Into::into) }))
        .map_err(Status::from);
    Box::pin(data)
}

pub(super) fn empty_result(schema: SchemaRef) -> DoGetStream {
    let batch = RecordBatch::new_empty(schema.clone());
    one_batch::<FlightError>(schema, Ok(batch))
}

//! The Flight SQL metadata commands (GetCatalogs, GetDbSchemas, GetTables,
//! GetTableTypes, GetSqlInfo, GetXdbcTypeInfo and the key listings), all
//! served by one path: [`info`] answers GetFlightInfo with the command's
//! schema and the command itself as the ticket, and [`get`] answers the
//! DoGet of that ticket with the command's one batch. Each command only
//! says what differs, by implementing [`MetadataCommand`].
//!
//! Two decisions a newcomer must know:
//! - A listing never fails for lack of privilege: it shows what the policy
//!   lets the caller see (the planner's catalog view), and what the policy
//!   hides reads as absent, exactly like something that does not exist.
//! - Every DoGet of a listing is audited, one record each: what was asked,
//!   of which catalogs or tables, how many rows it returned and how long it
//!   took; a listing the policy emptied is recorded `denied` with the rule
//!   (see [`super::audit`]), although the caller was told nothing.

mod catalogs;
mod keys;
mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use arrow_flight::sql::ProstMessageExt;
use arrow_flight::{FlightDescriptor, FlightInfo, Ticket};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::SchemaRef;
use meshgate_planner::{AuditRecord, Identity, QueryError, QueryResult};
use prost::Message;
use tonic::{Request, Response, Status};

use super::results::{one_batch, DoGetStream};
use super::FlightSqlFrontend;
use crate::status::to_status;

/// A Flight SQL metadata command.
pub(super) trait MetadataCommand: ProstMessageExt + Send + 'static {
    /// The command's name in the audit log (`GetCatalogs`).
    const NAME: &'static str;

    /// The columns of the command's result.
    fn schema(&self) -> SchemaRef;

    /// The result for the caller of `call`, as one batch of
    /// [`Self::schema`]. The call's audit record reads `Flight SQL NAME`,
    /// allowed; a command that names catalogs or tables, or whose answer
    /// the policy emptied, says so there.
    fn list(self, call: &mut Call<'_>) -> impl Future<Output = QueryResult<RecordBatch>> + Send;
}

/// One DoGet of a metadata command: who asked, and its audit record.
pub(super) struct Call<'a> {
    frontend: &'a FlightSqlFrontend,
    identity: Identity,
    client: Option<SocketAddr>,
    /// The Flight SQL session the call belongs to.
    key: Option<String>,
    /// Written when the call has its answer.
    pub(super) record: AuditRecord,
}

impl<'a> Call<'a> {
    /// A planner session for the caller, for commands that list what the
    /// caller may see.
    pub(super) fn session(&self) -> QueryResult<super::session_pool::Lent<'a>> {
        self.frontend
            .open_session(self.identity.clone(), self.client, self.key.as_deref())
    }

    pub(super) fn frontend(&self) -> &FlightSqlFrontend {
        self.frontend
    }

    pub(super) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Record the call as emptied by the policy, for `rule`.
    pub(super) fn deny(&mut self, rule: String) {
        self.record.decision = AuditRecord::DENIED.into();
        self.record.rule = rule;
    }
}

/// GetFlightInfo of a metadata command: its schema, and the command itself
/// as the ticket (a listing is computed at DoGet, for the caller then).
pub(super) fn info<C: MetadataCommand>(
    frontend: &FlightSqlFrontend,
    command: C,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    frontend.authenticate(request.metadata())?;
    let ticket = command.as_any().encode_to_vec();
    let info = super::flight_info(&command.schema(), ticket, request.into_inner())?;
    Ok(Response::new(info))
}

/// DoGet of a metadata command: its one batch, audited.
pub(super) async fn get<C: MetadataCommand>(
    frontend: &FlightSqlFrontend,
    command: C,
    request: Request<Ticket>,
) -> Result<Response<DoGetStream>, Status> {
    let started = Instant::now();
    let identity = frontend.authenticate(request.metadata())?;
    let client = request.remote_addr();
    let record = frontend.access(&identity, client, format!("Flight SQL {}", C::NAME));
    let mut call = Call {
        frontend,
        identity,
        client,
        key: super::sessions::FlightSessions::key(request.metadata()),
        record,
    };
    let schema = command.schema();
    let listed = command.list(&mut call).await;
    let record = call.record.with_duration(started);
    match listed {
        Ok(batch) => {
            frontend.audit(record.with_rows(batch.num_rows() as u64));
            Ok(Response::new(one_batch(schema, batch)))
        }
        Err(e) => {
            frontend.audit(record.with_outcome(Some(&e)));
            Err(to_status(&e))
        }
    }
}

/// A listing builder's output, or the internal error that building it is.
fn built<E: std::fmt::Display>(batch: Result<RecordBatch, E>) -> QueryResult<RecordBatch> {
    batch.map_err(|e| QueryError::Internal(format!("cannot build the listing: {e}")))
}

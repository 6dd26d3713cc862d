//! Ad-hoc statements (CommandStatementQuery): GetFlightInfo plans the SQL
//! and answers with the plan's schema and a ticket; the DoGet of that
//! ticket runs the same plan (see [`super::tickets`]). SQL over
//! `max_statement_bytes` is refused, and recorded, before it is parsed.
//!
//! A planning error (bad SQL, a table the policy hides) is returned by
//! GetFlightInfo and audited by the planner; the execution is audited by
//! the planner when DoGet runs it.

use std::sync::Arc;

use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightInfo, Ticket};
use meshgate_planner::datafusion::common::ParamValues;
use meshgate_planner::{
    AuditRecord, Identity, Prepared, QuerySession, ResultParts, SessionCommand,
};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::audit::statement_text;
use super::results::{self, DoGetStream};
use super::tickets::Redeemed;
use super::FlightSqlFrontend;
use crate::request_limits::StatementTooLong;
use crate::status::to_status;

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
            let message = format!("[{}] {e}", StatementTooLong::SQLSTATE);
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

    /// GetFlightInfo of a statement: plan it for the caller, keep the plan
    /// behind a ticket bound to them, and describe its result.
    pub(super) async fn statement_info(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let identity = self.authenticate(request.metadata())?;
        let client = request.remote_addr();
        self.check_statement(&identity, client, "GetFlightInfo", &query.query)?;
        let mut session = self.session(identity.clone(), client, request.metadata())?;
        // Planned by its shape: a text that differs from one this session
        // ran only in its literals takes that plan, with their values.
        let (prepared, params) = session
            .prepare_adhoc(&query.query)
            .await
            .map_err(|e| to_status(&e))?;
        self.apply_setting(&mut session, &prepared, request.metadata())
            .await?;
        let planned = super::sessions::Planned::of(&session);
        // A result in independent parts gets an endpoint per part.
        let parts = session
            .result_parts(&prepared, params.as_ref())
            .await
            .map_err(|e| to_status(&e))?;
        let run = Run {
            prepared,
            params,
            parts: Some(Arc::new(parts)),
        };
        let info = self
            .tickets_info(&identity, query.query, planned, run)
            .await?
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    /// The FlightInfo of `run` (planned from `sql` under `planned`): a
    /// statement ticket per part of its result, bound to `identity`, and
    /// the result's size where known.
    pub(super) async fn tickets_info(
        &self,
        identity: &Identity,
        sql: String,
        planned: super::sessions::Planned,
        run: Run,
    ) -> Result<FlightInfo, Status> {
        let schema = run.prepared.output_schema();
        let (rows, bytes) = run
            .parts
            .as_ref()
            .map_or((None, None), |p| (p.rows, p.bytes));
        let tickets = self
            .tickets
            .issue_parts(identity, sql, planned, run)
            .await
            .into_iter()
            .map(|handle| {
                TicketStatementQuery {
                    statement_handle: handle.into_bytes().into(),
                }
                .as_any()
                .encode_to_vec()
            })
            .collect();
        let size = |n: Option<u64>| n.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1);
        Ok(
            super::flight_info_parts(&schema, tickets, FlightDescriptor::default())?
                .with_total_records(size(rows))
                .with_total_bytes(size(bytes)),
        )
    }

    /// A setting (`SET`, `RESET`) takes effect when the client executes it
    /// (GetFlightInfo), as with JDBC: later calls of the session see it
    /// whether or not a DoGet follows. Its DoGet answers no rows and does
    /// not apply it again, unless it reaches a process that did not plan it
    /// (another replica), which applies it to its own session.
    pub(super) async fn apply_setting(
        &self,
        session: &mut QuerySession,
        prepared: &Prepared,
        metadata: &MetadataMap,
    ) -> Result<(), Status> {
        if is_setting(prepared) {
            session
                .execute(prepared, None)
                .await
                .map_err(|e| to_status(&e))?;
            let key = super::sessions::FlightSessions::key(metadata);
            self.sessions.remember(key.as_deref(), session);
        }
        Ok(())
    }

    /// DoGet of a statement ticket: run the plan GetFlightInfo made, or the
    /// statement planned again when that plan is no longer kept.
    pub(super) async fn statement_get(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let identity = self.authenticate(request.metadata())?;
        let (redeemed, part) = self
            .tickets
            .redeem(&ticket.statement_handle, &identity)
            .await?;
        self.cancels
            .check(&request.get_ref().ticket, &identity)
            .await?;
        let here = matches!(redeemed, Redeemed::Planned(..));
        let (mut session, run) = match redeemed {
            Redeemed::Planned(run) => (
                self.session(identity, request.remote_addr(), request.metadata())?,
                *run,
            ),
            // Planned again (here, or on another replica) under what
            // GetFlightInfo planned it under.
            Redeemed::Sql(sql, planned) => {
                let session = self
                    .open_session_in(identity, request.remote_addr(), Some(planned.state()))
                    .map_err(|e| to_status(&e))?;
                let prepared = session.prepare(&sql).await.map_err(|e| to_status(&e))?;
                (session, Run::whole(prepared))
            }
        };
        let Run {
            prepared,
            params,
            parts,
        } = run;
        let stream = match part {
            // A setting GetFlightInfo applied (and audited) in this
            // process's session is not applied again.
            _ if here && is_setting(&prepared) => results::nothing()?,
            part => {
                let kept = parts.as_deref();
                results::execute(&mut session, &prepared, params, part, kept).await?
            }
        };
        self.started(&request, &session).await;
        Ok(results::response(stream, &session))
    }
}

/// What a statement ticket runs: a plan, the values of its `$n` (a text
/// planned by its shape), and the parts its result comes in (or that it
/// comes whole), with the physical plan they were counted from.
#[derive(Debug, Clone)]
pub(super) struct Run {
    pub prepared: Prepared,
    pub params: Option<ParamValues>,
    pub parts: Option<Arc<ResultParts>>,
}

impl Run {
    /// `prepared` run whole, without values.
    pub(super) fn whole(prepared: Prepared) -> Self {
        Self {
            prepared,
            params: None,
            parts: None,
        }
    }
}

/// `SET` or `RESET`: a statement that changes the session's settings.
pub(super) fn is_setting(prepared: &Prepared) -> bool {
    matches!(
        prepared,
        Prepared::Command {
            command: SessionCommand::Set { .. } | SessionCommand::ResetAll,
            ..
        }
    )
}

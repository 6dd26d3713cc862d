//! CancelFlightInfo: a client stops the query behind a FlightInfo it was
//! given. Each endpoint's ticket is looked up among the DoGets that ran
//! it: a running statement of the caller's is stopped (as `kill_query`
//! would, through the planner's registry), and a ticket not redeemed yet
//! is marked, so its DoGet by the caller is refused as cancelled. Only the
//! caller's own queries are touched: another user's ticket is neither
//! stopped nor marked for its owner, and the answer does not say whose it
//! was. Tickets are known by a hash of their bytes, for the token lifetime.

use std::time::Duration;

use arrow_flight::{CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus};
use meshgate_planner::{Identity, QueryError};
use prost::Message;
use sha2::Digest;
use tonic::{Request, Response, Status};

use super::session_actions::{answer, ActionStream};
use super::FlightSqlFrontend;
use crate::status::to_status;

pub(super) const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

type TicketHash = [u8; 32];

/// Which DoGet ran which ticket, and tickets cancelled before their DoGet.
pub(super) struct Cancels {
    /// Ticket → (user, query id) of the DoGet that ran it.
    running: moka::future::Cache<TicketHash, (String, String)>,
    /// (ticket, user) cancelled before a DoGet.
    early: moka::future::Cache<(TicketHash, String), ()>,
}

impl Cancels {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            running: moka::future::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(100_000)
                .build(),
            early: moka::future::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(100_000)
                .build(),
        }
    }

    /// Before a DoGet of `ticket` by `identity` runs: refused if the caller
    /// cancelled it already.
    pub(super) async fn check(&self, ticket: &[u8], identity: &Identity) -> Result<(), Status> {
        if self
            .early
            .contains_key(&(hash(ticket), identity.user.clone()))
        {
            return Err(to_status(&QueryError::Cancelled));
        }
        Ok(())
    }

    /// A DoGet of `ticket` by `user` runs as query `query_id`.
    pub(super) async fn started(&self, ticket: &[u8], user: &str, query_id: Option<&str>) {
        if let Some(id) = query_id {
            self.running
                .insert(hash(ticket), (user.to_owned(), id.to_owned()))
                .await;
        }
    }
}

fn hash(ticket: &[u8]) -> TicketHash {
    sha2::Sha256::digest(ticket).into()
}

impl FlightSqlFrontend {
    /// The CancelFlightInfo action.
    pub(super) async fn cancel_flight_info(
        &self,
        request: Request<arrow_flight::Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let identity = self.authenticate(request.metadata())?;
        let record = self.access(
            &identity,
            request.remote_addr(),
            format!("Flight SQL {CANCEL_FLIGHT_INFO}"),
        );
        let asked = CancelFlightInfoRequest::decode(request.get_ref().body.clone())
            .map_err(|e| Status::invalid_argument(format!("CancelFlightInfoRequest: {e}")))?;
        let info = asked
            .info
            .ok_or_else(|| Status::invalid_argument("CancelFlightInfoRequest has no FlightInfo"))?;
        let mut status = CancelStatus::Cancelled;
        for ticket in info.endpoint.iter().filter_map(|e| e.ticket.as_ref()) {
            let key = hash(&ticket.ticket);
            match self.cancels.running.get(&key).await {
                Some((user, query_id)) if user == identity.user => {
                    // A statement that already finished cannot be stopped.
                    if self
                        .service
                        .query_registry()
                        .cancel(&query_id, &identity.user, false)
                        .is_err()
                    {
                        status = CancelStatus::NotCancellable;
                    }
                }
                // Another user's query: nothing to stop for this caller.
                Some(_) => status = CancelStatus::NotCancellable,
                None => {
                    self.cancels
                        .early
                        .insert((key, identity.user.clone()), ())
                        .await;
                }
            }
        }
        self.audit(record);
        Ok(answer(CancelFlightInfoResult {
            status: status as i32,
        }))
    }
}

//! Statement tickets: GetFlightInfo plans a statement once, and the DoGet
//! that redeems its ticket runs that plan.
//!
//! A ticket is a token signed by the listener's [`TokenSigner`] (kind
//! `ticket`, valid for the token lifetime) whose subject is the user the
//! statement was planned for and whose payload names the kept plan (a
//! random 128-bit id), the impersonator if any, and the statement's SQL.
//! Three decisions a newcomer must know:
//! - **A ticket is bound to the identity that asked for it.** Its signature
//!   covers the user and the impersonator; a DoGet by anyone else is
//!   refused with the same error whether or not the plan is still kept, so
//!   a ticket tells another caller nothing. A kept plan is also only handed
//!   to the exact identity it was planned for (groups and attributes
//!   included, since filters and masks were bound from them): a caller
//!   whose credential now asserts other groups gets the statement planned
//!   again for them.
//! - **The kept plan is an optimisation, never a requirement.** Plans live
//!   in a cache bounded in bytes (see [`super::plans`]) that forgets them
//!   after the token lifetime and evicts the least recently used first;
//!   a ticket whose plan is gone is planned again, for the caller, from the
//!   SQL it carries.
//! - A ticket never redeemed costs only its cache entry, until it expires
//!   or is evicted. It also carries the catalog and settings it was planned
//!   under, so a replica sharing the signing keys (`[[auth.signing_keys]]`)
//!   plans it again the same way; with the default per-process key a
//!   ticket does not outlive a restart, and another replica refuses it.

use std::sync::Arc;
use std::time::Duration;

use meshgate_planner::{Identity, ResultPart};
use tonic::Status;

use super::plans::{identity_bytes, params_bytes, plan_bytes};
use super::sessions::Planned;
use super::statements::Run;
use crate::auth::{TokenError, TokenSigner};

/// The token kind of statement tickets.
const TICKET: &str = "ticket";

/// What the plans of all tickets may hold at once, each counted as
/// [`super::plans::plan_bytes`], the bytes of its identity and
/// [`ENTRY_BYTES`].
const KEPT_PLANS_BYTES: u64 = 64 << 20;

/// What every kept plan costs beyond the plan (its id, identity, the
/// cache's bookkeeping); with [`KEPT_PLANS_BYTES`] it also bounds how many
/// plans are kept (at most 65,536).
const ENTRY_BYTES: u64 = 1024;

/// What a ticket carries beside its user, under its signature.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct TicketData {
    /// The kept plan's id.
    id: String,
    /// Who acted as the user, when the statement was asked by impersonation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    impersonator: Option<String>,
    /// The statement, to plan again when its plan is no longer kept.
    sql: String,
    /// What it was planned under, to plan it again the same way.
    #[serde(default)]
    planned: Planned,
    /// The part of the result this ticket fetches, when the result comes in
    /// parts (one endpoint each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    part: Option<TicketPart>,
}

/// [`ResultPart`] as a ticket carries it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct TicketPart {
    index: usize,
    count: usize,
    /// Hex: JSON numbers lose precision over 2^53 in some readers.
    fingerprint: String,
}

impl TicketPart {
    fn of(part: ResultPart) -> Self {
        Self {
            index: part.index,
            count: part.count,
            fingerprint: format!("{:016x}", part.fingerprint),
        }
    }

    fn part(&self) -> Option<ResultPart> {
        Some(ResultPart {
            index: self.index,
            count: self.count,
            fingerprint: u64::from_str_radix(&self.fingerprint, 16).ok()?,
        })
    }
}

/// What a redeemed ticket runs.
#[derive(Debug)]
pub(super) enum Redeemed {
    /// The plan GetFlightInfo made, with its values, and the physical plan
    /// its parts run when its result comes in parts.
    Planned(Box<Run>),
    /// The plan is no longer kept (or was made for other groups or
    /// attributes, or on another replica): the statement, to plan for the
    /// caller under what it was first planned under.
    Sql(String, Planned),
}

/// The statement tickets of one Flight SQL listener.
pub(super) struct Tickets {
    signer: Arc<TokenSigner>,
    ttl: Duration,
    plans: PlanStore,
}

impl Tickets {
    /// Tickets signed by `signer`, valid (and their plans kept) for `ttl`.
    pub(super) fn new(signer: Arc<TokenSigner>, ttl: Duration) -> Self {
        Self {
            signer,
            ttl,
            plans: PlanStore::new(KEPT_PLANS_BYTES, ttl),
        }
    }

    /// Keep `prepared`, planned from `sql` for `identity`, and return the
    /// ticket that redeems it.
    #[cfg(test)]
    pub(super) async fn issue(
        &self,
        identity: &Identity,
        sql: String,
        planned: Planned,
        prepared: meshgate_planner::Prepared,
    ) -> String {
        let mut tickets = self
            .issue_parts(identity, sql, planned, Run::whole(prepared))
            .await;
        tickets.pop().expect("one ticket")
    }

    /// Keep `run` and return a ticket per part of its result (one ticket
    /// for the whole result when it has no parts or a single part).
    pub(super) async fn issue_parts(
        &self,
        identity: &Identity,
        sql: String,
        planned: Planned,
        mut run: Run,
    ) -> Vec<String> {
        // A whole result keeps its counted plan for its run.
        run.parts = run.parts.filter(|p| p.count > 1 || p.whole_with_plan());
        let indexes: Vec<Option<ResultPart>> = match &run.parts {
            Some(parts) if parts.count > 1 => {
                (0..parts.count).map(|i| Some(parts.part(i))).collect()
            }
            _ => vec![None],
        };
        let id = self.plans.keep(identity, run).await;
        indexes
            .into_iter()
            .map(|part| {
                let data = TicketData {
                    id: id.clone(),
                    impersonator: identity.impersonator.clone(),
                    sql: sql.clone(),
                    planned: planned.clone(),
                    part: part.map(TicketPart::of),
                };
                let data = serde_json::to_string(&data).expect("ticket data serialises");
                self.signer
                    .issue(&identity.user, TICKET, Some(data), self.ttl)
            })
            .collect()
    }

    /// What `ticket` runs for `identity`, and which part of the result:
    /// refused unless it was issued to that identity (user and
    /// impersonator) and has not expired.
    pub(super) async fn redeem(
        &self,
        ticket: &[u8],
        identity: &Identity,
    ) -> Result<(Redeemed, Option<ResultPart>), Status> {
        let token = std::str::from_utf8(ticket)
            .map_err(|_| Status::invalid_argument("malformed ticket"))?;
        let claims = self
            .signer
            .verify_once(token, TICKET)
            .map_err(|e| match e {
                TokenError::Expired => {
                    Status::unauthenticated("ticket has expired: call GetFlightInfo again")
                }
                _ => Status::permission_denied("invalid ticket"),
            })?;
        let data: TicketData = claims
            .data
            .as_deref()
            .and_then(|data| serde_json::from_str(data).ok())
            .ok_or_else(|| Status::permission_denied("invalid ticket"))?;
        if claims.sub != identity.user || data.impersonator != identity.impersonator {
            return Err(Status::permission_denied(
                "this ticket was issued to another user",
            ));
        }
        let part = match &data.part {
            Some(part) => Some(
                part.part()
                    .ok_or_else(|| Status::permission_denied("invalid ticket"))?,
            ),
            None => None,
        };
        let redeemed = match self.plans.get(&data.id, identity).await {
            Some(run) => Redeemed::Planned(Box::new(run)),
            None => Redeemed::Sql(data.sql, data.planned),
        };
        Ok((redeemed, part))
    }
}

/// A plan kept for the identity it was made for.
struct Kept {
    identity: Identity,
    run: Run,
    bytes: u32,
}

/// Plans by id, bounded in bytes, each forgotten after a lifetime.
struct PlanStore {
    cache: moka::future::Cache<String, Arc<Kept>>,
}

impl PlanStore {
    fn new(max_bytes: u64, lifetime: Duration) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, kept: &Arc<Kept>| kept.bytes)
            // A ticket is redeemed soon after it is issued: make room by
            // forgetting the oldest, and always admit the newest.
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .time_to_live(lifetime)
            .build();
        Self { cache }
    }

    /// Keep `run` for `identity`; returns its new, unguessable id.
    async fn keep(&self, identity: &Identity, run: Run) -> String {
        let id = format!("{:032x}", rand::random::<u128>());
        let plan = plan_bytes(&run.prepared);
        // A physical plan is counted as its logical plan again, plus an
        // entry per part.
        let physical = run
            .parts
            .as_ref()
            .map_or(0, |p| plan + ENTRY_BYTES * p.count as u64);
        let values = run.params.as_ref().map_or(0, params_bytes);
        let bytes = ENTRY_BYTES + plan + identity_bytes(identity) + physical + values;
        let kept = Kept {
            identity: identity.clone(),
            run,
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
        };
        self.cache.insert(id.clone(), Arc::new(kept)).await;
        id
    }

    /// The plan `id` names, if it is kept and was made for exactly
    /// `identity`; `None` alike when it is not kept and when it is another's.
    async fn get(&self, id: &str, identity: &Identity) -> Option<Run> {
        let kept = self.cache.get(id).await?;
        (kept.identity == *identity).then(|| kept.run.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshgate_planner::{
        CatalogRegistry, Prepared, QueryService, RuntimeLimits, SessionOptions,
    };

    async fn service() -> QueryService {
        let registry = CatalogRegistry::build(
            &[],
            &meshgate_connectors::ConnectorRegistry::builtin(),
            std::env::temp_dir(),
            &RuntimeLimits::default(),
        )
        .await
        .unwrap();
        QueryService::new(Arc::new(registry), None)
    }

    async fn plan(service: &QueryService, identity: &Identity, sql: &str) -> Prepared {
        let session = service
            .open_session(identity.clone(), SessionOptions::default())
            .unwrap();
        session.prepare(sql).await.unwrap()
    }

    fn acting_as(user: &str, impersonator: &str) -> Identity {
        let mut identity = Identity::new(user);
        identity.impersonator = Some(impersonator.into());
        identity
    }

    #[tokio::test]
    async fn a_ticket_runs_its_plan_only_for_the_identity_it_was_issued_to() {
        let service = service().await;
        let alice = Identity::new("alice");
        let tickets = Tickets::new(Arc::new(TokenSigner::default()), Duration::from_secs(60));
        let sql = "SELECT 1 AS n";
        let ticket = tickets
            .issue(
                &alice,
                sql.into(),
                Planned::default(),
                plan(&service, &alice, sql).await,
            )
            .await;
        match tickets.redeem(ticket.as_bytes(), &alice).await.unwrap().0 {
            Redeemed::Planned(run) if run.parts.is_none() => assert_eq!(run.prepared.sql(), sql),
            other => panic!("the kept plan, not {other:?}"),
        }
        // Another user, and the same user acted as by someone else (or an
        // impersonated ticket redeemed by the user in person), are all
        // refused alike.
        let others = [Identity::new("mallory"), acting_as("alice", "svc")];
        for other in &others {
            let err = tickets.redeem(ticket.as_bytes(), other).await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied);
            assert_eq!(err.message(), "this ticket was issued to another user");
        }
        let impersonated = acting_as("alice", "svc");
        let theirs = tickets
            .issue(
                &impersonated,
                sql.into(),
                Planned::default(),
                plan(&service, &impersonated, sql).await,
            )
            .await;
        let err = tickets.redeem(theirs.as_bytes(), &alice).await.unwrap_err();
        assert_eq!(err.message(), "this ticket was issued to another user");
        assert!(matches!(
            tickets.redeem(theirs.as_bytes(), &impersonated).await,
            Ok((Redeemed::Planned(_), None))
        ));
        // A credential asserting other groups gets the statement planned
        // again, not a plan whose filters were bound from the old ones.
        let mut regrouped = alice.clone();
        regrouped.groups.insert("finance".into());
        match tickets
            .redeem(ticket.as_bytes(), &regrouped)
            .await
            .unwrap()
            .0
        {
            Redeemed::Sql(text, _) => assert_eq!(text, sql),
            other => panic!("the SQL to plan again, not {other:?}"),
        }
    }

    #[tokio::test]
    async fn forged_expired_and_foreign_tickets_are_refused() {
        let alice = Identity::new("alice");
        let signer = Arc::new(TokenSigner::default());
        let tickets = Tickets::new(signer.clone(), Duration::from_secs(60));
        let err = tickets.redeem(b"\xff", &alice).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let err = tickets.redeem(b"a.b", &alice).await.unwrap_err();
        assert_eq!(err.message(), "invalid ticket");
        // Signed by another process (a restart, another replica).
        let elsewhere = Tickets::new(Arc::new(TokenSigner::default()), Duration::from_secs(60));
        let foreign = elsewhere
            .issue(
                &alice,
                "SELECT 1".into(),
                Planned::default(),
                Prepared::Empty,
            )
            .await;
        let err = tickets
            .redeem(foreign.as_bytes(), &alice)
            .await
            .unwrap_err();
        assert_eq!(err.message(), "invalid ticket");
        // Another kind of token of ours is not a ticket.
        let session = signer.issue("alice", "session", None, Duration::from_secs(60));
        let err = tickets
            .redeem(session.as_bytes(), &alice)
            .await
            .unwrap_err();
        assert_eq!(err.message(), "invalid ticket");
        // An expired ticket says so.
        let expired = Tickets::new(signer, Duration::ZERO);
        let ticket = expired
            .issue(
                &alice,
                "SELECT 1".into(),
                Planned::default(),
                Prepared::Empty,
            )
            .await;
        let err = expired.redeem(ticket.as_bytes(), &alice).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[tokio::test]
    async fn a_ticket_whose_plan_was_forgotten_is_planned_again() {
        let alice = Identity::new("alice");
        let tickets = Tickets::new(Arc::new(TokenSigner::default()), Duration::from_secs(60));
        let ticket = tickets
            .issue(
                &alice,
                "SELECT 2".into(),
                Planned::default(),
                Prepared::Empty,
            )
            .await;
        tickets.plans.cache.invalidate_all();
        match tickets.redeem(ticket.as_bytes(), &alice).await.unwrap().0 {
            Redeemed::Sql(sql, _) => assert_eq!(sql, "SELECT 2"),
            other => panic!("the SQL to plan again, not {other:?}"),
        }
    }

    #[tokio::test]
    async fn kept_plans_expire_and_stay_within_their_bytes() {
        let service = service().await;
        let alice = Identity::new("alice");
        let prepared = plan(&service, &alice, "SELECT 1 AS a, 2 AS b").await;
        let each = ENTRY_BYTES + plan_bytes(&prepared) + identity_bytes(&alice);
        assert!(plan_bytes(&prepared) > "SELECT 1 AS a, 2 AS b".len() as u64);

        // Room for ten plans: a hundred kept leave at most ten, the newest
        // among them.
        let store = PlanStore::new(10 * each, Duration::from_secs(60));
        let mut ids = Vec::new();
        for _ in 0..100 {
            ids.push(store.keep(&alice, Run::whole(prepared.clone())).await);
            store.cache.run_pending_tasks().await;
        }
        assert!(
            store.cache.entry_count() <= 10,
            "{}",
            store.cache.entry_count()
        );
        assert!(store.cache.weighted_size() <= 10 * each);
        assert!(store.get(ids.last().unwrap(), &alice).await.is_some());
        assert!(store.get(&ids[0], &alice).await.is_none());

        // Plans are forgotten after their lifetime.
        let store = PlanStore::new(KEPT_PLANS_BYTES, Duration::from_millis(50));
        let id = store.keep(&alice, Run::whole(prepared.clone())).await;
        assert!(store.get(&id, &alice).await.is_some());
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(store.get(&id, &alice).await.is_none());
        store.cache.run_pending_tasks().await;
        assert_eq!(store.cache.entry_count(), 0);
    }
}

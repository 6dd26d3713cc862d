//! Planner sessions kept between the calls of one Flight SQL session, and
//! how every call gets its planner session.
//!
//! A Flight SQL client makes several calls per statement (DoPut of the
//! parameters, GetFlightInfo, DoGet), and each call needs a planner
//! session. Opening one builds a DataFusion session state, the caller's
//! catalog view and their policy guard, which costs about as much CPU as a
//! small statement's whole run. So a call borrows its planner session from
//! here and gives it back when it returns, and the next call of the same
//! Flight SQL session takes it again, as a pgwire connection keeps its
//! session from one statement to the next.
//!
//! A kept session is only lent to a call that would otherwise open the
//! very same one:
//! - the same Flight SQL session (its cookie or bearer token, see
//!   [`super::sessions`]);
//! - exactly the same identity: user, credential groups and attributes,
//!   impersonator (the session's policy guard was built for them);
//! - the same client address (the audit records it);
//! - the catalog and settings that Flight SQL session holds now (options
//!   set by SetSessionOptions since are taken at the next call).
//!
//! Anything else opens a session of its own, and a kept session another
//! identity asked for stays kept for its owner. A session holding a cursor
//! or a SQL `PREPARE`d statement is not kept (a later call would see it
//! only now and then). Catalogs reloaded since are taken before a kept
//! session is lent (`QueryService::refresh_session`), and a policy reload
//! is seen at its next statement, as on a pgwire connection. Calls of one
//! Flight SQL session made at the same time each get a session, and one is
//! kept afterwards. At most [`MAX_KEPT`] sessions are kept, each for
//! [`KEPT_FOR`] after its last call.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshgate_planner::{Identity, QueryResult, QuerySession, SessionOptions};
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::sessions::{SessionState, DEFAULT_SETTINGS};
use super::FlightSqlFrontend;
use crate::status::to_status;

/// Planner sessions kept at most (the busiest Flight SQL sessions').
pub(super) const MAX_KEPT: u64 = 64;
/// How long a planner session is kept after its last call.
pub(super) const KEPT_FOR: Duration = Duration::from_secs(60);

/// A kept planner session and what it was opened for.
struct Kept {
    identity: Identity,
    client: Option<SocketAddr>,
    /// The catalog it was opened with (`None`: the gateway's default).
    catalog: Option<String>,
    session: QuerySession,
}

/// One slot per Flight SQL session; the planner session is taken out of it.
type Slot = Arc<Mutex<Option<Kept>>>;

/// The planner sessions kept for the next call of their Flight SQL session.
pub(super) struct SessionPool {
    kept: moka::sync::Cache<String, Slot>,
}

impl SessionPool {
    pub(super) fn new() -> Self {
        Self {
            kept: moka::sync::Cache::builder()
                .max_capacity(MAX_KEPT)
                .time_to_idle(KEPT_FOR)
                .build(),
        }
    }

    /// The planner session kept for Flight SQL session `key`, if it is the
    /// one a call by `identity` from `client` in `state` would open.
    pub(super) fn take(
        &self,
        key: &str,
        identity: &Identity,
        client: Option<SocketAddr>,
        state: Option<&SessionState>,
    ) -> Option<QuerySession> {
        let slot = self.kept.remove(key)?;
        let kept = slot.lock().expect("pool slot lock").take()?;
        if kept.identity != *identity || kept.client != client {
            // Not the caller's: it stays for its owner.
            self.kept.entry(key.to_owned()).or_insert(slot_of(kept));
            return None;
        }
        let catalog = state.and_then(|s| s.catalog.as_ref());
        let settings = state.map_or(&*DEFAULT_SETTINGS, |s| &s.settings);
        // Options changed since: the session opened now is another.
        (kept.catalog.as_ref() == catalog && kept.session.has_settings(settings))
            .then_some(kept.session)
    }

    /// Keep `session`, opened with `catalog`, for the next call of Flight
    /// SQL session `key` (see the module documentation for what is not kept).
    fn keep(
        &self,
        key: String,
        client: Option<SocketAddr>,
        catalog: Option<String>,
        mut session: QuerySession,
    ) {
        if !session.holds_only_settings() {
            return;
        }
        let kept = Kept {
            identity: session.identity().clone(),
            client,
            catalog,
            session,
        };
        self.kept.insert(key, slot_of(kept));
    }

    /// Forget the planner session kept for `identity`'s Flight SQL session
    /// `key` (CloseSession).
    pub(super) fn forget(&self, key: &str, identity: &Identity) {
        if let Some(slot) = self.kept.get(key) {
            let mine = slot
                .lock()
                .expect("pool slot lock")
                .as_ref()
                .is_some_and(|kept| kept.identity == *identity);
            if mine {
                self.kept.invalidate(key);
            }
        }
    }
}

fn slot_of(kept: Kept) -> Slot {
    Arc::new(Mutex::new(Some(kept)))
}

/// A planner session lent to one call: given back to its pool when the
/// call is done with it, if it came for a Flight SQL session.
pub(super) struct Lent<'a> {
    session: Option<QuerySession>,
    back: Option<Back<'a>>,
}

/// Where a lent session goes back to.
struct Back<'a> {
    pool: &'a SessionPool,
    key: String,
    client: Option<SocketAddr>,
    catalog: Option<String>,
}

impl<'a> Lent<'a> {
    /// `session`, given back to `pool` for Flight SQL session `key` when
    /// dropped; it was opened from `client` with `catalog`.
    pub(super) fn pooled(
        session: QuerySession,
        pool: &'a SessionPool,
        key: String,
        client: Option<SocketAddr>,
        catalog: Option<String>,
    ) -> Self {
        Self {
            session: Some(session),
            back: Some(Back {
                pool,
                key,
                client,
                catalog,
            }),
        }
    }

    /// `session`, for this call only.
    pub(super) fn own(session: QuerySession) -> Self {
        Self {
            session: Some(session),
            back: None,
        }
    }
}

impl Deref for Lent<'_> {
    type Target = QuerySession;

    fn deref(&self) -> &QuerySession {
        self.session
            .as_ref()
            .expect("a lent session is there until dropped")
    }
}

impl DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut QuerySession {
        self.session
            .as_mut()
            .expect("a lent session is there until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let (Some(session), Some(back)) = (self.session.take(), self.back.take()) {
            back.pool.keep(back.key, back.client, back.catalog, session);
        }
    }
}

/// How a call gets its planner session.
impl FlightSqlFrontend {
    /// A planner session for `identity`, calling from `client`, with the
    /// options Flight SQL session `key` set (see [`super::sessions`]): the one
    /// its previous call left, when that is still the same (see
    /// [this module](self)), and kept for its next call.
    pub(super) fn open_session(
        &self,
        identity: Identity,
        client: Option<std::net::SocketAddr>,
        key: Option<&str>,
    ) -> QueryResult<Lent<'_>> {
        let Some(key) = key else {
            return self.open_session_in(identity, client, None);
        };
        let state = self.sessions.get(key, &identity.user);
        let catalog = state.as_ref().and_then(|s| s.catalog.clone());
        let session = match self.pool.take(key, &identity, client, state.as_ref()) {
            Some(mut kept) => {
                // Catalogs reloaded since its last call: take the new set.
                self.service.refresh_session(&mut kept)?;
                kept
            }
            None => self.new_session(identity, client, state)?,
        };
        Ok(Lent::pooled(
            session,
            &self.pool,
            key.to_owned(),
            client,
            catalog,
        ))
    }

    /// A planner session for `identity` with `state`'s catalog and
    /// settings, for one call.
    pub(super) fn open_session_in(
        &self,
        identity: Identity,
        client: Option<std::net::SocketAddr>,
        state: Option<SessionState>,
    ) -> QueryResult<Lent<'_>> {
        self.new_session(identity, client, state).map(Lent::own)
    }

    fn new_session(
        &self,
        identity: Identity,
        client: Option<std::net::SocketAddr>,
        state: Option<SessionState>,
    ) -> QueryResult<QuerySession> {
        let options = SessionOptions {
            protocol: "flight_sql".into(),
            client: client.map(|a| a.to_string()),
            database: state.as_ref().and_then(|s| s.catalog.clone()),
            settings: state.map(|s| s.settings),
            ..SessionOptions::default()
        };
        self.service.open_session(identity, options)
    }

    /// [`Self::open_session`] for a call with `metadata`, failing as a gRPC status.
    pub(super) fn session(
        &self,
        identity: Identity,
        client: Option<std::net::SocketAddr>,
        metadata: &MetadataMap,
    ) -> Result<Lent<'_>, Status> {
        let key = super::sessions::FlightSessions::key(metadata);
        self.open_session(identity, client, key.as_deref())
            .map_err(|e| to_status(&e))
    }
}

//! The Flight actions of sessions: SetSessionOptions, GetSessionOptions and
//! CloseSession (see [`super::sessions`] for what a session is). Each is
//! signed in like every call and audited as an access of its own; setting
//! an option never reads data, so the policy has nothing to decide until a
//! statement runs with it (a catalog the user may not read stays hidden
//! then, as on a connection to it).

use arrow_flight::{Action, ActionType};
use futures::stream;
use meshgate_planner::{AuditRecord, Identity, QueryError};
use meshgate_proto::flight_session as pb;
use prost::Message;
use tonic::{Request, Response, Status};

use super::sessions::{self, FlightSessions, SessionState, COOKIE};
use super::FlightSqlFrontend;
use crate::status::to_status;

pub(super) const SET_SESSION_OPTIONS: &str = "SetSessionOptions";
pub(super) const GET_SESSION_OPTIONS: &str = "GetSessionOptions";
pub(super) const CLOSE_SESSION: &str = "CloseSession";

/// The response stream of an action.
pub(super) type ActionStream =
    <FlightSqlFrontend as arrow_flight::flight_service_server::FlightService>::DoActionStream;

/// The session actions, for ListActions.
pub(super) fn action_types() -> Vec<ActionType> {
    [
        (SET_SESSION_OPTIONS, "Set options of this Flight SQL session (catalog, schema, time_zone, statement_timeout, any setting)"),
        (GET_SESSION_OPTIONS, "The options of this Flight SQL session"),
        (CLOSE_SESSION, "Forget this Flight SQL session and its options"),
    ]
    .into_iter()
    .map(|(name, description)| ActionType {
        r#type: name.into(),
        description: description.into(),
    })
    .collect()
}

/// One message as an action's whole answer.
pub(super) fn answer(message: impl Message) -> Response<ActionStream> {
    let result = arrow_flight::Result {
        body: message.encode_to_vec().into(),
    };
    Response::new(Box::pin(stream::iter(vec![Ok(result)])))
}

impl FlightSqlFrontend {
    /// Serve a session action (`None`: `request` is not one).
    pub(super) async fn session_action(
        &self,
        request: Request<Action>,
    ) -> Option<Result<Response<ActionStream>, Status>> {
        let kind = request.get_ref().r#type.clone();
        let result = match kind.as_str() {
            SET_SESSION_OPTIONS => self.set_session_options(request),
            GET_SESSION_OPTIONS => self.get_session_options(request),
            CLOSE_SESSION => self.close_session(request),
            _ => return None,
        };
        Some(result)
    }

    /// The caller and the session their call names, recording the access.
    fn session_call(
        &self,
        request: &Request<Action>,
        what: &str,
    ) -> Result<(Identity, Option<String>, AuditRecord), Status> {
        let identity = self.authenticate(request.metadata())?;
        let record = self.access(
            &identity,
            request.remote_addr(),
            format!("Flight SQL {what}"),
        );
        Ok((identity, FlightSessions::key(request.metadata()), record))
    }

    fn set_session_options(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (identity, key, record) = self.session_call(&request, SET_SESSION_OPTIONS)?;
        let asked = pb::SetSessionOptionsRequest::decode(request.get_ref().body.clone())
            .map_err(|e| Status::invalid_argument(format!("SetSessionOptionsRequest: {e}")))?;
        // A client without a cookie or a bearer token gets a session cookie.
        let (key, new_cookie) = match key {
            Some(key) => (key, None),
            None => {
                let id = sessions::new_session_id();
                (format!("cookie:{id}"), Some(id))
            }
        };
        let mut state = self.sessions.get(&key, &identity.user).unwrap_or_default();
        let mut errors = std::collections::HashMap::new();
        let mut names: Vec<&String> = asked.session_options.keys().collect();
        names.sort();
        for name in names {
            let value = sessions::value_text(&asked.session_options[name]);
            if let Err(error) = sessions::apply(&self.service, &identity, &mut state, name, value) {
                errors.insert(
                    name.clone(),
                    pb::set_session_options_result::Error {
                        value: error as i32,
                    },
                );
            }
        }
        let kept = self.sessions.put(&key, &identity.user, state);
        self.audit(record.with_outcome(kept.as_ref().err()));
        kept.map_err(|e| to_status(&e))?;
        let mut response = answer(pb::SetSessionOptionsResult { errors });
        if let Some(id) = new_cookie {
            let cookie = format!("{COOKIE}={id}; HttpOnly");
            if let Ok(value) = cookie.parse() {
                response.metadata_mut().insert("set-cookie", value);
            }
        }
        Ok(response)
    }

    fn get_session_options(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (identity, key, record) = self.session_call(&request, GET_SESSION_OPTIONS)?;
        let state: SessionState = key
            .and_then(|k| self.sessions.get(&k, &identity.user))
            .unwrap_or_default();
        self.audit(record);
        Ok(answer(pb::GetSessionOptionsResult {
            session_options: sessions::options_of(&self.service, &state),
        }))
    }

    fn close_session(&self, request: Request<Action>) -> Result<Response<ActionStream>, Status> {
        let (identity, key, record) = self.session_call(&request, CLOSE_SESSION)?;
        if let Some(key) = &key {
            self.pool.forget(key, &identity);
        }
        let closed = key.is_some_and(|k| self.sessions.close(&k, &identity.user));
        if !closed {
            let missing = QueryError::UndefinedObject("no Flight SQL session to close".into());
            self.audit(record.with_outcome(Some(&missing)));
            return Err(to_status(&missing));
        }
        self.audit(record);
        Ok(answer(pb::CloseSessionResult {
            status: pb::close_session_result::Status::Closed as i32,
        }))
    }
}

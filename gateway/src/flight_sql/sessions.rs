//! Flight SQL sessions: what a client sets once — the default catalog and
//! schema, the time zone, a statement timeout, any other setting — and
//! every later call of the same session runs with.
//!
//! A session is named by the `arrow_flight_session_id` cookie when the
//! client sends one (the server sets it in answer to SetSessionOptions),
//! else by the bearer token the client signed in with (one per Handshake,
//! as ADBC and JDBC connections do). Its state is bound to the user who
//! made it: a session name presented by another user is not theirs, and
//! is ignored. Options come from the Flight SQL actions SetSessionOptions,
//! GetSessionOptions and CloseSession, and from `SET` statements, which
//! persist for the session's later calls as they would on a connection.
//! State is kept for as long as tokens live after its last use, for at
//! most [`MAX_SESSIONS`] sessions.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use meshgate_planner::{QueryError, QueryResult, QueryService, QuerySession, SessionSettings};
use meshgate_proto::flight_session as pb;
use sha2::Digest;
use tonic::metadata::MetadataMap;

/// The cookie naming a session (the name Flight's protocol suggests).
pub(super) const COOKIE: &str = "arrow_flight_session_id";
/// Sessions kept at most; beyond that, a new session is refused.
pub(super) const MAX_SESSIONS: usize = 100_000;

/// One session's options.
#[derive(Debug, Clone, Default)]
pub(super) struct SessionState {
    user: String,
    /// The default catalog (`None`: the gateway's default).
    pub(super) catalog: Option<String>,
    pub(super) settings: SessionSettings,
}

/// Every live session's state, by session name.
pub(super) struct FlightSessions {
    ttl: Duration,
    states: Mutex<HashMap<String, (Instant, SessionState)>>,
}

impl FlightSessions {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            states: Mutex::default(),
        }
    }

    /// The session a call belongs to: its cookie, else its bearer token
    /// (hashed: the map never holds a token).
    pub(super) fn key(metadata: &MetadataMap) -> Option<String> {
        if let Some(id) = cookie(metadata) {
            return Some(format!("cookie:{id}"));
        }
        let value = metadata.get("authorization")?.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        let digest = sha2::Sha256::digest(token.trim().as_bytes());
        Some(format!("token:{}", hex(&digest)))
    }

    /// `user`'s state of session `key`, if it has one.
    pub(super) fn get(&self, key: &str, user: &str) -> Option<SessionState> {
        let mut states = self.states.lock().expect("sessions lock");
        let (used, state) = states.get_mut(key)?;
        if used.elapsed() > self.ttl || state.user != user {
            return None;
        }
        *used = Instant::now();
        Some(state.clone())
    }

    /// Keep `state` as `user`'s state of session `key`.
    pub(super) fn put(&self, key: &str, user: &str, mut state: SessionState) -> QueryResult<()> {
        state.user = user.to_owned();
        let mut states = self.states.lock().expect("sessions lock");
        if let Some((_, existing)) = states.get(key) {
            if existing.user != user {
                return Err(QueryError::PermissionDenied(
                    "this session belongs to another user".into(),
                ));
            }
        } else if states.len() >= MAX_SESSIONS {
            let ttl = self.ttl;
            states.retain(|_, (used, _)| used.elapsed() <= ttl);
            if states.len() >= MAX_SESSIONS {
                return Err(QueryError::TooComplex(format!(
                    "the gateway keeps {MAX_SESSIONS} Flight SQL sessions at most; close one first"
                )));
            }
        }
        states.insert(key.to_owned(), (Instant::now(), state));
        Ok(())
    }

    /// After a statement ran in `session`: keep its settings and catalog
    /// (a `SET` persists) when the call belongs to a session.
    pub(super) fn remember(&self, key: Option<&str>, session: &QuerySession) {
        let Some(key) = key else {
            return;
        };
        let user = &session.identity().user;
        let state = self.get(key, user);
        // Unchanged (most calls): nothing to keep.
        if session.has_settings(state.as_ref().map_or(&DEFAULT_SETTINGS, |s| &s.settings)) {
            return;
        }
        let mut state = state.unwrap_or_default();
        state.settings = session.settings();
        let _ = self.put(key, user, state);
    }

    /// Forget `user`'s session `key`; false when there was none.
    pub(super) fn close(&self, key: &str, user: &str) -> bool {
        let mut states = self.states.lock().expect("sessions lock");
        match states.get(key) {
            Some((_, state)) if state.user == user => {
                states.remove(key);
                true
            }
            _ => false,
        }
    }
}

/// What a statement was planned under: its session's catalog and the
/// settings that differ from the defaults. Tickets and prepared-statement
/// handles carry it, so a replica that did not plan the statement plans it
/// again the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Planned {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    catalog: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    settings: Vec<(String, String)>,
}

impl Planned {
    /// What `session` plans under now.
    pub(super) fn of(session: &QuerySession) -> Self {
        let defaults = SessionSettings::default().all();
        let settings = session
            .settings()
            .all()
            .into_iter()
            .filter(|setting| !defaults.contains(setting))
            .map(|(name, value, _)| (name, value))
            .collect();
        Self {
            catalog: Some(session.current_catalog().to_owned()),
            settings,
        }
    }

    /// The session state to plan under (a setting this gateway does not
    /// know is left at its default).
    pub(super) fn state(&self) -> SessionState {
        let mut settings = SessionSettings::default();
        for (name, value) in &self.settings {
            let _ = settings.set(name, Some(value));
        }
        SessionState {
            user: String::new(),
            catalog: self.catalog.clone(),
            settings,
        }
    }
}

/// The settings of a session that set none.
pub(super) static DEFAULT_SETTINGS: LazyLock<SessionSettings> =
    LazyLock::new(SessionSettings::default);

/// The `arrow_flight_session_id` cookie of a call.
fn cookie(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new session name: 128 random bits.
pub(super) fn new_session_id() -> String {
    hex(&rand::random::<[u8; 16]>())
}

/// Why an option was not set.
pub(super) type OptionError = pb::set_session_options_result::ErrorValue;

/// Apply option `name` = `value` (`None`: back to its default) to `state`.
/// `catalog` and `schema` name the defaults (as ADBC's current catalog and
/// schema); `time_zone` is `TimeZone`; any other name is a setting, as
/// `SET` knows it.
pub(super) fn apply(
    service: &QueryService,
    identity: &meshgate_planner::Identity,
    state: &mut SessionState,
    name: &str,
    value: Option<String>,
) -> Result<(), OptionError> {
    match name.to_ascii_lowercase().as_str() {
        "catalog" => {
            state.catalog = match value {
                Some(catalog) => Some(
                    service
                        .resolve_database(identity, Some(&catalog))
                        .map_err(|_| OptionError::InvalidValue)?,
                ),
                None => None,
            };
            Ok(())
        }
        "schema" => set(state, "search_path", value),
        "time_zone" | "timezone" => set(state, "TimeZone", value),
        _ => set(state, name, value),
    }
}

fn set(state: &mut SessionState, name: &str, value: Option<String>) -> Result<(), OptionError> {
    state
        .settings
        .set(name, value.as_deref())
        .map_err(|e| match e {
            QueryError::UndefinedObject(_) => OptionError::InvalidName,
            _ => OptionError::InvalidValue,
        })
}

/// An option's value as text (`None`: no value, i.e. reset).
pub(super) fn value_text(value: &pb::SessionOptionValue) -> Option<String> {
    use pb::session_option_value::OptionValue as V;
    Some(match value.option_value.as_ref()? {
        V::StringValue(s) => s.clone(),
        V::BoolValue(b) => if *b { "on" } else { "off" }.into(),
        V::Int64Value(n) => n.to_string(),
        V::DoubleValue(d) => d.to_string(),
        V::StringListValue(list) => list.values.join(","),
    })
}

/// The options of `state` as GetSessionOptions answers them: `catalog`,
/// `schema` and every setting.
pub(super) fn options_of(
    service: &QueryService,
    state: &SessionState,
) -> HashMap<String, pb::SessionOptionValue> {
    use pb::session_option_value::OptionValue as V;
    let text = |s: String| pb::SessionOptionValue {
        option_value: Some(V::StringValue(s)),
    };
    let mut out: HashMap<String, pb::SessionOptionValue> = state
        .settings
        .all()
        .into_iter()
        .map(|(name, value, _)| (name, text(value)))
        .collect();
    let catalog = state
        .catalog
        .clone()
        .unwrap_or_else(|| service.default_catalog().to_owned());
    out.insert("catalog".into(), text(catalog));
    let schema = state
        .settings
        .search_path()
        .into_iter()
        .find(|s| s != "$user")
        .unwrap_or_else(|| "public".into());
    out.insert("schema".into(), text(schema));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_its_cookie_else_its_token_and_belongs_to_its_user() {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", "Bearer abc".parse().unwrap());
        let by_token = FlightSessions::key(&metadata).unwrap();
        assert!(by_token.starts_with("token:") && !by_token.contains("abc"));
        metadata.insert("cookie", format!("x=1; {COOKIE}=s1").parse().unwrap());
        assert_eq!(FlightSessions::key(&metadata).unwrap(), "cookie:s1");

        let sessions = FlightSessions::new(Duration::from_secs(60));
        let mut state = SessionState::default();
        state
            .settings
            .set("TimeZone", Some("Europe/Paris"))
            .unwrap();
        sessions.put("cookie:s1", "ann", state).unwrap();
        assert!(sessions.get("cookie:s1", "bob").is_none());
        assert!(sessions
            .put("cookie:s1", "bob", SessionState::default())
            .is_err());
        let kept = sessions.get("cookie:s1", "ann").unwrap();
        assert_eq!(kept.settings.get("TimeZone").unwrap(), "Europe/Paris");
        assert!(!sessions.close("cookie:s1", "bob"));
        assert!(sessions.close("cookie:s1", "ann"));
        assert!(sessions.get("cookie:s1", "ann").is_none());
    }
}

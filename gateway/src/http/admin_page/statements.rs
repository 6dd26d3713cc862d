//! The admin page's calls that are SQL statements: the statements in
//! `system.runtime.queries`, `CALL system.kill_query`, and a search of
//! `system.audit.queries`.
//!
//! Each runs in a planner session of the signed-in admin (protocol
//! `admin_http`), so the planner decides, audits and registers it exactly
//! as over pgwire or Flight SQL. User input never becomes SQL text: a query
//! id must be hex digits before it is quoted, and audit filters are bound
//! as `$n` parameters. Results are answered as `{columns, rows}` with every
//! value rendered as text (or null), which is all the page shows.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use futures::TryStreamExt;
use meshgate_planner::datafusion::arrow::array::{Array, RecordBatch};
use meshgate_planner::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use meshgate_planner::datafusion::common::{ParamValues, ScalarValue};
use meshgate_planner::{QueryError, QueryOutput, SessionOptions};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_body, Admin, PROTOCOL};
use crate::http::json_error::JsonError;
use crate::http::sign_in::SignedIn;
use crate::http::HttpState;

/// Rows an answer holds at most.
const MAX_ROWS: usize = 1000;

/// Run `sql` with `params` bound as `$1..` in a session of `caller`, and
/// collect its rows as text.
async fn run(
    state: &HttpState,
    caller: &SignedIn,
    sql: &str,
    params: Vec<ScalarValue>,
) -> Result<Value, QueryError> {
    let options = SessionOptions {
        protocol: PROTOCOL.into(),
        client: caller.client.map(|a| a.to_string()),
        ..SessionOptions::default()
    };
    let mut session = state
        .service
        .open_session(caller.identity.clone(), options)?;
    let prepared = session.prepare(sql).await?;
    let params = (!params.is_empty())
        .then(|| ParamValues::List(params.into_iter().map(Into::into).collect()));
    let (schema, batches) = match session.execute(&prepared, params).await? {
        QueryOutput::Rows(rows) => {
            let schema = rows.schema();
            let batches: Vec<RecordBatch> = rows.try_collect().await.map_err(QueryError::from)?;
            (schema, batches)
        }
        _ => return Ok(json!({ "columns": [], "rows": [] })),
    };
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    'batches: for batch in &batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                QueryError::from(meshgate_planner::datafusion::error::DataFusionError::from(
                    e,
                ))
            })?;
        for row in 0..batch.num_rows() {
            if rows.len() == MAX_ROWS {
                break 'batches;
            }
            let cells: Vec<Value> = batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(column, format)| {
                    if column.is_null(row) {
                        Value::Null
                    } else {
                        Value::String(format.value(row).to_string())
                    }
                })
                .collect();
            rows.push(Value::Array(cells));
        }
    }
    Ok(json!({ "columns": columns, "rows": rows }))
}

/// `GET /admin/api/queries`: running statements first, then the last
/// finished ones, as `system.runtime.queries` shows them to an admin.
pub(super) async fn queries(
    State(state): State<HttpState>,
    Admin(caller): Admin,
) -> Result<Json<Value>, JsonError> {
    let sql = format!(
        "SELECT id, \"user\", protocol, client_address, state, sql, start, round(elapsed_ms, 1) AS elapsed_ms, rows \
         FROM system.runtime.queries \
         ORDER BY CASE WHEN state IN ('running', 'queued') THEN 0 ELSE 1 END, start DESC \
         LIMIT {MAX_ROWS}"
    );
    Ok(Json(run(&state, &caller, &sql, vec![]).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Kill {
    id: String,
}

/// Whether `id` can be a query id (hex digits only, so it quotes safely).
fn is_query_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `POST /admin/api/queries/kill` `{id}`: `CALL system.kill_query('<id>')`.
pub(super) async fn kill(
    State(state): State<HttpState>,
    Admin(caller): Admin,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, JsonError> {
    let Kill { id } = json_body(body)?;
    if !is_query_id(&id) {
        return Err(JsonError::bad_request(
            "a query id is 1 to 64 hex digits (as system.runtime.queries shows it)",
        ));
    }
    run(
        &state,
        &caller,
        &format!("CALL system.kill_query('{id}')"),
        vec![],
    )
    .await?;
    Ok(Json(json!({ "killed": id })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditSearch {
    #[serde(default)]
    user: String,
    /// Part of a table name the record concerns.
    #[serde(default)]
    table: String,
    /// `allowed`, `denied` or `error`; empty for any.
    #[serde(default)]
    decision: String,
    /// RFC 3339 bounds of the record time (inclusive); empty for none.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    limit: Option<usize>,
}

/// An RFC 3339 time as audit records write theirs (UTC, milliseconds), so
/// the text comparison is a time comparison.
fn record_time(name: &str, text: &str) -> Result<String, JsonError> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .map_err(|e| {
            JsonError::bad_request(format!(
                "`{name}` is not an RFC 3339 time (like 2026-01-31T12:00:00Z): {e}"
            ))
        })
}

impl AuditSearch {
    /// The query, and the values of its `$n` parameters.
    fn sql(&self) -> Result<(String, Vec<ScalarValue>), JsonError> {
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        let mut bind = |condition: &str, value: String| {
            params.push(ScalarValue::Utf8(Some(value)));
            conditions.push(condition.replace("$n", &format!("${}", params.len())));
        };
        if !self.user.trim().is_empty() {
            bind("\"user\" = $n", self.user.trim().to_owned());
        }
        if !self.table.trim().is_empty() {
            bind(
                "strpos(array_to_string(objects, ','), CAST($n AS VARCHAR)) > 0",
                self.table.trim().to_owned(),
            );
        }
        match self.decision.trim() {
            "" => {}
            d @ ("allowed" | "denied" | "error") => bind("decision = $n", d.to_owned()),
            other => {
                return Err(JsonError::bad_request(format!(
                    "decision `{other}` is not one of allowed, denied, error"
                )))
            }
        }
        if !self.from.trim().is_empty() {
            bind("\"time\" >= $n", record_time("from", &self.from)?);
        }
        if !self.to.trim().is_empty() {
            bind("\"time\" <= $n", record_time("to", &self.to)?);
        }
        let limit = self.limit.unwrap_or(200).clamp(1, MAX_ROWS);
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT \"time\", \"user\", client, protocol, decision, objects, sql, rule, error, query_id \
             FROM system.audit.queries{filter} ORDER BY \"time\" DESC LIMIT {limit}"
        );
        Ok((sql, params))
    }
}

/// `POST /admin/api/audit` `{user, table, decision, from, to, limit}`: the
/// newest matching records of `system.audit.queries`.
pub(super) async fn audit(
    State(state): State<HttpState>,
    Admin(caller): Admin,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, JsonError> {
    let search: AuditSearch = json_body(body)?;
    let (sql, params) = search.sql()?;
    let kept = state
        .service
        .audit_log()
        .is_some_and(|log| log.path().is_some());
    if !kept {
        return Err(JsonError::new(
            StatusCode::NOT_FOUND,
            "no audit log file is configured ([audit] file = ...), so there is nothing to search",
        ));
    }
    Ok(Json(run(&state, &caller, &sql, params).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_ids_are_hex_only() {
        assert!(is_query_id("019a2b3c4d5e6f7a8b9c"));
        for bad in ["", "x1", "1') OR ('1", &"a".repeat(65)] {
            assert!(!is_query_id(bad), "{bad}");
        }
    }

    #[test]
    fn audit_filters_are_parameters_never_sql_text() {
        let search = AuditSearch {
            user: "o'brien".into(),
            table: "people".into(),
            decision: "denied".into(),
            from: "2026-01-31T13:00:00+01:00".into(),
            ..AuditSearch::default()
        };
        let (sql, params) = search.sql().unwrap();
        assert!(!sql.contains("o'brien") && !sql.contains("people"), "{sql}");
        assert!(sql.contains("\"time\" >= $4"), "{sql}");
        assert_eq!(
            params[3],
            ScalarValue::Utf8(Some("2026-01-31T12:00:00.000Z".into()))
        );
        let bad = AuditSearch {
            decision: "maybe".into(),
            ..AuditSearch::default()
        };
        assert_eq!(bad.sql().unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}

//! SQL over HTTP: `POST /v1/sql` on the HTTP listener.
//!
//! The body is the SQL as `text/plain`, or JSON `{"sql": "...", "params":
//! [...]}` with `$1..` bound from the JSON values (numbers, strings,
//! booleans, null). The caller signs in as on every data endpoint
//! ([`SignedIn`]) and the statement runs in a planner session of theirs
//! (protocol `http`): the same policy, read-only rule, limits, registry and
//! audit as pgwire and Flight SQL.
//!
//! The result streams as it is produced, in the format the `Accept` header
//! asks for: an Arrow IPC stream (`application/vnd.apache.arrow.stream`,
//! the default; `pyarrow.ipc.open_stream` and polars read it from the
//! response), NDJSON (`application/x-ndjson`) or CSV (`text/csv`, with a
//! header line). The statement's query id is in `x-meshgate-query-id`. An
//! error before the first row is JSON `{"error", "sqlstate"}` with an HTTP
//! status; an error while streaming ends the body early. A client that goes
//! away drops the stream, which stops the query.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::SchemaRef;
use meshgate_planner::datafusion::arrow::error::ArrowError;
use meshgate_planner::datafusion::arrow::ipc::writer::StreamWriter;
use meshgate_planner::datafusion::common::{ParamValues, ScalarValue};
use meshgate_planner::{QueryError, QueryOutput, SessionOptions};
use serde::Deserialize;
use serde_json::{json, Value};

use super::json_error::JsonError;
use super::sign_in::SignedIn;
use super::HttpState;

/// The protocol HTTP statements are recorded under.
const PROTOCOL: &str = "http";
/// The response header naming the statement's query id.
const QUERY_ID_HEADER: &str = "x-meshgate-query-id";
const ARROW: &str = "application/vnd.apache.arrow.stream";
const NDJSON: &str = "application/x-ndjson";
const CSV: &str = "text/csv";

/// A statement and its `$1..` parameters.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SqlRequest {
    sql: String,
    /// Numbers, strings, booleans or null, bound to `$1`, `$2`, ...
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    params: Vec<Value>,
}

/// A statement that failed before its first row.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct SqlError {
    error: String,
    /// The PostgreSQL SQLSTATE.
    sqlstate: String,
}

/// The result formats, by what `Accept` names first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Arrow,
    NdJson,
    Csv,
}

impl Format {
    fn from_accept(headers: &HeaderMap) -> Result<Self, JsonError> {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Ok(Self::Arrow);
        };
        for kind in accept.split(',') {
            let kind = kind.split(';').next().unwrap_or("").trim();
            match kind {
                ARROW | "*/*" | "application/*" => return Ok(Self::Arrow),
                NDJSON | "application/jsonl" | "application/json" => return Ok(Self::NdJson),
                CSV | "text/*" => return Ok(Self::Csv),
                _ => {}
            }
        }
        Err(JsonError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("cannot answer as {accept}: ask for {ARROW}, {NDJSON} or {CSV}"),
        ))
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Arrow => ARROW,
            Self::NdJson => NDJSON,
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// A JSON parameter as the SQL value it binds.
fn param(value: &Value) -> Result<ScalarValue, JsonError> {
    Ok(match value {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int64(Some(i)),
            None => ScalarValue::Float64(n.as_f64()),
        },
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        other => {
            return Err(JsonError::bad_request(format!(
                "parameter {other} is not a number, string, boolean or null"
            )))
        }
    })
}

/// The statement and its parameters, from a text or JSON body.
fn statement(headers: &HeaderMap, body: Bytes) -> Result<(String, Vec<ScalarValue>), JsonError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !json {
        let sql = String::from_utf8(body.to_vec())
            .map_err(|_| JsonError::bad_request("the SQL is not UTF-8"))?;
        return Ok((sql, vec![]));
    }
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        JsonError::bad_request(format!("the body is not {{\"sql\", \"params\"}}: {e}"))
    })?;
    let params = request.params.iter().map(param).collect::<Result<_, _>>()?;
    Ok((request.sql, params))
}

/// An error as JSON with its SQLSTATE.
fn query_error(err: &QueryError) -> Response {
    let status = JsonError::from(err).status;
    let body = json!({ "error": err.to_string(), "sqlstate": err.sqlstate() });
    (status, axum::Json(body)).into_response()
}

/// Encodes batches in one of the [`Format`]s, a chunk of bytes at a time.
enum Encoder {
    /// Columns as Flight SQL sends them (`flight_sql::as_sent`).
    Arrow(Box<StreamWriter<Vec<u8>>>, SchemaRef),
    NdJson,
    Csv {
        header: bool,
    },
}

impl Encoder {
    /// The encoder, and what it writes before the first batch.
    fn new(format: Format, schema: &SchemaRef) -> Result<(Self, Vec<u8>), ArrowError> {
        Ok(match format {
            Format::Arrow => {
                let sent = std::sync::Arc::new(crate::flight_sql::as_sent(schema));
                let mut writer = StreamWriter::try_new(Vec::new(), &sent)?;
                let head = std::mem::take(writer.get_mut());
                (Self::Arrow(Box::new(writer), sent), head)
            }
            Format::NdJson => (Self::NdJson, vec![]),
            Format::Csv => (Self::Csv { header: true }, vec![]),
        })
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        use meshgate_planner::datafusion::arrow::{csv, json};
        match self {
            Self::Arrow(writer, sent) => {
                writer.write(&crate::flight_sql::as_sent_batch(batch, sent)?)?;
                Ok(std::mem::take(writer.get_mut()))
            }
            Self::NdJson => {
                let mut writer = json::LineDelimitedWriter::new(Vec::new());
                writer.write(batch)?;
                writer.finish()?;
                Ok(writer.into_inner())
            }
            Self::Csv { header } => {
                let mut writer = csv::WriterBuilder::new()
                    .with_header(std::mem::take(header))
                    .build(Vec::new());
                writer.write(batch)?;
                Ok(writer.into_inner())
            }
        }
    }

    fn finish(&mut self) -> Result<Vec<u8>, ArrowError> {
        match self {
            Self::Arrow(writer, _) => {
                writer.finish()?;
                Ok(std::mem::take(writer.get_mut()))
            }
            Self::NdJson | Self::Csv { .. } => Ok(vec![]),
        }
    }
}

/// The encoded body of a row stream: the head, a chunk per batch, the end.
fn encoded(
    rows: meshgate_planner::datafusion::execution::SendableRecordBatchStream,
    format: Format,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>>, ArrowError> {
    let (encoder, head) = Encoder::new(format, &rows.schema())?;
    let io = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let state = (rows, encoder, Some(head), false);
    Ok(futures::stream::unfold(
        state,
        move |(mut rows, mut encoder, head, done)| async move {
            if done {
                return None;
            }
            if let Some(head) = head.filter(|h| !h.is_empty()) {
                return Some((Ok(Bytes::from(head)), (rows, encoder, None, false)));
            }
            match rows.next().await {
                Some(Ok(batch)) => {
                    let chunk = encoder.batch(&batch).map(Bytes::from).map_err(|e| io(&e));
                    Some((chunk, (rows, encoder, None, false)))
                }
                // The status line is sent: an error ends the body early, and
                // the client sees a truncated stream (Arrow: no end marker).
                Some(Err(e)) => Some((Err(io(&QueryError::from(e))), (rows, encoder, None, true))),
                None => {
                    let chunk = encoder.finish().map(Bytes::from).map_err(|e| io(&e));
                    Some((chunk, (rows, encoder, None, true)))
                }
            }
        },
    ))
}

/// Run one SQL statement; the rows stream back as Arrow IPC, NDJSON or CSV.
#[utoipa::path(
    post,
    path = "/v1/sql",
    tag = "sql",
    request_body(
        content(
            (String = "text/plain"),
            (SqlRequest = "application/json"),
        ),
        description = "The SQL, or JSON with the SQL and its parameters"
    ),
    responses(
        (status = 200, description = "The rows, streamed in the format `Accept` asks for; the query id in `x-meshgate-query-id`",
            content(
                (Vec<u8> = "application/vnd.apache.arrow.stream"),
                (String = "application/x-ndjson"),
                (String = "text/csv"),
            )),
        (status = 400, description = "Bad SQL or parameters", body = SqlError),
        (status = 401, description = "Not signed in", body = SqlError),
        (status = 404, description = "A table that does not exist (or the caller may not see)", body = SqlError),
        (status = 406, description = "No format the `Accept` header allows", body = SqlError),
        (status = 409, description = "Not allowed in a read-only gateway, or cancelled", body = SqlError),
        (status = 429, description = "A limit of the gateway (memory, concurrency)", body = SqlError),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub(super) async fn run(
    State(state): State<HttpState>,
    caller: SignedIn,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = async {
        let body = body.map_err(|e| JsonError::bad_request(e.body_text()))?;
        let format = Format::from_accept(&headers)?;
        let (sql, params) = statement(&headers, body)?;
        Ok::<_, JsonError>((format, sql, params))
    };
    let (format, sql, params) = match answer.await {
        Ok(request) => request,
        Err(e) => return e.into_response(),
    };
    let options = SessionOptions {
        protocol: PROTOCOL.into(),
        client: caller.client.map(|a| a.to_string()),
        ..SessionOptions::default()
    };
    let mut session = match state.service.open_session(caller.identity, options) {
        Ok(session) => session,
        Err(e) => return query_error(&e),
    };
    let output = async {
        let prepared = session.prepare(&sql).await?;
        let params = (!params.is_empty())
            .then(|| ParamValues::List(params.into_iter().map(Into::into).collect()));
        session.execute(&prepared, params).await
    };
    let output = output.await;
    let query_id = session
        .last_query_id()
        .and_then(|id| HeaderValue::from_str(id).ok());
    let mut response = match output {
        Err(e) => query_error(&e),
        Ok(QueryOutput::Rows(rows)) => match encoded(rows, format) {
            Ok(body) => (
                [(header::CONTENT_TYPE, format.content_type())],
                Body::from_stream(body),
            )
                .into_response(),
            Err(e) => query_error(&QueryError::Internal(e.to_string())),
        },
        Ok(QueryOutput::Command { tag }) => axum::Json(json!({ "command": tag })).into_response(),
        Ok(_) => axum::Json(json!({ "command": "" })).into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(id) = query_id {
        headers.insert(QUERY_ID_HEADER, id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_format() {
        let mut headers = HeaderMap::new();
        assert_eq!(Format::from_accept(&headers).unwrap(), Format::Arrow);
        headers.insert(header::ACCEPT, "text/csv, */*;q=0.1".parse().unwrap());
        assert_eq!(Format::from_accept(&headers).unwrap(), Format::Csv);
        headers.insert(header::ACCEPT, "application/x-ndjson".parse().unwrap());
        assert_eq!(Format::from_accept(&headers).unwrap(), Format::NdJson);
        headers.insert(header::ACCEPT, "image/png".parse().unwrap());
        assert_eq!(
            Format::from_accept(&headers).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
    }

    #[test]
    fn json_parameters_bind_as_sql_values() {
        assert_eq!(param(&json!(3)).unwrap(), ScalarValue::Int64(Some(3)));
        assert_eq!(
            param(&json!("CA")).unwrap(),
            ScalarValue::Utf8(Some("CA".into()))
        );
        assert_eq!(param(&json!(null)).unwrap(), ScalarValue::Null);
        assert!(param(&json!([1])).is_err());
    }
}

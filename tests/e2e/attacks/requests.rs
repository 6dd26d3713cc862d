//! Attacks on what one client's requests make the server hold (F9): huge
//! statement texts, many prepared statements, huge parameter uploads. Each
//! is refused with a clear status before the bytes are kept (the limits are
//! configured small so the attacks stay quick), and the server keeps
//! serving everyone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::{FlightSqlServiceClient, PreparedStatement};
use arrow_flight::sql::{
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandPreparedStatementQuery, ProstMessageExt,
};
use arrow_flight::{Action, FlightDescriptor};
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::transport::Channel;

use super::*;

/// Limits scaled down from the defaults (1 MiB statements, 16 MiB of
/// parameters, 32 MiB of prepared statements per user).
const SMALL_LIMITS: &str = "\n[limits]\nmax_statement_bytes = \"64KiB\"\n\
    max_parameter_bytes = \"64KiB\"\nprepared_statement_memory = \"1MiB\"\n\
    prepared_statement_memory_per_user = \"256KiB\"\n";

async fn small_limits_mesh() -> AttackMesh {
    attack_mesh_with(ATTACK_POLICY, |config| config.push_str(SMALL_LIMITS)).await
}

/// Execute a prepared statement and collect the batches of its endpoint.
async fn run_prepared(
    client: &mut FlightSqlServiceClient<Channel>,
    prepared: &mut PreparedStatement<Channel>,
) -> Vec<RecordBatch> {
    let info = prepared.execute().await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    client
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// The gRPC status behind a Flight client error.
fn status(err: FlightError) -> tonic::Status {
    match err {
        FlightError::Tonic(status) => *status,
        other => panic!("expected a gRPC status, got {other}"),
    }
}

/// A statement of about `bytes` bytes that selects `n`.
fn padded_select(n: usize, bytes: usize) -> String {
    format!("SELECT {n} AS n /* {} */", "x".repeat(bytes))
}

/// The result of a query run over Flight SQL, as a printed table.
async fn flight_value(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    sql: &str,
) -> String {
    let batches = flight_query(client, sql).await.expect(sql);
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn f9_statement_text_over_the_limit_is_refused_before_it_is_kept() {
    let mesh = small_limits_mesh().await;
    let big = padded_select(1, 100 << 10);
    let mut client = flight(&mesh, "intruder").await;
    // The attack of the report, scaled down: 25 prepares of an oversized
    // statement. Each is refused; nothing is kept.
    for _ in 0..25 {
        let refused = status(client.prepare(big.clone(), None).await.unwrap_err());
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        assert!(refused.message().starts_with("[54000]"), "{refused:?}");
        assert!(
            refused.message().contains("limits.max_statement_bytes"),
            "{refused:?}"
        );
    }
    // Statements sent for GetFlightInfo are held to the same limit.
    let refused = status(client.execute(big.clone(), None).await.unwrap_err());
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(refused.message().contains("limits.max_statement_bytes"));
    // A message far over the limit is refused by the transport itself,
    // before it is read into memory.
    let huge = padded_select(1, 4 << 20);
    let refused = status(client.prepare(huge, None).await.unwrap_err());
    assert!(
        matches!(
            refused.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{refused:?}"
    );
    // pgwire holds the same limit for simple and extended queries (54000),
    // and the connection carries on.
    let pg = mesh.pg("intruder").await;
    assert_eq!(sqlstate(&pg, &big).await, "54000");
    let err = pg.prepare(&big).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("54000"), "{err:?}");
    let rows = simple_rows(&pg, "SELECT 2").await.unwrap();
    assert_eq!(rows, vec![vec![Some("2".to_owned())]]);
    // A statement under the limit still runs, over both protocols.
    let fine = padded_select(3, 30 << 10);
    assert!(flight_value(&mut client, &fine).await.contains('3'));
    assert_eq!(
        simple_rows(&pg, &fine).await.unwrap(),
        vec![vec![Some("3".to_owned())]]
    );
    mesh.assert_serving().await;
}

#[tokio::test]
async fn f9_prepared_statements_are_bounded_in_bytes_per_user() {
    let mesh = small_limits_mesh().await;
    let mut intruder = flight(&mesh, "intruder").await;
    // 60 KiB statements, each under the statement limit: at most four fit
    // in a 256 KiB budget.
    let mut kept = Vec::new();
    let refused = loop {
        match intruder
            .prepare(padded_select(kept.len(), 60 << 10), None)
            .await
        {
            Ok(prepared) => kept.push(prepared),
            Err(e) => break status(e),
        }
        assert!(
            kept.len() <= 4,
            "more prepared statements kept than the budget holds"
        );
    };
    assert_eq!(kept.len(), 4);
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(refused.message().starts_with("[53400]"), "{refused:?}");
    assert!(
        refused
            .message()
            .contains("limits.prepared_statement_memory_per_user"),
        "{refused:?}"
    );
    // Another user has a budget of their own.
    let mut analyst = flight(&mesh, "analyst").await;
    let mut theirs = analyst
        .prepare(padded_select(7, 60 << 10), None)
        .await
        .expect("another user may still prepare");
    let batches = run_prepared(&mut analyst, &mut theirs).await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
    // Closing a statement gives its bytes back.
    kept.pop().unwrap().close().await.unwrap();
    let mut again = intruder
        .prepare(padded_select(9, 60 << 10), None)
        .await
        .expect("room again after close");
    let info = again.execute().await.unwrap();
    assert!(!info.endpoint.is_empty());
    mesh.assert_serving().await;
}

/// Create a prepared statement by hand, returning its handle.
async fn create_prepared(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    sql: &str,
) -> prost::bytes::Bytes {
    let request = ActionCreatePreparedStatementRequest {
        query: sql.to_owned(),
        transaction_id: None,
    };
    let action = Action {
        r#type: "CreatePreparedStatement".into(),
        body: request.as_any().encode_to_vec().into(),
    };
    let mut results = client.do_action(action).await.unwrap();
    let result = results.message().await.unwrap().unwrap();
    let any = Any::decode(&*result.body).unwrap();
    let created: ActionCreatePreparedStatementResult = any.unpack().unwrap().unwrap();
    created.prepared_statement_handle
}

#[tokio::test]
async fn f9_parameter_uploads_over_the_limit_are_refused_while_they_stream() {
    let mesh = small_limits_mesh().await;
    let mut client = flight(&mesh, "intruder").await;
    let handle = create_prepared(&mut client, "SELECT length($1) AS n").await;
    // The attack of the report, scaled down: up to 1,000 parameter batches
    // of 32 KiB (32 MiB in all) for a 64 KiB limit. The client counts what
    // the server made it produce.
    const BATCHES: usize = 1000;
    let value = "p".repeat(32 << 10);
    let batch =
        RecordBatch::try_from_iter([("$1", Arc::new(StringArray::from(vec![value])) as ArrayRef)])
            .unwrap();
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
    let batches = futures::stream::iter(0..BATCHES).map(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(batch.clone())
    });
    let command = CommandPreparedStatementQuery {
        prepared_statement_handle: handle.clone(),
    };
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_cmd(
            command.as_any().encode_to_vec(),
        )))
        .build(batches)
        .map(|d| d.expect("encode parameters"));
    let outcome = match client.do_put(data).await {
        Err(e) => Err(status(e)),
        Ok(mut results) => results.message().await.map(|_| ()),
    };
    let refused = outcome.expect_err("an upload over the limit is refused");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("limits.max_parameter_bytes"),
        "{refused:?}"
    );
    // The server stopped reading long before the end: it did not buffer
    // the upload to find out how large it was.
    let sent = produced.load(Ordering::SeqCst);
    assert!(sent < BATCHES, "the client produced all {sent} batches");
    // The statement, the connection and the server carry on: one small
    // row of parameters binds and runs.
    let mut prepared = client
        .prepare("SELECT $1 + 1 AS n".to_owned(), None)
        .await
        .unwrap();
    let params =
        RecordBatch::try_from_iter([("$1", Arc::new(Int64Array::from(vec![41])) as ArrayRef)])
            .unwrap();
    prepared.set_parameters(params).unwrap();
    let batches = run_prepared(&mut client, &mut prepared).await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(text.contains("42"), "{text}");
    mesh.assert_serving().await;
}

#[tokio::test]
async fn request_limits_in_the_config_are_checked_with_file_key_and_problem() {
    let err = config_error("[limits]\nmax_parameter_bytes = \"many\"\n");
    assert!(err.contains("meshgate.toml"), "{err}");
    assert!(err.contains("limits.max_parameter_bytes"), "{err}");
    assert!(err.contains("many"), "{err}");
}

//! Flight SQL as JDBC and ADBC clients use it: `?` placeholders, session
//! options that persist between calls (SetSessionOptions, a `SET`
//! statement) and end with CloseSession, and CancelFlightInfo — through
//! the Rust Flight SQL client and raw actions.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus};
use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;
use meshgate_proto::flight_session as pb;
use meshgate_tests::{extra_user, TestMesh};
use prost::Message;
use tonic::transport::Channel;
use tonic::Code;

use crate::attacks::password;

type Client = FlightSqlServiceClient<Channel>;

async fn client(mesh: &TestMesh, user: &str) -> Client {
    let channel = Channel::from_shared(format!("http://{}", mesh.flight_sql_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake(user, &password(user)).await.unwrap();
    client
}

/// The gRPC code of a client error.
fn code(e: FlightError) -> Code {
    match e {
        FlightError::Tonic(s) => s.code(),
        _ => Code::Unknown,
    }
}

/// Run `sql` and collect its rows, or the gRPC code of the failure.
async fn query(client: &mut Client, sql: &str) -> Result<Vec<RecordBatch>, Code> {
    let info = client.execute(sql.to_owned(), None).await.map_err(code)?;
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let stream = client
            .do_get(endpoint.ticket.unwrap())
            .await
            .map_err(code)?;
        batches.extend(stream.try_collect::<Vec<_>>().await.map_err(code)?);
    }
    Ok(batches)
}

fn first_text(batches: &[RecordBatch]) -> String {
    let column = batches[0].column(0);
    datafusion::arrow::compute::cast(column, &DataType::Utf8)
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_owned()
}

async fn action<M: Message + Default>(
    client: &mut Client,
    kind: &str,
    body: impl Message,
) -> Result<M, Code> {
    let action = Action {
        r#type: kind.into(),
        body: body.encode_to_vec().into(),
    };
    let mut results = client.do_action(action).await.map_err(code)?;
    let result = results.message().await.map_err(|s| s.code())?.unwrap();
    Ok(M::decode(result.body).unwrap())
}

fn text(value: &str) -> pb::SessionOptionValue {
    pb::SessionOptionValue {
        option_value: Some(pb::session_option_value::OptionValue::StringValue(
            value.into(),
        )),
    }
}

async fn options(client: &mut Client) -> HashMap<String, String> {
    let got: pb::GetSessionOptionsResult =
        action(client, "GetSessionOptions", pb::GetSessionOptionsRequest {})
            .await
            .unwrap();
    got.session_options
        .into_iter()
        .filter_map(|(k, v)| match v.option_value {
            Some(pb::session_option_value::OptionValue::StringValue(s)) => Some((k, s)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn question_mark_placeholders_bind_in_text_order() {
    let mesh = TestMesh::start().await;
    let mut client = client(&mesh, "analyst").await;
    let mut prepared = client
        .prepare(
            "SELECT claim_id, status FROM claims.public.claims WHERE claim_id = ? AND status <> ?"
                .into(),
            None,
        )
        .await
        .unwrap();
    let params = prepared.parameter_schema().unwrap().clone();
    assert_eq!(params.fields().len(), 2, "{params:?}");
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("$1", DataType::Int64, false),
            Field::new("$2", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![500000])),
            Arc::new(StringArray::from(vec!["no such status"])),
        ],
    )
    .unwrap();
    prepared.set_parameters(batch).unwrap();
    let info = prepared.execute().await.unwrap();
    let stream = client
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    // Mixing the two kinds is refused with a clear error; the server serves on.
    assert_eq!(
        query(&mut client, "SELECT ? + $1").await.unwrap_err(),
        Code::InvalidArgument
    );
    assert_eq!(
        first_text(&query(&mut client, "SELECT 1").await.unwrap()),
        "1"
    );
}

#[tokio::test]
async fn session_options_persist_until_the_session_closes() {
    let mesh = TestMesh::start().await;
    let mut client = client(&mesh, "analyst").await;
    // By default unqualified names resolve in the default catalog (members).
    assert!(query(&mut client, "SELECT count(*) FROM claims")
        .await
        .is_err());

    let set: pb::SetSessionOptionsResult = action(
        &mut client,
        "SetSessionOptions",
        pb::SetSessionOptionsRequest {
            session_options: [
                ("catalog", text("claims")),
                ("schema", text("public")),
                ("time_zone", text("America/New_York")),
                ("no_such_option", text("x")),
                ("statement_timeout", text("not a duration")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        },
    )
    .await
    .unwrap();
    let invalid = |name: &str| set.errors.get(name).map(|e| e.value);
    assert_eq!(
        invalid("no_such_option"),
        Some(pb::set_session_options_result::ErrorValue::InvalidName as i32)
    );
    assert_eq!(
        invalid("statement_timeout"),
        Some(pb::set_session_options_result::ErrorValue::InvalidValue as i32)
    );
    assert_eq!(invalid("catalog"), None);

    // Every later call of the session runs with them.
    let counted = query(&mut client, "SELECT count(*) FROM claims")
        .await
        .unwrap();
    assert!(first_text(&counted).parse::<i64>().unwrap() > 0);
    let zone = query(&mut client, "SHOW TimeZone").await.unwrap();
    assert_eq!(first_text(&zone), "America/New_York");
    // A SET statement persists too, and GetSessionOptions shows it all.
    query(&mut client, "SET statement_timeout = '5min'")
        .await
        .unwrap();
    let shown = options(&mut client).await;
    assert_eq!(shown["catalog"], "claims");
    assert_eq!(shown["schema"], "public");
    assert_eq!(shown["statement_timeout"], "5min");
    assert_eq!(shown["TimeZone"], "America/New_York");

    // Another connection of the same user is another session.
    let mut other = self::client(&mesh, "analyst").await;
    assert_eq!(options(&mut other).await["catalog"], "members");

    // A catalog that does not exist is an invalid value, not a session.
    let bad: pb::SetSessionOptionsResult = action(
        &mut other,
        "SetSessionOptions",
        pb::SetSessionOptionsRequest {
            session_options: [("catalog".to_owned(), text("nope"))].into_iter().collect(),
        },
    )
    .await
    .unwrap();
    assert!(bad.errors.contains_key("catalog"));

    // CloseSession forgets it; closing again finds nothing.
    let closed: pb::CloseSessionResult =
        action(&mut client, "CloseSession", pb::CloseSessionRequest {})
            .await
            .unwrap();
    assert_eq!(
        closed.status,
        pb::close_session_result::Status::Closed as i32
    );
    assert!(query(&mut client, "SELECT count(*) FROM claims")
        .await
        .is_err());
    assert_eq!(
        action::<pb::CloseSessionResult>(&mut client, "CloseSession", pb::CloseSessionRequest {})
            .await
            .unwrap_err(),
        Code::NotFound
    );
}

#[tokio::test]
async fn cancel_flight_info_stops_a_query_before_or_while_it_runs() {
    let mesh = TestMesh::start_with(|c| c.push_str(&extra_user("other", "other-pw"))).await;
    let mut client = client(&mesh, "analyst").await;
    let cancel = |info: arrow_flight::FlightInfo| CancelFlightInfoRequest { info: Some(info) };

    // Cancelled before its DoGet: the DoGet is refused as cancelled.
    let info = client
        .execute("SELECT count(*) FROM claims.public.claims".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let result: CancelFlightInfoResult = action(&mut client, "CancelFlightInfo", cancel(info))
        .await
        .unwrap();
    assert_eq!(result.status, CancelStatus::Cancelled as i32);
    let refused = client.do_get(ticket).await.unwrap_err();
    assert!(refused.to_string().contains("ancel"), "{refused}");

    // Cancelled while it streams: the stream ends with CANCELLED.
    let info = client
        .execute(
            "SELECT a.value * b.value FROM generate_series(1, 100000) a, generate_series(1, 100000) b"
                .into(),
            None,
        )
        .await
        .unwrap();
    let mut stream = client
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap();
    assert!(stream.try_next().await.unwrap().is_some(), "first batch");
    let result: CancelFlightInfoResult = action(&mut client, "CancelFlightInfo", cancel(info))
        .await
        .unwrap();
    assert_eq!(result.status, CancelStatus::Cancelled as i32);
    let ended = loop {
        match stream.try_next().await {
            Ok(Some(_)) => continue,
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    assert!(
        ended.as_deref().is_some_and(|e| e.contains("ancel")),
        "{ended:?}"
    );

    // GetSqlInfo says so.
    let info = client
        .get_sql_info(vec![arrow_flight::sql::SqlInfo::FlightSqlServerCancel])
        .await
        .unwrap();
    let stream = client
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    let value = batches[0].column(1).as_union().value(0);
    assert!(value.as_boolean().value(0), "FlightSqlServerCancel");

    // Another user's FlightInfo is not theirs to cancel.
    let info = client.execute("SELECT 1".into(), None).await.unwrap();
    let mut intruder = self::client(&mesh, "other").await;
    let _: CancelFlightInfoResult = action(&mut intruder, "CancelFlightInfo", cancel(info.clone()))
        .await
        .unwrap();
    let fetched = client
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await;
    assert!(fetched.is_ok(), "the owner's DoGet still runs");
}

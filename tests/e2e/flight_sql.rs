//! The Flight SQL front end through the Rust `FlightSqlServiceClient`.

use std::sync::Arc;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetTables, CommandGetXdbcTypeInfo, CommandStatementQuery,
    ProstMessageExt, SqlInfo,
};
use arrow_flight::{FlightDescriptor, FlightInfo, Ticket};
use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use futures::TryStreamExt;
use meshgate_tests::{extra_user, TestMesh};
use prost::Message;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

async fn channel(mesh: &TestMesh) -> Channel {
    Channel::from_shared(format!("http://{}", mesh.flight_sql_addr()))
        .unwrap()
        .connect()
        .await
        .expect("connect to Flight SQL")
}

async fn client(mesh: &TestMesh, user: &str, password: &str) -> FlightSqlServiceClient<Channel> {
    let mut client = FlightSqlServiceClient::new(channel(mesh).await);
    client.handshake(user, password).await.expect("handshake");
    client
}

async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("stream"));
    }
    batches
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// Raw GetFlightInfo, to see the gRPC status of failures.
async fn raw_info(mesh: &TestMesh, token: Option<&str>, sql: &str) -> Result<FlightInfo, Status> {
    let mut raw = FlightServiceClient::new(channel(mesh).await);
    let cmd = CommandStatementQuery {
        query: sql.to_owned(),
        transaction_id: None,
    };
    let mut request = Request::new(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()));
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    raw.get_flight_info(request).await.map(|r| r.into_inner())
}

async fn raw_do_get(
    mesh: &TestMesh,
    token: &str,
    ticket: Ticket,
) -> Result<Vec<RecordBatch>, Status> {
    let mut raw = FlightServiceClient::new(channel(mesh).await);
    let mut request = Request::new(ticket);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let stream = raw.do_get(request).await?.into_inner();
    let batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
        stream.map_err(arrow_flight::error::FlightError::from),
    )
    .try_collect()
    .await
    .map_err(|e| Status::internal(e.to_string()))?;
    Ok(batches)
}

#[tokio::test]
async fn cross_catalog_query_streams_arrow_with_native_types() {
    let mesh = TestMesh::start().await;
    let mut client = client(&mesh, "analyst", "meshgate").await;
    let info = client
        .execute(meshgate_gateway::demo::CROSS_DOMAIN_JOIN.to_owned(), None)
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(rows(&batches), 5);
    let schema = batches[0].schema();
    assert_eq!(
        schema.field_with_name("claims").unwrap().data_type(),
        &DataType::Int64
    );
    assert!(matches!(
        schema.field_with_name("total").unwrap().data_type(),
        DataType::Decimal128(_, 2)
    ));
    let counts = batches[0].column(2).as_primitive::<Int64Type>();
    assert!(counts.iter().all(|c| c.unwrap() > 0));

    let info = client
        .execute(
            "SELECT claim_id, service_date, amount FROM claims.public.claims WHERE claim_id = 500000".into(),
            None,
        )
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(rows(&batches), 1);
    let schema = batches[0].schema();
    assert_eq!(schema.field(1).data_type(), &DataType::Date32);
    assert_eq!(schema.field(2).data_type(), &DataType::Decimal128(10, 2));
    let info = client
        .execute("SELECT TIMESTAMP '2025-01-31 13:45:06' AS ts".into(), None)
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert!(matches!(
        batches[0].schema().field(0).data_type(),
        DataType::Timestamp(TimeUnit::Nanosecond, None)
    ));
}

#[tokio::test]
async fn credentials_and_tokens_are_checked() {
    let mesh = TestMesh::start().await;
    let mut bad = FlightSqlServiceClient::new(channel(&mesh).await);
    let err = bad.handshake("analyst", "wrong").await.unwrap_err();
    assert!(
        err.to_string().contains("Unauthenticated") || err.to_string().contains("password"),
        "{err}"
    );

    let err = raw_info(&mesh, None, "SELECT 1").await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    let err = raw_info(&mesh, Some("forged.token"), "SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");

    // Basic credentials on the call itself work too (ADBC sends them first).
    let mut raw = FlightServiceClient::new(channel(&mesh).await);
    let cmd = CommandStatementQuery {
        query: "SELECT 1".into(),
        transaction_id: None,
    };
    let mut request = Request::new(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()));
    request.metadata_mut().insert(
        "authorization",
        "Basic YW5hbHlzdDptZXNoZ2F0ZQ==".parse().unwrap(),
    ); // analyst:meshgate
    raw.get_flight_info(request)
        .await
        .expect("basic auth on the call");
}

#[tokio::test]
async fn ticket_replayed_by_another_user_is_refused() {
    let mesh =
        TestMesh::start_with(|config| config.push_str(&extra_user("auditor", "audit-pw"))).await;
    let mut analyst = client(&mesh, "analyst", "meshgate").await;
    let info = analyst
        .execute("SELECT member_id FROM members.public.members".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();

    let auditor = client(&mesh, "auditor", "audit-pw").await;
    let auditor_token = auditor.token().unwrap().clone();
    let err = raw_do_get(&mesh, &auditor_token, ticket.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    assert!(err.message().contains("another user"), "{err}");

    // The owner can still use it.
    let analyst_token = analyst.token().unwrap().clone();
    let batches = raw_do_get(&mesh, &analyst_token, ticket).await.unwrap();
    assert_eq!(rows(&batches), meshgate_gateway::demo::MEMBERS);
}

#[tokio::test]
async fn prepared_statement_binds_parameters() {
    let mesh = TestMesh::start().await;
    let mut client = client(&mesh, "analyst", "meshgate").await;
    let mut stmt = client
        .prepare(
            "SELECT member_id, state FROM members.public.members WHERE member_id = $1".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        stmt.parameter_schema().unwrap().field(0).data_type(),
        &DataType::Int64
    );
    assert_eq!(stmt.dataset_schema().unwrap().fields().len(), 2);
    for id in [1005i64, 1042] {
        let params = RecordBatch::try_from_iter(vec![(
            "$1",
            Arc::new(Int64Array::from(vec![id])) as Arc<dyn Array>,
        )])
        .unwrap();
        stmt.set_parameters(params).unwrap();
        let info = stmt.execute().await.unwrap();
        let batches = fetch(&mut client, info).await;
        assert_eq!(rows(&batches), 1);
        assert_eq!(
            batches[0].column(0).as_primitive::<Int64Type>().value(0),
            id
        );
    }
    stmt.close().await.unwrap();
}

#[tokio::test]
async fn metadata_calls_answer_with_valid_results() {
    let mesh = TestMesh::start().await;
    let mut client = client(&mesh, "analyst", "meshgate").await;

    let info = client.get_catalogs().await.unwrap();
    let batches = fetch(&mut client, info).await;
    let names: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(names, vec!["claims", "members", "providers"]);

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("members".into()),
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    let schemas: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            b.column(1)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(schemas.contains(&"public".to_owned()), "{schemas:?}");

    let info = client
        .get_tables(CommandGetTables {
            catalog: Some("claims".into()),
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: Some("cl%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(rows(&batches), 1);
    let batch = &batches[0];
    assert_eq!(batch.column(2).as_string::<i32>().value(0), "claims");
    assert_eq!(batch.column(3).as_string::<i32>().value(0), "TABLE");
    let schema_bytes = batch.column(4).as_binary::<i32>().value(0);
    let schema = arrow_flight::IpcMessage(schema_bytes.to_vec().into());
    let schema = datafusion::arrow::datatypes::Schema::try_from(schema).unwrap();
    assert!(schema.field_with_name("amount").is_ok());

    let info = client.get_table_types().await.unwrap();
    assert_eq!(rows(&fetch(&mut client, info).await), 2);
    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    assert_eq!(rows(&fetch(&mut client, info).await), 2);
    let info = client
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    assert!(rows(&fetch(&mut client, info).await) >= 10);

    let table = |t: &str| {
        (
            Some("members".to_owned()),
            Some("public".to_owned()),
            t.to_owned(),
        )
    };
    let (catalog, db_schema, name) = table("members");
    let info = client
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: catalog.clone(),
            db_schema: db_schema.clone(),
            table: name.clone(),
        })
        .await
        .unwrap();
    assert_eq!(rows(&fetch(&mut client, info).await), 0);
    let info = client
        .get_exported_keys(CommandGetExportedKeys {
            catalog: catalog.clone(),
            db_schema: db_schema.clone(),
            table: name.clone(),
        })
        .await
        .unwrap();
    assert_eq!(rows(&fetch(&mut client, info).await), 0);
    let info = client
        .get_imported_keys(CommandGetImportedKeys {
            catalog: catalog.clone(),
            db_schema: db_schema.clone(),
            table: name.clone(),
        })
        .await
        .unwrap();
    assert_eq!(rows(&fetch(&mut client, info).await), 0);
    let info = client
        .get_cross_reference(CommandGetCrossReference {
            pk_catalog: catalog.clone(),
            pk_db_schema: db_schema.clone(),
            pk_table: name.clone(),
            fk_catalog: Some("claims".into()),
            fk_db_schema: Some("public".into()),
            fk_table: "claims".into(),
        })
        .await
        .unwrap();
    assert_eq!(rows(&fetch(&mut client, info).await), 0);
}

#[tokio::test]
async fn errors_map_to_grpc_codes_and_the_server_keeps_serving() {
    let mesh = TestMesh::start().await;
    let client = client(&mesh, "analyst", "meshgate").await;
    let token = client.token().unwrap().clone();
    for (sql, code) in [
        ("SELEC 1", Code::InvalidArgument),
        ("SELECT * FROM members.public.nope", Code::NotFound),
        (
            "SELECT nope FROM members.public.members",
            Code::InvalidArgument,
        ),
        ("CREATE TABLE t (a INT)", Code::FailedPrecondition),
    ] {
        let err = raw_info(&mesh, Some(&token), sql).await.unwrap_err();
        assert_eq!(err.code(), code, "{sql}: {err}");
        assert!(
            err.message().starts_with('['),
            "SQLSTATE leads the message: {err}"
        );
    }
    // An error while streaming arrives as a status too.
    let info = raw_info(
        &mesh,
        Some(&token),
        "SELECT 1 / (member_id - 1000) FROM members.public.members",
    )
    .await
    .unwrap();
    let err = raw_do_get(&mesh, &token, info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap_err();
    assert!(
        err.message().contains("22012") || err.message().contains("division"),
        "{err}"
    );
    let info = raw_info(&mesh, Some(&token), "SELECT 42 AS answer")
        .await
        .unwrap();
    let batches = raw_do_get(&mesh, &token, info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap();
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        42
    );
}

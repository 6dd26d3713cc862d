//! Every access is audited (item 6): Flight SQL metadata listings, prepared
//! statements created (Flight SQL and pgwire Parse), admin API reads and
//! writes, and pgwire cancel requests. Each test acts as a restricted user,
//! then reads the audit log and finds one record per access with the user,
//! the protocol, what was accessed and the decision; a refused or hidden
//! access reads `denied`. No record carries a password or a backend key.

use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, CommandGetXdbcTypeInfo, SqlInfo,
};
use arrow_flight::FlightInfo;
use datafusion::arrow::array::RecordBatch;
use futures::TryStreamExt;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::*;

type FlightClient = arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>;

/// Every record of the audit log.
fn records(mesh: &AttackMesh) -> Vec<Value> {
    mesh.audit_text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each audit line is JSON"))
        .collect()
}

/// The records whose `sql` (what was accessed) contains `what`, by `user`.
fn find<'a>(records: &'a [Value], user: &str, what: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["user"] == user && r["sql"].as_str().unwrap_or("").contains(what))
        .collect()
}

/// Exactly one record of `what` by `user`, with `decision`.
fn assert_recorded(records: &[Value], user: &str, protocol: &str, what: &str, decision: &str) {
    let found = find(records, user, what);
    assert!(
        !found.is_empty(),
        "no audit record of `{what}` by {user} in {records:#?}"
    );
    for record in found {
        assert_eq!(record["protocol"], protocol, "{record}");
        assert_eq!(record["decision"], decision, "{record}");
        assert!(
            !record["client"].as_str().unwrap_or("").is_empty(),
            "{record}"
        );
    }
}

/// No password of a suite user appears anywhere in the log.
fn assert_no_secrets(mesh: &AttackMesh) {
    let text = mesh.audit_text();
    for user in ["analyst", "intruder", "admin"] {
        assert!(
            !text.contains(&password(user)),
            "the password of {user} is in the audit log"
        );
    }
}

/// Fetch the rows of a listing.
async fn rows(client: &mut FlightClient, info: FlightInfo) -> usize {
    let mut n = 0;
    for endpoint in info.endpoint {
        let batches: Vec<RecordBatch> = client
            .do_get(endpoint.ticket.expect("ticket"))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        n += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
    }
    n
}

fn tables_of(catalog: &str) -> CommandGetTables {
    CommandGetTables {
        catalog: Some(catalog.to_owned()),
        db_schema_filter_pattern: None,
        table_name_filter_pattern: None,
        table_types: vec![],
        include_schema: false,
    }
}

fn members_keys() -> CommandGetPrimaryKeys {
    CommandGetPrimaryKeys {
        catalog: Some("members".into()),
        db_schema: Some("public".into()),
        table: "members".into(),
    }
}

#[tokio::test]
async fn flight_sql_metadata_listings_are_audited_and_hidden_ones_read_denied() {
    let mesh = attack_mesh().await;
    let mut analyst = flight(&mesh, "analyst").await;
    let info = analyst.get_catalogs().await.unwrap();
    assert!(rows(&mut analyst, info).await > 0);
    let info = analyst
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    assert!(rows(&mut analyst, info).await > 0);
    let info = analyst.get_tables(tables_of("members")).await.unwrap();
    assert!(rows(&mut analyst, info).await > 0, "analyst sees members");
    let info = analyst.get_table_types().await.unwrap();
    rows(&mut analyst, info).await;
    let info = analyst
        .get_sql_info(vec![SqlInfo::FlightSqlServerName])
        .await
        .unwrap();
    rows(&mut analyst, info).await;
    let info = analyst
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    rows(&mut analyst, info).await;
    let info = analyst.get_primary_keys(members_keys()).await.unwrap();
    rows(&mut analyst, info).await;

    // The intruder lists a catalog the policy hides entirely and the keys of
    // a table it hides: the answers are the same as for things that do not
    // exist (empty), so they learn nothing ...
    let mut intruder = flight(&mesh, "intruder").await;
    let info = intruder.get_tables(tables_of("members")).await.unwrap();
    assert_eq!(rows(&mut intruder, info).await, 0);
    let info = intruder
        .get_tables(tables_of("no_such_catalog"))
        .await
        .unwrap();
    assert_eq!(rows(&mut intruder, info).await, 0);
    let info = intruder.get_primary_keys(members_keys()).await.unwrap();
    assert_eq!(rows(&mut intruder, info).await, 0);

    // ... but the log says what was hidden from whom.
    let log = records(&mesh);
    for call in [
        "Flight SQL GetCatalogs",
        "Flight SQL GetDbSchemas",
        "Flight SQL GetTables",
        "Flight SQL GetTableTypes",
        "Flight SQL GetSqlInfo",
        "Flight SQL GetXdbcTypeInfo",
        "Flight SQL GetPrimaryKeys",
    ] {
        assert_recorded(&log, "analyst", "flight_sql", call, "allowed");
    }
    assert_recorded(
        &log,
        "intruder",
        "flight_sql",
        "GetTables catalog=\"members\"",
        "denied",
    );
    assert_recorded(
        &log,
        "intruder",
        "flight_sql",
        "GetPrimaryKeys members.public.members",
        "denied",
    );
    assert_recorded(
        &log,
        "intruder",
        "flight_sql",
        "GetTables catalog=\"no_such_catalog\"",
        "allowed",
    );
    let listed = find(&log, "analyst", "Flight SQL GetTables");
    assert!(listed.iter().any(|r| r["rows"].as_u64() > Some(0)));
    assert_no_secrets(&mesh);
    mesh.assert_serving().await;
}

#[tokio::test]
async fn prepared_statements_created_are_audited_over_flight_sql_and_pgwire() {
    let mesh = attack_mesh().await;
    let mut analyst = flight(&mesh, "analyst").await;
    analyst
        .prepare(
            "SELECT state FROM members.public.members WHERE member_id = 1 /* flight-prep */"
                .to_owned(),
            None,
        )
        .await
        .unwrap();
    // A prepare of a hidden table fails like one of an absent table, and is
    // recorded as denied.
    let mut intruder = flight(&mesh, "intruder").await;
    intruder
        .prepare(
            "SELECT * FROM members.public.members /* flight-denied */".to_owned(),
            None,
        )
        .await
        .unwrap_err();
    let pg = mesh.pg("analyst").await;
    pg.prepare("SELECT state FROM members.public.members /* pg-parse */")
        .await
        .unwrap();
    let pg_intruder = mesh.pg("intruder").await;
    pg_intruder
        .prepare("SELECT * FROM members.public.members /* pg-denied */")
        .await
        .unwrap_err();

    let log = records(&mesh);
    assert_recorded(
        &log,
        "analyst",
        "flight_sql",
        "CreatePreparedStatement: SELECT state FROM members.public.members",
        "allowed",
    );
    let created = find(&log, "analyst", "/* flight-prep */");
    assert!(
        created
            .iter()
            .any(|r| r["objects"].to_string().contains("members.public.members")),
        "{created:#?}"
    );
    assert_recorded(
        &log,
        "analyst",
        "pgwire",
        "Parse (prepare statement)",
        "allowed",
    );
    assert!(!find(&log, "analyst", "/* pg-parse */").is_empty());
    for marker in ["/* flight-denied */", "/* pg-denied */"] {
        let refused: Vec<_> = find(&log, "intruder", marker)
            .into_iter()
            .filter(|r| {
                r["sql"]
                    .as_str()
                    .unwrap_or("")
                    .contains("CreatePreparedStatement")
                    || r["sql"].as_str().unwrap_or("").contains("Parse")
            })
            .collect();
        assert!(!refused.is_empty(), "no record of {marker} in {log:#?}");
        for record in refused {
            assert_eq!(record["decision"], "denied", "{record}");
        }
    }
    assert_no_secrets(&mesh);
    mesh.assert_serving().await;
}

#[tokio::test]
async fn admin_api_reads_and_writes_are_audited_and_refusals_read_denied() {
    let mesh = attack_mesh().await;
    // The intruder tries every call: each is refused with 42501 and recorded.
    let mut intruder = admin_client(&mesh, "intruder").await;
    let refused = intruder.get().await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(!refused.message().contains("[[grants]]"), "{refused:?}");
    assert_eq!(
        intruder.list().await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    assert_eq!(
        intruder
            .diff(ATTACK_POLICY.into())
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    let grab = ATTACK_POLICY.replace("admins = [\"user:admin\"]", "admins = [\"user:intruder\"]");
    assert_eq!(
        intruder.apply(grab, 1).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    // The admin reads and writes.
    let mut admin = admin_client(&mesh, "admin").await;
    let current = admin.get().await.unwrap();
    admin.list().await.unwrap();
    admin.diff(current.toml.clone()).await.unwrap();
    admin.apply(current.toml, current.version).await.unwrap();

    let log = records(&mesh);
    for call in [
        "admin GetPolicy",
        "admin ListRules",
        "admin DiffPolicy",
        "admin ApplyPolicy",
    ] {
        assert_recorded(&log, "intruder", "admin_grpc", call, "denied");
        assert_recorded(&log, "admin", "admin_grpc", call, "allowed");
    }
    // The intruder did not become an admin.
    let mut again = admin_client(&mesh, "intruder").await;
    assert_eq!(
        again.get().await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    assert_no_secrets(&mesh);
    mesh.assert_serving().await;
}

/// A query slow by construction: nothing can answer it from statistics.
const SLOW: &str = "SELECT count(*) FROM range(10000000000) WHERE random() < 0.5";

#[tokio::test]
async fn pgwire_cancel_requests_are_audited_and_forged_ones_read_denied() {
    let mesh = attack_mesh().await;
    let (client, connection) = tokio_postgres::connect(
        &mesh
            .mesh
            .conn_str("analyst", &password("analyst"), "members"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let token = client.cancel_token();
    let running = tokio::spawn(async move { client.simple_query(SLOW).await });
    // Cancel until the query stops (a cancel that arrives before the query
    // starts finds nothing to stop; each request is recorded all the same).
    let mut attempts = 0;
    let cancelled = loop {
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if running.is_finished() {
            break running.await.unwrap();
        }
        attempts += 1;
        assert!(attempts < 600, "no cancel request stopped the query");
    };
    let err = cancelled.expect_err("the query was cancelled");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");

    // A forged cancel request (any pid, a guessed key) stops nothing and is
    // recorded as denied, without the key.
    let forged_key: u32 = 0x5EC2_E7AB;
    let mut socket = tokio::net::TcpStream::connect(mesh.mesh.pgwire_addr())
        .await
        .unwrap();
    let mut packet = Vec::new();
    packet.extend_from_slice(&16u32.to_be_bytes());
    packet.extend_from_slice(&80877102u32.to_be_bytes());
    packet.extend_from_slice(&4242u32.to_be_bytes());
    packet.extend_from_slice(&forged_key.to_be_bytes());
    socket.write_all(&packet).await.unwrap();
    socket.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut socket, &mut rest)
        .await
        .ok();

    // The server writes the record after it has read the request; wait for
    // it rather than for a time.
    let mut polls = 0;
    let log = loop {
        let log = records(&mesh);
        if !find(&log, "", "CancelRequest for backend 4242").is_empty() {
            break log;
        }
        polls += 1;
        assert!(polls < 600, "the forged cancel request was never recorded");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_recorded(&log, "analyst", "pgwire", "pgwire CancelRequest", "allowed");
    assert_recorded(
        &log,
        "",
        "pgwire",
        "pgwire CancelRequest for backend 4242",
        "denied",
    );
    let text = mesh.audit_text();
    assert!(!text.contains(&forged_key.to_string()));
    assert!(!text.contains(&format!("{forged_key:x}")));
    assert_no_secrets(&mesh);
    mesh.assert_serving().await;
}

#[tokio::test]
async fn a_set_over_flight_sql_is_audited_once() {
    let mesh = attack_mesh().await;
    let mut client = flight(&mesh, "analyst").await;
    flight_query(&mut client, "SET statement_timeout = '5min'")
        .await
        .unwrap();
    let shown = flight_query(&mut client, "SHOW statement_timeout")
        .await
        .unwrap();
    assert_eq!(shown[0].num_rows(), 1);
    let records = records(&mesh);
    assert_recorded(
        &records,
        "analyst",
        "flight_sql",
        "SET statement_timeout",
        "allowed",
    );
    let sets = find(&records, "analyst", "SET statement_timeout");
    assert_eq!(sets.len(), 1, "{sets:#?}");
}

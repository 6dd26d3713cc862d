//! The planner session a Flight SQL session keeps between its calls is
//! only ever lent to the same identity, from the same client, under the
//! policy in force: a caller who presents another's session name (a
//! shared token with an impersonation header, a copied session cookie)
//! gets a session of their own and learns nothing, a revoked grant takes
//! effect at the next call, and the audit log keeps each call's own client.

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::RecordBatch;
use serde_json::Value;
use tonic::transport::Channel;

use super::*;

type Flight = FlightSqlServiceClient<Channel>;

/// The suite's policy, plus: `bi_server` may act as `analyst`.
fn policy() -> String {
    format!(
        "{ATTACK_POLICY}\n[[grants]]\neffect = \"allow\"\nprincipals = [\"user:bi_server\"]\n\
         privilege = \"impersonate\"\ntargets = [\"user:analyst\"]\n"
    )
}

/// The first value of the first row, as text.
fn first(batches: &[RecordBatch]) -> String {
    let column = datafusion::arrow::compute::cast(
        batches[0].column(0),
        &datafusion::arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    datafusion::arrow::array::AsArray::as_string::<i32>(&column)
        .value(0)
        .to_owned()
}

async fn scalar(client: &mut Flight, sql: &str) -> String {
    let batches = flight_query(client, sql)
        .await
        .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
    first(&batches)
}

/// A second connection signed in with `client`'s token: the same Flight
/// SQL session, from another client address.
async fn same_token(mesh: &AttackMesh, client: &Flight) -> Flight {
    let mut other = flight_anonymous(mesh).await;
    other.set_token(client.token().expect("signed in").clone());
    other
}

#[tokio::test]
async fn a_kept_flight_session_serves_only_its_own_identity_and_client() {
    let mesh = attack_mesh_with(&policy(), |config| {
        config.push_str(&extra_user("bi_server", &password("bi_server")))
    })
    .await;
    let members = "SELECT count(*) FROM members.public.members";
    let ny = "SELECT count(*) FROM members.public.members WHERE state = 'NY'";

    // One token, alternately with and without the impersonation header:
    // each call runs as its own identity, however often they alternate.
    let mut own = flight(&mesh, "bi_server").await;
    let mut acting = flight(&mesh, "bi_server").await;
    acting.set_token(own.token().unwrap().clone());
    acting.set_header("x-meshgate-impersonate", "analyst");
    for _ in 0..3 {
        assert!(flight_query(&mut own, members).await.is_err());
        assert_eq!(scalar(&mut acting, ny).await, "0", "analyst's row filter");
        assert!(flight_query(&mut own, members).await.is_err());
        let masked = flight_query(
            &mut acting,
            "SELECT DISTINCT last_name FROM members.public.members",
        )
        .await
        .unwrap();
        assert_eq!(first(&masked), "***");
    }

    // A copied session cookie: the intruder gets neither the analyst's
    // settings nor their reads, and the analyst keeps both.
    let cookie = "arrow_flight_session_id=shared-by-accident";
    let mut analyst = flight(&mesh, "analyst").await;
    analyst.set_header("cookie", cookie);
    flight_query(&mut analyst, "SET statement_timeout = '7min'")
        .await
        .unwrap();
    assert!(scalar(&mut analyst, members).await.parse::<u64>().unwrap() > 0);
    let mut intruder = flight(&mesh, "intruder").await;
    intruder.set_header("cookie", cookie);
    for _ in 0..2 {
        assert!(flight_query(&mut intruder, members).await.is_err());
        assert_ne!(
            scalar(&mut intruder, "SHOW statement_timeout").await,
            "7min"
        );
        assert_eq!(scalar(&mut analyst, "SHOW statement_timeout").await, "7min");
        assert_eq!(scalar(&mut analyst, ny).await, "0");
    }

    // A grant revoked between two calls is in force at the second.
    let providers = "SELECT count(*) FROM providers.public.providers";
    let admin = mesh.pg("admin").await;
    let mut granted = flight(&mesh, "intruder").await;
    assert!(flight_query(&mut granted, providers).await.is_err());
    admin
        .simple_query("GRANT SELECT ON providers.public.providers TO intruder")
        .await
        .unwrap();
    assert_eq!(scalar(&mut granted, providers).await, "25");
    admin
        .simple_query("REVOKE SELECT ON providers.public.providers FROM intruder")
        .await
        .unwrap();
    assert!(flight_query(&mut granted, providers).await.is_err());

    // Two connections on one token: each statement is audited with the
    // client it came from.
    let mut second = same_token(&mesh, &analyst).await;
    second.set_header("cookie", cookie);
    for _ in 0..2 {
        scalar(&mut analyst, "SELECT 'from the first'").await;
        scalar(&mut second, "SELECT 'from the second'").await;
    }
    let clients = |marker: &str| -> std::collections::BTreeSet<String> {
        mesh.audit_text()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|r| r["sql"].as_str().is_some_and(|s| s.contains(marker)))
            .map(|r| r["client"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (first_clients, second_clients) = (clients("from the first"), clients("from the second"));
    assert_eq!(first_clients.len(), 1, "{first_clients:?}");
    assert_eq!(second_clients.len(), 1, "{second_clients:?}");
    assert_ne!(first_clients, second_clients);

    // A SQL PREPAREd statement is not kept for a later call (it would be
    // there only now and then).
    flight_query(&mut analyst, "PREPARE p AS SELECT 1")
        .await
        .unwrap();
    assert!(flight_query(&mut analyst, "EXECUTE p").await.is_err());
    mesh.assert_serving().await;
}

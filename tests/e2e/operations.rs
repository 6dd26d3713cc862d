//! Query management with real clients: every statement's query id (the
//! Flight SQL response header, the audit record), `system.runtime.queries`,
//! `CALL system.kill_query`, and PostgreSQL's `pg_stat_activity`,
//! `pg_cancel_backend` and `pg_terminate_backend` — and what a user who is
//! not an admin cannot see or stop.

use std::time::Duration;

use tokio_postgres::Client;

use crate::attacks::{attack_mesh, flight, simple_rows, sqlstate, AttackMesh};

/// Runs until it is stopped (hours on any machine), batch by batch so a
/// stop is seen at once; no row is sent before the end.
const SLOW: &str = "SELECT count(*) FROM range(10000000000) AS forever WHERE random() < 0.5";

/// Start [`SLOW`] on `client` in the background; resolves to its outcome.
fn run_slow(
    client: Client,
) -> tokio::task::JoinHandle<(Client, Result<(), tokio_postgres::Error>)> {
    tokio::spawn(async move {
        let result = tokio::time::timeout(Duration::from_secs(120), client.simple_query(SLOW))
            .await
            .expect("the slow query was never stopped")
            .map(|_| ());
        (client, result)
    })
}

/// Poll `sql` on `observer` until it returns a row; its first column.
async fn wait_for_row(observer: &Client, sql: &str) -> String {
    for _ in 0..200 {
        let rows = simple_rows(observer, sql).await.expect(sql);
        if let Some(row) = rows.first() {
            return row[0].clone().unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = simple_rows(
        observer,
        "SELECT pid, usename, state, query FROM pg_stat_activity",
    )
    .await;
    panic!("no row from `{sql}`; pg_stat_activity: {all:?}");
}

/// The id of `user`'s running [`SLOW`] query, as `observer` sees it.
async fn running_slow_query(observer: &Client, user: &str) -> String {
    wait_for_row(
        observer,
        &format!(
            "SELECT id FROM system.runtime.queries WHERE state = 'running' \
             AND \"user\" = '{user}' AND sql LIKE '%forever%' AND sql NOT LIKE '%runtime%'"
        ),
    )
    .await
}

fn code(result: &Result<(), tokio_postgres::Error>) -> Option<String> {
    result
        .as_ref()
        .err()
        .and_then(|e| e.code())
        .map(|c| c.code().to_owned())
}

async fn one(client: &Client, sql: &str) -> String {
    simple_rows(client, sql).await.expect(sql)[0][0]
        .clone()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_sees_and_kills_a_running_query() {
    let mesh = attack_mesh().await;
    let victim = run_slow(mesh.pg("analyst").await);
    let admin = mesh.pg("admin").await;
    let id = running_slow_query(&admin, "analyst").await;
    let row = simple_rows(
        &admin,
        &format!(
            "SELECT protocol, client_address <> '', elapsed_ms >= 0, backend_pid IS NOT NULL \
             FROM system.runtime.queries WHERE id = '{id}'"
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        row[0],
        ["pgwire", "t", "t", "t"].map(|s| Some(s.to_owned()))
    );
    simple_rows(&admin, &format!("CALL system.kill_query('{id}')"))
        .await
        .expect("an admin kills any query");
    let (victim, result) = victim.await.unwrap();
    assert_eq!(code(&result).as_deref(), Some("57014"), "{result:?}");
    // The victim's connection keeps working.
    assert_eq!(one(&victim, "SELECT 1").await, "1");
    let state = one(
        &admin,
        &format!("SELECT state FROM system.runtime.queries WHERE id = '{id}'"),
    )
    .await;
    assert_eq!(state, "cancelled");
    // Killing it again: it is no longer running.
    assert_eq!(
        sqlstate(&admin, &format!("CALL system.kill_query('{id}')")).await,
        "42704"
    );
    mesh.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_sees_and_kills_only_their_own_queries() {
    let mesh = attack_mesh().await;
    let victim = run_slow(mesh.pg("analyst").await);
    let admin = mesh.pg("admin").await;
    let id = running_slow_query(&admin, "analyst").await;

    let intruder = mesh.pg("intruder").await;
    simple_rows(&intruder, "SELECT 42").await.unwrap();
    let users = simple_rows(
        &intruder,
        "SELECT DISTINCT \"user\" FROM system.runtime.queries",
    )
    .await
    .unwrap();
    assert_eq!(users, vec![vec![Some("intruder".to_owned())]]);
    let seen = one(
        &intruder,
        &format!("SELECT count(*) FROM system.runtime.queries WHERE id = '{id}'"),
    )
    .await;
    assert_eq!(seen, "0");
    // Another user's query and an unknown id are refused alike.
    let kill = format!("CALL system.kill_query('{id}')");
    assert_eq!(sqlstate(&intruder, &kill).await, "42501");
    let unknown = "CALL system.kill_query('000000000000deadbeef')";
    assert_eq!(sqlstate(&intruder, unknown).await, "42501");
    let refused = |sql: &str| {
        let intruder = &intruder;
        let sql = sql.to_owned();
        async move { intruder.simple_query(&sql).await.unwrap_err().to_string() }
    };
    assert_eq!(
        refused(&kill).await.replace(&id, "X"),
        refused(unknown).await.replace("000000000000deadbeef", "X")
    );
    // Over Flight SQL too.
    let mut flight_intruder = flight(&mesh, "intruder").await;
    let err = crate::attacks::flight_query(&mut flight_intruder, &kill)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("[42501]"), "{err}");
    // The audit log stays for admins.
    assert_eq!(
        sqlstate(&intruder, "SELECT * FROM system.audit.queries").await,
        "42P01"
    );
    // The victim is unaffected...
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!victim.is_finished());
    assert_eq!(
        one(
            &admin,
            &format!("SELECT state FROM system.runtime.queries WHERE id = '{id}'"),
        )
        .await,
        "running"
    );
    // ...and stops its own query itself.
    let analyst = mesh.pg("analyst").await;
    simple_rows(&analyst, &kill).await.expect("own query");
    let (_, result) = victim.await.unwrap();
    assert_eq!(code(&result).as_deref(), Some("57014"), "{result:?}");
    mesh.assert_serving().await;
}

/// The pid of `user`'s backend running [`SLOW`], from `pg_stat_activity`.
async fn active_backend(observer: &Client) -> String {
    wait_for_row(
        observer,
        "SELECT pid FROM pg_stat_activity WHERE state = 'active' \
         AND query LIKE '%forever%' AND query NOT LIKE '%pg_stat_activity%'",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_cancel_backend_stops_the_query_and_keeps_the_connection() {
    let mesh = attack_mesh().await;
    let victim = run_slow(mesh.pg("analyst").await);
    let analyst = mesh.pg("analyst").await;
    let pid = active_backend(&analyst).await;
    // Each connection is its own backend, listed under its own pid.
    let own = one(&analyst, "SELECT pg_backend_pid()").await;
    assert_ne!(own, pid);
    assert_eq!(
        one(
            &analyst,
            &format!("SELECT state FROM pg_stat_activity WHERE pid = {own}")
        )
        .await,
        "active"
    );
    let row = simple_rows(
        &analyst,
        &format!(
            "SELECT usename, client_addr, application_name IS NOT NULL, query_start IS NOT NULL \
             FROM pg_stat_activity WHERE pid = {pid}"
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        row[0],
        ["analyst", "127.0.0.1", "t", "t"].map(|s| Some(s.to_owned()))
    );
    // Another user neither sees nor cancels it.
    let intruder = mesh.pg("intruder").await;
    let seen = simple_rows(&intruder, "SELECT pid, usename FROM pg_stat_activity")
        .await
        .unwrap();
    assert!(
        seen.iter().all(|r| r[1].as_deref() == Some("intruder")),
        "{pid}: {seen:?}"
    );
    assert_eq!(
        sqlstate(&intruder, &format!("SELECT pg_cancel_backend({pid})")).await,
        "42501"
    );
    assert!(!victim.is_finished());
    assert_eq!(
        one(&analyst, &format!("SELECT pg_cancel_backend({pid})")).await,
        "t"
    );
    let (victim, result) = victim.await.unwrap();
    assert_eq!(code(&result).as_deref(), Some("57014"), "{result:?}");
    assert_eq!(one(&victim, "SELECT 2").await, "2");
    mesh.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_terminate_backend_closes_the_connection() {
    let mesh = attack_mesh().await;
    let victim = run_slow(mesh.pg("analyst").await);
    let admin = mesh.pg("admin").await;
    let pid = active_backend(&admin).await;
    assert_eq!(
        one(&admin, &format!("SELECT pg_terminate_backend({pid})")).await,
        "t"
    );
    let (victim, result) = victim.await.unwrap();
    assert_eq!(code(&result).as_deref(), Some("57P01"), "{result:?}");
    let next = victim.simple_query("SELECT 1").await.unwrap_err();
    assert!(next.is_closed(), "{next:?}");
    // Gone from pg_stat_activity; a pid that names nothing is `false`.
    for _ in 0..100 {
        let left = one(
            &admin,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"),
        )
        .await;
        if left == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        one(&admin, &format!("SELECT pg_terminate_backend({pid})")).await,
        "f"
    );
    mesh.assert_serving().await;
}

#[tokio::test]
async fn flight_answers_carry_the_query_id_of_the_audit_record() {
    use futures::TryStreamExt;
    let mesh: AttackMesh = attack_mesh().await;
    let mut client = flight(&mesh, "analyst").await;
    let info = client
        .execute("SELECT count(*) FROM members.public.members".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = client.do_get(ticket).await.unwrap();
    let id = stream
        .headers()
        .get("x-meshgate-query-id")
        .expect("query id header")
        .to_str()
        .unwrap()
        .to_owned();
    let batches: Vec<_> = stream.try_collect().await.unwrap();
    assert_eq!(batches.len(), 1);
    let audit = mesh.audit_text();
    let record: serde_json::Value = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["query_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no audit record for {id}: {audit}"));
    assert_eq!(record["user"], "analyst");
    assert_eq!(record["protocol"], "flight_sql");
    // The same id in system.runtime.queries, finished.
    let admin = mesh.pg("admin").await;
    let row = simple_rows(
        &admin,
        &format!(
            "SELECT state, \"user\", rows, array_to_string(catalogs, ',') \
             FROM system.runtime.queries WHERE id = '{id}'"
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        row,
        vec![["finished", "analyst", "1", "members"]
            .map(|s| Some(s.to_owned()))
            .to_vec()]
    );
}

#[tokio::test]
async fn literals_compared_with_masked_columns_are_not_shown() {
    let mesh = attack_mesh().await;
    let analyst = mesh.pg("analyst").await;
    simple_rows(
        &analyst,
        "SELECT count(*) FROM members.public.members WHERE last_name = 'Secretname'",
    )
    .await
    .unwrap();
    let admin = mesh.pg("admin").await;
    let sql = one(
        &admin,
        "SELECT sql FROM system.runtime.queries WHERE \"user\" = 'analyst' \
         AND sql LIKE '%last_name%'",
    )
    .await;
    assert!(!sql.contains("Secretname"), "{sql}");
    assert!(sql.contains("last_name = ?"), "{sql}");
}

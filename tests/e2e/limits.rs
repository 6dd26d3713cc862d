//! Concurrency, memory and time limits (`[limits]`), with real clients.
//!
//! A query that is "running" here is one whose first row the client has
//! read while it holds the rest unread: the gateway cannot finish it, so it
//! keeps its admission slot until the client drops or cancels it. That
//! makes "how many run at once" observable without timing anything.

use std::collections::VecDeque;
use std::time::Duration;

use arrow_flight::error::FlightError;
use futures::{StreamExt, TryStreamExt};
use meshgate_tests::{extra_user, TestMesh};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, NoTls};
use tonic::Code;

/// Tens of megabytes of rows: far more than socket buffers hold.
const HELD: &str = "SELECT value FROM range(3000000)";
/// Runs until stopped.
const FOREVER: &str = "SELECT count(*) FROM range(10000000000) WHERE random() < 0.5";
/// A hash join whose build side needs far more than 8 MiB and cannot spill.
const BIG_JOIN: &str = "SELECT count(*) FROM range(2000000) a JOIN range(2000000) b \
                        ON a.value = b.value";

const POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[groups]
crowd = ["worker"]
solo = ["loner"]
"#;

const LIMITS: &str = r#"
[limits.groups.crowd]
max_running = 2
max_queued = 100
queue_timeout = "5min"

[limits.groups.solo]
max_running = 1
max_queued = 0

[limits.users.patient]
max_running = 1
max_queued = 5
queue_timeout = "300ms"
"#;

const USERS: [&str; 4] = ["worker", "loner", "patient", "admin"];

/// A gateway with [`POLICY`]'s groups and `limits` (a `[limits]` block).
async fn limits_mesh(limits: &str) -> (TestMesh, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let mesh = TestMesh::start_with(|config| {
        for user in USERS {
            config.push_str(&extra_user(user, &format!("{user}-pw")));
        }
        config.push_str(&format!(
            "\n[policy]\nfile = \"{}\"\n{limits}",
            policy.display()
        ));
    })
    .await;
    (mesh, dir)
}

async fn pg(mesh: &TestMesh, user: &str) -> Client {
    mesh.connect_as(user, &format!("{user}-pw"), "members")
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

/// A query whose first row has been read and whose rest is held unread.
struct Held {
    client: Client,
    rows: std::pin::Pin<Box<tokio_postgres::RowStream>>,
}

async fn hold(client: Client) -> Result<Held, tokio_postgres::Error> {
    let mut rows = Box::pin(client.query_raw(HELD, Vec::<String>::new()).await?);
    rows.next().await.expect("a first row")?;
    Ok(Held { client, rows })
}

impl Held {
    /// Stop the query: drop its rows and cancel it on the server.
    async fn release(self) {
        let token = self.client.cancel_token();
        drop(self.rows);
        let _ = token.cancel_query(NoTls).await;
        // The connection answers again once the statement has ended.
        self.client.simple_query("SELECT 1").await.unwrap();
    }
}

fn sqlstate(err: &tokio_postgres::Error) -> String {
    err.code()
        .map(|c| c.code().to_owned())
        .unwrap_or_else(|| panic!("no SQLSTATE in {err:?}"))
}

/// Retry `sql` while it fails with 53300: the slot a cancelled query held
/// is freed when the server has dropped its stream.
async fn once_admitted(client: &Client, sql: &str) -> Vec<tokio_postgres::SimpleQueryMessage> {
    for _ in 0..100 {
        match client.simple_query(sql).await {
            Ok(rows) => return rows,
            Err(e) if sqlstate(&e) == "53300" => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{sql}: {e}"),
        }
    }
    panic!("{sql}: never admitted");
}

#[tokio::test]
async fn ten_clients_under_a_group_limit_of_two_run_two_at_a_time_and_none_is_lost() {
    let (mesh, _dir) = limits_mesh(LIMITS).await;
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = pg(&mesh, "worker").await;
        let started = started_tx.clone();
        tasks.push(tokio::spawn(async move {
            let held = hold(client).await.expect("admitted and running");
            let (release_tx, release_rx) = oneshot::channel();
            started.send((i, release_tx)).unwrap();
            release_rx.await.unwrap();
            held.release().await;
        }));
    }
    drop(started_tx);
    let admin = pg(&mesh, "admin").await;
    // Whenever two run, free the oldest; the next starts only then.
    let mut running = VecDeque::new();
    let mut seen = Vec::new();
    while let Some((i, release)) = started_rx.recv().await {
        seen.push(i);
        running.push_back(release);
        assert!(running.len() <= 2, "{} queries run at once", running.len());
        if seen.len() == 2 {
            // The registry shows two running and, once all have asked, eight
            // queued; a flood in one group starves no one outside it.
            assert_eq!(worker_states(&admin).await, (2, 8));
        }
        if running.len() == 2 || seen.len() == 10 {
            while seen.len() == 10 && running.len() > 1 {
                running.pop_front().unwrap().send(()).unwrap();
            }
            if let Some(oldest) = running.pop_front() {
                oldest.send(()).unwrap();
            }
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>(), "every query ran");
}

/// `worker`'s statements running and queued, as an admin reads them from
/// `system.runtime.queries` once all ten have asked to run.
async fn worker_states(admin: &Client) -> (usize, usize) {
    let sql = "SELECT state, count(*) FROM system.runtime.queries \
               WHERE \"user\" = 'worker' GROUP BY state ORDER BY state";
    for _ in 0..400 {
        let rows = admin.query(sql, &[]).await.unwrap();
        let count = |state: &str| {
            rows.iter()
                .find(|r| r.get::<_, String>(0) == state)
                .map_or(0, |r| r.get::<_, i64>(1) as usize)
        };
        let states = (count("running"), count("queued"));
        if states.0 + states.1 == 10 {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the ten queries never all reached the registry");
}

#[tokio::test]
async fn a_full_queue_fails_with_53300_naming_the_limit_on_both_protocols() {
    let (mesh, _dir) = limits_mesh(LIMITS).await;
    let held = hold(pg(&mesh, "loner").await).await.unwrap();
    let other = pg(&mesh, "loner").await;
    let err = other.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&err), "53300", "{err:?}");
    let message = err.as_db_error().unwrap().message().to_owned();
    assert_eq!(
        message,
        "too many queries: group \"solo\" allows 1 running and 0 queued ([limits.groups.solo])"
    );
    // Flight SQL answers RESOURCE_EXHAUSTED with the same text.
    let mut flight = flight_client(&mesh, "loner").await;
    let err = flight_rows(&mut flight, "SELECT 1").await.unwrap_err();
    assert_eq!(code(&err), Some(Code::ResourceExhausted), "{err}");
    assert!(
        err.to_string().contains("[53300] too many queries"),
        "{err}"
    );
    // Commands that run no query are not limited.
    other
        .simple_query("SET application_name = 'x'")
        .await
        .unwrap();
    held.release().await;
    let rows = once_admitted(&other, "SELECT 1").await;
    assert_eq!(rows.len(), 3);
}

#[tokio::test]
async fn a_wait_past_queue_timeout_fails_with_53300_and_the_connection_carries_on() {
    let (mesh, _dir) = limits_mesh(LIMITS).await;
    let held = hold(pg(&mesh, "patient").await).await.unwrap();
    let waiter = pg(&mesh, "patient").await;
    let err = waiter.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&err), "53300", "{err:?}");
    let message = err.as_db_error().unwrap().message();
    assert!(
        message.contains("user \"patient\"")
            && message.contains("[limits.users.patient] queue_timeout"),
        "{message}"
    );
    held.release().await;
    assert_eq!(once_admitted(&waiter, "SELECT 1").await.len(), 3);
}

#[tokio::test]
async fn a_query_over_query_memory_fails_with_53200_and_the_next_one_runs() {
    let (mesh, _dir) = limits_mesh("\n[limits]\nquery_memory = \"8MiB\"\n").await;
    let client = pg(&mesh, "worker").await;
    let err = client.simple_query(BIG_JOIN).await.unwrap_err();
    assert_eq!(sqlstate(&err), "53200", "{err:?}");
    let message = err.as_db_error().unwrap().message();
    assert!(message.starts_with("[limits] query_memory"), "{message}");
    assert!(message.contains("HashJoin"), "{message}");
    let rows = client
        .simple_query("SELECT count(*) FROM range(1000) a JOIN range(1000) b ON a.value = b.value")
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "the next query on the connection runs");
}

#[tokio::test]
async fn the_server_statement_timeout_ends_a_flight_sql_stream() {
    let (mesh, _dir) = limits_mesh("\n[limits]\nstatement_timeout = \"1s\"\n").await;
    let mut client = flight_client(&mesh, "worker").await;
    let err = flight_rows(&mut client, FOREVER).await.unwrap_err();
    assert_eq!(code(&err), Some(Code::DeadlineExceeded), "{err}");
    assert!(
        err.to_string()
            .contains("[57014] canceling statement due to statement timeout"),
        "{err}"
    );
    // The client carries on.
    assert_eq!(flight_rows(&mut client, "SELECT 1").await.unwrap(), 1);
}

async fn flight_client(
    mesh: &TestMesh,
    user: &str,
) -> arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel> {
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", mesh.flight_sql_addr()))
            .unwrap()
            .connect()
            .await
            .expect("connect to Flight SQL");
    let mut client = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
    client
        .handshake(user, &format!("{user}-pw"))
        .await
        .unwrap_or_else(|e| panic!("Flight handshake as {user}: {e}"));
    client
}

/// Rows of `sql` over Flight SQL (GetFlightInfo, then DoGet), or the error.
async fn flight_rows(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    sql: &str,
) -> Result<usize, FlightError> {
    let info = client.execute(sql.to_owned(), None).await?;
    let mut rows = 0;
    for endpoint in info.endpoint {
        let stream = client.do_get(endpoint.ticket.expect("ticket")).await?;
        let batches: Vec<_> = stream.try_collect().await?;
        rows += batches.iter().map(|b| b.num_rows()).sum::<usize>();
    }
    Ok(rows)
}

fn code(err: &FlightError) -> Option<Code> {
    match err {
        FlightError::Tonic(status) => Some(status.code()),
        _ => None,
    }
}

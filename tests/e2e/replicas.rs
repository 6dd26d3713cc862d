//! Stateless replicas: two gateways configured with the same
//! `[[auth.signing_keys]]` (one in this process, one a `meshgate serve`
//! child process) accept each other's Flight SQL tokens, tickets and
//! prepared-statement handles, with the policy applied on the replica that
//! runs the statement; a gateway with other keys refuses them all.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{FlightInfo, Ticket};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use futures::TryStreamExt;
use tonic::transport::Channel;

use crate::attacks::{attack_mesh, attack_mesh_with, flight, ATTACK_POLICY};

type Client = FlightSqlServiceClient<Channel>;

pub(crate) const KEYS: &str = "
[[auth.signing_keys]]
id = \"fleet-2026-12\"
secret = \"a fleet-wide secret of well over thirty-two bytes\"
";

/// A `meshgate serve` child process, killed when dropped.
pub(crate) struct Replica {
    child: Child,
    pub(crate) flight_sql: SocketAddr,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `meshgate serve --config <config>` and wait for its Flight SQL
/// listener's address in its JSON logs.
pub(crate) fn spawn_replica(config: &std::path::Path) -> Replica {
    let mut child = Command::new(crate::ops::meshgate_binary())
        .args(["--log-format", "json", "serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a replica");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if value["message"] == "Flight SQL listening" {
                let _ = tx.send(value["addr"].as_str().map(str::to_owned));
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .ok()
        .flatten()
        .expect("the replica logs its Flight SQL address");
    Replica {
        child,
        flight_sql: addr.parse().unwrap(),
    }
}

/// A client of `addr` presenting `token` (a session token from Handshake).
pub(crate) async fn client_with_token(addr: SocketAddr, token: &str) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_token(token.to_owned());
    client
}

/// Every batch of `ticket`, or the failure's text.
async fn fetch(client: &mut Client, ticket: Ticket) -> Result<Vec<RecordBatch>, String> {
    let stream = client.do_get(ticket).await.map_err(|e| e.to_string())?;
    stream.try_collect().await.map_err(|e| e.to_string())
}

fn ticket(info: &FlightInfo) -> Ticket {
    info.endpoint[0].ticket.clone().unwrap()
}

/// (state, last_name) of every row.
fn rows(batches: &[RecordBatch]) -> Vec<(String, String)> {
    batches
        .iter()
        .flat_map(|b| {
            let text = |i: usize| {
                let column = cast(b.column(i), &DataType::Utf8).unwrap();
                column.as_string::<i32>().clone()
            };
            let (state, last) = (text(0), text(1));
            (0..b.num_rows())
                .map(move |i| (state.value(i).to_owned(), last.value(i).to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn replicas_sharing_signing_keys_run_each_others_tickets_and_handles() {
    let a = attack_mesh_with(ATTACK_POLICY, |config| config.push_str(KEYS)).await;
    let b = tokio::task::spawn_blocking({
        let config = a.mesh.config_path.clone();
        move || spawn_replica(&config)
    })
    .await
    .unwrap();

    // Signed in on A, the analyst's token works on B.
    let mut on_a = flight(&a, "analyst").await;
    let token = on_a.token().cloned().expect("a session token");
    let mut on_b = client_with_token(b.flight_sql, &token).await;

    // A statement planned on A runs on B, with the analyst's row filter
    // and mask applied there.
    let sql = "SELECT state, last_name \
               FROM members.public.members ORDER BY member_id";
    let info = on_a.execute(sql.into(), None).await.unwrap();
    let here = rows(&fetch(&mut on_a, ticket(&info)).await.unwrap());
    let there = rows(&fetch(&mut on_b, ticket(&info)).await.unwrap());
    assert!(!there.is_empty());
    assert_eq!(there, here, "the same answer on either replica");
    assert!(there
        .iter()
        .all(|(state, last)| state != "NY" && last == "***"));

    // A prepared statement made and bound on A runs on B (the handle
    // carries the statement and its bound parameter).
    let mut prepared = on_a
        .prepare(
            "SELECT count(*) FROM members.public.members WHERE state = ?".into(),
            None,
        )
        .await
        .unwrap();
    for (state, expected_some) in [("CA", true), ("NY", false)] {
        let param = RecordBatch::try_from_iter([(
            "$1",
            std::sync::Arc::new(datafusion::arrow::array::StringArray::from(vec![state]))
                as datafusion::arrow::array::ArrayRef,
        )])
        .unwrap();
        prepared.set_parameters(param).unwrap();
        let info = prepared.execute().await.unwrap();
        let batches = fetch(&mut on_b, ticket(&info)).await.unwrap();
        let count = batches[0].column(0).as_primitive::<Int64Type>().value(0);
        let here = fetch(&mut on_a, ticket(&info)).await.unwrap();
        let count_on_a = here[0].column(0).as_primitive::<Int64Type>().value(0);
        assert_eq!(count, count_on_a, "state {state}");
        // The analyst's filter hides New York on B as on A.
        assert_eq!(count > 0, expected_some, "state {state}: {count} rows");
    }

    // Another user on B cannot redeem the analyst's ticket.
    let intruder = flight(&a, "intruder").await;
    let intruder_token = intruder.token().cloned().unwrap();
    let mut intruder_on_b = client_with_token(b.flight_sql, &intruder_token).await;
    let refused = fetch(&mut intruder_on_b, ticket(&info)).await.unwrap_err();
    assert!(
        refused.contains("this ticket was issued to another user"),
        "{refused}"
    );

    // A gateway with other keys accepts neither the token nor the ticket.
    let stranger = attack_mesh().await;
    let mut on_c = client_with_token(stranger.mesh.flight_sql_addr(), &token).await;
    let refused = fetch(&mut on_c, ticket(&info)).await.unwrap_err();
    assert!(refused.contains("invalid bearer token"), "{refused}");
    let mut analyst_on_c = flight(&stranger, "analyst").await;
    let refused = fetch(&mut analyst_on_c, ticket(&info)).await.unwrap_err();
    assert!(refused.contains("invalid ticket"), "{refused}");

    // B still serves.
    let info = on_b.execute("SELECT 1 AS one".into(), None).await.unwrap();
    assert_eq!(
        fetch(&mut on_b, ticket(&info)).await.unwrap()[0].num_rows(),
        1
    );
    drop(b);
    a.assert_serving().await;
}

//! Read lineage leaves as OpenLineage run events: to a JSON-lines file and
//! to an HTTP collector (a real HTTP server in the test, as Marquez would
//! be), with the tables and columns each statement read.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::PRODUCTS_POLICY;
use crate::attacks::{attack_mesh_with, simple_rows};

const JOIN: &str = "SELECT m.state, count(*) FROM claims.public.claims c \
     JOIN members.public.members m ON m.member_id = c.member_id GROUP BY m.state";

/// The events of the join (its SQL facet holds the statement as audited),
/// waiting up to five seconds for one (events are sent in the background).
async fn events_for(read: impl Fn() -> Vec<Value>, sql: &str) -> Vec<Value> {
    for _ in 0..50 {
        let found: Vec<Value> = read()
            .into_iter()
            .filter(|e| {
                e["job"]["facets"]["sql"]["query"]
                    .as_str()
                    .is_some_and(|q| q.contains("JOIN members.public.members m"))
            })
            .collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no OpenLineage event for {sql}: {:?}", read());
}

/// The event of the join: both tables, the columns read, the reader.
fn assert_join_event(event: &Value) {
    assert_eq!(event["eventType"], "COMPLETE");
    assert_eq!(event["job"]["name"], "analyst");
    assert_eq!(event["job"]["namespace"], "mesh-test");
    let inputs: Vec<(String, Value)> = event["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["facets"]["schema"]["fields"].clone(),
            )
        })
        .collect();
    assert_eq!(
        inputs,
        [
            (
                "claims.public.claims".to_owned(),
                serde_json::json!([{ "name": "member_id" }])
            ),
            (
                "members.public.members".to_owned(),
                serde_json::json!([{ "name": "member_id" }, { "name": "state" }])
            ),
        ]
    );
    assert_eq!(
        event["run"]["facets"]["meshgate"]["products"],
        serde_json::json!(["claims", "members"])
    );
    let run_id = event["run"]["runId"].as_str().unwrap();
    assert_eq!(run_id.len(), 36, "{run_id}");
}

#[tokio::test]
async fn reads_are_appended_to_an_openlineage_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openlineage.jsonl");
    let mesh = attack_mesh_with(PRODUCTS_POLICY, |config| {
        config.push_str(&format!(
            "\n[products.openlineage]\nfile = \"{}\"\nnamespace = \"mesh-test\"\n",
            path.display()
        ));
    })
    .await;
    let analyst = mesh.pg("analyst").await;
    simple_rows(&analyst, JOIN).await.unwrap();
    // A refused read sends nothing.
    let intruder = mesh.pg("intruder").await;
    assert!(
        simple_rows(&intruder, "SELECT * FROM members.public.members")
            .await
            .is_err()
    );
    let read = || {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect::<Vec<Value>>()
    };
    let events = events_for(read, JOIN).await;
    assert_eq!(events.len(), 1);
    assert_join_event(&events[0]);
    assert!(
        read().iter().all(|e| e["job"]["name"] != "intruder"),
        "{:?}",
        read()
    );
    mesh.assert_serving().await;
}

#[tokio::test]
async fn reads_are_posted_to_an_openlineage_endpoint() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/api/v1/lineage",
        axum::routing::post(move |axum::Json(event): axum::Json<Value>| async move {
            kept.lock().unwrap().push(event);
            axum::http::StatusCode::CREATED
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mesh = attack_mesh_with(PRODUCTS_POLICY, |config| {
        config.push_str(&format!(
            "\n[products.openlineage]\nurl = \"http://{addr}/api/v1/lineage\"\nnamespace = \"mesh-test\"\n"
        ));
    })
    .await;
    let analyst = mesh.pg("analyst").await;
    simple_rows(&analyst, JOIN).await.unwrap();
    let events = events_for(|| received.lock().unwrap().clone(), JOIN).await;
    assert_join_event(&events[0]);
}

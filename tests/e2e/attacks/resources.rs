//! Attacks on shared resources: one query that would take all memory (F6)
//! and one that would run forever (F10). Each is stopped with a clear
//! error and the gateway keeps serving everyone else.

use super::*;

/// 400 MB of strings sorted: far over the test's 64 MiB budget plus
/// 64 MiB of spill space.
const HUGE_SORT: &str =
    "SELECT length(s) FROM (SELECT repeat('x', 20000) || CAST(value AS VARCHAR) AS s \
     FROM range(20000)) t ORDER BY s";

const FOREVER: &str = "SELECT count(*) FROM range(10000000000) WHERE random() < 0.5";

#[tokio::test]
async fn f6_a_query_over_the_memory_budget_fails_with_53200() {
    let mesh = attack_mesh_with(ATTACK_POLICY, |config| {
        config.push_str("\n[limits]\nmemory = \"64MiB\"\nspill = \"64MiB\"\n");
    })
    .await;
    let intruder = mesh.pg("intruder").await;
    let err = intruder.simple_query(HUGE_SORT).await.unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "53200", "{db:?}");
    // The message names what ran out.
    let message = db.message().to_ascii_lowercase();
    assert!(
        message.contains("memory") || message.contains("spill") || message.contains("disk"),
        "{message}"
    );
    // Same over Flight SQL.
    let mut client = flight(&mesh, "intruder").await;
    let err = flight_query(&mut client, HUGE_SORT).await.unwrap_err();
    assert!(err.to_string().contains("[53200]"), "{err}");
    // The connection and the server carry on, and smaller sorts still run.
    let rows = simple_rows(
        &intruder,
        "SELECT value FROM range(100000) ORDER BY value DESC LIMIT 1",
    )
    .await
    .unwrap();
    assert_eq!(rows, vec![vec![Some("99999".to_owned())]]);
    mesh.assert_serving().await;
}

#[tokio::test]
async fn f10_the_server_limits_how_long_any_statement_runs() {
    let mesh = attack_mesh_with(ATTACK_POLICY, |config| {
        config.push_str("\n[limits]\nstatement_timeout = \"1s\"\n");
    })
    .await;
    let intruder = mesh.pg("intruder").await;
    // A session cannot lift the server's limit.
    simple_rows(&intruder, "SET statement_timeout = 0")
        .await
        .unwrap();
    let err = intruder.simple_query(FOREVER).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    // Flight SQL has no session setting at all; the limit holds there too.
    let mut client = flight(&mesh, "intruder").await;
    let err = flight_query(&mut client, FOREVER).await.unwrap_err();
    assert!(err.to_string().contains("[57014]"), "{err}");
    // A session may still shorten it.
    simple_rows(&intruder, "SET statement_timeout = 100")
        .await
        .unwrap();
    let err = intruder.simple_query(FOREVER).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"));
    mesh.assert_serving().await;
}

#[tokio::test]
async fn limits_in_the_config_are_checked_with_file_key_and_problem() {
    let err = config_error("[limits]\nmemory = \"lots\"\n");
    assert!(err.contains("meshgate.toml"), "{err}");
    assert!(err.contains("limits.memory"), "{err}");
    assert!(err.contains("lots"), "{err}");
}

//! A policy store shared by two gateways (`[policy] store`, PostgreSQL): a
//! GRANT on one applies on the other within moments; an invalid edit is
//! refused and changes nothing anywhere.

use std::time::{Duration, Instant};

use meshgate_tests::{pg_port, PgDatabase};

use crate::attacks::{attack_mesh_with, simple_rows, AttackMesh, ATTACK_POLICY};

/// A gateway whose policy lives in `url` (seeded from the attack policy),
/// with an HTTP listener for `/readyz`.
async fn replica(url: &str) -> AttackMesh {
    attack_mesh_with(ATTACK_POLICY, |config| {
        *config = config.replace("[policy]\n", &format!("[policy]\nstore = \"{url}\"\n"));
        config.push_str("\n[listeners.http]\naddress = \"127.0.0.1:0\"\n");
    })
    .await
}

/// What `/readyz` says of the policy store, and the overall status.
async fn store_health(mesh: &AttackMesh) -> (serde_json::Value, String) {
    let addr = mesh.mesh.gateway.http_addr.expect("http listener");
    let (_, _, body) = crate::admin_page::request(addr, "GET", "/readyz", None, None).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        json["policy_store"].clone(),
        json["status"].as_str().unwrap_or("").to_owned(),
    )
}

/// The versions the store keeps.
async fn versions(db: &PgDatabase) -> Vec<i64> {
    db.client
        .query("SELECT version FROM meshgate_policy ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn replicas_sharing_a_policy_store_apply_each_others_grants() {
    let db = PgDatabase::create("mg_policy_store").await;
    let url = format!("postgres://postgres@127.0.0.1:{}/{}", pg_port(), db.name);
    let a = replica(&url).await;
    let b = replica(&url).await;
    // The first gateway seeded the empty store with its policy file.
    let seeded = versions(&db).await;
    assert_eq!(seeded.len(), 1);
    let before = seeded[0];

    // The intruder reads nothing on B; an admin grants on A.
    let intruder_b = b.pg("intruder").await;
    let table = "SELECT count(*) FROM providers.public.providers";
    assert!(simple_rows(&intruder_b, table).await.is_err());
    a.pg("admin")
        .await
        .simple_query("GRANT SELECT ON providers.public.providers TO intruder")
        .await
        .unwrap();
    let granted = Instant::now();
    let mut applied = None;
    while granted.elapsed() < Duration::from_secs(10) {
        if simple_rows(&intruder_b, table).await.is_ok() {
            applied = Some(granted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let applied = applied.expect("the grant reaches the other gateway");
    println!("grant on A applied on B after {applied:?}");

    // An edit that does not fit the catalogs is refused, on either
    // gateway, and the version stays.
    let err = b
        .pg("admin")
        .await
        .simple_query("GRANT SELECT ON nope.public.t TO intruder")
        .await
        .unwrap_err();
    assert!(err.code().is_some(), "{err}");
    // The store keeps every version, and only valid ones; the grant
    // still holds on both.
    assert_eq!(versions(&db).await, [before, before + 1]);
    let intruder_a = a.pg("intruder").await;
    assert!(simple_rows(&intruder_a, table).await.is_ok());
    assert!(simple_rows(&intruder_b, table).await.is_ok());
    let (store, status) = store_health(&b).await;
    assert_eq!(store["status"], "current", "{store}");
    assert_eq!(store["in_force"], before + 1, "{store}");
    assert_eq!(status, "ready");

    // A version written behind meshgate's back that does not parse is not
    // applied: the gateway keeps enforcing the last good policy and says
    // in /readyz that it is behind.
    db.client
        .batch_execute(&format!(
            "INSERT INTO meshgate_policy (version, document) VALUES ({}, 'not = [a policy'); \
             NOTIFY meshgate_policy",
            before + 2
        ))
        .await
        .unwrap();
    let mut stale = serde_json::Value::Null;
    for _ in 0..100 {
        let (store, status) = store_health(&b).await;
        if store["status"] == "stale" {
            assert_eq!(status, "degraded");
            stale = store;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stale["newest"], before + 2, "{stale}");
    assert_eq!(stale["in_force"], before + 1, "{stale}");
    assert!(simple_rows(&intruder_b, table).await.is_ok());
    a.assert_serving().await;
    b.assert_serving().await;
}

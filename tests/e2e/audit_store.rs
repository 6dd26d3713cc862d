//! A shared audit store (`[audit] store`, PostgreSQL): two gateways write
//! their records to one table, and `system.audit.queries` on either
//! answers for both (for admins only); a gateway shut down cleanly loses
//! no record; a store that stops taking records backs up in a bounded
//! buffer, visible in the metrics, while queries go on.

use std::time::{Duration, Instant};

use meshgate_tests::{pg_port, PgDatabase};

use crate::attacks::{attack_mesh_with, simple_rows, sqlstate, AttackMesh, ATTACK_POLICY};

/// A gateway whose audit records also go to `url`, with an HTTP listener.
async fn gateway(url: &str) -> AttackMesh {
    attack_mesh_with(ATTACK_POLICY, |config| {
        // Lands in the `[audit]` table the suite's config ends with.
        config.push_str(&format!("store = \"{url}\"\n"));
        config.push_str(crate::admin_page::HTTP);
    })
    .await
}

/// The `sql` of the audit records `mesh`'s admin reads that mention `marker`.
async fn audited(mesh: &AttackMesh, marker: &str) -> Vec<(String, String)> {
    let admin = mesh.pg("admin").await;
    let sql = format!(
        "SELECT \"user\", sql FROM system.audit.queries \
         WHERE sql LIKE '%{marker}%' AND sql NOT LIKE '%system.audit%' ORDER BY \"time\""
    );
    simple_rows(&admin, &sql)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect()
}

/// Wait (up to 10 s) until `mesh` sees `count` records mentioning `marker`.
async fn await_records(mesh: &AttackMesh, marker: &str, count: usize) -> Vec<(String, String)> {
    let started = Instant::now();
    loop {
        let records = audited(mesh, marker).await;
        if records.len() >= count || started.elapsed() > Duration::from_secs(10) {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A value of the gateway's Prometheus metrics.
async fn metric(mesh: &AttackMesh, name: &str) -> f64 {
    let addr = mesh.mesh.gateway.http_addr.expect("http listener");
    let (_, _, body) = crate::admin_page::request(addr, "GET", "/metrics", None, None).await;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in the metrics:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_audit_answers_for_every_gateway_that_shares_the_store() {
    let db = PgDatabase::create("audit_store").await;
    let url = format!("postgres://postgres@127.0.0.1:{}/{}", pg_port(), db.name);
    let a = gateway(&url).await;
    let b = gateway(&url).await;

    // A statement on each gateway, read back on the other.
    let on_b = b.pg("analyst").await;
    simple_rows(&on_b, "SELECT 'from_b' AS marker")
        .await
        .unwrap();
    let on_a = a.pg("analyst").await;
    simple_rows(&on_a, "SELECT 'from_a' AS marker")
        .await
        .unwrap();
    assert_eq!(
        await_records(&a, "from_b", 1).await,
        vec![("analyst".to_owned(), "SELECT 'from_b' AS marker".to_owned())]
    );
    assert_eq!(await_records(&b, "from_a", 1).await.len(), 1);
    // A denied access is recorded in the store as on the file.
    let hidden = sqlstate(&on_b, "SELECT * FROM claims.internal.fraud_scores_from_b").await;
    assert_eq!(hidden, "42P01");
    let denied = await_records(&a, "fraud_scores_from_b", 1).await;
    assert_eq!(denied.len(), 1, "{denied:?}");

    // The fleet's audit is for admins only, as the file's was.
    let refused = sqlstate(&on_a, "SELECT count(*) FROM system.audit.queries").await;
    assert!(["42501", "42P01"].contains(&refused.as_str()), "{refused}");

    // A record of a statement that ends just before a clean shutdown is in
    // the store once the gateway has stopped.
    simple_rows(&on_b, "SELECT 'last_words_of_b' AS marker")
        .await
        .unwrap();
    drop(on_b);
    let AttackMesh { mesh, dir: _dir } = b;
    mesh.gateway.shutdown().await;
    let rows = db
        .client
        .query(
            "SELECT count(*) FROM meshgate_audit WHERE record->>'sql' LIKE '%last_words_of_b%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    assert_eq!(metric(&a, "meshgate_audit_dropped_total").await, 0.0);
    a.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_taking_records_backs_up_visibly_and_catches_up() {
    let db = PgDatabase::create("audit_backlog").await;
    let url = format!("postgres://postgres@127.0.0.1:{}/{}", pg_port(), db.name);
    let mesh = gateway(&url).await;
    let analyst = mesh.pg("analyst").await;

    // The table is gone: inserts fail, records wait in the buffer, and
    // queries go on.
    db.client
        .batch_execute("ALTER TABLE meshgate_audit RENAME TO meshgate_audit_away")
        .await
        .unwrap();
    for i in 0..5 {
        let rows = simple_rows(&analyst, &format!("SELECT {i} AS waiting_record"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
    }
    let started = Instant::now();
    while metric(&mesh, "meshgate_audit_backlog").await < 5.0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "backlog not shown"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The store is back: the buffered records reach it, none dropped.
    db.client
        .batch_execute("ALTER TABLE meshgate_audit_away RENAME TO meshgate_audit")
        .await
        .unwrap();
    let started = Instant::now();
    while metric(&mesh, "meshgate_audit_backlog").await > 0.0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "backlog not written"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = db
        .client
        .query(
            "SELECT count(*) FROM meshgate_audit WHERE record->>'sql' LIKE '%waiting_record%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 5);
    assert_eq!(metric(&mesh, "meshgate_audit_dropped_total").await, 0.0);
}

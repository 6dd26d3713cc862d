//! Distributed execution: a `meshgate ballista-scheduler` and two
//! `meshgate ballista-executor` processes form a Ballista cluster; a
//! gateway with `[execution] ballista` runs TPC-H queries over Parquet on
//! it, with a row filter and a mask applied, and gets the answers a
//! gateway that runs them itself gets. Plans over other sources stay in
//! the gateway.

use std::process::{Child, Command, Stdio};

use crate::ops::{log_lines, logged_address, meshgate_binary};
use crate::tpch::{mesh, plan_text, rows, write_tpch};

const Q01: &str = include_str!("../../benches/tpch/q01.sql");
const Q03: &str = include_str!("../../benches/tpch/q03.sql");
/// Reads the masked column through a join and a shuffle.
const MASKED: &str = "SELECT c_phone, count(*) AS orders \
    FROM customer JOIN orders ON c_custkey = o_custkey \
    GROUP BY c_phone ORDER BY orders DESC, c_phone LIMIT 3";

/// The cluster's processes, killed when dropped.
struct Cluster {
    processes: Vec<Child>,
    scheduler: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(args: &[&str]) -> Child {
    Command::new(meshgate_binary())
        .args(["--log-format", "json"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a cluster process")
}

/// A scheduler and two executors on ephemeral ports.
fn start_cluster() -> Cluster {
    let mut scheduler = spawn(&["ballista-scheduler", "--bind", "127.0.0.1:0"]);
    let logs = log_lines(scheduler.stderr.take().unwrap());
    let (addr, _) = logged_address(&logs, "Ballista scheduler listening");
    let url = format!("df://{addr}");
    let mut processes = vec![scheduler];
    for _ in 0..2 {
        let mut executor = spawn(&[
            "ballista-executor",
            "--scheduler",
            &url,
            "--bind",
            "127.0.0.1:0",
            "--concurrent-tasks",
            "2",
        ]);
        let logs = log_lines(executor.stderr.take().unwrap());
        logged_address(&logs, "Ballista executor listening");
        processes.push(executor);
    }
    Cluster {
        processes,
        scheduler: url,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tpch_on_ballista_answers_as_the_gateway_does_under_the_policy() {
    let data = tempfile::tempdir().unwrap();
    let catalog = write_tpch(data.path());
    let cluster = tokio::task::spawn_blocking(start_cluster).await.unwrap();
    let distributed = mesh(
        &catalog,
        &format!(
            "[execution]\nballista = \"{}\"\nballista_min_scan_bytes = \"0\"\n",
            cluster.scheduler
        ),
    )
    .await;
    // Same cluster configured, but every scan is under its threshold.
    let local = mesh(
        &catalog,
        &format!(
            "[execution]\nballista = \"{}\"\nballista_min_scan_bytes = \"1TiB\"\n",
            cluster.scheduler
        ),
    )
    .await;

    for user in ["analyst", "admin"] {
        for sql in [Q01, Q03, MASKED] {
            let explain = plan_text(&distributed, user, &format!("EXPLAIN {sql}")).await;
            assert!(explain.contains("BallistaExec"), "{user}: {explain}");
            let kept = plan_text(&local, user, &format!("EXPLAIN {sql}")).await;
            assert!(!kept.contains("BallistaExec"), "{user}: {kept}");
            let on_cluster = rows(&distributed, user, sql).await;
            assert!(!on_cluster.is_empty(), "{user}: {sql}");
            assert_eq!(on_cluster, rows(&local, user, sql).await, "{user}: {sql}");
        }
    }

    // The policy held on the executors: no filtered row, no raw phone.
    let hidden = rows(
        &distributed,
        "analyst",
        "SELECT count(*) FROM lineitem WHERE l_shipmode = 'AIR'",
    )
    .await;
    assert_eq!(hidden, [[Some("0".to_owned())]]);
    let masked = rows(&distributed, "analyst", MASKED).await;
    assert_eq!(masked.len(), 1, "{masked:?}");
    assert_eq!(masked[0][0].as_deref(), Some("***"));
    let raw = rows(&distributed, "admin", MASKED).await;
    assert_ne!(raw[0][0].as_deref(), Some("***"));
    // Flight SQL gets the same answer, streamed from the cluster.
    let mut flight = crate::attacks::flight(&distributed, "analyst").await;
    let qualified = MASKED
        .replace("FROM customer", "FROM tpch.public.customer")
        .replace("JOIN orders", "JOIN tpch.public.orders");
    let batches = crate::attacks::flight_query(&mut flight, &qualified)
        .await
        .unwrap();
    let phones = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(phones.contains("***"), "{phones}");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);

    // A predicate that fails on a hidden row runs above the barrier on the
    // executors too: no error tells the analyst that AIR rows exist.
    let probe = "SELECT count(*) FROM lineitem \
        WHERE 1 / (CASE WHEN l_shipmode = 'AIR' THEN 0 ELSE 1 END) = 1";
    assert!(
        plan_text(&distributed, "analyst", &format!("EXPLAIN {probe}"))
            .await
            .contains("BallistaExec")
    );
    assert_eq!(
        rows(&distributed, "analyst", probe).await,
        rows(&distributed, "analyst", "SELECT count(*) FROM lineitem").await
    );
    // Nor does EXPLAIN show the analyst the policy it runs under.
    let explain = plan_text(&distributed, "analyst", &format!("EXPLAIN {Q01}")).await;
    assert!(
        explain.contains("<policy>") && !explain.contains("AIR"),
        "{explain}"
    );
    // The analyst's rows are fewer than the admin's: the filter applied.
    let count = "SELECT count(*) FROM lineitem";
    assert_ne!(
        rows(&distributed, "analyst", count).await,
        rows(&distributed, "admin", count).await
    );

    // It ran on the cluster: EXPLAIN ANALYZE counts the rows it returned.
    let analyzed = plan_text(&distributed, "admin", &format!("EXPLAIN ANALYZE {Q01}")).await;
    let line = analyzed
        .lines()
        .find(|l| l.contains("BallistaExec"))
        .unwrap_or_else(|| panic!("{analyzed}"));
    assert!(line.contains("output_rows=4"), "{analyzed}");

    // A function of meshgate's own runs in the gateway, and so does the
    // query that calls it.
    let own = "SELECT pg_size_pretty(o_orderkey) FROM orders ORDER BY o_orderkey LIMIT 1";
    let explain = plan_text(&distributed, "admin", &format!("EXPLAIN {own}")).await;
    assert!(!explain.contains("BallistaExec"), "{explain}");
    assert_eq!(
        rows(&distributed, "admin", own).await,
        [[Some("1 bytes".to_owned())]]
    );

    // A Delta table is read by the gateway, whatever its size.
    let delta = plan_text(
        &distributed,
        "admin",
        "EXPLAIN SELECT count(*) FROM claims.public.claims",
    )
    .await;
    assert!(!delta.contains("BallistaExec"), "{delta}");
    distributed.assert_serving().await;
}

#[tokio::test]
async fn a_cluster_that_is_down_is_a_clear_error_and_the_gateway_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let catalog = write_tpch(data.path());
    let port = crate::ops::dead_port();
    let mesh = mesh(
        &catalog,
        &format!(
            "[execution]\nballista = \"df://127.0.0.1:{port}\"\nballista_min_scan_bytes = \"0\"\n"
        ),
    )
    .await;
    let client = mesh.pg("admin").await;
    let err = client
        .simple_query("SELECT sum(o_totalprice) FROM tpch.public.orders")
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("an error from the gateway");
    assert_eq!(db.code().code(), "08006", "{err:?}");
    let db = err.as_db_error().expect("an error from the gateway");
    assert_eq!(db.code().code(), "08006", "{err:?}");
    assert!(db.message().contains("Ballista cluster at"), "{err:?}");
    mesh.assert_serving().await;
}

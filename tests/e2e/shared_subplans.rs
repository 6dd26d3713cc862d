//! A sub-plan a query repeats runs once: TPC-H q15 names its `revenue0`
//! aggregate twice, and meshgate computes it once and reads it in both
//! places — with the answer of a query that computes it once by shape,
//! under each user's policy, over pgwire and Flight SQL.

use crate::tpch::{mesh, plan_text, rows, write_tpch};

const Q15: &str = include_str!("../../benches/tpch/q15.sql");

/// q15's answer asked without repeating `revenue0` (the top supplier by
/// ordering), for comparison.
fn q15_by_order() -> String {
    let head = &Q15[..Q15.find("select s_suppkey").unwrap()];
    format!(
        "{head}select s_suppkey, s_name, s_address, s_phone, total_revenue \
         from supplier, revenue0 where s_suppkey = supplier_no \
         order by total_revenue desc, s_suppkey limit 1"
    )
}

/// The ids of the `SharedSubplanExec` lines of a plan.
fn shared_ids(plan: &str) -> Vec<String> {
    plan.lines()
        .filter_map(|line| line.split("SharedSubplanExec: id=").nth(1))
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_aggregate_runs_once_with_the_same_answer_under_the_policy() {
    let data = tempfile::tempdir().unwrap();
    let catalog = write_tpch(data.path());
    let mesh = mesh(&catalog, "").await;
    let reference = q15_by_order();

    let mut answers = Vec::new();
    for user in ["analyst", "admin"] {
        let explain = plan_text(&mesh, user, &format!("EXPLAIN {Q15}")).await;
        let ids = shared_ids(&explain);
        assert_eq!(ids.len(), 2, "{user}: {explain}");
        assert_eq!(ids[0], ids[1], "{user}: {explain}");
        let once = plan_text(&mesh, user, &format!("EXPLAIN {reference}")).await;
        assert!(shared_ids(&once).is_empty(), "{user}: {once}");
        let answer = rows(&mesh, user, Q15).await;
        assert_eq!(answer.len(), 1, "{user}: {answer:?}");
        assert_eq!(answer, rows(&mesh, user, &reference).await, "{user}");
        answers.push(answer);
    }
    // The analyst's lineitem rows are filtered, in both places.
    assert_ne!(answers[0], answers[1], "the row filter changed the revenue");

    // Run once: of the two copies of the lineitem scan, one read rows.
    let analyzed = plan_text(&mesh, "admin", &format!("EXPLAIN ANALYZE {Q15}")).await;
    let scans: Vec<&str> = analyzed
        .lines()
        .filter(|l| l.contains("DataSourceExec") && l.contains("lineitem"))
        .collect();
    assert_eq!(scans.len(), 2, "{analyzed}");
    let read = scans
        .iter()
        .filter(|l| l.contains("output_rows=") && !l.contains("output_rows=0,"))
        .count();
    assert_eq!(read, 1, "{analyzed}");

    // Users running it at once each get their own policy's answer.
    let mut runs = Vec::new();
    for round in 0..6 {
        let user = if round % 2 == 0 { "analyst" } else { "admin" };
        let mesh = &mesh;
        runs.push(async move { (user, rows(mesh, user, Q15).await) });
    }
    for (user, answer) in futures::future::join_all(runs).await {
        let expected = if user == "analyst" {
            &answers[0]
        } else {
            &answers[1]
        };
        assert_eq!(&answer, expected, "{user}");
    }

    // Flight SQL plans through the same planner.
    let mut flight = crate::attacks::flight(&mesh, "analyst").await;
    let qualified = Q15
        .replace("from lineitem", "from tpch.public.lineitem")
        .replace("from supplier", "from tpch.public.supplier");
    let batches = crate::attacks::flight_query(&mut flight, &qualified)
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    let supplier = answers[0][0][0].as_deref().unwrap();
    assert!(text.contains(supplier), "{text}");
    mesh.assert_serving().await;
}

#[tokio::test]
async fn a_volatile_repeated_aggregate_is_computed_at_each_place() {
    let data = tempfile::tempdir().unwrap();
    let catalog = write_tpch(data.path());
    let mesh = mesh(&catalog, "").await;
    let sql = "WITH r AS (SELECT l_suppkey, sum(l_quantity * random()) AS s \
               FROM lineitem GROUP BY l_suppkey) \
               SELECT count(*) FROM r a JOIN r b ON a.l_suppkey = b.l_suppkey AND a.s = b.s";
    let explain = plan_text(&mesh, "admin", &format!("EXPLAIN {sql}")).await;
    assert!(shared_ids(&explain).is_empty(), "{explain}");
    // Two independent draws: (almost) no supplier's sums are equal.
    let matched = rows(&mesh, "admin", sql).await;
    assert_eq!(matched, [[Some("0".to_owned())]]);
    mesh.assert_serving().await;
}

#[tokio::test]
async fn a_failing_shared_aggregate_fails_the_query_with_its_sqlstate() {
    let data = tempfile::tempdir().unwrap();
    let catalog = write_tpch(data.path());
    let mesh = mesh(&catalog, "").await;
    // q15's shape, with a division by zero inside the repeated aggregate.
    let sql = "WITH r AS (SELECT l_suppkey, \
               sum(l_quantity / (l_linenumber - l_linenumber)) AS s \
               FROM lineitem GROUP BY l_suppkey) \
               SELECT l_suppkey FROM r WHERE s = (SELECT max(s) FROM r)";
    let explain = plan_text(&mesh, "admin", &format!("EXPLAIN {sql}")).await;
    assert_eq!(shared_ids(&explain).len(), 2, "{explain}");
    let client = mesh
        .mesh
        .connect_as("admin", &crate::attacks::password("admin"), "tpch")
        .await
        .unwrap();
    for _ in 0..2 {
        let err = client.simple_query(sql).await.unwrap_err();
        let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
        assert_eq!(db.code().code(), "22012", "{db:?}");
        // The same connection goes on: the shared result is not kept.
        let one = crate::attacks::simple_rows(&client, "SELECT count(*) FROM supplier")
            .await
            .unwrap();
        assert_eq!(one, [[Some("100".to_owned())]]);
    }
    mesh.assert_serving().await;
}

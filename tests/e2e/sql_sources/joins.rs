//! Cross-source joins: the join's build side is the source the statistics
//! say is small (PostgreSQL `reltuples`, MySQL's table rows, Parquet
//! footers), and its keys reach the large side before it is read — into
//! the SQL a database receives, into a Parquet scan as a dynamic filter.

use meshgate_tests::{pg_port, simple_rows as rows, MariaDatabase, PgDatabase, TestMesh};

use super::fixtures::*;

/// The EXPLAIN text of `sql`, every line.
async fn explain(client: &tokio_postgres::Client, sql: &str) -> String {
    rows(
        &client
            .simple_query(&format!("EXPLAIN {sql}"))
            .await
            .unwrap(),
    )
    .into_iter()
    .map(|r| cell(&r[1]).to_owned())
    .collect::<Vec<_>>()
    .join("\n")
}

#[tokio::test]
async fn join_keys_of_the_small_side_reach_the_large_side() {
    let pg = PgDatabase::create("mg_keys").await;
    shop_in_postgres(&pg).await;
    pg.client
        .batch_execute(&format!(
            "ANALYZE accounts; ANALYZE orders; ALTER DATABASE {} SET log_statement = 'all'",
            pg.name
        ))
        .await
        .unwrap();
    let my = MariaDatabase::create("mg_keys");
    products_in_mariadb(&my);
    my.exec("ANALYZE TABLE products");
    let blocks = pg.catalog_toml("sales", pg_port(), "") + &my.catalog_toml("shop", "");
    // The Parquet row filter by join keys is on by default
    // (`filter_probe_rows`).
    let mesh = TestMesh::start_with(|c| c.push_str(&blocks)).await;
    let client = mesh.connect("members").await;

    // One provider (Parquet, 25 rows) joins the accounts in PostgreSQL: the
    // provider side is built, and PostgreSQL is asked only for its key.
    let query = "SELECT a.account_id, a.region FROM providers.public.providers p \
                 JOIN sales.public.accounts a ON a.account_id = p.provider_id \
                 WHERE p.name LIKE '% Clinic 7'";
    let plan = explain(&client, query).await;
    assert!(plan.contains("HashJoinExec"), "{plan}");
    // EXPLAIN shows the scan takes the join's keys; EXPLAIN ANALYZE, which
    // keys it was sent.
    assert!(plan.contains("SourceKeyFilterExec: keys=pending"), "{plan}");
    let analyzed = explain(&client, &format!("ANALYZE {query}")).await;
    let keys = analyzed
        .lines()
        .find(|l| l.contains("SourceKeyFilterExec"))
        .unwrap_or_else(|| panic!("no key filter line:\n{analyzed}"));
    assert!(
        keys.contains("keys=account_id >= 7") && keys.contains("account_id IN (7)"),
        "{keys}"
    );
    let log_start = postgres_log_len();
    let got = rows(&client.simple_query(query).await.unwrap());
    assert_eq!(
        got,
        vec![vec![Some("7".into()), Some(account_region(7).into())]]
    );
    let log = postgres_log_since(log_start).unwrap_or_default();
    let sent = log
        .lines()
        .find(|l| l.contains("meshgate_keys"))
        .unwrap_or_else(|| panic!("no statement narrowed by the join keys:\n{log}"));
    assert!(
        sent.contains("\"account_id\" IN (7)") && sent.contains("\"account_id\" >= 7"),
        "{sent}"
    );

    // The same with MariaDB as the large side.
    let query = format!(
        "SELECT pr.product_id, pr.category FROM providers.public.providers p \
         JOIN shop.{}.products pr ON pr.product_id = p.provider_id \
         WHERE p.name LIKE '% Clinic 3'",
        my.name
    );
    let general_log = mysql_general_log().await;
    let got = rows(&client.simple_query(&query).await.unwrap());
    let logged = meshgate_tests::mysql_exec(
        "",
        &format!(
            "SELECT argument FROM mysql.general_log \
              WHERE argument LIKE '%meshgate_keys%' AND argument LIKE '%{}%'",
            my.name
        ),
    );
    drop(general_log);
    assert_eq!(
        got,
        vec![vec![Some("3".into()), Some(product_category(3).into())]]
    );
    assert!(logged.contains("`product_id` IN (3)"), "{logged}");

    // A few accounts (PostgreSQL) join the providers file, counted per
    // provider first: the accounts are built, and the Parquet scan takes
    // their keys as a dynamic filter.
    let query = "SELECT t.name, a.region FROM sales.public.accounts a \
                 JOIN (SELECT provider_id, min(name) AS name \
                       FROM providers.public.providers WHERE provider_id > 0 \
                       GROUP BY provider_id) t ON t.provider_id = a.account_id \
                 WHERE a.region = 'west' ORDER BY t.name";
    let plan = explain(&client, query).await;
    let scan = plan
        .lines()
        .find(|l| l.contains("DataSourceExec") && l.contains("parquet"))
        .unwrap_or_else(|| panic!("no Parquet scan:\n{plan}"));
    assert!(scan.contains("DynamicFilter"), "{plan}");
    // Its rows whose keys no west account has are dropped as they are
    // read, before the aggregate (the file's one row group holds every
    // key, so the keys skip nothing by statistics): a filter right above
    // the scan keeps only the rows the join will match.
    let expected = (1..=25).filter(|a| account_region(*a) == "west").count();
    let analyzed = explain(&client, &format!("ANALYZE {query}")).await;
    let lines: Vec<&str> = analyzed.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("DataSourceExec") && l.contains("parquet"))
        .unwrap_or_else(|| panic!("no Parquet scan:\n{analyzed}"));
    let above = lines[at.saturating_sub(1)];
    assert!(
        above.contains("FilterExec: DynamicFilter")
            && above.contains(&format!("output_rows={expected},"))
            && lines[at].contains("output_rows=25,"),
        "{analyzed}"
    );
    // PostgreSQL is sent the WHERE on its side and only the columns the
    // join and the result use, not the whole table.
    let remote = plan
        .lines()
        .find(|l| l.contains("VirtualExecutionPlan"))
        .unwrap_or_else(|| panic!("no remote plan in EXPLAIN:\n{plan}"));
    assert!(remote.contains("'west'"), "{remote}");
    assert!(!remote.contains("member_id"), "{remote}");
    let got = rows(&client.simple_query(query).await.unwrap());
    assert_eq!(got.len(), expected, "{got:?}");
    assert!(got.iter().all(|r| cell(&r[1]) == "west"));

    // Joined directly, the join drops those rows itself as it probes: no
    // second evaluation of the same keys above the scan.
    let direct = "SELECT p.name, a.region FROM sales.public.accounts a \
                  JOIN providers.public.providers p ON p.provider_id = a.account_id \
                  WHERE a.region = 'west'";
    let analyzed = explain(&client, &format!("ANALYZE {direct}")).await;
    assert!(analyzed.contains("DynamicFilter"), "{analyzed}");
    assert!(
        !analyzed.contains("FilterExec: DynamicFilter"),
        "{analyzed}"
    );
    let got = rows(&client.simple_query(direct).await.unwrap());
    assert_eq!(got.len(), expected, "{got:?}");

    // What a source may not evaluate the same way stays in the gateway
    // (starts_with is not on MySQL's list, random() must be drawn here);
    // the rest of the WHERE still goes to MariaDB.
    let query = format!(
        "SELECT pr.product_id FROM shop.{}.products pr \
         JOIN providers.public.providers p ON p.provider_id = pr.product_id \
         WHERE starts_with(pr.name, 'product ') AND random() < 2 \
           AND pr.category <> 'none' AND char_length(pr.name) = 9 \
         ORDER BY pr.product_id",
        my.name
    );
    let plan = explain(&client, &query).await;
    let remote = plan
        .lines()
        .find(|l| l.contains("VirtualExecutionPlan"))
        .unwrap_or_else(|| panic!("no remote plan in EXPLAIN:\n{plan}"));
    assert!(remote.contains("'none'"), "{remote}");
    assert!(remote.contains("= 9"), "{remote}");
    assert!(!remote.to_lowercase().contains("starts"), "{remote}");
    assert!(!remote.to_lowercase().contains("rand"), "{remote}");
    let got = rows(&client.simple_query(&query).await.unwrap());
    // "product N" is nine characters for N = 1..9.
    let expected: Vec<Vec<Option<String>>> = (1..=9).map(|p| vec![Some(p.to_string())]).collect();
    assert_eq!(got, expected);
}

//! PostgreSQL and MariaDB sources: types, pushdown (checked in EXPLAIN and in
//! what the source received), a join across PostgreSQL, MariaDB and Parquet,
//! metadata refresh, and a source that goes down and comes back. The
//! policy's filters and masks in pushed SQL are in `policy_pushdown`.

use std::collections::{BTreeMap, HashMap};

use meshgate_tests::{pg_port, simple_rows as rows, MariaDatabase, PgDatabase, TcpProxy, TestMesh};
use tokio_postgres::SimpleQueryMessage;

mod direct;
pub(crate) mod fixtures;
mod flightsql;
mod jdbc;
mod joins;
mod keys;
mod literal_shapes;
mod mariadb;
mod policy_pushdown;
mod shapes;
mod sizes;
mod sqlite;
mod transport;
use fixtures::*;

#[tokio::test]
async fn postgres_types_round_trip() {
    let db = PgDatabase::create("mg_types").await;
    db.client
        .batch_execute(
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
             CREATE TABLE everything (
               id int4 PRIMARY KEY, i2 int2, i8 int8, f4 float4, f8 float8, n numeric(12,3),
               t text, vc varchar(20), c char(3), b bool, d date, tm time, ts timestamp,
               tz timestamptz, iv interval, u uuid, j json, jb jsonb, by bytea,
               ai int4[], at text[], m mood, lsn pg_lsn);
             INSERT INTO everything VALUES
               (1, -32768, 9007199254740993, 1.5, 2.25, 123456789.125,
                'héllo', 'varchar', 'abc', true, '2024-02-29', '13:45:10', '2024-02-29 13:45:10',
                '2024-02-29 13:45:10+02', '1 day 02:03:04', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
                '{\"a\": 1}', '{\"b\": [1, 2]}', '\\xdeadbeef', '{1,2,3}', '{x,y}', 'happy', '0/16B6C50'),
               (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
        )
        .await
        .unwrap();
    let block = db.catalog_toml("pg", pg_port(), "");
    let mesh = TestMesh::start_with(|c| c.push_str(&block)).await;
    let client = mesh.connect("pg").await;

    let got = rows(
        &client
            .simple_query(
                "SELECT id, i2, i8, f4, f8, n, t, vc, c, b, d, tm, ts, tz, iv, u, j, jb, by, ai, at, m
                   FROM pg.public.everything ORDER BY id",
            )
            .await
            .unwrap(),
    );
    let first: Vec<&str> = got[0].iter().map(cell).collect();
    assert_eq!(
        first,
        [
            "1",
            "-32768",
            "9007199254740993",
            "1.5",
            "2.25",
            "123456789.125",
            "héllo",
            "varchar",
            "abc",
            "t",
            "2024-02-29",
            "13:45:10",
            "2024-02-29 13:45:10",
            "2024-02-29 11:45:10+00",
            "1 day 02:03:04",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "{\"a\": 1}",
            "{\"b\": [1, 2]}",
            "\\xdeadbeef",
            "{1,2,3}",
            "{x,y}",
            "happy",
        ]
    );
    assert!(got[1][1..].iter().all(Option::is_none), "{:?}", got[1]);

    // numeric(12,3) keeps its precision and scale in the catalog.
    let numeric = rows(
        &client
            .simple_query(
                "SELECT numeric_precision, numeric_scale FROM information_schema.columns
                  WHERE table_catalog = 'pg' AND table_name = 'everything' AND column_name = 'n'",
            )
            .await
            .unwrap(),
    );
    assert_eq!(numeric, vec![vec![Some("12".into()), Some("3".into())]]);
    // The pg_lsn column has no mapping: it is left out, the table still works.
    let columns = rows(
        &client
            .simple_query(
                "SELECT column_name FROM information_schema.columns
                  WHERE table_catalog = 'pg' AND table_name = 'everything' AND column_name = 'lsn'",
            )
            .await
            .unwrap(),
    );
    assert!(columns.is_empty(), "{columns:?}");
}

#[tokio::test]
async fn aggregate_join_runs_whole_in_postgres() {
    let db = PgDatabase::create("mg_push").await;
    shop_in_postgres(&db).await;
    db.client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET log_statement = 'all'",
            db.name
        ))
        .await
        .unwrap();
    let block = db.catalog_toml("pg", pg_port(), "");
    let mesh = TestMesh::start_with(|c| c.push_str(&block)).await;
    let client = mesh.connect("pg").await;
    let query = "SELECT a.region, count(*) AS n, sum(o.amount) AS total
                   FROM pg.public.orders o JOIN pg.public.accounts a ON o.account_id = a.account_id
                  WHERE o.status = 'paid' AND o.amount BETWEEN 10 AND 95
                  GROUP BY a.region ORDER BY a.region LIMIT 10";

    let explain = rows(
        &client
            .simple_query(&format!("EXPLAIN {query}"))
            .await
            .unwrap(),
    )
    .into_iter()
    .map(|r| format!("{}: {}", cell(&r[0]), cell(&r[1])))
    .collect::<Vec<_>>()
    .join("\n");
    println!("{explain}");
    let remote = explain
        .lines()
        .find(|l| l.contains("VirtualExecutionPlan"))
        .unwrap_or_else(|| panic!("no remote plan in EXPLAIN:\n{explain}"));
    for part in [
        "JOIN", "GROUP BY", "ORDER BY", "LIMIT 10", "count(", "sum(", ">= 10", "'paid'",
    ] {
        assert!(remote.contains(part), "remote SQL lacks {part}: {remote}");
    }
    // Nothing but the remote plan (and its schema adapter) runs in meshgate.
    assert!(!explain.contains("HashJoinExec"), "{explain}");
    assert!(!explain.contains("AggregateExec"), "{explain}");
    assert!(!explain.contains("password"), "{explain}");

    let log_start = postgres_log_len();
    let got = rows(&client.simple_query(query).await.unwrap());
    let mut expected: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for o in 1..=ORDERS {
        let (a, _, cents, status) = order_row(o);
        if status == "paid" && (1000..=9500).contains(&cents) {
            let e = expected.entry(account_region(a)).or_default();
            e.0 += 1;
            e.1 += cents;
        }
    }
    let expected: Vec<Vec<Option<String>>> = expected
        .into_iter()
        .map(|(r, (n, cents))| {
            vec![
                Some(r.to_owned()),
                Some(n.to_string()),
                Some(format!("{}.{:02}", cents / 100, cents % 100)),
            ]
        })
        .collect();
    assert_eq!(got, expected);

    // What PostgreSQL received: one statement with the join and the aggregate.
    let received = meshgate_activity(&db).await;
    assert!(
        received
            .iter()
            .any(|q| q.contains("GROUP BY") && q.contains("JOIN") && q.contains("LIMIT 10")),
        "{received:?}"
    );
    if let Some(log) = postgres_log_since(log_start) {
        let logged: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("GROUP BY") && l.contains("\"accounts\""))
            .collect();
        println!("PostgreSQL log:\n{}", logged.join("\n"));
        assert!(!logged.is_empty(), "statement not in the PostgreSQL log");
    }

    // A prepared statement is optimised once and, as it runs whole in
    // PostgreSQL, sent there once as a statement with a parameter; each
    // execution sends only the value.
    let stmt = client
        .prepare(
            "SELECT a.region, count(*) AS n FROM pg.public.orders o
               JOIN pg.public.accounts a ON o.account_id = a.account_id
              WHERE o.status = $1 GROUP BY a.region ORDER BY a.region",
        )
        .await
        .unwrap();
    for status in ["paid", "refunded", "paid", "lost"] {
        let got: Vec<(String, i64)> = client
            .query(&stmt, &[&status])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut expected: BTreeMap<String, i64> = BTreeMap::new();
        for o in 1..=ORDERS {
            let (a, _, _, s) = order_row(o);
            if s == status {
                *expected.entry(account_region(a).to_owned()).or_default() += 1;
            }
        }
        assert_eq!(got, expected.into_iter().collect::<Vec<_>>(), "{status}");
        let received = meshgate_activity(&db).await;
        assert!(
            received
                .iter()
                .any(|q| q.contains("GROUP BY") && q.contains("$1") && !q.contains("'paid'")),
            "PostgreSQL received the statement with its parameter: {received:?}"
        );
    }
}

#[tokio::test]
async fn postgres_mariadb_and_parquet_join() {
    let pg = PgDatabase::create("mg_join").await;
    shop_in_postgres(&pg).await;
    let my = MariaDatabase::create("mg_join");
    products_in_mariadb(&my);
    let blocks = pg.catalog_toml("sales", pg_port(), "") + &my.catalog_toml("catalog_db", "");
    let mesh = TestMesh::start_with(|c| c.push_str(&blocks)).await;
    let client = mesh.connect("members").await;

    let query = format!(
        "SELECT m.state, p.category, count(*) AS n, sum(o.amount) AS total
           FROM sales.public.orders o
           JOIN sales.public.accounts a ON a.account_id = o.account_id
           JOIN catalog_db.{}.products p ON p.product_id = o.product_id
           JOIN members.public.members m ON m.member_id = a.member_id
          WHERE o.status = 'paid'
          GROUP BY m.state, p.category ORDER BY m.state, p.category",
        my.name
    );
    let remotes = remote_statements(&client, &query).await;
    // One statement per source; the PostgreSQL one joins both of its tables,
    // and neither mentions a table of the other sources.
    assert_eq!(remotes.len(), 2, "{remotes:?}");
    let pg_sql = remotes
        .iter()
        .find(|l| l.contains("name=postgres"))
        .unwrap();
    assert!(
        pg_sql.contains("JOIN") && pg_sql.contains("accounts") && !pg_sql.contains("products"),
        "{pg_sql}"
    );
    let my_sql = remotes.iter().find(|l| l.contains("name=mysql")).unwrap();
    assert!(
        !my_sql.contains("orders") && !my_sql.contains("members"),
        "{my_sql}"
    );

    let got = rows(&client.simple_query(&query).await.unwrap());
    // Independent computation from the generated rows and one read of members.
    let states: HashMap<i64, String> = rows(
        &client
            .simple_query("SELECT member_id, state FROM members.public.members")
            .await
            .unwrap(),
    )
    .into_iter()
    .map(|r| (cell(&r[0]).parse().unwrap(), cell(&r[1]).to_owned()))
    .collect();
    let mut expected: BTreeMap<(String, &str), (i64, i64)> = BTreeMap::new();
    for o in 1..=ORDERS {
        let (a, p, cents, status) = order_row(o);
        if status != "paid" {
            continue;
        }
        let e = expected
            .entry((states[&account_member(a)].clone(), product_category(p)))
            .or_default();
        e.0 += 1;
        e.1 += cents;
    }
    let expected: Vec<Vec<Option<String>>> = expected
        .into_iter()
        .map(|((s, c), (n, cents))| {
            vec![
                Some(s),
                Some(c.to_owned()),
                Some(n.to_string()),
                Some(format!("{}.{:02}", cents / 100, cents % 100)),
            ]
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

#[tokio::test]
async fn source_down_then_back() {
    let db = PgDatabase::create("mg_fault").await;
    shop_in_postgres(&db).await;
    let mut proxy = TcpProxy::start(([127, 0, 0, 1], pg_port()).into()).await;
    let block = db.catalog_toml("sales", proxy.port, "")
        // A second catalog whose credentials the source refuses.
        + &db.catalog_toml("refused", pg_port(), "").replace("user = \"postgres\"", "user = \"no_such_role\"");
    let mesh = TestMesh::start_with(|c| c.push_str(&block)).await;
    let client = mesh.connect("members").await;
    let count = "SELECT count(*) FROM sales.public.orders";
    let ok = rows(&client.simple_query(count).await.unwrap());
    assert_eq!(cell(&ok[0][0]), ORDERS.to_string());

    let err = client
        .simple_query("SELECT * FROM refused.public.orders")
        .await
        .unwrap_err();
    let code = err.code().map(|c| c.code().to_owned()).unwrap_or_default();
    assert!(code.starts_with("08"), "{code}: {err}");
    let message = err.as_db_error().unwrap().message().to_owned();
    assert!(message.contains("catalog `refused`"), "{message}");
    assert!(message.contains("no_such_role"), "{message}");

    proxy.stop();
    let err = client.simple_query(count).await.unwrap_err();
    let code = err.code().map(|c| c.code().to_owned()).unwrap_or_default();
    assert!(code.starts_with("08"), "{code}: {err}");
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("catalog `sales`"),
        "{err:?}"
    );
    // Every other catalog keeps working, on the same connection.
    let members = rows(
        &client
            .simple_query("SELECT count(*) FROM members.public.members")
            .await
            .unwrap(),
    );
    assert_eq!(cell(&members[0][0]), "200");

    proxy.resume().await;
    // The catalog recovers by itself (pooled connections were cut; new ones are made).
    let mut recovered = None;
    for _ in 0..20 {
        match client.simple_query(count).await {
            Ok(r) => {
                recovered = Some(rows(&r));
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
        }
    }
    let recovered = recovered.expect("source back, catalog recovered");
    assert_eq!(cell(&recovered[0][0]), ORDERS.to_string());
}

#[tokio::test]
async fn metadata_is_cached_filtered_and_refreshed() {
    let db = PgDatabase::create("mg_meta").await;
    db.client
        .batch_execute(
            "CREATE SCHEMA hidden; CREATE TABLE hidden.secret (x int);
             CREATE TABLE public.kept (x int); CREATE TABLE public.kept_tmp (x int);
             CREATE VIEW public.kept_view AS SELECT x FROM public.kept;",
        )
        .await
        .unwrap();
    // The source's log shows how often meshgate lists it.
    db.client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET log_statement = 'all'",
            db.name
        ))
        .await
        .unwrap();
    let block = db.catalog_toml(
        "pg",
        pg_port(),
        "metadata_ttl_secs = 3600\nexclude_schemas = [\"hidden\"]\nexclude_tables = [\"*_tmp\"]",
    );
    let mesh = TestMesh::start_with(|c| c.push_str(&block)).await;
    let client = mesh.connect("pg").await;
    let list = "SELECT table_schema || '.' || table_name FROM information_schema.tables
                 WHERE table_catalog = 'pg' AND table_schema NOT IN ('information_schema', 'pg_catalog')
                 ORDER BY 1";
    let tables = |r: Vec<Vec<Option<String>>>| -> Vec<String> {
        r.into_iter().map(|r| cell(&r[0]).to_owned()).collect()
    };
    assert_eq!(
        tables(rows(&client.simple_query(list).await.unwrap())),
        ["public.kept", "public.kept_view"]
    );
    let err = client
        .simple_query("SELECT * FROM pg.hidden.secret")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err}");

    // A new table: cached lists do not show it until a refresh, but a query
    // naming it finds it at once.
    db.client
        .batch_execute(
            "CREATE TABLE public.fresh (y text); INSERT INTO public.fresh VALUES ('new')",
        )
        .await
        .unwrap();
    db.client
        .batch_execute("CREATE TABLE public.later (z int)")
        .await
        .unwrap();
    let fresh = rows(
        &client
            .simple_query("SELECT y FROM pg.public.fresh")
            .await
            .unwrap(),
    );
    assert_eq!(cell(&fresh[0][0]), "new");
    db.client
        .batch_execute("CREATE TABLE public.after_refresh (z int)")
        .await
        .unwrap();
    assert!(!tables(rows(&client.simple_query(list).await.unwrap()))
        .contains(&"public.after_refresh".to_owned()));
    let done = client
        .simple_query("CALL system.refresh_catalog('pg')")
        .await
        .unwrap();
    assert!(done
        .iter()
        .any(|m| matches!(m, SimpleQueryMessage::CommandComplete(_))));
    assert!(tables(rows(&client.simple_query(list).await.unwrap()))
        .contains(&"public.after_refresh".to_owned()));

    let err = client
        .simple_query("CALL system.refresh_catalog('nope')")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42704"), "{err}");

    // A name the source lacks is looked up once, then remembered as absent
    // for a few seconds: repeated queries do not relist the source.
    let log_start = postgres_log_len();
    for _ in 0..3 {
        let err = client
            .simple_query("SELECT * FROM pg.public.nowhere")
            .await
            .unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err}");
    }
    if let Some(log) = postgres_log_since(log_start) {
        let listings = log
            .lines()
            .filter(|l| l.contains(&format!("@{} ", db.name)))
            .filter(|l| l.contains("table_name::text FROM information_schema.tables"))
            .count();
        assert_eq!(listings, 1, "{log}");
    }
    // Even once it exists, until the short memory lapses or a refresh.
    db.client
        .batch_execute("CREATE TABLE public.nowhere (z int)")
        .await
        .unwrap();
    let err = client
        .simple_query("SELECT * FROM pg.public.nowhere")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err}");
    client
        .simple_query("CALL system.refresh_catalog('pg')")
        .await
        .unwrap();
    client
        .simple_query("SELECT * FROM pg.public.nowhere")
        .await
        .unwrap();
}

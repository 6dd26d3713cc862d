//! `pg_table_size` and `pg_total_relation_size` report what each source
//! counts (PostgreSQL's relation sizes, MariaDB's data and index lengths),
//! and only for tables the session may list.

use meshgate_tests::{pg_port, MariaDatabase, PgDatabase};

use crate::attacks::{attack_mesh_with, password, simple_rows};

/// The analyst reads orders, not secret.
const POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst"]
tables = ["shop.public.orders", "market.*.orders"]
"#;

const SIZES: &str = "SELECT c.relname, pg_table_size(c.oid), pg_total_relation_size(c.oid), \
     pg_indexes_size(c.oid) FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_sizes_come_from_the_source_within_the_policy() {
    let pg = PgDatabase::create("mg_sizes").await;
    pg.client
        .batch_execute(
            // No autovacuum: its map forks would change the sizes mid-test.
            "CREATE TABLE orders (id INT PRIMARY KEY, note TEXT) WITH (autovacuum_enabled = false);
             INSERT INTO orders SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g;
             CREATE TABLE secret (id INT PRIMARY KEY, note TEXT) WITH (autovacuum_enabled = false);
             INSERT INTO secret SELECT g, repeat('y', 200) FROM generate_series(1, 500) g;",
        )
        .await
        .unwrap();
    let my = MariaDatabase::create("mg_sizes");
    my.exec(
        "CREATE TABLE orders (id INT PRIMARY KEY, note TEXT, KEY by_note (note(20))) ENGINE=InnoDB;
         INSERT INTO orders SELECT seq, REPEAT('x', 200) FROM seq_1_to_2000;
         ANALYZE TABLE orders;",
    );
    let mesh = attack_mesh_with(POLICY, |config| {
        config.push_str(&pg.catalog_toml("shop", pg_port(), ""));
        config.push_str(&my.catalog_toml("market", ""));
    })
    .await;

    // PostgreSQL: the figures PostgreSQL itself gives.
    let direct = pg
        .client
        .query_one(
            "SELECT pg_table_size('orders')::text, pg_total_relation_size('orders')::text",
            &[],
        )
        .await
        .unwrap();
    let (table, total): (String, String) = (direct.get(0), direct.get(1));
    assert!(table.parse::<i64>().unwrap() > 400_000, "{table}");
    let analyst = mesh
        .mesh
        .connect_as("analyst", &password("analyst"), "shop")
        .await
        .unwrap();
    let indexes = (total.parse::<i64>().unwrap() - table.parse::<i64>().unwrap()).to_string();
    assert_eq!(
        simple_rows(&analyst, SIZES).await.unwrap(),
        [[
            Some("orders".to_owned()),
            Some(table),
            Some(total),
            Some(indexes)
        ]],
        "the analyst sees orders' sizes and nothing of secret"
    );
    // An OID the session has no table for reads NULL; the server goes on.
    let rows = simple_rows(&analyst, "SELECT pg_table_size(c.oid + 100000) FROM pg_catalog.pg_class c WHERE c.relname = 'orders'")
        .await
        .unwrap();
    assert_eq!(rows, [[None]]);

    // MariaDB: DATA_LENGTH, and with INDEX_LENGTH the total.
    let figures = my.exec(
        "SELECT DATA_LENGTH, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES \
          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'orders'",
    );
    let figures: Vec<&str> = figures.split_whitespace().collect();
    let market = mesh
        .mesh
        .connect_as("analyst", &password("analyst"), "market")
        .await
        .unwrap();
    let rows = simple_rows(&market, SIZES).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1].as_deref(), Some(figures[0]), "{rows:?}");
    assert_eq!(rows[0][2].as_deref(), Some(figures[1]), "{rows:?}");
    assert!(figures[1].parse::<i64>().unwrap() > figures[0].parse::<i64>().unwrap());
    mesh.assert_serving().await;
}

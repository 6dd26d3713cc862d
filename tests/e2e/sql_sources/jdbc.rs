//! The PostgreSQL JDBC driver (pgJDBC, Debian's libpostgresql-jdbc-java)
//! through meshgate: the `DatabaseMetaData` calls JDBC tools make answer,
//! keys included, and list only what the policy lets the user see.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use meshgate_tests::{pg_port, PgDatabase};

use crate::attacks::{attack_mesh_with, password, simple_rows};

/// The analyst reads orders and customers, not secret.
const POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst"]
tables = ["shop.public.orders", "shop.public.customers"]
"#;

const DRIVER: &str = "/usr/share/java/postgresql.jar";

/// Compile `tests/java/MetaData.java` and run it; each call's line by name.
fn metadata(url: &str, user: &str) -> HashMap<String, String> {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("java/MetaData.java");
    let classes = tempfile::tempdir().unwrap();
    let status = Command::new("javac")
        .args(["-d"])
        .arg(classes.path())
        .args(["-cp", DRIVER])
        .arg(&source)
        .status()
        .expect("javac (installed by .ci/run)");
    assert!(status.success(), "javac failed");
    let output = Command::new("java")
        .arg("-cp")
        .arg(format!("{DRIVER}:{}", classes.path().display()))
        .args([
            "MetaData",
            url,
            user,
            &password(user),
            "public",
            "customers",
            "orders",
        ])
        .output()
        .expect("java");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .filter_map(|l| l.split_once(' ').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_database_metadata_answers_within_the_policy() {
    let db = PgDatabase::create("mg_jdbc").await;
    db.client
        .batch_execute(
            "CREATE TABLE customers (id INT PRIMARY KEY, name TEXT);
             CREATE TABLE orders (id INT PRIMARY KEY,
               customer_id INT REFERENCES customers (id), total NUMERIC(10, 2));
             CREATE TABLE secret (id INT PRIMARY KEY, customer_id INT REFERENCES customers (id));",
        )
        .await
        .unwrap();
    let mesh = attack_mesh_with(POLICY, |config| {
        config.push_str(&db.catalog_toml("shop", pg_port(), ""));
    })
    .await;
    let addr = mesh.mesh.pgwire_addr();
    let url = format!("jdbc:postgresql://{}:{}/shop", addr.ip(), addr.port());
    let calls = tokio::task::spawn_blocking(move || metadata(&url, "analyst"))
        .await
        .unwrap();
    let call = |name: &str| {
        calls
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: {calls:?}"))
    };

    // Tables and columns, without the hidden one.
    assert_eq!(
        call("getTables"),
        "ok 2 | TABLE_NAME=customers | TABLE_NAME=orders"
    );
    assert_eq!(
        call("getColumns"),
        "ok 2 | COLUMN_NAME=id TYPE_NAME=int4 | COLUMN_NAME=name TYPE_NAME=text"
    );
    // Keys as pgJDBC finds them: through the unique index behind each
    // primary key (pg_class, pg_index, pg_constraint.conindid); the hidden
    // table's foreign key to customers is not among the exported ones.
    assert_eq!(
        call("getPrimaryKeys"),
        "ok 1 | COLUMN_NAME=id PK_NAME=customers_pkey"
    );
    assert_eq!(
        call("getImportedKeys"),
        "ok 1 | PKTABLE_NAME=customers PKCOLUMN_NAME=id FKCOLUMN_NAME=customer_id"
    );
    assert_eq!(
        call("getExportedKeys"),
        "ok 1 | FKTABLE_NAME=orders FKCOLUMN_NAME=customer_id"
    );
    assert_eq!(
        call("getIndexInfo"),
        "ok 1 | INDEX_NAME=customers_pkey COLUMN_NAME=id"
    );
    // Privileges as the policy grants them: the analyst may read, no more.
    assert_eq!(
        call("getTablePrivileges"),
        "ok 1 | GRANTEE=analyst PRIVILEGE=SELECT"
    );
    assert_eq!(
        call("getColumnPrivileges"),
        "ok 2 | COLUMN_NAME=id PRIVILEGE=SELECT | COLUMN_NAME=name PRIVILEGE=SELECT"
    );
    let functions = call("getFunctions");
    assert!(
        functions.starts_with("ok ") && functions.contains("FUNCTION_NAME=abs"),
        "{functions}"
    );

    // The analyst's pg_class has the indexes of the tables they see only,
    // and pg_get_indexdef prints them as PostgreSQL does.
    let pg = mesh
        .mesh
        .connect_as("analyst", &password("analyst"), "shop")
        .await
        .unwrap();
    let rows = simple_rows(
        &pg,
        "SELECT c.relname, pg_get_indexdef(c.oid), pg_get_indexdef(c.oid, 1, false) \
         FROM pg_catalog.pg_class c WHERE c.relkind = 'i' ORDER BY 1",
    )
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            [
                "customers_pkey",
                "CREATE UNIQUE INDEX customers_pkey ON public.customers USING btree (id)",
                "id"
            ]
            .map(|s| Some(s.to_owned())),
            [
                "orders_pkey",
                "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)",
                "id"
            ]
            .map(|s| Some(s.to_owned())),
        ]
    );

    // RowDescription: the table's pg_class.oid and the column's attnum.
    let statement = pg
        .prepare(
            "SELECT o.total, o.id * 2 AS twice, c.name FROM orders o \
             JOIN customers c ON c.id = o.customer_id",
        )
        .await
        .unwrap();
    let oid_of = |table: &'static str| {
        let pg = &pg;
        async move {
            let rows = simple_rows(
                pg,
                &format!(
                    "SELECT c.oid, a.attnum, a.attname FROM pg_catalog.pg_class c \
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
                     WHERE c.relname = '{table}' ORDER BY a.attnum"
                ),
            )
            .await
            .unwrap();
            rows.into_iter()
                .map(|r| {
                    (
                        r[0].as_deref().unwrap().parse::<u32>().unwrap(),
                        r[1].as_deref().unwrap().parse::<i16>().unwrap(),
                        r[2].clone().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let (orders, customers) = (oid_of("orders").await, oid_of("customers").await);
    let total = orders.iter().find(|c| c.2 == "total").unwrap();
    let name = customers.iter().find(|c| c.2 == "name").unwrap();
    let origin = |i: usize| {
        let c = &statement.columns()[i];
        (c.table_oid(), c.column_id())
    };
    assert_eq!(origin(0), (Some(total.0), Some(total.1)));
    assert_eq!(origin(1), (None, None), "a computed column has no table");
    assert_eq!(origin(2), (Some(name.0), Some(name.1)));
    assert_ne!(total.0, name.0);

    // psql's \d lists the key's index as PostgreSQL's psql does.
    let (ok, out, err) =
        tokio::task::block_in_place(|| crate::cli::psql(&mesh.mesh, "shop", "\\d orders"));
    assert!(ok, "{err}");
    assert!(
        out.contains("Indexes:\n    \"orders_pkey\" PRIMARY KEY, btree (id)"),
        "{out}"
    );

    // pg_settings is the session's settings, with the fixed ones drivers read.
    let rows = simple_rows(
        &pg,
        "SELECT name, setting, context FROM pg_catalog.pg_settings \
         WHERE name IN ('max_index_keys', 'TimeZone') ORDER BY name",
    )
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ["TimeZone", "UTC", "user"].map(|s| Some(s.to_owned())),
            ["max_index_keys", "32", "internal"].map(|s| Some(s.to_owned())),
        ]
    );
    pg.simple_query("SET TimeZone = 'Europe/Paris'")
        .await
        .unwrap();
    let rows = simple_rows(
        &pg,
        "SELECT setting FROM pg_settings WHERE name = 'TimeZone'",
    )
    .await
    .unwrap();
    assert_eq!(rows, [[Some("Europe/Paris".to_owned())]]);
    // pgJDBC's ResultSetMetaData finds them by the same numbers.
    // A result column names its table (RowDescription's table OID and
    // column number, looked up in pg_catalog); a computed one names none.
    assert_eq!(call("getTableName"), "ok 2 | customers public name | []");
    mesh.assert_serving().await;
}

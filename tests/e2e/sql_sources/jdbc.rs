//! The PostgreSQL JDBC driver (pgJDBC, Debian's libpostgresql-jdbc-java)
//! through meshgate: the `DatabaseMetaData` calls JDBC tools make answer
//! without error, and list only what the policy lets the user see.

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
    // Calls that failed before: pgJDBC reads max_index_keys from
    // pg_settings before listing foreign keys, getIndexInfo calls
    // pg_get_indexdef, getFunctions pg_get_function_result.
    for name in [
        "getImportedKeys",
        "getExportedKeys",
        "getIndexInfo",
        "getPrimaryKeys",
    ] {
        assert!(call(name).starts_with("ok "), "{name}: {}", call(name));
    }
    let functions = call("getFunctions");
    assert!(
        functions.starts_with("ok ") && functions.contains("FUNCTION_NAME=abs"),
        "{functions}"
    );

    // pg_settings is the session's settings, with the fixed ones drivers read.
    let pg = mesh.pg("analyst").await;
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
    mesh.assert_serving().await;
}

//! SQLite sources: a database file read as a catalog — declared types
//! (also of an empty table), joins and aggregates pushed down as SQLite
//! SQL, a join with another catalog, the policy's filters and masks, and
//! the file left exactly as it was.

use std::path::Path;
use std::process::Command;

use crate::attacks::{attack_mesh_with, simple_rows as attack_rows, sqlstate};

/// Create a SQLite database at `path` with `sql`, through Python's sqlite3.
fn sqlite_file(path: &Path, sql: &str) {
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n\
                  c.executescript(sys.argv[2])\nc.commit()\nc.close()\n";
    let out = Command::new(crate::python_clients::python())
        .args(["-c", script])
        .arg(path)
        .arg(sql)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const SHOP: &str = "
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, added DATE, active BOOLEAN);
CREATE TABLE sales (id INTEGER, item_id INTEGER, qty INTEGER);
CREATE TABLE nothing_yet (a INTEGER, b VARCHAR(10));
CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 2;
INSERT INTO items VALUES (1, 'bolt', 0.5, '2024-01-02', 1), (2, 'nut', 0.25, NULL, 1),
  (3, 'drill', 89.0, '2024-03-04', 0), (4, NULL, 12.5, NULL, NULL);
INSERT INTO sales VALUES (1, 1, 10), (2, 1, 5), (3, 2, 7), (4, 3, 1);
";

const POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst", "user:admin"]
tables = ["lite.main.*", "members.public.members"]

[[row_filters]]
principals = ["user:analyst"]
tables = ["lite.main.items"]
filter = "price < 50"

[[masks]]
principals = ["user:analyst"]
tables = ["lite.main.items"]
column = "name"
mask = "'***'"
"#;

#[tokio::test]
async fn sqlite_files_are_read_only_catalogs_with_pushdown_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.db");
    sqlite_file(&file, SHOP);
    let before = std::fs::read(&file).unwrap();
    let block = format!(
        "[catalogs.lite]\nconnector = \"sqlite\"\npath = \"{}\"\n",
        file.display()
    );
    let mesh = attack_mesh_with(POLICY, |c| c.push_str(&block)).await;
    let admin = mesh.pg("admin").await;

    // Declared types, also of an empty table and a NULL first value.
    let types = attack_rows(
        &admin,
        "SELECT table_name, column_name, data_type FROM lite.information_schema.columns \
         WHERE table_schema = 'main' AND table_name IN ('items', 'nothing_yet') \
         ORDER BY table_name, ordinal_position",
    )
    .await
    .unwrap();
    let types: Vec<Vec<String>> = types
        .into_iter()
        .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
        .collect();
    assert_eq!(
        types,
        [
            ["items", "id", "bigint"],
            ["items", "name", "text"],
            ["items", "price", "double precision"],
            ["items", "added", "text"],
            ["items", "active", "boolean"],
            ["nothing_yet", "a", "bigint"],
            ["nothing_yet", "b", "text"],
        ]
        .map(|r| r.map(str::to_owned).to_vec())
    );
    let empty = attack_rows(&admin, "SELECT * FROM lite.main.nothing_yet")
        .await
        .unwrap();
    assert!(empty.is_empty());

    // A join and an aggregate go to SQLite whole.
    let query = "SELECT i.name, sum(s.qty) AS sold FROM lite.main.sales s \
                 JOIN lite.main.items i ON i.id = s.item_id GROUP BY i.name ORDER BY i.name";
    let sold = attack_rows(&admin, query).await.unwrap();
    assert_eq!(
        sold,
        [["bolt", "15"], ["drill", "1"], ["nut", "7"]]
            .map(|r| r.map(|c| Some(c.to_owned())).to_vec())
    );
    let explain = attack_rows(&admin, &format!("EXPLAIN {query}"))
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(explain.contains("JOIN"), "{explain}");
    assert!(!explain.contains("HashJoinExec"), "{explain}");
    // The view, and a join with another catalog.
    let cheap = attack_rows(&admin, "SELECT name FROM lite.main.cheap ORDER BY id")
        .await
        .unwrap();
    assert_eq!(cheap, [[Some("bolt".to_owned())], [Some("nut".to_owned())]]);
    let across = attack_rows(
        &admin,
        "SELECT count(*) FROM lite.main.items i JOIN members.public.members m \
         ON m.member_id = i.id + (SELECT min(member_id) - 1 FROM members.public.members)",
    )
    .await
    .unwrap();
    assert_eq!(across[0][0].as_deref(), Some("4"));

    // The analyst's filter and mask hold on the pushed-down SQL.
    let analyst = mesh.pg("analyst").await;
    let seen = attack_rows(
        &analyst,
        "SELECT name, price FROM lite.main.items ORDER BY price",
    )
    .await
    .unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen
        .iter()
        .all(|r| r[0].as_deref() == Some("***") && r[1].as_deref() != Some("89")));
    // Writes are refused, and the file is untouched (no journal mode
    // change, no write-ahead log).
    assert_eq!(
        sqlstate(&admin, "INSERT INTO lite.main.items (id) VALUES (9)").await,
        "25006"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert!(!dir.path().join("shop.db-wal").exists());
    mesh.assert_serving().await;
}

#[test]
fn a_missing_sqlite_file_names_the_catalog_and_the_key() {
    let err = crate::attacks::config_error(
        "[listeners.pgwire]\naddress = \"127.0.0.1:0\"\n\
         [catalogs.lite]\nconnector = \"sqlite\"\npath = \"\"\n",
    );
    assert!(err.contains("catalogs.lite.path"), "{err}");
}

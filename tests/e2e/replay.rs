//! Replays the start-up and catalog-browsing queries real BI tools send
//! (`tests/replay/*.sql`, gathered from the tools' public sources and logs;
//! each file's header names its sources) against a gateway over the demo
//! mesh, connected to the `members` database like the tools would be.

use std::path::PathBuf;

use meshgate_tests::TestMesh;

/// Statements of a fixture file: blocks separated by lines holding `---`,
/// the header (the first block) skipped.
fn statements(file: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("replay")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split("\n---\n")
        .skip(1)
        .map(|block| block.trim().to_owned())
        .filter(|block| {
            block
                .lines()
                .any(|l| !l.trim_start().starts_with("--") && !l.trim().is_empty())
        })
        .collect()
}

/// Run every statement of `file`; return how many there are and the ones
/// that failed, with their errors. Every statement must run.
async fn replay(mesh: &TestMesh, file: &str) -> (usize, Vec<String>) {
    let client = mesh.connect("members").await;
    let statements = statements(file);
    let mut failures = Vec::new();
    for sql in &statements {
        if let Err(e) = client.simple_query(sql).await {
            let message = e
                .as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_else(|| e.to_string());
            let first = sql
                .lines()
                .find(|l| !l.trim_start().starts_with("--"))
                .unwrap_or_default();
            failures.push(format!("{file}: {:.80} -> {message:.160}", first.trim()));
            // A failed statement aborts nothing outside a transaction; be sure.
            let _ = client.simple_query("ROLLBACK").await;
        }
    }
    (statements.len(), failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bi_tool_startup_queries_replay() {
    let mesh = TestMesh::start().await;
    let mut total = 0;
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for file in [
        "dbeaver.sql",
        "metabase.sql",
        "superset.sql",
        "tableau.sql",
        "powerbi.sql",
        "datagrip.sql",
    ] {
        let (n, failed) = replay(&mesh, file).await;
        lines.push(format!("{file}: {}/{n} statements ran", n - failed.len()));
        total += n;
        failures.extend(failed);
    }
    println!("{}", lines.join("\n"));
    assert!(total >= 70, "fixtures hold {total} statements");
    assert!(failures.is_empty(), "failed statements: {failures:#?}");

    // Results are typed as the tools expect them.
    let client = mesh.connect("members").await;
    let rows_of = |sql: String| {
        let client = &client;
        async move {
            meshgate_tests::simple_rows(
                &client.simple_query(&sql).await.expect("replayed statement"),
            )
        }
    };
    let find = |file: &str, marker: &str| {
        statements(file)
            .into_iter()
            .find(|s| s.contains(marker))
            .unwrap_or_else(|| panic!("{file} holds {marker}"))
    };
    // Npgsql (Power BI) loads its type map: base types and their arrays.
    let rows = rows_of(find("powerbi.sql", "Npgsql 10.0.3 GenerateLoadTypesQuery")).await;
    let typtype = |name: &str| {
        rows.iter()
            .find(|r| r[2].as_deref() == Some(name))
            .and_then(|r| r[3].clone())
    };
    assert_eq!(typtype("int4").as_deref(), Some("b"));
    assert_eq!(
        typtype("_int4").as_deref(),
        Some("a"),
        "arrays are found through typreceive"
    );
    // pgjdbc (DBeaver): `typinput = 'array_in'::regproc` tells arrays apart.
    let rows = rows_of(find(
        "dbeaver.sql",
        "typinput='pg_catalog.array_in'::regproc",
    ))
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0][0].as_deref(),
        Some("t"),
        "oid 1034 (_aclitem) is an array"
    );
    // pgjdbc getPrimaryKeys (Metabase, DataGrip): meshgate tables declare none.
    let rows = rows_of(find("metabase.sql", "_pg_expandarray")).await;
    assert!(rows.is_empty(), "{rows:?}");
}

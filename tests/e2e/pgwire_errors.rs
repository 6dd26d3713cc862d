//! Each class of error carries its SQLSTATE, and the connection keeps working.

use meshgate_tests::TestMesh;

const CASES: &[(&str, &str)] = &[
    ("SELEC 1", "42601"),
    ("SELECT * FROM no_such_table", "42P01"),
    ("SELECT * FROM no_such_catalog.public.t", "42P01"),
    ("SELECT no_such_column FROM members", "42703"),
    ("SELECT no_such_function(1)", "42883"),
    ("SELECT 1 / 0", "22012"),
    ("SELECT CAST('abc' AS INT)", "22P02"),
    ("CREATE TABLE t (a INT)", "25006"),
    ("SET no_such_setting = 1", "42704"),
];

#[tokio::test]
async fn simple_query_errors_have_sqlstates_and_the_connection_survives() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    for (sql, code) in CASES {
        let err = client.simple_query(sql).await.expect_err(sql);
        assert_eq!(err.code().map(|c| c.code()), Some(*code), "{sql}: {err}");
        let rows = client
            .simple_query("SELECT 1")
            .await
            .expect("connection still usable");
        assert_eq!(rows.len(), 3, "after {sql}"); // RowDescription, Row, CommandComplete
    }
}

#[tokio::test]
async fn extended_query_errors_have_sqlstates_and_the_connection_survives() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    for (sql, code) in CASES {
        let err = client.query(*sql, &[]).await.expect_err(sql);
        assert_eq!(err.code().map(|c| c.code()), Some(*code), "{sql}: {err}");
        let row = client
            .query_one("SELECT 2::bigint", &[])
            .await
            .expect("connection still usable");
        assert_eq!(row.get::<_, i64>(0), 2);
    }
}

#[tokio::test]
async fn later_statements_of_a_failed_simple_query_are_skipped() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    client
        .batch_execute(
            "SET application_name = 'before'; SELECT 1/0; SET application_name = 'after'",
        )
        .await
        .expect_err("division by zero");
    let rows = client.simple_query("SHOW application_name").await.unwrap();
    let value = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("before"));
}

#[tokio::test]
async fn wrong_or_unknown_credentials_are_refused_with_28p01() {
    let mesh = TestMesh::start().await;
    for (user, password) in [("analyst", "wrong"), ("nobody", "meshgate")] {
        let Err(err) = mesh.connect_as(user, password, "members").await else {
            panic!("bad credentials must fail for {user}");
        };
        assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{user}: {err}");
    }
    // The server keeps serving good clients.
    let client = mesh.connect("members").await;
    client.simple_query("SELECT 1").await.unwrap();
}

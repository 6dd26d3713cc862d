//! Session behaviour: transaction blocks, statement_timeout, cancellation.

use std::time::Duration;

use meshgate_tests::TestMesh;

/// Slow by construction: ten billion rows through a volatile predicate,
/// which no statistics or constant folding can answer early.
const SLOW: &str = "SELECT count(*) FROM range(10000000000) WHERE random() < 0.5";

fn code(err: &tokio_postgres::Error) -> Option<&str> {
    err.code().map(|c| c.code())
}

#[tokio::test]
async fn an_error_in_a_transaction_block_requires_rollback() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    client.batch_execute("BEGIN").await.unwrap();
    let err = client.simple_query("SELECT * FROM nope").await.unwrap_err();
    assert_eq!(code(&err), Some("42P01"));
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(code(&err), Some("25P02"), "{err}");
    let err = client.query("SELECT 1::bigint", &[]).await.unwrap_err();
    assert_eq!(code(&err), Some("25P02"), "extended protocol too: {err}");
    client.batch_execute("ROLLBACK").await.unwrap();
    let rows = client.query("SELECT 1::bigint", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    // Outside a block an error does not poison the session.
    client.simple_query("SELECT * FROM nope").await.unwrap_err();
    client.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn statement_timeout_is_enforced() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    client
        .batch_execute("SET statement_timeout = 300")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = client.simple_query(SLOW).await.unwrap_err();
    assert_eq!(code(&err), Some("57014"), "{err}");
    let message = err
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_default();
    assert!(message.contains("statement timeout"), "{message}");
    let err = client.query(SLOW, &[]).await.unwrap_err();
    assert_eq!(code(&err), Some("57014"), "extended: {err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    client
        .batch_execute("RESET statement_timeout")
        .await
        .unwrap();
    let row = client
        .query_one("SELECT count(*) FROM members", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 200);
}

#[tokio::test]
async fn cancel_request_stops_a_running_query() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let err = client.simple_query(SLOW).await.unwrap_err();
    assert_eq!(code(&err), Some("57014"), "{err}");
    canceller.await.unwrap().unwrap();
    let rows = client.simple_query("SELECT 1").await.unwrap();
    assert_eq!(rows.len(), 3, "connection usable after cancel");
}

/// Functions and statements drivers and BI tools send while connecting.
#[tokio::test]
async fn postgres_functions_and_session_statements_answer_like_postgresql() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    let cases: &[(&str, Option<&str>)] = &[
        ("SELECT current_setting('DateStyle')", Some("ISO, MDY")),
        ("SELECT current_database()", Some("members")),
        ("SELECT current_user", Some("analyst")),
        ("SELECT pg_get_userbyid(10)", Some("analyst")),
        ("SELECT pg_encoding_to_char(6)", Some("UTF8")),
        ("SELECT format_type(23, NULL)", Some("integer")),
        ("SELECT quote_ident('a b')", Some("\"a b\"")),
        ("SELECT current_schema()", Some("public")),
        ("SELECT array_upper(ARRAY[4, 5, 6], 1)", Some("3")),
        (
            "SELECT count(*) FROM generate_series(1, array_upper(ARRAY[4, 5, 6], 1))",
            Some("3"),
        ),
        ("SELECT count(*) > 100 FROM pg_get_keywords()", Some("t")),
        ("SELECT obj_description(0, 'pg_class')", None),
        ("SELECT col_description(0, 1)", None),
        ("SELECT to_regtype('int4')", Some("23")),
        ("SELECT to_regtype('hstore')", None),
        ("SELECT has_table_privilege('members', 'SELECT')", Some("t")),
        ("SHOW transaction isolation level", Some("read committed")),
        (
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public'",
            Some("members"),
        ),
        ("SELECT rolname FROM pg_catalog.pg_roles", Some("analyst")),
    ];
    for (sql, expected) in cases {
        let messages = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        let value = messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
            _ => None,
        });
        assert_eq!(value, Some(expected.map(str::to_owned)), "{sql}");
    }
    for statement in [
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "START TRANSACTION READ ONLY",
        "SAVEPOINT s1",
        "RELEASE SAVEPOINT s1",
        "COMMIT",
        "DISCARD ALL",
        "DEALLOCATE ALL",
        "UNLISTEN *",
        "SELECT pg_advisory_unlock_all()",
        "RESET ALL",
    ] {
        client
            .batch_execute(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e:?}"));
    }
    client
        .batch_execute("SET search_path = public")
        .await
        .unwrap();
    let rows = client
        .simple_query("SELECT current_setting('search_path')")
        .await
        .unwrap();
    assert!(
        matches!(&rows[1], tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("public"))
    );
}

//! Simple and extended queries through tokio-postgres, and the cross-domain join.

use std::collections::HashMap;

use meshgate_gateway::demo::{CLAIMS, CROSS_DOMAIN_JOIN, MEMBERS, PROVIDERS};
use meshgate_tests::{simple_rows, TestMesh};
use rust_decimal::Decimal;
use tokio_postgres::SimpleQueryMessage;

#[tokio::test]
async fn simple_query_runs_several_statements_in_one_message() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    let messages = client
        .simple_query("SELECT count(*) FROM members; SELECT 'two' AS n; SHOW search_path")
        .await
        .unwrap();
    let rows = simple_rows(&messages);
    assert_eq!(rows[0][0].as_deref(), Some(MEMBERS.to_string().as_str()));
    assert_eq!(rows[1][0].as_deref(), Some("two"));
    assert_eq!(rows[2][0].as_deref(), Some("\"$user\", public"));
    let completions = messages
        .iter()
        .filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_)))
        .count();
    assert_eq!(completions, 3);
}

/// Texts of one shape (see README "Direct statements") answer exactly as
/// the same comparison written so that it is planned on its own.
#[tokio::test]
async fn literal_shapes_answer_as_their_texts_do() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("claims").await;
    let count = |sql: String| {
        let client = &client;
        async move { simple_rows(&client.simple_query(&sql).await.unwrap())[0][0].clone() }
    };
    // amount is decimal(10, 2): exact decimals bind, others are planned as
    // written; both forms must agree for every value.
    for value in [
        "100",
        "1000.5",
        "1000.25",
        "1000.005",
        "99999999.99",
        "1e3",
        "0",
    ] {
        let shaped = count(format!(
            "SELECT count(*) FROM claims WHERE amount > {value}"
        ))
        .await;
        let written = count(format!(
            "SELECT count(*) FROM claims WHERE amount > {value} + 0"
        ))
        .await;
        assert_eq!(shaped, written, "amount > {value}");
    }
    for id in [1, 2, 7] {
        let shaped = count(format!(
            "SELECT count(*) FROM claims WHERE member_id = {id}"
        ))
        .await;
        let written = count(format!(
            "SELECT count(*) FROM claims WHERE member_id = {id} + 0"
        ))
        .await;
        assert_eq!(shaped, written, "member_id = {id}");
    }
}

#[tokio::test]
async fn extended_query_binds_inferred_and_declared_parameters() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    // Inferred: member_id is BIGINT, state is text.
    let stmt = client
        .prepare("SELECT member_id, state FROM members WHERE member_id = $1 AND state <> $2")
        .await
        .unwrap();
    assert_eq!(
        stmt.params(),
        &[
            tokio_postgres::types::Type::INT8,
            tokio_postgres::types::Type::TEXT
        ]
    );
    assert_eq!(
        stmt.columns()[0].type_(),
        &tokio_postgres::types::Type::INT8
    );
    let rows = client.query(&stmt, &[&1005i64, &"XX"]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>(0), 1005);
    // The same named statement runs again with other values (from its
    // kept optimised plan).
    for id in [1199i64, 1000, 1042, 5000] {
        let rows = client.query(&stmt, &[&id, &"XX"]).await.unwrap();
        let got: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let expected: Vec<i64> = (1000..1200).filter(|&m| m == id).collect();
        assert_eq!(got, expected, "member {id}");
    }
    // A LIKE pattern with its own escape character, bound as a parameter.
    let like = client
        .prepare("SELECT count(*) FROM members WHERE 'a_b' LIKE $1 ESCAPE '/' AND member_id < $2")
        .await
        .unwrap();
    let n: i64 = client
        .query_one(&like, &[&"a/_b", &1010i64])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10);
    let n: i64 = client
        .query_one(&like, &[&"a/_c", &1010i64])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // Functions that are not immutable are evaluated at every execution.
    let clock = client
        .prepare("SELECT CAST(now() AS TEXT) AS t FROM members WHERE member_id = $1")
        .await
        .unwrap();
    let first: String = client.query_one(&clock, &[&1000i64]).await.unwrap().get(0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second: String = client.query_one(&clock, &[&1000i64]).await.unwrap().get(0);
    assert_ne!(first, second, "now() is not frozen in the kept plan");
    // Declared types (Parse carries OIDs) are honoured.
    let typed = client
        .prepare_typed(
            "SELECT $1::bigint + 1 AS n",
            &[tokio_postgres::types::Type::INT8],
        )
        .await
        .unwrap();
    let row = client.query_one(&typed, &[&41i64]).await.unwrap();
    assert_eq!(row.get::<_, i64>("n"), 42);
}

#[tokio::test]
async fn portals_fetch_in_chunks_and_transactions_report_status() {
    let mesh = TestMesh::start().await;
    let mut client = mesh.connect("members").await;
    let tx = client.transaction().await.unwrap();
    let portal = tx
        .bind("SELECT member_id FROM members ORDER BY member_id", &[])
        .await
        .unwrap();
    let first = tx.query_portal(&portal, 50).await.unwrap();
    let second = tx.query_portal(&portal, 50).await.unwrap();
    let rest = tx.query_portal(&portal, 0).await.unwrap();
    assert_eq!(first.len(), 50);
    assert_eq!(second.len(), 50);
    assert_eq!(first.len() + second.len() + rest.len(), MEMBERS);
    assert_eq!(second[0].get::<_, i64>(0), 1050);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn database_and_search_path_pick_default_catalog_and_schema() {
    // Move the providers table into a schema of its own.
    let mesh = TestMesh::start_with(|config| {
        *config = config.replace(
            "path = \"providers.parquet\"",
            "path = \"providers.parquet\"\nschema = \"network\"",
        );
    })
    .await;
    let claims = mesh.connect("claims").await;
    let row = claims
        .query_one("SELECT count(*) FROM claims", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), CLAIMS as i64);

    let providers = mesh.connect("providers").await;
    let err = providers
        .query_one("SELECT count(*) FROM providers", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err}");
    providers
        .batch_execute("SET search_path TO nowhere, network")
        .await
        .unwrap();
    let row = providers
        .query_one("SELECT count(*) FROM providers", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), PROVIDERS as i64);

    // The start-up packet's options can set it too.
    let addr = mesh.pgwire_addr();
    let (client, conn) = tokio_postgres::Config::new()
        .host(addr.ip().to_string())
        .port(addr.port())
        .user("analyst")
        .password("meshgate")
        .dbname("providers")
        .options("-c search_path=network")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one("SELECT count(*) FROM providers", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), PROVIDERS as i64);

    // Unknown database names are refused at start-up with 3D000.
    let Err(err) = mesh.connect_as("analyst", "meshgate", "no_such_db").await else {
        panic!("unknown database must be refused");
    };
    assert_eq!(err.code().map(|c| c.code()), Some("3D000"), "{err}");
}

/// The join computed by meshgate must equal the same join computed here from
/// the three tables read one by one.
#[tokio::test]
async fn three_catalog_join_matches_an_independent_computation() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;

    let members: HashMap<i64, String> = client
        .query("SELECT member_id, state FROM members.public.members", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let providers: HashMap<i32, String> = client
        .query(
            "SELECT provider_id, specialty FROM providers.public.providers",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!((members.len(), providers.len()), (MEMBERS, PROVIDERS));
    let mut expected: HashMap<(String, String), (i64, Decimal)> = HashMap::new();
    for claim in client
        .query(
            "SELECT member_id, provider_id, amount, status FROM claims.public.claims",
            &[],
        )
        .await
        .unwrap()
    {
        if claim.get::<_, String>(3) != "approved" {
            continue;
        }
        let key = (
            members[&claim.get::<_, i64>(0)].clone(),
            providers[&claim.get::<_, i32>(1)].clone(),
        );
        let entry = expected.entry(key).or_insert((0, Decimal::ZERO));
        entry.0 += 1;
        entry.1 += claim.get::<_, Decimal>(2);
    }
    let mut expected: Vec<_> = expected.into_iter().collect();
    expected.sort_by_key(|(_, (_, total))| std::cmp::Reverse(*total));

    let rows = client.query(CROSS_DOMAIN_JOIN, &[]).await.unwrap();
    assert_eq!(rows.len(), 5);
    for (row, ((state, specialty), (count, total))) in rows.iter().zip(&expected) {
        assert_eq!(&row.get::<_, String>("state"), state);
        assert_eq!(&row.get::<_, String>("specialty"), specialty);
        assert_eq!(row.get::<_, i64>("claims"), *count);
        assert_eq!(row.get::<_, Decimal>("total"), *total);
    }
}

#[tokio::test]
async fn unnamed_function_columns_are_named_like_postgresql() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    let stmt = client
        .prepare("SELECT count(*), max(member_id), state FROM members GROUP BY state ORDER BY count(*) DESC, state LIMIT 1")
        .await
        .unwrap();
    let names: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["count", "max", "state"]);
    // A name already in the list is not reused; set operations take the first branch's names.
    let stmt = client
        .prepare("SELECT count(*) AS max, max(member_id) FROM members UNION ALL SELECT 1, 2")
        .await
        .unwrap();
    let names: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names[0], "max");
    assert_ne!(names[1], "max");
}

#[tokio::test]
async fn information_schema_speaks_postgresql_types() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    let rows = meshgate_tests::simple_rows(
        &client
            .simple_query(
                "SELECT table_catalog, column_name, ordinal_position, data_type, udt_name, \
                        numeric_precision, numeric_scale \
                   FROM information_schema.columns \
                  WHERE table_schema = 'public' AND column_name IN ('member_id', 'state', 'service_date', 'amount') \
                  ORDER BY table_catalog, ordinal_position",
            )
            .await
            .unwrap(),
    );
    let row = |catalog: &str, column: &str| {
        rows.iter()
            .find(|r| r[0].as_deref() == Some(catalog) && r[1].as_deref() == Some(column))
            .unwrap_or_else(|| panic!("{catalog}.{column} in {rows:?}"))
            .iter()
            .skip(2)
            .map(|v| v.as_deref().unwrap_or("NULL").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("members", "member_id"),
        ["1", "bigint", "int8", "64", "0"]
    );
    assert_eq!(
        row("members", "state"),
        ["4", "text", "text", "NULL", "NULL"]
    );
    assert_eq!(
        row("claims", "service_date"),
        ["4", "date", "date", "NULL", "NULL"]
    );
    assert_eq!(row("claims", "amount")[1..3], ["numeric", "numeric"]);
    // The information_schema._pg_* helpers, as tools call them on pg_attribute.
    let helpers = meshgate_tests::simple_rows(
        &client
            .simple_query(
                "SELECT information_schema._pg_numeric_precision(a.atttypid, a.atttypmod), \
                        information_schema._pg_numeric_scale(a.atttypid, a.atttypmod), \
                        information_schema._pg_char_max_length(a.atttypid, a.atttypmod), \
                        information_schema._pg_datetime_precision(a.atttypid, a.atttypmod) \
                   FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                  WHERE c.relname = 'members' AND a.attname IN ('member_id', 'birth_date') \
                  ORDER BY a.attnum",
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        helpers,
        vec![
            vec![Some("64".into()), Some("0".into()), None, None],
            vec![None, None, None, Some("0".into())],
        ]
    );
    // The constraint views exist (Power BI reads foreign keys from them); meshgate tables declare none.
    for view in [
        "table_constraints",
        "key_column_usage",
        "referential_constraints",
        "constraint_column_usage",
    ] {
        let n = client
            .simple_query(&format!("SELECT * FROM information_schema.{view}"))
            .await
            .unwrap_or_else(|e| panic!("{view}: {e}"));
        assert!(meshgate_tests::simple_rows(&n).is_empty(), "{view}");
    }
}

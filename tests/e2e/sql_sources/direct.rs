//! Direct statements: a prepared statement that runs whole at a PostgreSQL
//! source goes there as one parameterised statement (no DataFusion
//! physical plan, one round trip), and still answers as the policy says.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Int32Array, RecordBatch};
use meshgate_tests::{extra_user, pg_port, PgDatabase, TestMesh};

use super::fixtures::*;

pub(super) const ACCOUNTS: i32 = 60;

fn region(id: i32) -> &'static str {
    ["north", "south", "east"][(id % 3) as usize]
}
fn balance(id: i32) -> f64 {
    f64::from(id) * 10.5
}

/// auditor reads everything; clerk only the north, with owners masked;
/// intruder has no grant.
pub(super) const POLICY: &str = r#"
[[grants]]
effect = "allow"
principals = ["user:clerk", "user:auditor"]
tables = ["pg.public.*"]

[[row_filters]]
principals = ["user:clerk"]
tables = ["pg.public.accounts"]
filter = "region = 'north'"

[[masks]]
principals = ["user:clerk"]
tables = ["pg.public.accounts"]
column = "owner"
mask = "concat(left(owner, 1), '***')"
"#;

pub(super) async fn direct_mesh() -> (TestMesh, PgDatabase, tempfile::TempDir) {
    let db = PgDatabase::create("mg_direct").await;
    let rows: Vec<String> = (1..=ACCOUNTS)
        .map(|i| {
            format!(
                "({i}, 'owner{i}', '{}', {}, DATE '2024-01-01' + {i})",
                region(i),
                balance(i)
            )
        })
        .collect();
    db.client
        .batch_execute(&format!(
            "CREATE TABLE accounts (id int PRIMARY KEY, owner text, region text NOT NULL,
                                    balance float8, opened date);
             INSERT INTO accounts VALUES {};
             INSERT INTO accounts VALUES (1000, NULL, 'north', NULL, NULL);
             CREATE TABLE numbers AS SELECT g::int AS n FROM generate_series(1, 10000) g;",
            rows.join(",")
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let blocks = db.catalog_toml("pg", pg_port(), "")
        + &extra_user("clerk", "clerk-pw")
        + &extra_user("auditor", "auditor-pw")
        + &extra_user("intruder", "intruder-pw")
        + &format!(
            "\n[policy]\nfile = \"{}\"\n[audit]\nfile = \"{}\"\n",
            policy.display(),
            dir.path().join("audit.jsonl").display()
        );
    let mesh = TestMesh::start_with(|c| c.push_str(&blocks)).await;
    (mesh, db, dir)
}

#[tokio::test]
async fn prepared_lookups_run_at_the_source_with_parameters() {
    let (mesh, db, _dir) = direct_mesh().await;
    let client = mesh
        .connect_as("auditor", "auditor-pw", "pg")
        .await
        .unwrap();
    let by_id = client
        .prepare("SELECT owner, balance, opened FROM pg.public.accounts WHERE id = $1")
        .await
        .unwrap();
    for id in (1..=ACCOUNTS).step_by(7) {
        let rows = client.query(&by_id, &[&id]).await.unwrap();
        assert_eq!(rows.len(), 1, "id {id}");
        let owner: Option<String> = rows[0].get(0);
        let got_balance: Option<f64> = rows[0].get(1);
        let opened: Option<chrono::NaiveDate> = rows[0].get(2);
        assert_eq!(owner.as_deref(), Some(format!("owner{id}").as_str()));
        assert_eq!(got_balance, Some(balance(id)));
        assert_eq!(
            opened,
            chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
                .map(|d| d + chrono::Duration::days(i64::from(id)))
        );
    }
    // No row, and a row of NULLs.
    assert!(client
        .query(&by_id, &[&99_999i32])
        .await
        .unwrap()
        .is_empty());
    let nulls = client.query(&by_id, &[&1000i32]).await.unwrap();
    assert_eq!(nulls[0].get::<_, Option<String>>(0), None);
    assert_eq!(nulls[0].get::<_, Option<f64>>(1), None);

    // The source was sent the statement with its parameter, not a value.
    let sent = meshgate_activity(&db).await;
    assert!(
        sent.iter()
            .any(|q| q.contains("accounts") && q.contains("$1")),
        "the source ran no parameterised statement: {sent:?}"
    );

    // Text, date and two parameters; a filter that matches several rows.
    let by_region = client
        .prepare("SELECT id FROM pg.public.accounts WHERE region = $1 AND opened < $2 ORDER BY id")
        .await
        .unwrap();
    let before = chrono::NaiveDate::from_ymd_opt(2024, 1, 20).unwrap();
    let ids: Vec<i32> = client
        .query(&by_region, &[&"south", &before])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i32> = (1..19).filter(|&i| region(i) == "south").collect();
    assert_eq!(ids, expected);

    // A value out of the parameter's range is refused with a SQLSTATE, and
    // the connection goes on.
    let wide = client
        .prepare_typed(
            "SELECT owner FROM pg.public.accounts WHERE id = $1",
            &[tokio_postgres::types::Type::INT8],
        )
        .await
        .unwrap();
    assert_eq!(client.query(&wide, &[&5i64]).await.unwrap().len(), 1);
    let err = client.query(&wide, &[&9_999_999_999i64]).await.unwrap_err();
    assert!(err.as_db_error().is_some(), "{err}");
    assert_eq!(client.query(&by_id, &[&3i32]).await.unwrap().len(), 1);

    // Literal lookups over the simple protocol (sent to the source
    // unnamed, in one round trip): values, a row of NULLs, no row.
    let simple = |id: i32| {
        let client = &client;
        async move {
            meshgate_tests::simple_rows(
                &client
                    .simple_query(&format!(
                        "SELECT owner, balance, opened FROM pg.public.accounts WHERE id = {id}"
                    ))
                    .await
                    .unwrap(),
            )
        }
    };
    for _ in 0..2 {
        assert_eq!(
            simple(8).await,
            [[
                Some("owner8".to_owned()),
                Some("84".to_owned()),
                Some("2024-01-09".to_owned())
            ]]
        );
    }
    assert_eq!(simple(1000).await, [[None, None, None]]);
    assert!(simple(99_999).await.is_empty());

    // Texts of one shape share a plan, each with its own values: text and
    // date literals, two of them; the source is sent the parameterised
    // statement.
    let text = |sql: String| {
        let client = &client;
        async move {
            client
                .simple_query(&sql)
                .await
                .map(|m| meshgate_tests::simple_rows(&m))
        }
    };
    for (region_name, day) in [("south", "2024-01-20"), ("east", "2024-01-31")] {
        let ids = text(format!(
            "SELECT id FROM pg.public.accounts WHERE region = '{region_name}' \
             AND opened < '{day}' ORDER BY id"
        ))
        .await
        .unwrap();
        let until = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let expected: Vec<Vec<Option<String>>> = (1..=ACCOUNTS)
            .filter(|&i| {
                region(i) == region_name
                    && chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()
                        + chrono::Duration::days(i64::from(i))
                        < until
            })
            .map(|i| vec![Some(i.to_string())])
            .collect();
        assert_eq!(ids, expected, "{region_name} before {day}");
    }
    let sent = meshgate_activity(&db).await;
    assert!(
        sent.iter()
            .any(|q| q.contains("region") && q.contains("$1") && q.contains("$2")),
        "the source ran no parameterised statement: {sent:?}"
    );
    // Values the shape's types do not hold run as written: no row for an
    // id beyond int or a fraction, an error for a date that does not exist.
    let none = text("SELECT owner FROM pg.public.accounts WHERE id = 9999999999".into()).await;
    assert_eq!(none.unwrap(), Vec::<Vec<Option<String>>>::new());
    let none = text("SELECT owner FROM pg.public.accounts WHERE id = 7.5".into()).await;
    assert_eq!(none.unwrap(), Vec::<Vec<Option<String>>>::new());
    let bad = text("SELECT id FROM pg.public.accounts WHERE opened = '2024-02-30'".into()).await;
    assert!(bad.unwrap_err().as_db_error().is_some());
    assert_eq!(simple(8).await.len(), 1, "the connection goes on");
}

#[tokio::test]
async fn a_direct_result_of_several_batches_arrives_whole_and_in_order() {
    let (mesh, db, _dir) = direct_mesh().await;
    let client = mesh
        .connect_as("auditor", "auditor-pw", "pg")
        .await
        .unwrap();
    let above = client
        .prepare("SELECT n FROM pg.public.numbers WHERE n > $1 ORDER BY n")
        .await
        .unwrap();
    // 10,000 rows: more than one batch of the direct runner (4,096 rows).
    for (from, expected) in [(0, 10_000), (5_903, 4_097), (9_990, 10), (10_000, 0)] {
        let got: Vec<i32> = client
            .query(&above, &[&from])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(got, ((from + 1)..=10_000).collect::<Vec<_>>(), "n > {from}");
        assert_eq!(got.len(), expected);
    }
    let sent = meshgate_activity(&db).await;
    assert!(
        sent.iter()
            .any(|q| q.contains("numbers") && q.contains("$1")),
        "the source ran no parameterised statement: {sent:?}"
    );
}

#[tokio::test]
async fn prepared_lookups_keep_the_policy() {
    let (mesh, _db, _dir) = direct_mesh().await;
    let clerk = mesh.connect_as("clerk", "clerk-pw", "pg").await.unwrap();
    let by_id = clerk
        .prepare("SELECT id, region FROM pg.public.accounts WHERE id = $1")
        .await
        .unwrap();
    for id in 1..=12 {
        let rows = clerk.query(&by_id, &[&id]).await.unwrap();
        if region(id) == "north" {
            assert_eq!(rows.len(), 1, "north id {id}");
            assert_eq!(rows[0].get::<_, String>(1), "north");
        } else {
            assert!(rows.is_empty(), "the clerk read a {} row", region(id));
        }
    }
    // The masked column comes back masked, by id as by owner.
    let owner = clerk
        .prepare("SELECT owner FROM pg.public.accounts WHERE id = $1")
        .await
        .unwrap();
    let row = clerk.query_one(&owner, &[&3i32]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "o***");
    // Literal lookups over the simple protocol, likewise.
    let literal = |sql: &'static str| {
        let clerk = &clerk;
        async move { meshgate_tests::simple_rows(&clerk.simple_query(sql).await.unwrap()) }
    };
    assert_eq!(
        literal("SELECT owner FROM pg.public.accounts WHERE id = 3").await,
        [[Some("o***".to_owned())]]
    );
    assert!(literal("SELECT owner FROM pg.public.accounts WHERE id = 2")
        .await
        .is_empty());
    // A literal compared with a masked column meets the mask, not the
    // hidden value; a hidden row is not found through its values.
    for sql in [
        "SELECT count(*) FROM pg.public.accounts WHERE owner = 'owner3'",
        "SELECT count(*) FROM pg.public.accounts WHERE owner = 'owner3'",
        "SELECT count(*) FROM pg.public.accounts WHERE balance = 21",
    ] {
        assert_eq!(literal(sql).await, [[Some("0".to_owned())]], "{sql}");
    }
    assert_eq!(
        literal("SELECT count(*) FROM pg.public.accounts WHERE owner = 'o***'").await,
        [[Some((ACCOUNTS / 3).to_string())]]
    );
    let by_owner = clerk
        .prepare("SELECT count(*) FROM pg.public.accounts WHERE owner = $1")
        .await
        .unwrap();
    let seen: i64 = clerk
        .query_one(&by_owner, &[&"owner3"])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 0, "a mask must not match its hidden value");
    // A south row is not found through its unmasked value either.
    let by_balance = clerk
        .prepare("SELECT count(*) FROM pg.public.accounts WHERE balance = $1")
        .await
        .unwrap();
    let south: i64 = clerk
        .query_one(&by_balance, &[&balance(2)])
        .await
        .unwrap()
        .get(0);
    assert_eq!(south, 0);

    // Flight SQL prepared statements take the same path and the same policy.
    let mut flight = flight(&mesh, "clerk").await;
    let mut stmt = flight
        .prepare(
            "SELECT id FROM pg.public.accounts WHERE id = $1".into(),
            None,
        )
        .await
        .unwrap();
    for (id, rows) in [(3, 1), (4, 0)] {
        let params = RecordBatch::try_from_iter(vec![(
            "$1",
            Arc::new(Int32Array::from(vec![id])) as Arc<dyn Array>,
        )])
        .unwrap();
        stmt.set_parameters(params).unwrap();
        let info = stmt.execute().await.unwrap();
        assert_eq!(flight_fetch(&mut flight, info).await.len(), rows, "id {id}");
    }

    // The intruder learns nothing, and the server keeps serving.
    let intruder = mesh
        .connect_as("intruder", "intruder-pw", "pg")
        .await
        .unwrap();
    let err = intruder
        .prepare("SELECT owner FROM pg.public.accounts WHERE id = $1")
        .await
        .unwrap_err();
    let code = err.as_db_error().map(|e| e.code().code().to_owned());
    assert!(matches!(code.as_deref(), Some("42501" | "42P01")), "{err}");
    assert_eq!(clerk.query(&by_id, &[&3i32]).await.unwrap().len(), 1);
}

/// Work a prepared lookup's runs share is kept from the first run (its
/// audit columns, its shown text): later runs must still record and show
/// their own statement.
#[tokio::test]
async fn every_run_of_a_lookup_is_audited_and_shown_as_its_own() {
    let (mesh, _db, dir) = direct_mesh().await;
    let clerk = mesh.connect_as("clerk", "clerk-pw", "pg").await.unwrap();
    let sql = "SELECT owner FROM pg.public.accounts WHERE id = $1";
    let owner = clerk.prepare(sql).await.unwrap();
    for id in [3, 6, 9] {
        let row = clerk.query_one(&owner, &[&id]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "o***");
    }
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let runs: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["sql"] == sql && r["query_id"].is_string())
        .collect();
    assert_eq!(runs.len(), 3, "{audit}");
    for run in &runs {
        assert_eq!(run["rows"], 1, "{run}");
        assert_eq!(run["columns"], runs[0]["columns"], "{run}");
        let columns = run["columns"].as_array().expect("columns").clone();
        let read = |c: &str| {
            columns
                .iter()
                .any(|x| x == &format!("pg.public.accounts.{c}"))
        };
        assert!(read("owner") && read("id"), "{run}");
        assert!(!read("balance") && !read("opened"), "{run}");
    }
    let ids: std::collections::HashSet<&str> =
        runs.iter().filter_map(|r| r["query_id"].as_str()).collect();
    assert_eq!(ids.len(), 3, "each run has its own query id");

    // Literal lookups of one shape share a plan; each is shown with its
    // own text to the user who ran it.
    let auditor = mesh
        .connect_as("auditor", "auditor-pw", "pg")
        .await
        .unwrap();
    for id in [8, 11] {
        auditor
            .simple_query(&format!(
                "SELECT balance FROM pg.public.accounts WHERE id = {id}"
            ))
            .await
            .unwrap();
    }
    let shown = meshgate_tests::simple_rows(
        &auditor
            .simple_query(
                "SELECT sql FROM system.runtime.queries \
                 WHERE sql LIKE 'SELECT balance FROM pg.public.accounts%' ORDER BY sql",
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        shown,
        [11, 8].map(|id| vec![Some(format!(
            "SELECT balance FROM pg.public.accounts WHERE id = {id}"
        ))])
    );
}

//! Query shapes that must answer the same on every path (pgwire simple,
//! pgwire extended, Flight SQL): one aggregate both bare and inside an
//! expression, aggregates and window functions over an un-aliased
//! three-part table name and over masked columns, `EXISTS` subqueries and
//! `$1` parameters against a PostgreSQL source.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int32Array, RecordBatch};
use meshgate_tests::{extra_user, pg_port, PgDatabase, TestMesh};
use tokio_postgres::types::Type;

use super::fixtures::*;

const PEOPLE: i64 = 40;

fn person_ssn(id: i64) -> String {
    format!("{:03}-{:02}-{:04}", 100 + id, id % 90, (id * 7919) % 10_000)
}
fn person_state(id: i64) -> &'static str {
    ["CA", "NY", "TX"][(id % 3) as usize]
}
/// The policy's mask on `ssn`: only the last four digits show.
fn masked_ssn(id: i64) -> String {
    format!("XXX-XX-{}", &person_ssn(id)[7..])
}

/// clerk reads people with ssn masked; auditor reads everything raw.
const POLICY: &str = r#"
[[grants]]
effect = "allow"
principals = ["user:clerk", "user:auditor"]
tables = ["people.public.*", "pg.public.*", "claims.public.*", "members.public.*"]

[[masks]]
principals = ["user:clerk"]
tables = ["people.public.people"]
column = "ssn"
mask = "concat('XXX-XX-', right(ssn, 4))"

[[masks]]
principals = ["user:clerk"]
tables = ["members.public.members"]
column = "last_name"
mask = "concat(left(last_name, 1), '***')"

[[row_filters]]
principals = ["user:clerk"]
tables = ["claims.public.claims"]
filter = "amount >= 0"
"#;

/// A mesh with the demo, the shop in PostgreSQL as catalog `pg`, and a
/// PostgreSQL catalog `people` holding a table of the same name.
async fn shapes_mesh() -> (TestMesh, PgDatabase, tempfile::TempDir) {
    let db = PgDatabase::create("mg_shapes").await;
    shop_in_postgres(&db).await;
    let people: Vec<String> = (1..=PEOPLE)
        .map(|i| {
            format!(
                "({i}, 'person {i}', '{}', '{}')",
                person_ssn(i),
                person_state(i)
            )
        })
        .collect();
    db.client
        .batch_execute(&format!(
            "CREATE TABLE people (member_id int PRIMARY KEY, name text NOT NULL, ssn text NOT NULL, state text NOT NULL);
             INSERT INTO people VALUES {}",
            people.join(",")
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let blocks = db.catalog_toml("pg", pg_port(), "")
        + &db.catalog_toml("people", pg_port(), "")
        + &extra_user("clerk", "clerk-pw")
        + &extra_user("auditor", "auditor-pw")
        + &format!("\n[policy]\nfile = \"{}\"\n", policy.display());
    let mesh = TestMesh::start_with(|c| c.push_str(&blocks)).await;
    (mesh, db, dir)
}

/// The rows of an extended-protocol (binary) result as text.
fn typed_rows(rows: &[tokio_postgres::Row]) -> Rows {
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|i| match *row.columns()[i].type_() {
                    Type::INT8 => row.get::<_, Option<i64>>(i).map(|v| v.to_string()),
                    Type::INT4 => row.get::<_, Option<i32>>(i).map(|v| v.to_string()),
                    Type::INT2 => row.get::<_, Option<i16>>(i).map(|v| v.to_string()),
                    Type::FLOAT8 => row.get::<_, Option<f64>>(i).map(|v| v.to_string()),
                    Type::NUMERIC => row
                        .get::<_, Option<rust_decimal::Decimal>>(i)
                        .map(|v| v.to_string()),
                    _ => row.get::<_, Option<String>>(i),
                })
                .collect()
        })
        .collect()
}

/// `sql` as `user` over pgwire simple, pgwire extended and Flight SQL;
/// each path must succeed, and all must return `expected`.
async fn same_everywhere(mesh: &TestMesh, user: &str, sql: &str, expected: &Rows) {
    same_everywhere_in(mesh, user, "pg", sql, expected).await
}

/// [`same_everywhere`] with `database` as the pgwire connection's database.
async fn same_everywhere_in(
    mesh: &TestMesh,
    user: &str,
    database: &str,
    sql: &str,
    expected: &Rows,
) {
    let pg = mesh
        .connect_as(user, &format!("{user}-pw"), database)
        .await
        .unwrap();
    let simple = pg
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("pgwire simple, {sql}: {e:?}"));
    assert_eq!(
        &meshgate_tests::simple_rows(&simple),
        expected,
        "simple: {sql}"
    );
    let extended = pg
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("pgwire extended, {sql}: {e:?}"));
    assert_eq!(&typed_rows(&extended), expected, "extended: {sql}");
    let mut flight = flight(mesh, user).await;
    let info = flight
        .execute(sql.to_owned(), None)
        .await
        .unwrap_or_else(|e| panic!("Flight SQL, {sql}: {e:?}"));
    assert_eq!(
        &flight_fetch(&mut flight, info).await,
        expected,
        "flight: {sql}"
    );
}

fn row(cells: &[&str]) -> Vec<Option<String>> {
    cells.iter().map(|c| Some((*c).to_owned())).collect()
}

fn cents(total: i64) -> String {
    format!("{}.{:02}", total / 100, total % 100)
}

#[tokio::test]
async fn an_aggregate_both_bare_and_inside_an_expression() {
    let (mesh, _db, _dir) = shapes_mesh().await;
    let orders: i64 = (1..=ORDERS).map(|o| order_row(o).2).sum();
    let sum = cents(orders);
    same_everywhere(
        &mesh,
        "auditor",
        "SELECT SUM(amount) AS total, CAST(SUM(amount) AS DECIMAL(20,2)) AS total_dec FROM pg.public.orders",
        &vec![row(&[&sum, &sum])],
    )
    .await;
    same_everywhere(
        &mesh,
        "auditor",
        "SELECT SUM(amount) AS total, SUM(amount) * 2 AS twice, COUNT(*) AS n, COUNT(*) + 1 AS n1
           FROM pg.public.orders",
        &vec![row(&[&sum, &cents(2 * orders), "500", "501"])],
    )
    .await;

    // The same over the Delta table (not federated).
    let claims = meshgate_gateway::demo::claims();
    let amounts = claims
        .column(4)
        .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
    let claims_total: i128 = amounts.iter().map(|v| v.unwrap()).sum();
    let claims_sum = format!("{}.{:02}", claims_total / 100, claims_total % 100);
    same_everywhere(
        &mesh,
        "auditor",
        "SELECT SUM(amount) AS total, CAST(SUM(amount) AS DECIMAL(20,2)) AS total_dec FROM claims.public.claims",
        &vec![row(&[&claims_sum, &claims_sum])],
    )
    .await;
    // Behind the policy barrier (the clerk's row filter on claims).
    same_everywhere(
        &mesh,
        "clerk",
        "SELECT SUM(amount) AS total, CAST(SUM(amount) AS DECIMAL(20,2)) AS total_dec FROM claims.public.claims",
        &vec![row(&[&claims_sum, &claims_sum])],
    )
    .await;
    same_everywhere(
        &mesh,
        "auditor",
        "SELECT status, MAX(amount) AS top, CAST(MAX(amount) AS DECIMAL(20,2)) AS top_dec
           FROM claims.public.claims WHERE status = 'approved' GROUP BY status HAVING MAX(amount) > 0",
        &{
            let statuses = claims.column(5).as_string::<i32>();
            let top = (0..claims.num_rows())
                .filter(|&i| statuses.value(i) == "approved")
                .map(|i| amounts.value(i))
                .max()
                .unwrap();
            let top = format!("{}.{:02}", top / 100, top % 100);
            vec![row(&["approved", &top, &top])]
        },
    )
    .await;
}

#[tokio::test]
async fn aggregates_and_windows_over_three_part_names_and_masked_columns() {
    let (mesh, _db, _dir) = shapes_mesh().await;
    let raw_min = (1..=PEOPLE).map(person_ssn).min().unwrap();
    let raw_max = (1..=PEOPLE).map(person_ssn).max().unwrap();
    let masked_min = (1..=PEOPLE).map(masked_ssn).min().unwrap();
    let masked_max = (1..=PEOPLE).map(masked_ssn).max().unwrap();
    let n = PEOPLE.to_string();

    for (user, min, max) in [
        ("auditor", &raw_min, &raw_max),
        ("clerk", &masked_min, &masked_max),
    ] {
        same_everywhere(
            &mesh,
            user,
            "SELECT MIN(ssn) FROM people.public.people",
            &vec![row(&[min])],
        )
        .await;
        same_everywhere(
            &mesh,
            user,
            "SELECT MIN(ssn), MAX(people.public.people.ssn), COUNT(ssn) FROM people.public.people",
            &vec![row(&[min, max, &n])],
        )
        .await;
        same_everywhere(
            &mesh,
            user,
            "SELECT member_id, MIN(ssn) OVER () AS lowest, COUNT(*) OVER (PARTITION BY state) AS in_state
               FROM people.public.people ORDER BY member_id LIMIT 2",
            &vec![
                row(&["1", min, &(PEOPLE / 3 + 1).to_string()]),
                row(&["2", min, &(PEOPLE / 3).to_string()]),
            ],
        )
        .await;
    }
    // The same from a session whose database is the table's catalog.
    for (user, min) in [("auditor", &raw_min), ("clerk", &masked_min)] {
        same_everywhere_in(
            &mesh,
            user,
            "people",
            "SELECT MIN(ssn) FROM people.public.people",
            &vec![row(&[min])],
        )
        .await;
    }
    // A masked column of a file source (the demo's members CSV).
    let auditor = mesh
        .connect_as("auditor", "auditor-pw", "members")
        .await
        .unwrap();
    let names = meshgate_tests::simple_rows(
        &auditor
            .simple_query("SELECT last_name FROM members.public.members")
            .await
            .unwrap(),
    );
    let masked_names: BTreeSet<String> = names
        .iter()
        .map(|r| format!("{}***", &r[0].as_deref().unwrap()[..1]))
        .collect();
    same_everywhere_in(
        &mesh,
        "clerk",
        "members",
        "SELECT MIN(last_name), MAX(last_name) FROM members.public.members",
        &vec![row(&[
            masked_names.first().unwrap(),
            masked_names.last().unwrap(),
        ])],
    )
    .await;
    same_everywhere_in(
        &mesh,
        "clerk",
        "members",
        "SELECT MIN(last_name) OVER () FROM members.public.members LIMIT 1",
        &vec![row(&[masked_names.first().unwrap()])],
    )
    .await;

    // What the clerk reads of one row is what the aggregate saw.
    same_everywhere(
        &mesh,
        "clerk",
        "SELECT ssn FROM people.public.people WHERE member_id = 7",
        &vec![row(&[&masked_ssn(7)])],
    )
    .await;

    // A table whose catalog has another name, un-aliased too.
    let orders: Vec<i64> = (1..=ORDERS).map(|o| order_row(o).2).collect();
    same_everywhere(
        &mesh,
        "clerk",
        "SELECT MIN(amount), MAX(pg.public.orders.amount) FROM pg.public.orders",
        &vec![row(&[
            &cents(*orders.iter().min().unwrap()),
            &cents(*orders.iter().max().unwrap()),
        ])],
    )
    .await;
    same_everywhere(
        &mesh,
        "clerk",
        "SELECT order_id, SUM(amount) OVER (ORDER BY order_id) AS running
           FROM pg.public.orders ORDER BY order_id LIMIT 2",
        &vec![
            row(&["1", &cents(orders[0])]),
            row(&["2", &cents(orders[0] + orders[1])]),
        ],
    )
    .await;
}

#[tokio::test]
async fn exists_subqueries_against_postgres() {
    let (mesh, _db, _dir) = shapes_mesh().await;
    let refunded: BTreeSet<i64> = (1..=ORDERS)
        .filter(|&o| order_row(o).3 == "refunded")
        .map(|o| order_row(o).0)
        .collect();
    let with = refunded.len().to_string();
    let without = (ACCOUNTS as usize - refunded.len()).to_string();
    for (sql, expected) in [
        (
            "SELECT count(*) FROM pg.public.accounts a WHERE EXISTS
               (SELECT 1 FROM pg.public.orders o WHERE o.account_id = a.account_id AND o.status = 'refunded')",
            with.as_str(),
        ),
        (
            "SELECT count(*) FROM pg.public.accounts a WHERE NOT EXISTS
               (SELECT 1 FROM pg.public.orders o WHERE o.account_id = a.account_id AND o.status = 'refunded')",
            without.as_str(),
        ),
        (
            "SELECT count(*) FROM pg.public.accounts WHERE EXISTS
               (SELECT 1 FROM pg.public.orders WHERE amount > 1000000)",
            "0",
        ),
        (
            "SELECT count(*) FROM pg.public.accounts WHERE EXISTS (SELECT 1 FROM pg.public.orders)",
            "60",
        ),
    ] {
        same_everywhere(&mesh, "auditor", sql, &vec![row(&[expected])]).await;
    }
}

#[tokio::test]
async fn parameters_against_postgres() {
    let (mesh, _db, _dir) = shapes_mesh().await;
    let count = |account: i64| {
        (1..=ORDERS)
            .filter(|&o| order_row(o).0 == account)
            .count()
            .to_string()
    };
    let client = mesh
        .connect_as("auditor", "auditor-pw", "pg")
        .await
        .unwrap();

    // SQL PREPARE ... AS with $1, untyped and typed; EXECUTE over both
    // pgwire protocols.
    for prepare in [
        "PREPARE by_account AS SELECT count(*) FROM pg.public.orders WHERE account_id = $1",
        "PREPARE by_account_typed(int) AS SELECT count(*) FROM pg.public.orders WHERE account_id = $1",
        "PREPARE by_status AS SELECT count(*) FROM pg.public.orders o WHERE o.status = $1 AND EXISTS
           (SELECT 1 FROM pg.public.accounts a WHERE a.account_id = o.account_id AND a.region = 'north')",
    ] {
        client
            .simple_query(prepare)
            .await
            .unwrap_or_else(|e| panic!("{prepare}: {e:?}"));
    }
    for (name, account) in [
        ("by_account", 7),
        ("by_account_typed", 8),
        ("by_account", 9),
    ] {
        let sql = format!("EXECUTE {name}({account})");
        let simple = client
            .simple_query(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert_eq!(
            meshgate_tests::simple_rows(&simple),
            vec![row(&[&count(account)])],
            "{sql}"
        );
        let extended = client
            .query(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("extended {sql}: {e:?}"));
        assert_eq!(
            typed_rows(&extended),
            vec![row(&[&count(account)])],
            "extended {sql}"
        );
    }
    let north_refunded = (1..=ORDERS)
        .filter(|&o| order_row(o).3 == "refunded" && account_region(order_row(o).0) == "north")
        .count()
        .to_string();
    let simple = client
        .simple_query("EXECUTE by_status('refunded')")
        .await
        .unwrap();
    assert_eq!(
        meshgate_tests::simple_rows(&simple),
        vec![row(&[&north_refunded])]
    );

    // The extended protocol's own parameters.
    let stmt = client
        .prepare("SELECT count(*) FROM pg.public.orders WHERE account_id = $1")
        .await
        .unwrap();
    let got: i64 = client.query_one(&stmt, &[&7i32]).await.unwrap().get(0);
    assert_eq!(got.to_string(), count(7));

    // Flight SQL prepared statements bind $1 the same way.
    let mut flight = flight(&mesh, "auditor").await;
    let mut stmt = flight
        .prepare(
            "SELECT count(*) FROM pg.public.orders WHERE account_id = $1".into(),
            None,
        )
        .await
        .unwrap();
    for account in [7, 8] {
        let params = RecordBatch::try_from_iter(vec![(
            "$1",
            Arc::new(Int32Array::from(vec![account as i32])) as Arc<dyn Array>,
        )])
        .unwrap();
        stmt.set_parameters(params).unwrap();
        let info = stmt.execute().await.unwrap();
        assert_eq!(
            flight_fetch(&mut flight, info).await,
            vec![row(&[&count(account)])]
        );
    }
    stmt.close().await.unwrap();
}

//! The shared fixtures of the SQL-source tests: the shop tables in
//! PostgreSQL and MariaDB, and what each database logged receiving.

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use meshgate_tests::{simple_rows as rows, MariaDatabase, PgDatabase, TestMesh};
use tonic::transport::Channel;

/// Rows of text cells (NULL as `None`).
pub(crate) type Rows = Vec<Vec<Option<String>>>;

pub(super) fn cell(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("NULL")
}

/// The per-source lines (`VirtualExecutionPlan ... base_sql=...`) of
/// `EXPLAIN sql`: what meshgate will send to each database.
pub(super) async fn remote_statements(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    rows(
        &client
            .simple_query(&format!("EXPLAIN {sql}"))
            .await
            .unwrap(),
    )
    .iter()
    .flat_map(|r| cell(&r[1]).lines().map(str::to_owned).collect::<Vec<_>>())
    .filter(|l| l.contains("VirtualExecutionPlan"))
    .collect()
}

/// The orders/accounts tables in PostgreSQL and products in MariaDB that the
/// pushdown and join tests share; deterministic so results can be computed.
pub(super) const ACCOUNTS: i64 = 60;
pub(super) const ORDERS: i64 = 500;
pub(super) const PRODUCTS: i64 = 12;

pub(super) fn account_member(account: i64) -> i64 {
    // The demo's member ids run from 1000 to 1199.
    1000 + (account * 7) % 200
}
pub(super) fn account_region(account: i64) -> &'static str {
    ["north", "south", "east", "west"][(account % 4) as usize]
}
pub(super) fn order_row(order: i64) -> (i64, i64, i64, &'static str) {
    // (account, product, amount in cents, status)
    let status = if order % 5 == 0 { "refunded" } else { "paid" };
    (
        order % ACCOUNTS + 1,
        order % PRODUCTS + 1,
        1000 + (order * 37) % 9000,
        status,
    )
}
pub(super) fn product_category(product: i64) -> &'static str {
    ["tools", "garden", "kitchen"][(product % 3) as usize]
}

/// The last statement of each of meshgate's connections to `db`.
pub(super) async fn meshgate_activity(db: &PgDatabase) -> Vec<String> {
    db.client
        .query(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'meshgate'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

pub(super) async fn shop_in_postgres(db: &PgDatabase) {
    let mut sql = String::from(
        "CREATE TABLE accounts (account_id int PRIMARY KEY, member_id bigint NOT NULL, region text NOT NULL);
         CREATE TABLE orders (order_id int PRIMARY KEY, account_id int NOT NULL, product_id int NOT NULL,
                              amount numeric(10,2) NOT NULL, status text NOT NULL);",
    );
    sql.push_str("INSERT INTO accounts VALUES ");
    let accounts: Vec<String> = (1..=ACCOUNTS)
        .map(|a| format!("({a}, {}, '{}')", account_member(a), account_region(a)))
        .collect();
    sql.push_str(&accounts.join(","));
    sql.push_str(";INSERT INTO orders VALUES ");
    let orders: Vec<String> = (1..=ORDERS)
        .map(|o| {
            let (a, p, cents, status) = order_row(o);
            format!("({o}, {a}, {p}, {cents} / 100.0, '{status}')")
        })
        .collect();
    sql.push_str(&orders.join(","));
    db.client.batch_execute(&sql).await.unwrap();
}

pub(super) fn products_in_mariadb(db: &MariaDatabase) {
    let values: Vec<String> = (1..=PRODUCTS)
        .map(|p| format!("({p}, 'product {p}', '{}')", product_category(p)))
        .collect();
    db.exec(&format!(
        "CREATE TABLE products (product_id int PRIMARY KEY, name varchar(50) NOT NULL, category varchar(20) NOT NULL);
         INSERT INTO products VALUES {}",
        values.join(",")
    ));
}

/// The SQL the PostgreSQL server logged for database `db` since `from`
/// (log_statement = 'all' is set on the test database only).
pub(super) fn postgres_log_since(from: u64) -> Option<String> {
    let path = std::fs::read_dir("/var/log/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())?;
    let bytes = std::fs::read(path).ok()?;
    Some(String::from_utf8_lossy(&bytes[(from as usize).min(bytes.len())..]).into_owned())
}

pub(super) fn postgres_log_len() -> u64 {
    std::fs::read_dir("/var/log/postgresql")
        .ok()
        .and_then(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        })
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .unwrap_or(0)
}

/// MariaDB's general log (to `mysql.general_log`), on while the guard
/// lives; one test at a time holds it, so no test turns it off under
/// another.
pub(super) async fn mysql_general_log() -> GeneralLog {
    static HELD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let held = HELD.lock().await;
    meshgate_tests::mysql_exec(
        "",
        "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 1",
    );
    GeneralLog { _held: held }
}

pub(super) struct GeneralLog {
    _held: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for GeneralLog {
    fn drop(&mut self) {
        meshgate_tests::mysql_exec("", "SET GLOBAL general_log = 0");
    }
}

/// A Flight SQL client signed in as `user` (password `{user}-pw`).
pub(crate) async fn flight(mesh: &TestMesh, user: &str) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", mesh.flight_sql_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake(user, &format!("{user}-pw")).await.unwrap();
    client
}

/// Every cell of `batches` as text (NULL as `None`).
pub(crate) fn batch_rows(batches: &[RecordBatch]) -> Rows {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    rows
}

pub(crate) async fn flight_fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: arrow_flight::FlightInfo,
) -> Rows {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let stream = client.do_get(endpoint.ticket.unwrap()).await.unwrap();
        batches.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    batch_rows(&batches)
}

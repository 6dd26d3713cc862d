//! `sql-pushdown`: what sending work to a PostgreSQL source buys.
//!
//! 1. **Aggregate pushdown.** A `--rows` row PostgreSQL table
//!    `big(k int, x float8)` with 1,000 distinct `k`; the query
//!    `SELECT k, count(*), sum(x) FROM big GROUP BY k` through meshgate with
//!    pushdown (the catalog default) and without (`pushdown = false`: only the
//!    scan's columns reach the source). Reports median time and the rows the
//!    source sent (from `EXPLAIN ANALYZE`), and the same query run directly in
//!    PostgreSQL.
//! 2. **TPC-H join.** `customer` (SF `--sf`) in PostgreSQL joined with
//!    `orders` in Parquet, generated with tpchgen; the same query through
//!    meshgate and, when `--duckdb-python` names a Python with `duckdb` and
//!    `duckdb-extension-postgres`, through DuckDB's postgres extension
//!    (`benches/tpch_join_duckdb.py`). Unless `--no-mysql`, the same join
//!    with `customer` in MySQL/MariaDB (`--mysql`), against DuckDB's mysql
//!    extension (`duckdb-extension-mysql`).
//!
//! ```text
//! export CARGO_TARGET_DIR=/root/.cache/meshgate/target
//! cargo build --release --workspace --bins
//! $CARGO_TARGET_DIR/release/sql-pushdown --duckdb-python ~/.cache/meshgate/bench-venv/bin/python
//! ```

#[path = "support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use datafusion::parquet::arrow::ArrowWriter;
use futures::SinkExt;
use support::{connect, Meshgate};
use tpchgen::generators::{CustomerGenerator, OrderGenerator};
use tpchgen_arrow::{CustomerArrow, OrderArrow};

#[derive(Parser)]
#[command(
    name = "sql-pushdown",
    about = "PostgreSQL source pushdown and TPC-H join benchmarks"
)]
struct Cli {
    /// Rows of the aggregate table.
    #[arg(long, default_value_t = 5_000_000)]
    rows: u64,
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 1.0)]
    sf: f64,
    /// Timed runs per variant (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The meshgate binary (default: `meshgate` next to this executable).
    #[arg(long)]
    meshgate: Option<PathBuf>,
    /// Server part of a libpq connection string for the source PostgreSQL.
    #[arg(long, default_value = "host=127.0.0.1 port=5432 user=postgres")]
    pg: String,
    /// A Python with duckdb and duckdb-extension-postgres, for the comparison.
    #[arg(long)]
    duckdb_python: Option<PathBuf>,
    /// Skip the aggregate benchmark.
    #[arg(long)]
    no_aggregate: bool,
    /// Skip the TPC-H benchmark.
    #[arg(long)]
    no_tpch: bool,
    /// The MySQL/MariaDB server for the MySQL variant of the TPC-H join
    /// (`host port user`; password-less, loaded with the `mysql` client).
    #[arg(long, num_args = 3, default_values = ["127.0.0.1", "3306", "root"])]
    mysql: Vec<String>,
    /// Skip the MySQL variant of the TPC-H join.
    #[arg(long)]
    no_mysql: bool,
    /// Print meshgate's EXPLAIN ANALYZE of each TPC-H join after timing it
    /// (where the time goes, per operator).
    #[arg(long)]
    explain: bool,
    /// TOML appended to meshgate's config (`\n` for a new line), e.g.
    /// `'[execution.datafusion]\n"execution.parquet.pushdown_filters" = true'`.
    #[arg(long, default_value = "")]
    config_extra: String,
}

const AGG: &str = "SELECT k, count(*) AS n, sum(x) AS total FROM bench.public.big GROUP BY k";
const TPCH: &str = "SELECT c.c_mktsegment, count(*) AS orders, sum(o.o_totalprice) AS revenue \
    FROM CUSTOMER c JOIN ORDERS o ON o.o_custkey = c.c_custkey \
    WHERE c.c_nationkey = 7 AND o.o_orderdate >= DATE '1996-01-01' \
    GROUP BY c.c_mktsegment ORDER BY c.c_mktsegment";

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let bin = match &cli.meshgate {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("meshgate"),
    };
    let dir = tempfile::tempdir()?;
    let db = format!("meshgate_bench_{}", std::process::id());
    let admin = connect(&format!("{} dbname=postgres", cli.pg)).await?;
    admin
        .client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    let result = run(&cli, &bin, dir.path(), &db).await;
    admin
        .client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await?;
    if cli.mysql_wanted() {
        mysql(&cli, &format!("DROP DATABASE IF EXISTS {db}"))?;
    }
    result
}

fn pg_catalog(cli: &Cli, name: &str, db: &str, extra: &str) -> String {
    let mut host = "127.0.0.1".to_owned();
    let mut port = "5432".to_owned();
    let mut user = "postgres".to_owned();
    for kv in cli.pg.split_whitespace() {
        match kv.split_once('=') {
            Some(("host", v)) => host = v.into(),
            Some(("port", v)) => port = v.into(),
            Some(("user", v)) => user = v.into(),
            _ => {}
        }
    }
    format!(
        "[catalogs.{name}]\nconnector = \"postgres\"\nhost = \"{host}\"\nport = {port}\nuser = \"{user}\"\ndatabase = \"{db}\"\nsslmode = \"disable\"\n{extra}\n"
    )
}

impl Cli {
    fn mysql_wanted(&self) -> bool {
        !self.no_tpch && !self.no_mysql
    }
}

/// Run `sql` with the `mysql` client on the `--mysql` server.
fn mysql(cli: &Cli, sql: &str) -> Result<()> {
    let out = std::process::Command::new("mysql")
        .args(["--local-infile=1", "-h", &cli.mysql[0], "-P", &cli.mysql[1]])
        .args(["-u", &cli.mysql[2], "-e", sql])
        .output()
        .context("running the mysql client")?;
    anyhow::ensure!(
        out.status.success(),
        "mysql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn mysql_catalog(cli: &Cli, name: &str, db: &str) -> String {
    format!(
        "[catalogs.{name}]\nconnector = \"mysql\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndatabase = \"{db}\"\nsslmode = \"disable\"\n",
        cli.mysql[0], cli.mysql[1], cli.mysql[2]
    )
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

async fn run(cli: &Cli, bin: &Path, dir: &Path, db: &str) -> Result<()> {
    let source = connect(&format!("{} dbname={db}", cli.pg)).await?;
    let mut catalogs =
        pg_catalog(cli, "bench", db, "") + &pg_catalog(cli, "local", db, "pushdown = false");
    if !cli.no_tpch {
        let orders = dir.join("orders.parquet");
        load_tpch(cli, &source.client, &orders).await?;
        if cli.mysql_wanted() {
            load_customer_into_mysql(cli, db, dir)?;
            catalogs.push_str(&mysql_catalog(cli, "mybench", db));
        }
        catalogs.push_str(&format!(
            "[catalogs.tpch]\nconnector = \"files\"\nroot = \"{}\"\n[catalogs.tpch.tables.orders]\npath = \"orders.parquet\"\n",
            dir.display()
        ));
    }
    if !cli.no_aggregate {
        eprintln!("loading {} rows into big ...", cli.rows);
        source
            .client
            .batch_execute(&format!(
                "CREATE TABLE big AS SELECT (i % 1000)::int AS k, (i % 9973)::float8 / 7 AS x
                   FROM generate_series(1, {}) AS i; ANALYZE big",
                cli.rows
            ))
            .await?;
    }
    let catalogs = format!("{catalogs}\n{}\n", cli.config_extra.replace("\\n", "\n"));
    let gw = Meshgate::start(bin, dir, &catalogs).await?;
    let conn = gw.connect().await?;
    let client = &conn.client;

    if !cli.no_aggregate {
        println!("\n## GROUP BY over {} PostgreSQL rows\n", cli.rows);
        println!("| variant | median time | rows sent by the source |");
        println!("| --- | ---: | ---: |");
        for (label, sql) in [
            ("meshgate, pushdown", AGG.to_owned()),
            (
                "meshgate, no pushdown",
                AGG.replace("bench.public", "local.public"),
            ),
        ] {
            let transferred = source_rows(client, &sql).await?;
            let mut times = Vec::new();
            for _ in 0..cli.runs {
                let t = Instant::now();
                let rows = client.query(&sql, &[]).await?;
                times.push(t.elapsed());
                anyhow::ensure!(rows.len() == 1000, "{label}: {} groups", rows.len());
            }
            println!("| {label} | {:.1} ms | {transferred} |", ms(median(times)));
        }
        let direct = AGG.replace("bench.public.big", "big");
        let mut times = Vec::new();
        for _ in 0..cli.runs {
            let t = Instant::now();
            source.client.query(&direct, &[]).await?;
            times.push(t.elapsed());
        }
        println!(
            "| PostgreSQL directly | {:.1} ms | 1000 |",
            ms(median(times))
        );
    }

    if !cli.no_tpch {
        let mut sources = vec![("PostgreSQL", "postgres", "bench.public.customer".to_owned())];
        if cli.mysql_wanted() {
            sources.push(("MySQL", "mysql", format!("mybench.{db}.customer")));
        }
        for (label, kind, customer) in sources {
            let sql = TPCH
                .replace("CUSTOMER", &customer)
                .replace("ORDERS", "tpch.public.orders");
            println!(
                "\n## TPC-H SF{} customer ({label}) ⋈ orders (Parquet)\n",
                cli.sf
            );
            println!("```sql\n{sql}\n```\n");
            let mut times = Vec::new();
            for _ in 0..cli.runs {
                let t = Instant::now();
                let rows = client.query(&sql, &[]).await?;
                times.push(t.elapsed());
                anyhow::ensure!(rows.len() == 5, "{} market segments", rows.len());
            }
            println!("| engine | median time |");
            println!("| --- | ---: |");
            println!("| meshgate | {:.1} ms |", ms(median(times)));
            if cli.explain {
                print_explain_analyze(client, &sql).await?;
            }
            if let Some(python) = &cli.duckdb_python {
                let dsn = match kind {
                    "postgres" => format!("{} dbname={db}", cli.pg),
                    _ => format!(
                        "host={} port={} user={} database={db}",
                        cli.mysql[0], cli.mysql[1], cli.mysql[2]
                    ),
                };
                let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tpch_join_duckdb.py");
                let out = std::process::Command::new(python)
                    .arg(&script)
                    .arg(kind)
                    .arg(dsn)
                    .arg(dir.join("orders.parquet"))
                    .arg(TPCH)
                    .arg(cli.runs.to_string())
                    .output()
                    .context("running the DuckDB comparison")?;
                anyhow::ensure!(
                    out.status.success(),
                    "DuckDB: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                print!("{}", String::from_utf8_lossy(&out.stdout));
            }
        }
    }
    conn.close().await;
    Ok(())
}

/// Prints meshgate's `EXPLAIN ANALYZE` of `sql` as a text block.
async fn print_explain_analyze(client: &tokio_postgres::Client, sql: &str) -> Result<()> {
    println!("\n```text");
    for message in client
        .simple_query(&format!("EXPLAIN ANALYZE {sql}"))
        .await?
    {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            println!(
                "{}",
                (0..row.len())
                    .filter_map(|i| row.get(i))
                    .collect::<Vec<_>>()
                    .join("\t")
            );
        }
    }
    println!("```\n");
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Rows the source sent for `sql`: remote scans report no metrics, so this is
/// `output_rows` of the operator that reads the remote result (a schema cast
/// or repartition, which pass every row through).
async fn source_rows(client: &tokio_postgres::Client, sql: &str) -> Result<String> {
    let messages = client
        .simple_query(&format!("EXPLAIN ANALYZE {sql}"))
        .await?;
    for m in messages {
        let tokio_postgres::SimpleQueryMessage::Row(r) = m else {
            continue;
        };
        let mut last = None;
        for line in r.get(1).unwrap_or_default().lines() {
            if line.contains("VirtualExecutionPlan") || line.contains("SqlExec") {
                if let Some(n) = last {
                    return Ok(n);
                }
            }
            if let Some(at) = line.find("output_rows=") {
                let n: String = line[at + 12..]
                    .chars()
                    .take_while(|c| *c != ',' && *c != ']')
                    .collect();
                last = Some(n);
            }
        }
    }
    Ok("?".into())
}

async fn load_tpch(cli: &Cli, client: &tokio_postgres::Client, orders: &Path) -> Result<()> {
    eprintln!("generating TPC-H SF{} customer and orders ...", cli.sf);
    client
        .batch_execute(
            "CREATE TABLE customer (c_custkey bigint PRIMARY KEY, c_name text, c_address text,
               c_nationkey bigint, c_phone text, c_acctbal numeric(15,2), c_mktsegment text, c_comment text)",
        )
        .await?;
    let sink = client
        .copy_in("COPY customer FROM STDIN (FORMAT csv)")
        .await?;
    futures::pin_mut!(sink);
    for batch in CustomerArrow::new(CustomerGenerator::new(cli.sf, 1, 1)).with_batch_size(65_536) {
        let mut buf = Vec::new();
        {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(false)
                .build(&mut buf);
            w.write(&batch?)?;
        }
        sink.send(bytes::Bytes::from(buf)).await?;
    }
    sink.as_mut().finish().await?;
    client.batch_execute("ANALYZE customer").await?;

    let file = std::fs::File::create(orders)?;
    let mut gen = OrderArrow::new(OrderGenerator::new(cli.sf, 1, 1)).with_batch_size(65_536);
    let first = gen.next().context("no orders")??;
    let mut writer = ArrowWriter::try_new(file, first.schema(), None)?;
    writer.write(&first)?;
    for batch in gen {
        writer.write(&batch?)?;
    }
    writer.close()?;
    Ok(())
}

/// TPC-H `customer` (SF `--sf`) into database `db` of the `--mysql`
/// server, through a CSV file in `dir` and `LOAD DATA LOCAL INFILE`.
fn load_customer_into_mysql(cli: &Cli, db: &str, dir: &Path) -> Result<()> {
    eprintln!("loading customer into MySQL database {db} ...");
    let csv = dir.join("customer.csv");
    {
        let file = std::fs::File::create(&csv)?;
        let mut w = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(false)
            .build(file);
        for batch in
            CustomerArrow::new(CustomerGenerator::new(cli.sf, 1, 1)).with_batch_size(65_536)
        {
            w.write(&batch?)?;
        }
    }
    mysql(
        cli,
        &format!(
            "CREATE DATABASE {db}; USE {db};
             CREATE TABLE customer (c_custkey BIGINT PRIMARY KEY, c_name VARCHAR(25),
               c_address VARCHAR(40), c_nationkey BIGINT, c_phone VARCHAR(15),
               c_acctbal DECIMAL(15,2), c_mktsegment VARCHAR(10), c_comment VARCHAR(117))
               ENGINE=InnoDB;
             LOAD DATA LOCAL INFILE '{}' INTO TABLE customer
               FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"';
             ANALYZE TABLE customer;",
            csv.display()
        ),
    )
}

//! `pgwire-stream`: streaming throughput and memory of meshgate's pgwire
//! front end, measured with the same client against local PostgreSQL.
//!
//! 1. A `--rows` row table (`id bigint, name text, amount float8, day date`)
//!    is read in full with tokio-postgres `query_raw` (extended protocol,
//!    binary results), every column of every row decoded, (a) through
//!    meshgate from a Parquet file and (b) straight from PostgreSQL holding
//!    the same rows. Best and median rows/s over `--runs` runs.
//! 2. A fresh meshgate process streams a `--rss-rows` row result; its VmRSS
//!    before the query and VmHWM (peak RSS) after it are reported, and the
//!    peaks of its two parts, sampled every 10 ms during the query: RssAnon
//!    (heap: what the query holds and what the allocator keeps) and RssFile
//!    (pages of the binary's code and data that the process has touched).
//!
//! ```text
//! export CARGO_TARGET_DIR=/root/.cache/meshgate/target
//! cargo build --release --workspace --bins
//! $CARGO_TARGET_DIR/release/pgwire-stream
//! ```

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use chrono::NaiveDate;
use clap::Parser;
use datafusion::arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use futures::{pin_mut, TryStreamExt};
use tokio_postgres::Client;

#[path = "support.rs"]
mod support;
use support::{connect, Meshgate};

/// The catalog serving the benchmark's Parquet files.
const FILES_CATALOG: &str = r#"[catalogs.bench]
connector = "files"
root = "."
[catalogs.bench.tables.t_small]
path = "t_small.parquet"
[catalogs.bench.tables.t_big]
path = "t_big.parquet"
"#;

/// Rows per Arrow batch written to Parquet.
const WRITE_BATCH: u64 = 65_536;
const DEFAULT_PG: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";
const FALLBACK_PG: &str = "host=127.0.0.1 port=5432 user=root dbname=root";

#[derive(Parser)]
#[command(
    name = "pgwire-stream",
    about = "pgwire streaming throughput and peak RSS: meshgate vs PostgreSQL"
)]
struct Cli {
    /// Rows of the throughput table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Rows of the result streamed while meshgate's peak RSS is measured.
    #[arg(long, default_value_t = 10_000_000)]
    rss_rows: u64,
    /// Timed runs per side (best and median are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The meshgate binary (default: `meshgate` next to this executable).
    #[arg(long)]
    meshgate: Option<PathBuf>,
    /// libpq-style connection string of the reference PostgreSQL.
    #[arg(long, default_value = DEFAULT_PG)]
    pg: String,
    /// Do not measure PostgreSQL.
    #[arg(long)]
    skip_pg: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    ensure!(cli.runs > 0, "--runs must be at least 1");
    ensure!(
        cli.rows > 0 && cli.rss_rows > 0,
        "row counts must be positive"
    );
    let meshgate_bin = match &cli.meshgate {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("meshgate"),
    };
    ensure!(
        meshgate_bin.is_file(),
        "{} does not exist; build it (cargo build --release --workspace --bins) or pass --meshgate",
        meshgate_bin.display()
    );

    let dir = tempfile::tempdir()?;
    for (file, rows) in [
        ("t_small.parquet", cli.rows),
        ("t_big.parquet", cli.rss_rows),
    ] {
        let start = Instant::now();
        let bytes = write_parquet(&dir.path().join(file), rows)?;
        eprintln!(
            "wrote {file}: {} rows, {:.1} MiB in {:.1?}",
            fmt_int(rows),
            bytes as f64 / MIB,
            start.elapsed()
        );
    }

    // 1a. Throughput through meshgate.
    let mesh = {
        let gw = Meshgate::start(&meshgate_bin, dir.path(), FILES_CATALOG).await?;
        let conn = gw.connect().await?;
        let sql = "SELECT id, name, amount, day FROM bench.public.t_small";
        let mut times = Vec::new();
        for run in 1..=cli.runs {
            let t = stream_query(&conn.client, sql, cli.rows).await?;
            eprintln!("meshgate run {run}: {}", rate_str(cli.rows, t));
            times.push(t);
        }
        conn.close().await;
        times
    };

    // 1b. Throughput straight from PostgreSQL.
    let pg = if cli.skip_pg {
        None
    } else {
        Some(run_postgres(&cli).await?)
    };

    // 2. Peak RSS of a fresh meshgate process streaming the big result.
    let rss = {
        let gw = Meshgate::start(&meshgate_bin, dir.path(), FILES_CATALOG).await?;
        let conn = gw.connect().await?;
        let before = proc_status(gw.pid())?;
        let sql = "SELECT id, name, amount, day FROM bench.public.t_big";
        let sampler = PeakSampler::start(gw.pid());
        let t = stream_query(&conn.client, sql, cli.rss_rows).await?;
        let parts = sampler.finish();
        let after = proc_status(gw.pid())?;
        conn.close().await;
        eprintln!(
            "meshgate rss run: {}, VmRSS before {:.1} MiB, VmHWM {:.1} MiB \
             (sampled peaks: RssAnon {:.1} MiB, RssFile {:.1} MiB)",
            rate_str(cli.rss_rows, t),
            before.rss_kib as f64 / 1024.0,
            after.hwm_kib as f64 / 1024.0,
            parts.anon_kib as f64 / 1024.0,
            parts.file_kib as f64 / 1024.0
        );
        RssRun {
            before,
            after,
            parts,
            time: t,
        }
    };

    print_report(&cli, &mesh, pg.as_ref(), rss);
    Ok(())
}

const MIB: f64 = 1024.0 * 1024.0;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("day", DataType::Date32, false),
    ]))
}

fn base_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 1, 1).expect("valid date")
}

/// Write `rows` rows to a Parquet file, `WRITE_BATCH` rows at a time; returns
/// the file size.
fn write_parquet(path: &Path, rows: u64) -> Result<u64> {
    let schema = schema();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let base = (base_day() - epoch).num_days() as i32;
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None)?;
    let mut start = 0u64;
    while start < rows {
        let end = (start + WRITE_BATCH).min(rows);
        let ids = start as i64..end as i64;
        let mut names =
            StringBuilder::with_capacity((end - start) as usize, 16 * (end - start) as usize);
        for id in ids.clone() {
            names.append_value(format!("member-{id}"));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(names.finish()),
            Arc::new(Float64Array::from_iter_values(
                ids.clone().map(|id| id as f64 * 0.25),
            )),
            Arc::new(Date32Array::from_iter_values(
                ids.map(|id| base + (id % 1000) as i32),
            )),
        ];
        writer.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
        start = end;
    }
    writer.close()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Stream `sql` with the extended protocol (binary results), decode every
/// column of every row, check the rows, and return the elapsed time.
async fn stream_query(client: &Client, sql: &str, expected: u64) -> Result<Duration> {
    let base = base_day();
    let start = Instant::now();
    let stream = client
        .query_raw(sql, std::iter::empty::<i32>())
        .await
        .with_context(|| format!("running {sql}"))?;
    pin_mut!(stream);
    let mut count = 0u64;
    let mut id_sum = 0i128;
    let mut name_bytes = 0u64;
    while let Some(row) = stream.try_next().await? {
        let id: i64 = row.get(0);
        let name: &str = row.get(1);
        let amount: f64 = row.get(2);
        let day: NaiveDate = row.get(3);
        // Cheap per-row checks; row order is not guaranteed.
        if amount != id as f64 * 0.25
            || (day - base).num_days() != id % 1000
            || !name.starts_with("member-")
        {
            bail!("unexpected row: {id}, {name:?}, {amount}, {day}");
        }
        id_sum += i128::from(id);
        name_bytes += name.len() as u64;
        count += 1;
    }
    let elapsed = start.elapsed();
    ensure!(
        count == expected,
        "{sql}: got {count} rows, expected {expected}"
    );
    let n = i128::from(expected);
    ensure!(
        id_sum == n * (n - 1) / 2,
        "{sql}: ids are not 0..{expected}"
    );
    let digits: u64 = (0..expected).map(|id| id.to_string().len() as u64).sum();
    ensure!(
        name_bytes == expected * 7 + digits,
        "{sql}: names have the wrong total length"
    );
    Ok(elapsed)
}

struct PgResult {
    version: String,
    times: Vec<Duration>,
}

async fn run_postgres(cli: &Cli) -> Result<PgResult> {
    let conn = match connect(&cli.pg).await {
        Ok(c) => c,
        Err(e) if cli.pg == DEFAULT_PG => {
            eprintln!("{e:#}; trying {FALLBACK_PG}");
            connect(FALLBACK_PG).await?
        }
        Err(e) => return Err(e),
    };
    let client = &conn.client;
    let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    // "15.20 (Debian 15.20-0+deb12u1)" -> "15.20"
    let version = version.split_whitespace().next().unwrap_or("").to_owned();
    let table = format!("bench_stream_{}", std::process::id());
    let start = Instant::now();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} AS SELECT g::bigint AS id, 'member-' || g AS name,
                 g * 0.25::float8 AS amount, DATE '2020-01-01' + (g % 1000)::int AS day
             FROM generate_series(0, {}) g;
             ANALYZE {table};",
            cli.rows - 1
        ))
        .await
        .context("creating the PostgreSQL table")?;
    eprintln!("created {table} in {:.1?}", start.elapsed());
    let result = async {
        let sql = format!("SELECT id, name, amount, day FROM {table}");
        let mut times = Vec::new();
        for run in 1..=cli.runs {
            let t = stream_query(client, &sql, cli.rows).await?;
            eprintln!("postgresql run {run}: {}", rate_str(cli.rows, t));
            times.push(t);
        }
        Ok::<_, anyhow::Error>(times)
    }
    .await;
    let dropped = client.batch_execute(&format!("DROP TABLE {table}")).await;
    let times = result?;
    dropped.context("dropping the PostgreSQL table")?;
    conn.close().await;
    Ok(PgResult { version, times })
}

#[derive(Debug, Clone, Copy, Default)]
struct ProcStatus {
    rss_kib: u64,
    hwm_kib: u64,
    anon_kib: u64,
    file_kib: u64,
}

fn proc_status(pid: u32) -> Result<ProcStatus> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kib = line.trim().trim_end_matches("kB").trim();
        Ok(kib.parse()?)
    };
    Ok(ProcStatus {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        anon_kib: field("RssAnon:")?,
        file_kib: field("RssFile:")?,
    })
}

/// The 10M-row run's measurements.
struct RssRun {
    before: ProcStatus,
    after: ProcStatus,
    /// Sampled peaks of RssAnon and RssFile during the query.
    parts: ProcStatus,
    time: Duration,
}

/// Samples a process's RssAnon and RssFile every 10 ms on its own thread
/// and keeps each one's maximum: the kernel keeps a peak (VmHWM) only for
/// their sum.
struct PeakSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<ProcStatus>,
}

impl PeakSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = ProcStatus::default();
            loop {
                if let Ok(now) = proc_status(pid) {
                    peak.anon_kib = peak.anon_kib.max(now.anon_kib);
                    peak.file_kib = peak.file_kib.max(now.file_kib);
                }
                if flag.load(Ordering::Relaxed) {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self { stop, thread }
    }

    fn finish(self) -> ProcStatus {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn rate(rows: u64, t: Duration) -> f64 {
    rows as f64 / t.as_secs_f64()
}

fn rate_str(rows: u64, t: Duration) -> String {
    format!(
        "{} rows in {:.3} s = {} rows/s",
        fmt_int(rows),
        t.as_secs_f64(),
        fmt_int(rate(rows, t) as u64)
    )
}

/// Best and median rows/s of a set of runs.
fn best_median(rows: u64, times: &[Duration]) -> (f64, f64) {
    let mut rates: Vec<f64> = times.iter().map(|t| rate(rows, *t)).collect();
    rates.sort_by(f64::total_cmp);
    let n = rates.len();
    let median = if n % 2 == 1 {
        rates[n / 2]
    } else {
        (rates[n / 2 - 1] + rates[n / 2]) / 2.0
    };
    (rates[n - 1], median)
}

fn fmt_int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn machine_info() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{cpus} CPUs (nproc), {model}")
}

fn print_report(cli: &Cli, mesh: &[Duration], pg: Option<&PgResult>, rss: RssRun) {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Machine: {}; build: {profile}", machine_info());
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| Source ({} rows, binary format, runs: {}) | best rows/s | median rows/s |",
        fmt_int(cli.rows),
        cli.runs
    );
    let _ = writeln!(out, "|---|---:|---:|");
    let (m_best, m_med) = best_median(cli.rows, mesh);
    let _ = writeln!(
        out,
        "| meshgate (Parquet file) | {} | {} |",
        fmt_int(m_best as u64),
        fmt_int(m_med as u64)
    );
    if let Some(pg) = pg {
        let (p_best, p_med) = best_median(cli.rows, &pg.times);
        let _ = writeln!(
            out,
            "| PostgreSQL {} (heap table) | {} | {} |",
            pg.version,
            fmt_int(p_best as u64),
            fmt_int(p_med as u64)
        );
        let _ = writeln!(
            out,
            "| ratio meshgate / PostgreSQL | {:.2} | {:.2} |",
            m_best / p_best,
            m_med / p_med
        );
    }
    let _ = writeln!(out);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let _ = writeln!(
        out,
        "| meshgate streaming {} rows | baseline RSS (MiB) | peak RSS, VmHWM (MiB) \
         | peak RssAnon (MiB) | peak RssFile (MiB) | rows/s |",
        fmt_int(cli.rss_rows)
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| fresh process, one query | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
        mib(rss.before.rss_kib),
        mib(rss.after.hwm_kib),
        mib(rss.parts.anon_kib),
        mib(rss.parts.file_kib),
        fmt_int(rate(cli.rss_rows, rss.time) as u64)
    );
}

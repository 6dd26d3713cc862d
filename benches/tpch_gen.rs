//! `tpch-gen`: the eight TPC-H tables as Parquet files, for `benches/tpch.py`.
//!
//! Writes `<out>/<table>.parquet` for each table at scale factor `--sf`
//! (generated with tpchgen, the TPC-H reference generator's Rust port),
//! one file per table with 1M-row row groups and page statistics, as a
//! domain team would publish them. Existing files are kept.
//!
//! ```text
//! $CARGO_TARGET_DIR/release/tpch-gen --sf 1 --out ~/.cache/meshgate/tpch-sf1
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

#[derive(Parser)]
#[command(name = "tpch-gen", about = "TPC-H tables as Parquet files")]
struct Cli {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 1.0)]
    sf: f64,
    /// Directory for `<table>.parquet`.
    #[arg(long)]
    out: PathBuf,
}

const BATCH: usize = 65_536;

fn main() -> Result<()> {
    let cli = Cli::parse();
    std::fs::create_dir_all(&cli.out)?;
    let sf = cli.sf;
    write(
        &cli.out,
        "nation",
        NationArrow::new(NationGenerator::new(sf, 1, 1)),
    )?;
    write(
        &cli.out,
        "region",
        RegionArrow::new(RegionGenerator::new(sf, 1, 1)),
    )?;
    write(
        &cli.out,
        "part",
        PartArrow::new(PartGenerator::new(sf, 1, 1)).with_batch_size(BATCH),
    )?;
    write(
        &cli.out,
        "supplier",
        SupplierArrow::new(SupplierGenerator::new(sf, 1, 1)).with_batch_size(BATCH),
    )?;
    write(
        &cli.out,
        "partsupp",
        PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1)).with_batch_size(BATCH),
    )?;
    write(
        &cli.out,
        "customer",
        CustomerArrow::new(CustomerGenerator::new(sf, 1, 1)).with_batch_size(BATCH),
    )?;
    write(
        &cli.out,
        "orders",
        OrderArrow::new(OrderGenerator::new(sf, 1, 1)).with_batch_size(BATCH),
    )?;
    write(
        &cli.out,
        "lineitem",
        LineItemArrow::new(LineItemGenerator::new(sf, 1, 1)).with_batch_size(BATCH),
    )?;
    Ok(())
}

fn write<E: std::fmt::Display>(
    dir: &Path,
    table: &str,
    mut batches: impl Iterator<Item = Result<RecordBatch, E>>,
) -> Result<()> {
    let path = dir.join(format!("{table}.parquet"));
    if path.exists() {
        eprintln!("{} exists, kept", path.display());
        return Ok(());
    }
    let started = Instant::now();
    let partial = dir.join(format!(".{table}.parquet.partial"));
    let first = batches
        .next()
        .context("no rows")?
        .map_err(|e| anyhow::anyhow!("{table}: {e}"))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(&partial)?,
        first.schema(),
        Some(props),
    )?;
    let mut rows = first.num_rows();
    writer.write(&first)?;
    for batch in batches {
        let batch = batch.map_err(|e| anyhow::anyhow!("{table}: {e}"))?;
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.close()?;
    std::fs::rename(&partial, &path)?;
    eprintln!(
        "{table}: {rows} rows in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

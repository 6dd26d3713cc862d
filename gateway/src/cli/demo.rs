//! `meshgate demo`: write the demo mesh, then serve it and say how to
//! connect.

use std::path::PathBuf;

use meshgate_gateway::demo::{self, DemoOptions, DEMO_PASSWORD, DEMO_USER};
use meshgate_gateway::{Config, Gateway};

use super::CliError;

/// Write the demo into `data_dir`; unless `write_only`, serve it on the
/// given addresses until Ctrl-C or SIGTERM.
pub(super) async fn run(
    data_dir: PathBuf,
    pgwire: String,
    flight_sql: String,
    http: String,
    write_only: bool,
) -> Result<(), CliError> {
    let options = DemoOptions {
        data_dir,
        pgwire_address: pgwire,
        flight_sql_address: Some(flight_sql),
        http_address: Some(http),
        with_policy: true,
    };
    let path = demo::write_demo(&options).await?;
    eprintln!("demo mesh written to {}", options.data_dir.display());
    if write_only {
        return Ok(());
    }
    let config = Config::load(&path)?;
    let gateway = Gateway::build(config).await?;
    let running = gateway.start().await?;
    if let Some(addr) = running.pgwire_addr {
        println!("meshgate demo is serving the members, claims and providers domains.");
        println!("Connect with (password: {DEMO_PASSWORD}):");
        println!(
            "  PGPASSWORD={DEMO_PASSWORD} psql \"host={} port={} user={DEMO_USER} dbname=members\"",
            addr.ip(),
            addr.port()
        );
        println!("Try the cross-domain join:\n  {}", demo::CROSS_DOMAIN_JOIN);
    }
    if let Some(addr) = running.flight_sql_addr {
        println!("Arrow Flight SQL: grpc://{addr} (user {DEMO_USER}, password {DEMO_PASSWORD})");
    }
    if let Some(addr) = running.http_addr {
        println!("Data products: http://{addr}/products (API: http://{addr}/v1/products, http://{addr}/openapi.json)");
        println!("Health and metrics: http://{addr}/readyz, http://{addr}/metrics");
    }
    running.run_until_signal().await;
    Ok(())
}

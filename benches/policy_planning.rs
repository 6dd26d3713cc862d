//! Planning cost of the access policy: a 3-catalog join planned with no
//! policy, with a 1-rule policy and with a 1,001-rule policy.
//!
//! Planning here is what the policy touches: opening a session and turning
//! the SQL into a logical plan, which resolves the three tables through the
//! policy (evaluation, then the filter/mask view). Execution is not timed.
//!
//!   cargo build --release --bin policy-planning
//!   $CARGO_TARGET_DIR/release/policy-planning [iterations]

use std::time::{Duration, Instant};

use meshgate_gateway::demo::{write_demo, DemoOptions, CROSS_DOMAIN_JOIN};
use meshgate_gateway::{Config, Gateway};
use meshgate_planner::{Identity, SessionOptions};

fn policy(extra_rules: usize) -> String {
    let mut text = String::from(
        "[[grants]]\neffect = \"allow\"\nprincipals = [\"user:analyst\"]\ntables = [\"*\"]\n\
         [[row_filters]]\nprincipals = [\"user:analyst\"]\ntables = [\"claims.public.claims\"]\nfilter = \"amount >= 0\"\n",
    );
    for i in 0..extra_rules {
        // Rules for other principals and other tables: evaluated, never matching.
        match i % 3 {
            0 => text.push_str(&format!(
                "[[grants]]\neffect = \"deny\"\nprincipals = [\"user:u{i}\"]\ntables = [\"domain{i}.public.*\"]\n"
            )),
            1 => text.push_str(&format!(
                "[[row_filters]]\nprincipals = [\"user:u{i}\"]\ntables = [\"domain{i}.*.*\"]\nfilter = \"region = 'r{i}'\"\n"
            )),
            _ => text.push_str(&format!(
                "[[masks]]\nprincipals = [\"*\"]\nexcept = [\"user:analyst\"]\ntables = [\"domain{i}.public.t\"]\ncolumn = \"c\"\nmask = \"NULL\"\n"
            )),
        }
    }
    text
}

async fn measure(
    label: &str,
    policy_text: Option<String>,
    iterations: usize,
) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let path = write_demo(&DemoOptions {
        data_dir: dir.path().to_path_buf(),
        pgwire_address: "127.0.0.1:0".into(),
        flight_sql_address: None,
        http_address: None,
        with_policy: false,
    })
    .await?;
    if let Some(text) = policy_text {
        std::fs::write(dir.path().join("policy.toml"), text)?;
        let mut config = std::fs::read_to_string(&path)?;
        config.push_str("\n[policy]\nfile = \"policy.toml\"\n");
        std::fs::write(&path, config)?;
    }
    let gateway = Gateway::build(Config::load(&path)?).await?;
    let service = gateway.service().clone();
    let mut times = Vec::with_capacity(iterations);
    for i in 0..iterations + 20 {
        let started = Instant::now();
        let session = service.open_session(Identity::new("analyst"), SessionOptions::default())?;
        let prepared = session.prepare(CROSS_DOMAIN_JOIN).await?;
        let elapsed = started.elapsed();
        assert!(prepared.returns_rows());
        if i >= 20 {
            times.push(elapsed); // the first 20 warm caches and the allocator
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "| {label} | {:.3} | {:.3} |",
        median.as_secs_f64() * 1e3,
        times[times.len() * 9 / 10].as_secs_f64() * 1e3
    );
    Ok(median)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(500);
    println!("| policy | median planning (ms) | p90 (ms) |");
    println!("| --- | ---: | ---: |");
    let none = measure("none", None, iterations).await?;
    let one = measure("1 grant + 1 row filter", Some(policy(0)), iterations).await?;
    let many = measure(
        "1,002 rules (1,000 not matching)",
        Some(policy(1000)),
        iterations,
    )
    .await?;
    println!(
        "\nratio 1,002 rules / 2 rules: {:.3}; 1,002 rules / no policy: {:.3}",
        many.as_secs_f64() / one.as_secs_f64(),
        many.as_secs_f64() / none.as_secs_f64()
    );
    Ok(())
}

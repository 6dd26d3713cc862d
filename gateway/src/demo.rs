//! `meshgate demo`: a small, deterministic health-insurance data mesh.
//!
//! Three domains, each in the store its team would pick:
//! - `members` — a CSV file (`members.public.members`),
//! - `claims` — a Delta Lake table partitioned by status (`claims.public.claims`),
//! - `providers` — a Parquet file (`providers.public.providers`).
//!
//! The data is generated from fixed seeds, so every run (and every test) sees
//! the same rows. [`write_demo`] writes the data and a `meshgate.toml` next to
//! it; the CLI then serves that configuration. The Delta table is written by
//! the connectors crate ([`meshgate_connectors::create_delta_table`]), which
//! links the Delta writer, so the gateway does not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::errors::ParquetError;
use meshgate_connectors::{create_delta_table, ConnectorError};
use thiserror::Error;

use crate::auth::PasswordHash;

/// Why the demo mesh could not be written.
#[derive(Debug, Error)]
pub enum DemoError {
    /// A file or directory of the demo could not be written or replaced.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Csv(#[from] ArrowError),
    #[error(transparent)]
    Parquet(#[from] ParquetError),
    #[error(transparent)]
    Delta(#[from] ConnectorError),
}

/// `result`'s I/O error, naming `path`.
fn at<T>(path: &Path, result: std::io::Result<T>) -> Result<T, DemoError> {
    result.map_err(|source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub const MEMBERS: usize = 200;
pub const PROVIDERS: usize = 25;
pub const CLAIMS: usize = 1000;
/// The demo's user and password (printed by `meshgate demo`).
pub const DEMO_USER: &str = "analyst";
pub const DEMO_PASSWORD: &str = "meshgate";

const STATES: &[&str] = &["CA", "NY", "TX", "WA", "FL"];
const PLANS: &[&str] = &["bronze", "silver", "gold"];
const FIRST: &[&str] = &[
    "Ana", "Ben", "Chen", "Dara", "Eli", "Farah", "Gus", "Hana", "Ivan", "Jun",
];
const LAST: &[&str] = &[
    "Silva", "Okafor", "Novak", "Haddad", "Kim", "Lopez", "Meyer", "Sato",
];
const SPECIALTIES: &[&str] = &[
    "cardiology",
    "dermatology",
    "family medicine",
    "orthopedics",
    "pediatrics",
];
const STATUSES: &[&str] = &["approved", "denied", "pending"];

/// Where the demo listens and what it writes.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub pgwire_address: String,
    pub flight_sql_address: Option<String>,
    /// The HTTP listener (health, metrics, the data products page and API).
    pub http_address: Option<String>,
    /// Serve the demo under its access policy ([`DEMO_POLICY`]): columns
    /// tagged `pii` read as NULL. Tests that bring their own policy leave
    /// it out.
    pub with_policy: bool,
}

/// A tiny deterministic generator (64-bit LCG): same seed, same mesh.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Days since 1970-01-01 for a date in 2025 (day 0..365).
fn day_2025(day: usize) -> i32 {
    20089 + day as i32
}

fn members() -> RecordBatch {
    let mut rng = Rng(7);
    let mut id = Vec::new();
    let mut first = Vec::new();
    let mut last = Vec::new();
    let mut state = Vec::new();
    let mut plan = Vec::new();
    let mut birth = Vec::new();
    for i in 0..MEMBERS {
        id.push(1000 + i as i64);
        first.push(rng.pick(FIRST).to_owned());
        last.push(rng.pick(LAST).to_owned());
        state.push(rng.pick(STATES).to_owned());
        plan.push(rng.pick(PLANS).to_owned());
        birth.push(-3650 + rng.below(15000) as i32);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, false),
        Field::new("first_name", DataType::Utf8, false),
        Field::new("last_name", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
        Field::new("birth_date", DataType::Date32, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(id)),
        Arc::new(StringArray::from(first)),
        Arc::new(StringArray::from(last)),
        Arc::new(StringArray::from(state)),
        Arc::new(StringArray::from(plan)),
        Arc::new(Date32Array::from(birth)),
    ];
    RecordBatch::try_new(schema, columns).expect("static schema")
}

fn providers() -> RecordBatch {
    let mut rng = Rng(11);
    let mut id = Vec::new();
    let mut name = Vec::new();
    let mut specialty = Vec::new();
    let mut state = Vec::new();
    for i in 0..PROVIDERS {
        id.push(1 + i as i32);
        name.push(format!("{} Clinic {}", rng.pick(LAST), i + 1));
        specialty.push(rng.pick(SPECIALTIES).to_owned());
        state.push(rng.pick(STATES).to_owned());
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("provider_id", DataType::Int32, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("specialty", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(id)),
        Arc::new(StringArray::from(name)),
        Arc::new(StringArray::from(specialty)),
        Arc::new(StringArray::from(state)),
    ];
    RecordBatch::try_new(schema, columns).expect("static schema")
}

/// The claims table's rows (also appended by tests that make a new Delta commit).
pub fn claims() -> RecordBatch {
    let mut rng = Rng(13);
    let mut id = Vec::new();
    let mut member = Vec::new();
    let mut provider = Vec::new();
    let mut date = Vec::new();
    let mut amount = Vec::new();
    let mut status = Vec::new();
    for i in 0..CLAIMS {
        id.push(500_000 + i as i64);
        member.push(1000 + rng.below(MEMBERS) as i64);
        provider.push(1 + rng.below(PROVIDERS) as i32);
        date.push(day_2025(rng.below(365)));
        amount.push(2_500 + rng.below(250_000) as i128); // cents
        status.push(rng.pick(STATUSES).to_owned());
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("claim_id", DataType::Int64, false),
        Field::new("member_id", DataType::Int64, false),
        Field::new("provider_id", DataType::Int32, false),
        Field::new("service_date", DataType::Date32, false),
        Field::new("amount", DataType::Decimal128(10, 2), false),
        Field::new("status", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(id)),
        Arc::new(Int64Array::from(member)),
        Arc::new(Int32Array::from(provider)),
        Arc::new(Date32Array::from(date)),
        Arc::new(
            Decimal128Array::from(amount)
                .with_precision_and_scale(10, 2)
                .expect("valid precision"),
        ),
        Arc::new(StringArray::from(status)),
    ];
    RecordBatch::try_new(schema, columns).expect("static schema")
}

fn write_csv(path: &Path, batch: &RecordBatch) -> Result<(), DemoError> {
    let file = at(path, std::fs::File::create(path))?;
    let mut writer = datafusion::arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(file);
    writer.write(batch)?;
    Ok(())
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), DemoError> {
    let file = at(path, std::fs::File::create(path))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None)?;
    writer.write(batch)?;
    writer.close()?;
    Ok(())
}

/// Write the demo data and its `meshgate.toml` into `options.data_dir`
/// (replacing an earlier demo there) and return the config file's path.
pub async fn write_demo(options: &DemoOptions) -> Result<PathBuf, DemoError> {
    let dir = &options.data_dir;
    for domain in ["members", "claims", "providers"] {
        let path = dir.join(domain);
        if path.exists() {
            at(&path, std::fs::remove_dir_all(&path))?;
        }
        at(&path, std::fs::create_dir_all(&path))?;
    }
    write_csv(&dir.join("members/members.csv"), &members())?;
    write_parquet(&dir.join("providers/providers.parquet"), &providers())?;
    create_delta_table(&dir.join("claims/claims"), vec![claims()], &["status"]).await?;

    let mut config = String::from("# Written by `meshgate demo`: three domains, three stores.\n");
    config.push_str("[server]\ndefault_catalog = \"members\"\n\n");
    config.push_str(&format!(
        "[listeners.pgwire]\naddress = \"{}\"\n",
        options.pgwire_address
    ));
    if let Some(flight) = &options.flight_sql_address {
        config.push_str(&format!("[listeners.flight_sql]\naddress = \"{flight}\"\n"));
        // Flight SQL credentials travel in headers; the demo has no TLS.
        config.push_str(
            "\n# The demo runs without TLS: Flight SQL passwords cross in cleartext.\n\
             # In production configure [tls] and remove this.\n[auth]\nallow_cleartext = true\n",
        );
    }
    if let Some(http) = &options.http_address {
        config.push_str(&format!("[listeners.http]\naddress = \"{http}\"\n"));
    }
    config.push_str(&format!(
        "\n# password: {DEMO_PASSWORD}\n[users.{DEMO_USER}]\npassword = \"{}\"\n\n",
        PasswordHash::generate(DEMO_PASSWORD)
    ));
    config.push_str(
        r#"[catalogs.members]
connector = "files"
description = "Membership domain: who is insured, on which plan."
root = "members"
products_file = "members/products.yaml"
[catalogs.members.tables.members]
path = "members.csv"
format = "csv"
header = true
description = "One row per insured member."
column_descriptions = { state = "US state of residence (two letters)." }

[catalogs.claims]
connector = "delta"
description = "Claims domain: every claim filed, partitioned by status."
root = "claims"
products_file = "claims/products.yaml"
[catalogs.claims.tables.claims]
path = "claims"
description = "One row per claim; amount in USD."

[catalogs.providers]
connector = "files"
description = "Provider network domain."
root = "providers"
products_file = "providers/products.yaml"
[catalogs.providers.tables.providers]
path = "providers.parquet"
"#,
    );
    for (domain, descriptor) in [
        ("members", MEMBERS_PRODUCTS),
        ("claims", CLAIMS_PRODUCTS),
        ("providers", PROVIDERS_PRODUCTS),
    ] {
        let path = dir.join(domain).join("products.yaml");
        at(&path, std::fs::write(&path, descriptor))?;
    }
    // The members file was last written three days ago, as a feed that has
    // stopped would be: past the product's 24h freshness SLO.
    let members_csv = dir.join("members/members.csv");
    let three_days = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400);
    at(
        &members_csv,
        std::fs::File::options()
            .write(true)
            .open(&members_csv)
            .and_then(|f| f.set_modified(three_days)),
    )?;
    if options.with_policy {
        let path = dir.join("policy.toml");
        at(&path, std::fs::write(&path, DEMO_POLICY))?;
        config.push_str("\n[policy]\nfile = \"policy.toml\"\n");
    }
    let config_path = dir.join("meshgate.toml");
    at(&config_path, std::fs::write(&config_path, config))?;
    Ok(config_path)
}

/// The demo's access policy (with [`DemoOptions::with_policy`]): everyone
/// reads every domain; columns the descriptors tag `pii` read as NULL for
/// everyone outside the `privacy` group.
pub const DEMO_POLICY: &str = r#"# Written by `meshgate demo`.
admins = ["user:analyst"]

[groups]
privacy = ["privacy_officer"]

[[grants]]
effect = "allow"
principals = ["*"]
tables = ["*"]

[[masks]]
principals = ["*"]
except = ["group:privacy"]
column_tags = ["pii"]
mask = "NULL"
"#;

/// The membership domain's product: a CSV feed that has stopped (past its SLO).
const MEMBERS_PRODUCTS: &str = r#"products:
  - name: members
    domain: membership
    owner: { team: membership, contact: membership-team@example.com }
    description: Every insured member and their plan, one row per member.
    status: active
    tags: [gold]
    slo: { freshness: 24h, availability: "99.5%" }
    tables:
      - name: public.members
        columns:
          - { name: member_id, type: bigint, nullable: false, unique: true, description: Member number. }
          - { name: first_name, type: varchar, nullable: false }
          - { name: last_name, type: varchar, nullable: false, tags: [pii], description: Family name. }
          - { name: state, type: varchar, nullable: false }
          - { name: plan, type: varchar, nullable: false, description: "bronze, silver or gold." }
          - { name: birth_date, type: date, nullable: false, tags: [pii] }
    quality:
      - name: known_plans
        description: Every member is on a plan the domain sells.
        query: "SELECT count(*) FROM members.public.members WHERE plan NOT IN ('bronze', 'silver', 'gold')"
"#;

/// The claims domain's product: a Delta table.
const CLAIMS_PRODUCTS: &str = r#"products:
  - name: claims
    domain: claims
    owner: { team: claims, contact: claims-team@example.com }
    description: Every claim filed, with its amount in USD and its status.
    tags: [finance]
    slo: { freshness: 1h }
    tables:
      - name: public.claims
        columns:
          - { name: claim_id, type: bigint, nullable: false, unique: true }
          - { name: member_id, type: bigint, nullable: false, description: The member who filed it. }
          - { name: provider_id, type: integer, nullable: false }
          - { name: service_date, type: date, nullable: false }
          - { name: amount, type: "decimal(10,2)", nullable: false, description: Amount claimed in USD. }
          - { name: status, type: varchar, nullable: false, description: "approved, denied or pending." }
    quality:
      - name: positive_amounts
        query: "SELECT count(*) FROM claims.public.claims WHERE amount <= 0"
"#;

/// The provider network's product: a Parquet file.
const PROVIDERS_PRODUCTS: &str = r#"products:
  - name: providers
    domain: provider-network
    owner: { team: provider-network, contact: provider-network@example.com }
    description: Clinics in the network and their specialty.
    slo: { freshness: 30d }
    tables:
      - name: public.providers
        columns:
          - { name: provider_id, type: integer, nullable: false, unique: true }
          - { name: name, type: varchar, nullable: false }
          - { name: specialty, type: varchar, nullable: false }
          - { name: state, type: varchar, nullable: false }
"#;

/// The README's cross-domain join: claims per state and specialty.
pub const CROSS_DOMAIN_JOIN: &str =
    "SELECT m.state, p.specialty, count(*) AS claims, sum(c.amount) AS total \
FROM claims.public.claims c \
JOIN members.public.members m ON m.member_id = c.member_id \
JOIN providers.public.providers p ON p.provider_id = c.provider_id \
WHERE c.status = 'approved' \
GROUP BY m.state, p.specialty ORDER BY total DESC LIMIT 5";

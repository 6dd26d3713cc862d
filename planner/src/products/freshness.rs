//! How fresh each data product's tables are, measured from the source: a
//! Delta table's newest commit, a file table's newest file modification
//! time, a database table's `max(freshness_column)`. Measurements are
//! cached for a short time ([`Freshness::TTL`]) so that telling a client it
//! reads stale data costs no source round trip per query;
//! `system.freshness` measures afresh.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::catalog::CatalogProvider;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use meshgate_policy::TableName;

use super::descriptor::ProductTable;
use super::live::LiveProducts;
use super::Product;

/// One table's freshness, as measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub product: String,
    pub table: TableName,
    /// When the data last changed, if the source says.
    pub last_modified: Option<DateTime<Utc>>,
    /// How it was measured (`delta commit`, `file modification time`,
    /// `max(updated_at)`), or why it could not be.
    pub measured_by: String,
    pub measured_at: DateTime<Utc>,
    /// The product's freshness SLO, and as its descriptor writes it.
    pub slo: Option<Duration>,
    pub slo_text: Option<String>,
    /// Why the measurement failed.
    pub error: Option<String>,
}

impl Measurement {
    /// How old the data was when measured.
    pub fn age(&self) -> Option<Duration> {
        self.last_modified.and_then(|t| {
            (self.measured_at - t)
                .to_std()
                .ok()
                .or(Some(Duration::ZERO))
        })
    }

    /// Whether the data is within the SLO (`None`: no SLO, or unknown age).
    pub fn within_slo(&self) -> Option<bool> {
        Some(self.age()? <= self.slo?)
    }

    /// The warning a client reading this table gets, when it is past its SLO.
    pub fn warning(&self) -> Option<String> {
        if self.within_slo()? {
            return None;
        }
        Some(format!(
            "data product `{}` is past its freshness SLO of {}: {} last changed {} ago ({})",
            self.product,
            self.slo_text.as_deref()?,
            self.table,
            human(self.age()?),
            self.measured_by
        ))
    }
}

/// A duration as people write it (`3d 2h`, `45min`, `12s`).
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}min", s / 60),
        3600..86_400 => format!("{}h {}min", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Measures and caches the freshness of every product table.
pub struct Freshness {
    /// The catalogs in force (replaced when they are reloaded).
    catalogs: std::sync::RwLock<Arc<BTreeMap<String, Arc<dyn CatalogProvider>>>>,
    runtime: Arc<RuntimeEnv>,
    products: Arc<LiveProducts>,
    cache: moka::future::Cache<TableName, Arc<Measurement>>,
}

impl std::fmt::Debug for Freshness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Freshness").finish_non_exhaustive()
    }
}

impl Freshness {
    /// How long a measurement is reused for query-time warnings.
    pub const TTL: Duration = Duration::from_secs(30);

    pub fn new(
        catalogs: Arc<BTreeMap<String, Arc<dyn CatalogProvider>>>,
        runtime: Arc<RuntimeEnv>,
        products: Arc<LiveProducts>,
    ) -> Self {
        Self {
            catalogs: std::sync::RwLock::new(catalogs),
            runtime,
            products,
            cache: moka::future::Cache::builder()
                .time_to_live(Self::TTL)
                .max_capacity(10_000)
                .build(),
        }
    }

    /// Measure over `catalogs` from now on (the catalogs were reloaded);
    /// earlier measurements are dropped.
    pub(crate) fn set_catalogs(&self, catalogs: Arc<BTreeMap<String, Arc<dyn CatalogProvider>>>) {
        *self.catalogs.write().expect("freshness lock") = catalogs;
        self.cache.invalidate_all();
    }

    fn catalogs(&self) -> Arc<BTreeMap<String, Arc<dyn CatalogProvider>>> {
        self.catalogs.read().expect("freshness lock").clone()
    }

    /// `table`'s freshness, from the cache when recent (`None`: the table
    /// is no product's).
    pub async fn cached(&self, table: &TableName) -> Option<Arc<Measurement>> {
        let products = self.products.current();
        let product = products.product_of(table)?;
        let (_, entry) = product.tables().find(|(name, _)| name == table)?;
        let measure = self.measure(product, table, entry);
        Some(self.cache.get_with(table.clone(), measure).await)
    }

    /// Measure every product table `keep` keeps, now (and refresh the cache).
    pub async fn measure_all(&self, keep: impl Fn(&TableName) -> bool) -> Vec<Arc<Measurement>> {
        let mut out = Vec::new();
        let products = self.products.current();
        for product in products.products() {
            for (table, entry) in product.tables().filter(|(t, _)| keep(t)) {
                let m = self.measure(product, &table, entry).await;
                self.cache.insert(table, m.clone()).await;
                out.push(m);
            }
        }
        out
    }

    async fn measure(
        &self,
        product: &Product,
        table: &TableName,
        entry: &ProductTable,
    ) -> Arc<Measurement> {
        let mut m = Measurement {
            product: product.name().to_owned(),
            table: table.clone(),
            last_modified: None,
            measured_by: String::new(),
            measured_at: Utc::now(),
            slo: product.descriptor.slo.freshness(),
            slo_text: product.descriptor.slo.freshness.clone(),
            error: None,
        };
        let result = match &entry.freshness_column {
            Some(column) => {
                m.measured_by = format!("max({column})");
                self.column_max(table, column).await
            }
            None => self.store_time(table).await.map(|found| {
                found.map(|(time, how)| {
                    m.measured_by = how.as_str().to_owned();
                    time
                })
            }),
        };
        match result {
            Ok(Some(time)) => m.last_modified = Some(time),
            Ok(None) if m.measured_by.is_empty() => {
                m.measured_by =
                    "not measured: declare a freshness_column for a database table".into()
            }
            Ok(None) => {}
            Err(e) => m.error = Some(e),
        }
        Arc::new(m)
    }

    /// What the table's store records as its last change.
    async fn store_time(
        &self,
        table: &TableName,
    ) -> Result<Option<(DateTime<Utc>, meshgate_connectors::ChangeSource)>, String> {
        let provider = self
            .catalogs()
            .get(&table.catalog)
            .and_then(|c| c.schema(&table.schema))
            .ok_or_else(|| format!("{table} does not exist"))?
            .table(&table.table)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{table} does not exist"))?;
        let state = SessionStateBuilder::new()
            .with_runtime_env(self.runtime.clone())
            .with_default_features()
            .build();
        meshgate_connectors::last_modified(&provider, &state)
            .await
            .map_err(|e| e.to_string())
    }

    /// `max(column)` of a table, as a UTC time, read through the table as
    /// any query reads it (pushed down to a database source).
    async fn column_max(
        &self,
        table: &TableName,
        column: &str,
    ) -> Result<Option<DateTime<Utc>>, String> {
        let config = SessionConfig::new().with_create_default_catalog_and_schema(false);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(self.runtime.clone())
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        for (name, catalog) in self.catalogs().iter() {
            ctx.register_catalog(name, catalog.clone());
        }
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let sql = format!(
            "SELECT max({}) FROM {}.{}.{}",
            quote(column),
            quote(&table.catalog),
            quote(&table.schema),
            quote(&table.table)
        );
        let batches = ctx
            .sql(&sql)
            .await
            .map_err(|e| e.to_string())?
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let Some(batch) = batches.first().filter(|b| b.num_rows() == 1) else {
            return Ok(None);
        };
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let value = datafusion::arrow::compute::cast(batch.column(0), &utc)
            .map_err(|e| format!("{column} is not a timestamp: {e}"))?;
        let value = value.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        Ok(value
            .is_valid(0)
            .then(|| DateTime::from_timestamp_micros(value.value(0)))
            .flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_slo_warns_and_says_how_old() {
        let now = Utc::now();
        let m = Measurement {
            product: "members".into(),
            table: TableName::new("members", "public", "members"),
            last_modified: Some(now - chrono::Duration::hours(75)),
            measured_by: "file modification time".into(),
            measured_at: now,
            slo: Some(Duration::from_secs(24 * 3600)),
            slo_text: Some("24h".into()),
            error: None,
        };
        assert_eq!(m.within_slo(), Some(false));
        assert_eq!(
            m.warning().unwrap(),
            "data product `members` is past its freshness SLO of 24h: \
             members.public.members last changed 3d 3h ago (file modification time)"
        );
        let fresh = Measurement {
            last_modified: Some(now),
            ..m.clone()
        };
        assert_eq!(fresh.warning(), None);
        let no_slo = Measurement { slo: None, ..m };
        assert_eq!(no_slo.within_slo(), None);
    }
}

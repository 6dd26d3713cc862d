//! `connector = "delta"`: Delta Lake tables on local disk or S3.
//!
//! Each query reads the table's latest committed version: the provider keeps
//! only the log store and resolves a fresh snapshot when a scan is planned, so
//! a commit made by a domain team's pipeline is visible to the next query
//! without a restart. Scans use deltalake's own provider, which prunes
//! partitions and skips files from the per-file statistics in the Delta log.
//!
//! ```toml
//! [catalogs.claims]
//! connector = "delta"
//! root = "data/claims"             # or "s3://bucket/prefix"
//! [catalogs.claims.tables.claims]
//! path = "claims"                  # the folder holding _delta_log
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Once};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, Session, TableProvider,
};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use deltalake::delta_datafusion::TableProviderBuilder;
use deltalake::logstore::{logstore_factories, LogStoreRef};
use deltalake::DeltaTableBuilder;
use object_store::ObjectStoreExt;
use serde::Deserialize;
use url::Url;

use crate::storage::{register_store, Location, StorageOptions, S3_SECRET_KEYS};
use crate::{parse_options, Connector, ConnectorContext, ConnectorError, Description};

/// Reads Delta Lake tables through deltalake's DataFusion integration.
pub struct DeltaConnector;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeltaOptions {
    root: Option<String>,
    s3: Option<StorageOptions>,
    #[serde(default)]
    tables: BTreeMap<String, DeltaTableOptions>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeltaTableOptions {
    path: String,
    #[serde(default = "default_schema")]
    schema: String,
    /// Shown to users in catalog listings (`pg_description`).
    description: Option<String>,
    /// Column descriptions by column name.
    #[serde(default)]
    column_descriptions: BTreeMap<String, String>,
}

fn default_schema() -> String {
    "public".to_owned()
}

/// S3 tables are read through the object store meshgate builds from the
/// catalog's options; deltalake only needs to know that `s3://` locations use
/// its default log store (reads need nothing S3-specific).
fn register_s3_log_store() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let registry = logstore_factories();
        let file = Url::parse("file://").expect("static URL");
        let factory = registry.get(&file).map(|f| f.value().clone());
        if let Some(factory) = factory {
            for scheme in ["s3://", "s3a://"] {
                let url = Url::parse(scheme).expect("static URL");
                if !registry.contains_key(&url) {
                    registry.insert(url, factory.clone());
                }
            }
        }
    });
}

#[async_trait]
impl Connector for DeltaConnector {
    fn kind(&self) -> &'static str {
        "delta"
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        S3_SECRET_KEYS
    }

    fn validate(&self, options: &toml::Table) -> Result<(), ConnectorError> {
        parse_options::<DeltaOptions>(options).map(|_| ())
    }

    fn descriptions(&self, options: &toml::Table) -> Vec<Description> {
        let Ok(opts) = parse_options::<DeltaOptions>(options) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, table) in &opts.tables {
            let describe = |column: Option<&String>, text: &String| Description {
                schema: table.schema.clone(),
                table: name.clone(),
                column: column.cloned(),
                text: text.clone(),
            };
            out.extend(table.description.iter().map(|text| describe(None, text)));
            for (column, text) in &table.column_descriptions {
                out.push(describe(Some(column), text));
            }
        }
        out
    }

    async fn build_catalog(
        &self,
        ctx: &ConnectorContext,
        _name: &str,
        options: &toml::Table,
    ) -> Result<Arc<dyn CatalogProvider>, ConnectorError> {
        let opts: DeltaOptions = parse_options(options)?;
        register_s3_log_store();
        let catalog = MemoryCatalogProvider::new();
        let mut schemas: BTreeMap<String, Arc<MemorySchemaProvider>> = BTreeMap::new();
        for (name, table) in &opts.tables {
            let location = Location::resolve(&ctx.base_dir, opts.root.as_deref(), &table.path)
                .map_err(|e| ConnectorError::table(name, e))?;
            let url = location
                .as_dir_url()
                .map_err(|e| ConnectorError::table(name, e))?;
            let store = register_store(&ctx.session, &location, opts.s3.as_ref())
                .map_err(|e| ConnectorError::table(name, e))?;
            let mut builder = DeltaTableBuilder::from_url(url.clone())
                .map_err(|e| ConnectorError::table(name, e))?;
            if let Some(store) = store {
                builder = builder.with_storage_backend(store, url.clone());
            }
            let delta = builder.load().await.map_err(|e| {
                ConnectorError::table(name, format!("cannot open Delta table at {url}: {e}"))
            })?;
            let provider = LatestDeltaTable::open(delta.log_store(), delta.table_provider())
                .await
                .map_err(|e| ConnectorError::table(name, e))?;
            let schema = schemas
                .entry(table.schema.clone())
                .or_insert_with(|| Arc::new(MemorySchemaProvider::new()));
            datafusion::catalog::SchemaProvider::register_table(
                schema.as_ref(),
                name.clone(),
                Arc::new(provider),
            )
            .map_err(|e| ConnectorError::table(name, e))?;
        }
        for (name, schema) in schemas {
            catalog
                .register_schema(&name, schema)
                .map_err(|e| ConnectorError::Storage(e.to_string()))?;
        }
        Ok(Arc::new(catalog))
    }
}

/// A Delta table that always scans its newest version.
#[derive(Debug)]
pub(crate) struct LatestDeltaTable {
    log_store: LogStoreRef,
    schema: SchemaRef,
    /// A provider over the snapshot seen at start-up; it answers the
    /// schema-only questions (filter pushdown) that need no fresh snapshot.
    template: Arc<dyn TableProvider>,
}

impl LatestDeltaTable {
    async fn open(log_store: LogStoreRef, builder: TableProviderBuilder) -> DfResult<Self> {
        let template: Arc<dyn TableProvider> = Arc::new(builder.build().await?);
        Ok(Self {
            log_store,
            schema: template.schema(),
            template,
        })
    }

    /// The table's newest version.
    pub(crate) async fn latest_version(&self) -> Result<u64, ConnectorError> {
        let table = self.log_store.root_url().to_string();
        self.log_store
            .get_latest_version(0)
            .await
            .map_err(|e| ConnectorError::table(&table, e))
    }

    /// The bytes of the files the newest version reads.
    pub(crate) async fn active_bytes(&self) -> Result<u64, ConnectorError> {
        let table = self.log_store.root_url().to_string();
        let mut latest = deltalake::DeltaTable::new(self.log_store.clone());
        latest
            .load()
            .await
            .map_err(|e| ConnectorError::table(&table, e))?;
        let snapshot = latest
            .snapshot()
            .map_err(|e| ConnectorError::table(&table, e))?;
        Ok(snapshot
            .log_data()
            .iter()
            .map(|file| file.size().max(0) as u64)
            .sum())
    }

    /// When the table's newest commit was written.
    pub(crate) async fn last_commit(
        &self,
    ) -> Result<chrono::DateTime<chrono::Utc>, ConnectorError> {
        let table = self.log_store.root_url().to_string();
        let version = self.latest_version().await?;
        let commit = deltalake::logstore::commit_uri_from_version(Some(version));
        let meta = self
            .log_store
            .object_store(None)
            .head(&commit)
            .await
            .map_err(|e| ConnectorError::table(&table, e))?;
        Ok(meta.last_modified)
    }
}

#[async_trait]
impl TableProvider for LatestDeltaTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        None
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.template.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let latest = TableProviderBuilder::default()
            .with_log_store(self.log_store.clone())
            .build()
            .await?;
        if latest.schema().fields() != self.schema.fields() {
            return Err(DataFusionError::Plan(format!(
                "the schema of Delta table {} changed since it was registered; restart meshgate to read the new schema",
                self.log_store.root_url()
            )));
        }
        latest.scan(state, projection, filters, limit).await
    }
}

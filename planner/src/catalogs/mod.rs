//! The catalogs meshgate serves, built once from configuration.
//!
//! Each configured catalog is built by its connector into a DataFusion
//! `CatalogProvider`. Every session shares these providers and one runtime
//! (memory pool, object stores), so a connection costs no catalog work. A
//! query under `[limits] query_memory` runs with a runtime of its own that
//! shares all of it but the pool (see `query_memory`).

mod product_checks;
mod reload;

pub use product_checks::{sql_type, ProductCheck};
pub use reload::CatalogChanges;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::catalog::CatalogProvider;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SessionStateBuilder;
use meshgate_connectors::{ConnectorContext, ConnectorError, ConnectorRegistry, Description};
use thiserror::Error;

use crate::products::contract::ContractCatalog;
use crate::products::freshness::Freshness;
use crate::products::lineage::Lineage;
use crate::products::live::{DescriptorSource, LiveProducts};
use crate::products::quality::QualityResults;
use crate::products::{DataProducts, ProductDescriptor, ProductsError};
use crate::read_only::ReadOnlyStoreRegistry;
use crate::{QueryError, QueryResult, RuntimeLimits};

/// One catalog as configured: `[catalogs.NAME] connector = "..."` plus its options.
#[derive(Clone)]
pub struct CatalogSpec {
    pub name: String,
    pub connector: String,
    pub description: Option<String>,
    pub options: toml::Table,
    /// The data products the catalog's domain declares: those inline in
    /// the configuration first, then those of its descriptor file.
    pub products: Vec<ProductDescriptor>,
    /// The descriptor file, where edits to its products are written.
    pub products_file: Option<DescriptorSource>,
}

/// Secrets in the options are shown redacted (the connector's secret keys).
impl std::fmt::Debug for CatalogSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogSpec")
            .field("name", &self.name)
            .field("connector", &self.connector)
            .field("description", &self.description)
            .field("products", &self.products.len())
            .field(
                "options",
                &meshgate_connectors::secrets::RedactedOptions::new(&self.connector, &self.options),
            )
            .finish()
    }
}

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("catalog `{catalog}`: unknown connector `{kind}` (known: {known})")]
    UnknownConnector {
        catalog: String,
        kind: String,
        known: String,
    },
    #[error("catalog `{catalog}`: {source}")]
    Connector {
        catalog: String,
        #[source]
        source: ConnectorError,
    },
    #[error("runtime: {0}")]
    Runtime(String),
    #[error(transparent)]
    Products(#[from] ProductsError),
}

/// How long a file table's file listing is reused before its directory is
/// listed again.
pub const FILE_LISTING_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The catalogs in force at one time: replaced whole by a reload, so a
/// reader sees the set before a reload or after it, never half of one.
pub(crate) struct CatalogSet {
    /// One more for each reload that changed something (1 at start).
    pub(crate) generation: u64,
    /// Each catalog as configured (a reload rebuilds the changed ones only).
    pub(crate) specs: BTreeMap<String, CatalogSpec>,
    /// The catalogs as their connectors built them (probes, refresh, keys).
    pub(crate) catalogs: Arc<BTreeMap<String, Arc<dyn CatalogProvider>>>,
    /// The catalogs queries see: product tables checked against their
    /// contracts.
    pub(crate) served: Arc<BTreeMap<String, Arc<dyn CatalogProvider>>>,
    pub(crate) descriptions: BTreeMap<String, String>,
    /// Table and column descriptions from each catalog's options.
    pub(crate) option_descriptions: BTreeMap<String, Vec<Description>>,
}

/// The built catalogs, by name.
pub struct CatalogRegistry {
    /// The catalogs in force.
    set: std::sync::RwLock<Arc<CatalogSet>>,
    /// Held by a reload, so two never interleave.
    reloading: tokio::sync::Mutex<()>,
    /// Where relative paths in options resolve.
    base_dir: PathBuf,
    /// The comments each SQL source keeps on its tables and columns,
    /// loaded in the background at start and on `refresh_catalog`.
    source_comments: Arc<std::sync::RwLock<BTreeMap<String, Arc<Vec<Description>>>>>,
    runtime: Arc<RuntimeEnv>,
    /// `[limits] query_memory`, in bytes.
    query_memory: Option<usize>,
    /// The data products every catalog declares.
    products: Arc<LiveProducts>,
    /// How fresh each product table is.
    freshness: Arc<Freshness>,
    /// The latest result of each product's quality rules.
    quality: Arc<QualityResults>,
    /// Who read which product.
    lineage: Arc<Lineage>,
}

impl std::fmt::Debug for CatalogRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogRegistry")
            .field("catalogs", &self.catalog_names())
            .finish()
    }
}

impl CatalogRegistry {
    /// Check every spec's connector and options without touching any source.
    pub fn validate(
        specs: &[CatalogSpec],
        connectors: &ConnectorRegistry,
    ) -> Result<(), RegistryError> {
        for spec in specs {
            let connector = lookup(spec, connectors)?;
            connector
                .validate(&spec.options)
                .map_err(|source| RegistryError::Connector {
                    catalog: spec.name.clone(),
                    source,
                })?;
        }
        products_of(specs)?;
        Ok(())
    }

    /// Build every catalog. Relative paths in options resolve against
    /// `base_dir`. Queries share one runtime: a memory pool of
    /// `limits.memory_bytes` that spills to the OS temporary directory, and
    /// object stores that only read.
    pub async fn build(
        specs: &[CatalogSpec],
        connectors: &ConnectorRegistry,
        base_dir: PathBuf,
        limits: &RuntimeLimits,
    ) -> Result<Self, RegistryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(limits.memory_bytes)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_max_temp_directory_size(limits.spill_bytes),
            )
            .with_object_store_registry(Arc::new(ReadOnlyStoreRegistry::new()))
            // A file table's listing is kept briefly: a file added to or
            // replaced in its directory is read within this time.
            .with_cache_manager(
                CacheManagerConfig::default().with_list_files_cache_ttl(Some(FILE_LISTING_TTL)),
            )
            .build_arc()
            .map_err(|e| RegistryError::Runtime(e.to_string()))?;
        let products = Arc::new(LiveProducts::new(
            products_of(specs)?,
            descriptor_files(specs),
        ));
        let ctx = connector_context(&runtime, &base_dir);
        let mut catalogs = BTreeMap::new();
        for spec in specs {
            catalogs.insert(
                spec.name.clone(),
                build_catalog(spec, connectors, &ctx).await?,
            );
        }
        let catalogs = Arc::new(catalogs);
        // Freshness reads the stores as they are; queries see product
        // tables checked against their contracts.
        let freshness = Arc::new(Freshness::new(
            catalogs.clone(),
            runtime.clone(),
            products.clone(),
        ));
        let set = CatalogSet::new(1, specs, catalogs, connectors, &products);
        Ok(Self {
            set: std::sync::RwLock::new(Arc::new(set)),
            reloading: tokio::sync::Mutex::new(()),
            base_dir,
            freshness,
            quality: Arc::default(),
            lineage: Arc::default(),
            source_comments: Default::default(),
            runtime,
            query_memory: limits.query_memory_bytes,
            products,
        })
    }

    /// The catalogs in force now.
    pub(crate) fn set(&self) -> Arc<CatalogSet> {
        self.set.read().expect("catalog set lock").clone()
    }

    /// Which catalog set is in force: one more after each reload that
    /// changed a catalog. A session opened under an older one takes the
    /// new set at its next statement.
    pub fn generation(&self) -> u64 {
        self.set().generation
    }

    /// The data products the catalogs' descriptors declare, as in force now.
    pub fn products(&self) -> Arc<DataProducts> {
        self.products.current()
    }

    /// The data products, as they change when owners edit descriptors.
    pub fn live_products(&self) -> Arc<LiveProducts> {
        self.products.clone()
    }

    /// How fresh the product tables are.
    pub fn freshness(&self) -> Arc<Freshness> {
        self.freshness.clone()
    }

    /// The latest results of the products' quality rules.
    pub fn quality(&self) -> Arc<QualityResults> {
        self.quality.clone()
    }

    /// Who read which product, since the process started.
    pub fn lineage(&self) -> Arc<Lineage> {
        self.lineage.clone()
    }

    /// The names of the catalogs in force, in order.
    pub fn catalog_names(&self) -> Vec<String> {
        self.set().catalogs.keys().cloned().collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.set().catalogs.contains_key(name)
    }

    /// The catalogs as their connectors built them (for probes, refresh
    /// and the keys their sources declare).
    pub fn catalogs(&self) -> Arc<BTreeMap<String, Arc<dyn CatalogProvider>>> {
        self.set().catalogs.clone()
    }

    /// The catalogs as queries see them (product tables checked against
    /// their contracts).
    pub fn served_catalogs(&self) -> Arc<BTreeMap<String, Arc<dyn CatalogProvider>>> {
        self.set().served.clone()
    }

    /// The catalogs as `user`'s queries see them: [`Self::served_catalogs`],
    /// with each catalog that runs its queries as the end user (a
    /// `flightsql` catalog with `identity = "forward"`) bound to `user`.
    pub fn served_catalogs_for(
        &self,
        user: &meshgate_connectors::EndUser,
    ) -> BTreeMap<String, Arc<dyn CatalogProvider>> {
        let set = self.set();
        set.served
            .iter()
            .map(|(name, served)| {
                let as_user = set
                    .catalogs
                    .get(name)
                    .and_then(|raw| meshgate_connectors::catalog_as_end_user(raw, user));
                let catalog = match as_user {
                    Some(own) => ContractCatalog::wrap(name, own, &self.products),
                    None => served.clone(),
                };
                (name.clone(), catalog)
            })
            .collect()
    }

    /// Whether `catalog` runs its queries at the source as the end user.
    pub fn forwards_identity(&self, catalog: &str) -> bool {
        self.set()
            .catalogs
            .get(catalog)
            .is_some_and(meshgate_connectors::forwards_identity)
    }

    /// The connector kind of `catalog` (`postgres`, `files`, ...).
    pub fn connector_of(&self, catalog: &str) -> Option<String> {
        self.set().specs.get(catalog).map(|s| s.connector.clone())
    }

    pub fn description(&self, catalog: &str) -> Option<String> {
        self.set().descriptions.get(catalog).cloned()
    }

    /// The table and column descriptions of `catalog`: its options', its
    /// data products' and its source's comments, the first given winning.
    pub fn object_descriptions(&self, catalog: &str) -> Arc<Vec<Description>> {
        let mut described = self
            .set()
            .option_descriptions
            .get(catalog)
            .cloned()
            .unwrap_or_default();
        let comments = self
            .source_comments
            .read()
            .expect("comments lock")
            .get(catalog)
            .cloned()
            .unwrap_or_default();
        let more = self.products.current().descriptions(catalog);
        for d in more.into_iter().chain(comments.iter().cloned()) {
            if !described
                .iter()
                .any(|o| (&o.schema, &o.table, &o.column) == (&d.schema, &d.table, &d.column))
            {
                described.push(d);
            }
        }
        Arc::new(described)
    }

    /// Read the comments `catalog`'s source keeps (a SQL source) again; a
    /// source that does not answer keeps the comments read last.
    pub async fn load_comments(&self, catalog: &str) {
        let Some(source) = self.catalogs().get(catalog).cloned() else {
            return;
        };
        load_comments(&self.source_comments, catalog, &source).await;
    }

    /// Load every source's comments in the background (a source that is
    /// down must not delay the start).
    pub fn load_all_comments(&self) {
        for (name, source) in self.catalogs().iter() {
            let (store, name, source) =
                (self.source_comments.clone(), name.clone(), source.clone());
            tokio::spawn(async move { load_comments(&store, &name, &source).await });
        }
    }

    pub fn runtime(&self) -> Arc<RuntimeEnv> {
        self.runtime.clone()
    }

    /// The runtime one query runs with: the shared one with a memory pool
    /// of its own, capped by `[limits] query_memory` if set; and the
    /// query's peak memory, which that pool keeps up.
    pub(crate) fn query_runtime(
        &self,
    ) -> QueryResult<(Arc<RuntimeEnv>, Arc<std::sync::atomic::AtomicUsize>)> {
        crate::query_memory::query_runtime(&self.runtime, self.query_memory)
            .map_err(QueryError::from)
    }
}

/// Read `source`'s comments into `store`.
async fn load_comments(
    store: &std::sync::RwLock<BTreeMap<String, Arc<Vec<Description>>>>,
    catalog: &str,
    source: &Arc<dyn CatalogProvider>,
) {
    match meshgate_connectors::catalog_comments(source).await {
        Ok(comments) if !comments.is_empty() => {
            store
                .write()
                .expect("comments lock")
                .insert(catalog.to_owned(), comments);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(catalog, error = %e, "cannot read the source's comments"),
    }
}

impl CatalogSet {
    /// The set of `specs`, whose catalogs are `catalogs`.
    fn new(
        generation: u64,
        specs: &[CatalogSpec],
        catalogs: Arc<BTreeMap<String, Arc<dyn CatalogProvider>>>,
        connectors: &ConnectorRegistry,
        products: &Arc<LiveProducts>,
    ) -> Self {
        let served = catalogs
            .iter()
            .map(|(name, catalog)| {
                let checked = ContractCatalog::wrap(name, catalog.clone(), products);
                (name.clone(), checked)
            })
            .collect();
        Self {
            generation,
            specs: specs.iter().map(|s| (s.name.clone(), s.clone())).collect(),
            served: Arc::new(served),
            catalogs,
            descriptions: specs
                .iter()
                .filter_map(|s| Some((s.name.clone(), s.description.clone()?)))
                .collect(),
            option_descriptions: specs
                .iter()
                .filter_map(|s| {
                    let connector = connectors.get(&s.connector)?;
                    Some((s.name.clone(), connector.descriptions(&s.options)))
                })
                .collect(),
        }
    }
}

/// What the connectors build catalogs with: the shared runtime's object
/// stores, relative paths against `base_dir`.
fn connector_context(runtime: &Arc<RuntimeEnv>, base_dir: &std::path::Path) -> ConnectorContext {
    let session = SessionStateBuilder::new()
        .with_runtime_env(runtime.clone())
        .with_default_features()
        .build();
    ConnectorContext {
        session,
        base_dir: base_dir.to_path_buf(),
    }
}

/// Build one catalog with its connector.
async fn build_catalog(
    spec: &CatalogSpec,
    connectors: &ConnectorRegistry,
    ctx: &ConnectorContext,
) -> Result<Arc<dyn CatalogProvider>, RegistryError> {
    let connector = lookup(spec, connectors)?;
    let catalog = connector
        .build_catalog(ctx, &spec.name, &spec.options)
        .await
        .map_err(|source| RegistryError::Connector {
            catalog: spec.name.clone(),
            source,
        })?;
    tracing::info!(catalog = %spec.name, connector = %spec.connector, schemas = ?catalog.schema_names(), "catalog ready");
    Ok(catalog)
}

/// Each catalog's descriptor file, where edits of its products are written.
fn descriptor_files(specs: &[CatalogSpec]) -> BTreeMap<String, DescriptorSource> {
    specs
        .iter()
        .filter_map(|s| Some((s.name.clone(), s.products_file.clone()?)))
        .collect()
}

/// Every catalog's products, checked together (names unique across catalogs).
fn products_of(specs: &[CatalogSpec]) -> Result<DataProducts, ProductsError> {
    DataProducts::new(
        specs
            .iter()
            .map(|spec| (spec.name.clone(), spec.products.clone())),
    )
}

fn lookup<'a>(
    spec: &CatalogSpec,
    connectors: &'a ConnectorRegistry,
) -> Result<&'a Arc<dyn meshgate_connectors::Connector>, RegistryError> {
    connectors
        .get(&spec.connector)
        .ok_or_else(|| RegistryError::UnknownConnector {
            catalog: spec.name.clone(),
            kind: spec.connector.clone(),
            known: connectors.kinds().join(", "),
        })
}

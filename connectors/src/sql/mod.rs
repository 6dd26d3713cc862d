//! Catalogs over SQL sources (`connector = "postgres"`, `"mysql"`,
//! `"sqlite"` and `"flightsql"`, another Flight SQL server).
//!
//! Tables come from datafusion-table-providers and take part in federation
//! (see [`federation`]): the largest sub-plan that touches only one source runs
//! there as SQL in that source's dialect, and EXPLAIN prints that SQL.
//!
//! A source may be down when meshgate starts or go down later; its catalog
//! still exists and every other catalog keeps working. The connection pool is
//! created on first use and again after a failure, every failure names the
//! catalog, and the catalog recovers by itself once the source answers.
//!
//! Schema and table lists are cached for `metadata_ttl_secs` and refreshed in
//! the background when stale; a table that is queried but not yet listed is
//! looked up at once, so a new table is queryable without waiting. A name
//! the source does not have is then remembered as absent for
//! [`ABSENT_FOR`] (at most `metadata_ttl_secs`), and concurrent lookups
//! share one listing, so queries naming a missing table do not relist the
//! source each time. Table schemas are cached with moka for the same TTL.
//! [`SqlCatalog::refresh`] (`CALL system.refresh_catalog('name')`) drops
//! all of it.

mod absorb;
mod catalog_ops;
mod catalog_query;
mod comments;
mod direct;
mod federation;
mod flightsql;
mod flightsql_exec;
mod flightsql_identity;
mod flightsql_info;
mod key_filter;
mod key_filter_exec;
mod keys;
mod mysql;
mod options;
mod postgres;
mod postgres_direct;
mod sizes;
mod sqlite;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};

pub use absorb::AbsorbIntoFederated;
pub use catalog_ops::{
    catalog_as_end_user, catalog_comments, catalog_keys, forwards_identity, probe_catalog,
    refresh_catalog,
};
pub use direct::DirectStatement;
pub use flightsql::FlightSqlConnector;
pub use key_filter_exec::{ShowSourceKeys, SourceKeyFilterExec};
pub use keys::{KeyColumn, Referenced};
pub use mysql::MySqlConnector;
pub use postgres::PostgresConnector;
pub use sqlite::SqliteConnector;

use federation::FunctionSet;
use options::{NameFilter, SqlOptions};

use crate::{ConnectorError, EndUser};

/// The option keys of a SQL catalog that hold secrets.
pub(crate) const SQL_SECRET_KEYS: &[&str] = &["password"];

/// A live connection pool to one source database.
#[async_trait]
pub(crate) trait SourcePool: Send + Sync {
    /// The `(schema, table)` pairs the configured user can read (tables and
    /// views); sources may skip schemas `filter` rejects.
    async fn list(&self, filter: &NameFilter) -> Result<Vec<(String, String)>, DataFusionError>;

    /// One table: a provider that scans by itself, and the SQL executor that
    /// runs federated sub-plans on the same connection pool.
    async fn table(&self, schema: &str, table: &str) -> DfResult<SourceTable>;

    /// One table whose queries run at the source as `user` (only for
    /// sources whose kind [forwards identity](SourceKind::forwards_identity)).
    async fn table_as(&self, schema: &str, table: &str, user: &EndUser) -> DfResult<SourceTable> {
        let _ = (schema, table, user);
        Err(DataFusionError::Internal(
            "this source does not run queries as the end user".into(),
        ))
    }

    /// One cheap round trip to the source (a health probe).
    async fn ping(&self) -> Result<(), DataFusionError>;

    /// Whether whole sub-plans may go to the source as SQL; `false` reads
    /// each table on its own (what `pushdown = false` asks for).
    fn sends_sub_plans(&self) -> bool {
        true
    }

    /// The primary and foreign keys the source declares.
    async fn keys(&self) -> Result<Vec<KeyColumn>, DataFusionError>;

    /// The comments the source keeps on tables and columns.
    async fn comments(&self) -> Result<Vec<crate::Description>, DataFusionError>;

    /// How many bytes the table takes, if the source counts it.
    async fn table_size(&self, _schema: &str, _table: &str) -> DfResult<Option<crate::TableSize>> {
        Ok(None)
    }
}

pub(crate) struct SourceTable {
    pub provider: Arc<dyn TableProvider>,
    pub executor: Arc<dyn datafusion_federation::sql::SQLExecutor>,
    /// How SQL sent to the source names the table, when not `schema.table`.
    pub reference: Option<datafusion::common::TableReference>,
    /// Runs whole statements at the source without DataFusion
    /// (`direct.rs`), when the source kind has such a runner.
    pub direct: Option<Arc<dyn direct::DirectRunner>>,
    /// The source's estimate of the table's rows (PostgreSQL `reltuples`,
    /// MySQL `TABLE_ROWS`), when it keeps one.
    pub rows: Option<usize>,
}

/// How to open a pool for one kind of source.
#[async_trait]
pub(crate) trait SourceKind: Send + Sync + 'static {
    async fn connect(
        &self,
        catalog: &str,
        options: &SqlOptions,
    ) -> Result<Arc<dyn SourcePool>, DataFusionError>;
    fn functions(&self) -> FunctionSet;

    /// Whether queries run at the source as the end user rather than as
    /// the configured account (see [`SqlCatalog::as_end_user`]).
    fn forwards_identity(&self) -> bool {
        false
    }
}

/// What the catalog last learned about the source's schemas and tables.
#[derive(Default)]
struct Listing {
    schemas: BTreeMap<String, BTreeSet<String>>,
    refreshed: Option<Instant>,
    failed: Option<Instant>,
}

/// How long after a failed attempt the next one may start.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// How long a table name the source does not have is remembered as absent.
const ABSENT_FOR: Duration = Duration::from_secs(5);

struct Inner {
    catalog: String,
    kind: Arc<dyn SourceKind>,
    options: SqlOptions,
    filter: NameFilter,
    functions: Arc<FunctionSet>,
    pool: tokio::sync::Mutex<Option<Arc<dyn SourcePool>>>,
    listing: RwLock<Listing>,
    refreshing: AtomicBool,
    /// Held while a lookup lists the source, so concurrent ones share it.
    relisting: tokio::sync::Mutex<()>,
    /// Names looked up and not found (the negative cache).
    absent: moka::future::Cache<(String, String), ()>,
    tables: moka::future::Cache<(String, String), Arc<dyn TableProvider>>,
    /// The source's keys, read at most once per `metadata_ttl_secs`.
    keys: moka::future::Cache<(), Arc<Vec<KeyColumn>>>,
    /// The source's comments, likewise.
    comments: moka::future::Cache<(), Arc<Vec<crate::Description>>>,
}

/// A catalog whose schemas and tables live in a SQL database.
#[derive(Clone)]
pub struct SqlCatalog {
    inner: Arc<Inner>,
    /// The user queries run as at the source, for a session's view of a
    /// catalog that forwards identity; `None`: the configured account.
    end_user: Option<Arc<EndUser>>,
}

impl std::fmt::Debug for SqlCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlCatalog")
            .field("catalog", &self.inner.catalog)
            .finish()
    }
}

impl SqlCatalog {
    fn new(catalog: &str, kind: Arc<dyn SourceKind>, options: SqlOptions) -> Self {
        let tables = moka::future::Cache::builder()
            .time_to_live(options.metadata_ttl())
            .max_capacity(10_000)
            .build();
        let keys = moka::future::Cache::builder()
            .time_to_live(options.metadata_ttl())
            .build();
        let comments = moka::future::Cache::builder()
            .time_to_live(options.metadata_ttl())
            .build();
        let options_ttl = options.metadata_ttl();
        Self {
            inner: Arc::new(Inner {
                catalog: catalog.to_owned(),
                functions: Arc::new(kind.functions()),
                kind,
                filter: options.filter(),
                options,
                pool: tokio::sync::Mutex::new(None),
                listing: RwLock::new(Listing::default()),
                refreshing: AtomicBool::new(false),
                relisting: tokio::sync::Mutex::new(()),
                absent: moka::future::Cache::builder()
                    .time_to_live(ABSENT_FOR.min(options_ttl).max(Duration::from_millis(1)))
                    .max_capacity(10_000)
                    .build(),
                keys,
                comments,
                tables,
            }),
            end_user: None,
        }
    }

    /// This catalog as `user`'s queries see it, when its source runs
    /// queries as the end user: listings are shared, tables are not (their
    /// queries carry `user`). `None` for sources that run every query as the
    /// configured account.
    pub fn as_end_user(&self, user: EndUser) -> Option<SqlCatalog> {
        self.inner.kind.forwards_identity().then(|| SqlCatalog {
            inner: self.inner.clone(),
            end_user: Some(Arc::new(user)),
        })
    }

    /// Build the catalog and try one listing; a source that does not answer
    /// leaves the catalog empty until it does (a warning is logged).
    pub(crate) async fn open(
        catalog: &str,
        kind: Arc<dyn SourceKind>,
        options: SqlOptions,
    ) -> Arc<dyn CatalogProvider> {
        let this = Self::new(catalog, kind, options);
        if let Err(err) = this.refresh().await {
            tracing::warn!(%err, "source unavailable; meshgate keeps retrying on use");
        }
        Arc::new(this)
    }

    /// Forget the cached table schemas and list the source again (a listing
    /// that fails also drops the connection pool).
    pub async fn refresh(&self) -> Result<(), ConnectorError> {
        self.inner.tables.invalidate_all();
        self.inner.keys.invalidate_all();
        self.inner.comments.invalidate_all();
        self.inner.absent.invalidate_all();
        self.inner.refresh_listing().await
    }

    /// Whether the source answers now: a connection (opened if there is
    /// none) and one cheap round trip, within the connect timeout. A failure
    /// drops the pool, so that the next use connects afresh and a source
    /// that came back is used again without a restart.
    pub async fn probe(&self) -> Result<(), ConnectorError> {
        let inner = &self.inner;
        let pool = inner.pool().await?;
        let timeout = inner.options.connect_timeout();
        let failed = match tokio::time::timeout(timeout, pool.ping()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(err)) => inner.unavailable(&err),
            Err(_) => ConnectorError::Source {
                catalog: inner.catalog.clone(),
                message: format!("no answer within {} s", timeout.as_secs()),
            },
        };
        inner.reset_pool().await;
        Err(failed)
    }
}

impl Inner {
    fn unavailable(&self, err: &DataFusionError) -> ConnectorError {
        ConnectorError::source(&self.catalog, err)
    }

    async fn pool(&self) -> Result<Arc<dyn SourcePool>, ConnectorError> {
        let mut slot = self.pool.lock().await;
        if let Some(pool) = slot.as_ref() {
            return Ok(pool.clone());
        }
        let timeout = self.options.connect_timeout();
        let pool =
            match tokio::time::timeout(timeout, self.kind.connect(&self.catalog, &self.options))
                .await
            {
                Ok(Ok(pool)) => pool,
                Ok(Err(err)) => return Err(self.unavailable(&err)),
                Err(_) => {
                    return Err(ConnectorError::Source {
                        catalog: self.catalog.clone(),
                        message: format!(
                            "no connection to {} within {} s",
                            match self.options.port {
                                Some(port) => format!("{}:{port}", self.options.host),
                                None => self.options.host.clone(),
                            },
                            timeout.as_secs()
                        ),
                    })
                }
            };
        *slot = Some(pool.clone());
        Ok(pool)
    }

    /// Drop the pool after a connection-level failure so that the next use
    /// builds a fresh one (new DNS lookup, new credentials check).
    async fn reset_pool(&self) {
        *self.pool.lock().await = None;
    }

    async fn refresh_listing(&self) -> Result<(), ConnectorError> {
        let result = async {
            let pool = self.pool().await?;
            let timeout = self.options.connect_timeout() * 2;
            match tokio::time::timeout(timeout, pool.list(&self.filter)).await {
                Ok(Ok(list)) => Ok(list),
                Ok(Err(err)) => {
                    self.reset_pool().await;
                    Err(self.unavailable(&err))
                }
                Err(_) => {
                    self.reset_pool().await;
                    Err(ConnectorError::Source {
                        catalog: self.catalog.clone(),
                        message: format!("listing tables took longer than {} s", timeout.as_secs()),
                    })
                }
            }
        }
        .await;
        let mut listing = self.listing.write().expect("listing lock");
        match result {
            Ok(list) => {
                let mut schemas: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for (schema, table) in list {
                    if self.filter.table(&schema, &table) {
                        schemas.entry(schema).or_default().insert(table);
                    }
                }
                tracing::info!(catalog = %self.catalog, schemas = schemas.len(), tables = schemas.values().map(BTreeSet::len).sum::<usize>(), "catalog listed");
                listing.schemas = schemas;
                listing.refreshed = Some(Instant::now());
                listing.failed = None;
                Ok(())
            }
            Err(err) => {
                listing.failed = Some(Instant::now());
                Err(err)
            }
        }
    }

    /// Start a background refresh when the listing is stale (or missing after
    /// a failure), at most one at a time.
    fn refresh_if_stale(self: &Arc<Self>) {
        let stale = {
            let listing = self.listing.read().expect("listing lock");
            let fresh = listing
                .refreshed
                .is_some_and(|at| at.elapsed() < self.options.metadata_ttl());
            let backing_off = listing.failed.is_some_and(|at| at.elapsed() < RETRY_AFTER);
            !fresh && !backing_off
        };
        if !stale {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        handle.spawn(async move {
            if let Err(err) = this.refresh_listing().await {
                tracing::warn!(%err, "catalog refresh failed");
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }

    fn listed(&self) -> bool {
        self.listing
            .read()
            .expect("listing lock")
            .refreshed
            .is_some()
    }

    fn schema_names(&self) -> Vec<String> {
        let listing = self.listing.read().expect("listing lock");
        listing.schemas.keys().cloned().collect()
    }

    fn table_names(&self, schema: &str) -> Vec<String> {
        let listing = self.listing.read().expect("listing lock");
        listing
            .schemas
            .get(schema)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn has_table(&self, schema: &str, table: &str) -> bool {
        let listing = self.listing.read().expect("listing lock");
        listing
            .schemas
            .get(schema)
            .is_some_and(|t| t.contains(table))
    }

    async fn table(
        &self,
        schema: &str,
        table: &str,
        end_user: Option<&EndUser>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if !self.filter.table(schema, table) {
            return Ok(None);
        }
        let key = (schema.to_owned(), table.to_owned());
        if !self.has_table(schema, table) {
            if self.absent.contains_key(&key) {
                return Ok(None);
            }
            // Not listed (yet): the table may be new, or the source may have
            // been down when it was last listed. Ask the source now, once
            // for all the lookups waiting here.
            let asked = Instant::now();
            let one_listing = self.relisting.lock().await;
            let listed_since = self
                .listing
                .read()
                .expect("listing lock")
                .refreshed
                .is_some_and(|at| at >= asked);
            if !listed_since && !self.has_table(schema, table) {
                self.refresh_listing()
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
            }
            drop(one_listing);
            if !self.has_table(schema, table) {
                if !self.options.metadata_ttl().is_zero() {
                    self.absent.insert(key, ()).await;
                }
                return Ok(None);
            }
        }
        if let Some(user) = end_user {
            // Built per use: the table's queries carry this user.
            let pool = self.pool().await.map_err(|e| self.lookup_error(&e))?;
            return match pool.table_as(schema, table, user).await {
                Ok(source) => Ok(Some(self.provider(schema, table, pool.as_ref(), source))),
                Err(err) => {
                    self.reset_pool().await;
                    Err(self.lookup_error(&self.unavailable(&err)))
                }
            };
        }
        let provider = self
            .tables
            .try_get_with(key, async {
                let pool = self.pool().await?;
                match pool.table(schema, table).await {
                    Ok(source) => Ok(self.provider(schema, table, pool.as_ref(), source)),
                    Err(err) => {
                        self.reset_pool().await;
                        Err(self.unavailable(&err))
                    }
                }
            })
            .await
            .map_err(|e: Arc<ConnectorError>| self.lookup_error(&e))?;
        Ok(Some(provider))
    }

    /// The provider queries use: the source's own scan, or the federated
    /// table that sends whole sub-plans.
    fn provider(
        &self,
        schema: &str,
        table: &str,
        pool: &dyn SourcePool,
        source: SourceTable,
    ) -> Arc<dyn TableProvider> {
        if !self.options.pushdown || !pool.sends_sub_plans() {
            return source.provider;
        }
        federation::federated_table(
            &self.catalog,
            source
                .reference
                .clone()
                .unwrap_or_else(|| datafusion::common::TableReference::partial(schema, table)),
            source,
            self.functions.clone(),
        )
    }

    /// A failed table lookup, naming this catalog.
    fn lookup_error(&self, e: &ConnectorError) -> DataFusionError {
        DataFusionError::External(Box::new(ConnectorError::Source {
            catalog: self.catalog.clone(),
            message: match e {
                ConnectorError::Source { message, .. } => message.clone(),
                other => other.to_string(),
            },
        }))
    }
}

impl CatalogProvider for SqlCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.refresh_if_stale();
        self.inner.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.inner.refresh_if_stale();
        // Until the source has been listed once, any schema the filter admits
        // may exist: resolving it lets a query reach the source and report
        // why it is unavailable instead of "schema not found".
        let known = self.inner.schema_names().iter().any(|s| s == name);
        if known || (!self.inner.listed() && self.inner.filter.schema(name)) {
            Some(Arc::new(SqlSchema {
                inner: self.inner.clone(),
                schema: name.to_owned(),
                end_user: self.end_user.clone(),
            }))
        } else {
            None
        }
    }
}

#[derive(Debug)]
struct SqlSchema {
    inner: Arc<Inner>,
    schema: String,
    end_user: Option<Arc<EndUser>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlCatalog")
            .field("catalog", &self.catalog)
            .finish()
    }
}

#[async_trait]
impl SchemaProvider for SqlSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.refresh_if_stale();
        self.inner.table_names(&self.schema)
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.inner
            .table(&self.schema, name, self.end_user.as_deref())
            .await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.has_table(&self.schema, name)
    }
}

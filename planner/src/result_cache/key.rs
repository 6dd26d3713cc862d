//! Which queries may be kept, and their key: see the module docs of
//! [`super`].

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::ParamValues;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;
use datafusion_federation::FederatedTableProviderAdaptor;

use super::ResultCache;
use crate::access::barrier::PolicyTable;

/// The session settings a plan's meaning depends on beyond its text.
pub(crate) struct ProbeContext<'a> {
    pub default_catalog: &'a str,
    pub default_schema: &'a str,
    pub time_zone: Option<&'a str>,
    /// The end user, when a catalog read runs its queries as the end user
    /// (each user's answer may differ there): results are then kept per
    /// user.
    pub end_user: Option<String>,
}

/// A query that may be kept: its key and its tables' change marks now.
#[derive(Debug)]
pub(crate) struct Probe {
    key: String,
    stamps: Vec<u64>,
    /// The tightest freshness bound of the database catalogs it reads.
    ttl: Option<Duration>,
}

impl Probe {
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn stamps(&self) -> &[u64] {
        &self.stamps
    }

    pub(crate) fn ttl(&self) -> Option<Duration> {
        self.ttl
    }
}

/// What a query reads, table by table.
#[derive(Default)]
pub(crate) struct Sources {
    /// Tables that carry a change mark (files, Delta).
    marked: Vec<Arc<dyn TableProvider>>,
    ttl: Option<Duration>,
    /// What the policy lets the identity see of each restricted table.
    views: String,
    /// Something read cannot be kept (a system table, a database table
    /// without a freshness bound, a view of our own).
    unkept: bool,
    /// The database catalogs read.
    catalogs: Vec<String>,
}

impl Sources {
    /// The database catalogs the query reads.
    pub(crate) fn catalogs(&self) -> &[String] {
        &self.catalogs
    }
}

impl ResultCache {
    /// What `plan` reads, when its result may be kept (no I/O).
    pub(crate) fn candidate(&self, plan: &LogicalPlan, default_catalog: &str) -> Option<Sources> {
        if !self.enabled() || !crate::plan_shape::deterministic_query(plan) {
            return None;
        }
        let mut sources = Sources::default();
        self.sources(plan, default_catalog, &mut sources);
        if sources.unkept || (sources.marked.is_empty() && sources.ttl.is_none()) {
            return None;
        }
        Some(sources)
    }

    /// The probe for a [`candidate`](Self::candidate) `plan` with
    /// `params`, or `None` when a table's change mark cannot be read now.
    /// Lists the files of the file tables it reads (through `state`).
    pub(crate) async fn probe(
        &self,
        sources: Sources,
        plan: &LogicalPlan,
        params: Option<&ParamValues>,
        context: &ProbeContext<'_>,
        state: Option<&dyn Session>,
    ) -> Option<Probe> {
        let mut stamps = Vec::with_capacity(sources.marked.len());
        for table in &sources.marked {
            match meshgate_connectors::change_stamp(table, state?).await {
                Ok(Some(stamp)) => stamps.push(stamp),
                // A table whose mark cannot be read now is not kept.
                _ => return None,
            }
        }
        let mut key = String::with_capacity(1024);
        let _ = write!(
            key,
            "{}\n{}\n{:?}\n{}\n{:?}\n{}\n{:?}",
            context.default_catalog,
            context.default_schema,
            context.time_zone,
            plan.display_indent_schema(),
            params,
            sources.views,
            context.end_user
        );
        Some(Probe {
            key,
            stamps,
            ttl: sources.ttl,
        })
    }

    /// Collect what `plan` reads into `sources`.
    fn sources(&self, plan: &LogicalPlan, default_catalog: &str, sources: &mut Sources) {
        let _ = plan.apply_with_subqueries(|node| {
            match node {
                LogicalPlan::TableScan(scan) => {
                    let Ok(provider) = source_as_provider(&scan.source) else {
                        sources.unkept = true;
                        return Ok(TreeNodeRecursion::Stop);
                    };
                    if let Some(view) = provider.downcast_ref::<PolicyTable>() {
                        sources.views.push_str(&view.fingerprint());
                        sources.views.push('\n');
                        self.sources(view.filtered(), default_catalog, sources);
                    } else if meshgate_connectors::has_change_stamp(&provider) {
                        sources.marked.push(provider);
                    } else if provider
                        .downcast_ref::<FederatedTableProviderAdaptor>()
                        .is_some()
                    {
                        let catalog = scan.table_name.catalog().unwrap_or(default_catalog);
                        if !sources.catalogs.iter().any(|c| c == catalog) {
                            sources.catalogs.push(catalog.to_owned());
                        }
                        match self.settings().catalog_ttl.get(catalog) {
                            Some(ttl) => {
                                sources.ttl = Some(sources.ttl.map_or(*ttl, |t| t.min(*ttl)));
                            }
                            None => sources.unkept = true,
                        }
                    } else {
                        sources.unkept = true;
                    }
                }
                // Nodes of our own (or an extension's) have meanings the
                // plan's text may not show.
                LogicalPlan::Extension(_) => sources.unkept = true,
                _ => {}
            }
            Ok(if sources.unkept {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        });
    }
}

impl Sources {
    /// Whether reading the change marks lists files or Delta logs.
    pub(crate) fn lists_files(&self) -> bool {
        !self.marked.is_empty()
    }
}

//! The gateway's Prometheus metrics, served at `/metrics`.
//!
//! Statements are counted from their audit records: the planner hands every
//! record to an observer (see `meshgate_planner::AuditObserver`) whether or
//! not an audit file is kept, so the query pipeline has no metrics code of
//! its own and every protocol is counted the same way. Records of accesses
//! that are not statements (a Flight SQL metadata listing, a cancel
//! request) are counted too: they are requests a client made.
//!
//! Labels are only the protocol, the decision word and catalog names from
//! the configuration: never a user, a statement or an address, so the
//! number of series stays bounded and the page shows no data. What is true
//! at a moment (memory in use, spill files on disk, statements queued and
//! running, bytes sent) is read at each scrape ([`Snapshot`]).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use meshgate_planner::{AuditObserver, AuditRecord};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    protocol: String,
    /// `allowed`, `denied` or `error`.
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    protocol: String,
    /// `queued` or `running`.
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CatalogLabels {
    catalog: String,
}

type HistogramFamily = Family<ProtocolLabels, Histogram, fn() -> Histogram>;
type IntGauge = Gauge<i64, std::sync::atomic::AtomicI64>;

/// What the server reports of itself at a scrape.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Bytes reserved in the shared query memory pool.
    pub memory_reserved: usize,
    /// Bytes of spill files on disk.
    pub spilled: u64,
    /// Bytes of results sent since start.
    pub bytes_sent: u64,
    /// `(protocol, queued, running)` statements now.
    pub active: Vec<(String, u64, u64)>,
    /// The result cache's counts since start.
    pub result_cache: meshgate_planner::ResultCacheStats,
}

/// The result cache's series (see `meshgate_planner::ResultCache`).
#[derive(Default)]
struct ResultCacheMetrics {
    hits: Counter,
    misses: Counter,
    bytes: IntGauge,
    entries: IntGauge,
}

impl ResultCacheMetrics {
    fn register(registry: &mut Registry) -> Self {
        let this = Self::default();
        registry.register(
            "meshgate_result_cache_hits",
            "Statements answered from a kept result",
            this.hits.clone(),
        );
        registry.register(
            "meshgate_result_cache_misses",
            "Statements whose result could be kept but was not at hand (run and kept)",
            this.misses.clone(),
        );
        registry.register(
            "meshgate_result_cache_bytes",
            "Bytes of results kept now",
            this.bytes.clone(),
        );
        registry.register(
            "meshgate_result_cache_entries",
            "Results kept now",
            this.entries.clone(),
        );
        this
    }

    fn update(&self, now: &meshgate_planner::ResultCacheStats) {
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.hits.inc_by(now.hits.saturating_sub(self.hits.get()));
        self.misses
            .inc_by(now.misses.saturating_sub(self.misses.get()));
        self.bytes.set(int(now.bytes));
        self.entries.set(int(now.entries));
    }
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    queries: Family<QueryLabels, Counter>,
    duration: HistogramFamily,
    rows: Family<ProtocolLabels, Counter>,
    denials: Counter,
    memory: IntGauge,
    spilled: IntGauge,
    bytes_sent: Counter,
    active: Family<StateLabels, IntGauge>,
    /// Protocols that have had active statements; held while a scrape
    /// updates the metrics (counters read from the snapshot move by
    /// differences).
    scrape: std::sync::Mutex<std::collections::BTreeSet<String>>,
    source_up: Family<CatalogLabels, Gauge>,
    source_errors: Family<CatalogLabels, Counter<u64, AtomicU64>>,
    audit_store: crate::audit_store::AuditStoreCounts,
    result_cache: ResultCacheMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// 1 ms to about 4.4 minutes, each bucket four times the last.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let queries = Family::<QueryLabels, Counter>::default();
        registry.register(
            "meshgate_queries",
            "Statements and other audited requests, by protocol and outcome",
            queries.clone(),
        );
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        registry.register(
            "meshgate_query_duration_seconds",
            "Time from a statement's start to its last row sent, by protocol",
            duration.clone(),
        );
        let rows = Family::<ProtocolLabels, Counter>::default();
        registry.register(
            "meshgate_rows_returned",
            "Rows sent to clients, by protocol",
            rows.clone(),
        );
        let denials = Counter::default();
        registry.register(
            "meshgate_policy_denials",
            "Requests the access policy (or a missing privilege) refused",
            denials.clone(),
        );
        let memory = IntGauge::default();
        registry.register(
            "meshgate_memory_reserved_bytes",
            "Memory reserved by running queries in the shared query memory pool",
            memory.clone(),
        );
        let spilled = IntGauge::default();
        registry.register(
            "meshgate_spill_bytes",
            "Bytes of spill files (sorts, joins, aggregates over the memory budget) on disk now",
            spilled.clone(),
        );
        let bytes_sent = Counter::default();
        registry.register(
            "meshgate_result_bytes",
            "Bytes of result data (Arrow) sent to clients",
            bytes_sent.clone(),
        );
        let active = Family::<StateLabels, IntGauge>::default();
        registry.register(
            "meshgate_queries_active",
            "Statements queued for admission or running now, by protocol and state",
            active.clone(),
        );
        let source_up = Family::<CatalogLabels, Gauge>::default();
        registry.register(
            "meshgate_source_up",
            "1 if the catalog's source answered its last probe, else 0",
            source_up.clone(),
        );
        let source_errors = Family::<CatalogLabels, Counter>::default();
        registry.register(
            "meshgate_source_probe_failures",
            "Failed probes of each catalog's source",
            source_errors.clone(),
        );
        let audit_store = crate::audit_store::AuditStoreCounts::default();
        registry.register(
            "meshgate_audit_backlog",
            "Audit records buffered on their way to the audit store ([audit] store)",
            audit_store.backlog.clone(),
        );
        registry.register(
            "meshgate_audit_dropped",
            "Audit records dropped because the audit store's buffer was full",
            audit_store.dropped.clone(),
        );
        let result_cache = ResultCacheMetrics::register(&mut registry);
        Self {
            audit_store,
            result_cache,
            registry,
            queries,
            duration,
            rows,
            denials,
            memory,
            spilled,
            bytes_sent,
            active,
            scrape: Default::default(),
            source_up,
            source_errors,
        }
    }

    /// The counts the audit store keeps up to date.
    pub fn audit_store_counts(&self) -> crate::audit_store::AuditStoreCounts {
        self.audit_store.clone()
    }

    /// Count one audit record.
    pub fn record(&self, record: &AuditRecord) {
        let protocol = ProtocolLabels {
            protocol: record.protocol.clone(),
        };
        self.queries
            .get_or_create(&QueryLabels {
                protocol: record.protocol.clone(),
                outcome: record.decision.clone(),
            })
            .inc();
        self.duration
            .get_or_create(&protocol)
            .observe(record.duration_ms / 1e3);
        self.rows.get_or_create(&protocol).inc_by(record.rows);
        if record.decision == AuditRecord::DENIED {
            self.denials.inc();
        }
    }

    /// An observer for the planner's audit log that counts into `self`.
    pub fn observer(self: &Arc<Self>) -> AuditObserver {
        let this = self.clone();
        Arc::new(move |record| this.record(record))
    }

    /// Record the outcome of one probe of `catalog`'s source.
    pub fn probed(&self, catalog: &str, up: bool) {
        let labels = CatalogLabels {
            catalog: catalog.to_owned(),
        };
        self.source_up.get_or_create(&labels).set(i64::from(up));
        if !up {
            self.source_errors.get_or_create(&labels).inc();
        }
    }

    /// The text exposition (OpenMetrics, which Prometheus reads), with what
    /// is read at a scrape taken from `now`.
    pub fn encode(&self, now: &Snapshot) -> String {
        let mut protocols = self.scrape.lock().expect("scrape lock");
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.memory.set(int(now.memory_reserved as u64));
        self.spilled.set(int(now.spilled));
        self.bytes_sent
            .inc_by(now.bytes_sent.saturating_sub(self.bytes_sent.get()));
        self.result_cache.update(&now.result_cache);
        // A protocol with nothing active now reads 0 rather than vanish.
        protocols.extend(now.active.iter().map(|(protocol, _, _)| protocol.clone()));
        for protocol in protocols.iter() {
            let (queued, running) = now
                .active
                .iter()
                .find(|(p, _, _)| p == protocol)
                .map_or((0, 0), |(_, q, r)| (*q, *r));
            for (state, n) in [("queued", queued), ("running", running)] {
                self.active
                    .get_or_create(&StateLabels {
                        protocol: protocol.clone(),
                        state: state.into(),
                    })
                    .set(int(n));
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_move_the_counters() {
        let metrics = Metrics::new();
        let mut record = AuditRecord::access("alice", None, "pgwire", "SELECT 1").with_rows(3);
        record.duration_ms = 12.0;
        metrics.record(&record);
        metrics.record(&record.clone().denied("no grant"));
        metrics.probed("sales", false);
        let text = metrics.encode(&Snapshot {
            memory_reserved: 42,
            spilled: 7,
            bytes_sent: 100,
            active: vec![("flight".into(), 2, 1)],
            result_cache: meshgate_planner::ResultCacheStats {
                hits: 5,
                misses: 2,
                stores: 2,
                bytes: 1024,
                entries: 2,
            },
        });
        for line in [
            "meshgate_queries_total{protocol=\"pgwire\",outcome=\"allowed\"} 1",
            "meshgate_queries_total{protocol=\"pgwire\",outcome=\"denied\"} 1",
            "meshgate_rows_returned_total{protocol=\"pgwire\"} 6",
            "meshgate_policy_denials_total 1",
            "meshgate_memory_reserved_bytes 42",
            "meshgate_spill_bytes 7",
            "meshgate_result_bytes_total 100",
            "meshgate_result_cache_hits_total 5",
            "meshgate_result_cache_misses_total 2",
            "meshgate_result_cache_bytes 1024",
            "meshgate_queries_active{protocol=\"flight\",state=\"queued\"} 2",
            "meshgate_queries_active{protocol=\"flight\",state=\"running\"} 1",
            "meshgate_source_up{catalog=\"sales\"} 0",
            "meshgate_source_probe_failures_total{catalog=\"sales\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(
            !text.contains("alice") && !text.contains("SELECT"),
            "{text}"
        );
    }
}

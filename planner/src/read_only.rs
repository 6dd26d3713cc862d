//! meshgate only reads, and this is where that promise is kept.
//!
//! Two lines of defence:
//! - [`check_plan`] walks the *whole* logical plan of a statement, nested
//!   plans and subqueries included (`EXPLAIN ANALYZE <dml>`, `PREPARE ... AS
//!   INSERT`, `COPY ... TO`), and refuses DDL, DML, COPY and DataFusion's
//!   own statements wherever they sit. `PREPARE` and `EXPLAIN` pass only
//!   over queries, because the walk reaches their inputs.
//! - [`ReadOnlyStoreRegistry`] hands the engine object stores that refuse
//!   every write, so even a statement that slipped past the plan check could
//!   not create, overwrite or delete a file (the local file system included).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::logical_expr::{LogicalPlan, Statement};
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use url::Url;

use crate::{QueryError, QueryResult};

/// Refuse `plan` if anything in it would write or change state.
pub(crate) fn check_plan(plan: &LogicalPlan) -> QueryResult<()> {
    let mut refused: Option<String> = None;
    plan.apply_with_subqueries(|node| {
        let what = match node {
            LogicalPlan::Ddl(ddl) => Some(ddl.name().to_string()),
            LogicalPlan::Dml(dml) => Some(dml.op.to_string()),
            LogicalPlan::Copy(_) => Some("COPY TO".to_string()),
            // PREPARE is checked through its input (visited next); EXECUTE
            // runs a statement checked when it was prepared; DEALLOCATE
            // only forgets one.
            LogicalPlan::Statement(
                Statement::Prepare(_) | Statement::Execute(_) | Statement::Deallocate(_),
            ) => None,
            LogicalPlan::Statement(other) => Some(other.name().to_string()),
            _ => None,
        };
        Ok(match what {
            Some(what) => {
                refused = Some(what);
                TreeNodeRecursion::Stop
            }
            None => TreeNodeRecursion::Continue,
        })
    })
    .map_err(QueryError::from)?;
    match refused {
        Some(what) => Err(QueryError::ReadOnly(format!(
            "cannot execute {what}: meshgate is a read-only gateway"
        ))),
        None => Ok(()),
    }
}

/// An object store registry whose stores only read.
#[derive(Debug)]
pub(crate) struct ReadOnlyStoreRegistry {
    inner: DefaultObjectStoreRegistry,
}

impl ReadOnlyStoreRegistry {
    pub(crate) fn new() -> Self {
        let inner = DefaultObjectStoreRegistry::new();
        // The default registry serves file:// with a writable local store.
        let file = Url::parse("file://").expect("file URL");
        if let Ok(local) = inner.get_store(&file) {
            inner.register_store(&file, Arc::new(ReadOnlyStore::new(local)));
        }
        Self { inner }
    }
}

impl ObjectStoreRegistry for ReadOnlyStoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner
            .register_store(url, Arc::new(ReadOnlyStore::new(store)))
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.inner.get_store(url)
    }
}

/// Delegates reads and listings; refuses puts, deletes, copies and renames.
#[derive(Debug)]
pub(crate) struct ReadOnlyStore {
    inner: Arc<dyn ObjectStore>,
}

impl ReadOnlyStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }

    fn refuse<T>(operation: &str, location: &Path) -> object_store::Result<T> {
        Err(object_store::Error::PermissionDenied {
            path: location.to_string(),
            source: format!("{operation} refused: meshgate is a read-only gateway").into(),
        })
    }
}

impl fmt::Display for ReadOnlyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadOnly({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for ReadOnlyStore {
    async fn put_opts(
        &self,
        location: &Path,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Self::refuse("write", location)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Self::refuse("write", location)
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        use futures::StreamExt;
        locations
            .map(|location| location.and_then(|l| Self::refuse("delete", &l)))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Self::refuse("copy", to)
    }

    async fn rename_opts(
        &self,
        from: &Path,
        _to: &Path,
        _options: object_store::RenameOptions,
    ) -> object_store::Result<()> {
        Self::refuse("rename", from)
    }
}

impl From<QueryError> for DataFusionError {
    fn from(err: QueryError) -> Self {
        DataFusionError::External(Box::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;
    use object_store::ObjectStoreExt;

    async fn plan(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES (1)").await.unwrap();
        ctx.state().create_logical_plan(sql).await.unwrap()
    }

    #[tokio::test]
    async fn writes_are_refused_wherever_they_nest() {
        for sql in [
            "INSERT INTO t VALUES (2)",
            "EXPLAIN ANALYZE INSERT INTO t VALUES (2)",
            "EXPLAIN INSERT INTO t VALUES (2)",
            "PREPARE w AS INSERT INTO t VALUES ($1)",
            "COPY (SELECT 1) TO '/tmp/never' STORED AS CSV",
            "EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/never' STORED AS CSV",
            "CREATE TABLE u AS SELECT 1",
            "DROP TABLE t",
        ] {
            let err = check_plan(&plan(sql).await).unwrap_err();
            assert_eq!(err.sqlstate(), "25006", "{sql}: {err}");
        }
    }

    #[tokio::test]
    async fn queries_pass_even_when_prepared_or_explained() {
        for sql in [
            "SELECT * FROM t",
            "EXPLAIN ANALYZE SELECT * FROM t",
            "PREPARE q AS SELECT * FROM t WHERE column1 = $1",
            "SELECT * FROM t WHERE column1 IN (SELECT column1 FROM t)",
        ] {
            check_plan(&plan(sql).await).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[tokio::test]
    async fn the_local_store_refuses_writes_but_reads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x\n1\n").unwrap();
        let registry = ReadOnlyStoreRegistry::new();
        let store = registry.get_store(&Url::parse("file://").unwrap()).unwrap();
        let file = Path::from_filesystem_path(dir.path().join("a.csv")).unwrap();
        let bytes = store.get(&file).await.unwrap().bytes().await.unwrap();
        assert_eq!(&bytes[..], b"x\n1\n");
        let target = Path::from_filesystem_path(dir.path())
            .unwrap()
            .join("b.csv");
        let err = store.put(&target, "y".into()).await.unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
        assert!(store.delete(&file).await.is_err());
        assert!(!dir.path().join("b.csv").exists());
        assert!(dir.path().join("a.csv").exists());
    }
}

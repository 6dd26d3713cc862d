//! `pg_table_size`, `pg_relation_size`, `pg_total_relation_size` and
//! `pg_indexes_size` of a pgwire session: the sizes the table's store
//! reports (see `meshgate_connectors::table_size`), for psql's `\dt+` and
//! the size columns of BI tools' catalog browsers.
//!
//! An OID is looked up in the session's own pg_class, so only a table the
//! session may list has a size; any other OID reads NULL, as PostgreSQL
//! answers for an OID that is no relation. A store that keeps no sizes
//! reads 0, as PostgreSQL reports for a foreign table. Sizes are asked per
//! call, so they are as current as the store's own figures.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use meshgate_connectors::TableSize;

use super::catalog_oids::CatalogOids;

/// Which of a table's sizes a function reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Measure {
    Table,
    Total,
    Indexes,
}

/// What the functions need of the session: its pg_catalog (for OIDs), its
/// catalog as the connector built it (for sizes) and the runtime (object
/// stores).
#[derive(Clone)]
pub(crate) struct SizeScope {
    pub(crate) pg_catalog: Arc<dyn SchemaProvider>,
    pub(crate) catalog: Option<Arc<dyn CatalogProvider>>,
    pub(crate) runtime: Arc<RuntimeEnv>,
}

/// The four size functions over `scope`.
pub(crate) fn udfs(scope: SizeScope) -> Vec<ScalarUDF> {
    [
        ("pg_table_size", Measure::Table),
        ("pg_relation_size", Measure::Table),
        ("pg_total_relation_size", Measure::Total),
        ("pg_indexes_size", Measure::Indexes),
    ]
    .into_iter()
    .map(|(name, measure)| {
        AsyncScalarUDF::new(Arc::new(SizeFunction {
            name,
            measure,
            signature: Signature::variadic_any(Volatility::Volatile),
            scope: scope.clone(),
        }))
        .into_scalar_udf()
    })
    .collect()
}

struct SizeFunction {
    name: &'static str,
    measure: Measure,
    signature: Signature,
    scope: SizeScope,
}

impl std::fmt::Debug for SizeFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SizeFunction")
            .field("name", &self.name)
            .finish()
    }
}

impl PartialEq for SizeFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.scope.pg_catalog, &other.scope.pg_catalog)
    }
}

impl Eq for SizeFunction {}

impl Hash for SizeFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for SizeFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        datafusion::common::internal_err!("{} runs only asynchronously", self.name)
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for SizeFunction {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(first) = args.args.first() else {
            return datafusion::common::plan_err!("{}(regclass) takes one argument", self.name);
        };
        let oids = cast(&first.to_array(args.number_rows)?, &DataType::Int64)?;
        let oids = oids.as_primitive::<Int64Type>();
        let state = SessionStateBuilder::new()
            .with_runtime_env(self.scope.runtime.clone())
            .build();
        let known = CatalogOids::read(self.scope.pg_catalog.as_ref(), &state, false).await?;
        let names: HashMap<i64, &(String, String)> = known
            .tables
            .iter()
            .map(|(name, oid)| (*oid, name))
            .collect();
        let mut sizes: BTreeMap<i64, Option<i64>> = BTreeMap::new();
        for oid in oids.iter().flatten() {
            if sizes.contains_key(&oid) {
                continue;
            }
            let size = match names.get(&oid) {
                Some((schema, table)) => Some(self.size(schema, table, &state).await),
                None => None,
            };
            sizes.insert(oid, size);
        }
        let out: Int64Array = oids
            .iter()
            .map(|oid| sizes.get(&oid?).copied().flatten())
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

impl SizeFunction {
    /// The measure of `schema.table`; 0 where the store keeps no size or
    /// does not answer (logged).
    async fn size(
        &self,
        schema: &str,
        table: &str,
        state: &dyn datafusion::catalog::Session,
    ) -> i64 {
        let Some(catalog) = &self.scope.catalog else {
            return 0;
        };
        let size = match meshgate_connectors::table_size(catalog, schema, table, state).await {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(schema, table, error = %e, "cannot read the table's size");
                None
            }
        };
        let TableSize { table, total } = size.unwrap_or(TableSize { table: 0, total: 0 });
        let bytes = match self.measure {
            Measure::Table => table,
            Measure::Total => total,
            Measure::Indexes => total.saturating_sub(table),
        };
        i64::try_from(bytes).unwrap_or(i64::MAX)
    }
}

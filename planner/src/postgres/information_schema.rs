//! `information_schema` as PostgreSQL clients read it.
//!
//! DataFusion's own `information_schema.columns` names Arrow types (`Int64`,
//! `Utf8`); PostgreSQL tools (Power BI's Power Query, Grafana, hand-written
//! probes) expect SQL types (`bigint`, `text`) and `udt_name`. pgwire
//! sessions therefore get this schema instead: `columns` is computed here
//! with the types the session's result columns have on the wire, the
//! constraint views PostgreSQL has hold the keys the sources declare (see
//! `constraints`), and every other view is DataFusion's.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, SchemaProvider, Session, TableProvider,
};
use datafusion::common::Result;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::constraints::{constraint_view, is_constraint_view, KeySources};

pub(crate) const INFORMATION_SCHEMA: &str = "information_schema";

/// Constraint views, with PostgreSQL's columns.
const CONSTRAINT_VIEWS: &[(&str, &[&str])] = &[
    (
        "table_constraints",
        &[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "table_catalog",
            "table_schema",
            "table_name",
            "constraint_type",
            "is_deferrable",
            "initially_deferred",
            "enforced",
            "nulls_distinct",
        ],
    ),
    (
        "key_column_usage",
        &[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "table_catalog",
            "table_schema",
            "table_name",
            "column_name",
            "ordinal_position",
            "position_in_unique_constraint",
        ],
    ),
    (
        "referential_constraints",
        &[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "unique_constraint_catalog",
            "unique_constraint_schema",
            "unique_constraint_name",
            "match_option",
            "update_rule",
            "delete_rule",
        ],
    ),
    (
        "constraint_column_usage",
        &[
            "table_catalog",
            "table_schema",
            "table_name",
            "column_name",
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
        ],
    ),
];

#[derive(Debug)]
pub(crate) struct PgInformationSchema {
    catalogs: Arc<dyn CatalogProviderList>,
    datafusion: InformationSchemaProvider,
    /// The sources, for the keys they declare.
    sources: KeySources,
}

impl PgInformationSchema {
    /// The schema over the session's catalogs (as the session sees them).
    pub(crate) fn new(catalogs: Arc<dyn CatalogProviderList>, sources: KeySources) -> Self {
        let visible = Arc::new(WithoutInformationSchema(catalogs.clone()));
        Self {
            catalogs: visible.clone(),
            datafusion: InformationSchemaProvider::new(visible),
            sources,
        }
    }
}

#[async_trait]
impl SchemaProvider for PgInformationSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.datafusion.table_names();
        names.extend(CONSTRAINT_VIEWS.iter().map(|(name, _)| (*name).to_owned()));
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let name = name.to_ascii_lowercase();
        if name == "columns" {
            return Ok(Some(Arc::new(Columns {
                catalogs: self.catalogs.clone(),
                schema: columns_schema(),
            })));
        }
        if let Some((_, columns)) = CONSTRAINT_VIEWS
            .iter()
            .find(|(n, _)| *n == name && is_constraint_view(n))
        {
            let table = constraint_view(&name, columns, &self.catalogs, &self.sources).await?;
            return Ok(Some(Arc::new(table)));
        }
        self.datafusion.table(&name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names()
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// The session's catalogs minus this schema itself, so DataFusion's views
/// list `information_schema` once (it adds its own entries).
#[derive(Debug)]
struct WithoutInformationSchema(Arc<dyn CatalogProviderList>);

impl CatalogProviderList for WithoutInformationSchema {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.0.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.0.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        self.0
            .catalog(name)
            .map(|c| Arc::new(CatalogWithout(c)) as Arc<dyn CatalogProvider>)
    }
}

#[derive(Debug)]
struct CatalogWithout(Arc<dyn CatalogProvider>);

impl CatalogProvider for CatalogWithout {
    fn schema_names(&self) -> Vec<String> {
        self.0
            .schema_names()
            .into_iter()
            .filter(|s| s != INFORMATION_SCHEMA)
            .collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == INFORMATION_SCHEMA {
            return None;
        }
        self.0.schema(name)
    }
}

fn columns_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let int = |name: &str| Field::new(name, DataType::Int32, true);
    Arc::new(Schema::new(vec![
        text("table_catalog"),
        text("table_schema"),
        text("table_name"),
        text("column_name"),
        int("ordinal_position"),
        text("column_default"),
        text("is_nullable"),
        text("data_type"),
        int("character_maximum_length"),
        int("character_octet_length"),
        int("numeric_precision"),
        int("numeric_precision_radix"),
        int("numeric_scale"),
        int("datetime_precision"),
        text("interval_type"),
        text("udt_catalog"),
        text("udt_schema"),
        text("udt_name"),
        text("is_identity"),
        text("is_generated"),
        text("is_updatable"),
        text("dtd_identifier"),
    ]))
}

#[derive(Debug)]
struct Columns {
    catalogs: Arc<dyn CatalogProviderList>,
    schema: SchemaRef,
}

/// What one column contributes to `information_schema.columns`.
struct SqlType {
    data_type: String,
    udt_name: String,
    precision: Option<i32>,
    radix: Option<i32>,
    scale: Option<i32>,
    datetime_precision: Option<i32>,
}

/// The SQL type PostgreSQL clients see for an Arrow type: the type the
/// column has on the wire, named as `information_schema` names it.
fn sql_type(data_type: &DataType) -> SqlType {
    use arrow_pg::datatypes::into_pg_type;
    use pgwire::api::Type;
    let pg = into_pg_type(data_type).unwrap_or(Type::TEXT);
    let (name, precision, radix, scale, datetime) = match pg {
        Type::BOOL => ("boolean", None, None, None, None),
        Type::INT2 => ("smallint", Some(16), Some(2), Some(0), None),
        Type::INT4 => ("integer", Some(32), Some(2), Some(0), None),
        Type::INT8 => ("bigint", Some(64), Some(2), Some(0), None),
        Type::FLOAT4 => ("real", Some(24), Some(2), None, None),
        Type::FLOAT8 => ("double precision", Some(53), Some(2), None, None),
        Type::NUMERIC => {
            let (p, s) = match data_type {
                DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
                    (Some(*p as i32), Some(*s as i32))
                }
                _ => (None, None),
            };
            ("numeric", p, p.map(|_| 10), s, None)
        }
        Type::TEXT => ("text", None, None, None, None),
        Type::VARCHAR => ("character varying", None, None, None, None),
        Type::BPCHAR => ("character", None, None, None, None),
        Type::BYTEA => ("bytea", None, None, None, None),
        Type::DATE => ("date", None, None, None, Some(0)),
        Type::TIME => ("time without time zone", None, None, None, Some(6)),
        Type::TIMETZ => ("time with time zone", None, None, None, Some(6)),
        Type::TIMESTAMP => ("timestamp without time zone", None, None, None, Some(6)),
        Type::TIMESTAMPTZ => ("timestamp with time zone", None, None, None, Some(6)),
        Type::INTERVAL => ("interval", None, None, None, Some(6)),
        ref t if t.name().starts_with('_') => ("ARRAY", None, None, None, None),
        ref t => {
            return SqlType {
                data_type: t.name().to_owned(),
                udt_name: t.name().to_owned(),
                precision: None,
                radix: None,
                scale: None,
                datetime_precision: None,
            }
        }
    };
    // Second precision of timestamps follows the Arrow unit.
    let datetime = match data_type {
        DataType::Timestamp(TimeUnit::Second, _) | DataType::Time32(TimeUnit::Second) => Some(0),
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Time32(TimeUnit::Millisecond) => {
            Some(3)
        }
        _ => datetime,
    };
    SqlType {
        data_type: name.to_owned(),
        udt_name: pg.name().to_owned(),
        precision,
        radix,
        scale,
        datetime_precision: datetime,
    }
}

#[async_trait]
impl TableProvider for Columns {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut text: HashMap<&str, StringBuilder> = HashMap::new();
        let mut ints: HashMap<&str, Int32Builder> = HashMap::new();
        for field in self.schema.fields() {
            match field.data_type() {
                DataType::Int32 => {
                    ints.insert(field.name().as_str(), Int32Builder::new());
                }
                _ => {
                    text.insert(field.name().as_str(), StringBuilder::new());
                }
            }
        }
        for catalog_name in self.catalogs.catalog_names() {
            let Some(catalog) = self.catalogs.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                for table_name in schema.table_names() {
                    // A table that cannot be resolved now (a source that is
                    // down) is left out rather than failing the listing.
                    let Ok(Some(table)) = schema.table(&table_name).await else {
                        continue;
                    };
                    for (i, field) in table.schema().fields().iter().enumerate() {
                        let ty = sql_type(field.data_type());
                        let mut put = |column: &str, value: Option<&str>| {
                            text.get_mut(column)
                                .expect("text column")
                                .append_option(value)
                        };
                        put("table_catalog", Some(&catalog_name));
                        put("table_schema", Some(&schema_name));
                        put("table_name", Some(&table_name));
                        put("column_name", Some(field.name()));
                        put("column_default", None);
                        put(
                            "is_nullable",
                            Some(if field.is_nullable() { "YES" } else { "NO" }),
                        );
                        put("data_type", Some(&ty.data_type));
                        put("interval_type", None);
                        put("udt_catalog", Some(&catalog_name));
                        put("udt_schema", Some("pg_catalog"));
                        put("udt_name", Some(&ty.udt_name));
                        put("is_identity", Some("NO"));
                        put("is_generated", Some("NEVER"));
                        put("is_updatable", Some("NO"));
                        put("dtd_identifier", Some(&(i + 1).to_string()));
                        let mut num = |column: &str, value: Option<i32>| {
                            ints.get_mut(column)
                                .expect("int column")
                                .append_option(value)
                        };
                        num("ordinal_position", Some(i as i32 + 1));
                        num("character_maximum_length", None);
                        num("character_octet_length", None);
                        num("numeric_precision", ty.precision);
                        num("numeric_precision_radix", ty.radix);
                        num("numeric_scale", ty.scale);
                        num("datetime_precision", ty.datetime_precision);
                    }
                }
            }
        }
        let arrays: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Int32 => Arc::new(
                    ints.get_mut(f.name().as_str())
                        .expect("int column")
                        .finish(),
                ) as ArrayRef,
                _ => Arc::new(
                    text.get_mut(f.name().as_str())
                        .expect("text column")
                        .finish(),
                ) as ArrayRef,
            })
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())
            .map(|e| e as Arc<dyn ExecutionPlan>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_types_read_as_sql_types() {
        let name = |t: DataType| sql_type(&t).data_type;
        assert_eq!(name(DataType::Int64), "bigint");
        assert_eq!(name(DataType::Utf8), "text");
        assert_eq!(name(DataType::Date32), "date");
        assert_eq!(
            name(DataType::Timestamp(TimeUnit::Microsecond, None)),
            "timestamp without time zone"
        );
        let numeric = sql_type(&DataType::Decimal128(12, 3));
        assert_eq!(
            (
                numeric.data_type.as_str(),
                numeric.precision,
                numeric.scale,
                numeric.udt_name.as_str()
            ),
            ("numeric", Some(12), Some(3), "numeric")
        );
        assert_eq!(sql_type(&DataType::Int32).udt_name, "int4");
    }
}

//! The schema a product promises, checked against what its source serves:
//! every promised column must exist with a type of the promised kind. A
//! drift (a column gone or retyped) makes that product's table fail with an
//! error naming the product, the column and the promise, while the rest of
//! the catalog serves ([`ContractCatalog`] wraps the shared catalogs).
//!
//! Types are compared by kind, as a source's driver maps them to Arrow:
//! `integer` is a 32-bit integer, `decimal(10,2)` a decimal of that
//! precision and scale, `varchar` and `text` any string. A promised type
//! meshgate cannot map is not checked. Nullability is a promise about the
//! data, checked by quality rules, not by the schema.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{DataType as SqlType, ExactNumberInfo};
use meshgate_policy::TableName;

use super::descriptor::{parse_sql_type, ProductTable};
use super::live::LiveProducts;
use crate::QueryError;

/// Whether an Arrow type is of the kind a promised SQL type names (`None`:
/// meshgate cannot tell).
fn compatible(promised: &SqlType, actual: &DataType) -> Option<bool> {
    use DataType as A;
    // A dictionary-encoded column (a Delta or Parquet partition column,
    // say) is of its values' kind.
    let actual = match actual {
        A::Dictionary(_, values) => values.as_ref(),
        A::RunEndEncoded(_, values) => values.data_type(),
        other => other,
    };
    let is_string = matches!(actual, A::Utf8 | A::LargeUtf8 | A::Utf8View);
    Some(match promised {
        SqlType::BigInt(_) | SqlType::Int8(_) | SqlType::Int64 => matches!(actual, A::Int64),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) | SqlType::Int32 => {
            matches!(actual, A::Int32)
        }
        SqlType::SmallInt(_) | SqlType::Int2(_) | SqlType::Int16 => matches!(actual, A::Int16),
        SqlType::TinyInt(_) => matches!(actual, A::Int8),
        SqlType::Real | SqlType::Float4 | SqlType::Float32 => matches!(actual, A::Float32),
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 | SqlType::Float64 => {
            matches!(actual, A::Float64)
        }
        SqlType::Float(_) => matches!(actual, A::Float32 | A::Float64),
        SqlType::Boolean | SqlType::Bool => matches!(actual, A::Boolean),
        SqlType::Date => matches!(actual, A::Date32 | A::Date64),
        SqlType::Timestamp(_, tz) => match actual {
            A::Timestamp(_, zone) => {
                use datafusion::sql::sqlparser::ast::TimezoneInfo;
                let promised_zone = matches!(tz, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz);
                promised_zone == zone.is_some()
            }
            _ => false,
        },
        SqlType::Varchar(_)
        | SqlType::CharacterVarying(_)
        | SqlType::Text
        | SqlType::String(_)
        | SqlType::Char(_)
        | SqlType::Character(_)
        | SqlType::JSON
        | SqlType::JSONB => is_string,
        SqlType::Decimal(info) | SqlType::Numeric(info) | SqlType::Dec(info) => match actual {
            A::Decimal128(p, s) | A::Decimal256(p, s) => match info {
                ExactNumberInfo::PrecisionAndScale(wp, ws) => {
                    u64::from(*p) == *wp && i64::from(*s) == *ws
                }
                ExactNumberInfo::Precision(wp) => u64::from(*p) == *wp && *s == 0,
                ExactNumberInfo::None => true,
            },
            _ => false,
        },
        SqlType::Bytea | SqlType::Blob(_) | SqlType::Binary(_) | SqlType::Varbinary(_) => {
            matches!(actual, A::Binary | A::LargeBinary | A::BinaryView)
        }
        _ => return None,
    })
}

/// The first way `schema` breaks what `table` of `product` promises.
pub(crate) fn violation(
    product: &str,
    table: &TableName,
    promised: &ProductTable,
    schema: &Schema,
) -> Option<String> {
    for column in &promised.columns {
        let Ok(field) = schema.field_with_name(&column.name) else {
            return Some(format!(
                "data product `{product}` breaks its contract: {table} has no column `{}`, which the product promises",
                column.name
            ));
        };
        let Some(text) = &column.data_type else {
            continue;
        };
        let Ok(sql) = parse_sql_type(text) else {
            continue;
        };
        if compatible(&sql, field.data_type()) == Some(false) {
            return Some(format!(
                "data product `{product}` breaks its contract: column `{}` of {table} is promised as {text}, the source serves {}",
                column.name,
                field.data_type()
            ));
        }
    }
    None
}

/// A catalog whose product tables are checked against their contracts
/// when a query resolves them.
#[derive(Debug)]
pub(crate) struct ContractCatalog {
    name: String,
    inner: Arc<dyn CatalogProvider>,
    products: Arc<LiveProducts>,
}

impl ContractCatalog {
    /// `inner` itself when no product of `products` is in it.
    pub(crate) fn wrap(
        name: &str,
        inner: Arc<dyn CatalogProvider>,
        products: &Arc<LiveProducts>,
    ) -> Arc<dyn CatalogProvider> {
        if !products
            .current()
            .products()
            .iter()
            .any(|p| p.catalog == name)
        {
            return inner;
        }
        Arc::new(Self {
            name: name.to_owned(),
            inner,
            products: products.clone(),
        })
    }
}

impl CatalogProvider for ContractCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let inner = self.inner.schema(name)?;
        Some(Arc::new(ContractSchema {
            catalog: self.name.clone(),
            schema: name.to_owned(),
            inner,
            products: self.products.clone(),
            checked: Default::default(),
        }))
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.register_schema(name, schema)
    }
}

#[derive(Debug)]
struct ContractSchema {
    catalog: String,
    schema: String,
    inner: Arc<dyn SchemaProvider>,
    products: Arc<LiveProducts>,
    /// Schemas already found to keep their promise, by table.
    checked: std::sync::Mutex<HashMap<String, Arc<Schema>>>,
}

#[async_trait]
impl SchemaProvider for ContractSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(provider) = self.inner.table(name).await? else {
            return Ok(None);
        };
        let table = TableName::new(&self.catalog, &self.schema, name);
        let products = self.products.current();
        let Some(product) = products.product_of(&table) else {
            return Ok(Some(provider));
        };
        let schema = provider.schema();
        let known = self
            .checked
            .lock()
            .expect("contract cache")
            .get(name)
            .cloned();
        if known.is_some_and(|k| k == schema) {
            return Ok(Some(provider));
        }
        if let Some((_, promised)) = product.tables().find(|(t, _)| *t == table) {
            if let Some(message) = violation(product.name(), &table, promised, &schema) {
                return Err(DataFusionError::External(Box::new(
                    QueryError::ContractBroken(message),
                )));
            }
        }
        self.checked
            .lock()
            .expect("contract cache")
            .insert(name.to_owned(), schema);
        Ok(Some(provider))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, TimeUnit};

    fn promised(columns: &str) -> ProductTable {
        yaml_serde::from_str(&format!("name: s.t\ncolumns: {columns}\n")).unwrap()
    }

    #[test]
    fn a_column_gone_or_retyped_breaks_the_contract() {
        let table = TableName::new("c", "s", "t");
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("amount", DataType::Decimal128(10, 2), false),
            Field::new("name", DataType::Utf8View, true),
            Field::new(
                "status",
                DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
                false,
            ),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]);
        let kept = promised(
            "[{name: id, type: bigint}, {name: amount, type: 'decimal(10,2)'}, {name: name, type: text}, {name: status, type: varchar}, {name: at, type: timestamptz}]",
        );
        assert_eq!(violation("p", &table, &kept, &schema), None);
        let retyped = promised("[{name: amount, type: integer}]");
        assert_eq!(
            violation("p", &table, &retyped, &schema).unwrap(),
            "data product `p` breaks its contract: column `amount` of c.s.t is promised as integer, the source serves Decimal128(10, 2)"
        );
        let gone = promised("[{name: total}]");
        assert!(violation("p", &table, &gone, &schema)
            .unwrap()
            .contains("has no column `total`"));
        // A type meshgate cannot map is not checked.
        let unknown = promised("[{name: name, type: geometry}]");
        assert_eq!(violation("p", &table, &unknown, &schema), None);
    }
}

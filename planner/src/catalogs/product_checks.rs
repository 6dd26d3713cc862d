//! Self-serve for domain teams, without serving: a descriptor drafted from
//! an existing table, with the keys its data holds inferred
//! ([`CatalogRegistry::draft_product`], behind `meshgate product init`), and every product checked against its source
//! ([`CatalogRegistry::check_products`], behind `meshgate product
//! validate`).

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use meshgate_policy::TableName;

use super::CatalogRegistry;
use crate::products::contract::violation;
use crate::products::descriptor::{
    ColumnContract, Owner, ProductDescriptor, ProductStatus, ProductTable, Slo,
};

/// The SQL type a contract writes for an Arrow type (`None`: no SQL name
/// meshgate checks).
pub fn sql_type(data_type: &DataType) -> Option<String> {
    use DataType as A;
    Some(
        match data_type {
            A::Boolean => "boolean",
            A::Int8 => "tinyint",
            A::Int16 => "smallint",
            A::Int32 => "integer",
            A::Int64 => "bigint",
            A::Float32 => "real",
            A::Float64 => "double precision",
            A::Utf8 | A::LargeUtf8 | A::Utf8View => "varchar",
            A::Binary | A::LargeBinary | A::BinaryView => "bytea",
            A::Date32 | A::Date64 => "date",
            A::Timestamp(_, None) => "timestamp",
            A::Timestamp(_, Some(_)) => "timestamptz",
            A::Decimal128(p, s) | A::Decimal256(p, s) => return Some(format!("decimal({p},{s})")),
            A::Dictionary(_, values) => return sql_type(values),
            _ => return None,
        }
        .to_owned(),
    )
}

/// Whether a column of this type can be a key worth inferring.
fn key_type(data_type: &DataType) -> bool {
    use DataType as A;
    match data_type {
        A::Int8 | A::Int16 | A::Int32 | A::Int64 | A::UInt8 | A::UInt16 | A::UInt32 | A::UInt64 => {
            true
        }
        A::Utf8 | A::LargeUtf8 | A::Utf8View | A::Date32 | A::Date64 | A::Timestamp(..) => true,
        A::Decimal128(..) | A::Decimal256(..) => true,
        A::Dictionary(_, values) => key_type(values),
        _ => false,
    }
}

/// What a drafted contract promises of a column as it is now.
fn promised(field: &Field) -> ColumnContract {
    ColumnContract {
        name: field.name().clone(),
        data_type: sql_type(field.data_type()),
        nullable: field.is_nullable(),
        unique: false,
        description: None,
        tags: vec![],
    }
}

/// One product table checked against its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductCheck {
    pub product: String,
    pub table: String,
    /// What is wrong (`None`: the source keeps the promise).
    pub problem: Option<String>,
}

impl CatalogRegistry {
    async fn source_schema(&self, table: &TableName) -> Result<std::sync::Arc<Schema>, String> {
        let provider = self
            .catalogs()
            .get(&table.catalog)
            .ok_or_else(|| format!("no catalog named `{}` is configured", table.catalog))?
            .schema(&table.schema)
            .ok_or_else(|| format!("{table} does not exist (no schema `{}`)", table.schema))?
            .table(&table.table)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{table} does not exist"))?;
        Ok(provider.schema())
    }

    /// A descriptor for a product serving `table` as it is now: every column
    /// with its SQL type and nullability (owner and SLOs to fill in).
    pub async fn draft_product(
        &self,
        table: &TableName,
        name: &str,
        team: &str,
    ) -> Result<ProductDescriptor, String> {
        let schema = self.source_schema(table).await?;
        let mut columns: Vec<ColumnContract> =
            schema.fields().iter().map(|f| promised(f)).collect();
        self.declared_keys(table, &mut columns).await;
        self.infer_keys(table, &schema, &mut columns).await?;
        Ok(ProductDescriptor {
            name: name.to_owned(),
            domain: None,
            owner: Owner {
                team: team.to_owned(),
                contact: None,
            },
            description: None,
            status: ProductStatus::Proposed,
            tags: vec![],
            tables: vec![ProductTable {
                name: format!("{}.{}", table.schema, table.table),
                description: None,
                tags: vec![],
                freshness_column: None,
                columns,
            }],
            quality: vec![],
            slo: Slo::default(),
        })
    }

    /// Mark the columns of the primary key `table`'s source declares (a
    /// PostgreSQL or MySQL table): not nullable, and unique when the key
    /// is that one column.
    async fn declared_keys(&self, table: &TableName, columns: &mut [ColumnContract]) {
        let Some(catalog) = self.catalogs().get(&table.catalog).cloned() else {
            return;
        };
        let Ok(keys) = meshgate_connectors::catalog_keys(&catalog).await else {
            return;
        };
        let primary: Vec<&str> = keys
            .iter()
            .filter(|k| {
                k.references.is_none() && k.schema == table.schema && k.table == table.table
            })
            .map(|k| k.column.as_str())
            .collect();
        for column in columns
            .iter_mut()
            .filter(|c| primary.contains(&c.name.as_str()))
        {
            column.nullable = false;
            column.unique |= primary.len() == 1;
        }
    }

    /// Mark the columns of `table` that hold a key now — no NULL, no value
    /// twice, in a table with rows — as unique and not nullable. One scan
    /// of the table, counting each candidate's values and distinct values
    /// (integers, decimals, strings, dates and timestamps; not floats,
    /// booleans or binary data).
    async fn infer_keys(
        &self,
        table: &TableName,
        schema: &Schema,
        columns: &mut [ColumnContract],
    ) -> Result<(), String> {
        let candidates: Vec<usize> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| key_type(f.data_type()))
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let counts: Vec<String> = candidates
            .iter()
            .map(|&i| {
                let c = quote(schema.field(i).name());
                format!("count({c}), count(DISTINCT {c})")
            })
            .collect();
        let sql = format!(
            "SELECT count(*), {} FROM {}.{}.{}",
            counts.join(", "),
            quote(&table.catalog),
            quote(&table.schema),
            quote(&table.table)
        );
        let ctx = datafusion::prelude::SessionContext::new_with_config_rt(
            datafusion::prelude::SessionConfig::new(),
            self.runtime(),
        );
        for (name, catalog) in self.catalogs().iter() {
            ctx.register_catalog(name, catalog.clone());
        }
        let failed =
            |e: datafusion::error::DataFusionError| format!("inferring the keys of {table}: {e}");
        let batches = ctx
            .sql(&sql)
            .await
            .map_err(failed)?
            .collect()
            .await
            .map_err(failed)?;
        let Some(row) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(());
        };
        let value = |column: usize| {
            datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(
                row.column(column).as_ref(),
            )
            .value(0)
        };
        let rows = value(0);
        for (n, &i) in candidates.iter().enumerate() {
            let (values, distinct) = (value(1 + 2 * n), value(2 + 2 * n));
            if rows > 0 && values == rows && distinct == rows {
                columns[i].unique = true;
                columns[i].nullable = false;
            }
        }
        Ok(())
    }

    /// What keeps `descriptor`, a product of `catalog`, from holding on its
    /// sources now (empty: the sources keep every promise).
    pub async fn check_descriptor(
        &self,
        catalog: &str,
        descriptor: &ProductDescriptor,
    ) -> Vec<String> {
        let product = crate::products::Product {
            catalog: catalog.to_owned(),
            descriptor: descriptor.clone(),
        };
        let mut problems = Vec::new();
        for (table, promised) in product.tables() {
            let problem = match self.source_schema(&table).await {
                Ok(schema) => violation(product.name(), &table, promised, &schema),
                Err(e) => Some(e),
            };
            problems.extend(problem);
        }
        problems
    }

    /// Every table of every product (or of `only`), checked against its
    /// source: it exists, and has every promised column with a type of the
    /// promised kind.
    pub async fn check_products(&self, only: Option<&str>) -> Vec<ProductCheck> {
        let products = self.products();
        let mut out = Vec::new();
        for product in products
            .products()
            .iter()
            .filter(|p| only.is_none_or(|o| p.name() == o))
        {
            for (table, promised) in product.tables() {
                let problem = match self.source_schema(&table).await {
                    Ok(schema) => violation(product.name(), &table, promised, &schema),
                    Err(e) => Some(e),
                };
                out.push(ProductCheck {
                    product: product.name().to_owned(),
                    table: table.to_string(),
                    problem,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn a_drafted_contract_holds_for_the_schema_it_came_from() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "status",
                DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
                false,
            ),
        ]);
        let promised = ProductTable {
            name: "s.t".into(),
            description: None,
            tags: vec![],
            freshness_column: None,
            columns: schema.fields().iter().map(|f| promised(f)).collect(),
        };
        assert_eq!(
            promised.columns[1].data_type.as_deref(),
            Some("decimal(10,2)")
        );
        assert_eq!(
            violation("p", &TableName::new("c", "s", "t"), &promised, &schema),
            None
        );
    }
}

//! Self-serve for domain teams, without serving: a descriptor drafted from
//! an existing table ([`CatalogRegistry::draft_product`], behind `meshgate
//! product init`), and every product checked against its source
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
        let columns = schema.fields().iter().map(|f| promised(f)).collect();
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

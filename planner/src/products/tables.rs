//! The discovery tables: `system.data_products` (one row per product) and
//! `system.data_product_columns` (one row per promised column).
//!
//! A session discovers only what the policy lets it read: a product is
//! listed when the session may select at least one of its tables, and only
//! those tables and their columns are shown. A denied product is hidden,
//! not listed with an access contact: its existence, owner and tags are
//! themselves information, and pg_catalog hides denied tables the same way.
//! Whom to ask for access is the domain's contact, which a user finds by
//! the catalogs they can already read.

use std::sync::Arc;

use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::array::{ArrayRef, BooleanArray, ListBuilder, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::Result;
use meshgate_policy::TableName;

use super::freshness::Freshness;
use super::freshness_table::FreshnessTable;
use super::lineage::{lineage_table, Lineage};
use super::live::LiveProducts;
use super::quality::{quality_table, QualityResults};
use super::DataProducts;
use crate::runtime::table::{AdminCheck, RowSource, SnapshotTable};

/// Whether the session may read a table (the policy's decision).
pub(crate) type Visible = Arc<dyn Fn(&TableName) -> bool + Send + Sync>;

/// The name of the schema the discovery tables live in.
#[cfg(test)]
const SCHEMA: &str = "system";

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn list(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
        false,
    )
}

fn products_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        text("name", false),
        text("domain", false),
        text("owner", false),
        text("contact", true),
        text("description", true),
        list("tags"),
        text("status", false),
        text("freshness_slo", true),
        text("availability_slo", true),
        text("catalog", false),
        list("tables"),
    ]))
}

fn columns_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        text("product", false),
        text("table_name", false),
        text("column_name", false),
        text("data_type", true),
        Field::new("nullable", DataType::Boolean, false),
        Field::new("is_unique", DataType::Boolean, false),
        text("description", true),
        list("tags"),
    ]))
}

fn strings(values: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn string_lists(values: Vec<Vec<String>>) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for list in values {
        for v in list {
            builder.values().append_value(v);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

/// The rows of `system.data_products` the session may see.
fn products_batch(products: &DataProducts, visible: &Visible) -> Result<RecordBatch> {
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); 9];
    let (mut tags, mut tables) = (Vec::new(), Vec::new());
    for seen in products.visible(visible.as_ref()) {
        let product = seen.product;
        let shown: Vec<String> = seen
            .tables
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        let d = &product.descriptor;
        for (col, value) in cols.iter_mut().zip([
            Some(d.name.clone()),
            Some(product.domain().to_owned()),
            Some(d.owner.team.clone()),
            d.owner.contact.clone(),
            d.description.clone(),
            Some(d.status.as_str().to_owned()),
            d.slo.freshness.clone(),
            d.slo.availability.clone(),
            Some(product.catalog.clone()),
        ]) {
            col.push(value);
        }
        tags.push(d.tags.clone());
        tables.push(shown);
    }
    let mut cols = cols.into_iter().map(strings);
    let mut next = || cols.next().expect("column");
    let columns = vec![
        next(),
        next(),
        next(),
        next(),
        next(),
        string_lists(tags),
        next(),
        next(),
        next(),
        next(),
        string_lists(tables),
    ];
    Ok(RecordBatch::try_new(products_schema(), columns)?)
}

/// The rows of `system.data_product_columns` the session may see.
fn columns_batch(products: &DataProducts, visible: &Visible) -> Result<RecordBatch> {
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); 5];
    let (mut nullable, mut unique, mut tags) = (Vec::new(), Vec::new(), Vec::new());
    for seen in products.visible(visible.as_ref()) {
        let product = seen.product;
        for (name, table) in &seen.tables {
            for column in &table.columns {
                for (col, value) in cols.iter_mut().zip([
                    Some(product.name().to_owned()),
                    Some(name.to_string()),
                    Some(column.name.clone()),
                    column.data_type.clone(),
                    column.description.clone(),
                ]) {
                    col.push(value);
                }
                nullable.push(column.nullable);
                unique.push(column.unique);
                tags.push(column.tags.clone());
            }
        }
    }
    let mut cols = cols.into_iter().map(strings);
    let mut next = || cols.next().expect("column");
    let columns = vec![
        next(),
        next(),
        next(),
        next(),
        Arc::new(BooleanArray::from(nullable)) as ArrayRef,
        Arc::new(BooleanArray::from(unique)),
        next(),
        string_lists(tags),
    ];
    Ok(RecordBatch::try_new(columns_schema(), columns)?)
}

/// The discovery tables of one session, in one schema.
/// What the discovery tables show, shared by every session.
#[derive(Clone)]
pub(crate) struct DiscoverySources {
    pub(crate) products: Arc<LiveProducts>,
    pub(crate) freshness: Arc<Freshness>,
    pub(crate) quality: Arc<QualityResults>,
    pub(crate) lineage: Arc<Lineage>,
}

/// Who reads the discovery tables: what they may read, who they are.
pub(crate) struct Reader {
    pub(crate) visible: Visible,
    pub(crate) user: String,
    pub(crate) admin: AdminCheck,
}

pub(crate) fn discovery_schema(
    sources: DiscoverySources,
    reader: Reader,
) -> Result<Arc<dyn SchemaProvider>> {
    let DiscoverySources {
        products,
        freshness,
        quality,
        lineage,
    } = sources;
    let Reader {
        visible,
        user,
        admin,
    } = reader;
    let schema = MemorySchemaProvider::new();
    schema.register_table(
        "lineage".into(),
        Arc::new(lineage_table(
            lineage,
            products.clone(),
            visible.clone(),
            user,
            admin,
        )),
    )?;
    schema.register_table(
        "quality_results".into(),
        Arc::new(quality_table(quality, products.clone(), visible.clone())),
    )?;
    schema.register_table(
        "freshness".into(),
        Arc::new(FreshnessTable::new(freshness, visible.clone())),
    )?;
    let (p, v) = (products.clone(), visible.clone());
    let rows: RowSource = Arc::new(move || products_batch(&p.current(), &v));
    schema.register_table(
        "data_products".into(),
        Arc::new(SnapshotTable::new(products_schema(), rows)),
    )?;
    let rows: RowSource = Arc::new(move || columns_batch(&products.current(), &visible));
    schema.register_table(
        "data_product_columns".into(),
        Arc::new(SnapshotTable::new(columns_schema(), rows)),
    )?;
    Ok(Arc::new(schema))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::products::ProductDescriptor;
    use datafusion::prelude::SessionContext;

    fn product(name: &str, tables: &[&str]) -> ProductDescriptor {
        let tables: String = tables
            .iter()
            .map(|t| {
                format!("  - name: {t}\n    columns: [{{ name: id, type: bigint, tags: [key] }}]\n")
            })
            .collect();
        yaml_serde::from_str(&format!(
            "name: {name}\nowner: {{ team: {name}-team }}\ntags: [gold]\nslo: {{ freshness: 1h }}\ntables:\n{tables}"
        ))
        .unwrap()
    }

    fn freshness(products: Arc<LiveProducts>) -> Arc<Freshness> {
        Arc::new(Freshness::new(
            Default::default(),
            Arc::new(datafusion::execution::runtime_env::RuntimeEnv::default()),
            products,
        ))
    }

    #[tokio::test]
    async fn a_session_discovers_only_what_it_may_read() {
        let products = Arc::new(LiveProducts::new(
            DataProducts::new([(
                "c".to_owned(),
                vec![
                    product("open", &["s.a", "s.b"]),
                    product("closed", &["s.x"]),
                ],
            )])
            .unwrap(),
            Default::default(),
        ));
        let visible: Visible = Arc::new(|t: &TableName| t.table != "x" && t.table != "b");
        let ctx = SessionContext::new();
        ctx.register_catalog_list(Arc::new(
            datafusion::catalog::MemoryCatalogProviderList::new(),
        ));
        let catalog = Arc::new(datafusion::catalog::MemoryCatalogProvider::new());
        datafusion::catalog::CatalogProvider::register_schema(
            catalog.as_ref(),
            SCHEMA,
            discovery_schema(
                DiscoverySources {
                    freshness: freshness(products.clone()),
                    products,
                    quality: Default::default(),
                    lineage: Default::default(),
                },
                Reader {
                    visible,
                    user: "u".into(),
                    admin: Arc::new(|| false),
                },
            )
            .unwrap(),
        )
        .unwrap();
        ctx.register_catalog("datafusion", catalog);
        let text = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
                datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                    .unwrap()
                    .to_string()
            }
        };
        let listed =
            text("SELECT name, owner, tags, freshness_slo, tables FROM system.data_products").await;
        assert!(
            listed.contains("| open | open-team | [gold] | 1h            | [c.s.a] |"),
            "{listed}"
        );
        assert!(!listed.contains("closed"), "{listed}");
        let columns = text("SELECT product, table_name, column_name, data_type, tags FROM system.data_product_columns").await;
        assert!(
            columns.contains("| open    | c.s.a      | id          | bigint    | [key] |"),
            "{columns}"
        );
        assert_eq!(columns.matches("open").count(), 1, "{columns}");
    }
}

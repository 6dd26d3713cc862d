//! Data products: the descriptors domain teams declare for their tables
//! ([`descriptor`]), gathered into [`DataProducts`], which answers which
//! product a table belongs to, the tags the policy matches on it and its
//! columns, and the descriptions pg_catalog shows; whether each source
//! keeps its product's promised schema ([`contract`]); how fresh each
//! product is ([`freshness`]); and the `system` tables consumers discover products
//! with ([`tables`], [`freshness_table`]).

pub(crate) mod contract;
pub mod descriptor;
pub mod freshness;
pub(crate) mod freshness_table;
pub mod lineage;
pub mod live;
pub mod quality;
pub(crate) mod tables;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use meshgate_connectors::Description;
use meshgate_policy::{ResourceTags, TableName};
use thiserror::Error;

pub use descriptor::{DescriptorFile, Problem, ProductDescriptor, ProductStatus};

/// A product as meshgate serves it: its catalog and descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub catalog: String,
    pub descriptor: ProductDescriptor,
}

impl Product {
    pub fn name(&self) -> &str {
        &self.descriptor.name
    }

    /// The domain: declared, or the catalog's name.
    pub fn domain(&self) -> &str {
        self.descriptor.domain.as_deref().unwrap_or(&self.catalog)
    }

    /// Each table of the product by its full name, with its descriptor entry.
    pub fn tables(&self) -> impl Iterator<Item = (TableName, &descriptor::ProductTable)> {
        self.descriptor.tables.iter().map(|t| {
            let (schema, table) = t.name.split_once('.').unwrap_or(("", &t.name));
            (TableName::new(&self.catalog, schema, table), t)
        })
    }
}

/// A product as one session discovers it: the tables of it the session may read.
#[derive(Debug, Clone)]
pub struct VisibleProduct<'a> {
    pub product: &'a Product,
    pub tables: Vec<(TableName, &'a descriptor::ProductTable)>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProductsError {
    #[error("catalog `{catalog}`: products[{index}].{key}: {problem}")]
    Invalid {
        catalog: String,
        index: usize,
        key: String,
        problem: String,
    },
}

/// Every product the gateway serves.
#[derive(Debug, Default)]
pub struct DataProducts {
    products: Vec<Product>,
    /// Table → index into `products`.
    by_table: HashMap<TableName, usize>,
}

impl DataProducts {
    /// The products of each catalog, in order. Each descriptor must be
    /// valid ([`ProductDescriptor::problems`]), product names unique, and a
    /// table part of one product at most.
    pub fn new(
        catalogs: impl IntoIterator<Item = (String, Vec<ProductDescriptor>)>,
    ) -> Result<Self, ProductsError> {
        let mut products = Self::default();
        let mut names = BTreeMap::new();
        for (catalog, descriptors) in catalogs {
            for (index, descriptor) in descriptors.into_iter().enumerate() {
                let invalid = |key: &str, problem: String| ProductsError::Invalid {
                    catalog: catalog.clone(),
                    index,
                    key: key.to_owned(),
                    problem,
                };
                if let Some(p) = descriptor.problems().into_iter().next() {
                    return Err(invalid(&p.key, p.problem));
                }
                if let Some(other) = names.insert(descriptor.name.clone(), catalog.clone()) {
                    return Err(invalid(
                        "name",
                        format!(
                            "product `{}` is already declared by catalog `{other}`",
                            descriptor.name
                        ),
                    ));
                }
                let product = Product {
                    catalog: catalog.clone(),
                    descriptor,
                };
                let at = products.products.len();
                for (i, (table, _)) in product.tables().enumerate() {
                    if let Some(&other) = products.by_table.get(&table) {
                        return Err(invalid(
                            &format!("tables[{i}].name"),
                            format!(
                                "{table} is already part of product `{}`",
                                products.products[other].name()
                            ),
                        ));
                    }
                    products.by_table.insert(table, at);
                }
                products.products.push(product);
            }
        }
        Ok(products)
    }

    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    pub fn products(&self) -> &[Product] {
        &self.products
    }

    pub fn product(&self, name: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.name() == name)
    }

    /// The product `table` belongs to.
    pub fn product_of(&self, table: &TableName) -> Option<&Product> {
        self.by_table.get(table).map(|&i| &self.products[i])
    }

    /// The tags descriptors put on `table` (the product's and the table's)
    /// and on its columns, for the policy's tag rules.
    pub fn tags(&self, table: &TableName) -> ResourceTags {
        let Some(product) = self.product_of(table) else {
            return ResourceTags::default();
        };
        let Some((_, entry)) = product.tables().find(|(name, _)| name == table) else {
            return ResourceTags::default();
        };
        ResourceTags {
            table: product
                .descriptor
                .tags
                .iter()
                .chain(&entry.tags)
                .cloned()
                .collect(),
            columns: entry
                .columns
                .iter()
                .filter(|c| !c.tags.is_empty())
                .map(|c| (c.name.clone(), c.tags.iter().cloned().collect()))
                .collect(),
        }
    }

    /// Table and column descriptions the descriptors of `catalog` give
    /// (for `pg_description`, `\dt+` and `obj_description`).
    pub fn descriptions(&self, catalog: &str) -> Vec<Description> {
        let mut out = Vec::new();
        for product in self.products.iter().filter(|p| p.catalog == catalog) {
            for (name, table) in product.tables() {
                let text = table
                    .description
                    .as_ref()
                    .or(product.descriptor.description.as_ref());
                if let Some(text) = text {
                    out.push(Description {
                        schema: name.schema.clone(),
                        table: name.table.clone(),
                        column: None,
                        text: text.clone(),
                    });
                }
                for column in &table.columns {
                    if let Some(text) = &column.description {
                        out.push(Description {
                            schema: name.schema.clone(),
                            table: name.table.clone(),
                            column: Some(column.name.clone()),
                            text: text.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// The products a session discovers: those with at least one table
    /// `visible` lets it read, each with only those tables.
    pub fn visible<'a>(&'a self, visible: &dyn Fn(&TableName) -> bool) -> Vec<VisibleProduct<'a>> {
        self.products
            .iter()
            .filter_map(|product| {
                let tables: Vec<_> = product.tables().filter(|(name, _)| visible(name)).collect();
                (!tables.is_empty()).then_some(VisibleProduct { product, tables })
            })
            .collect()
    }

    /// Every tag any descriptor uses.
    pub fn all_tags(&self) -> BTreeSet<String> {
        self.products
            .iter()
            .flat_map(|p| {
                p.descriptor.tags.iter().chain(
                    p.descriptor
                        .tables
                        .iter()
                        .flat_map(|t| t.tags.iter().chain(t.columns.iter().flat_map(|c| &c.tags))),
                )
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(name: &str, table: &str) -> ProductDescriptor {
        yaml_serde::from_str(&format!(
            "name: {name}\nowner: {{ team: t }}\ntags: [gold]\ntables:\n  - name: {table}\n    tags: [lake]\n    description: the table\n    columns:\n      - {{ name: ssn, tags: [pii], description: the number }}\n"
        ))
        .unwrap()
    }

    #[test]
    fn tags_and_descriptions_by_table() {
        let products =
            DataProducts::new([("claims".to_owned(), vec![product("claims", "lake.claims")])])
                .unwrap();
        let table = TableName::new("claims", "lake", "claims");
        let tags = products.tags(&table);
        assert_eq!(
            tags.table,
            ["gold", "lake"].map(String::from).into_iter().collect()
        );
        assert_eq!(
            tags.columns["ssn"],
            ["pii".to_owned()].into_iter().collect()
        );
        assert!(products
            .tags(&TableName::new("claims", "lake", "other"))
            .table
            .is_empty());
        let descriptions = products.descriptions("claims");
        assert_eq!(descriptions.len(), 2);
        assert_eq!(descriptions[1].column.as_deref(), Some("ssn"));
        assert_eq!(products.product_of(&table).unwrap().domain(), "claims");
    }

    #[test]
    fn names_and_tables_are_unique() {
        let twice = DataProducts::new([
            ("a".to_owned(), vec![product("p", "s.t")]),
            ("b".to_owned(), vec![product("p", "s.u")]),
        ])
        .unwrap_err();
        assert_eq!(
            twice.to_string(),
            "catalog `b`: products[0].name: product `p` is already declared by catalog `a`"
        );
        let shared = DataProducts::new([(
            "a".to_owned(),
            vec![product("p", "s.t"), product("q", "s.t")],
        )])
        .unwrap_err();
        assert!(
            shared.to_string().contains("products[1].tables[0].name"),
            "{shared}"
        );
    }
}

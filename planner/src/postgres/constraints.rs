//! information_schema's constraint views (`table_constraints`,
//! `key_column_usage`, `referential_constraints`,
//! `constraint_column_usage`) filled with the primary and foreign keys the
//! sources declare (see the connectors' `catalog_keys`), as BI tools read
//! them to suggest joins. A key is listed when the session can see its
//! table, and a foreign key only when it can also see the table it
//! references: the session's catalogs already hide what the policy denies.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{CatalogProvider, CatalogProviderList};
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use meshgate_connectors::KeyColumn;

/// The sources' catalogs as their connectors built them, by name.
pub(crate) type KeySources = Arc<BTreeMap<String, Arc<dyn CatalogProvider>>>;

/// Whether `name` is one of the constraint views this module fills.
pub(crate) fn is_constraint_view(name: &str) -> bool {
    matches!(
        name,
        "table_constraints"
            | "key_column_usage"
            | "referential_constraints"
            | "constraint_column_usage"
    )
}

/// Every key the session can see, with its catalog; of catalog `only`
/// when given (the other sources are then not asked for their keys).
pub(crate) async fn visible_keys(
    catalogs: &Arc<dyn CatalogProviderList>,
    sources: &KeySources,
    only: Option<&str>,
) -> Vec<(String, KeyColumn)> {
    let mut out = Vec::new();
    let names = catalogs.catalog_names();
    for name in names
        .iter()
        .filter(|n| only.is_none_or(|o| o == n.as_str()))
    {
        let (Some(seen), Some(source)) = (catalogs.catalog(name), sources.get(name.as_str()))
        else {
            continue;
        };
        let Ok(keys) = meshgate_connectors::catalog_keys(source).await else {
            continue;
        };
        let visible =
            |schema: &str, table: &str| seen.schema(schema).is_some_and(|s| s.table_exist(table));
        for key in keys.iter() {
            let shown = visible(&key.schema, &key.table)
                && key
                    .references
                    .as_ref()
                    .is_none_or(|r| visible(&r.schema, &r.table));
            if shown {
                out.push((name.clone(), key.clone()));
            }
        }
    }
    out
}

/// One of the constraint views, with `columns` (all text but positions).
pub(crate) async fn constraint_view(
    name: &str,
    columns: &[&str],
    catalogs: &Arc<dyn CatalogProviderList>,
    sources: &KeySources,
) -> Result<MemTable> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| {
            let ty = if c.ends_with("position") || *c == "position_in_unique_constraint" {
                DataType::Int32
            } else {
                DataType::Utf8
            };
            Field::new(*c, ty, true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let keys = visible_keys(catalogs, sources, None).await;
    let rows: Vec<Vec<Cell>> = match name {
        "table_constraints" => {
            let mut seen = std::collections::BTreeSet::new();
            keys.iter()
                .filter(|(c, k)| seen.insert((c.clone(), k.schema.clone(), k.name.clone())))
                .map(|(c, k)| {
                    let kind = if k.references.is_some() {
                        "FOREIGN KEY"
                    } else {
                        "PRIMARY KEY"
                    };
                    let mut row = constraint(c, k);
                    row.extend(table(c, &k.schema, &k.table));
                    row.extend([
                        text(kind),
                        text("NO"),
                        text("NO"),
                        text("YES"),
                        Cell::Text(None),
                    ]);
                    row
                })
                .collect()
        }
        "key_column_usage" => keys
            .iter()
            .map(|(c, k)| {
                let mut row = constraint(c, k);
                row.extend(table(c, &k.schema, &k.table));
                row.push(text(&k.column));
                row.push(Cell::Int(Some(k.position)));
                row.push(Cell::Int(k.references.as_ref().map(|_| k.position)));
                row
            })
            .collect(),
        "referential_constraints" => keys
            .iter()
            .filter(|(_, k)| k.references.is_some() && k.position == 1)
            .map(|(c, k)| {
                let r = k.references.as_ref().expect("a foreign key");
                let referenced_key = keys
                    .iter()
                    .find(|(rc, p)| {
                        rc == c
                            && p.references.is_none()
                            && p.schema == r.schema
                            && p.table == r.table
                    })
                    .map(|(_, p)| p.name.clone());
                let mut row = constraint(c, k);
                row.extend([text(c), text(&r.schema), Cell::Text(referenced_key)]);
                row.extend([
                    text("NONE"),
                    text(rule(r.on_update)),
                    text(rule(r.on_delete)),
                ]);
                row
            })
            .collect(),
        _ => keys
            .iter()
            .map(|(c, k)| {
                let (schema, table_name, column) = match &k.references {
                    Some(r) => (&r.schema, &r.table, &r.column),
                    None => (&k.schema, &k.table, &k.column),
                };
                let mut row = table(c, schema, table_name);
                row.push(text(column));
                row.extend(constraint(c, k));
                row
            })
            .collect(),
    };
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| match schema.field(i).data_type() {
            DataType::Int32 => Arc::new(Int32Array::from(
                rows.iter().map(|r| r[i].int()).collect::<Vec<_>>(),
            )) as ArrayRef,
            _ => Arc::new(StringArray::from(
                rows.iter().map(|r| r[i].text()).collect::<Vec<_>>(),
            )),
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    MemTable::try_new(schema, vec![vec![batch]])
}

#[derive(Clone)]
enum Cell {
    Text(Option<String>),
    Int(Option<i32>),
}

impl Cell {
    fn text(&self) -> Option<String> {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Int(i) => i.map(|i| i.to_string()),
        }
    }

    fn int(&self) -> Option<i32> {
        match self {
            Cell::Int(i) => *i,
            Cell::Text(t) => t.as_deref().and_then(|t| t.parse().ok()),
        }
    }
}

fn text(value: &str) -> Cell {
    Cell::Text(Some(value.to_owned()))
}

/// constraint_catalog, constraint_schema, constraint_name.
fn constraint(catalog: &str, key: &KeyColumn) -> Vec<Cell> {
    vec![text(catalog), text(&key.schema), text(&key.name)]
}

/// table_catalog, table_schema, table_name.
fn table(catalog: &str, schema: &str, name: &str) -> Vec<Cell> {
    vec![text(catalog), text(schema), text(name)]
}

/// A JDBC rule code as information_schema words it.
fn rule(code: u8) -> &'static str {
    match code {
        0 => "CASCADE",
        1 => "RESTRICT",
        2 => "SET NULL",
        4 => "SET DEFAULT",
        _ => "NO ACTION",
    }
}

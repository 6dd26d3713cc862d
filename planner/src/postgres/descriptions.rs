//! `pg_description` from the descriptions domain teams write in the
//! configuration (a table's `description`, a declared column's
//! `description`), so `\d+`, `\dt+`, SQLAlchemy's `get_table_comment` and
//! BI tools' catalog browsers show them.
//!
//! The rows are computed when `pg_description` is read: each description
//! is matched, by schema, table and column name, to the OIDs the session's
//! `pg_class` and `pg_attribute` hand out, so tables the access policy hides
//! have no descriptions either. `obj_description` and `col_description`
//! are, as in PostgreSQL, lookups in `pg_description` (see [`rewrite_lookups`]).

use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast::{self, visit_expressions_mut, FunctionArguments};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use meshgate_connectors::Description;

use super::catalog_oids::CatalogOids;

/// `pg_class`'s OID in PostgreSQL: the `classoid` of a table's description
/// when the session's `pg_class` does not list itself.
const PG_CLASS_OID: i32 = 1259;

#[derive(Debug)]
pub(crate) struct DescriptionTable {
    descriptions: Arc<Vec<Description>>,
    /// The session's pg_catalog, to resolve names to OIDs.
    catalog: Arc<dyn SchemaProvider>,
    schema: SchemaRef,
}

impl DescriptionTable {
    pub(crate) fn new(
        descriptions: Arc<Vec<Description>>,
        catalog: Arc<dyn SchemaProvider>,
    ) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("objoid", DataType::Int32, false),
            Field::new("classoid", DataType::Int32, false),
            Field::new("objsubid", DataType::Int32, false),
            Field::new("description", DataType::Utf8, false),
        ]));
        Self {
            descriptions,
            catalog,
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for DescriptionTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (mut objoid, mut objsubid, mut text) = (vec![], vec![], vec![]);
        // What `'pg_class'::regclass` reads in this session.
        let mut classoid = PG_CLASS_OID;
        if !self.descriptions.is_empty() {
            let with_columns = self.descriptions.iter().any(|d| d.column.is_some());
            let oids = CatalogOids::read(self.catalog.as_ref(), state, with_columns).await?;
            if let Some(oid) = oids.table("pg_catalog", "pg_class") {
                classoid = oid as i32;
            }
            for d in self.descriptions.iter() {
                let Some(oid) = oids.table(&d.schema, &d.table) else {
                    continue;
                };
                let subid = match &d.column {
                    None => 0,
                    Some(column) => match oids.column(oid, column) {
                        Some(n) => n,
                        None => continue,
                    },
                };
                objoid.push(oid as i32);
                objsubid.push(subid as i32);
                text.push(d.text.clone());
            }
        }
        let n = objoid.len();
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(Int32Array::from(objoid)),
                Arc::new(Int32Array::from(vec![classoid; n])),
                Arc::new(Int32Array::from(objsubid)),
                Arc::new(StringArray::from(text)),
            ],
        )?;
        MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())
            .map(|e| e as Arc<dyn ExecutionPlan>)
    }
}

/// PostgreSQL defines `obj_description(oid, 'pg_class')` and
/// `col_description(oid, n)` as lookups in `pg_description`; this rewrites
/// calls in SELECT lists into exactly those lookups (scalar subqueries that
/// DataFusion turns into joins). Descriptions of other object kinds
/// (`'pg_namespace'`, ...) are not configured, so those calls read NULL.
pub(crate) fn rewrite_lookups(statement: &mut ast::Statement) {
    if let ast::Statement::Query(query) = statement {
        rewrite_query(query);
    }
}

fn rewrite_query(query: &mut ast::Query) {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            rewrite_query(&mut cte.query);
        }
    }
    rewrite_set_expr(&mut query.body);
}

fn rewrite_set_expr(body: &mut ast::SetExpr) {
    match body {
        ast::SetExpr::Select(select) => {
            for item in &mut select.projection {
                // A bare lookup keeps the function's name as its column's,
                // as in PostgreSQL (two lookups are two columns).
                if let ast::SelectItem::UnnamedExpr(e) = item {
                    if let (ast::Expr::Function(f), Some(lookup)) = (&*e, lookup_for(e)) {
                        let name = f.name.to_string().to_ascii_lowercase();
                        let name = name.rsplit('.').next().unwrap_or(&name).to_owned();
                        *item = ast::SelectItem::ExprWithAlias {
                            expr: lookup,
                            alias: ast::Ident::new(name),
                        };
                        continue;
                    }
                }
                if let ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    let _ = visit_expressions_mut(e, |e| {
                        if let Some(lookup) = lookup_for(e) {
                            *e = lookup;
                        }
                        ControlFlow::<()>::Continue(())
                    });
                }
            }
            for table in &mut select.from {
                rewrite_table_factor(&mut table.relation);
                for join in &mut table.joins {
                    rewrite_table_factor(&mut join.relation);
                }
            }
        }
        ast::SetExpr::Query(q) => rewrite_query(q),
        ast::SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left);
            rewrite_set_expr(right);
        }
        _ => {}
    }
}

fn rewrite_table_factor(factor: &mut ast::TableFactor) {
    if let ast::TableFactor::Derived { subquery, .. } = factor {
        rewrite_query(subquery);
    }
}

fn lookup_for(expr: &ast::Expr) -> Option<ast::Expr> {
    let ast::Expr::Function(f) = expr else {
        return None;
    };
    let name = match f.name.0.last()? {
        ast::ObjectNamePart::Identifier(id) => id.value.to_ascii_lowercase(),
        _ => return None,
    };
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let args: Vec<String> = list
        .args
        .iter()
        .map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e.to_string()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let sql = match (name.as_str(), args.as_slice()) {
        ("col_description", [oid, column]) => lookup_sql(oid, column),
        ("obj_description", [oid]) => lookup_sql(oid, "0"),
        ("obj_description", [oid, class]) => {
            if class.trim_matches('\'').eq_ignore_ascii_case("pg_class") {
                lookup_sql(oid, "0")
            } else {
                "CAST(NULL AS TEXT)".to_owned()
            }
        }
        _ => return None,
    };
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

fn lookup_sql(oid: &str, subid: &str) -> String {
    format!(
        "(SELECT min(mg_d.description) FROM pg_catalog.pg_description AS mg_d \
         WHERE mg_d.objoid = ({oid}) AND mg_d.objsubid = ({subid}))"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_functions_become_catalog_lookups() {
        let mut statements = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT c.relname, obj_description(c.oid, 'pg_class') AS d, \
             col_description(c.oid, 2), obj_description(c.relnamespace, 'pg_namespace') \
             FROM pg_class c",
        )
        .unwrap();
        rewrite_lookups(&mut statements[0]);
        let sql = statements[0].to_string();
        assert!(
            sql.contains("mg_d.objoid = (c.oid) AND mg_d.objsubid = (0)"),
            "{sql}"
        );
        assert!(sql.contains("mg_d.objsubid = (2)"), "{sql}");
        assert!(sql.contains("CAST(NULL AS TEXT)"), "{sql}");
        assert!(!sql.contains("obj_description("), "{sql}");
        // Bare lookups keep their function's name as their column's.
        assert!(
            sql.contains("AS col_description") && sql.contains("AS obj_description"),
            "{sql}"
        );
    }
}

//! Where each result column of a pgwire statement comes from, as the
//! session's pg_catalog numbers it: the table's `pg_class.oid` and the
//! column's `pg_attribute.attnum`. PostgreSQL sends both in RowDescription;
//! pgJDBC's `ResultSetMetaData.getTableName` and the editors of DBeaver and
//! DataGrip look the table up by them.
//!
//! Only plain columns of tables in the session's own catalog have an
//! origin (pg_catalog describes that catalog only), and only tables the
//! session's pg_catalog shows: a table the policy hides has no OID, so a
//! result names nothing the user could not list. The OIDs are read once and
//! kept for the session; a table missing from them is looked for again at
//! most every [`REREAD_AFTER`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::common::TableReference;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::SessionContext;

use super::catalog_oids::CatalogOids;

/// A result column's table and column number, as pg_catalog shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnOrigin {
    pub table_oid: i32,
    pub column_number: i16,
}

/// How long a read of the OIDs answers for a table it does not hold (a
/// table created since, or a name that is no table: a subquery's alias).
const REREAD_AFTER: Duration = Duration::from_secs(5);

/// One session's OIDs, read when first needed.
#[derive(Debug, Default)]
pub(crate) struct OriginCache {
    read: Mutex<Option<(Arc<CatalogOids>, Instant)>>,
}

impl OriginCache {
    /// The origin of each column `plan` returns in `ctx`,
    /// whose own catalog is `catalog` and default schema `default_schema`.
    pub(crate) async fn origins(
        &self,
        ctx: &SessionContext,
        catalog: &str,
        default_schema: &str,
        plan: &LogicalPlan,
    ) -> Vec<Option<ColumnOrigin>> {
        // (schema, table, column) of each plain column of the own catalog.
        let wanted: Vec<Option<(String, String, String)>> = (0..plan.schema().fields().len())
            .map(|i| {
                let (table, column) = source_column(plan, i)?;
                let resolved = table.resolve(catalog, default_schema);
                (resolved.catalog.as_ref() == catalog).then(|| {
                    (
                        resolved.schema.to_string(),
                        resolved.table.to_string(),
                        column,
                    )
                })
            })
            .collect();
        if wanted.iter().all(Option::is_none) {
            return vec![None; wanted.len()];
        }
        let held = |oids: &CatalogOids| {
            wanted
                .iter()
                .flatten()
                .all(|(s, t, _)| oids.table(s, t).is_some())
        };
        let cached = self.read.lock().expect("origin cache lock").clone();
        let oids = match cached {
            Some((oids, _)) if held(&oids) => oids,
            Some((oids, at)) if at.elapsed() < REREAD_AFTER => oids,
            _ => match self.read_oids(ctx, catalog).await {
                Some(oids) => oids,
                None => return vec![None; wanted.len()],
            },
        };
        wanted
            .into_iter()
            .map(|w| {
                let (schema, table, column) = w?;
                let table_oid = oids.table(&schema, &table)?;
                let column_number = oids.column(table_oid, &column)?;
                Some(ColumnOrigin {
                    table_oid: i32::try_from(table_oid).ok()?,
                    column_number: i16::try_from(column_number).ok()?,
                })
            })
            .collect()
    }

    /// Read the session's pg_catalog OIDs again and keep them. A failure
    /// only costs the origins (the result itself is unaffected).
    async fn read_oids(&self, ctx: &SessionContext, catalog: &str) -> Option<Arc<CatalogOids>> {
        let pg_catalog = ctx.catalog(catalog)?.schema("pg_catalog")?;
        let state = ctx.state();
        match CatalogOids::read(pg_catalog.as_ref(), &state, true).await {
            Ok(oids) => {
                let oids = Arc::new(oids);
                *self.read.lock().expect("origin cache lock") =
                    Some((oids.clone(), Instant::now()));
                Some(oids)
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read pg_catalog OIDs for result columns");
                None
            }
        }
    }
}

/// The table and column that output column `i` of `plan` is, unchanged:
/// followed through aliases, projections of plain columns, filters,
/// sorts, limits, joins and grouping keys down to a table scan; `None` for
/// a computed column.
fn source_column(plan: &LogicalPlan, i: usize) -> Option<(TableReference, String)> {
    match plan {
        LogicalPlan::TableScan(scan) => Some((
            scan.table_name.clone(),
            scan.projected_schema.fields().get(i)?.name().clone(),
        )),
        LogicalPlan::Projection(p) => through(&p.input, p.expr.get(i)?),
        LogicalPlan::Aggregate(a) => through(&a.input, a.group_expr.get(i)?),
        LogicalPlan::Join(join) => {
            let left = join.left.schema().fields().len();
            match join.join_type {
                datafusion::common::JoinType::Inner
                | datafusion::common::JoinType::Left
                | datafusion::common::JoinType::Right
                | datafusion::common::JoinType::Full => {
                    if i < left {
                        source_column(&join.left, i)
                    } else {
                        source_column(&join.right, i - left)
                    }
                }
                datafusion::common::JoinType::LeftSemi | datafusion::common::JoinType::LeftAnti => {
                    source_column(&join.left, i)
                }
                datafusion::common::JoinType::RightSemi
                | datafusion::common::JoinType::RightAnti => source_column(&join.right, i),
                _ => None,
            }
        }
        LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(_))
        | LogicalPlan::Window(_) => {
            // A window's own columns come after its input's.
            let input = plan.inputs()[0];
            (i < input.schema().fields().len())
                .then(|| source_column(input, i))
                .flatten()
        }
        _ => None,
    }
}

/// `expr` over `input`, when it is one of `input`'s columns (maybe renamed).
fn through(input: &LogicalPlan, expr: &Expr) -> Option<(TableReference, String)> {
    let mut expr = expr;
    while let Expr::Alias(alias) = expr {
        expr = &alias.expr;
    }
    let Expr::Column(column) = expr else {
        return None;
    };
    let index = input.schema().index_of_column(column).ok()?;
    source_column(input, index)
}

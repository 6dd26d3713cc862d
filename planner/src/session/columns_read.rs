//! The columns a statement reads, for its audit record and read lineage.
//!
//! They are taken from the optimised plan that runs: after the policy's
//! rewrite (a masked or filtered table is scanned through its barrier,
//! whose scan lists the columns asked of it) and after projection
//! pushdown, so `SELECT name FROM t` reads `name` only and `count(*)`
//! reads no column; a filter pushed into a scan reads its columns. Scans
//! inside a federated sub-plan (a statement sent to a SQL source) count as
//! well.

use std::collections::BTreeSet;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion_federation::FederatedPlanNode;

/// `catalog.schema.table.column` for each column of the tables in `tables`
/// (fully qualified, as the statement resolved them) that `plan` scans,
/// sorted. A table reference partly qualified in the plan resolves against
/// `catalog` and `schema`.
pub(crate) fn columns_read(
    plan: &LogicalPlan,
    tables: &[String],
    catalog: &str,
    schema: &str,
) -> Vec<String> {
    let mut out = BTreeSet::new();
    collect(plan, tables, catalog, schema, &mut out);
    out.into_iter().collect()
}

fn collect(
    plan: &LogicalPlan,
    tables: &[String],
    catalog: &str,
    schema: &str,
    out: &mut BTreeSet<String>,
) {
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                let name = scan.table_name.clone().resolve(catalog, schema).to_string();
                if tables.contains(&name) {
                    for field in scan.projected_schema.fields() {
                        out.insert(format!("{name}.{}", field.name()));
                    }
                    // A filter the scan takes over reads its columns too,
                    // even those the scan does not return.
                    for filter in &scan.filters {
                        for column in filter.column_refs() {
                            out.insert(format!("{name}.{}", column.name));
                        }
                    }
                }
            }
            LogicalPlan::Extension(ext) => {
                if let Some(federated) = ext.node.as_any().downcast_ref::<FederatedPlanNode>() {
                    collect(federated.plan(), tables, catalog, schema, out);
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn only_the_projected_columns_of_named_tables_are_read() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (a INT, b INT, c INT)")
            .await
            .unwrap();
        let tables = ["datafusion.public.t".to_owned()];
        let plan = |sql: &'static str| {
            let (ctx, tables) = (ctx.clone(), tables.clone());
            async move {
                let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
                columns_read(&plan, &tables, "datafusion", "public")
            }
        };
        assert_eq!(
            plan("SELECT b FROM t WHERE c > 1").await,
            ["datafusion.public.t.b", "datafusion.public.t.c"]
        );
        assert_eq!(
            plan("SELECT x.a FROM t AS x WHERE EXISTS (SELECT 1 FROM t y WHERE y.b = x.a)").await,
            ["datafusion.public.t.a", "datafusion.public.t.b"]
        );
        assert!(plan("SELECT 1").await.is_empty());
    }

    #[test]
    fn a_filter_taken_over_by_the_scan_reads_its_columns() {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::datasource::{provider_as_source, MemTable};
        use datafusion::logical_expr::{col, lit, LogicalPlanBuilder};
        let schema = Arc::new(Schema::new(
            ["a", "b", "c"]
                .map(|n| Field::new(n, DataType::Int32, true))
                .to_vec(),
        ));
        let table = MemTable::try_new(schema, vec![vec![]]).unwrap();
        // `SELECT b FROM t WHERE c > 1` with the filter inside the scan.
        let plan = LogicalPlanBuilder::scan_with_filters(
            "datafusion.public.t",
            provider_as_source(Arc::new(table)),
            Some(vec![1]),
            vec![col("c").gt(lit(1))],
        )
        .unwrap()
        .build()
        .unwrap();
        let tables = ["datafusion.public.t".to_owned()];
        assert_eq!(
            columns_read(&plan, &tables, "datafusion", "public"),
            ["datafusion.public.t.b", "datafusion.public.t.c"]
        );
    }
}

//! Join keys pushed into a source's SQL when its query starts (semi-join
//! reduction).
//!
//! When a SQL source is the large (probe) side of a hash join, DataFusion
//! hands its scan the join's dynamic filter: once the small side is built,
//! the filter holds its keys' range (`k >= min AND k <= max`) and, for a
//! small build side, the keys themselves (`k IN (...)`). The federated
//! scan's query is only sent when its rows are first asked for — after
//! the build — so the filter's value at that moment is added to the SQL:
//! `SELECT * FROM (<query>) AS meshgate_keys WHERE k >= 1 AND k <= 90 AND
//! k IN (1, 5, 90)`. The source then sends only rows that can join.
//!
//! Only conjuncts that compare a column with literals are written; any
//! other part of the filter (a hash-table lookup, a CASE over partitions)
//! is left out, which only makes the narrowing weaker: DataFusion still
//! evaluates the join itself.

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::Column as LogicalColumn;
use datafusion::logical_expr::{Expr, Operator};
use datafusion::physical_expr::expressions::{BinaryExpr, Column, InListExpr, Literal};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_common::physical_expr::snapshot_physical_expr;
use datafusion::sql::unparser::dialect::Dialect;
use datafusion::sql::unparser::Unparser;

/// The most keys written into one `IN` list.
const MAX_IN_LIST: usize = 4096;

/// `query` narrowed by what `filters` hold now, over `schema` (the
/// query's output); `None` when they hold nothing that can be written.
pub(crate) fn narrowed_sql(
    query: &str,
    schema: &Schema,
    filters: &[Arc<dyn PhysicalExpr>],
    dialect: &dyn Dialect,
) -> Option<String> {
    let conditions = key_conditions(schema, filters, dialect);
    if conditions.is_empty() {
        return None;
    }
    Some(format!(
        "SELECT * FROM ({query}) AS meshgate_keys WHERE {}",
        conditions.join(" AND ")
    ))
}

/// The conjuncts of what `filters` hold now that can be written as SQL
/// over `schema`, each one condition.
pub(crate) fn key_conditions(
    schema: &Schema,
    filters: &[Arc<dyn PhysicalExpr>],
    dialect: &dyn Dialect,
) -> Vec<String> {
    let unparser = Unparser::new(dialect);
    let mut conditions = Vec::new();
    for filter in filters {
        let Ok(now) = snapshot_physical_expr(filter.clone()) else {
            continue;
        };
        let mut conjuncts = Vec::new();
        split_and(&now, &mut conjuncts);
        conditions.extend(
            conjuncts
                .into_iter()
                .filter_map(|c| condition(c, schema, &unparser)),
        );
    }
    conditions
}

fn split_and<'a>(expr: &'a Arc<dyn PhysicalExpr>, out: &mut Vec<&'a Arc<dyn PhysicalExpr>>) {
    match expr.downcast_ref::<BinaryExpr>() {
        Some(binary) if *binary.op() == Operator::And => {
            split_and(binary.left(), out);
            split_and(binary.right(), out);
        }
        _ => out.push(expr),
    }
}

/// One conjunct as SQL: a column compared with a literal, or a column in
/// a list of literals.
fn condition(expr: &Arc<dyn PhysicalExpr>, schema: &Schema, unparser: &Unparser) -> Option<String> {
    if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
        let op = match binary.op() {
            Operator::Eq => "=",
            Operator::Lt => "<",
            Operator::LtEq => "<=",
            Operator::Gt => ">",
            Operator::GtEq => ">=",
            _ => return None,
        };
        let column = column(binary.left(), schema, unparser)?;
        let value = literal(binary.right(), unparser)?;
        return Some(format!("{column} {op} {value}"));
    }
    if let Some(in_list) = expr.downcast_ref::<InListExpr>() {
        if in_list.negated() || in_list.list().is_empty() || in_list.list().len() > MAX_IN_LIST {
            return None;
        }
        let column = column(in_list.expr(), schema, unparser)?;
        let values = in_list
            .list()
            .iter()
            .map(|v| literal(v, unparser))
            .collect::<Option<Vec<_>>>()?;
        return Some(format!("{column} IN ({})", values.join(", ")));
    }
    None
}

fn column(expr: &Arc<dyn PhysicalExpr>, schema: &Schema, unparser: &Unparser) -> Option<String> {
    let column = expr.downcast_ref::<Column>()?;
    let field = schema.fields().get(column.index())?;
    let name = Expr::Column(LogicalColumn::new_unqualified(field.name()));
    unparser.expr_to_sql(&name).ok().map(|e| e.to_string())
}

fn literal(expr: &Arc<dyn PhysicalExpr>, unparser: &Unparser) -> Option<String> {
    let value = expr.downcast_ref::<Literal>()?.value();
    if value.is_null() {
        return None;
    }
    let value = Expr::Literal(value.clone(), None);
    unparser.expr_to_sql(&value).ok().map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::common::ScalarValue;
    use datafusion::physical_expr::expressions::lit;
    use datafusion::sql::unparser::dialect::PostgreSqlDialect;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("Key", DataType::Int64, true),
        ])
    }

    fn key() -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new("Key", 1))
    }

    fn binary(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    #[test]
    fn a_range_and_a_key_list_become_the_where_clause() {
        let range = binary(
            binary(key(), Operator::GtEq, lit(3_i64)),
            Operator::And,
            binary(key(), Operator::LtEq, lit(90_i64)),
        );
        let list: Arc<dyn PhysicalExpr> = Arc::new(
            InListExpr::try_new(key(), vec![lit(3_i64), lit(90_i64)], false, &schema()).unwrap(),
        );
        let filter = binary(list, Operator::And, range);
        let sql = narrowed_sql("SELECT 1", &schema(), &[filter], &PostgreSqlDialect {}).unwrap();
        assert_eq!(
            sql,
            "SELECT * FROM (SELECT 1) AS meshgate_keys WHERE \"Key\" IN (3, 90) \
             AND \"Key\" >= 3 AND \"Key\" <= 90"
        );
    }

    #[test]
    fn what_cannot_be_written_is_left_out() {
        let or = binary(
            binary(key(), Operator::Eq, lit(1_i64)),
            Operator::Or,
            binary(key(), Operator::Eq, lit(2_i64)),
        );
        let null = binary(key(), Operator::GtEq, lit(ScalarValue::Int64(None)));
        let text = binary(Arc::new(Column::new("name", 0)), Operator::Eq, lit("it's"));
        assert_eq!(
            narrowed_sql(
                "SELECT 1",
                &schema(),
                &[or.clone(), null],
                &PostgreSqlDialect {}
            ),
            None
        );
        let sql = narrowed_sql("SELECT 1", &schema(), &[or, text], &PostgreSqlDialect {}).unwrap();
        assert!(sql.ends_with("WHERE \"name\" = 'it''s'"), "{sql}");
    }
}

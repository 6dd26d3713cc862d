//! Analyzer rules that give plans PostgreSQL's meaning where DataFusion
//! would refuse them. Drivers and BI tools send these shapes while they
//! browse pg_catalog (psqlODBC, SQLAlchemy, Npgsql), so a refusal there
//! means a tool that cannot connect.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::{conjunction, merge_schema, split_conjunction_owned};
use datafusion::logical_expr::{
    create_udf, when, BinaryExpr, ColumnarValue, Expr, ExprSchemable, Filter, LogicalPlan,
    LogicalPlanBuilder, Operator, ScalarUDF, Subquery, Volatility,
};
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::scalar::ScalarValue;

/// The session's analyzer: DataFusion's rules with meshgate's around them.
pub(crate) fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> = vec![Arc::new(PgComparisonRule)];
    rules.extend(Analyzer::new().rules);
    rules.push(Arc::new(SingleRowScalarSubquery));
    rules
}

/// Comparisons PostgreSQL accepts and DataFusion's coercion gets wrong,
/// rewritten before type coercion runs:
///
/// - a `regproc` column (a function name here) compared with a function
///   OID compares names (see [`regproc_comparison`]);
/// - an untyped literal: in PostgreSQL a quoted literal has no type until
///   its context gives it one, so `indisprimary = 't'` compares booleans.
///   DataFusion types the literal as text and refuses the comparison; a
///   text literal compared with a boolean becomes the boolean it spells
///   (`t`, `true`, `yes`, `on`, `1`, ... as PostgreSQL reads them), and
///   one compared with an array column the array it spells (`'{0}'`).
///   Text that spells neither is left for coercion to refuse.
#[derive(Debug, Default)]
pub(crate) struct PgComparisonRule;

impl AnalyzerRule for PgComparisonRule {
    fn name(&self) -> &str {
        "meshgate_pg_comparison"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            if plan.inputs().is_empty() {
                return Ok(Transformed::no(plan));
            }
            let schema = merge_schema(&plan.inputs());
            // A rewritten expression keeps its name, so that the plan above
            // (which refers to an aggregate's output by name) still finds it.
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                let rewritten = expr.transform_up(|e| {
                    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    if !is_comparison(op) {
                        return Ok(Transformed::no(e));
                    }
                    if let Some(rewritten) = regproc_comparison(left, op, right, &schema) {
                        return Ok(Transformed::yes(rewritten));
                    }
                    let typed = |text: &str, other: &Expr| {
                        other
                            .get_type(&schema)
                            .ok()
                            .and_then(|ty| typed_literal(text, &ty))
                    };
                    let (left, right) = match (text_literal(left), text_literal(right)) {
                        (Some(text), None) => match typed(text, right) {
                            Some(value) => (value, *right.clone()),
                            None => return Ok(Transformed::no(e)),
                        },
                        (None, Some(text)) => match typed(text, left) {
                            Some(value) => (*left.clone(), value),
                            None => return Ok(Transformed::no(e)),
                        },
                        _ => return Ok(Transformed::no(e)),
                    };
                    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(left),
                        *op,
                        Box::new(right),
                    ))))
                })?;
                Ok(rewritten.update_data(|e| name.restore(e)))
            })
        })
        .map(|t| t.data)
    }
}

/// `regproc` columns of pg_catalog. They hold function names here (what
/// PostgreSQL prints for them), while clients compare them with function
/// OIDs: `JOIN pg_proc ON pg_proc.oid = t.typreceive` (Npgsql) or
/// `typinput = 'array_in'::regproc` (pgjdbc).
const REGPROC_COLUMNS: &[&str] = &[
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
    "typsubscript",
    "aggfnoid",
    "aggtransfn",
    "aggfinalfn",
    "aggcombinefn",
    "aggserialfn",
    "aggdeserialfn",
    "oprcode",
    "oprrest",
    "oprjoin",
    "rngcanonical",
    "rngsubdiff",
    "prosupport",
];

/// `name_col = oid_expr` where `name_col` is a regproc column holding
/// names: compare the name with the name of the function `oid_expr` is
/// (PostgreSQL compares the OIDs, which is the same thing).
fn regproc_comparison(
    left: &Expr,
    op: &Operator,
    right: &Expr,
    schema: &datafusion::common::DFSchema,
) -> Option<Expr> {
    if !matches!(op, Operator::Eq | Operator::NotEq) {
        return None;
    }
    let regproc_names = |e: &Expr| match e {
        Expr::Column(c) => {
            REGPROC_COLUMNS.contains(&c.name.as_str())
                && matches!(e.get_type(schema), Ok(DataType::Utf8 | DataType::Utf8View))
        }
        _ => false,
    };
    let is_integer = |e: &Expr| matches!(e.get_type(schema), Ok(t) if t.is_integer());
    let name_of = |e: &Expr| regproc_name_udf().call(vec![e.clone()]);
    if regproc_names(left) && is_integer(right) {
        Some(Expr::BinaryExpr(BinaryExpr::new(
            Box::new(left.clone()),
            *op,
            Box::new(name_of(right)),
        )))
    } else if regproc_names(right) && is_integer(left) {
        Some(Expr::BinaryExpr(BinaryExpr::new(
            Box::new(name_of(left)),
            *op,
            Box::new(right.clone()),
        )))
    } else {
        None
    }
}

/// `pg_catalog` function OIDs to names, from the built-in `pg_proc`.
fn proc_names() -> &'static HashMap<i64, String> {
    static NAMES: OnceLock<HashMap<i64, String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names = HashMap::new();
        let Ok(tables) = crate::postgres::static_tables() else {
            return names;
        };
        for batch in tables.pg_proc.data() {
            let (Ok(oid), Ok(name)) = (
                batch.schema().index_of("oid"),
                batch.schema().index_of("proname"),
            ) else {
                continue;
            };
            let (Ok(oids), Ok(names_col)) = (
                cast(batch.column(oid), &DataType::Int64),
                cast(batch.column(name), &DataType::Utf8),
            ) else {
                continue;
            };
            let oids = oids.as_primitive::<Int64Type>();
            let names_col = names_col.as_string::<i32>();
            for i in 0..batch.num_rows() {
                if oids.is_valid(i) && names_col.is_valid(i) {
                    names.insert(oids.value(i), names_col.value(i).to_owned());
                }
            }
        }
        names
    })
}

/// `regproc` output: the function's name, `-` for OID 0, else the number.
fn regproc_name_udf() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(create_udf(
            "regproc_name",
            vec![DataType::Int64],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let oids = cast(&arrays[0], &DataType::Int64)?;
                let oids = oids.as_primitive::<Int64Type>();
                let names: StringArray = oids
                    .iter()
                    .map(|oid| {
                        oid.map(|oid| match oid {
                            0 => "-".to_owned(),
                            oid => proc_names()
                                .get(&oid)
                                .cloned()
                                .unwrap_or_else(|| oid.to_string()),
                        })
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(names)))
            }),
        ))
    })
    .clone()
}

fn is_comparison(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

fn text_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s),
        _ => None,
    }
}

/// A text literal as the value of `ty` it spells, for the types whose
/// text DataFusion does not read in a comparison: a boolean (`'t'`) and
/// an array (`'{0}'`, as psql's `\dp` compares `polroles <> '{0}'`).
fn typed_literal(text: &str, ty: &DataType) -> Option<Expr> {
    let value = match ty {
        DataType::Boolean => ScalarValue::Boolean(Some(parse_bool(text)?)),
        DataType::List(item) => parse_array(text, item.data_type())?,
        _ => return None,
    };
    Some(Expr::Literal(value, None))
}

/// PostgreSQL's one-dimensional array text (`{1,2}`, `{}`) as a list of
/// `item`; `None` for anything else (quoted or nested elements).
fn parse_array(text: &str, item: &DataType) -> Option<ScalarValue> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    if inner.contains(['{', '}', '"']) {
        return None;
    }
    let values = inner
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| match v {
            _ if v.eq_ignore_ascii_case("null") => ScalarValue::try_from(item).ok(),
            _ => ScalarValue::Utf8(Some(v.to_owned())).cast_to(item).ok(),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(ScalarValue::List(ScalarValue::new_list(
        &values, item, true,
    )))
}

/// PostgreSQL's `boolin`: any unique prefix of true/false/yes/no, on/off, 1/0.
fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim().to_ascii_lowercase();
    if t.is_empty() {
        return None;
    }
    let prefix_of = |word: &str| word.starts_with(t.as_str());
    match t.as_str() {
        "1" | "on" => Some(true),
        "0" | "of" | "off" => Some(false),
        _ if prefix_of("true") || prefix_of("yes") => Some(true),
        _ if prefix_of("false") || prefix_of("no") => Some(false),
        _ => None,
    }
}

/// PostgreSQL runs a correlated scalar subquery row by row and fails only
/// if it ever yields more than one row; DataFusion plans it only when an
/// aggregate guarantees one row. Catalog queries use the plain form
/// (`(SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d WHERE
/// d.adrelid = a.attrelid AND a.atthasdef)`), so this rule, run after the
/// others, gives such a subquery the one-row guarantee: its value becomes
/// `first_value(...)` of its rows. Conditions that name only outer columns
/// (`a.atthasdef`) move out into `CASE WHEN ... THEN (subquery) END`, which
/// means the same and leaves only equality correlations for DataFusion to
/// decorrelate into a join.
///
/// The one difference from PostgreSQL: a subquery that yields several rows
/// gives the first instead of an error.
#[derive(Debug, Default)]
pub(crate) struct SingleRowScalarSubquery;

impl AnalyzerRule for SingleRowScalarSubquery {
    fn name(&self) -> &str {
        "meshgate_single_row_scalar_subquery"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            plan.map_expressions(|expr| {
                expr.transform_up(|e| match e {
                    Expr::ScalarSubquery(subquery)
                        if !subquery.outer_ref_columns.is_empty()
                            && always_empty(&subquery.subquery) =>
                    {
                        let field = subquery.subquery.schema().field(0);
                        Ok(Transformed::yes(Expr::Literal(
                            ScalarValue::try_from(field.data_type())?,
                            None,
                        )))
                    }
                    Expr::ScalarSubquery(subquery) if needs_single_row(&subquery) => {
                        single_row(subquery).map(Transformed::yes)
                    }
                    e => Ok(Transformed::no(e)),
                })
            })
        })
        .map(|t| t.data)
    }
}

/// Catalog tables that never hold a row in meshgate: it has no sequences.
const EMPTY_CATALOG_TABLES: &[&str] = &["pg_sequence"];

/// The plan reads rows only through a table that is always empty, so a
/// scalar subquery over it is NULL, whatever its correlation (SQLAlchemy's
/// identity-column subquery reads `pg_sequence` with outer columns in its
/// SELECT list, which DataFusion could not decorrelate).
fn always_empty(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => always_empty(&p.input),
        LogicalPlan::Filter(f) => always_empty(&f.input),
        LogicalPlan::SubqueryAlias(a) => always_empty(&a.input),
        LogicalPlan::Sort(s) => always_empty(&s.input),
        LogicalPlan::Limit(l) => always_empty(&l.input),
        LogicalPlan::Join(j) if j.join_type == datafusion::logical_expr::JoinType::Inner => {
            always_empty(&j.left) || always_empty(&j.right)
        }
        LogicalPlan::TableScan(scan) => {
            EMPTY_CATALOG_TABLES.contains(&scan.table_name.table())
                && scan.table_name.schema().is_none_or(|s| s == "pg_catalog")
        }
        _ => false,
    }
}

fn needs_single_row(subquery: &Subquery) -> bool {
    if subquery.outer_ref_columns.is_empty() {
        return false;
    }
    let mut inner = subquery.subquery.as_ref();
    while let LogicalPlan::Projection(p) = inner {
        inner = p.input.as_ref();
    }
    let aggregated = |plan: &LogicalPlan| matches!(plan, LogicalPlan::Aggregate(agg) if !agg.aggr_expr.is_empty());
    if aggregated(inner) {
        return false;
    }
    if let LogicalPlan::Filter(f) = inner {
        if aggregated(&f.input) {
            return false;
        }
    }
    !matches!(subquery.subquery.max_rows(), Some(n) if n <= 1)
}

fn single_row(subquery: Subquery) -> Result<Expr> {
    let (inner, outer_only) = take_outer_only_conditions(subquery.subquery.as_ref().clone())?;
    let value = Expr::Column(Column::from(inner.schema().qualified_field(0)));
    let name = inner.schema().field(0).name().clone();
    let plan = LogicalPlanBuilder::from(inner)
        .aggregate(
            Vec::<Expr>::new(),
            vec![datafusion::functions_aggregate::expr_fn::first_value(value, vec![]).alias(&name)],
        )?
        .build()?;
    let outer_ref_columns = plan.all_out_ref_exprs();
    let subquery = Expr::ScalarSubquery(Subquery {
        subquery: Arc::new(plan),
        outer_ref_columns,
        spans: subquery.spans,
    });
    Ok(match conjunction(outer_only) {
        Some(condition) => when(condition, subquery).end()?,
        None => subquery,
    })
}

/// Remove from the subquery's filter (below its projections) the
/// conditions that read no column of the subquery's own tables, and return
/// them with their outer references turned back into plain columns.
fn take_outer_only_conditions(plan: LogicalPlan) -> Result<(LogicalPlan, Vec<Expr>)> {
    match plan {
        LogicalPlan::Projection(mut projection) => {
            let (input, taken) =
                take_outer_only_conditions(Arc::unwrap_or_clone(projection.input))?;
            projection.input = Arc::new(input);
            Ok((LogicalPlan::Projection(projection), taken))
        }
        LogicalPlan::Filter(filter) => {
            let (outer_only, kept): (Vec<Expr>, Vec<Expr>) =
                split_conjunction_owned(filter.predicate.clone())
                    .into_iter()
                    .partition(|e| e.contains_outer() && !e.any_column_refs());
            if outer_only.is_empty() {
                return Ok((LogicalPlan::Filter(filter), vec![]));
            }
            let input = match conjunction(kept) {
                Some(predicate) => LogicalPlan::Filter(Filter::try_new(predicate, filter.input)?),
                None => Arc::unwrap_or_clone(filter.input),
            };
            let outer_only = outer_only
                .into_iter()
                .map(|e| {
                    e.transform(|e| match e {
                        Expr::OuterReferenceColumn(_, column) => {
                            Ok(Transformed::yes(Expr::Column(column)))
                        }
                        e => Ok(Transformed::no(e)),
                    })
                    .map(|t| t.data)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((input, outer_only))
        }
        other => Ok((other, vec![])),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_array, parse_bool};
    use datafusion::arrow::datatypes::DataType;
    use datafusion::scalar::ScalarValue;

    #[test]
    fn array_text_is_read_like_postgresql() {
        let list = |values: &[Option<i32>]| {
            let values: Vec<ScalarValue> = values.iter().map(|v| ScalarValue::Int32(*v)).collect();
            ScalarValue::List(ScalarValue::new_list(&values, &DataType::Int32, true))
        };
        assert_eq!(parse_array("{0}", &DataType::Int32), Some(list(&[Some(0)])));
        assert_eq!(
            parse_array(" {1, 2,NULL} ", &DataType::Int32),
            Some(list(&[Some(1), Some(2), None]))
        );
        assert_eq!(parse_array("{}", &DataType::Int32), Some(list(&[])));
        for x in ["0", "{x}", "{{1}}", "{\"1\"}", "[1]"] {
            assert_eq!(parse_array(x, &DataType::Int32), None, "{x}");
        }
    }

    #[test]
    fn booleans_are_read_like_postgresql() {
        for t in ["t", "TRUE", "y", "yes", "on", "1", " tr "] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["f", "false", "n", "no", "off", "0", "of"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for x in ["", "o", "maybe", "2"] {
            assert_eq!(parse_bool(x), None, "{x}");
        }
    }
}

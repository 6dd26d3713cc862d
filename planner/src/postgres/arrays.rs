//! Array columns of pg_catalog and the functions drivers apply to them.
//!
//! Key lists such as `pg_index.indkey` (int2vector) and
//! `pg_constraint.conkey` (int2[]) come from the built-in catalog as text;
//! drivers subscript and unnest them (psqlODBC: `i.indkey[ia.attnum-1]`,
//! SQLAlchemy: `unnest(ix.indkey)`, pgjdbc:
//! `information_schema._pg_expandarray(con.conkey)`), so meshgate serves
//! them as integer lists. `_pg_expandarray` (a set of `(x, n)` rows) and
//! `generate_subscripts` are set-returning in PostgreSQL; they become
//! `unnest` of a list here, which DataFusion evaluates in a SELECT list the
//! way PostgreSQL does (several unnests side by side run in step).

use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, ListArray, ListBuilder, RecordBatch, StructBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema};
use datafusion::catalog::TableProvider;
use datafusion::common::{exec_err, Result};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{self, visit_expressions_mut};

/// The catalog columns that hold integer lists, by table.
const ARRAY_COLUMNS: &[(&str, &[&str])] = &[
    (
        "pg_index",
        &["indkey", "indcollation", "indclass", "indoption"],
    ),
    (
        "pg_constraint",
        &[
            "conkey",
            "confkey",
            "conpfeqop",
            "conppeqop",
            "conffeqop",
            "confdelsetcols",
            "conexclop",
        ],
    ),
    // psql's `\dp` reads `oid = ANY (polroles)` (meshgate's catalog has
    // no row-security policies: its own live in the access policy).
    ("pg_policy", &["polroles"]),
];

/// `pg_index`, `pg_constraint` and `pg_policy` with their key lists as `List<Int32>`,
/// built once from the built-in catalog.
pub(crate) fn array_tables() -> &'static [(&'static str, Arc<dyn TableProvider>)] {
    static TABLES: OnceLock<Vec<(&'static str, Arc<dyn TableProvider>)>> = OnceLock::new();
    TABLES.get_or_init(|| {
        let Ok(statics) = crate::postgres::static_tables() else {
            return Vec::new();
        };
        ARRAY_COLUMNS
            .iter()
            .filter_map(|(table, columns)| {
                let source = match *table {
                    "pg_index" => &statics.pg_index,
                    "pg_policy" => &statics.pg_policy,
                    _ => &statics.pg_constraint,
                };
                let converted = convert(source.schema(), source.data(), columns).ok()?;
                Some((*table, converted))
            })
            .collect()
    })
}

fn convert(
    schema: Arc<Schema>,
    batches: &[RecordBatch],
    columns: &[&str],
) -> Result<Arc<dyn TableProvider>> {
    let item = Arc::new(Field::new_list_field(DataType::Int32, true));
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if columns.contains(&f.name().as_str()) {
                Field::new(f.name(), DataType::List(item.clone()), true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let new_schema = Arc::new(Schema::new(fields));
    let mut out = Vec::new();
    for batch in batches {
        let mut arrays = Vec::new();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            arrays.push(if columns.contains(&field.name().as_str()) {
                parse_int_lists(array)?
            } else {
                array.clone()
            });
        }
        out.push(RecordBatch::try_new(new_schema.clone(), arrays)?);
    }
    Ok(Arc::new(MemTable::try_new(new_schema, vec![out])?))
}

/// Text such as `1 2` (int2vector) or `[2, 20, 3]` / `{2,20,3}` into lists.
fn parse_int_lists(array: &ArrayRef) -> Result<ArrayRef> {
    let text = cast(array, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let mut builder = ListBuilder::new(Int32Builder::new());
    for value in text.iter() {
        match value {
            None => builder.append_null(),
            Some(v) => {
                let inner = v
                    .trim()
                    .trim_matches(|c| matches!(c, '[' | ']' | '{' | '}'));
                for part in inner.split(|c: char| c == ',' || c.is_whitespace()) {
                    if let Ok(n) = part.trim().parse::<i32>() {
                        builder.values().append_value(n);
                    }
                }
                builder.append(true);
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

/// `_pg_expandarray(list)`: the list as `(x, n)` pairs, element and
/// 1-based position; wrapped in `unnest` by [`rewrite_set_functions`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ExpandArray {
    signature: Signature,
}

impl Default for ExpandArray {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

fn pair_fields() -> Fields {
    Fields::from(vec![
        Field::new("x", DataType::Int32, true),
        Field::new("n", DataType::Int32, false),
    ])
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(pair_fields()),
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let lists = match arrays[0].data_type() {
            DataType::List(_) => cast(
                &arrays[0],
                &DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            )?,
            DataType::Null => {
                return Ok(ColumnarValue::Array(
                    datafusion::arrow::array::new_null_array(
                        &self.return_type(&[])?,
                        arrays[0].len(),
                    ),
                ))
            }
            other => return exec_err!("_pg_expandarray expects an array, got {other}"),
        };
        let lists: &ListArray = lists.as_list::<i32>();
        let mut builder = ListBuilder::new(StructBuilder::from_fields(pair_fields(), 0));
        for i in 0..lists.len() {
            if lists.is_null(i) {
                builder.append_null();
                continue;
            }
            let values = lists.value(i);
            let values = values.as_primitive::<Int32Type>();
            for (position, value) in values.iter().enumerate() {
                let pair = builder.values();
                pair.field_builder::<Int32Builder>(0)
                    .expect("x")
                    .append_option(value);
                pair.field_builder::<Int32Builder>(1)
                    .expect("n")
                    .append_value(position as i32 + 1);
                pair.append(true);
            }
            builder.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
    }
}

pub(crate) fn expand_array_udf() -> ScalarUDF {
    ScalarUDF::from(ExpandArray::default())
}

/// Rewrite the set-returning calls: `_pg_expandarray(a)` into
/// `unnest(_pg_expandarray(a))`, and `generate_subscripts(a, 1)` into
/// `unnest(generate_series(1, array_length(a, 1)))`.
///
/// Also `(composite).field`, which PostgreSQL writes for a field of a row
/// value, becomes `(composite)['field']`, the form DataFusion reads; and
/// an array built from a subquery, `ARRAY(SELECT x FROM ... ORDER BY y)`,
/// becomes the scalar subquery `(SELECT array_agg(x ORDER BY y) FROM ...)`
/// (psql's `\du` lists each role's groups so). Unlike PostgreSQL's, an
/// array of no rows is NULL rather than empty.
pub(crate) fn rewrite_set_functions(statement: &mut ast::Statement) {
    let _ = visit_expressions_mut(statement, |e| {
        if let Some(aggregated) = array_subquery(e) {
            *e = aggregated;
            return ControlFlow::<()>::Continue(());
        }
        if let ast::Expr::CompoundFieldAccess { root, access_chain } = e {
            if matches!(root.as_ref(), ast::Expr::Nested(_)) {
                for access in access_chain.iter_mut() {
                    if let ast::AccessExpr::Dot(ast::Expr::Identifier(id)) = access {
                        *access = ast::AccessExpr::Subscript(ast::Subscript::Index {
                            index: ast::Expr::value(ast::Value::SingleQuotedString(
                                id.value.to_ascii_lowercase(),
                            )),
                        });
                    }
                }
            }
        }
        if let ast::Expr::Function(f) = e {
            let name = match f.name.0.last() {
                Some(ast::ObjectNamePart::Identifier(id)) => id.value.to_ascii_lowercase(),
                _ => return ControlFlow::<()>::Continue(()),
            };
            let args = match &f.args {
                ast::FunctionArguments::List(list) => {
                    list.args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
                }
                _ => return ControlFlow::Continue(()),
            };
            let sql = match (name.as_str(), args.as_slice()) {
                ("_pg_expandarray", [a]) => format!("unnest(_pg_expandarray({a}))"),
                ("generate_subscripts", [a, dim]) => {
                    format!("unnest(generate_series(1, CAST(array_length({a}, {dim}) AS BIGINT)))")
                }
                _ => return ControlFlow::Continue(()),
            };
            if let Ok(replacement) = datafusion::sql::sqlparser::parser::Parser::new(
                &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
            )
            .try_with_sql(&sql)
            .and_then(|mut p| p.parse_expr())
            {
                *e = replacement;
            }
        }
        ControlFlow::Continue(())
    });
}

/// `ARRAY(SELECT x FROM ... [ORDER BY y])` as `(SELECT array_agg(x [ORDER
/// BY y]) FROM ...)`; `None` for anything else, or a subquery this cannot
/// keep the meaning of (grouped, distinct, limited, several columns).
fn array_subquery(expr: &ast::Expr) -> Option<ast::Expr> {
    let ast::Expr::Function(f) = expr else {
        return None;
    };
    let ast::FunctionArguments::Subquery(query) = &f.args else {
        return None;
    };
    if !f.name.to_string().eq_ignore_ascii_case("array")
        || query.with.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
    {
        return None;
    }
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let grouped = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, modifiers) => {
            !exprs.is_empty() || !modifiers.is_empty()
        }
        ast::GroupByExpr::All(_) => true,
    };
    if grouped || select.having.is_some() || select.distinct.is_some() {
        return None;
    }
    let [item] = select.projection.as_slice() else {
        return None;
    };
    let value = match item {
        ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    let order = match &query.order_by {
        None => String::new(),
        Some(ast::OrderBy {
            kind: ast::OrderByKind::Expressions(exprs),
            ..
        }) => format!(
            " ORDER BY {}",
            exprs
                .iter()
                .map(|o| {
                    // `ORDER BY 1` names the one column.
                    let mut o = o.clone();
                    if o.expr.to_string() == "1" {
                        o.expr = value.clone();
                    }
                    o.to_string()
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(_) => return None,
    };
    let aggregate = datafusion::sql::sqlparser::parser::Parser::new(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
    )
    .try_with_sql(&format!("array_agg({value}{order})"))
    .and_then(|mut p| p.parse_expr())
    .ok()?;
    let mut select = select.clone();
    select.projection = vec![ast::SelectItem::UnnamedExpr(aggregate)];
    let mut query = query.clone();
    query.body = Box::new(ast::SetExpr::Select(select));
    query.order_by = None;
    Some(ast::Expr::Subquery(query))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;

    fn rewritten(sql: &str) -> String {
        let mut statement = datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
            sql,
        )
        .unwrap()
        .remove(0);
        rewrite_set_functions(&mut statement);
        statement.to_string()
    }

    #[test]
    fn array_subqueries_become_aggregates() {
        assert_eq!(
            rewritten("SELECT ARRAY(SELECT b.rolname FROM m JOIN b ON (m.roleid = b.oid) WHERE m.member = r.oid ORDER BY 1) AS memberof FROM r"),
            "SELECT (SELECT array_agg(b.rolname ORDER BY b.rolname) FROM m JOIN b ON (m.roleid = b.oid) WHERE m.member = r.oid) AS memberof FROM r"
        );
        let grouped = "SELECT ARRAY(SELECT a FROM t GROUP BY a) FROM r";
        assert_eq!(rewritten(grouped), grouped);
    }

    #[test]
    fn key_lists_are_parsed_from_both_text_forms() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("1 2"),
            Some("[2, 20, 3]"),
            Some("{4}"),
            Some(""),
            None,
        ]));
        let lists = parse_int_lists(&text).unwrap();
        let lists = lists.as_list::<i32>();
        let row =
            |i: usize| -> Vec<i32> { lists.value(i).as_primitive::<Int32Type>().values().to_vec() };
        assert_eq!(row(0), vec![1, 2]);
        assert_eq!(row(1), vec![2, 20, 3]);
        assert_eq!(row(2), vec![4]);
        assert!(row(3).is_empty());
        assert!(lists.is_null(4));
    }
}

//! Simple-protocol queries that differ only in the values they compare
//! columns with (`pgbench -S`, a dashboard's filter, an ORM's lookups
//! without prepared statements) share one plan within a session.
//!
//! The literals of the top-level `WHERE`'s comparisons of a column with a
//! number or a string (`aid = 42`, `day >= '2024-01-01'`, joined by
//! AND/OR) become `$n` placeholders; the statement is planned once in that
//! form, and later texts of the same shape bind their values into it and
//! run like a prepared statement (plan cache, direct statements). A value
//! is bound only where the type the plan inferred for its placeholder holds
//! it exactly (an integer in range, a decimal with no more decimals than
//! its column, text for a text column, a valid date for a date column);
//! anything else, and any statement the parameterised form
//! cannot be planned for, is planned from its own text as before. The audit
//! record keeps the text the client sent.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    visit_expressions, BinaryOperator, Expr, SetExpr, Statement, Value,
};

/// How many statement shapes one session keeps.
const MAX_SHAPES: usize = 256;

/// A statement with the literals of its comparisons taken out.
pub(super) struct Parameterised {
    /// The statement with `$1..$n` in place of the literals.
    pub statement: DfStatement,
    /// Its text: the key of its shape.
    pub shape: String,
    literals: Vec<Literal>,
}

#[derive(Debug, Clone)]
enum Literal {
    Number(String),
    Text(String),
}

/// A shape's text with the default catalog and schema it resolves under.
pub(super) type ShapeKey = (String, String, String);

/// The plans of the statement shapes a session has run.
#[derive(Default)]
pub(crate) struct LiteralPlans {
    shapes: HashMap<ShapeKey, Shape>,
}

/// What planning a shape gave.
#[derive(Clone)]
pub(super) enum Shape {
    Planned(std::sync::Arc<super::Prepared>),
    /// The parameterised form does not plan (or binds no value): such
    /// texts are planned as they are.
    Unusable,
}

impl LiteralPlans {
    pub(super) fn get(&self, key: &ShapeKey) -> Option<Shape> {
        self.shapes.get(key).cloned()
    }

    pub(super) fn insert(&mut self, key: ShapeKey, shape: Shape) {
        if self.shapes.len() >= MAX_SHAPES {
            self.shapes.clear();
        }
        self.shapes.insert(key, shape);
    }
}

/// `statement` with its comparison literals as placeholders, or `None`
/// when it is not a plain query with such literals (or already has
/// placeholders).
pub(super) fn parameterise(statement: &DfStatement) -> Option<Parameterised> {
    let DfStatement::Statement(inner) = statement else {
        return None;
    };
    let Statement::Query(query) = inner.as_ref() else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    select.selection.as_ref()?;
    // A text with placeholders of its own keeps them (and its errors).
    let has_placeholder = visit_expressions(query, |e| match e {
        Expr::Value(v) if matches!(v.value, Value::Placeholder(_)) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    if has_placeholder.is_break() {
        return None;
    }
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let mut literals = Vec::new();
    replace(select.selection.as_mut()?, &mut literals);
    if literals.is_empty() {
        return None;
    }
    let statement = DfStatement::Statement(Box::new(Statement::Query(query)));
    Some(Parameterised {
        shape: statement.to_string(),
        statement,
        literals,
    })
}

fn is_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

fn is_comparison(op: &BinaryOperator) -> bool {
    use BinaryOperator::*;
    matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq)
}

/// Take the literal out of `expr` if it is one compared with a column.
fn take(expr: &mut Expr, literals: &mut Vec<Literal>) {
    let Expr::Value(value) = expr else { return };
    let literal = match &value.value {
        Value::Number(n, false) => Literal::Number(n.to_string()),
        Value::SingleQuotedString(s) => Literal::Text(s.clone()),
        _ => return,
    };
    literals.push(literal);
    *expr = Expr::Value(Value::Placeholder(format!("${}", literals.len())).with_empty_span());
}

fn replace(expr: &mut Expr, literals: &mut Vec<Literal>) {
    match expr {
        Expr::Nested(inner) => replace(inner, literals),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And | BinaryOperator::Or,
            right,
        } => {
            replace(left, literals);
            replace(right, literals);
        }
        Expr::BinaryOp { left, op, right } if is_comparison(op) => {
            if is_column(left) {
                take(right, literals);
            } else if is_column(right) {
                take(left, literals);
            }
        }
        _ => {}
    }
}

impl Parameterised {
    /// The literals as values of the placeholder types `plan` inferred, or
    /// `None` when one of them does not fit its type exactly.
    pub(super) fn bind(&self, plan: &LogicalPlan) -> Option<Vec<ScalarValue>> {
        let types = plan.get_parameter_types().ok()?;
        let mut values = Vec::with_capacity(self.literals.len());
        for (i, literal) in self.literals.iter().enumerate() {
            let ty = types.get(&format!("${}", i + 1))?.as_ref()?;
            values.push(value_of(literal, ty)?);
        }
        Some(values)
    }
}

/// `literal` as a value of `ty`, only where that is exactly what the
/// comparison with the literal would have meant.
fn value_of(literal: &Literal, ty: &DataType) -> Option<ScalarValue> {
    match (literal, ty) {
        (Literal::Number(n), ty) if ty.is_integer() => {
            let value = ScalarValue::Int64(Some(n.parse::<i64>().ok()?));
            let cast = value.cast_to(ty).ok()?;
            // In range: the value comes back unchanged.
            (cast.cast_to(&DataType::Int64).ok()? == value).then_some(cast)
        }
        (Literal::Number(n), DataType::Float64) => {
            Some(ScalarValue::Float64(Some(n.parse::<f64>().ok()?)))
        }
        (Literal::Number(n), DataType::Decimal128(_, scale)) if *scale >= 0 => {
            // Exact only when the literal has no more decimals than the
            // column (no rounding) and fits its precision (else an error).
            let decimals = n.split_once('.').map_or(0, |(_, f)| f.len());
            if n.contains(['e', 'E']) || decimals > *scale as usize {
                return None;
            }
            let value = ScalarValue::Utf8(Some(n.clone())).cast_to(ty).ok()?;
            (!value.is_null()).then_some(value)
        }
        (Literal::Text(s), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
            ScalarValue::Utf8(Some(s.clone())).cast_to(ty).ok()
        }
        (Literal::Text(s), DataType::Date32) => {
            let value = ScalarValue::Utf8(Some(s.clone())).cast_to(ty).ok()?;
            (!value.is_null()).then_some(value)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn statement(sql: &str) -> DfStatement {
        DFParser::parse_sql(sql).unwrap().pop_front().unwrap()
    }

    #[test]
    fn comparison_literals_become_placeholders() {
        let p = parameterise(&statement(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 42 AND (name = 'x' OR 7 < b)",
        ))
        .unwrap();
        assert_eq!(
            p.shape,
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1 AND (name = $2 OR $3 < b)"
        );
        // The same shape for other values.
        let q = parameterise(&statement(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 9 AND (name = 'y' OR 1 < b)",
        ))
        .unwrap();
        assert_eq!(p.shape, q.shape);
    }

    #[test]
    fn other_literals_stay() {
        for sql in [
            "SELECT 1",
            "SELECT a FROM t WHERE a + 1 = 2",
            "SELECT a FROM t WHERE a = -1",
            "SELECT a FROM t WHERE a = $1",
            "SELECT $1, a FROM t WHERE a = 1",
            "SELECT a FROM t WHERE a IN (1, 2)",
            "SELECT a FROM t ORDER BY 1",
        ] {
            assert!(parameterise(&statement(sql)).is_none(), "{sql}");
        }
        // A dollar sign inside a string is no placeholder.
        let p = parameterise(&statement("SELECT a FROM t WHERE a = 'US$'")).unwrap();
        assert_eq!(p.shape, "SELECT a FROM t WHERE a = $1");
        // Only the comparison's literal moves; the projection and LIMIT keep theirs.
        let p = parameterise(&statement("SELECT 1, a FROM t WHERE a = 5 LIMIT 3")).unwrap();
        assert_eq!(p.shape, "SELECT 1, a FROM t WHERE a = $1 LIMIT 3");
    }

    #[test]
    fn values_bind_only_where_they_fit_exactly() {
        let number = |n: &str| Literal::Number(n.into());
        let text = |s: &str| Literal::Text(s.into());
        assert_eq!(
            value_of(&number("42"), &DataType::Int32),
            Some(ScalarValue::Int32(Some(42)))
        );
        assert_eq!(value_of(&number("3000000000"), &DataType::Int32), None);
        assert_eq!(value_of(&number("1.5"), &DataType::Int64), None);
        assert_eq!(value_of(&text("5"), &DataType::Int64), None);
        assert_eq!(
            value_of(&number("1.5"), &DataType::Float64),
            Some(ScalarValue::Float64(Some(1.5)))
        );
        assert!(value_of(&text("2024-02-30"), &DataType::Date32).is_none());
        assert!(value_of(&text("2024-02-28"), &DataType::Date32).is_some());
        assert_eq!(value_of(&number("1.5"), &DataType::Decimal128(10, 0)), None);
        assert_eq!(
            value_of(&number("100.5"), &DataType::Decimal128(15, 2)),
            Some(ScalarValue::Decimal128(Some(10050), 15, 2))
        );
        assert_eq!(
            value_of(&number("1.005"), &DataType::Decimal128(15, 2)),
            None
        );
        assert_eq!(value_of(&number("1e3"), &DataType::Decimal128(15, 2)), None);
        assert_eq!(
            value_of(&number("123456"), &DataType::Decimal128(5, 2)),
            None
        );
    }
}

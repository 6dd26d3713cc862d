//! LIKE patterns with an `ESCAPE` character other than backslash: once
//! parameters are bound, patterns are written again with backslash escapes,
//! which every source (and DataFusion itself) understands.

use datafusion::scalar::ScalarValue;

/// PostgreSQL allows any `LIKE ... ESCAPE 'c'`; DataFusion executes only the
/// backslash. Once parameters are bound and constants folded, a pattern is a
/// literal: this rule re-escapes it with backslashes (SQLAlchemy lists schemas
/// with `NOT LIKE 'pg/_%' ESCAPE '/'`).
#[derive(Debug, Default)]
pub(crate) struct LikeEscapeRule;

impl datafusion::optimizer::OptimizerRule for LikeEscapeRule {
    fn name(&self) -> &str {
        "meshgate_like_escape"
    }

    fn apply_order(&self) -> Option<datafusion::optimizer::ApplyOrder> {
        Some(datafusion::optimizer::ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> datafusion::error::Result<
        datafusion::common::tree_node::Transformed<datafusion::logical_expr::LogicalPlan>,
    > {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        use datafusion::logical_expr::Expr;
        plan.map_expressions(|expr| {
            expr.transform_up(|e| {
                let Expr::Like(like) = &e else {
                    return Ok(Transformed::no(e));
                };
                let Some(escape) = like.escape_char.filter(|c| *c != '\\') else {
                    return Ok(Transformed::no(e));
                };
                // Keep the literal's string type: LIKE needs both sides alike.
                let pattern = match like.pattern.as_ref() {
                    Expr::Literal(ScalarValue::Utf8(Some(p)), _) => {
                        ScalarValue::Utf8(Some(reescape(p, escape)))
                    }
                    Expr::Literal(ScalarValue::Utf8View(Some(p)), _) => {
                        ScalarValue::Utf8View(Some(reescape(p, escape)))
                    }
                    Expr::Literal(ScalarValue::LargeUtf8(Some(p)), _) => {
                        ScalarValue::LargeUtf8(Some(reescape(p, escape)))
                    }
                    _ => return Ok(Transformed::no(e)),
                };
                let mut like = like.clone();
                like.pattern = Box::new(Expr::Literal(pattern, None));
                like.escape_char = None;
                Ok(Transformed::yes(Expr::Like(like)))
            })
        })
    }
}

/// Rewrite a LIKE pattern escaped with `escape` into the backslash form.
fn reescape(pattern: &str, escape: char) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            match chars.next() {
                Some(n @ ('%' | '_')) => {
                    out.push('\\');
                    out.push(n);
                }
                Some('\\') => out.push_str("\\\\"),
                Some(n) => out.push(n),
                None => {}
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_reescaped() {
        assert_eq!(reescape("pg/_%", '/'), "pg\\_%");
        assert_eq!(reescape("a//b", '/'), "a/b");
        assert_eq!(reescape("a\\b", '/'), "a\\\\b");
    }
}

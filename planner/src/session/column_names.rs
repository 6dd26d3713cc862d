//! Output columns PostgreSQL names alike (`SELECT 1, 1`, `count(*)` twice)
//! but DataFusion refuses to: each statement's unnamed duplicates get
//! distinct names before planning.

/// PostgreSQL lets a SELECT list repeat an output name (`SELECT NULL, NULL`,
/// as psqlODBC's catalog queries do); DataFusion needs unique names. Repeated
/// unnamed items get PostgreSQL's own `?column?` name, numbered. And like
/// PostgreSQL, an unnamed function call in the outer SELECT list is named
/// after the function (`count(*)` → `count`), when that name is free.
pub(crate) fn name_duplicate_columns(statement: &mut datafusion::sql::sqlparser::ast::Statement) {
    use datafusion::sql::sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, Statement};
    fn fix_query(query: &mut Query, outer: bool) {
        fix_set_expr(query.body.as_mut(), outer);
    }
    fn name_functions(items: &mut [SelectItem]) {
        let taken: std::collections::HashSet<String> = items
            .iter()
            .filter_map(|i| match i {
                SelectItem::UnnamedExpr(Expr::Identifier(id)) => Some(id.value.to_lowercase()),
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(ids)) => {
                    ids.last().map(|id| id.value.to_lowercase())
                }
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_lowercase()),
                _ => None,
            })
            .collect();
        let mut counts = std::collections::HashMap::new();
        for item in items.iter() {
            if let SelectItem::UnnamedExpr(Expr::Function(f)) = item {
                if f.name.0.len() == 1 {
                    *counts.entry(f.name.to_string().to_lowercase()).or_insert(0) += 1;
                }
            }
        }
        for item in items.iter_mut() {
            if let SelectItem::UnnamedExpr(Expr::Function(f)) = item {
                let name = f.name.to_string().to_lowercase();
                if f.name.0.len() == 1
                    && counts.get(&name) == Some(&1)
                    && !taken.contains(&name)
                    && !name.starts_with('"')
                {
                    *item = SelectItem::ExprWithAlias {
                        expr: Expr::Function(f.clone()),
                        alias: Ident::with_quote('"', name),
                    };
                }
            }
        }
    }
    fn fix_set_expr(body: &mut SetExpr, outer: bool) {
        match body {
            SetExpr::Select(select) => {
                if outer {
                    name_functions(&mut select.projection);
                }
                let mut seen = std::collections::HashSet::new();
                let mut n = 0;
                for item in select.projection.iter_mut() {
                    let name = match item {
                        SelectItem::UnnamedExpr(e) => e.to_string(),
                        SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                        _ => continue,
                    };
                    if !seen.insert(name) {
                        if let SelectItem::UnnamedExpr(e) = item {
                            n += 1;
                            let alias = datafusion::sql::sqlparser::ast::Ident::with_quote(
                                '"',
                                format!("?column?{n}"),
                            );
                            *item = SelectItem::ExprWithAlias {
                                expr: e.clone(),
                                alias,
                            };
                        }
                    }
                }
            }
            SetExpr::Query(q) => fix_query(q, outer),
            SetExpr::SetOperation { left, right, .. } => {
                fix_set_expr(left, outer);
                fix_set_expr(right, false);
            }
            _ => {}
        }
    }
    if let Statement::Query(query) = statement {
        fix_query(query, true);
    }
}

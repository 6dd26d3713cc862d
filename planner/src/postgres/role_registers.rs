//! SQL that names roles, made to mean what it means in PostgreSQL.
//!
//! The role registers `current_user`, `session_user`, `current_role` and
//! `user` name the session's user and, as in PostgreSQL, the result column
//! they make (`SELECT current_user` returns a column `current_user`, which
//! clients read by name). The role tables meshgate adds to `pg_catalog`
//! (`pg_user`, `pg_group`, see `pg_roles`) resolve there when named alone.

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The parenthesis-less role registers and the column name PostgreSQL
/// gives each.
const ROLE_REGISTERS: &[&str] = &["current_user", "session_user", "current_role", "user"];

/// The register `expr` is, as written by the user.
fn role_register(expr: &ast::Expr) -> Option<&'static str> {
    let name = match expr {
        ast::Expr::Function(f) if matches!(f.args, ast::FunctionArguments::None) => {
            f.name.to_string().to_ascii_lowercase()
        }
        ast::Expr::Identifier(id) if id.quote_style.is_none() => id.value.to_ascii_lowercase(),
        _ => return None,
    };
    ROLE_REGISTERS.iter().find(|r| **r == name).copied()
}

/// Whether `sql` may mention a role register (a cheap test on the text).
fn mentions_register(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower.match_indices("user").any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + 4..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !word(after)
            && (!word(before)
                || lower[..at].ends_with("current_")
                || lower[..at].ends_with("session_"))
    }) || lower.contains("current_role")
}

/// Give each unnamed role register of a SELECT list its PostgreSQL column
/// name (`SELECT current_user` → a column `current_user`), make every
/// register plannable (the session's `session_user()`), and resolve the
/// role tables the built-in catalog lacks in `pg_catalog`.
///
/// `statements` come from the compatibility parser, which already renamed
/// `current_user` to `session_user`; `sql` is the text they were parsed
/// from, parsed again here (only when it mentions a register) to see what
/// the user wrote.
pub(crate) fn rewrite_role_references(sql: &str, statements: &mut [ast::Statement]) {
    qualify_role_tables(statements);
    if !mentions_register(sql) {
        return;
    }
    let mut original = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap_or_default();
    if original.len() != statements.len() {
        original.clear();
    }
    for (i, statement) in statements.iter_mut().enumerate() {
        if let (Some(ast::Statement::Query(written)), ast::Statement::Query(rewritten)) =
            (original.get(i), &mut *statement)
        {
            let names: Vec<Option<&'static str>> = first_select(written)
                .map(|s| {
                    s.projection
                        .iter()
                        .map(|item| match item {
                            ast::SelectItem::UnnamedExpr(e) => role_register(e),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Some(select) = first_select_mut(rewritten) {
                if select.projection.len() == names.len() {
                    for (item, name) in select.projection.iter_mut().zip(names) {
                        if let (Some(name), ast::SelectItem::UnnamedExpr(e)) = (name, &*item) {
                            *item = ast::SelectItem::ExprWithAlias {
                                expr: e.clone(),
                                alias: ast::Ident::with_quote('"', name),
                            };
                        }
                    }
                }
            }
        }
        let _ = ast::visit_expressions_mut(statement, |e| {
            if role_register(e).is_some() {
                *e = ast::Expr::Function(ast::Function {
                    name: ast::ObjectName::from(vec![ast::Ident::new("session_user")]),
                    uses_odbc_syntax: false,
                    parameters: ast::FunctionArguments::None,
                    args: ast::FunctionArguments::None,
                    filter: None,
                    null_treatment: None,
                    over: None,
                    within_group: vec![],
                });
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
}

/// `pg_user`, `pg_group` and `pg_stat_activity`, which the built-in catalog
/// lacks, resolve in `pg_catalog` when named alone, as every catalog table
/// does.
fn qualify_role_tables(statements: &mut [ast::Statement]) {
    for statement in statements {
        let _ = ast::visit_relations_mut(statement, |name| {
            if let [ast::ObjectNamePart::Identifier(id)] = name.0.as_slice() {
                let table = id.value.to_ascii_lowercase();
                let ours = matches!(table.as_str(), "pg_user" | "pg_group" | "pg_stat_activity");
                if id.quote_style.is_none() && ours {
                    *name = ast::ObjectName::from(vec![
                        ast::Ident::new("pg_catalog"),
                        ast::Ident::new(table),
                    ]);
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
}

/// The SELECT whose list names a query's columns (the first of a set operation).
fn first_select(query: &ast::Query) -> Option<&ast::Select> {
    let mut body = query.body.as_ref();
    loop {
        match body {
            ast::SetExpr::Select(select) => return Some(select),
            ast::SetExpr::Query(q) => body = q.body.as_ref(),
            ast::SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            _ => return None,
        }
    }
}

fn first_select_mut(query: &mut ast::Query) -> Option<&mut ast::Select> {
    let mut body = query.body.as_mut();
    loop {
        match body {
            ast::SetExpr::Select(select) => return Some(select),
            ast::SetExpr::Query(q) => body = q.body.as_mut(),
            ast::SetExpr::SetOperation { left, .. } => body = left.as_mut(),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        // What the compatibility parser does first.
        let _ = ast::visit_expressions_mut(&mut statements, |e| {
            if let ast::Expr::Function(f) = e {
                if f.name.to_string().eq_ignore_ascii_case("current_user") {
                    f.name = ast::ObjectName::from(vec![ast::Ident::new("session_user")]);
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        rewrite_role_references(sql, &mut statements);
        statements[0].to_string()
    }

    #[test]
    fn role_registers_name_their_columns() {
        assert_eq!(
            named("SELECT current_user, session_user, current_role, user, current_user AS me"),
            "SELECT session_user AS \"current_user\", session_user AS \"session_user\", \
             session_user AS \"current_role\", session_user AS \"user\", session_user AS me"
        );
        assert_eq!(
            named("SELECT 1 FROM t WHERE owner = current_role"),
            "SELECT 1 FROM t WHERE owner = session_user"
        );
        assert_eq!(named("SELECT users FROM t"), "SELECT users FROM t");
        assert_eq!(
            named("SELECT usename FROM pg_user"),
            "SELECT usename FROM pg_catalog.pg_user"
        );
        assert!(!mentions_register("SELECT usename FROM pg_user"));
        assert!(mentions_register("select CURRENT_USER"));
    }
}

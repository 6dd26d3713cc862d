//! Parsing SQL text into statements. Every session parses the PostgreSQL
//! dialect and checks each statement against the complexity limits before
//! anything else walks it. Sessions that speak PostgreSQL (pgwire) also get
//! the compatibility parser and rewrites of [`crate::postgres`]; Flight SQL
//! and HTTP sessions get DataFusion's parser alone, with `?` placeholders
//! numbered (`placeholders`).

use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use super::column_names::name_duplicate_columns;
use super::QuerySession;
use crate::QueryResult;

impl QuerySession {
    /// Split SQL text into statements. DataFusion's own statement forms
    /// (e.g. `RESET`) are tried when the PostgreSQL parser refuses.
    pub fn parse(&self, sql: &str) -> QueryResult<Vec<DfStatement>> {
        let parser = self.postgres.as_deref();
        crate::limits::parse_guarded(sql, || parse_sql(parser, sql))
    }
}

/// Parse `sql` (see [`QuerySession::parse`]) with PostgreSQL's rewrites when
/// `postgres` is given.
fn parse_sql(
    postgres: Option<&PostgresCompatibilityParser>,
    sql: &str,
) -> QueryResult<Vec<DfStatement>> {
    let sql = match crate::access::admin_statements::rewrite_role_grant(sql) {
        Some(rewritten) => std::borrow::Cow::Owned(rewritten),
        None if postgres.is_some() => crate::postgres::rewrites::rewrite_known_probes(sql),
        None => std::borrow::Cow::Borrowed(sql),
    };
    let sql = sql.as_ref();
    let mut statements = match postgres {
        Some(parser) => match parser.parse(sql) {
            Ok(mut statements) => {
                for s in statements.iter_mut() {
                    crate::limits::check_statement(s)?;
                }
                crate::postgres::rewrite_statements(sql, &mut statements);
                statements
                    .into_iter()
                    .map(|s| DfStatement::Statement(Box::new(s)))
                    .collect()
            }
            Err(pg_err) => checked(datafusion_parse(sql).map_err(|_| pg_err)?)?,
        },
        None => {
            let sql = super::placeholders::number_question_marks(sql)?;
            checked(datafusion_parse(&sql)?)?
        }
    };
    for statement in statements.iter_mut() {
        if let DfStatement::Statement(s) = statement {
            name_duplicate_columns(s);
        }
    }
    Ok(statements)
}

/// DataFusion's parser, PostgreSQL dialect.
fn datafusion_parse(sql: &str) -> datafusion::error::Result<Vec<DfStatement>> {
    let dialect = PostgreSqlDialect {};
    let statements = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()
        .and_then(|mut p| p.parse_statements())?;
    Ok(statements.into_iter().collect())
}

/// `statements`, each checked against the complexity limits.
fn checked(mut statements: Vec<DfStatement>) -> QueryResult<Vec<DfStatement>> {
    for statement in statements.iter_mut() {
        if let DfStatement::Statement(s) = statement {
            crate::limits::check_statement(s)?;
        }
    }
    Ok(statements)
}

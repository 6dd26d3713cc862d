//! The SQL text `system.runtime.queries` and `pg_stat_activity` show.
//!
//! Who sees it: its user and admins (the tables filter rows). What they
//! see: the text cut like an audit record's, with source secrets redacted;
//! and when the statement reads a table the policy masks (or restricts to
//! some columns) for its user, every literal replaced by `?`, so a value
//! compared with a masked column (`WHERE ssn = '123-45-6789'`) is not shown
//! to an admin watching the running queries. The audit log keeps the full
//! text.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// `sql` as the running-query tables show it; `hide_literals` when the
/// statement reads masked columns.
pub fn shown_sql(sql: &str, hide_literals: bool) -> String {
    let text = if hide_literals {
        without_literals(sql)
    } else {
        sql.to_owned()
    };
    let text = crate::audit::audit_text(&text);
    meshgate_connectors::secrets::redact(&text).into_owned()
}

/// `sql` with every literal replaced by `?`; text that does not tokenize
/// is not shown at all.
fn without_literals(sql: &str) -> String {
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return "(not shown: the statement reads masked columns)".into();
    };
    tokens
        .into_iter()
        .map(|token| match token {
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::DollarQuotedString(_) => "?".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_hidden_only_when_asked() {
        let sql = "SELECT name FROM t WHERE ssn = '123-45-6789' AND age > 40";
        assert_eq!(shown_sql(sql, false), sql);
        assert_eq!(
            shown_sql(sql, true),
            "SELECT name FROM t WHERE ssn = ? AND age > ?"
        );
        assert_eq!(shown_sql("SELECT $$secret$$", true), "SELECT ?");
    }
}

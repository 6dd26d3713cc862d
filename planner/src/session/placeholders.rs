//! `?` placeholders, as JDBC, ODBC and many ADBC clients write them, for
//! sessions that do not speak PostgreSQL (Flight SQL, SQL over HTTP): each
//! `?` becomes `$n`, numbered in the order the placeholders appear in the
//! text, so a client's first value binds the first `?`. The text is
//! tokenized first, so a `?` inside a string, a quoted name or a comment
//! is left alone. A statement mixing `?` with `$n` is refused: which value
//! goes where would be a guess. (PostgreSQL's JSON operators `?`, `?|` and
//! `?&` do not exist in these sessions.)

use std::borrow::Cow;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::{QueryError, QueryResult};

/// `sql` with its `?` placeholders numbered (see the module's doc).
pub(crate) fn number_question_marks(sql: &str) -> QueryResult<Cow<'_, str>> {
    if !sql.contains('?') {
        return Ok(Cow::Borrowed(sql));
    }
    // Text that does not tokenize is left for the parser to report.
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return Ok(Cow::Borrowed(sql));
    };
    let marks: Vec<Location> = tokens
        .iter()
        .filter(|t| t.token == Token::Question)
        .map(|t| t.span.start)
        .collect();
    if marks.is_empty() {
        return Ok(Cow::Borrowed(sql));
    }
    let numbered = tokens
        .iter()
        .any(|t| matches!(&t.token, Token::Placeholder(p) if p.starts_with('$')));
    if numbered {
        return Err(QueryError::Syntax(
            "a statement uses either `?` placeholders or numbered ones (`$1`), not both".into(),
        ));
    }
    let offsets: Vec<usize> = marks.iter().filter_map(|l| offset(sql, *l)).collect();
    let mut out = String::with_capacity(sql.len() + marks.len() * 2);
    let mut from = 0;
    for (i, at) in offsets.into_iter().enumerate() {
        out.push_str(&sql[from..at]);
        out.push_str(&format!("${}", i + 1));
        from = at + 1;
    }
    out.push_str(&sql[from..]);
    Ok(Cow::Owned(out))
}

/// The byte offset of a tokenizer location (1-based line and character).
fn offset(sql: &str, at: Location) -> Option<usize> {
    let line_start: usize = sql
        .split_inclusive('\n')
        .take((at.line as usize).checked_sub(1)?)
        .map(str::len)
        .sum();
    let line = &sql[line_start..];
    line.char_indices()
        .nth((at.column as usize).checked_sub(1)?)
        .map(|(i, _)| line_start + i)
        .filter(|&i| sql.as_bytes().get(i) == Some(&b'?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_are_numbered_in_text_order() {
        let numbered = |sql| number_question_marks(sql).map(|s| s.into_owned());
        assert_eq!(
            numbered("SELECT ? AS a FROM t WHERE b = ? AND c IN (?, ?) LIMIT ?").unwrap(),
            "SELECT $1 AS a FROM t WHERE b = $2 AND c IN ($3, $4) LIMIT $5"
        );
        assert_eq!(
            numbered("SELECT 'é?', \"?\" -- ?\nFROM t WHERE a = ?\n  AND b = ?").unwrap(),
            "SELECT 'é?', \"?\" -- ?\nFROM t WHERE a = $1\n  AND b = $2"
        );
        assert_eq!(
            numbered("SELECT * FROM t WHERE a = $2 AND b = $1").unwrap(),
            "SELECT * FROM t WHERE a = $2 AND b = $1"
        );
        assert!(matches!(
            numbered("SELECT * FROM t WHERE a = ? AND b = $1"),
            Err(QueryError::Syntax(_))
        ));
    }
}

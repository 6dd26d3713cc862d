//! Limits that keep one statement from taking the gateway down.
//!
//! - [`RuntimeLimits`]: the memory budget every running query shares (a
//!   fair spill pool: sorts, joins and aggregates spill to a temporary
//!   directory before they fail with 53200), the most one query may hold of
//!   it (see `query_memory`), how much may be spilled, and the longest any
//!   statement may run. How many queries run at once is `admission`'s.
//! - [`check_statement`]: how deeply expressions may nest and how many set
//!   operations one query may chain, checked on the parsed statement before
//!   anything recursive (planning, display, audit) walks it. A statement over
//!   a limit fails with 54001 instead of exhausting a thread's stack.
//!   A chain `a AND b AND c ...` nests one level per term (DataFusion
//!   keeps such chains left-deep whatever shape they arrive in), so it
//!   counts as deep as it is long: write long value lists as `IN (...)`.
//! - [`parse_guarded`]: parsing and the compatibility rewrites walk the tree
//!   before it can be checked, so a statement with many operators is parsed
//!   on a thread with a large stack, and one with more than
//!   [`MAX_OPERATORS`] is refused from its tokens alone.

use std::ops::ControlFlow;
use std::time::Duration;

use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, Statement, VisitMut, VisitorMut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::{QueryError, QueryResult};

/// Deepest expression nesting a statement may have.
pub const MAX_EXPRESSION_DEPTH: usize = 256;
/// Most set operations (`UNION`, `INTERSECT`, `EXCEPT`) one query may chain.
pub const MAX_SET_OPERATIONS: usize = 512;

/// Most operators (and set operations) one SQL text may hold; beyond it
/// the text is refused before it is parsed.
pub const MAX_OPERATORS: usize = 10_000;
/// Texts with more operators than this are parsed on a large stack.
const INLINE_OPERATORS: usize = 128;
/// The stack of the thread that parses large statements.
const PARSE_STACK_BYTES: usize = 256 << 20;

/// Process-wide limits, from `[limits]` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeLimits {
    /// Memory shared by all running queries, in bytes.
    pub memory_bytes: usize,
    /// The most of it one query may hold, in bytes. `None`: no cap of its
    /// own.
    pub query_memory_bytes: Option<usize>,
    /// Most bytes of spill files on disk at once.
    pub spill_bytes: u64,
    /// The longest a statement may run; a session's `statement_timeout`
    /// may only shorten it. `None`: no server-side limit.
    pub statement_timeout: Option<Duration>,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        Self {
            memory_bytes: default_memory_bytes(),
            query_memory_bytes: None,
            spill_bytes: 16 << 30,
            statement_timeout: Some(Duration::from_secs(30 * 60)),
        }
    }
}

/// Half of the machine's memory (4 GiB where it cannot be read).
fn default_memory_bytes() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        });
    match total_kib {
        Some(kib) => usize::try_from(kib * 1024 / 2).unwrap_or(usize::MAX),
        None => 4 << 30,
    }
}

/// A PostgreSQL-style duration: a bare number is milliseconds; units `ms`,
/// `s`, `min`, `h` and `d` (`1500`, `2s`, `5min`, `1h`, `7d`).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim().trim_matches('\'').to_ascii_lowercase();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: f64 = num.parse().map_err(|_| "not a number".to_string())?;
    let ms = match unit.trim() {
        "" | "ms" => num,
        "s" => num * 1_000.0,
        "min" => num * 60_000.0,
        "h" => num * 3_600_000.0,
        "d" => num * 86_400_000.0,
        other => return Err(format!("unknown unit `{other}`")),
    };
    if ms < 0.0 {
        return Err("must not be negative".into());
    }
    Ok(Duration::from_micros((ms * 1000.0) as u64))
}

/// Parse a byte size such as `4GiB`, `512MiB`, `100MB` or `1048576`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. \"4GiB\", \"512MiB\")"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => return Err(format!("unknown size unit `{other}` in `{text}`")),
    };
    Ok((number * factor as f64) as u64)
}

/// Run `parse` (which parses `sql` and checks each statement with
/// [`check_statement`]) where its recursion cannot overflow a stack.
pub(crate) fn parse_guarded<T: Send>(
    sql: &str,
    parse: impl FnOnce() -> QueryResult<T> + Send,
) -> QueryResult<T> {
    let operators = count_operators(sql);
    if operators > MAX_OPERATORS {
        return Err(too_complex(format!(
            "it holds {operators} operators; at most {MAX_OPERATORS} are allowed"
        )));
    }
    if operators <= INLINE_OPERATORS {
        return parse();
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("meshgate-parse".into())
            .stack_size(PARSE_STACK_BYTES)
            .spawn_scoped(scope, parse)
            .map_err(|e| QueryError::Internal(format!("cannot start a parser thread: {e}")))?
            .join()
            .unwrap_or_else(|_| Err(QueryError::Internal("the parser failed".into())))
    })
}

/// Binary operators and set operations in `sql`, from its tokens (0 when it
/// does not tokenize: the parser then reports the error).
fn count_operators(sql: &str) -> usize {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return 0;
    };
    tokens
        .iter()
        .filter(|t| match t {
            Token::Word(w) => matches!(
                w.keyword,
                Keyword::AND
                    | Keyword::OR
                    | Keyword::NOT
                    | Keyword::UNION
                    | Keyword::INTERSECT
                    | Keyword::EXCEPT
                    | Keyword::IS
                    | Keyword::LIKE
                    | Keyword::ILIKE
            ),
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::DoubleColon
            | Token::Caret
            | Token::Ampersand
            | Token::Pipe
            | Token::Arrow
            | Token::LongArrow
            | Token::LBracket => true,
            _ => false,
        })
        .count()
}

/// Check one parsed statement against the complexity limits.
pub(crate) fn check_statement(statement: &mut Statement) -> QueryResult<()> {
    let mut guard = Complexity::default();
    if let ControlFlow::Break(err) = statement.visit(&mut guard) {
        return Err(err);
    }
    Ok(())
}

#[derive(Default)]
struct Complexity {
    depth: usize,
}

impl VisitorMut for Complexity {
    type Break = QueryError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<QueryError> {
        // Count the chain before the visitor descends into it: a long chain
        // of set operations nests one level per operation.
        let operations = set_operations(&query.body);
        if operations > MAX_SET_OPERATIONS {
            return ControlFlow::Break(too_complex(format!(
                "a query chains {operations} set operations (UNION, INTERSECT, EXCEPT); \
                 at most {MAX_SET_OPERATIONS} are allowed"
            )));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<QueryError> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            return ControlFlow::Break(too_complex(format!(
                "expressions nest more than {MAX_EXPRESSION_DEPTH} levels deep"
            )));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<QueryError> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

fn too_complex(detail: String) -> QueryError {
    QueryError::TooComplex(format!("statement is too complex: {detail}"))
}

/// Set operations in a query body, counted without recursion along the
/// left spine (where parsers put long chains) and with it on the right.
fn set_operations(body: &SetExpr) -> usize {
    let mut count = 0;
    let mut node = body;
    while let SetExpr::SetOperation { left, right, .. } = node {
        count += 1;
        if let SetExpr::SetOperation { .. } = right.as_ref() {
            count += set_operations(right);
        }
        if count > MAX_SET_OPERATIONS {
            break;
        }
        node = left;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn check(sql: &str) -> QueryResult<Statement> {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        check_statement(&mut statement).map(|_| statement)
    }

    fn chain(term: &str, op: &str, n: usize) -> String {
        vec![term; n].join(op)
    }

    #[test]
    fn long_and_or_chains_count_as_deep_as_they_are_long() {
        let long = format!("SELECT 1 WHERE {}", chain("x = 1", " OR ", 1_000));
        assert_eq!(check(&long).unwrap_err().sqlstate(), "54001");
        let short = format!("SELECT 1 WHERE {}", chain("x = 1", " OR ", 100));
        assert!(check(&short).is_ok());
        let list = format!("SELECT 1 WHERE x IN ({})", chain("1", ", ", 20_000));
        assert!(check(&list).is_ok());
    }

    #[test]
    fn deep_arithmetic_is_refused_with_54001() {
        let sql = format!("SELECT {}", chain("1", "+", 2_000));
        let err = check(&sql).unwrap_err();
        assert_eq!(err.sqlstate(), "54001", "{err}");
        assert!(check(&format!("SELECT {}", chain("1", "+", 100))).is_ok());
    }

    #[test]
    fn long_set_operation_chains_are_refused() {
        let sql = chain("SELECT 1", " UNION ALL ", 2_500);
        assert_eq!(check(&sql).unwrap_err().sqlstate(), "54001");
        assert!(check(&chain("SELECT 1", " UNION ALL ", 100)).is_ok());
    }

    #[test]
    fn huge_texts_are_refused_from_their_tokens_and_large_ones_parse_aside() {
        let huge = format!("SELECT {}", chain("1", "+", MAX_OPERATORS + 2));
        let err = parse_guarded(&huge, || -> QueryResult<()> { panic!("parsed") }).unwrap_err();
        assert_eq!(err.sqlstate(), "54001");
        let large = format!("SELECT 1 WHERE {}", chain("x = 1", " AND ", 5_000));
        let name = parse_guarded(&large, || {
            Ok(std::thread::current().name().map(str::to_owned))
        })
        .unwrap();
        assert_eq!(name.as_deref(), Some("meshgate-parse"));
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_bytes("256 MiB").unwrap(), 256 << 20);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }
}

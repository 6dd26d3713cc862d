//! One error type for everything a query can run into, classified so each front
//! end can map it once: to a SQLSTATE on pgwire, to a gRPC code on Flight SQL.
//!
//! DataFusion reports most problems as strings inside a few broad variants;
//! [`QueryError::from`] finds the root cause and sorts it into the classes
//! users act on differently (fix the SQL, fix a name, fix the data, retry
//! later, call an admin). The message keeps DataFusion's text, which names the
//! object concerned.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use thiserror::Error;

pub type QueryResult<T> = Result<T, QueryError>;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QueryError {
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    UndefinedTable(String),
    #[error("{0}")]
    UndefinedSchema(String),
    #[error("{0}")]
    UndefinedColumn(String),
    #[error("{0}")]
    UndefinedFunction(String),
    #[error("{0}")]
    UndefinedObject(String),
    #[error("{0}")]
    UndefinedDatabase(String),
    #[error("{0}")]
    AmbiguousColumn(String),
    #[error("{0}")]
    UndefinedCursor(String),
    #[error("{0}")]
    DuplicateCursor(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    DuplicateObject(String),
    /// An object cannot go while others depend on it.
    #[error("{0}")]
    DependentObjects(String),
    /// A change based on a stale version (of the policy).
    #[error("{0}")]
    Conflict(String),
    /// The statement would change data or schema; meshgate only reads.
    #[error("{0}")]
    ReadOnly(String),
    /// A data product's source no longer serves the schema it promises.
    #[error("{0}")]
    ContractBroken(String),
    #[error("{0}")]
    FeatureNotSupported(String),
    /// A value is wrong for its type or operation (division by zero, bad cast, overflow).
    #[error("{message}")]
    Data {
        sqlstate: &'static str,
        message: String,
    },
    #[error("{0}")]
    InvalidParameter(String),
    /// A semantic error in a well-formed statement (type mismatch, bad GROUP BY, ...).
    #[error("{0}")]
    Semantic(String),
    /// A source (file store, database) failed; the message names the catalog.
    #[error("{0}")]
    Source(String),
    #[error("canceling statement due to user request")]
    Cancelled,
    /// `pg_terminate_backend` ended the statement's connection (57P01);
    /// the pgwire front end closes the connection after saying so.
    #[error("terminating connection due to administrator command")]
    Terminated,
    #[error("canceling statement due to statement timeout")]
    Timeout,
    /// A statement other than COMMIT/ROLLBACK after an error in a transaction block.
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    TransactionAborted,
    /// Memory or spill space ran out; the message names the limit
    /// (`[limits] memory`, `[limits] query_memory`, `[limits] spill`) and
    /// the operator that asked for more.
    #[error("{0}")]
    ResourcesExhausted(String),
    /// A concurrency limit's queue is full or the wait for a slot timed out;
    /// the message names the limit.
    #[error("{0}")]
    TooManyQueries(String),
    /// A statement over the complexity limits (expression depth, set
    /// operations, operators).
    #[error("{0}")]
    TooComplex(String),
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    /// The PostgreSQL SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            QueryError::Syntax(_) => "42601",
            QueryError::UndefinedTable(_) => "42P01",
            QueryError::UndefinedSchema(_) => "3F000",
            QueryError::UndefinedColumn(_) => "42703",
            QueryError::UndefinedFunction(_) => "42883",
            QueryError::UndefinedObject(_) => "42704",
            QueryError::UndefinedDatabase(_) => "3D000",
            QueryError::AmbiguousColumn(_) => "42702",
            QueryError::UndefinedCursor(_) => "34000",
            QueryError::DuplicateCursor(_) => "42P03",
            QueryError::PermissionDenied(_) => "42501",
            QueryError::DuplicateObject(_) => "42710",
            QueryError::DependentObjects(_) => "2BP01",
            QueryError::Conflict(_) => "40001",
            QueryError::ReadOnly(_) => "25006",
            QueryError::ContractBroken(_) => "55000",
            QueryError::FeatureNotSupported(_) => "0A000",
            QueryError::Data { sqlstate, .. } => sqlstate,
            QueryError::InvalidParameter(_) => "22023",
            QueryError::Semantic(_) => "42804",
            QueryError::Source(_) => "08006",
            QueryError::Cancelled | QueryError::Timeout => "57014",
            QueryError::Terminated => "57P01",
            QueryError::TransactionAborted => "25P02",
            QueryError::ResourcesExhausted(_) => "53200",
            QueryError::TooManyQueries(_) => "53300",
            QueryError::TooComplex(_) => "54001",
            QueryError::Internal(_) => "XX000",
        }
    }

    fn data(sqlstate: &'static str, message: impl Into<String>) -> Self {
        QueryError::Data {
            sqlstate,
            message: message.into(),
        }
    }
}

impl From<DataFusionError> for QueryError {
    fn from(err: DataFusionError) -> Self {
        classify(&err)
    }
}

impl From<ParserError> for QueryError {
    fn from(err: ParserError) -> Self {
        QueryError::Syntax(parser_message(&err))
    }
}

fn parser_message(err: &ParserError) -> String {
    match err {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => "statement is nested too deeply".to_owned(),
    }
}

fn classify(err: &DataFusionError) -> QueryError {
    match err {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            classify(inner)
        }
        DataFusionError::Shared(inner) => classify(inner),
        DataFusionError::Collection(errs) => errs
            .first()
            .map(classify)
            .unwrap_or_else(|| QueryError::Internal("empty error collection".into())),
        DataFusionError::SQL(parser, _) => QueryError::Syntax(parser_message(parser)),
        DataFusionError::SchemaError(schema_err, _) => {
            use datafusion::common::SchemaError;
            let message = strip_prefix(&err.to_string());
            match schema_err.as_ref() {
                SchemaError::FieldNotFound { .. } => QueryError::UndefinedColumn(message),
                SchemaError::AmbiguousReference { .. } => QueryError::AmbiguousColumn(message),
                _ => QueryError::Semantic(message),
            }
        }
        DataFusionError::Plan(msg) => classify_plan(msg),
        DataFusionError::NotImplemented(msg) => QueryError::FeatureNotSupported(msg.clone()),
        DataFusionError::ArrowError(arrow, _) => classify_arrow(arrow),
        DataFusionError::ResourcesExhausted(msg) => QueryError::ResourcesExhausted(name_limit(msg)),
        DataFusionError::Execution(msg) => classify_execution(msg),
        DataFusionError::Configuration(msg) => QueryError::InvalidParameter(msg.clone()),
        DataFusionError::ObjectStore(e) => QueryError::Source(format!("storage: {e}")),
        DataFusionError::IoError(e) => QueryError::Source(format!("I/O: {e}")),
        DataFusionError::ParquetError(e) => QueryError::Source(format!("Parquet: {e}")),
        DataFusionError::External(e) => {
            if let Some(df) = e.downcast_ref::<DataFusionError>() {
                classify(df)
            } else if let Some(arrow) = e.downcast_ref::<ArrowError>() {
                classify_arrow(arrow)
            } else if let Some(q) = e.downcast_ref::<QueryError>() {
                q.clone()
            } else {
                QueryError::Source(e.to_string())
            }
        }
        other => QueryError::Internal(strip_prefix(&other.to_string())),
    }
}

fn classify_plan(msg: &str) -> QueryError {
    let lower = msg.to_ascii_lowercase();
    if lower.starts_with("table '") && lower.ends_with("not found") {
        QueryError::UndefinedTable(msg.to_owned())
    } else if lower.contains("failed to resolve schema") {
        QueryError::UndefinedSchema(msg.to_owned())
    } else if lower.starts_with("invalid function") || lower.contains("function not found") {
        QueryError::UndefinedFunction(first_line(msg))
    } else {
        QueryError::Semantic(first_line(msg))
    }
}

fn classify_arrow(err: &ArrowError) -> QueryError {
    match err {
        ArrowError::DivideByZero => QueryError::data("22012", "division by zero"),
        ArrowError::ArithmeticOverflow(m) => QueryError::data("22003", m.clone()),
        ArrowError::CastError(m) | ArrowError::ParseError(m) => {
            QueryError::data("22P02", m.clone())
        }
        ArrowError::ComputeError(m) => QueryError::data("22000", m.clone()),
        ArrowError::ExternalError(e) => {
            if let Some(df) = e.downcast_ref::<DataFusionError>() {
                classify(df)
            } else {
                QueryError::Source(e.to_string())
            }
        }
        other => QueryError::Internal(other.to_string()),
    }
}

fn classify_execution(msg: &str) -> QueryError {
    let lower = msg.to_ascii_lowercase();
    if lower.contains("divide by zero") || lower.contains("division by zero") {
        QueryError::data("22012", "division by zero")
    } else if lower.contains("overflow") {
        QueryError::data("22003", msg.to_owned())
    } else if lower.contains("cannot cast") || lower.contains("cast error") {
        QueryError::data("22P02", msg.to_owned())
    } else {
        QueryError::Internal(msg.to_owned())
    }
}

/// Prefix DataFusion's message (which names the operator) with the
/// configuration key of the limit that ran out, unless it already names one.
fn name_limit(msg: &str) -> String {
    if msg.starts_with("[limits]") {
        msg.to_owned()
    } else if msg.contains("disk space") || msg.contains("spill") {
        format!("[limits] spill: {msg}")
    } else {
        format!("[limits] memory: {msg}")
    }
}

fn first_line(msg: &str) -> String {
    msg.lines().next().unwrap_or(msg).to_owned()
}

/// DataFusion prefixes messages with the variant ("Schema error: ..."); users
/// get the SQLSTATE instead.
fn strip_prefix(msg: &str) -> String {
    for prefix in [
        "Schema error: ",
        "Error during planning: ",
        "Execution error: ",
    ] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    msg.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_errors_are_classified() {
        let e: QueryError = DataFusionError::Plan("table 'a.b.c' not found".into()).into();
        assert_eq!(e.sqlstate(), "42P01");
        let e: QueryError =
            DataFusionError::Plan("Invalid function 'foo'.\nDid you mean 'floor'?".into()).into();
        assert_eq!(e.sqlstate(), "42883");
        assert_eq!(e.to_string(), "Invalid function 'foo'.");
    }

    #[test]
    fn arrow_errors_are_data_errors() {
        let e: QueryError =
            DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None).into();
        assert_eq!(e.sqlstate(), "22012");
        let e: QueryError = DataFusionError::Context(
            "ctx".into(),
            Box::new(DataFusionError::ArrowError(
                Box::new(ArrowError::CastError("bad".into())),
                None,
            )),
        )
        .into();
        assert_eq!(e.sqlstate(), "22P02");
    }

    #[test]
    fn resource_errors_name_the_limit() {
        let e: QueryError =
            DataFusionError::ResourcesExhausted("Failed to allocate 1 MB for SortExec".into())
                .into();
        assert_eq!(e.sqlstate(), "53200");
        assert!(e.to_string().starts_with("[limits] memory: Failed"), "{e}");
        let e: QueryError =
            DataFusionError::ResourcesExhausted("[limits] query_memory: x".into()).into();
        assert_eq!(e.to_string(), "[limits] query_memory: x");
        assert_eq!(QueryError::TooManyQueries("x".into()).sqlstate(), "53300");
    }

    #[test]
    fn unknown_failures_are_internal() {
        let e: QueryError = DataFusionError::Internal("boom".into()).into();
        assert_eq!(e.sqlstate(), "XX000");
    }
}

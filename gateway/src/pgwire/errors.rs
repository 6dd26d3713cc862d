//! Query errors as PostgreSQL ErrorResponses.

use meshgate_planner::QueryError;
use pgwire::error::{ErrorInfo, PgWireError};

pub fn to_pg_error(err: &QueryError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(err)))
}

pub(crate) fn error_info(err: &QueryError) -> ErrorInfo {
    if matches!(err, QueryError::Internal(_)) {
        tracing::warn!(error = %err, "internal error in query");
    }
    // A terminated connection is told so with FATAL: pgwire then closes it.
    let severity = match err {
        QueryError::Terminated => "FATAL",
        _ => "ERROR",
    };
    ErrorInfo::new(
        severity.to_owned(),
        err.sqlstate().to_owned(),
        // No source secret leaves, whatever error carried it.
        meshgate_connectors::secrets::redact(&err.to_string()).into_owned(),
    )
}

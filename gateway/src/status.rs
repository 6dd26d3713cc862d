//! Query errors as gRPC statuses, for every gRPC service the gateway serves
//! (Flight SQL and the admin API), so a client sees the same code and text
//! for the same error whichever service it called.
//!
//! The SQLSTATE leads the message so clients that know PostgreSQL codes can
//! still branch on them; the message is redacted (no source secret reaches
//! a client).

use meshgate_planner::QueryError;
use tonic::{Code, Status};

/// The status a client is answered with for `err`.
pub(crate) fn to_status(err: &QueryError) -> Status {
    let code = match err {
        QueryError::Syntax(_)
        | QueryError::UndefinedColumn(_)
        | QueryError::UndefinedFunction(_)
        | QueryError::AmbiguousColumn(_)
        | QueryError::DuplicateCursor(_)
        | QueryError::InvalidParameter(_)
        | QueryError::Semantic(_)
        | QueryError::Data { .. } => Code::InvalidArgument,
        QueryError::UndefinedTable(_)
        | QueryError::UndefinedSchema(_)
        | QueryError::UndefinedDatabase(_)
        | QueryError::UndefinedObject(_)
        | QueryError::UndefinedCursor(_) => Code::NotFound,
        QueryError::PermissionDenied(_) => Code::PermissionDenied,
        QueryError::DuplicateObject(_) => Code::AlreadyExists,
        QueryError::DependentObjects(_) => Code::FailedPrecondition,
        QueryError::Conflict(_) => Code::Aborted,
        QueryError::ReadOnly(_)
        | QueryError::TransactionAborted
        | QueryError::ContractBroken(_) => Code::FailedPrecondition,
        QueryError::FeatureNotSupported(_) => Code::Unimplemented,
        QueryError::Source(_) => Code::Unavailable,
        QueryError::Cancelled | QueryError::Terminated => Code::Cancelled,
        QueryError::Timeout => Code::DeadlineExceeded,
        QueryError::ResourcesExhausted(_)
        | QueryError::TooManyQueries(_)
        | QueryError::TooComplex(_) => Code::ResourceExhausted,
        QueryError::Internal(_) => {
            tracing::warn!(error = %err, "internal error answered over gRPC");
            Code::Internal
        }
    };
    let message = format!("[{}] {err}", err.sqlstate());
    Status::new(code, meshgate_connectors::secrets::redact(&message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_codes() {
        let s = to_status(&QueryError::UndefinedTable("table 'x' not found".into()));
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "[42P01] table 'x' not found");
        assert_eq!(
            to_status(&QueryError::Syntax("x".into())).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            to_status(&QueryError::Source("pg down".into())).code(),
            Code::Unavailable
        );
        assert_eq!(
            to_status(&QueryError::PermissionDenied("no".into())).code(),
            Code::PermissionDenied
        );
        let s = to_status(&QueryError::TooManyQueries("too many queries".into()));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.message(), "[53300] too many queries");
    }
}

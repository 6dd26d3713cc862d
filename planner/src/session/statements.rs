//! Recognising the PostgreSQL session statements meshgate answers itself
//! rather than DataFusion (`SET`, `SHOW`, `BEGIN`, `DECLARE`, `COPY`,
//! `GRANT`, `CALL system.refresh_catalog`, `CALL system.kill_query`, ...).

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{self, Expr as SqlExpr, Set, Value as SqlValue};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use super::prepared::{CopyFormat, CopyOptions, SessionCommand};
use super::settings::split_list;
use crate::access::admin_statements::PolicyStatement;
use crate::{QueryError, QueryResult};

/// Recognise the PostgreSQL session statements meshgate answers itself.
pub(super) fn session_command(statement: &DfStatement) -> QueryResult<Option<SessionCommand>> {
    let DfStatement::Statement(stmt) = statement else {
        if let DfStatement::Reset(datafusion::sql::parser::ResetStatement::Variable(name)) =
            statement
        {
            let name = name.to_string();
            if name.eq_ignore_ascii_case("all") {
                return Ok(Some(SessionCommand::ResetAll));
            }
            return Ok(Some(SessionCommand::Set { name, value: None }));
        }
        return Ok(None);
    };
    let command = match stmt.as_ref() {
        ast::Statement::Set(set) => match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = variable.to_string();
                if name.to_ascii_lowercase().starts_with("datafusion.") {
                    return Err(QueryError::PermissionDenied(format!(
                        "parameter \"{name}\" is managed by the gateway"
                    )));
                }
                SessionCommand::Set {
                    value: setting_value(values),
                    name,
                }
            }
            Set::SetTimeZone { value, .. } => SessionCommand::Set {
                name: "TimeZone".into(),
                value: setting_value(std::slice::from_ref(value)),
            },
            Set::SetNames { charset_name, .. } => SessionCommand::Set {
                name: "client_encoding".into(),
                value: Some(charset_name.value.clone()),
            },
            // Every transaction here is a read-only snapshot per statement;
            // the requested characteristics are accepted as they are met.
            Set::SetTransaction { .. } => SessionCommand::Noop("SET".into()),
            other => {
                return Err(QueryError::FeatureNotSupported(format!(
                    "{other} is not supported"
                )))
            }
        },
        ast::Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let lower = name.to_ascii_lowercase();
            if lower == "all" {
                SessionCommand::ShowAll
            } else if lower == "transaction isolation level" {
                SessionCommand::Show("transaction_isolation".into())
            } else if lower == "time zone" {
                SessionCommand::Show("TimeZone".into())
            } else if lower.starts_with("datafusion.") {
                return Ok(None);
            } else {
                SessionCommand::Show(name)
            }
        }
        ast::Statement::Reset(reset) => match &reset.reset {
            ast::Reset::ALL => SessionCommand::ResetAll,
            ast::Reset::ConfigurationParameter(name) => SessionCommand::Set {
                name: name.to_string(),
                value: None,
            },
        },
        ast::Statement::StartTransaction { .. } => SessionCommand::Begin,
        ast::Statement::Deallocate { name, .. } if name.value.eq_ignore_ascii_case("all") => {
            SessionCommand::Noop("DEALLOCATE ALL".into())
        }
        ast::Statement::UNLISTEN { .. } => SessionCommand::Noop("UNLISTEN".into()),
        ast::Statement::Call(function) => procedure_call(function)?,
        ast::Statement::CreateRole(_)
        | ast::Statement::Grant(_)
        | ast::Statement::Revoke(_)
        | ast::Statement::Drop {
            object_type: ast::ObjectType::Role,
            ..
        } => match PolicyStatement::from_ast(stmt)? {
            Some(p) => SessionCommand::Policy(p),
            None => return Ok(None),
        },
        ast::Statement::Commit { .. } => SessionCommand::Commit,
        ast::Statement::Rollback {
            savepoint: None, ..
        } => SessionCommand::Rollback,
        ast::Statement::Rollback {
            savepoint: Some(name),
            ..
        } => SessionCommand::RollbackToSavepoint(name.value.clone()),
        ast::Statement::Savepoint { name } => SessionCommand::Savepoint(name.value.clone()),
        ast::Statement::ReleaseSavepoint { name } => {
            SessionCommand::ReleaseSavepoint(name.value.clone())
        }
        ast::Statement::Declare { stmts } => {
            let [declare] = stmts.as_slice() else {
                return Err(QueryError::FeatureNotSupported(
                    "declare one cursor at a time".into(),
                ));
            };
            let (Some(name), Some(query)) = (declare.names.first(), declare.for_query.as_ref())
            else {
                return Err(QueryError::FeatureNotSupported(format!(
                    "{stmt} is not supported"
                )));
            };
            if declare.scroll == Some(true) {
                return Err(QueryError::FeatureNotSupported(
                    "SCROLL cursors are not supported".into(),
                ));
            }
            SessionCommand::Declare {
                name: name.value.clone(),
                query: query.clone(),
            }
        }
        ast::Statement::Fetch {
            name, direction, ..
        } => SessionCommand::Fetch {
            name: name.value.clone(),
            count: fetch_count(direction)?,
        },
        ast::Statement::Close { cursor } => match cursor {
            ast::CloseCursor::All => SessionCommand::Close(None),
            ast::CloseCursor::Specific { name } => SessionCommand::Close(Some(name.value.clone())),
        },
        ast::Statement::Copy {
            source,
            to: true,
            target: ast::CopyTarget::Stdout,
            options,
            legacy_options,
            ..
        } => SessionCommand::CopyOut {
            query: copy_query(source)?,
            options: copy_options(options, legacy_options)?,
        },
        ast::Statement::Copy { .. } => {
            return Err(QueryError::ReadOnly(
                "only COPY ... TO STDOUT is supported: meshgate is a read-only gateway".into(),
            ))
        }
        ast::Statement::Discard { object_type } => {
            if object_type.to_string().eq_ignore_ascii_case("all") {
                SessionCommand::DiscardAll
            } else {
                return Err(QueryError::FeatureNotSupported(format!(
                    "DISCARD {object_type} is not supported"
                )));
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(command))
}

/// `CALL system.refresh_catalog('catalog')` and `CALL
/// system.kill_query('id')`, the procedures meshgate has.
fn procedure_call(function: &ast::Function) -> QueryResult<SessionCommand> {
    let name = function.name.to_string().to_ascii_lowercase();
    let (procedure, make): (&str, fn(String) -> SessionCommand) = match name.as_str() {
        "system.refresh_catalog" | "refresh_catalog" => {
            ("refresh_catalog", SessionCommand::RefreshCatalog)
        }
        "system.kill_query" | "kill_query" => ("kill_query", SessionCommand::KillQuery),
        "system.check_product" | "check_product" => ("check_product", SessionCommand::CheckProduct),
        _ => {
            return Err(QueryError::UndefinedFunction(format!(
                "procedure {} does not exist (meshgate has system.refresh_catalog('catalog'), \
                 system.kill_query('query id') and system.check_product('product'))",
                function.name
            )))
        }
    };
    let usage = || {
        let argument = match procedure {
            "kill_query" => "the query id",
            "check_product" => "the data product's name",
            _ => "the catalog name",
        };
        QueryError::InvalidParameter(format!(
            "system.{procedure} takes one argument: {argument} as a string"
        ))
    };
    let ast::FunctionArguments::List(list) = &function.args else {
        return Err(usage());
    };
    match list.args.as_slice() {
        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Value(v)))] => {
            match &v.value {
                ast::Value::SingleQuotedString(s) => Ok(make(s.clone())),
                _ => Err(usage()),
            }
        }
        _ => Err(usage()),
    }
}

fn fetch_count(direction: &ast::FetchDirection) -> QueryResult<Option<usize>> {
    use ast::FetchDirection as D;
    let number = |v: &ast::ValueWithSpan| -> QueryResult<usize> {
        v.to_string()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n as usize)
            .ok_or_else(|| QueryError::FeatureNotSupported("cursor can only scan forward".into()))
    };
    match direction {
        D::Next | D::First => Ok(Some(1)),
        D::All | D::ForwardAll => Ok(None),
        D::Count { limit } => number(limit).map(Some),
        D::Forward { limit } => limit
            .as_ref()
            .map(number)
            .transpose()
            .map(|n| Some(n.unwrap_or(1))),
        other => Err(QueryError::FeatureNotSupported(format!(
            "FETCH {other} is not supported: cursors scan forward only"
        ))),
    }
}

fn copy_query(source: &ast::CopySource) -> QueryResult<Box<ast::Query>> {
    use datafusion::sql::sqlparser::parser::Parser;
    let sql = match source {
        ast::CopySource::Query(query) => return Ok(query.clone()),
        ast::CopySource::Table {
            table_name,
            columns,
        } if columns.is_empty() => {
            format!("SELECT * FROM {table_name}")
        }
        ast::CopySource::Table {
            table_name,
            columns,
        } => format!(
            "SELECT {} FROM {table_name}",
            columns
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let statement = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_statement())?;
    match statement {
        ast::Statement::Query(query) => Ok(query),
        _ => Err(QueryError::Internal(
            "COPY source did not parse as a query".into(),
        )),
    }
}

fn copy_options(
    options: &[ast::CopyOption],
    legacy: &[ast::CopyLegacyOption],
) -> QueryResult<CopyOptions> {
    let mut out = CopyOptions {
        format: CopyFormat::Text,
        header: false,
        delimiter: None,
        null: None,
    };
    for option in options {
        match option {
            ast::CopyOption::Format(f) => {
                out.format = match f.value.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    other => {
                        return Err(QueryError::InvalidParameter(format!(
                            "COPY format \"{other}\" not recognized"
                        )))
                    }
                }
            }
            ast::CopyOption::Header(h) => out.header = *h,
            ast::CopyOption::Delimiter(d) => out.delimiter = Some(*d),
            ast::CopyOption::Null(n) => out.null = Some(n.clone()),
            other => {
                return Err(QueryError::FeatureNotSupported(format!(
                    "COPY option {other} is not supported"
                )))
            }
        }
    }
    for option in legacy {
        match option {
            ast::CopyLegacyOption::Binary => out.format = CopyFormat::Binary,
            ast::CopyLegacyOption::Csv(csv) => {
                out.format = CopyFormat::Csv;
                for option in csv {
                    match option {
                        ast::CopyLegacyCsvOption::Header => out.header = true,
                        other => {
                            return Err(QueryError::FeatureNotSupported(format!(
                                "COPY option {other} is not supported"
                            )))
                        }
                    }
                }
            }
            ast::CopyLegacyOption::Delimiter(d) => out.delimiter = Some(*d),
            ast::CopyLegacyOption::Null(n) => out.null = Some(n.clone()),
            ast::CopyLegacyOption::Header => out.header = true,
            other => {
                return Err(QueryError::FeatureNotSupported(format!(
                    "COPY option {other} is not supported"
                )))
            }
        }
    }
    Ok(out)
}

/// The textual value of `SET x = v1, v2`; `None` for `DEFAULT`.
fn setting_value(values: &[SqlExpr]) -> Option<String> {
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            SqlExpr::Value(v) => match &v.value {
                SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            SqlExpr::Identifier(ident) => ident.value.clone(),
            other => other.to_string(),
        })
        .collect();
    if parts.len() == 1 && parts[0].eq_ignore_ascii_case("default") {
        return None;
    }
    // search_path items keep their own quoting rules; join the rest as given.
    Some(split_list(&parts.join(", ")).join(", "))
}

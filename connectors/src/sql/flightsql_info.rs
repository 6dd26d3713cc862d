//! What a remote Flight SQL server says it supports (GetSqlInfo), and what
//! a `flightsql` catalog sends it accordingly.
//!
//! - A server that does not run SQL (`FLIGHT_SQL_SERVER_SQL` false, e.g. a
//!   Substrait-only one) is refused when the catalog connects: everything
//!   this gateway sends is SQL.
//! - Names are quoted with the server's `SQL_IDENTIFIER_QUOTE_CHAR`.
//! - Whole sub-plans (aggregates, joins, subqueries) go to the server only
//!   when it says it supports `GROUP BY` (`SQL_SUPPORTED_GROUP_BY`), joins
//!   (`SQL_OUTER_JOINS_SUPPORT_LEVEL` answered) and subqueries
//!   (`SQL_SUPPORTED_SUBQUERIES`); otherwise each table is read with a
//!   plain `SELECT` of its columns and the rest runs in this gateway.
//!
//! An answer that leaves an item out counts as the default of the Flight
//! SQL specification: SQL yes, `"` quotes, no claim of the rest.

use std::collections::HashMap;

use arrow_flight::sql::SqlInfo;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int32Type, Int64Type, UInt32Type};
use datafusion::error::{DataFusionError, Result as DfResult};
use futures::TryStreamExt;

use super::flightsql::Remote;

/// What the remote supports, as this gateway uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteSupport {
    /// `FLIGHT_SQL_SERVER_NAME`, for messages.
    pub name: String,
    pub quote: char,
    /// Whole sub-plans may be sent (see the module documentation).
    pub sub_plans: bool,
}

/// The items asked for.
pub(crate) const ASKED: &[SqlInfo] = &[
    SqlInfo::FlightSqlServerName,
    SqlInfo::FlightSqlServerSql,
    SqlInfo::SqlIdentifierQuoteChar,
    SqlInfo::SqlSupportedGroupBy,
    SqlInfo::SqlOuterJoinsSupportLevel,
    SqlInfo::SqlSupportedSubqueries,
];

/// One answered item.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Flag(bool),
    Number(i64),
}

/// Decide from GetSqlInfo's batches (`info_name`, `value` as the
/// specification's dense union); an error names what the server lacks.
pub(crate) fn decide(batches: &[RecordBatch]) -> DfResult<RemoteSupport> {
    let mut values: HashMap<u32, Value> = HashMap::new();
    for batch in batches {
        let names = batch.column(0).as_primitive::<UInt32Type>();
        let union = batch.column(1).as_union();
        for row in 0..batch.num_rows() {
            let (type_id, offset) = (union.type_id(row), union.value_offset(row));
            let child = union.child(type_id);
            let value = match type_id {
                0 => Value::Text(child.as_string::<i32>().value(offset).to_owned()),
                1 => Value::Flag(child.as_boolean().value(offset)),
                2 => Value::Number(child.as_primitive::<Int64Type>().value(offset)),
                3 => Value::Number(child.as_primitive::<Int32Type>().value(offset).into()),
                _ => continue,
            };
            values.insert(names.value(row), value);
        }
    }
    let get = |item: SqlInfo| values.get(&(item as u32));
    let name = match get(SqlInfo::FlightSqlServerName) {
        Some(Value::Text(name)) => name.clone(),
        _ => "the Flight SQL server".to_owned(),
    };
    if let Some(Value::Flag(false)) = get(SqlInfo::FlightSqlServerSql) {
        return Err(DataFusionError::External(
            format!(
                "{name} does not run SQL queries (GetSqlInfo FLIGHT_SQL_SERVER_SQL = false); \
                 a flightsql catalog sends it SQL"
            )
            .into(),
        ));
    }
    let quote = match get(SqlInfo::SqlIdentifierQuoteChar) {
        Some(Value::Text(q)) if q.chars().count() == 1 => q.chars().next().unwrap_or('"'),
        _ => '"',
    };
    let claims = |item: SqlInfo| matches!(get(item), Some(Value::Number(n)) if *n != 0);
    let joins = get(SqlInfo::SqlOuterJoinsSupportLevel).is_some();
    let sub_plans =
        claims(SqlInfo::SqlSupportedGroupBy) && claims(SqlInfo::SqlSupportedSubqueries) && joins;
    Ok(RemoteSupport {
        name,
        quote,
        sub_plans,
    })
}

/// What the server at `endpoint` supports (GetSqlInfo); a server that
/// cannot say is read table by table.
pub(crate) async fn remote_support(remote: &Remote, endpoint: &str) -> DfResult<RemoteSupport> {
    let asked = async {
        let info = remote
            .client()
            .get_sql_info(ASKED.to_vec())
            .await
            .map_err(super::flightsql::remote_error)?;
        remote
            .fetch_all(info)
            .await?
            .try_collect::<Vec<RecordBatch>>()
            .await
    };
    match asked.await {
        Ok(batches) => decide(&batches),
        Err(e) => {
            tracing::warn!(%endpoint, error = %e, "GetSqlInfo failed: sending plain scans only");
            decide(&[])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_flight::sql::metadata::SqlInfoDataBuilder;

    fn answer(fill: impl FnOnce(&mut SqlInfoDataBuilder)) -> Vec<RecordBatch> {
        let mut builder = SqlInfoDataBuilder::new();
        fill(&mut builder);
        let data = builder.build().unwrap();
        vec![data.record_batch(ASKED.iter().map(|i| *i as u32)).unwrap()]
    }

    #[test]
    fn a_full_sql_server_gets_sub_plans_in_its_quotes() {
        let batches = answer(|b| {
            b.append(SqlInfo::FlightSqlServerName, "domain-gw");
            b.append(SqlInfo::FlightSqlServerSql, true);
            b.append(SqlInfo::SqlIdentifierQuoteChar, "`");
            b.append(SqlInfo::SqlSupportedGroupBy, 0b11i32);
            b.append(SqlInfo::SqlOuterJoinsSupportLevel, 2i32);
            b.append(SqlInfo::SqlSupportedSubqueries, 0b111i32);
        });
        assert_eq!(
            decide(&batches).unwrap(),
            RemoteSupport {
                name: "domain-gw".into(),
                quote: '`',
                sub_plans: true
            }
        );
    }

    #[test]
    fn a_server_without_group_by_or_joins_gets_plain_scans() {
        let batches = answer(|b| {
            b.append(SqlInfo::FlightSqlServerSql, true);
            b.append(SqlInfo::SqlSupportedGroupBy, 0i32);
            b.append(SqlInfo::SqlOuterJoinsSupportLevel, 2i32);
            b.append(SqlInfo::SqlSupportedSubqueries, 0b1i32);
        });
        let support = decide(&batches).unwrap();
        assert!(!support.sub_plans);
        assert_eq!(support.quote, '"');
        // Saying nothing of joins claims none.
        let batches = answer(|b| {
            b.append(SqlInfo::SqlSupportedGroupBy, 0b11i32);
            b.append(SqlInfo::SqlSupportedSubqueries, 0b1i32);
        });
        assert!(!decide(&batches).unwrap().sub_plans);
    }

    #[test]
    fn a_server_that_runs_no_sql_is_refused_by_name() {
        let batches = answer(|b| {
            b.append(SqlInfo::FlightSqlServerName, "substrait-only");
            b.append(SqlInfo::FlightSqlServerSql, false);
        });
        let err = decide(&batches).unwrap_err().to_string();
        assert!(err.contains("substrait-only does not run SQL"), "{err}");
    }
}

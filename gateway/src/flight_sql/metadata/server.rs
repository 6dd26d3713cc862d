//! The listings that are the same for every caller: GetTableTypes,
//! GetSqlInfo (the server's capabilities) and GetXdbcTypeInfo (the types
//! meshgate returns). They open no session; each DoGet is still recorded.

use std::sync::LazyLock;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetXdbcTypeInfo, Nullable, Searchable, SqlInfo,
    SqlSupportedTransaction, XdbcDataType, XdbcDatetimeSubcode,
};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::SchemaRef;
use meshgate_planner::QueryResult;

use super::{built, Call, MetadataCommand};

impl MetadataCommand for CommandGetTableTypes {
    const NAME: &'static str = "GetTableTypes";

    fn schema(&self) -> SchemaRef {
        (*self).into_builder().schema()
    }

    async fn list(self, _call: &mut Call<'_>) -> QueryResult<RecordBatch> {
        let mut builder = self.into_builder();
        builder.append("TABLE");
        builder.append("VIEW");
        built(builder.build())
    }
}

impl MetadataCommand for CommandGetSqlInfo {
    const NAME: &'static str = "GetSqlInfo";

    fn schema(&self) -> SchemaRef {
        self.clone().into_builder(&SQL_INFO).schema()
    }

    async fn list(self, _call: &mut Call<'_>) -> QueryResult<RecordBatch> {
        built(self.into_builder(&SQL_INFO).build())
    }
}

impl MetadataCommand for CommandGetXdbcTypeInfo {
    const NAME: &'static str = "GetXdbcTypeInfo";

    fn schema(&self) -> SchemaRef {
        (*self).into_builder(&XDBC_TYPES).schema()
    }

    async fn list(self, _call: &mut Call<'_>) -> QueryResult<RecordBatch> {
        built(self.into_builder(&XDBC_TYPES).build())
    }
}

/// What GetSqlInfo answers.
static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "meshgate");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    // CancelFlightInfo (see `flight_sql::cancel`).
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    // Unquoted names fold to lower case, as in PostgreSQL.
    b.append(SqlInfo::SqlIdentifierCase, 3i32);
    // Only tables the policy lets the caller read are listed.
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // NULLs sort last ascending, first descending: "sorted high".
    b.append(SqlInfo::SqlNullOrdering, 0i32);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    // GROUP BY unrelated to the select list, and beyond it.
    b.append(SqlInfo::SqlSupportedGroupBy, 0b11i32);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    // Minimum and core ODBC grammar; ANSI-92 entry and intermediate.
    b.append(SqlInfo::SqlSupportedGrammar, 0b11i32);
    b.append(SqlInfo::SqlAnsi92SupportedLevel, 0b11i32);
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    // Full outer joins.
    b.append(SqlInfo::SqlOuterJoinsSupportLevel, 2i32);
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    // Subqueries in comparisons, EXISTS and IN; correlated ones too.
    b.append(SqlInfo::SqlSupportedSubqueries, 0b111i32);
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    // UNION and UNION ALL.
    b.append(SqlInfo::SqlSupportedUnions, 0b11i32);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    // Parameters are positional: `?` or `$n`.
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.build().expect("static SqlInfo data")
});

/// One type as GetXdbcTypeInfo describes it: its name, ODBC type, size
/// (precision for numbers, characters for strings), literal quoting and
/// the parameters `CAST(x AS name(...))` takes.
fn xdbc(name: &str, ty: XdbcDataType, size: Option<i32>) -> XdbcTypeInfo {
    use XdbcDataType as X;
    let numeric = matches!(
        ty,
        X::XdbcTinyint
            | X::XdbcSmallint
            | X::XdbcInteger
            | X::XdbcBigint
            | X::XdbcReal
            | X::XdbcFloat
            | X::XdbcDouble
            | X::XdbcDecimal
    );
    let quoted = matches!(
        ty,
        X::XdbcChar
            | X::XdbcVarchar
            | X::XdbcLongvarchar
            | X::XdbcDate
            | X::XdbcTime
            | X::XdbcTimestamp
            | X::XdbcInterval
    );
    let (sql_data_type, datetime_subcode) = match ty {
        // ODBC's SQL_CODE_DATE is 1, which the enum names YEAR.
        X::XdbcDate => (X::XdbcDatetime, Some(XdbcDatetimeSubcode::XdbcSubcodeYear)),
        X::XdbcTime => (X::XdbcDatetime, Some(XdbcDatetimeSubcode::XdbcSubcodeTime)),
        X::XdbcTimestamp => (
            X::XdbcDatetime,
            Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
        ),
        other => (other, None),
    };
    XdbcTypeInfo {
        type_name: name.to_owned(),
        data_type: ty,
        column_size: size,
        literal_prefix: quoted.then(|| "'".to_owned()),
        literal_suffix: quoted.then(|| "'".to_owned()),
        create_params: match ty {
            X::XdbcDecimal => Some(vec!["precision".into(), "scale".into()]),
            X::XdbcChar | X::XdbcVarchar => Some(vec!["length".into()]),
            _ => None,
        },
        nullable: Nullable::NullabilityNullable,
        case_sensitive: matches!(ty, X::XdbcChar | X::XdbcVarchar | X::XdbcLongvarchar),
        searchable: Searchable::Full,
        unsigned_attribute: numeric.then_some(false),
        fixed_prec_scale: matches!(ty, X::XdbcDecimal),
        auto_increment: numeric.then_some(false),
        local_type_name: Some(name.to_owned()),
        minimum_scale: matches!(ty, X::XdbcDecimal).then_some(0),
        maximum_scale: matches!(ty, X::XdbcDecimal).then_some(38),
        sql_data_type,
        datetime_subcode,
        num_prec_radix: numeric.then_some(if matches!(ty, X::XdbcDecimal) { 10 } else { 2 }),
        interval_precision: None,
    }
}

/// What GetXdbcTypeInfo answers: every type meshgate returns, ordered by
/// ODBC type as the specification asks, with PostgreSQL's names.
static XDBC_TYPES: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
    use XdbcDataType as X;
    let mut types = vec![
        xdbc("boolean", X::XdbcBit, Some(1)),
        xdbc("tinyint", X::XdbcTinyint, Some(3)),
        xdbc("smallint", X::XdbcSmallint, Some(5)),
        xdbc("integer", X::XdbcInteger, Some(10)),
        xdbc("bigint", X::XdbcBigint, Some(19)),
        xdbc("real", X::XdbcReal, Some(24)),
        xdbc("double precision", X::XdbcDouble, Some(53)),
        xdbc("numeric", X::XdbcDecimal, Some(38)),
        xdbc("decimal", X::XdbcDecimal, Some(38)),
        xdbc("char", X::XdbcChar, None),
        xdbc("varchar", X::XdbcVarchar, None),
        xdbc("text", X::XdbcLongvarchar, None),
        xdbc("bytea", X::XdbcVarbinary, None),
        xdbc("date", X::XdbcDate, Some(10)),
        xdbc("time", X::XdbcTime, Some(15)),
        xdbc("timestamp", X::XdbcTimestamp, Some(26)),
        xdbc("interval", X::XdbcInterval, None),
    ];
    let mut with_zone = xdbc("timestamptz", X::XdbcTimestamp, Some(32));
    with_zone.datetime_subcode = Some(XdbcDatetimeSubcode::XdbcSubcodeTimestampWithTimezone);
    types.push(with_zone);
    let mut b = XdbcTypeInfoDataBuilder::new();
    for info in types {
        b.append(info);
    }
    b.build().expect("static XDBC data")
});

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
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.build().expect("static SqlInfo data")
});

/// One type as GetXdbcTypeInfo describes it.
fn xdbc(name: &str, ty: XdbcDataType, sub: Option<XdbcDatetimeSubcode>) -> XdbcTypeInfo {
    XdbcTypeInfo {
        type_name: name.to_owned(),
        data_type: ty,
        column_size: None,
        literal_prefix: None,
        literal_suffix: None,
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: matches!(ty, XdbcDataType::XdbcVarchar),
        searchable: Searchable::Full,
        unsigned_attribute: None,
        fixed_prec_scale: false,
        auto_increment: Some(false),
        local_type_name: Some(name.to_owned()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: ty,
        datetime_subcode: sub,
        num_prec_radix: None,
        interval_precision: None,
    }
}

/// What GetXdbcTypeInfo answers: the types meshgate returns.
static XDBC_TYPES: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
    let mut b = XdbcTypeInfoDataBuilder::new();
    for info in [
        xdbc("boolean", XdbcDataType::XdbcBit, None),
        xdbc("smallint", XdbcDataType::XdbcSmallint, None),
        xdbc("integer", XdbcDataType::XdbcInteger, None),
        xdbc("bigint", XdbcDataType::XdbcBigint, None),
        xdbc("real", XdbcDataType::XdbcReal, None),
        xdbc("double precision", XdbcDataType::XdbcDouble, None),
        xdbc("numeric", XdbcDataType::XdbcDecimal, None),
        xdbc("varchar", XdbcDataType::XdbcVarchar, None),
        xdbc("bytea", XdbcDataType::XdbcVarbinary, None),
        xdbc("date", XdbcDataType::XdbcDate, None),
        xdbc(
            "timestamp",
            XdbcDataType::XdbcTimestamp,
            Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
        ),
        xdbc(
            "timestamptz",
            XdbcDataType::XdbcTimestamp,
            Some(XdbcDatetimeSubcode::XdbcSubcodeTimestampWithTimezone),
        ),
    ] {
        b.append(info);
    }
    b.build().expect("static XDBC data")
});

//! Static Flight SQL metadata: server capabilities (GetSqlInfo), the types
//! meshgate returns (GetXdbcTypeInfo), and the schemas of key listings, which
//! are always empty because federated sources expose no enforced keys.

use std::sync::{Arc, LazyLock};

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlSupportedTransaction, XdbcDataType, XdbcDatetimeSubcode,
};
use meshgate_planner::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

pub(crate) static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
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

pub(crate) static XDBC_TYPES: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
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

/// CommandGetPrimaryKeys result schema (Flight SQL spec).
pub(crate) fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// CommandGetExportedKeys / ImportedKeys / CrossReference result schema.
pub(crate) fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

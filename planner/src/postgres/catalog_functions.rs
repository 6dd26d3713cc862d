//! The functions and type names `datafusion-pg-catalog` gives a session
//! (`format_type`, `pg_get_userbyid`, `has_table_privilege`, `regclass`, ...).
//!
//! What the crate's `setup_pg_catalog` installs, minus its `pg_catalog`
//! schema (meshgate registers its own, see `install`) and minus decoding
//! the built-in tables again: it decodes them for every session, which was
//! half the CPU of opening a pgwire connection, where `pg_get_keywords` here
//! shares the tables decoded once per process (`static_tables`).

use std::sync::Arc;

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::{
    self as pg, array_bounds_udf, format_type, generate_series_arg_coercion, has_privilege_udf,
    oid_type_planner, pg_get_expr_udf, quote_ident_udf, PgCatalogStaticTables,
};

/// Registers the functions into `ctx`, whose current database is `catalog`.
pub(super) fn register(ctx: &SessionContext, catalog: &str, tables: &PgCatalogStaticTables) {
    for udf in [
        pg::create_current_database_udf(catalog),
        pg::create_current_schema_udf(),
        pg::create_current_schemas_udf(),
        pg::create_pg_get_userbyid_udf(),
        has_privilege_udf::create_has_privilege_udf("has_table_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_schema_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_database_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_any_column_privilege"),
        pg::create_pg_table_is_visible(),
        format_type::create_format_type_udf(),
        pg::create_session_user_udf(),
        pg_get_expr_udf::create_pg_get_expr_udf(),
        pg::create_pg_get_partkeydef_udf(),
        pg::create_pg_relation_is_publishable_udf(),
        pg::create_pg_get_statisticsobjdef_columns_udf(),
        pg::create_pg_encoding_to_char_udf(),
        pg::create_pg_backend_pid_udf(),
        pg::create_pg_relation_size_udf(),
        pg::create_pg_total_relation_size_udf(),
        pg::create_pg_stat_get_numscans(),
        pg::create_pg_get_constraintdef(),
        pg::create_pg_get_partition_ancestors_udf(),
        quote_ident_udf::create_quote_ident_udf(),
        quote_ident_udf::create_parse_ident_udf(),
        array_bounds_udf::create_array_upper_udf(),
        array_bounds_udf::create_array_lower_udf(),
    ] {
        ctx.register_udf(udf);
    }
    ctx.register_udtf("pg_get_keywords", tables.pg_get_keywords.clone());
    // `regclass`, `regproc`, ... parse as type names (int4).
    let state = ctx.state_ref();
    let existing = state.read().clone();
    *state.write() = SessionStateBuilder::new_from_existing(existing)
        .with_type_planner(Arc::new(oid_type_planner::PgOidTypePlanner))
        .build();
    // int4 bounds of `generate_series`/`range` widen to int8.
    generate_series_arg_coercion::CoerceIntArgsToBigInt::widen(ctx);
}

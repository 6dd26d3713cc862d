//! PostgreSQL compatibility for sessions opened by the pgwire front end.
//!
//! psql, drivers and BI tools probe the server through `pg_catalog`,
//! `information_schema` and functions such as `version()`, `format_type` or
//! `pg_table_is_visible`. Those come from `datafusion-pg-catalog`, installed
//! into the session itself: `pg_class` and friends are computed from the
//! session's own catalog list, so they show exactly what the session can see.
//! Its SQL parser also rewrites PostgreSQL-only syntax (`'t'::regclass`,
//! `OPERATOR(pg_catalog.~)`, bare `current_user`) into what DataFusion plans.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProvider};
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion_pg_catalog::pg_catalog::{PgCatalogSchemaProvider, PgCatalogStaticTables};

use crate::settings::SERVER_VERSION;
use crate::SessionSettings;
use crate::{QueryError, QueryResult};

/// The users meshgate knows (configured users). What a session shows of
/// them in `pg_roles`/`pg_user` is decided by `pg_roles::SessionRoles`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoleDirectory {
    pub(crate) roles: Arc<Vec<String>>,
}

/// The string `version()` returns; clients (SQLAlchemy) parse "PostgreSQL X.Y".
pub(crate) fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (meshgate {}) on {}-linux, compiled by rustc",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

fn constant_udf(name: &str, value: String) -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                value.clone(),
            ))))
        }),
    )
}

/// Install pg_catalog and the PostgreSQL functions into `ctx`.
///
/// Like PostgreSQL, `pg_catalog` describes the connection's database (here:
/// catalog) only; other catalogs stay reachable by three-part names.
pub(crate) fn install(
    ctx: &SessionContext,
    catalog: &str,
    user: &str,
    roles: crate::pg_roles::SessionRoles,
    settings: Arc<std::sync::RwLock<SessionSettings>>,
    descriptions: Arc<Vec<meshgate_connectors::Description>>,
) -> QueryResult<()> {
    let internal =
        |e: &dyn std::fmt::Display| QueryError::Internal(format!("cannot set up pg_catalog: {e}"));
    datafusion_pg_catalog::setup_pg_catalog(ctx, catalog, roles.clone())
        .map_err(|e| internal(&e))?;
    let current = ctx
        .catalog(catalog)
        .ok_or_else(|| internal(&format!("catalog {catalog} is missing")))?;
    let scoped = DatabaseScope {
        current: catalog.to_owned(),
        current_catalog: current.clone(),
        all: ctx.catalog_names(),
    };
    let static_tables = static_tables().map_err(|e| internal(&e))?;
    let provider = PgCatalogSchemaProvider::try_new(
        Arc::new(scoped) as Arc<dyn CatalogProviderList>,
        static_tables,
        roles.clone(),
    )
    .map_err(|e| internal(&e))?;
    let provider: Arc<dyn datafusion::catalog::SchemaProvider> = Arc::new(provider);
    let descriptions = Arc::new(crate::pg_descriptions::DescriptionTable::new(
        descriptions,
        provider.clone(),
    ));
    current
        .register_schema(
            "pg_catalog",
            Arc::new(
                crate::pg_arrays::array_tables()
                    .iter()
                    .cloned()
                    .chain(crate::pg_roles::role_tables(&roles))
                    .fold(
                        crate::pg_system_columns::WithSystemColumns::new(provider)
                            .replace("pg_description", descriptions),
                        |catalog, (name, table)| catalog.replace(name, table),
                    ),
            ),
        )
        .map_err(|e| internal(&e))?;
    // The session's real user, not a fixed name.
    ctx.register_udf(constant_udf("session_user", user.to_owned()));
    ctx.register_udf(constant_udf("version", version_string()));
    ctx.register_udf(to_regtype_udf());
    ctx.register_udf(current_setting_udf(settings));
    register_oid_functions(ctx, user);
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::from(
        JsonBuildObject::default(),
    ));
    // meshgate tables have no sequences, and every collation is visible.
    ctx.register_udf(create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let len = ColumnarValue::values_to_arrays(args)?[0].len();
            Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_null_array(&DataType::Utf8, len),
            ))
        }),
    ));
    // psql's `\dt+`: sizes are not known for remote tables (PostgreSQL
    // itself reports 0 bytes for a foreign table).
    ctx.register_udf(create_udf(
        "pg_table_size",
        vec![DataType::Int64],
        DataType::Int64,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(0))))),
    ));
    ctx.register_udf(pg_size_pretty_udf());
    ctx.register_udf(crate::pg_arrays::expand_array_udf());
    for udf in crate::pg_type_info::udfs() {
        ctx.register_udf(udf);
    }
    ctx.register_udf(create_udf(
        "pg_collation_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    ));
    Ok(())
}

/// `pg_size_pretty(bytes)`: PostgreSQL's human-readable size (`0 bytes`,
/// `8192 bytes`, `10 kB`, `2048 MB`, ...): a unit is used once the value
/// reaches 10 of it, rounding half away from zero.
fn pg_size_pretty_udf() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::{AsArray, StringArray};
    use datafusion::arrow::datatypes::Int64Type;
    create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let out: StringArray = arrays[0]
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(size_pretty))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

fn size_pretty(bytes: i64) -> String {
    let mut value = bytes as f64;
    if value.abs() < 10.0 * 1024.0 {
        return format!("{bytes} bytes");
    }
    for unit in ["kB", "MB", "GB", "TB"] {
        value /= 1024.0;
        if value.abs() < 10.0 * 1024.0 || unit == "TB" {
            return format!("{} {unit}", value.round());
        }
    }
    unreachable!()
}

/// The built-in pg_catalog tables (pg_type, pg_proc, ...), decoded once per
/// process and shared by every session.
pub(crate) fn static_tables() -> Result<Arc<PgCatalogStaticTables>, String> {
    static TABLES: std::sync::OnceLock<Result<Arc<PgCatalogStaticTables>, String>> =
        std::sync::OnceLock::new();
    TABLES
        .get_or_init(|| {
            PgCatalogStaticTables::try_new()
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// What `pg_catalog` sees: every catalog as a database (for `pg_database`,
/// psql's `\l`), but the schemas and tables of the current one only.
#[derive(Debug)]
struct DatabaseScope {
    current: String,
    current_catalog: Arc<dyn CatalogProvider>,
    all: Vec<String>,
}

impl CatalogProviderList for DatabaseScope {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        self.all.clone()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if name == self.current {
            Some(self.current_catalog.clone())
        } else if self.all.iter().any(|n| n == name) {
            Some(Arc::new(MemoryCatalogProvider::new()))
        } else {
            None
        }
    }
}

/// Built-in type names and their OIDs, for `to_regtype`.
const TYPE_OIDS: &[(&str, i32)] = &[
    ("bool", 16),
    ("boolean", 16),
    ("bytea", 17),
    ("int8", 20),
    ("bigint", 20),
    ("int2", 21),
    ("smallint", 21),
    ("int4", 23),
    ("integer", 23),
    ("int", 23),
    ("text", 25),
    ("oid", 26),
    ("json", 114),
    ("float4", 700),
    ("real", 700),
    ("float8", 701),
    ("double precision", 701),
    ("varchar", 1043),
    ("character varying", 1043),
    ("date", 1082),
    ("time", 1083),
    ("timestamp", 1114),
    ("timestamp without time zone", 1114),
    ("timestamptz", 1184),
    ("timestamp with time zone", 1184),
    ("interval", 1186),
    ("numeric", 1700),
    ("decimal", 1700),
    ("uuid", 2950),
    ("jsonb", 3802),
];

/// `to_regtype(name)`: the type's OID, or NULL when there is no such type
/// (drivers probe for extension types such as `hstore` this way).
fn to_regtype_udf() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::{Array, AsArray, Int32Array};
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = arrays[0].as_string::<i32>();
            let oids: Int32Array = (0..names.len())
                .map(|i| {
                    if names.is_null(i) {
                        return None;
                    }
                    let name = names
                        .value(i)
                        .trim()
                        .trim_start_matches("pg_catalog.")
                        .to_ascii_lowercase();
                    TYPE_OIDS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, oid)| *oid)
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(oids)))
        }),
    )
}

/// Exact fragments of client queries that DataFusion cannot plan, each
/// replaced by what it means for meshgate's catalog.
///
/// The first two compare `regproc`
/// columns with 0. `pg_type.typreceive`/`typsend` hold function names here
/// (PostgreSQL shows `-` for "none"), so the comparison is made on the name.
/// Source: the ADBC PostgreSQL driver's type-resolution query
/// (`... WHERE (typreceive != 0 OR typsend != 0) AND typtype != 'r' ...`).
const KNOWN_PROBES: &[(&str, &str)] = &[
    (
        "(typreceive != 0 OR typsend != 0)",
        "(typreceive != '-' OR typsend != '-')",
    ),
    (
        "typreceive::TEXT != 'array_recv'",
        "typreceive != 'array_recv'",
    ),
    // psql's `\d+` lists storage options, appending the TOAST table's
    // through an ARRAY() subquery over a correlated unnest; meshgate tables
    // have neither.
    (
        "pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')",
        "CAST(NULL AS TEXT)",
    ),
];

/// Apply [`KNOWN_PROBES`] to `sql`, and drop the `pg_catalog.` schema
/// from function names cast to `regproc` (`'pg_catalog.array_in'::regproc`,
/// as pgjdbc writes it): the name is looked up in `pg_proc.proname`, and
/// every built-in function lives in pg_catalog.
pub(crate) fn rewrite_known_probes(sql: &str) -> std::borrow::Cow<'_, str> {
    let mut out = std::borrow::Cow::Borrowed(sql);
    for (from, to) in KNOWN_PROBES {
        if out.contains(from) {
            out = std::borrow::Cow::Owned(out.replace(from, to));
        }
    }
    if out.contains("'pg_catalog.") && out.to_ascii_lowercase().contains("'::regproc") {
        out = std::borrow::Cow::Owned(unqualify_regproc_literals(&out));
    }
    out
}

fn unqualify_regproc_literals(sql: &str) -> String {
    const PREFIX: &str = "'pg_catalog.";
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(PREFIX) {
        let name_start = at + PREFIX.len();
        let name_len = rest[name_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len() - name_start);
        let after = &rest[name_start + name_len..];
        let is_regproc = after
            .get(..10)
            .is_some_and(|s| s.eq_ignore_ascii_case("'::regproc"));
        out.push_str(&rest[..at]);
        out.push('\'');
        if !is_regproc {
            out.push_str("pg_catalog.");
        }
        rest = &rest[name_start..];
    }
    out.push_str(rest);
    out
}

/// PostgreSQL allows any `LIKE ... ESCAPE 'c'`; DataFusion executes only the
/// backslash. Once parameters are bound and constants folded, a pattern is a
/// literal: this rule re-escapes it with backslashes (SQLAlchemy lists schemas
/// with `NOT LIKE 'pg/_%' ESCAPE '/'`).
#[derive(Debug, Default)]
pub(crate) struct LikeEscapeRule;

impl datafusion::optimizer::OptimizerRule for LikeEscapeRule {
    fn name(&self) -> &str {
        "meshgate_like_escape"
    }

    fn apply_order(&self) -> Option<datafusion::optimizer::ApplyOrder> {
        Some(datafusion::optimizer::ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> datafusion::error::Result<
        datafusion::common::tree_node::Transformed<datafusion::logical_expr::LogicalPlan>,
    > {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        use datafusion::logical_expr::Expr;
        plan.map_expressions(|expr| {
            expr.transform_up(|e| {
                let Expr::Like(like) = &e else {
                    return Ok(Transformed::no(e));
                };
                let Some(escape) = like.escape_char.filter(|c| *c != '\\') else {
                    return Ok(Transformed::no(e));
                };
                // Keep the literal's string type: LIKE needs both sides alike.
                let pattern = match like.pattern.as_ref() {
                    Expr::Literal(ScalarValue::Utf8(Some(p)), _) => {
                        ScalarValue::Utf8(Some(reescape(p, escape)))
                    }
                    Expr::Literal(ScalarValue::Utf8View(Some(p)), _) => {
                        ScalarValue::Utf8View(Some(reescape(p, escape)))
                    }
                    Expr::Literal(ScalarValue::LargeUtf8(Some(p)), _) => {
                        ScalarValue::LargeUtf8(Some(reescape(p, escape)))
                    }
                    _ => return Ok(Transformed::no(e)),
                };
                let mut like = like.clone();
                like.pattern = Box::new(Expr::Literal(pattern, None));
                like.escape_char = None;
                Ok(Transformed::yes(Expr::Like(like)))
            })
        })
    }
}

/// Rewrite a LIKE pattern escaped with `escape` into the backslash form.
fn reescape(pattern: &str, escape: char) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            match chars.next() {
                Some(n @ ('%' | '_')) => {
                    out.push('\\');
                    out.push(n);
                }
                Some('\\') => out.push_str("\\\\"),
                Some(n) => out.push(n),
                None => {}
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regproc_literals_lose_their_schema() {
        assert_eq!(
            rewrite_known_probes("SELECT typinput='pg_catalog.array_in'::regproc, 'pg_catalog.x'"),
            "SELECT typinput='array_in'::regproc, 'pg_catalog.x'"
        );
    }

    #[test]
    fn sizes_print_like_pg_size_pretty() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(8192), "8192 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(2_147_483_648), "2048 MB");
        assert_eq!(size_pretty(10 * 1024 * 1024 * 1024), "10 GB");
    }

    #[test]
    fn like_patterns_are_reescaped() {
        assert_eq!(reescape("pg/_%", '/'), "pg\\_%");
        assert_eq!(reescape("a//b", '/'), "a/b");
        assert_eq!(reescape("a\\b", '/'), "a\\\\b");
    }

    #[test]
    fn known_probes_are_rewritten_and_others_left_alone() {
        let adbc = "SELECT oid FROM pg_catalog.pg_type WHERE (typreceive != 0 OR typsend != 0) AND typtype != 'r'";
        assert!(rewrite_known_probes(adbc).contains("typreceive != '-'"));
        assert!(matches!(
            rewrite_known_probes("SELECT 1"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}

/// `json_build_object(k1, v1, ...)` as JSON text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: datafusion::logical_expr::Signature,
}

impl Default for JsonBuildObject {
    fn default() -> Self {
        Self {
            signature: datafusion::logical_expr::Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::StringBuilder;
        if !args.args.len().is_multiple_of(2) {
            return datafusion::common::plan_err!("json_build_object needs key/value pairs");
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = StringBuilder::new();
        for row in 0..args.number_rows {
            let mut json = String::from("{");
            for (i, pair) in arrays.chunks(2).enumerate() {
                if i > 0 {
                    json.push_str(", ");
                }
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                let value = ScalarValue::try_from_array(&pair[1], row)?;
                json.push_str(&json_string(&key.to_string()));
                json.push_str(" : ");
                json.push_str(&json_value(&value));
            }
            json.push('}');
            out.append_value(json);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_value(value: &ScalarValue) -> String {
    if value.is_null() {
        return "null".into();
    }
    match value {
        ScalarValue::Boolean(Some(b)) => b.to_string(),
        v if v.data_type().is_numeric() => v.to_string(),
        v => json_string(&v.to_string()),
    }
}

/// `current_setting(name)`: the session's live value of a setting.
fn current_setting_udf(
    settings: Arc<std::sync::RwLock<SessionSettings>>,
) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::{Array, AsArray, StringArray};
    create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = arrays[0].as_string::<i32>();
            let settings = settings.read().expect("settings lock");
            let values = (0..names.len())
                .map(|i| {
                    if names.is_null(i) {
                        return Ok(None);
                    }
                    settings
                        .get(names.value(i))
                        .map(|v| Some(v.to_owned()))
                        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
                })
                .collect::<datafusion::error::Result<StringArray>>()?;
            Ok(ColumnarValue::Array(Arc::new(values)))
        }),
    )
}

/// Functions taking an OID, accepting any integer (PostgreSQL integer
/// literals are int4, DataFusion's int8), answered for meshgate's catalogs:
/// no object carries a comment, every visible table is visible.
fn register_oid_functions(ctx: &SessionContext, user: &str) {
    use datafusion::logical_expr::{Signature, TypeSignature};
    let int_args = |n: usize| {
        Signature::one_of(
            vec![
                TypeSignature::Uniform(n, vec![DataType::Int32, DataType::Int64, DataType::UInt32]),
                TypeSignature::Any(n),
            ],
            Volatility::Stable,
        )
    };
    let constant = |name: &str, n: usize, ty: DataType, value: ScalarValue| {
        datafusion::logical_expr::ScalarUDF::from(ConstantFn {
            name: name.to_owned(),
            signature: int_args(n),
            ty,
            value,
        })
    };
    ctx.register_udf(constant(
        "shobj_description",
        2,
        DataType::Utf8,
        ScalarValue::Utf8(None),
    ));
    ctx.register_udf(constant(
        "col_description",
        2,
        DataType::Utf8,
        ScalarValue::Utf8(None),
    ));
    ctx.register_udf(constant(
        "pg_table_is_visible",
        1,
        DataType::Boolean,
        ScalarValue::Boolean(Some(true)),
    ));
    ctx.register_udf(constant(
        "pg_type_is_visible",
        1,
        DataType::Boolean,
        ScalarValue::Boolean(Some(true)),
    ));
    ctx.register_udf(constant(
        "pg_get_userbyid",
        1,
        DataType::Utf8,
        ScalarValue::Utf8(Some(user.to_owned())),
    ));
    ctx.register_udf(constant(
        "pg_encoding_to_char",
        1,
        DataType::Utf8,
        ScalarValue::Utf8(Some("UTF8".into())),
    ));
    for (name, signature, ty, value) in [
        // obj_description(oid) and obj_description(oid, 'pg_class').
        (
            "obj_description",
            Signature::variadic_any(Volatility::Stable),
            DataType::Utf8,
            ScalarValue::Utf8(None),
        ),
        // asyncpg's connection reset; meshgate takes no advisory locks.
        (
            "pg_advisory_unlock_all",
            Signature::nullary(Volatility::Volatile),
            DataType::Boolean,
            ScalarValue::Boolean(Some(true)),
        ),
    ] {
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::from(ConstantFn {
            name: name.to_owned(),
            signature,
            ty,
            value,
        }));
    }
}

/// A function of any arguments that always returns one value.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConstantFn {
    name: String,
    signature: datafusion::logical_expr::Signature,
    ty: DataType,
    value: ScalarValue,
}

impl datafusion::logical_expr::ScalarUDFImpl for ConstantFn {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(self.ty.clone())
    }

    fn invoke_with_args(
        &self,
        _args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// PostgreSQL lets a SELECT list repeat an output name (`SELECT NULL, NULL`,
/// as psqlODBC's catalog queries do); DataFusion needs unique names. Repeated
/// unnamed items get PostgreSQL's own `?column?` name, numbered. And like
/// PostgreSQL, an unnamed function call in the outer SELECT list is named
/// after the function (`count(*)` → `count`), when that name is free.
pub(crate) fn name_duplicate_columns(statement: &mut datafusion::sql::sqlparser::ast::Statement) {
    use datafusion::sql::sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, Statement};
    fn fix_query(query: &mut Query, outer: bool) {
        fix_set_expr(query.body.as_mut(), outer);
    }
    fn name_functions(items: &mut [SelectItem]) {
        let taken: std::collections::HashSet<String> = items
            .iter()
            .filter_map(|i| match i {
                SelectItem::UnnamedExpr(Expr::Identifier(id)) => Some(id.value.to_lowercase()),
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(ids)) => {
                    ids.last().map(|id| id.value.to_lowercase())
                }
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_lowercase()),
                _ => None,
            })
            .collect();
        let mut counts = std::collections::HashMap::new();
        for item in items.iter() {
            if let SelectItem::UnnamedExpr(Expr::Function(f)) = item {
                if f.name.0.len() == 1 {
                    *counts.entry(f.name.to_string().to_lowercase()).or_insert(0) += 1;
                }
            }
        }
        for item in items.iter_mut() {
            if let SelectItem::UnnamedExpr(Expr::Function(f)) = item {
                let name = f.name.to_string().to_lowercase();
                if f.name.0.len() == 1
                    && counts.get(&name) == Some(&1)
                    && !taken.contains(&name)
                    && !name.starts_with('"')
                {
                    *item = SelectItem::ExprWithAlias {
                        expr: Expr::Function(f.clone()),
                        alias: Ident::with_quote('"', name),
                    };
                }
            }
        }
    }
    fn fix_set_expr(body: &mut SetExpr, outer: bool) {
        match body {
            SetExpr::Select(select) => {
                if outer {
                    name_functions(&mut select.projection);
                }
                let mut seen = std::collections::HashSet::new();
                let mut n = 0;
                for item in select.projection.iter_mut() {
                    let name = match item {
                        SelectItem::UnnamedExpr(e) => e.to_string(),
                        SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                        _ => continue,
                    };
                    if !seen.insert(name) {
                        if let SelectItem::UnnamedExpr(e) = item {
                            n += 1;
                            let alias = datafusion::sql::sqlparser::ast::Ident::with_quote(
                                '"',
                                format!("?column?{n}"),
                            );
                            *item = SelectItem::ExprWithAlias {
                                expr: e.clone(),
                                alias,
                            };
                        }
                    }
                }
            }
            SetExpr::Query(q) => fix_query(q, outer),
            SetExpr::SetOperation { left, right, .. } => {
                fix_set_expr(left, outer);
                fix_set_expr(right, false);
            }
            _ => {}
        }
    }
    if let Statement::Query(query) = statement {
        fix_query(query, true);
    }
}

//! The PostgreSQL functions meshgate adds to a pgwire session
//! (`to_regtype`, `json_build_object`, `current_setting`, the OID lookups,
//! `pg_size_pretty`, ...).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use crate::session::settings::{SessionSettings, SERVER_VERSION};

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

/// Register the PostgreSQL functions of a pgwire session.
pub(super) fn register(
    ctx: &SessionContext,
    user: &str,
    settings: Arc<std::sync::RwLock<SessionSettings>>,
) {
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
    ctx.register_udf(pg_size_pretty_udf());
    ctx.register_udf(super::arrays::expand_array_udf());
    for udf in super::type_info::udfs() {
        ctx.register_udf(udf);
    }
    ctx.register_udf(create_udf(
        "pg_collation_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    ));
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
        // pg_get_function_result(oid) and pg_get_function_arguments(oid):
        // pg_proc lists no function of a source (pgJDBC's getFunctions).
        (
            "pg_get_function_result",
            Signature::variadic_any(Volatility::Stable),
            DataType::Utf8,
            ScalarValue::Utf8(None),
        ),
        (
            "pg_get_function_arguments",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_pg_size_pretty() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(8192), "8192 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(2_147_483_648), "2048 MB");
        assert_eq!(size_pretty(10 * 1024 * 1024 * 1024), "10 GB");
    }
}

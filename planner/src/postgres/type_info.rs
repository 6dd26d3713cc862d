//! `information_schema`'s `_pg_*` helpers: a column's length, precision,
//! scale and datetime precision from its type OID and type modifier, as
//! PostgreSQL's own information_schema views compute them (some tools
//! call them directly, e.g. `information_schema._pg_char_max_length(
//! a.atttypid, a.atttypmod)`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

const INT2: i64 = 21;
const INT4: i64 = 23;
const INT8: i64 = 20;
const FLOAT4: i64 = 700;
const FLOAT8: i64 = 701;
const NUMERIC: i64 = 1700;
const BPCHAR: i64 = 1042;
const VARCHAR: i64 = 1043;
const DATE: i64 = 1082;
const TIME: i64 = 1083;
const TIMETZ: i64 = 1266;
const TIMESTAMP: i64 = 1114;
const TIMESTAMPTZ: i64 = 1184;
const INTERVAL: i64 = 1186;

/// (name, what it computes from type OID and type modifier).
type Helper = fn(i64, i64) -> Option<i64>;

const HELPERS: &[(&str, Helper)] = &[
    ("_pg_char_max_length", |typid, typmod| {
        matches!(typid, BPCHAR | VARCHAR)
            .then_some(typmod)
            .filter(|m| *m != -1)
            .map(|m| m - 4)
    }),
    ("_pg_char_octet_length", |typid, typmod| {
        matches!(typid, BPCHAR | VARCHAR | 25).then(|| {
            if typmod == -1 {
                1_073_741_824
            } else {
                (typmod - 4) * 4
            }
        })
    }),
    ("_pg_numeric_precision", |typid, typmod| match typid {
        INT2 => Some(16),
        INT4 => Some(32),
        INT8 => Some(64),
        FLOAT4 => Some(24),
        FLOAT8 => Some(53),
        NUMERIC if typmod != -1 => Some(((typmod - 4) >> 16) & 65535),
        _ => None,
    }),
    ("_pg_numeric_precision_radix", |typid, _| match typid {
        INT2 | INT4 | INT8 | FLOAT4 | FLOAT8 => Some(2),
        NUMERIC => Some(10),
        _ => None,
    }),
    ("_pg_numeric_scale", |typid, typmod| match typid {
        INT2 | INT4 | INT8 => Some(0),
        NUMERIC if typmod != -1 => Some((typmod - 4) & 65535),
        _ => None,
    }),
    ("_pg_datetime_precision", |typid, typmod| match typid {
        DATE => Some(0),
        TIME | TIMETZ | TIMESTAMP | TIMESTAMPTZ => Some(if typmod == -1 { 6 } else { typmod }),
        INTERVAL => Some(if typmod == -1 { 6 } else { typmod & 65535 }),
        _ => None,
    }),
];

#[derive(Debug)]
struct TypeHelper {
    name: &'static str,
    signature: Signature,
    compute: Helper,
}

// A helper is known by its name (function pointers do not compare reliably).
impl PartialEq for TypeHelper {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TypeHelper {}

impl std::hash::Hash for TypeHelper {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for TypeHelper {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let typid = cast(&arrays[0], &DataType::Int64)?;
        let typmod = cast(&arrays[1], &DataType::Int64)?;
        let (typid, typmod) = (
            typid.as_primitive::<Int64Type>(),
            typmod.as_primitive::<Int64Type>(),
        );
        let out: Int32Array = (0..typid.len())
            .map(|i| {
                if typid.is_null(i) || typmod.is_null(i) {
                    return None;
                }
                (self.compute)(typid.value(i), typmod.value(i)).map(|v| v as i32)
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The helpers as UDFs (clients' `information_schema.` prefix is dropped
/// by the SQL rewriting before planning).
pub(crate) fn udfs() -> Vec<ScalarUDF> {
    HELPERS
        .iter()
        .map(|(name, compute)| {
            ScalarUDF::from(TypeHelper {
                name,
                signature: Signature::any(2, Volatility::Immutable),
                compute: *compute,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper(name: &str) -> Helper {
        HELPERS.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn helpers_compute_like_postgresql() {
        // varchar(20) has typmod 24; numeric(12,3) has typmod ((12 << 16) | 3) + 4.
        assert_eq!(helper("_pg_char_max_length")(VARCHAR, 24), Some(20));
        assert_eq!(helper("_pg_char_max_length")(25, -1), None);
        let numeric = ((12 << 16) | 3) + 4;
        assert_eq!(helper("_pg_numeric_precision")(NUMERIC, numeric), Some(12));
        assert_eq!(helper("_pg_numeric_scale")(NUMERIC, numeric), Some(3));
        assert_eq!(helper("_pg_numeric_precision")(INT8, -1), Some(64));
        assert_eq!(helper("_pg_numeric_precision_radix")(NUMERIC, -1), Some(10));
        assert_eq!(helper("_pg_datetime_precision")(TIMESTAMP, -1), Some(6));
        assert_eq!(helper("_pg_datetime_precision")(DATE, -1), Some(0));
    }
}

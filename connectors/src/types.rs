//! SQL type names accepted in declared schemas (`columns = [{ name, type }]`).

use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// Parse a SQL type name such as `bigint`, `varchar`, `decimal(12,2)` or
/// `timestamptz` into the Arrow type meshgate uses for it.
pub(crate) fn parse_sql_type(name: &str) -> Result<DataType, String> {
    let lower = name.trim().to_ascii_lowercase();
    let (base, args) = match lower.split_once('(') {
        Some((base, rest)) => (
            base.trim(),
            Some(
                rest.strip_suffix(')')
                    .ok_or_else(|| format!("unbalanced parentheses in type `{name}`"))?,
            ),
        ),
        None => (lower.as_str(), None),
    };
    let ty = match base {
        "boolean" | "bool" => DataType::Boolean,
        "smallint" | "int2" => DataType::Int16,
        "int" | "integer" | "int4" => DataType::Int32,
        "bigint" | "int8" => DataType::Int64,
        "real" | "float4" => DataType::Float32,
        "double" | "double precision" | "float" | "float8" => DataType::Float64,
        "text" | "varchar" | "string" | "character varying" | "char" => DataType::Utf8,
        "bytea" | "binary" | "varbinary" => DataType::Binary,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" | "timestamp with time zone" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        "decimal" | "numeric" => {
            let (p, s) = match args {
                None => (38, 10),
                Some(args) => {
                    let mut parts = args.split(',').map(|p| p.trim().parse::<i16>());
                    let p = parts
                        .next()
                        .and_then(|p| p.ok())
                        .ok_or_else(|| format!("bad precision in `{name}`"))?;
                    let s = parts.next().map(|s| s.ok()).unwrap_or(Some(0));
                    let s = s.ok_or_else(|| format!("bad scale in `{name}`"))?;
                    (p, s)
                }
            };
            if !(1..=38).contains(&p) || s < 0 || s > p {
                return Err(format!(
                    "precision/scale out of range in `{name}` (1 ≤ p ≤ 38, 0 ≤ s ≤ p)"
                ));
            }
            return Ok(DataType::Decimal128(p as u8, s as i8));
        }
        _ => return Err(format!("unknown type `{name}`")),
    };
    if args.is_some() && !matches!(base, "varchar" | "char" | "character varying") {
        return Err(format!("type `{base}` takes no arguments"));
    }
    Ok(ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_names() {
        assert_eq!(parse_sql_type("BIGINT").unwrap(), DataType::Int64);
        assert_eq!(parse_sql_type("varchar(20)").unwrap(), DataType::Utf8);
        assert_eq!(
            parse_sql_type("numeric(12, 2)").unwrap(),
            DataType::Decimal128(12, 2)
        );
        assert!(parse_sql_type("numeric(50,2)").is_err());
        assert!(parse_sql_type("int(3)").is_err());
        assert!(parse_sql_type("geometry")
            .unwrap_err()
            .contains("unknown type"));
    }
}

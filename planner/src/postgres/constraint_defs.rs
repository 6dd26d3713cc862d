//! `pg_get_constraintdef(oid [, pretty])` for the keys the sources declare:
//! `PRIMARY KEY (id)`, `FOREIGN KEY (region, customer_id) REFERENCES
//! customers(region, id) ON DELETE CASCADE`, as psql's `\d` and BI tools
//! print them.
//!
//! The definitions are made when the session's `pg_constraint` is scanned
//! (see [`super::pg_constraint`]), which a query calling the function on
//! its OIDs does before the function runs; an OID it has not seen (a
//! built-in constraint) reads NULL.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::StringArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use meshgate_connectors::KeyColumn;

/// Definitions by constraint OID, shared by a session's `pg_constraint` and
/// its `pg_get_constraintdef`.
pub(crate) type ConstraintDefs = Arc<RwLock<HashMap<i32, String>>>;

/// The definition of the key made of `parts` (its columns in key order).
pub(crate) fn definition(parts: &[&KeyColumn]) -> String {
    let columns = |f: &dyn Fn(&KeyColumn) -> Option<String>| {
        parts
            .iter()
            .filter_map(|k| f(k))
            .map(|c| quote(&c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let own = columns(&|k| Some(k.column.clone()));
    let Some(r) = parts.first().and_then(|k| k.references.as_ref()) else {
        return format!("PRIMARY KEY ({own})");
    };
    let referenced = columns(&|k| k.references.as_ref().map(|r| r.column.clone()));
    let table = if r.schema == "public" {
        quote(&r.table)
    } else {
        format!("{}.{}", quote(&r.schema), quote(&r.table))
    };
    let mut def = format!("FOREIGN KEY ({own}) REFERENCES {table}({referenced})");
    for (event, code) in [("UPDATE", r.on_update), ("DELETE", r.on_delete)] {
        if let Some(action) = action(code) {
            def.push_str(&format!(" ON {event} {action}"));
        }
    }
    def
}

/// A JDBC rule code as PostgreSQL prints it (`None`: NO ACTION, not printed).
fn action(code: u8) -> Option<&'static str> {
    match code {
        0 => Some("CASCADE"),
        1 => Some("RESTRICT"),
        2 => Some("SET NULL"),
        4 => Some("SET DEFAULT"),
        _ => None,
    }
}

/// An identifier as PostgreSQL prints it: bare when it may be.
pub(crate) fn quote(name: &str) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if bare {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The session's `pg_get_constraintdef` (and, over the indexes' map,
/// `pg_get_indexdef`).
#[derive(Debug)]
pub(crate) struct ConstraintDef {
    name: &'static str,
    signature: Signature,
    defs: ConstraintDefs,
    /// For `pg_get_indexdef(oid, n, pretty)`: each index's columns, in
    /// key order, separated by NUL (which no identifier holds).
    columns: Option<ConstraintDefs>,
}

impl ConstraintDef {
    /// `pg_get_constraintdef(oid [, pretty])`.
    pub(crate) fn new(defs: ConstraintDefs) -> Self {
        let oid = |t: DataType| {
            vec![
                TypeSignature::Exact(vec![t.clone()]),
                TypeSignature::Exact(vec![t, DataType::Boolean]),
            ]
        };
        let signature = Signature::one_of(
            [oid(DataType::Int32), oid(DataType::Int64)].concat(),
            Volatility::Stable,
        );
        Self {
            name: "pg_get_constraintdef",
            signature,
            defs,
            columns: None,
        }
    }

    /// `pg_get_indexdef(oid [, column, pretty])` over the definitions (and
    /// columns) of the primary keys' indexes (see `key_indexes`): the whole
    /// `CREATE INDEX`, or with a column number above 0 that column; any
    /// other OID reads NULL.
    pub(crate) fn index(defs: ConstraintDefs, columns: ConstraintDefs) -> Self {
        Self {
            name: "pg_get_indexdef",
            signature: Signature::variadic_any(Volatility::Stable),
            defs,
            columns: Some(columns),
        }
    }
}

impl PartialEq for ConstraintDef {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.defs, &other.defs)
    }
}

impl Eq for ConstraintDef {}

impl Hash for ConstraintDef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.defs) as usize).hash(state);
    }
}

impl ScalarUDFImpl for ConstraintDef {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let oids = cast(&arrays[0], &DataType::Int64)?;
        // pg_get_indexdef's column number (0: the whole definition).
        let column = match (&self.columns, arrays.get(1)) {
            (Some(_), Some(n)) if n.data_type().is_integer() => Some(cast(n, &DataType::Int64)?),
            _ => None,
        };
        let defs = self.defs.read().expect("constraint definitions lock");
        let columns = self
            .columns
            .as_ref()
            .map(|c| c.read().expect("index columns lock"));
        let out: StringArray = oids
            .as_primitive::<Int64Type>()
            .iter()
            .enumerate()
            .map(|(row, oid)| {
                let oid = oid.and_then(|o| i32::try_from(o).ok())?;
                let n = column
                    .as_ref()
                    .map_or(0, |c| c.as_primitive::<Int64Type>().value(row));
                match (&columns, n) {
                    (Some(columns), n) if n > 0 => columns
                        .get(&oid)?
                        .split('\0')
                        .nth(usize::try_from(n - 1).ok()?)
                        .map(str::to_owned),
                    _ => defs.get(&oid).cloned(),
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshgate_connectors::Referenced;

    fn key(column: &str, references: Option<(&str, u8)>) -> KeyColumn {
        KeyColumn {
            name: "k".into(),
            schema: "public".into(),
            table: "orders".into(),
            column: column.into(),
            position: 1,
            references: references.map(|(c, delete)| Referenced {
                schema: "public".into(),
                table: "customers".into(),
                column: c.into(),
                on_update: 3,
                on_delete: delete,
            }),
        }
    }

    #[test]
    fn keys_print_as_postgresql_prints_them() {
        let id = key("id", None);
        assert_eq!(definition(&[&id]), "PRIMARY KEY (id)");
        let (a, b) = (
            key("region", Some(("region", 0))),
            key("CustomerId", Some(("id", 0))),
        );
        assert_eq!(
            definition(&[&a, &b]),
            "FOREIGN KEY (region, \"CustomerId\") REFERENCES customers(region, id) ON DELETE CASCADE"
        );
    }
}

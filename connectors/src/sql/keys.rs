//! The primary and foreign keys a SQL source declares, as meshgate shows
//! them (Flight SQL's key commands, information_schema, pg_catalog, drafted
//! product descriptors). Read from the source's own catalog with the
//! configured user's rights, one row per key column.

/// One column of a declared key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    /// The constraint's name.
    pub name: String,
    pub schema: String,
    pub table: String,
    pub column: String,
    /// 1-based position of the column in the key.
    pub position: i32,
    /// For a foreign key: what it references.
    pub references: Option<Referenced>,
}

/// The column a foreign key column references, and the key's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referenced {
    pub schema: String,
    pub table: String,
    pub column: String,
    /// JDBC's rule codes: 0 cascade, 1 restrict, 2 set null, 3 no action,
    /// 4 set default.
    pub on_update: u8,
    pub on_delete: u8,
}

/// PostgreSQL: primary and foreign keys with composite columns in order.
pub(crate) const POSTGRES_KEYS_SQL: &str = "\
SELECT c.contype::text, c.conname::text, ns.nspname::text, t.relname::text, a.attname::text,
       k.i::int4, fns.nspname::text, ft.relname::text, fa.attname::text,
       c.confupdtype::text, c.confdeltype::text
  FROM pg_constraint c
  JOIN pg_class t ON t.oid = c.conrelid
  JOIN pg_namespace ns ON ns.oid = t.relnamespace
 CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, i)
  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
  LEFT JOIN pg_class ft ON ft.oid = c.confrelid
  LEFT JOIN pg_namespace fns ON fns.oid = ft.relnamespace
  LEFT JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[k.i]
 WHERE c.contype IN ('p', 'f')
   AND ns.nspname NOT IN ('pg_catalog', 'information_schema')
   AND has_table_privilege(t.oid, 'SELECT')
 ORDER BY 3, 4, 2, 6";

/// MySQL and MariaDB: the same from information_schema.
pub(crate) const MYSQL_KEYS_SQL: &str = "\
SELECT CASE WHEN k.CONSTRAINT_NAME = 'PRIMARY' THEN 'p' ELSE 'f' END,
       k.CONSTRAINT_NAME, k.TABLE_SCHEMA, k.TABLE_NAME, k.COLUMN_NAME,
       CAST(k.ORDINAL_POSITION AS SIGNED), k.REFERENCED_TABLE_SCHEMA,
       k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE
  FROM information_schema.KEY_COLUMN_USAGE k
  LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS r
    ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
 WHERE k.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
   AND (k.CONSTRAINT_NAME = 'PRIMARY' OR k.REFERENCED_TABLE_NAME IS NOT NULL)
 ORDER BY 3, 4, 2, 6";

/// One row of either query, as text (`None`: NULL).
pub(crate) type KeyRow = [Option<String>; 11];

/// The key columns of `rows`.
pub(crate) fn key_columns(rows: impl IntoIterator<Item = KeyRow>) -> Vec<KeyColumn> {
    rows.into_iter()
        .filter_map(|r| {
            let [kind, name, schema, table, column, position, rs, rt, rc, upd, del] = r;
            let references = match kind.as_deref() {
                Some("f") => Some(Referenced {
                    schema: rs?,
                    table: rt?,
                    column: rc?,
                    on_update: rule(upd.as_deref()),
                    on_delete: rule(del.as_deref()),
                }),
                _ => None,
            };
            Some(KeyColumn {
                name: name?,
                schema: schema?,
                table: table?,
                column: column?,
                position: position?.parse().ok()?,
                references,
            })
        })
        .collect()
}

/// A referential rule as JDBC codes it, from PostgreSQL's one-letter codes
/// or MySQL's words.
fn rule(code: Option<&str>) -> u8 {
    match code.unwrap_or("").to_ascii_uppercase().as_str() {
        "C" | "CASCADE" => 0,
        "R" | "RESTRICT" => 1,
        "N" | "SET NULL" => 2,
        "D" | "SET DEFAULT" => 4,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: [&str; 11]) -> KeyRow {
        cells.map(|c| (!c.is_empty()).then(|| c.to_owned()))
    }

    #[test]
    fn primary_and_foreign_key_rows() {
        let keys = key_columns([
            row([
                "p",
                "orders_pkey",
                "s",
                "orders",
                "id",
                "1",
                "",
                "",
                "",
                "",
                "",
            ]),
            row([
                "f",
                "orders_customer",
                "s",
                "orders",
                "customer_id",
                "1",
                "s",
                "customers",
                "id",
                "a",
                "c",
            ]),
            row(["f", "broken", "s", "orders", "x", "1", "", "", "", "", ""]),
        ]);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].references, None);
        let fk = keys[1].references.as_ref().unwrap();
        assert_eq!(
            (fk.table.as_str(), fk.on_update, fk.on_delete),
            ("customers", 3, 0)
        );
    }
}

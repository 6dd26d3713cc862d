//! The comments a SQL source keeps on its tables and columns (PostgreSQL's
//! `COMMENT ON`, MySQL's `COMMENT` clauses), as descriptions meshgate shows
//! in pg_catalog (`\dt+`, `obj_description`) and Flight SQL's GetTables.

use crate::Description;

/// PostgreSQL: comments on tables, views and their columns.
pub(crate) const POSTGRES_COMMENTS_SQL: &str = "\
SELECT n.nspname::text, c.relname::text, a.attname::text, d.description::text
  FROM pg_description d
  JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
   AND (d.objsubid = 0 OR a.attname IS NOT NULL)";

/// MySQL and MariaDB: non-empty table and column comments.
pub(crate) const MYSQL_COMMENTS_SQL: &str = "\
SELECT TABLE_SCHEMA, TABLE_NAME, NULL, TABLE_COMMENT FROM information_schema.TABLES
 WHERE TABLE_COMMENT <> '' AND TABLE_TYPE = 'BASE TABLE'
   AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
UNION ALL
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS
 WHERE COLUMN_COMMENT <> ''
   AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')";

/// Descriptions from rows of either query: schema, table, column (NULL for
/// the table), text.
pub(crate) fn descriptions(
    rows: impl IntoIterator<Item = [Option<String>; 4]>,
) -> Vec<Description> {
    rows.into_iter()
        .filter_map(|[schema, table, column, text]| {
            Some(Description {
                schema: schema?,
                table: table?,
                column,
                text: text.filter(|t| !t.is_empty())?,
            })
        })
        .collect()
}

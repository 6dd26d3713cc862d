-- tool: JetBrains DataGrip (PostgreSQL via pgjdbc + JetBrains introspector)
-- source: datafusion-contrib/datafusion-postgres@issue-165:https://github.com/datafusion-contrib/datafusion-postgres/issues/165 (PostgreSQL statement log of DataGrip 2025.2.3 connecting)
-- source: dolthub/doltgresql@issue-791:https://github.com/dolthub/doltgresql/issues/791 (DataGrip schema-introspection query quoted from a connection)
-- source: pgjdbc/pgjdbc@REL42.7.13:pgjdbc/src/main/java/org/postgresql/jdbc/PgDatabaseMetaData.java
-- source: pgjdbc/pgjdbc@REL42.7.13:pgjdbc/src/main/java/org/postgresql/jdbc/PgConnection.java
-- notes: DataGrip's introspector (its catalog SQL) is closed source; only the statements that appear in the two public logs above are included from it (SET/version/current_database probes from issue 165, the pg_namespace introspection query from doltgresql issue 791, trailing ';' removed). The remaining statements are pgjdbc DatabaseMetaData queries (REL42.7.13, PostgreSQL 16, hideUnprivilegedObjects=false) that DataGrip triggers when 'Introspect using JDBC metadata' is enabled or via its JDBC layer: getCatalogs(), getSchemas(), getTables(null,'public','%',null), getColumns(null,'public','members',null), getPrimaryKeys(null,'public','members'). Which of these DataGrip calls in its default (native introspector) mode is not documented publicly. The two SETs come from the bundled pgjdbc/DataGrip as logged (application name 'DataGrip 2025.2.3' as in the log).
---
-- pgjdbc initial query as logged for DataGrip 2025.2.3
SET extra_float_digits = 3
---
-- server version probe (DataGrip, logged)
select version()
---
-- application name (DataGrip, logged)
SET application_name = 'DataGrip 2025.2.3'
---
-- database / search path probe (DataGrip, logged)
select current_database() as a, current_schemas(false) as b
---
-- pgjdbc Connection.getTransactionIsolation (logged)
SHOW TRANSACTION ISOLATION LEVEL
---
-- session defaults probe (DataGrip, logged)
select current_database(), current_schema(), current_user
---
-- schema introspection (DataGrip introspector, quoted in doltgresql issue 791)
select N.oid::bigint as id,
N.xmin as state_number,
nspname as name,
D.description,
pg_catalog.pg_get_userbyid(N.nspowner) as "owner"
from pg_catalog.pg_namespace N
left join pg_catalog.pg_description D on N.oid = D.objoid
order by case when nspname = pg_catalog.current_schema() then -1::bigint else N.oid::bigint end
---
-- pgjdbc DatabaseMetaData.getCatalogs
SELECT datname AS "TABLE_CAT" FROM pg_catalog.pg_database WHERE datallowconn = true ORDER BY datname
---
-- pgjdbc DatabaseMetaData.getSchemas
SELECT nspname AS "TABLE_SCHEM", current_database() AS "TABLE_CATALOG" FROM pg_catalog.pg_namespace  WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_'  OR nspname = (pg_catalog.current_schemas(true))[1]) AND (nspname !~ '^pg_toast_temp_'  OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_'))  ORDER BY "TABLE_SCHEM"
---
-- pgjdbc DatabaseMetaData.getTables (schema public, all types)
SELECT current_database() AS "TABLE_CAT", n.nspname AS "TABLE_SCHEM", c.relname AS "TABLE_NAME",  CASE n.nspname ~ '^pg_' OR n.nspname = 'information_schema'  WHEN true THEN CASE  WHEN n.nspname = 'pg_catalog' OR n.nspname = 'information_schema' THEN CASE c.relkind   WHEN 'r' THEN 'SYSTEM TABLE'   WHEN 'v' THEN 'SYSTEM VIEW'   WHEN 'i' THEN 'SYSTEM INDEX'   ELSE NULL   END  WHEN n.nspname = 'pg_toast' THEN CASE c.relkind   WHEN 'r' THEN 'SYSTEM TOAST TABLE'   WHEN 'i' THEN 'SYSTEM TOAST INDEX'   ELSE NULL   END  ELSE CASE c.relkind   WHEN 'r' THEN 'TEMPORARY TABLE'   WHEN 'p' THEN 'TEMPORARY TABLE'   WHEN 'i' THEN 'TEMPORARY INDEX'   WHEN 'S' THEN 'TEMPORARY SEQUENCE'   WHEN 'v' THEN 'TEMPORARY VIEW'   ELSE NULL   END  END  WHEN false THEN CASE c.relkind  WHEN 'r' THEN 'TABLE'  WHEN 'p' THEN 'PARTITIONED TABLE'  WHEN 'i' THEN 'INDEX'  WHEN 'P' then 'PARTITIONED INDEX'  WHEN 'S' THEN 'SEQUENCE'  WHEN 'v' THEN 'VIEW'  WHEN 'c' THEN 'TYPE'  WHEN 'f' THEN 'FOREIGN TABLE'  WHEN 'm' THEN 'MATERIALIZED VIEW'  ELSE NULL  END  ELSE NULL  END  AS "TABLE_TYPE", d.description AS "REMARKS",  '' as "TYPE_CAT", '' as "TYPE_SCHEM", '' as "TYPE_NAME", '' AS "SELF_REFERENCING_COL_NAME", '' AS "REF_GENERATION"  FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c  LEFT JOIN pg_catalog.pg_description d ON (c.oid = d.objoid AND d.objsubid = 0  and d.classoid = 'pg_class'::regclass)  WHERE c.relnamespace = n.oid  AND n.nspname LIKE 'public' AND c.relname LIKE '%' ORDER BY "TABLE_TYPE","TABLE_SCHEM","TABLE_NAME"
---
-- pgjdbc DatabaseMetaData.getColumns (public.members)
SELECT * FROM (SELECT current_database() AS current_database, n.nspname,c.relname,a.attname,a.atttypid,a.attnotnull  OR (t.typtype = 'd' AND t.typnotnull) AS attnotnull,a.atttypmod,a.attlen,t.typtypmod,row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS attnum, nullif(a.attidentity, '') as attidentity,nullif(a.attgenerated, '') as attgenerated,pg_catalog.pg_get_expr(def.adbin, def.adrelid) AS adsrc,dsc.description,t.typbasetype,t.typtype  FROM pg_catalog.pg_namespace n  JOIN pg_catalog.pg_class c ON (c.relnamespace = n.oid)  JOIN pg_catalog.pg_attribute a ON (a.attrelid=c.oid)  JOIN pg_catalog.pg_type t ON (a.atttypid = t.oid)  LEFT JOIN pg_catalog.pg_attrdef def ON (a.attrelid=def.adrelid AND a.attnum = def.adnum)  LEFT JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)  LEFT JOIN pg_catalog.pg_class dc ON (dc.oid=dsc.classoid AND dc.relname='pg_class')  LEFT JOIN pg_catalog.pg_namespace dn ON (dc.relnamespace=dn.oid AND dn.nspname='pg_catalog')  WHERE c.relkind in ('r','p','v','f','m') and a.attnum > 0 AND NOT a.attisdropped  AND n.nspname LIKE 'public' AND c.relname LIKE 'members') c WHERE true  ORDER BY nspname,c.relname,attnum
---
-- pgjdbc DatabaseMetaData.getPrimaryKeys (public.members)
SELECT        result.TABLE_CAT AS "TABLE_CAT",        result.TABLE_SCHEM AS "TABLE_SCHEM",        result.TABLE_NAME AS "TABLE_NAME",        result.COLUMN_NAME AS "COLUMN_NAME",        result.KEY_SEQ AS "KEY_SEQ",        result.PK_NAME AS "PK_NAME"FROM      (SELECT current_database() AS TABLE_CAT, n.nspname AS TABLE_SCHEM,   ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME,   (information_schema._pg_expandarray(con.conkey)).n AS KEY_SEQ, con.conname AS PK_NAME,   information_schema._pg_expandarray(con.conkey) AS KEYS, a.attnum AS A_ATTNUM FROM pg_catalog.pg_constraint con   JOIN pg_catalog.pg_class ct ON (con.conrelid = ct.oid)   JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)   JOIN pg_catalog.pg_attribute a ON (a.attrelid = ct.oid) WHERE con.contype = 'p'  AND n.nspname = 'public' AND ct.relname = 'members' ) result where  result.A_ATTNUM = (result.KEYS).x  ORDER BY result.table_name, result.pk_name, result.key_seq

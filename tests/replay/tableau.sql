-- tool: Tableau (PostgreSQL via psqlODBC, as in Tableau's postgres_odbc connector sample: UseDeclareFetch=1, Fetch=2048, BOOLSASCHAR=0, LFCONVERSION=0)
-- source: postgresql-interfaces/psqlodbc@REL-16_00_0000 (196279073b2fa563b0b1554072f8e3aa2865ddab):connection.c
-- source: postgresql-interfaces/psqlodbc@REL-16_00_0000 (196279073b2fa563b0b1554072f8e3aa2865ddab):info.c
-- source: tableau/connector-plugin-sdk@1c77675c48bc035b1192bb003de97d8ce4fad07c:samples/plugins/postgres_odbc/connectionBuilder.js
-- source: tableau/connector-plugin-sdk@0daaf6a56409e2417a90d36824fb2a63059e5269:samples/plugins/postgres_odbc/manifest.xml
-- notes: psqlODBC sends the first three statements as ONE simple-query string "SET DateStyle = 'ISO';SET extra_float_digits = 2;show transaction_isolation"; they are split into separate blocks here. Catalog texts are rendered for PostgreSQL 16 with standard_conforming_strings=on (so no E'' prefix on patterns), default DSN options (ShowSystemTables=0, no accessible-only filter), search-pattern mode: SQLTables('%','','','') -> catalog list, SQLTables('','%','','') -> schema list, SQLTables(NULL,NULL,NULL,'TABLE,VIEW') -> all tables, SQLTables(NULL,'public','%','TABLE,VIEW') -> tables in public, SQLColumns(NULL,'public','members',NULL), SQLPrimaryKeys(NULL,'public','members') (psqlODBC 16.00 uses plain '=' there; 18.00 switched to operator(pg_catalog.=)). 'select current_schema()' is issued lazily when a schema is needed but not given; 'show max_identifier_length' is issued by SQLGetInfo. 'set client_encoding to ...' is only sent when the server-reported client_encoding differs, so it is not included. NOT included: Tableau's own SQL wrapped by psqlODBC as declare "SQL_CUR<address>" cursor with hold for <query> / fetch 2048 in "SQL_CUR<address>" (the wrapper format is in psqlODBC convert.c/qresult.c, but Tableau's inner query texts are not public), and select version(). Note: newer Tableau releases ship a JDBC-based PostgreSQL connector (pgjdbc); its queries are those in metabase.sql/datagrip.sql.
---
-- connect: DateStyle (part 1 of the combined startup string, LIBPQ_CC_connect)
SET DateStyle = 'ISO'
---
-- connect: extra_float_digits (part 2 of the combined startup string)
SET extra_float_digits = 2
---
-- connect: isolation level (part 3 of the combined startup string, ISOLATION_SHOW_QUERY)
show transaction_isolation
---
-- connect: large-object type lookup (CC_lookup_lo)
select oid, typbasetype from pg_type where typname = 'lo'
---
-- current schema (CC_get_current_schema)
select current_schema()
---
-- max identifier length (CC_get_max_idlen, for SQLGetInfo)
show max_identifier_length
---
-- SQLTables catalog enumeration
select NULL, NULL, NULL
---
-- SQLTables schema enumeration
select NULL, nspname, NULL from pg_catalog.pg_namespace n where true and nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_1') order by nspname
---
-- SQLTables all tables/views (no schema given)
select relname, nspname, relkind from pg_catalog.pg_class c, pg_catalog.pg_namespace n where relkind in ('r', 'v', 'm', 'f', 'p') and nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_1') and n.oid = relnamespace order by nspname, relname
---
-- SQLTables tables/views in schema public
select relname, nspname, relkind from pg_catalog.pg_class c, pg_catalog.pg_namespace n where relkind in ('r', 'v', 'm', 'f', 'p') and nspname like 'public' and relname like '%' and nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_1') and n.oid = relnamespace order by nspname, relname
---
-- SQLColumns public.members
select n.nspname, c.relname, a.attname, a.atttypid, t.typname, a.attnum, a.attlen, a.atttypmod, a.attnotnull, c.relhasrules, c.relkind, c.oid, pg_get_expr(d.adbin, d.adrelid), case t.typtype when 'd' then t.typbasetype else 0 end, t.typtypmod, 0, attidentity, c.relhassubclass from (((pg_catalog.pg_class c inner join pg_catalog.pg_namespace n on n.oid = c.relnamespace and c.relname like 'members' and n.nspname like 'public') inner join pg_catalog.pg_attribute a on (not a.attisdropped) and a.attnum > 0 and a.attrelid = c.oid) inner join pg_catalog.pg_type t on t.oid = a.atttypid) left outer join pg_attrdef d on a.atthasdef and d.adrelid = a.attrelid and d.adnum = a.attnum order by n.nspname, c.relname, attnum
---
-- SQLPrimaryKeys public.members
select ta.attname, ia.attnum, ic.relname, n.nspname, tc.relname from pg_catalog.pg_attribute ta, pg_catalog.pg_attribute ia, pg_catalog.pg_class tc, pg_catalog.pg_index i, pg_catalog.pg_namespace n, pg_catalog.pg_class ic where tc.relname = 'members' AND n.nspname = 'public' AND tc.oid = i.indrelid AND n.oid = tc.relnamespace AND i.indisprimary = 't' AND ia.attrelid = i.indexrelid AND ta.attrelid = i.indrelid AND ta.attnum = i.indkey[ia.attnum-1] AND (NOT ta.attisdropped) AND (NOT ia.attisdropped) AND ic.oid = i.indexrelid order by ia.attnum

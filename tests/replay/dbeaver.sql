-- tool: DBeaver (PostgreSQL plugin org.jkiss.dbeaver.ext.postgresql, bundling pgjdbc)
-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataSource.java
-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreExecutionContext.java
-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java
-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSchema.java
-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/PostgreUtils.java
-- source: pgjdbc/pgjdbc@REL42.7.13:pgjdbc/src/main/java/org/postgresql/jdbc/TypeInfoCache.java
-- source: datafusion-contrib/datafusion-postgres@issue-135:https://github.com/datafusion-contrib/datafusion-postgres/issues/135 (PostgreSQL statement log of DBeaver 25.1.5, used to confirm order and the pg_type OID 1034 lookup)
-- notes: DBeaver snapshot is 24.2.3+21 commits (2428359b). Rendered for a PostgreSQL 16 server with default connection settings (no 'show all databases', no 'read all data types', no object filters). JDBC '?' parameters replaced by literals: database name 'members', setting name 'standard_conforming_strings', schema OID 2200 (public) for c.relnamespace=?, type OID 1034 for the pgjdbc TypeInfoCache lookups. The database-list statement is only sent when 'Show all databases' is enabled (connection name 'members' substituted for db.datname =?). The column query is the per-schema form (c.relnamespace=?) rather than the per-table form (c.oid=?). Java string concatenation kept as-is, including embedded newlines; trailing ';' of the pgjdbc query removed.
---
-- server version probe (PostgreDataSource.initialize)
SELECT version()
---
-- pg_enum availability probe (PostgreUtils.isMetaObjectExists("pg_enum","*"), server >= 12)
SELECT * FROM pg_catalog.pg_enum WHERE 1<>1 LIMIT 1
---
-- pg_class.reltype availability probe (PostgreUtils.isMetaObjectExists)
SELECT reltype FROM pg_catalog.pg_class WHERE 1<>1 LIMIT 1
---
-- preload standard_conforming_strings setting (SettingCache)
select * from pg_catalog.pg_settings where name='standard_conforming_strings'
---
-- read active database info (PostgreDatabase.readDatabaseInfo)
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='members'
---
-- database list when "Show all databases" is enabled (prepareReadDatabaseListStatement)
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE 1 = 1 AND datallowconn AND NOT datistemplate OR db.datname ='members'
ORDER BY db.datname
---
-- context defaults (PostgreExecutionContext.refreshDefaults)
SELECT current_schema(),session_user
---
-- search path (PostgreExecutionContext.refreshDefaults)
SHOW search_path
---
-- list schemas (PostgreDatabase.SchemaCache)
SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass
 ORDER BY nspname
---
-- load data types (PostgreDatabase.cacheDataTypes, server >= 10)
SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description
FROM pg_catalog.pg_type t
LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem 
LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid
WHERE t.typname IS NOT NULL
AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C')
---
-- pgjdbc TypeInfoCache: type name lookup by OID
SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = 1034
---
-- pgjdbc TypeInfoCache: SQL type lookup by OID
SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid   FROM pg_catalog.pg_type   LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r           from pg_namespace as ns           join ( select s.r, (current_schemas(false))[s.r] as nspname                    from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r          using ( nspname )        ) as sp     ON sp.nspoid = typnamespace  WHERE pg_type.oid = 1034  ORDER BY sp.r, pg_type.oid DESC
---
-- list tables/views in schema public (PostgreSchema.TableCache, server >= 10)
SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key 
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
WHERE c.relnamespace=2200 AND c.relkind not in ('i','I','c')
---
-- list columns of all tables in schema public (PostgreSchema.TableCache.prepareChildrenStatement)
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid
WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.relnamespace=2200
ORDER BY a.attnum

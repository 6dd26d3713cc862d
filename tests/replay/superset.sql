-- tool: Apache Superset (SQLAlchemy 1.4 PostgreSQL dialect over psycopg2)
-- source: apache/superset@002166c3ffa50e67c4f7bb109f49f39f880442fb:pyproject.toml (pins sqlalchemy>=1.4,<2 and psycopg2-binary==2.9.6)
-- source: apache/superset@000f332e61e1c0216752bdac49195bdd5f580dfe:requirements/base.txt (sqlalchemy==1.4.54)
-- source: apache/superset@007e4f5f4b4a4b08b24b1f2fc14bcf5abb16237d:superset/db_engine_specs/postgres.py
-- source: sqlalchemy/sqlalchemy@rel_1_4_54:lib/sqlalchemy/dialects/postgresql/base.py
-- source: psycopg/psycopg2@7a8f4d62229bb1a6404719a7740e468087ddbeff (2.9.6 version bump):lib/extras.py
-- notes: Rendered for PostgreSQL 16 (server_version_info >= 12, so the attgenerated/identity branches of get_columns are used). psycopg2 interpolates bind parameters client-side, so :schema -> 'public', :name/:table_name -> 'members', and :table_oid -> 16384 (placeholder for the OID that get_table_oid returns; FirstNormalObjectId). Reflection order follows the connect (initialize) sequence, then Superset's schema/table/column browsing (get_catalog_names, get_schema_names, get_table_names + get_foreign_table_names, get_view_names, get_columns, get_pk_constraint). _load_enums is called with schema='*' so it has no schema filter. Trailing ';' removed from the Superset catalog query and the psycopg2 hstore query; leading blank line and trailing indentation of triple-quoted strings stripped.
---
-- server version (PGDialect._get_server_version_info)
select pg_catalog.version()
---
-- default schema (PGDialect._get_default_schema_name)
select current_schema()
---
-- default isolation level (PGDialect.get_isolation_level)
show transaction isolation level
---
-- backslash escapes check (PGDialect.initialize)
show standard_conforming_strings
---
-- hstore OID lookup (psycopg2 extras.HstoreAdapter.get_oids via PGDialect_psycopg2.initialize)
SELECT t.oid, typarray
FROM pg_type t JOIN pg_namespace ns
    ON typnamespace = ns.oid
WHERE typname = 'hstore'
---
-- list databases (Superset PostgresEngineSpec.get_catalog_names)
SELECT datname FROM pg_database
WHERE datistemplate = false
---
-- list schemas (get_schema_names)
SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' ORDER BY nspname
---
-- list tables in public (get_table_names)
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind in ('r', 'p')
---
-- list foreign tables in public (_get_foreign_table_names, used by Superset PostgresEngineSpec.get_table_names)
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'f'
---
-- list views in public (get_view_names, plain + materialized)
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm')
---
-- table OID lookup (get_table_oid)
            SELECT c.oid
            FROM pg_catalog.pg_class c
            LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE (n.nspname = 'public')
            AND c.relname = 'members' AND c.relkind in
            ('r', 'v', 'm', 'f', 'p')
---
-- describe columns (get_columns)
            SELECT a.attname,
              pg_catalog.format_type(a.atttypid, a.atttypmod),
              (
                SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid)
                FROM pg_catalog.pg_attrdef d
                WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum
                AND a.atthasdef
              ) AS DEFAULT,
              a.attnotnull,
              a.attrelid as table_oid,
              pgd.description as comment,
              a.attgenerated as generated,
                              (SELECT json_build_object(
                    'always', a.attidentity = 'a',
                    'start', s.seqstart,
                    'increment', s.seqincrement,
                    'minvalue', s.seqmin,
                    'maxvalue', s.seqmax,
                    'cache', s.seqcache,
                    'cycle', s.seqcycle)
                FROM pg_catalog.pg_sequence s
                JOIN pg_catalog.pg_class c on s.seqrelid = c."oid"
                WHERE c.relkind = 'S'
                AND a.attidentity != ''
                AND s.seqrelid = pg_catalog.pg_get_serial_sequence(
                    a.attrelid::regclass::text, a.attname
                )::regclass::oid
                ) as identity_options                
            FROM pg_catalog.pg_attribute a
            LEFT JOIN pg_catalog.pg_description pgd ON (
                pgd.objoid = a.attrelid AND pgd.objsubid = a.attnum)
            WHERE a.attrelid = 16384
            AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
---
-- domains (_load_domains, called by get_columns)
            SELECT t.typname as "name",
               pg_catalog.format_type(t.typbasetype, t.typtypmod) as "attype",
               not t.typnotnull as "nullable",
               t.typdefault as "default",
               pg_catalog.pg_type_is_visible(t.oid) as "visible",
               n.nspname as "schema"
            FROM pg_catalog.pg_type t
               LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
            WHERE t.typtype = 'd'
---
-- enums (_load_enums(schema="*"), called by get_columns)
            SELECT t.typname as "name",
               -- no enum defaults in 8.4 at least
               -- t.typdefault as "default",
               pg_catalog.pg_type_is_visible(t.oid) as "visible",
               n.nspname as "schema",
               e.enumlabel as "label"
            FROM pg_catalog.pg_type t
                 LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
                 LEFT JOIN pg_catalog.pg_enum e ON t.oid = e.enumtypid
            WHERE t.typtype = 'e'
        ORDER BY "schema", "name", e.oid
---
-- primary key columns (get_pk_constraint, server >= 8.4)
                SELECT a.attname
                FROM pg_attribute a JOIN (
                    SELECT unnest(ix.indkey) attnum,
                           generate_subscripts(ix.indkey, 1) ord
                    FROM pg_index ix
                    WHERE ix.indrelid = 16384 AND ix.indisprimary
                    ) k ON a.attnum=k.attnum
                WHERE a.attrelid = 16384
                ORDER BY k.ord

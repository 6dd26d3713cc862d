"""DuckDB side of `sql-pushdown`'s TPC-H join: customer from PostgreSQL
through DuckDB's postgres extension, orders from the same Parquet file.

usage: tpch_join_duckdb.py "<libpq dsn>" orders.parquet "<query>" runs
The query names CUSTOMER and ORDERS; prints a Markdown table row.
"""
import glob
import os
import shutil
import statistics
import sys
import tempfile
import time

import duckdb
import duckdb_extension_postgres

dsn, parquet, query, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
con = duckdb.connect()
# The wheel ships the extension file; load it from there (no download).
ext_dir = os.path.join(os.path.dirname(duckdb_extension_postgres.__file__), "extensions")
ext = glob.glob(os.path.join(ext_dir, f"v{duckdb.__version__}", "*.duckdb_extension"))
# DuckDB derives the entry point from the file name: postgres_scanner.
scanner = os.path.join(tempfile.mkdtemp(), "postgres_scanner.duckdb_extension")
shutil.copyfile(ext[0], scanner)
con.execute(f"LOAD '{scanner}'")
con.execute(f"ATTACH '{dsn}' AS pg (TYPE postgres, READ_ONLY)")
sql = query.replace("CUSTOMER", "pg.public.customer").replace(
    "ORDERS", f"read_parquet('{parquet}')"
)
times = []
for _ in range(runs):
    start = time.perf_counter()
    rows = con.execute(sql).fetchall()
    times.append(time.perf_counter() - start)
    assert len(rows) == 5, rows
print(f"| DuckDB {duckdb.__version__} + postgres extension | {statistics.median(times) * 1000:.1f} ms |")

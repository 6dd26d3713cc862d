"""DuckDB side of `sql-pushdown`'s TPC-H join: customer from PostgreSQL or
MySQL through DuckDB's postgres or mysql extension, orders from the same
Parquet file.

usage: tpch_join_duckdb.py postgres|mysql "<dsn>" orders.parquet "<query>" runs
The query names CUSTOMER and ORDERS; prints a Markdown table row.
"""
import glob
import os
import shutil
import statistics
import sys
import tempfile
import time

import importlib

import duckdb

kind, dsn, parquet, query = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
runs = int(sys.argv[5])
wheel = importlib.import_module(f"duckdb_extension_{kind}")
con = duckdb.connect()
# The wheel ships the extension file; load it from there (no download).
ext_dir = os.path.join(os.path.dirname(wheel.__file__), "extensions")
ext = glob.glob(os.path.join(ext_dir, f"v{duckdb.__version__}", "*.duckdb_extension"))
# DuckDB derives the entry point from the file name: postgres_scanner,
# mysql_scanner.
scanner = os.path.join(tempfile.mkdtemp(), f"{kind}_scanner.duckdb_extension")
shutil.copyfile(ext[0], scanner)
con.execute(f"LOAD '{scanner}'")
con.execute(f"ATTACH '{dsn}' AS src (TYPE {kind}, READ_ONLY)")
customer = "src.public.customer" if kind == "postgres" else "src.customer"
sql = query.replace("CUSTOMER", customer).replace(
    "ORDERS", f"read_parquet('{parquet}')"
)
times = []
for _ in range(runs):
    start = time.perf_counter()
    rows = con.execute(sql).fetchall()
    times.append(time.perf_counter() - start)
    assert len(rows) == 5, rows
print(f"| DuckDB {duckdb.__version__} + {kind} extension | {statistics.median(times) * 1000:.1f} ms |")

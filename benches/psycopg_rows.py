#!/usr/bin/env python3
"""psycopg fetching N rows over pgwire, text and binary: meshgate serving a
Parquet file against PostgreSQL serving the same rows from a table.

The rows are `id bigint, name text, amount float8, day date` (the columns
of `pgwire-stream`), fetched whole with a server-side cursor-less
`cursor.execute(...); fetchall()`, once with text results and once with
binary (`cursor(binary=True)`). Prints a Markdown table: best and median
seconds of `--runs`, and meshgate's time over PostgreSQL's.

Usage (after a release build; the bench venv of BENCHMARKS.md):
  ~/.cache/meshgate/bench-venv/bin/python benches/psycopg_rows.py \\
      --meshgate $CARGO_TARGET_DIR/release/meshgate [--rows 1000000] [--runs 3] \\
      [--pg 'host=127.0.0.1 port=5432 user=postgres dbname=postgres']
"""

import argparse
import os
import sys
import tempfile
import time

import psycopg
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tpch import serve_catalogs  # noqa: E402

COLUMNS = "id, name, amount, day"


def load_postgres(pg, table, rows):
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(
            f"CREATE TABLE {table} AS SELECT i::bigint AS id, 'member-' || i AS name, "
            f"i * 0.25::float8 AS amount, DATE '2020-01-01' + (i % 1000)::int AS day "
            f"FROM generate_series(0, {rows - 1}) AS i")
        conn.execute(f"VACUUM ANALYZE {table}")


def export_parquet(pg, table, path):
    """The PostgreSQL table as one Parquet file, through psycopg's binary COPY."""
    import pyarrow as pa
    with psycopg.connect(pg) as conn:
        cur = conn.cursor(binary=True)
        cur.execute(f"SELECT {COLUMNS} FROM {table} ORDER BY id")
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
    columns = list(zip(*rows))
    types = [pa.int64(), pa.string(), pa.float64(), pa.date32()]
    pq.write_table(pa.table([pa.array(c, t) for c, t in zip(columns, types)], names=names), path,
                   row_group_size=128 * 1024)


def timed(dsn, sql, binary, runs, rows):
    times = []
    with psycopg.connect(dsn) as conn:
        for _ in range(runs):
            t0 = time.perf_counter()
            cur = conn.cursor(binary=binary)
            cur.execute(sql)
            got = len(cur.fetchall())
            times.append(time.perf_counter() - t0)
            assert got == rows, (got, rows)
    times.sort()
    return times[0], times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meshgate", required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pg", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    args = ap.parse_args()
    table = f"meshgate_psycopg_rows_{os.getpid()}"
    load_postgres(args.pg, table, args.rows)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            parquet = os.path.join(tmp, "t.parquet")
            export_parquet(args.pg, table, parquet)
            catalogs = (f'[catalogs.bench]\nconnector = "files"\n'
                        f'[catalogs.bench.tables.t]\npath = "{parquet}"\n')
            with serve_catalogs(args.meshgate, catalogs, pgwire=True) as (_, port):
                meshgate = f"host=127.0.0.1 port={port} user=bench password=bench dbname=bench"
                print("| format | meshgate best / median (s) | PostgreSQL best / median (s) | ratio (best) |")
                print("| --- | ---: | ---: | ---: |")
                for binary in [False, True]:
                    mg = timed(meshgate, f"SELECT {COLUMNS} FROM bench.public.t", binary, args.runs, args.rows)
                    pg = timed(args.pg, f"SELECT {COLUMNS} FROM {table}", binary, args.runs, args.rows)
                    name = "binary" if binary else "text"
                    print(f"| {name} | {mg[0]:.2f} / {mg[1]:.2f} | {pg[0]:.2f} / {pg[1]:.2f} "
                          f"| {mg[0] / pg[0]:.2f}× |")
    finally:
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


if __name__ == "__main__":
    main()

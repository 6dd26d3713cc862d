#!/usr/bin/env python3
"""TPC-H, all 22 queries over Parquet: meshgate via Flight SQL vs DuckDB.

The eight tables (`tpch-gen` writes them, one Parquet file each) are served
by a release `meshgate` as the files catalog `tpch` (the default catalog, so
the queries name bare tables) and read by DuckDB in-process through views
over the same files. Each query runs `--runs` times on each engine, one
engine after the other in the same run; the table gives the medians, their
ratio (meshgate time ÷ DuckDB time: lower is better) and the geometric mean
of the ratios. Both engines' answers are compared (row count and values,
numbers to 6 significant digits), so a fast wrong answer is caught.

Usage (from the repository root):
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meshgate/target}
  cargo build --release --bins
  $CARGO_TARGET_DIR/release/tpch-gen --sf 1 --out ~/.cache/meshgate/tpch-sf1
  $HOME/.cache/meshgate/venv/bin/pip install duckdb
  $HOME/.cache/meshgate/venv/bin/python benches/tpch.py \
      --meshgate $CARGO_TARGET_DIR/release/meshgate --data ~/.cache/meshgate/tpch-sf1 \
      [--runs 3] [--queries 1,3,18] [--config-extra '[execution]\\nbatch_size = 16384']
      [--ballista-executors 2]

With `--ballista-executors N`, a `meshgate ballista-scheduler` and N
`meshgate ballista-executor` processes are started on this machine and the
gateway sends every query to them (`[execution] ballista`, no size
threshold); `--config-extra` must then not have an `[execution]` table.
"""

import argparse
import contextlib
import datetime
import decimal
import math
import os
import socket
import subprocess
import sys
import tempfile
import time

import adbc_driver_flightsql.dbapi as flightsql
import duckdb

TABLES = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def normalise(value):
    """A value both engines agree on: numbers to 6 significant digits."""
    if isinstance(value, (float, decimal.Decimal)):
        return float(f"{float(value):.6g}")
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, int):
        return float(f"{value:.6g}") if abs(value) >= 10**6 else value
    return value


def rows_of(table):
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return [tuple(normalise(c[r]) for c in columns) for r in range(table.num_rows)]


def median(times):
    times = sorted(times)
    return times[len(times) // 2]


@contextlib.contextmanager
def serve(meshgate, data, extra="", pgwire=False):
    """A release meshgate serving the TPC-H files of `data` as catalog
    `tpch` (user `bench`, password `bench`): yields (flight port, pgwire
    port or None)."""
    tables = "".join(f'[catalogs.tpch.tables.{t}]\npath = "{t}.parquet"\n' for t in TABLES)
    catalogs = f'[catalogs.tpch]\nconnector = "files"\nroot = "{data}"\n{tables}{extra}\n'
    with serve_catalogs(meshgate, catalogs, default_catalog="tpch", pgwire=pgwire) as ports:
        yield ports


@contextlib.contextmanager
def serve_catalogs(meshgate, catalogs, default_catalog=None, pgwire=False):
    """A release meshgate serving `catalogs` (TOML, with anything else to
    append to the config) to user `bench`, password `bench`: yields (flight
    port, pgwire port or None) once they accept connections."""
    with tempfile.TemporaryDirectory() as tmp:
        flight_port = free_port()
        pg_port = free_port() if pgwire else None
        hashed = subprocess.run([meshgate, "hash-password", "bench"], check=True,
                                capture_output=True, text=True).stdout.strip()
        listeners = f'[listeners.flight_sql]\naddress = "127.0.0.1:{flight_port}"\n'
        if pg_port:
            listeners += f'[listeners.pgwire]\naddress = "127.0.0.1:{pg_port}"\n'
        server_table = f'[server]\ndefault_catalog = "{default_catalog}"\n' if default_catalog else ""
        config = os.path.join(tmp, "meshgate.toml")
        with open(config, "w") as f:
            f.write(f'{server_table}{listeners}'
                    f'[auth]\nallow_cleartext = true\n'
                    f'[users.bench]\npassword = "{hashed}"\n'
                    f'{catalogs}')
        log_path = os.path.join(tmp, "meshgate.log")
        log = open(log_path, "w")
        server = subprocess.Popen([meshgate, "serve", "--config", config], stdout=log,
                                  stderr=log, env={**os.environ, "RUST_LOG": "warn"})
        try:
            deadline = time.time() + 60
            for port in [flight_port, pg_port]:
                while port:
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        if time.time() > deadline or server.poll() is not None:
                            sys.exit(open(log_path).read())
                        time.sleep(0.2)
            yield flight_port, pg_port
        finally:
            server.terminate()
            server.wait(timeout=10)


@contextlib.contextmanager
def ballista_cluster(meshgate, executors):
    """A scheduler and `executors` executors on this machine: yields the
    `[execution]` table that sends queries to them."""
    port = free_port()
    logs = tempfile.TemporaryFile()
    procs = [subprocess.Popen([meshgate, "ballista-scheduler", "--bind", f"127.0.0.1:{port}"],
                              stdout=logs, stderr=logs)]
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("the Ballista scheduler did not start")
                time.sleep(0.2)
        for _ in range(executors):
            procs.append(subprocess.Popen(
                [meshgate, "ballista-executor", "--scheduler", f"df://127.0.0.1:{port}",
                 "--bind", "127.0.0.1:0"], stdout=logs, stderr=logs))
        time.sleep(2)  # executors register on their first poll
        yield (f'\n[execution]\nballista = "df://127.0.0.1:{port}"\n'
               f'ballista_min_scan_bytes = "0"\n')
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meshgate", required=True)
    ap.add_argument("--data", required=True, help="directory with <table>.parquet (tpch-gen)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--queries", default=",".join(str(q) for q in range(1, 23)))
    ap.add_argument("--config-extra", default="", help="TOML appended to meshgate's config")
    ap.add_argument("--ballista-executors", type=int, default=0,
                    help="run every query on a local Ballista cluster of this many executors")
    ap.add_argument("--result-cache", action="store_true",
                    help="keep meshgate's result cache on (off by default here)")
    args = ap.parse_args()
    data = os.path.abspath(os.path.expanduser(args.data))
    for table in TABLES:
        if not os.path.exists(os.path.join(data, f"{table}.parquet")):
            sys.exit(f"{data}/{table}.parquet is missing: run tpch-gen first")
    queries = [int(q) for q in args.queries.split(",")]

    extra = args.config_extra.encode().decode("unicode_escape")
    if not args.result_cache:
        # Each query runs several times: measure its execution, not the
        # result cache.
        extra += '\n[result_cache]\nmax_bytes = "0"\n'
    cluster = (ballista_cluster(args.meshgate, args.ballista_executors)
               if args.ballista_executors else contextlib.nullcontext(""))
    with cluster as execution, serve(args.meshgate, data, extra + execution) as (flight_port, _):
        duck = duckdb.connect()
        for t in TABLES:
            duck.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data}/{t}.parquet')")
        conn = flightsql.connect(f"grpc://127.0.0.1:{flight_port}",
                                 db_kwargs={"username": "bench", "password": "bench"})
        cur = conn.cursor()

        def on_meshgate(sql):
            cur.execute(sql)
            return cur.fetch_arrow_table()

        def on_duckdb(sql):
            return duck.execute(sql).fetch_arrow_table()

        results = []
        for q in queries:
            sql = open(os.path.join(HERE, "tpch", f"q{q:02}.sql")).read()
            timings = {}
            answers = {}
            for name, run in [("meshgate", on_meshgate), ("duckdb", on_duckdb)]:
                answers[name] = run(sql)  # warm-up, and the answer compared
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    run(sql)
                    times.append(time.perf_counter() - t0)
                timings[name] = median(times)
            same = rows_of(answers["meshgate"]) == rows_of(answers["duckdb"])
            ratio = timings["meshgate"] / timings["duckdb"]
            results.append((q, timings["meshgate"], timings["duckdb"], ratio, same,
                             answers["meshgate"].num_rows))
            print(f"q{q:02}: meshgate {timings['meshgate']:.3f}s duckdb {timings['duckdb']:.3f}s "
                  f"ratio {ratio:.2f} {'same answer' if same else 'ANSWERS DIFFER'}",
                  file=sys.stderr)
        conn.close()

    import adbc_driver_flightsql
    print(f"\nTPC-H over Parquet, median of {args.runs}; {os.cpu_count()} cores; "
          f"DuckDB {duckdb.__version__}, ADBC Flight SQL {adbc_driver_flightsql.__version__}\n")
    print("| query | rows | meshgate (s) | DuckDB (s) | ratio | same answer |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for q, m, d, ratio, same, rows in results:
        print(f"| q{q:02} | {rows} | {m:.3f} | {d:.3f} | {ratio:.2f}× | {'yes' if same else 'NO'} |")
    geo = math.exp(sum(math.log(r[3]) for r in results) / len(results))
    total_m = sum(r[1] for r in results)
    total_d = sum(r[2] for r in results)
    print(f"| **total / geo-mean** | | {total_m:.2f} | {total_d:.2f} | **{geo:.2f}×** | "
          f"{sum(r[4] for r in results)}/{len(results)} |")
    if not all(r[4] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Columnar fetch benchmark: Flight SQL vs SQL over HTTP vs pgwire (binary)
vs DuckDB in-process.

Writes an N-row Parquet file (default 10M rows: id BIGINT, name TEXT,
amount DOUBLE, day DATE), serves it with a `meshgate` binary, and reads the
whole table into an Arrow table these ways:

  1. Flight SQL through meshgate, with the ADBC Flight SQL driver: the
     result comes in parallel endpoints (one per partition of the scan,
     `[execution] target_partitions`, default the CPU count), which ADBC
     fetches concurrently;
  2. the same with one endpoint: the same scan under a LIMIT above the row
     count, which merges the partitions into one stream;
  3. Flight SQL with pyarrow's own Flight client (C++), each endpoint
     fetched by a thread of its own;
  4. `POST /v1/sql` as an Arrow IPC stream, read by pyarrow straight from
     the HTTP response;
  5. pgwire through meshgate, with the ADBC PostgreSQL driver (binary COPY,
     decoded to Arrow in C++, so the client is not the bottleneck);
  6. DuckDB reading the same Parquet file in-process (no network at all).

Usage (from the repository root, after a release build):
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meshgate/target}
  cargo build --release --bin meshgate
  $HOME/.cache/meshgate/venv/bin/python benches/flight_vs_pgwire.py \
      --meshgate $CARGO_TARGET_DIR/release/meshgate [--rows 10000000] [--runs 3]

The virtualenv is the one `.ci/run` creates; add `duckdb` to it
(`pip install duckdb`).
"""

import argparse
import base64
import datetime
import urllib.request
import os
import socket
import subprocess
import sys
import tempfile
import time

from concurrent.futures import ThreadPoolExecutor

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_postgresql.dbapi as pgdbapi
import duckdb
import pyarrow as pa
import pyarrow.flight as paflight
import pyarrow.parquet as pq


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_parquet(path, rows, batch=1 << 20):
    schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.float64()), ("day", pa.date32())])
    base = datetime.date(2020, 1, 1).toordinal() - datetime.date(1970, 1, 1).toordinal()
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, batch):
            ids = pa.array(range(start, min(rows, start + batch)), pa.int64())
            n = len(ids)
            names = pa.array([f"member-{i}" for i in range(start, start + n)])
            amounts = pa.compute.multiply(pa.compute.cast(ids, pa.float64()), 0.25)
            days = pa.compute.cast(pa.compute.add(pa.compute.remainder(ids, 1000), base), pa.int32()).cast(pa.date32())
            writer.write_table(pa.table([ids, names, amounts, days], schema=schema))


def statement_query(sql):
    """A Flight SQL CommandStatementQuery in a protobuf Any, for pyarrow's client."""
    def field(number, payload):
        n, length = len(payload), bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            length.append(byte | (0x80 if n else 0))
            if not n:
                break
        return bytes([number << 3 | 2]) + bytes(length) + payload
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return field(1, type_url) + field(2, field(1, sql.encode()))


def hash_password(meshgate, password):
    out = subprocess.run([meshgate, "hash-password", password], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def best_of(runs, fn):
    times, table = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        table = fn()
        times.append(time.perf_counter() - t0)
    return min(times), sorted(times)[len(times) // 2], table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meshgate", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=0,
                    help="[execution] target_partitions (default: meshgate's, the CPU count)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        parquet = os.path.join(tmp, "t.parquet")
        t0 = time.perf_counter()
        write_parquet(parquet, args.rows)
        print(f"wrote {args.rows:,} rows ({os.path.getsize(parquet) / 2**20:.0f} MiB Parquet) in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        pg_port, flight_port, http_port = free_port(), free_port(), free_port()
        execution = f"[execution]\ntarget_partitions = {args.partitions}\n" if args.partitions else ""
        config = os.path.join(tmp, "meshgate.toml")
        with open(config, "w") as f:
            f.write(
                f'[listeners.pgwire]\naddress = "127.0.0.1:{pg_port}"\n'
                f'[listeners.flight_sql]\naddress = "127.0.0.1:{flight_port}"\n'
                f'[listeners.http]\naddress = "127.0.0.1:{http_port}"\n'
                f'{execution}'
                f'[auth]\nallow_cleartext = true\n'
                f'[users.bench]\npassword = "{hash_password(args.meshgate, "bench")}"\n'
                f'[catalogs.bench]\nconnector = "files"\n[catalogs.bench.tables.t]\npath = "t.parquet"\n'
            )
        log = open(os.path.join(tmp, "meshgate.log"), "w")
        server = subprocess.Popen([args.meshgate, "serve", "--config", config], stdout=log, stderr=log,
                                  env={**os.environ, "RUST_LOG": "warn"})
        try:
            deadline = time.time() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", flight_port), timeout=1).close()
                    socket.create_connection(("127.0.0.1", pg_port), timeout=1).close()
                    socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.2)
            sql = "SELECT id, name, amount, day FROM bench.public.t"

            def flight_of(query):
                def run():
                    with flightsql.connect(f"grpc://127.0.0.1:{flight_port}",
                                           db_kwargs={"username": "bench", "password": "bench"}) as conn:
                        with conn.cursor() as cur:
                            cur.execute(query)
                            return cur.fetch_arrow_table()
                return run

            with flightsql.connect(f"grpc://127.0.0.1:{flight_port}",
                                   db_kwargs={"username": "bench", "password": "bench"}) as conn:
                with conn.cursor() as cur:
                    endpoints = len(cur.adbc_execute_partitions(sql)[0])
                    single = len(cur.adbc_execute_partitions(f"{sql} LIMIT {args.rows * 2}")[0])
            assert single == 1, single
            print(f"Flight SQL answers with {endpoints} endpoint(s)", file=sys.stderr)

            def pyarrow_flight():
                def signed_in():
                    client = paflight.FlightClient(f"grpc://127.0.0.1:{flight_port}")
                    header = client.authenticate_basic_token("bench", "bench")
                    return client, paflight.FlightCallOptions(headers=[header])
                client, options = signed_in()
                info = client.get_flight_info(
                    paflight.FlightDescriptor.for_command(statement_query(sql)), options)

                def fetch(endpoint):
                    own, own_options = signed_in()
                    return own.do_get(endpoint.ticket, own_options).read_all()
                with ThreadPoolExecutor(max_workers=len(info.endpoints)) as pool:
                    return pa.concat_tables(pool.map(fetch, info.endpoints))

            def http():
                request = urllib.request.Request(
                    f"http://127.0.0.1:{http_port}/v1/sql", data=sql.encode(), method="POST",
                    headers={"Content-Type": "text/plain",
                             "Accept": "application/vnd.apache.arrow.stream",
                             "Authorization": "Basic " + base64.b64encode(b"bench:bench").decode()})
                with urllib.request.urlopen(request) as response:
                    return pa.ipc.open_stream(response).read_all()

            def pgwire():
                uri = f"postgresql://bench:bench@127.0.0.1:{pg_port}/bench"
                with pgdbapi.connect(uri) as conn:
                    with conn.cursor() as cur:
                        cur.execute(sql)
                        return cur.fetch_arrow_table()

            def in_process():
                return duckdb.sql(f"SELECT id, name, amount, day FROM '{parquet}'").to_arrow_table()

            results = []
            for name, fn in [(f"Flight SQL via meshgate (ADBC), {endpoints} parallel endpoints", flight_of(sql)),
                             ("Flight SQL via meshgate (ADBC), one endpoint", flight_of(f"{sql} LIMIT {args.rows * 2}")),
                             (f"Flight SQL via meshgate (pyarrow.flight), {endpoints} endpoints in threads", pyarrow_flight),
                             ("/v1/sql Arrow IPC stream via meshgate (pyarrow)", http),
                             ("pgwire binary via meshgate (ADBC PostgreSQL, COPY)", pgwire),
                             ("DuckDB in-process on the same Parquet", in_process)]:
                best, median, table = best_of(args.runs, fn)
                assert table.num_rows == args.rows, (name, table.num_rows)
                results.append((name, best, median, table.nbytes))
        finally:
            server.terminate()
            server.wait(timeout=10)

    flight_best = results[0][1]
    arrow_bytes = results[0][3]  # the same data for every path, as Arrow
    import adbc_driver_flightsql
    print(f"\n{args.rows:,} rows, best of {args.runs} (median in parentheses); {os.cpu_count()} cores; "
          f"DuckDB {duckdb.__version__}, pyarrow {pa.__version__}, ADBC Flight SQL {adbc_driver_flightsql.__version__}\n")
    print("| path | rows/s | MB/s (Arrow) | time | time ÷ Flight time |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, best, median, _ in results:
        ratio = best / flight_best
        print(f"| {name} | {args.rows / best:,.0f} | {arrow_bytes / best / 1e6:,.0f} | {best:.2f}s ({median:.2f}s) | {ratio:.2f}x |")


if __name__ == "__main__":
    main()

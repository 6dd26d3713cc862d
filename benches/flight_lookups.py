#!/usr/bin/env python3
"""Prepared point lookups into a PostgreSQL source from Python clients:
ADBC Flight SQL and psycopg through meshgate, against psycopg straight to
PostgreSQL.

Loads `accounts(aid int PRIMARY KEY, abalance int, filler text)` (100,000
rows) into a scratch database, serves it through a release meshgate as
catalog `bench` (connector = "postgres"), and runs `--lookups` lookups by a
random key on one connection in four ways: ADBC Flight SQL with a Flight
SQL prepared statement bound per lookup, ADBC Flight SQL with the key
written into the SQL text (as BI tools send it), psycopg through
meshgate's pgwire (`prepare=True`; and with the key in the text, over the
simple protocol and over Parse/Bind/Execute), and psycopg directly
against PostgreSQL. Reports lookups/s and the median and 99th
percentile latency, the gateway's CPU per lookup (from /proc/<pid>/stat),
and checks every answer.

Usage (from the repository root):
  $HOME/.cache/meshgate/bench-venv/bin/python benches/flight_lookups.py \
      --meshgate $CARGO_TARGET_DIR/release/meshgate [--lookups 5000] [--policy]
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

import adbc_driver_flightsql.dbapi as flightsql
import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tpch import serve_catalogs  # noqa: E402

ROWS = 100_000
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def balance(aid):
    return aid * 7 % 1000


def gateway_cpu():
    """A function reading the serving gateway's CPU seconds so far."""
    pid = subprocess.run(["pgrep", "-n", "-f", "meshgate serve"], capture_output=True,
                         text=True).stdout.strip()

    def cpu():
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu


def measure(lookup, keys, cpu=None):
    lookup(keys[0])  # warm-up: prepares the statement
    times = []
    cpu_before = cpu() if cpu else 0.0
    started = time.perf_counter()
    for aid in keys:
        t0 = time.perf_counter()
        got = lookup(aid)
        times.append(time.perf_counter() - t0)
        if got != balance(aid):
            sys.exit(f"aid {aid}: got {got}, expected {balance(aid)}")
    elapsed = time.perf_counter() - started
    used = (cpu() - cpu_before) / len(keys) * 1e6 if cpu else None
    times.sort()
    return (len(keys) / elapsed, times[len(times) // 2] * 1e3,
            times[int(len(times) * 0.99)] * 1e3, used)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meshgate", required=True)
    ap.add_argument("--lookups", type=int, default=5000)
    ap.add_argument("--policy", action="store_true",
                    help="look up as a user under a row filter and a mask on the table "
                         "(as most BI users are); the filter keeps every row")
    args = ap.parse_args()
    db = f"meshgate_lookups_{os.getpid()}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {db}")
    try:
        with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={db}",
                             autocommit=True) as pg:
            pg.execute("CREATE TABLE accounts (aid int PRIMARY KEY, abalance int, filler text)")
            pg.execute(f"INSERT INTO accounts SELECT g, g * 7 % 1000, repeat('x', 84) "
                       f"FROM generate_series(1, {ROWS}) g")
            pg.execute("VACUUM ANALYZE accounts")
        catalog = (f'[catalogs.bench]\nconnector = "postgres"\nhost = "127.0.0.1"\n'
                   f'port = 5432\nuser = "postgres"\ndatabase = "{db}"\n'
                   f'sslmode = "disable"\npool_size = 4\n')
        policy_dir = tempfile.TemporaryDirectory()
        if args.policy:
            policy = os.path.join(policy_dir.name, "policy.toml")
            with open(policy, "w") as f:
                f.write('[[grants]]\neffect = "allow"\nprincipals = ["user:bench"]\n'
                        'tables = ["bench.public.*"]\n'
                        '[[row_filters]]\nprincipals = ["user:bench"]\n'
                        'tables = ["bench.public.accounts"]\nfilter = "abalance >= 0"\n'
                        '[[masks]]\nprincipals = ["user:bench"]\n'
                        'tables = ["bench.public.accounts"]\ncolumn = "filler"\n'
                        'mask = "left(filler, 2)"\n')
            catalog += f'[policy]\nfile = "{policy}"\n'
        rng = random.Random(42)
        keys = [rng.randint(1, ROWS) for _ in range(args.lookups)]
        results = {}
        with serve_catalogs(args.meshgate, catalog, pgwire=True) as (flight_port, pg_port):
            cpu = gateway_cpu()
            flight = flightsql.connect(f"grpc://127.0.0.1:{flight_port}",
                                       db_kwargs={"username": "bench", "password": "bench"})
            fcur = flight.cursor()

            def on_flight(aid):
                fcur.execute("SELECT abalance FROM bench.public.accounts WHERE aid = $1", (aid,))
                return fcur.fetchone()[0]

            results["meshgate, ADBC Flight SQL"] = measure(on_flight, keys, cpu)

            def on_flight_literal(aid):
                fcur.execute(f"SELECT abalance FROM bench.public.accounts WHERE aid = {int(aid)}")
                return fcur.fetchone()[0]

            results["meshgate, ADBC Flight SQL, literal SQL"] = measure(on_flight_literal, keys, cpu)
            fcur.close()
            flight.close()
            with psycopg.connect(f"host=127.0.0.1 port={pg_port} user=bench password=bench "
                                 f"dbname=bench", autocommit=True) as gw:
                def on_pgwire(aid):
                    return gw.execute("SELECT abalance FROM bench.public.accounts WHERE aid = %s",
                                      (aid,), prepare=True).fetchone()[0]

                results["meshgate, psycopg (pgwire)"] = measure(on_pgwire, keys, cpu)

                literal = "SELECT abalance FROM bench.public.accounts WHERE aid = {}"

                def on_pgwire_simple(aid):
                    return gw.execute(literal.format(int(aid))).fetchone()[0]

                results["meshgate, psycopg, literal SQL, simple protocol"] = measure(
                    on_pgwire_simple, keys, cpu)

                def on_pgwire_parse(aid):
                    # No parameters but binary results: Parse, Bind, Execute
                    # (as JDBC and Npgsql send every statement).
                    return gw.execute(literal.format(int(aid)), binary=True).fetchone()[0]

                results["meshgate, psycopg, literal SQL, extended protocol"] = measure(
                    on_pgwire_parse, keys, cpu)
        with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={db}",
                             autocommit=True) as pg:
            def direct(aid):
                return pg.execute("SELECT abalance FROM accounts WHERE aid = %s", (aid,),
                                  prepare=True).fetchone()[0]

            results["PostgreSQL directly, psycopg"] = measure(direct, keys)
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")

    base = results["PostgreSQL directly, psycopg"][0]
    under = ", as a user under a row filter and a mask" if args.policy else ""
    print(f"{args.lookups} lookups per client, one connection{under}, answers checked\n")
    print("| client | lookups/s | p50 (ms) | p99 (ms) | ratio to direct | gateway CPU per lookup (µs) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (rate, p50, p99, used) in results.items():
        used = "–" if used is None else f"{used:,.0f}"
        print(f"| {name} | {rate:,.0f} | {p50:.3f} | {p99:.3f} | {rate / base:.2f}× | {used} |")


if __name__ == "__main__":
    main()

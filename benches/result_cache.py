#!/usr/bin/env python3
"""A BI dashboard's repeated query, with meshgate's result cache off and on.

A dashboard refresh sends the same aggregates again and again. Each query
below (over the TPC-H SF1 Parquet files that `tpch-gen` writes) runs
`--runs` times through psycopg (pgwire, what BI tools use) and through
ADBC Flight SQL, first against a meshgate with `[result_cache] max_bytes =
"0"`, then against one with the default cache; the table gives the median
and 95th percentile latency as the client sees it (connection kept open).
Both gateways' answers are compared.

Usage (from the repository root, after the TPC-H steps in benches/tpch.py):
  $HOME/.cache/meshgate/venv/bin/python benches/result_cache.py \
      --meshgate $CARGO_TARGET_DIR/release/meshgate --data ~/.cache/meshgate/tpch-sf1 [--runs 200]
"""

import argparse
import os
import sys
import time

import adbc_driver_flightsql.dbapi as flightsql
import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tpch import serve  # noqa: E402

QUERIES = {
    "revenue by status (lineitem, 6M rows)":
        "SELECT l_returnflag, l_linestatus, sum(l_extendedprice) AS revenue, count(*) AS n "
        "FROM lineitem GROUP BY l_returnflag, l_linestatus ORDER BY 1, 2",
    "orders per priority (orders, 1.5M rows)":
        "SELECT o_orderpriority, count(*) AS n FROM orders "
        "WHERE o_orderdate >= DATE '1995-01-01' GROUP BY o_orderpriority ORDER BY 1",
    "top 10 customers by balance (customer)":
        "SELECT c_name, c_acctbal FROM customer ORDER BY c_acctbal DESC LIMIT 10",
}


def percentile(times, p):
    times = sorted(times)
    return times[min(len(times) - 1, int(len(times) * p))]


def measure(run, sql, runs):
    answer = run(sql)  # warm-up (and, with the cache on, the run that keeps it)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run(sql)
        times.append(time.perf_counter() - t0)
    return answer, percentile(times, 0.5), percentile(times, 0.95)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meshgate", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    data = os.path.abspath(os.path.expanduser(args.data))

    results = {}
    for mode, extra in [("off", '[result_cache]\nmax_bytes = "0"\n'), ("on", "")]:
        with serve(args.meshgate, data, extra, pgwire=True) as (flight_port, pg_port):
            pg = psycopg.connect(f"host=127.0.0.1 port={pg_port} user=bench password=bench "
                                 f"dbname=tpch", autocommit=True)
            flight = flightsql.connect(f"grpc://127.0.0.1:{flight_port}",
                                       db_kwargs={"username": "bench", "password": "bench"})
            fcur = flight.cursor()

            def on_pgwire(sql):
                return pg.execute(sql).fetchall()

            def on_flight(sql):
                fcur.execute(sql)
                return fcur.fetch_arrow_table().to_pylist()

            for name, sql in QUERIES.items():
                for protocol, run in [("pgwire", on_pgwire), ("Flight SQL", on_flight)]:
                    answer, p50, p95 = measure(run, sql, args.runs)
                    results[(name, protocol, mode)] = (answer, p50, p95)
                    print(f"{mode:3} {protocol:10} {name}: p50 {p50 * 1e3:.2f} ms, "
                          f"p95 {p95 * 1e3:.2f} ms", file=sys.stderr)
            pg.close()
            flight.close()

    print(f"\nRepeated dashboard queries, {args.runs} runs each; {os.cpu_count()} cores\n")
    print("| query | protocol | cache off p50 / p95 (ms) | cache on p50 / p95 (ms) | same answer |")
    print("| --- | --- | ---: | ---: | --- |")
    ok = True
    for name in QUERIES:
        for protocol in ["pgwire", "Flight SQL"]:
            off = results[(name, protocol, "off")]
            on = results[(name, protocol, "on")]
            same = off[0] == on[0]
            ok &= same
            print(f"| {name} | {protocol} | {off[1] * 1e3:.2f} / {off[2] * 1e3:.2f} | "
                  f"{on[1] * 1e3:.2f} / {on[2] * 1e3:.2f} | {'yes' if same else 'NO'} |")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How many idle pgwire connections one meshgate process holds, and what
each costs in memory.

Serves the demo mesh (`meshgate demo`) with a `meshgate` binary, opens N pgwire connections
(psycopg, password sign-in, each runs one query so its session is fully set
up), and reads the process's resident memory (VmRSS) before and after; then
checks every connection still answers. The figure per connection is
(RSS after - RSS before) / N; the gateway's CPU time (user + system, from
/proc) spent while they open, per connection, is the cost of one sign-in
and session set-up, and holds on a busy machine where the rate does not.

Usage (from the repository root, after a release build):
  $HOME/.cache/meshgate/venv/bin/python benches/connections.py \\
      --meshgate $CARGO_TARGET_DIR/release/meshgate [--connections 2000]
"""

import argparse
import os
import resource
import socket
import subprocess
import tempfile
import time

import psycopg


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid):
    """User + system CPU time the process has used, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meshgate", required=True)
    ap.add_argument("--connections", type=int, default=2000)
    args = ap.parse_args()
    # Each connection is a file descriptor here as well.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 1024), hard))

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = subprocess.Popen([args.meshgate, "demo", "--data-dir", tmp,
                                   "--pgwire", f"127.0.0.1:{port}",
                                   "--flight-sql", f"127.0.0.1:{free_port()}",
                                   "--http", f"127.0.0.1:{free_port()}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.2)
            dsn = f"host=127.0.0.1 port={port} user=analyst password=meshgate dbname=members"
            with psycopg.connect(dsn) as warm:
                warm.execute("SELECT count(*) FROM members").fetchone()
            before = rss_mib(server.pid)
            cpu0 = cpu_seconds(server.pid)
            t0 = time.perf_counter()
            conns = []
            for _ in range(args.connections):
                c = psycopg.connect(dsn, autocommit=True)
                c.execute("SELECT 1").fetchone()
                conns.append(c)
            opened = time.perf_counter() - t0
            cpu = cpu_seconds(server.pid) - cpu0
            after = rss_mib(server.pid)
            alive = sum(1 for c in conns if c.execute("SELECT 1").fetchone() == (1,))
            for c in conns:
                c.close()
        finally:
            server.terminate()
            server.wait(timeout=10)

    per = (after - before) * 1024 / args.connections
    print("| connections | RSS before (MiB) | RSS after (MiB) | KiB per connection | opened in "
          "| gateway CPU per connection | still answering |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {args.connections:,} | {before:.1f} | {after:.1f} | {per:.0f} | {opened:.1f}s "
          f"({args.connections / opened:,.0f}/s) | {cpu * 1000 / args.connections:.2f} ms "
          f"| {alive:,} |")


if __name__ == "__main__":
    main()

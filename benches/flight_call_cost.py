#!/usr/bin/env python3
"""The gateway's CPU per Flight SQL call: `SELECT 1` (GetFlightInfo, then
DoGet) on one ADBC connection, 2,000 times, with a one-grant policy in
force; CPU read from /proc/<pid>/stat of the gateway.

Usage: $HOME/.cache/meshgate/bench-venv/bin/python benches/flight_call_cost.py <meshgate binary>
"""

import os
import subprocess
import sys
import tempfile
import time

import adbc_driver_flightsql.dbapi as flightsql

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tpch import serve_catalogs  # noqa: E402

tmp = tempfile.mkdtemp()
pol = os.path.join(tmp, "policy.toml")
open(pol, "w").write('version = 1\n[[grants]]\neffect = "allow"\nprincipals = ["user:bench"]\ntables = ["*.*.*"]\n')
with serve_catalogs(sys.argv[1], f'[policy]\nfile = "{pol}"\n', pgwire=False) as (fp, pp):
    pid = subprocess.run(["pgrep","-n","-f","meshgate serve"],capture_output=True,text=True).stdout.strip()
    def cpu():
        f=open(f"/proc/{pid}/stat").read().split(); return (int(f[13])+int(f[14]))/os.sysconf('SC_CLK_TCK')
    c = flightsql.connect(f"grpc://127.0.0.1:{fp}", db_kwargs={"username":"bench","password":"bench"})
    cur = c.cursor()
    cur.execute("SELECT 1"); cur.fetchall()
    n = 2000
    c0=cpu(); t0=time.perf_counter()
    for i in range(n):
        cur.execute("SELECT 1"); cur.fetchall()
    dt=time.perf_counter()-t0; dc=cpu()-c0
    print(f"SELECT 1 with a policy: {n/dt:.0f} calls/s, gateway CPU {dc/n*1e3:.3f} ms per call")
    cur.close(); c.close()

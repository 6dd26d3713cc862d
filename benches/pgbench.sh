#!/usr/bin/env bash
# pgbench through meshgate vs the same script against PostgreSQL on the same data.
#
# Serves the demo mesh with a release `meshgate`, copies the demo's members
# table into a scratch database of the local PostgreSQL, and runs the same
# parameterised point-lookup script against both at 1, 8 and 32 clients
# (`-M prepared`, i.e. extended protocol with named prepared statements).
#
#   export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meshgate/target}
#   cargo build --release --bin meshgate
#   benches/pgbench.sh [seconds-per-run]
set -euo pipefail
secs=${1:-15}
bin=${MESHGATE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/meshgate/target}/release/meshgate}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
db=meshgate_bench_$$
trap 'kill $pid 2>/dev/null || true; psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

RUST_LOG=warn "$bin" demo --data-dir "$work/mesh" --pgwire "127.0.0.1:$port" --flight-sql 127.0.0.1:0 >"$work/meshgate.log" 2>&1 &
pid=$!
for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.5; done

psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db"
psql -q -h 127.0.0.1 -U postgres -d "$db" -c "CREATE TABLE members (member_id bigint PRIMARY KEY, first_name text, last_name text, state text, plan text, birth_date date)"
psql -q -h 127.0.0.1 -U postgres -d "$db" -c "\\copy members FROM '$work/mesh/members/members.csv' WITH (FORMAT csv, HEADER true)"

cat >"$work/point.sql" <<'SQL'
\set id random(1000, 1199)
SELECT member_id, first_name, state FROM members WHERE member_id = :id;
SQL

echo "| target | clients | TPS | avg latency (ms) |"
echo "| --- | ---: | ---: | ---: |"
for clients in 1 8 32; do
  for target in meshgate postgres; do
    if [ "$target" = meshgate ]; then
      conn="host=127.0.0.1 port=$port user=analyst dbname=members"
      export PGPASSWORD=meshgate
    else
      conn="host=127.0.0.1 port=5432 user=postgres dbname=$db"
      unset PGPASSWORD
    fi
    out=$(pgbench -n -M prepared -f "$work/point.sql" -c "$clients" -j "$(( clients < 2 ? clients : 2 ))" -T "$secs" "$conn" 2>&1)
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    echo "| $target | $clients | ${tps:-error} | ${lat:-error} |"
  done
done

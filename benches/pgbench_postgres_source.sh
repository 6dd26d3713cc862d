#!/usr/bin/env bash
# Point lookups by primary key on a PostgreSQL source: through meshgate vs
# directly against PostgreSQL, same data, same pgbench script.
#
# Loads `pgbench -i -s SCALE` (100,000 accounts per scale unit) into a scratch
# database, serves it through a release `meshgate` as catalog `bench`
# (connector = "postgres"), and runs
#   SELECT abalance FROM pgbench_accounts WHERE aid = :aid
# with `-M prepared` (or the mode given third: simple, extended) at 1, 8
# and 32 clients. At 1 client every transaction's
# latency is logged and p50/p99 are computed from the logs.
#
#   export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meshgate/target}
#   cargo build --release --workspace --bins
#   benches/pgbench_postgres_source.sh [seconds-per-run] [scale] [prepared|simple|extended]
#
# The last column is the gateway's CPU time (user + system, from
# /proc/<pid>/stat) per lookup: what a lookup costs the gateway, which
# throughput at saturation hides when the kernel's share dominates.
#
# SOURCE_HOST=/var/run/postgresql serves the catalog over PostgreSQL's
# Unix-domain socket (a directory, as libpq takes it) instead of TCP.
set -euo pipefail
secs=${1:-15}
scale=${2:-10}
mode=${3:-prepared}
bin=${MESHGATE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/meshgate/target}/release/meshgate}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
db=meshgate_pgbench_$$
pid=
trap 'kill $pid 2>/dev/null || true; psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db"
pgbench -q -i -s "$scale" -h 127.0.0.1 -U postgres "$db" >/dev/null 2>&1

hash=$("$bin" hash-password bench)
cat >"$work/meshgate.toml" <<TOML
[listeners.pgwire]
address = "127.0.0.1:$port"
[users.bench]
password = "$hash"
[catalogs.bench]
connector = "postgres"
host = "${SOURCE_HOST:-127.0.0.1}"
port = 5432
user = "postgres"
database = "$db"
sslmode = "disable"
pool_size = 40
TOML
RUST_LOG=warn "$bin" serve --config "$work/meshgate.toml" >"$work/meshgate.log" 2>&1 &
pid=$!
for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.5; done

cat >"$work/point.sql" <<SQL
\set aid random(1, $((scale * 100000)))
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SQL

run() { # target clients [extra pgbench args]
  local target=$1 clients=$2; shift 2
  if [ "$target" = meshgate ]; then
    conn="host=127.0.0.1 port=$port user=bench dbname=bench"
    export PGPASSWORD=bench
  else
    conn="host=127.0.0.1 port=5432 user=postgres dbname=$db"
    unset PGPASSWORD
  fi
  pgbench -n -M "$mode" -f "$work/point.sql" -c "$clients" -j "$(( clients < 2 ? clients : 2 ))" -T "$secs" "$@" "$conn" 2>&1
}

# The gateway's CPU time so far (user + system), in clock ticks.
gateway_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

echo "| target | clients | TPS | avg latency (ms) | p50 (ms) | p99 (ms) | gateway CPU per lookup (µs) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for clients in 1 8 32; do
  for target in meshgate postgres; do
    extra=()
    if [ "$clients" = 1 ]; then
      rm -f "$work"/lat.*
      extra=(--log --log-prefix="$work/lat")
    fi
    before=$(gateway_ticks)
    out=$(cd "$work" && run "$target" "$clients" "${extra[@]}")
    after=$(gateway_ticks)
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    done_n=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    cpu=-
    if [ "$target" = meshgate ] && [ -n "$done_n" ] && [ "$done_n" -gt 0 ]; then
      cpu=$(awk -v t="$((after - before))" -v hz="$(getconf CLK_TCK)" -v n="$done_n" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')
    fi
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    p50=-; p99=-
    if [ "$clients" = 1 ]; then
      read -r p50 p99 < <(cat "$work"/lat.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f %.3f\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}')
    fi
    echo "| $target | $clients | ${tps:-error} | ${lat:-error} | $p50 | $p99 | $cpu |"
    [ -n "$tps" ] || { echo "$out" >&2; tail -20 "$work/meshgate.log" >&2; }
  done
done

#!/usr/bin/env bash
# ORDER BY over 10M rows under a 256 MiB query memory budget: the sort
# spills to disk and completes. Reports wall time, the gateway's peak RSS
# and the most spill bytes /metrics showed, against the same query with
# the default budget (half the machine's memory, so nothing spills).
#
# The rows are generated in the gateway (range + md5: ~0.9 GB of Arrow
# data to sort, so no source is timed) and streamed out with COPY ... TO
# STDOUT; the output is checked: 10,000,000 lines, sorted.
#
#   export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meshgate/target}
#   cargo build --release --bin meshgate
#   benches/spill_order_by.sh [rows]
set -euo pipefail
rows=${1:-10000000}
bin=${MESHGATE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/meshgate/target}/release/meshgate}
work=$(mktemp -d)
pid=
sampler=
trap 'kill $pid $sampler 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

sql="COPY (SELECT value, md5(CAST(value AS VARCHAR)) AS k FROM range($rows) ORDER BY k) TO STDOUT"

# run LABEL LIMITS_TOML: serve the demo with LIMITS_TOML, sort, report a table row.
run() {
  local label=$1 limits=$2 port http
  port=$(free_port)
  http=$(free_port)
  rm -rf "$work/mesh"
  if "$bin" demo --help | grep -q -- '--http'; then
    "$bin" demo --data-dir "$work/mesh" --pgwire "127.0.0.1:$port" --flight-sql "127.0.0.1:$(free_port)" \
      --http "127.0.0.1:$http" --write-only >/dev/null 2>&1
  else
    "$bin" demo --data-dir "$work/mesh" --pgwire "127.0.0.1:$port" --flight-sql "127.0.0.1:$(free_port)" --write-only >/dev/null 2>&1
    printf '\n[listeners.http]\naddress = "127.0.0.1:%s"\n' "$http" >>"$work/mesh/meshgate.toml"
  fi
  printf '\n%s\n' "$limits" >>"$work/mesh/meshgate.toml"
  RUST_LOG=warn "$bin" serve --config "$work/mesh/meshgate.toml" >"$work/meshgate.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.5; done
  # The most spill bytes on disk, sampled from /metrics while the sort runs.
  (
    max=0
    while kill -0 "$pid" 2>/dev/null; do
      now=$(curl -s "http://127.0.0.1:$http/metrics" | sed -n 's/^meshgate_spill_bytes \([0-9]*\).*/\1/p')
      [ "${now:-0}" -gt "$max" ] && max=$now && echo "$max" >"$work/spill"
      sleep 0.2
    done
  ) &
  sampler=$!
  echo 0 >"$work/spill"
  local start end
  start=$(date +%s.%N)
  PGPASSWORD=meshgate psql -X -q -h 127.0.0.1 -p "$port" -U analyst -d members -c "$sql" >"$work/out.tsv"
  end=$(date +%s.%N)
  local hwm lines
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  lines=$(wc -l <"$work/out.tsv")
  [ "$lines" = "$rows" ] || { echo "expected $rows lines, got $lines" >&2; exit 1; }
  LC_ALL=C sort -c -t "$(printf '\t')" -k2,2 "$work/out.tsv" || { echo "output not sorted" >&2; exit 1; }
  kill "$pid"; wait "$pid" 2>/dev/null || true
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  printf '| %s | %.1f | %d | %d |\n' "$label" "$(echo "$end - $start" | bc)" $((hwm / 1024)) $(($(cat "$work/spill") / 1048576))
}

echo "| budget | time (s) | peak RSS (MiB) | most spilled (MiB) |"
echo "| --- | ---: | ---: | ---: |"
run '`[limits] memory = "256MiB"`' $'[limits]\nmemory = "256MiB"'
run 'default (half the machine)' ''

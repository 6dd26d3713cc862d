#!/usr/bin/env bash
# The README's test command: on any Debian machine with the Rust toolchain,
# install what the tests need (clients, build prerequisites, PostgreSQL and
# MariaDB servers, Python and node clients), start the services they use,
# then run the whole test suite. Arguments go to `cargo test` (e.g. a test
# name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

# Reuse a build cache outside the clone when one exists (like any CI cache);
# a clean run builds everything from nothing.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meshgate/target}"
export CARGO_TERM_COLOR=never
export CARGO_INCREMENTAL=0

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq || true
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# Clients and build prerequisites.
command -v psql >/dev/null 2>&1 || apt_install postgresql-client
command -v pkg-config >/dev/null 2>&1 || apt_install pkg-config
# The PostgreSQL/MySQL source drivers build against OpenSSL.
pkg-config --exists openssl 2>/dev/null || apt_install libssl-dev
command -v mysql >/dev/null 2>&1 || apt_install mariadb-client
command -v cc >/dev/null 2>&1 || apt_install build-essential
# The JDBC test: a JDK and pgJDBC (Debian's libpostgresql-jdbc-java).
command -v javac >/dev/null 2>&1 || apt_install default-jdk-headless
[ -f /usr/share/java/postgresql.jar ] || apt_install libpostgresql-jdbc-java

# PostgreSQL on 127.0.0.1:5432 (trust auth), started if installed but down.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# MariaDB on 127.0.0.1:3306 (root, empty password), started if installed but down.
if ! (command -v mariadb-admin >/dev/null 2>&1 && mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1); then
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  for _ in $(seq 1 30); do mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1 && break; sleep 1; done
fi
# The pushdown tests read what the sources received: PostgreSQL's statement
# log needs a superuser "postgres" role, MariaDB's general log root.
psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'SELECT 1' >/dev/null

# Python clients for the end-to-end tests, in a virtualenv outside the clone.
venv="$HOME/.cache/meshgate/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv python3-pip; python3 -m venv "$venv"; }
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  -r tests/python/requirements.txt
export MESHGATE_PYTHON="$venv/bin/python"

# node-postgres and playwright-core for the end-to-end tests; the admin
# page test drives Debian's Chromium.
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
[ -x /usr/bin/chromium ] || apt_install chromium
(cd tests/node && npm ci --no-audit --no-fund --silent)

# A real S3-compatible server for the S3 tests: s3s-fs, built once into
# the cache (a few minutes on a clean machine), in its own target
# directory: never waiting on a build of the workspace that holds the lock
# of $CARGO_TARGET_DIR/release.
tools="$HOME/.cache/meshgate/tools"
if [ ! -x "$tools/bin/s3s-fs" ]; then
  cargo install --quiet --root "$tools" --target-dir "$tools/target" \
    --version 0.14.1 --features binary s3s-fs
fi
export MESHGATE_S3S_FS="$tools/bin/s3s-fs"

echo "== prerequisites ready after $(( $(date +%s) - started ))s"

# The compose file is checked where docker with compose is installed.
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  docker compose -f docker/compose.yaml config --quiet
fi

cargo test --workspace --no-fail-fast "$@"

echo "== scripts/test.sh finished in $(( $(date +%s) - started ))s"

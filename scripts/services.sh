#!/usr/bin/env bash
# Makes sure the services Kumo's tests talk to are running on this machine:
# PostgreSQL on 127.0.0.1:5432 (trust auth for local connections) and NATS
# with JetStream on 127.0.0.1:4222, and that the programs some tests run
# (`tools`: git and the sqlite3 shell) are installed. On a fresh Debian
# machine it installs them from Debian's packages first. Safe to run again.
#
# Usage: scripts/services.sh [postgres] [nats] [tools]   (default: all)
# POSTGRES_ETC overrides where Debian keeps cluster configuration
# (/etc/postgresql), for the test of this script.
set -euo pipefail

services=("$@")
[ ${#services[@]} -gt 0 ] || services=(tools postgres nats)
wanted() { [[ " ${services[*]} " == *" $1 "* ]]; }
pg_etc="${POSTGRES_ETC:-/etc/postgresql}"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

wait_for_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  echo "services: nothing is listening on 127.0.0.1:$1 after 30 s" >&2
  return 1
}

# Whether PostgreSQL lets `postgres` in over TCP without a password, as the
# tests need. Without psql (a server in a container, say) an open port has to
# do.
postgres_trusts_us() {
  if command -v psql >/dev/null 2>&1; then
    PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p 5432 -U postgres -w -Atqc 'SELECT 1' >/dev/null 2>&1
  else
    port_open 5432
  fi
}

# git for the merge tests; sqlite3 to check the machine's own SQLite, which
# may be older than the one sqlx bundles. The tests fail without them.
if wanted tools; then
  missing=()
  command -v git >/dev/null 2>&1 || missing+=(git)
  command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "services: installing ${missing[*]}"
    apt_install "${missing[@]}"
  fi
fi

if wanted postgres && ! postgres_trusts_us; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "services: installing PostgreSQL"
    apt_install postgresql
  fi
  version=$(ls "$pg_etc" | sort -V | tail -n 1)
  hba="$pg_etc/$version/main/pg_hba.conf"
  # Tests connect as `postgres` without a password, like the CI machines.
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  # Debian's postinst usually starts the cluster already, and a running
  # cluster reads pg_hba.conf again only when told to.
  if as_root pg_ctlcluster "$version" main status >/dev/null 2>&1; then
    echo "services: reloading PostgreSQL $version for the trust rule"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  else
    echo "services: starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  wait_for_port 5432
  for _ in $(seq 1 20); do postgres_trusts_us && break; sleep 0.5; done
  if ! postgres_trusts_us; then
    echo "services: PostgreSQL on 127.0.0.1:5432 still asks user postgres for a password; see $hba" >&2
    exit 1
  fi
fi

if wanted nats && ! port_open 4222; then
  if ! command -v nats-server >/dev/null 2>&1; then
    echo "services: installing NATS"
    apt_install nats-server
  fi
  echo "services: starting NATS with JetStream"
  as_root mkdir -p /var/lib/nats-server
  as_root start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_for_port 4222
fi
echo "services: ${services[*]} up"

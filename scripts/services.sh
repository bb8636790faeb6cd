#!/usr/bin/env bash
# Starts (if needed) the services the test suite talks to: PostgreSQL and NATS JetStream; installs
# openssh-server for the ssh git remote and prometheus for the quality-gate tests.
# Idempotent; safe to run on a machine where they already run.
set -euo pipefail

port_open() { (echo > "/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

wait_port() {
  for _ in $(seq 1 50); do port_open "$1" && return 0; sleep 0.2; done
  echo "service on port $1 did not come up" >&2; return 1
}

apt_ready=""
need_pkg() {
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "$1" ]; then
    if [ -z "$apt_ready" ]; then apt-get update -qq; apt_ready=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  fi
}

if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    need_pkg psql postgresql
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_port 5432
fi
# The tests use the `test` database with trust auth for user postgres.
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  su postgres -c "psql -c 'CREATE DATABASE test'" >/dev/null 2>&1 || true
fi

if ! port_open 4222; then
  need_pkg /usr/sbin/nats-server nats-server
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222
fi
# sshd serves the ssh git remote of the configuration-repository tests (each test starts its own
# sshd on a loopback port; nothing runs here).
need_pkg /usr/sbin/sshd openssh-server
# Prometheus backs the quality-gate tests (each test starts its own on a free loopback port).
need_pkg /usr/bin/prometheus prometheus
echo "services: postgresql on 5432, nats on 4222, sshd and prometheus installed"

#!/usr/bin/env bash
# PostgreSQL and Redis on loopback for the integration tests. They are normally running
# already; on a machine without them, install Debian's packages and start them.
set -euo pipefail

pg_up()    { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c5 <&3 | grep -q PONG) 2>/dev/null; }

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null; then
    echo "installing postgresql from Debian's packages"
    sudo_ apt-get update -qq && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql | sort -V | tail -1)
  sudo_ pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  if ! command -v redis-server >/dev/null; then
    echo "installing redis-server from Debian's packages"
    sudo_ apt-get update -qq && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 30); do redis_up && break; sleep 1; done
fi
pg_up && echo "postgresql: up on 127.0.0.1:5432" || echo "postgresql: NOT available (tests that need it will fail in CI)"
redis_up && echo "redis: up on 127.0.0.1:6379" || echo "redis: NOT available (tests that need it will fail in CI)"

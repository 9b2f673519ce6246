#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# CTest fixture: start or stop a throwaway Redis server on loopback.
#   redis-fixture.sh start PORT DIR | redis-fixture.sh stop PORT DIR
set -euo pipefail
action=$1 port=$2 dir=$3
case "$action" in
  start)
    command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)"; exit 1; }
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log"
    for _ in $(seq 100); do
      [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && exit 0
      sleep 0.1
    done
    echo "Redis did not start on port $port"; cat "$dir/redis.log"; exit 1 ;;
  stop)
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    rm -f "$dir/redis.pid" ;;
esac

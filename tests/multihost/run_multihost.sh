#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# Many hosts on one machine: each rank in its own network namespace, linked to
# a bridge by a veth pair, with its own address, talking over Gloo's TCP
# transport with a Redis store on the bridge, as if on separate machines.
#   run_multihost.sh WORKER [RANKS]
# Phase 1: every collective passes. Phase 2: rank 1's link is cut mid-run;
# every rank gets an error within the timeout. Phase 3: the store is killed;
# a split then fails within the timeout on every rank.
# Needs root (CAP_NET_ADMIN), iproute2 and redis-server; exits 77 (skipped)
# when namespaces cannot be made.
set -uo pipefail
worker=$(realpath "$1")
ranks=${2:-4}
tag=dc$(($$ % 100000))
net=10.213.$(($$ % 250)).
work=$(mktemp -d)
redis_pid=""

cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
  for ((i = 0; i < ranks; i++)); do
    ip link del "${tag}h$i" 2>/dev/null  # also the pair's other end
    ip netns del "${tag}n$i" 2>/dev/null
  done
  ip link del "${tag}br" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if ! ip netns add "${tag}n0" 2>/dev/null; then
  echo "SKIP: cannot create network namespaces (needs root with CAP_NET_ADMIN and iproute2)"
  exit 77
fi
set -e
ip link add "${tag}br" type bridge
ip addr add "${net}1/24" dev "${tag}br"
ip link set "${tag}br" up
for ((i = 0; i < ranks; i++)); do
  ns=${tag}n$i
  [ "$i" -eq 0 ] || ip netns add "$ns"
  ip link add "${tag}h$i" type veth peer name "${tag}p$i"
  ip link set "${tag}p$i" netns "$ns"
  ip link set "${tag}h$i" master "${tag}br" up
  ip -n "$ns" addr add "${net}$((10 + i))/24" dev "${tag}p$i"
  ip -n "$ns" link set "${tag}p$i" up
  ip -n "$ns" link set lo up
done
redis-server --bind "${net}1" --port 16401 --protected-mode no --save '' --appendonly no \
  --dir "$work" \
  --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 100); do
  [ "$(redis-cli -h "${net}1" -p 16401 ping 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
set +e

# run_phase NAME MODE [ACTION]: one worker per namespace; ACTION runs once
# every worker has signalled ready-RANK. Every worker must exit 0 within 90 s.
run_phase() {
  local name=$1 mode=$2 action=${3:-} pids=() failed=0
  local signals="$work/$name"
  mkdir -p "$signals"
  for ((i = 0; i < ranks; i++)); do
    ip netns exec "${tag}n$i" env RANK=$i WORLD_SIZE=$ranks DIFFCOLL_HOST="${net}$((10 + i))" \
      DIFFCOLL_STORE="redis://${net}1:16401/$name" DC_SIGNAL_DIR="$signals" \
      timeout 90 "$worker" "$mode" &
    pids+=($!)
  done
  if [ -n "$action" ]; then
    for _ in $(seq 600); do  # until every worker is ready, or one has exited
      [ "$(ls "$signals" | grep -c '^ready-')" -ge "$ranks" ] && break
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || break 2; done
      sleep 0.1
    done
    eval "$action"
  fi
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  if [ "$failed" -ne 0 ]; then echo "FAILED: phase $name"; return 1; fi
  echo "passed: phase $name ($SECONDS s)"
}

rc=0
run_phase all all || rc=1
run_phase cut cut "ip link set ${tag}h1 down" || rc=1
ip link set "${tag}h1" up
run_phase store-gone store-gone \
  "kill $redis_pid; wait $redis_pid 2>/dev/null; redis_pid=''; touch $work/store-gone/store-killed" || rc=1
exit $rc

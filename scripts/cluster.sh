#!/usr/bin/env bash
# Starts or stops a local test cluster by hand: a Postfix + Dovecot mail
# server and N nodes (engine + headless Chromium with the extension).
#   scripts/cluster.sh up [--nodes N]   prints the cluster as JSON
#   scripts/cluster.sh down             stops everything it started
# Needs root (mail servers) and a built tree (cargo build; scripts/build-wasm.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
state=${MAILMESH_CLUSTER_STATE:-${TMPDIR:-/tmp}/mailmesh-cluster.json}
log="${state%.json}.log"

pid_of() { node -p "JSON.parse(require('fs').readFileSync('$state','utf8')).pid ?? ''" 2>/dev/null || true; }

case "${1:-}" in
  up)
    shift
    nodes=3
    while [ $# -gt 0 ]; do
      case "$1" in
        --nodes) nodes=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
      esac
    done
    if [ -f "$state" ] && kill -0 "$(pid_of)" 2>/dev/null; then
      echo "a cluster is already up (see $state); run scripts/cluster.sh down first" >&2
      exit 1
    fi
    rm -f "$state"
    [ -d tests/node_modules ] || (cd tests && npm ci >/dev/null)
    setsid node tests/harness/cluster-daemon.js --nodes "$nodes" --state "$state" >"$log" 2>&1 < /dev/null &
    for _ in $(seq 1 600); do
      [ -s "$state" ] && break
      sleep 0.2
    done
    [ -s "$state" ] || { echo "the cluster did not come up; see $log" >&2; exit 1; }
    if grep -q '"error"' "$state"; then cat "$state" >&2; rm -f "$state"; exit 1; fi
    cat "$state"
    ;;
  down)
    [ -f "$state" ] || { echo "no cluster is up"; exit 0; }
    pid=$(pid_of)
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then echo "the cluster did not stop; see $log" >&2; exit 1; fi
    rm -f "$state"
    echo "cluster stopped"
    ;;
  *)
    echo "usage: scripts/cluster.sh up [--nodes N] | down" >&2
    exit 2
    ;;
esac

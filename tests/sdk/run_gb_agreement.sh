#!/usr/bin/env bash
# ctest driver of gb_agreement.mjs: writes the fixture snapshot, starts `abacus assign` on a free
# loopback port, runs the GrowthBook SDK check, and stops the node by its PID.
# Usage: run_gb_agreement.sh ABACUS_BIN WRITE_SNAPSHOT_BIN FIXTURE_JSON [USERS] [REMOTE_USERS]
set -euo pipefail
abacus=$1 writer=$2 fixture=$3 users=${4:-10000} remote=${5:-200}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
"$writer" "$fixture" "$tmp/snapshot.db" 1
"$abacus" assign --snapshot-file "$tmp/snapshot.db" --port 0 --port-file "$tmp/port" \
  --threads 2 2>"$tmp/log" &
pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { cat "$tmp/log"; exit 1; }
keys=$(node -e 'const d=require(process.argv[1]); console.log(JSON.stringify(d.experiments.map(e=>e.key)))' "$fixture")
node "$here/gb_agreement.mjs" "http://127.0.0.1:$(cat "$tmp/port")" \
  sdk-agreement-key "$keys" "$users" "$remote"

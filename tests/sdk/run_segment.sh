#!/usr/bin/env bash
# ctest driver of segment_send.mjs: writes a snapshot with an ingest key and the experiment
# "checkout", starts `abacus collect` on a free loopback port, sends events with Segment's own
# Node library pointed at it, and checks that every delivered messageId is in the events
# database once, mapped (Experiment Viewed -> exposure, other tracks -> metric events).
# Usage: run_segment.sh ABACUS_BIN WRITE_SNAPSHOT_BIN [COUNT]
set -euo pipefail
abacus=$1 writer=$2 count=${3:-200}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
cat >"$tmp/desc.json" <<'JSON'
{"experiments": [{"key": "checkout", "variants": [["control", 0.5], ["treatment", 0.5]]}],
 "ingest_keys": ["segment-write-key"]}
JSON
"$writer" "$tmp/desc.json" "$tmp/snapshot.db" 1
"$abacus" collect --db "$tmp/events.db" --snapshot-file "$tmp/snapshot.db" --port 0 \
  --port-file "$tmp/port" --threads 2 >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { cat "$tmp/log"; exit 1; }
node "$here/segment_send.mjs" "http://127.0.0.1:$(cat "$tmp/port")" segment-write-key "$count" \
  >"$tmp/delivered"
delivered=$(grep -c . "$tmp/delivered")
[ "$delivered" -eq "$count" ] || { echo "library delivered $delivered of $count"; exit 1; }
sql() { sqlite3 "$tmp/events.db" "$1"; }
stored=$(sqlite3 "$tmp/events.db" <<SQL
CREATE TEMP TABLE d (id TEXT);
.import $tmp/delivered d
SELECT count(*) FROM d JOIN events e ON e.id = d.id AND e.source = 'segment';
SQL
)
rows=$(sql "SELECT count(*) FROM events")
exposures=$(sql "SELECT count(*) FROM events WHERE type = 'exposure' AND experiment = 'checkout'")
metrics=$(sql "SELECT count(*) FROM events WHERE type = 'metric' AND metric = 'Order Completed' AND value > 0")
rejected=$(sql "SELECT count(*) FROM rejected_events")
echo "segment: delivered $delivered, stored $stored of them ($rows rows: $exposures exposures, $metrics metric events), rejected $rejected"
[ "$stored" -eq "$count" ] && [ "$rows" -eq "$count" ] && [ "$rejected" -eq 0 ] &&
  [ "$exposures" -eq $(((count + 1) / 2)) ] && [ "$metrics" -eq $((count / 2)) ]

#!/usr/bin/env bash
# Runs the browser tests (ui.test.mjs) against the real `abacus up`: starts it on 127.0.0.1 with
# port 0 (--port-file) in a fresh temp data dir, runs the test in headless Chromium through
# playwright-core, stops the server by its PID and checks that it exited cleanly.
# usage: run_e2e.sh ABACUS_BIN ARTIFACT_DIR
set -uo pipefail
bin=$1
artifacts=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/abacus-e2e-XXXXXX)
mkdir -p "$artifacts"
"$bin" up --data-dir "$tmp/data" --listen 127.0.0.1 --port 0 --port-file "$tmp/port" \
  --threads 2 --publish-debounce-ms 50 --poll-interval 1 >"$tmp/stdout" 2>"$tmp/stderr" &
pid=$!
for _ in $(seq 1 600); do
  [ -s "$tmp/port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$tmp/port" ]; then
  echo "abacus up did not start; its output:" >&2
  cat "$tmp/stdout" "$tmp/stderr" >&2
  kill "$pid" 2>/dev/null
  rm -rf "$tmp"
  exit 1
fi
ABACUS_URL="http://127.0.0.1:$(cat "$tmp/port")" ABACUS_DATA="$tmp/data" \
  ABACUS_STDOUT="$tmp/stdout" E2E_ARTIFACTS="$artifacts" \
  node "$here/ui.test.mjs"
rc=$?
kill -TERM "$pid"
wait "$pid"
src=$?
if [ $src -ne 0 ]; then
  echo "abacus up exited with $src; its log:" >&2
  tail -n 50 "$tmp/stderr" >&2
  rc=1
fi
[ $rc -ne 0 ] && { echo "--- abacus stdout:" >&2; cat "$tmp/stdout" >&2; }
rm -rf "$tmp"
exit $rc

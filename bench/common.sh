# Shared by the benchmarks: ports, waiting, wrk runs pinned to CPU 1, CPU accounting.
# Sourced after scripts/common.sh. Every server a benchmark starts is recorded in PIDS and
# stopped by its PID on exit.

PIDS=()
BENCH_TMP=$(mktemp -d)
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server on port $1 did not start" >&2
  return 1
}

# cpu_ticks PID: user+system CPU ticks the process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure PID WRK_ARGS...: one wrk run (pinned to CPU 1) against the server PID; prints
# "req/s requests cpu-ticks p99-ms errors" (wrk's error lines themselves go to stderr).
measure() {
  local pid=$1 before after out
  shift
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c64 -d"${DURATION:-10s}" --latency "$@")
  after=$(cpu_ticks "$pid")
  awk -v t=$((after - before)) '
    /^Requests\/sec:/ {r = $2}
    / requests in / {n = $1}
    /^ +99%/ {p = $2; if (p ~ /us$/) p = p / 1000; else if (p ~ /ms$/) p = p + 0; else if (p ~ /s$/) p = p * 1000}
    /Non-2xx|Socket errors/ {e += 1; print "wrk: " $0 > "/dev/stderr"}
    END {printf "%s %s %s %s %d\n", r, n, t, p, e}' <<<"$out"
}

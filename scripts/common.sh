# Shared by scripts/up and scripts/test: install missing Debian packages, configure and build.
# Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Packages to build and run abacus.
BUILD_PACKAGES=(cmake ninja-build gcc pkg-config libh2o-evloop-dev libsqlite3-dev libjansson-dev
  libssl-dev libpcre2-dev libcurl4-openssl-dev libsodium-dev)
# ... and to run the whole test suite: cmocka, clang with its sanitizer and libFuzzer runtimes,
# the lint tools, sqlite3 (tests edit snapshot files with it), nginx (the regional mirror of the
# geo test), python3 (the snapshot origin that serves faults to the replication test),
# python3-jsonschema (validates results JSON against tests/data/results.schema.json), chromium
# (the browser tests of the UI in tests/e2e, driven by playwright-core) and clickhouse-server
# (the central event store of the ClickHouse tests; they start their own).
TEST_PACKAGES=(libcmocka-dev clang libclang-rt-14-dev cppcheck clang-tidy sqlite3 nginx python3
               python3-jsonschema chromium clickhouse-server)

# node and npm run the GrowthBook SDK agreement test; Debian's packages unless a node is present.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  TEST_PACKAGES+=(nodejs npm)
fi

log() { printf '==> %s\n' "$*" >&2; }

# ensure_sdk_packages: the pinned npm packages of tests/sdk (package-lock.json): the GrowthBook
# SDK and Segment's Node library (the collector's /v1/batch client).
ensure_sdk_packages() {
  [ -d "$ROOT/tests/sdk/node_modules/@growthbook/growthbook" ] &&
    [ -d "$ROOT/tests/sdk/node_modules/@segment/analytics-node" ] && return 0
  log "installing tests/sdk npm packages"
  (cd "$ROOT/tests/sdk" && npm ci --no-audit --no-fund --loglevel=error)
}

# ensure_e2e_packages: the pinned npm packages of tests/e2e (playwright-core, package-lock.json).
ensure_e2e_packages() {
  [ -d "$ROOT/tests/e2e/node_modules/playwright-core" ] && return 0
  log "installing tests/e2e npm packages"
  (cd "$ROOT/tests/e2e" && npm ci --no-audit --no-fund --loglevel=error)
}

# ensure_packages PKG...: apt-get update once and install those not installed yet.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "need root to install: ${missing[*]}"; return 1; }
    sudo=(sudo)
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q || return 1
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" || return 1
}

# build DIR CMAKE_ARGS...: configure (once) and build into DIR.
build() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    log "configuring $dir"
    cmake -S "$ROOT" -B "$dir" -G Ninja "$@" >/dev/null || return 1
  fi
  log "building $dir"
  cmake --build "$dir" -- -j"$(nproc)" || return 1
}

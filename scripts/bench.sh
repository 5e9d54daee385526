#!/usr/bin/env bash
# Benchmarks. `scripts/bench.sh verify` loads POST /v1/members/verify over mTLS with signed
# requests: kept-alive connections at concurrency 1, 16 and 64 (requests/s, p50, p99), then one
# new connection with a full TLS handshake per request (handshakes/s).
# The gateway (SQLite, WAL) is pinned to CPU 0 and the load generator to CPU 1, so each has one
# core. BENCH_SECONDS (default 20) sets each run's length; BENCH_DB=postgres://… benchmarks on
# PostgreSQL instead.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^[^#]/p' "$0" | sed -n 's/^# \{0,1\}//p'
  exit 0
fi
source "$(dirname "$0")/lib.sh"
what=${1:-verify}
[[ "$what" == verify ]] || { echo "usage: scripts/bench.sh verify" >&2; exit 2; }
seconds=${BENCH_SECONDS:-20}
BIN=$(alliance_bin)
(cd "$ROOT" && cargo build --release --locked --quiet --example loadgen)
LOADGEN=$ROOT/target/release/examples/loadgen

home=$(mktemp -d)
export ALLIANCE_HOME=$home ALLIANCE_LISTEN=127.0.0.1:${BENCH_PORT:-18743} ALLIANCE_OPS_LISTEN=127.0.0.1:${BENCH_OPS_PORT:-19743}
export ALLIANCE_LOG_FORMAT=json RUST_LOG=${RUST_LOG:-warn}
# The verify rate limit (default 6,000 a minute per partner) would cap the benchmark itself.
export ALLIANCE_VERIFY_REQUESTS_PER_MINUTE=1000000000
# One partner is the whole load here: lift its request rate limit too.
export ALLIANCE_RATE_LIMIT_PER_SECOND=1000000000 ALLIANCE_RATE_LIMIT_BURST=1000000000
[[ -n "${BENCH_DB:-}" ]] && export ALLIANCE_DATABASE_URL=$BENCH_DB
"$BIN" init >/dev/null
"$BIN" onboard-partner "$ROOT/partner-specs/P-RST-001.toml" >/dev/null
"$BIN" import-members "$ROOT/examples/data/members.csv" >/dev/null
taskset -c 0 "$BIN" serve >"$home/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$home"' EXIT
for _ in $(seq 1 60); do curl -fsS "http://$ALLIANCE_OPS_LISTEN/readyz" >/dev/null 2>&1 && break; sleep 0.5; done

url=https://127.0.0.1:${ALLIANCE_LISTEN##*:}
bundle=$home/bundles/P-RST-001
echo "gateway: $("$BIN" --version), $(nproc) CPUs, server on CPU 0, load on CPU 1, ${seconds}s per run"
for c in 1 16 64; do
  taskset -c 1 "$LOADGEN" --bundle "$bundle" --url "$url" --concurrency "$c" --seconds "$seconds"
done
taskset -c 1 "$LOADGEN" --bundle "$bundle" --url "$url" --concurrency 16 --seconds "$seconds" --handshake
echo "server peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}')"

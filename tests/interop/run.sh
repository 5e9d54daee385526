#!/usr/bin/env bash
# Interop test: a third-party RFC 9421 implementation (PyPI http-message-signatures)
# against a real gateway on a throwaway ALLIANCE_HOME.
#
#   bash tests/interop/run.sh
#
# Environment:
#   ALLIANCE_BIN           gateway binary (default: target/release/alliance-gateway)
#   ALLIANCE_DATABASE_URL  passed through, e.g. to run against PostgreSQL; default is
#                          the SQLite file inside the throwaway ALLIANCE_HOME
#   INTEROP_VENV           reuse (or create) this virtualenv instead of a temporary one
#   INTEROP_PORT           API port on 127.0.0.1 (default 18543)
#   INTEROP_OPS_PORT       ops port on 127.0.0.1 (default 19543)
#   INTEROP_PYTHON         interpreter used to create the venv (default python3)
# Exits with the client's status (0 when every check passed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
port="${INTEROP_PORT:-18543}"
ops_port="${INTEROP_OPS_PORT:-19543}"
# Pinned so a new release of either package cannot silently change what "interop" means.
pip_requirements=(http-message-signatures==3.0.0 requests==2.34.2)

die() { echo "interop: error: $*" >&2; exit 1; }
log() { echo "interop: $*" >&2; }

if [[ -n "${ALLIANCE_BIN:-}" ]]; then
  # An explicit binary that is missing is a CI misconfiguration, not a reason to test another one.
  [[ -x "$ALLIANCE_BIN" ]] || die "ALLIANCE_BIN=$ALLIANCE_BIN is not an executable file"
  bin="$ALLIANCE_BIN"
elif [[ -x "$root/target/release/alliance-gateway" ]]; then
  bin="$root/target/release/alliance-gateway"
else
  die "no gateway binary: set ALLIANCE_BIN or build target/release/alliance-gateway (cargo build --release)"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/alliance-interop.XXXXXX")"
server_pid=""
cleanup() {
  local status=$?
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    # actix drains its workers on SIGTERM; give it a few seconds, then insist.
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ $status -ne 0 && -f "$work/serve.log" ]]; then
    echo "interop: last lines of the gateway log:" >&2
    tail -n 40 "$work/serve.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The client and its pinned dependencies.
venv="${INTEROP_VENV:-$work/venv}"
if [[ ! -x "$venv/bin/python" ]]; then
  log "creating virtualenv $venv"
  "${INTEROP_PYTHON:-python3}" -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check "${pip_requirements[@]}"

# A hermetic gateway configuration: stray ALLIANCE_* settings from the caller (a CA dir,
# server names, a public URL, rate limits) would change what is being tested. Only the
# binary, the database URL (for PostgreSQL runs) and the log format are kept.
for var in $(compgen -e); do
  case "$var" in
    ALLIANCE_BIN | ALLIANCE_DATABASE_URL | ALLIANCE_LOG_FORMAT) ;;
    ALLIANCE_*) unset "$var" ;;
  esac
done
export ALLIANCE_HOME="$work/home"
export ALLIANCE_LISTEN="127.0.0.1:$port"
export ALLIANCE_OPS_LISTEN="127.0.0.1:$ops_port"
mkdir -p "$ALLIANCE_HOME"
if [[ -n "${ALLIANCE_DATABASE_URL:-}" ]]; then
  log "using the database from ALLIANCE_DATABASE_URL"
else
  unset ALLIANCE_DATABASE_URL
fi

# Setup output names file paths only, but keep it out of the CI log unless it fails.
setup() {
  "$bin" "$@" >>"$work/setup.log" 2>&1 || {
    cat "$work/setup.log" >&2
    die "'alliance-gateway $1' failed"
  }
}
log "initialising a throwaway alliance in $ALLIANCE_HOME"
setup init
setup onboard-partner "$root/partner-specs/P-RST-001.toml"
setup onboard-partner "$root/partner-specs/P-CIN-001.toml"
setup import-members "$root/examples/data/members.csv"

"$bin" serve >"$work/serve.log" 2>&1 &
server_pid=$!

# Bounded wait for readiness (about 30 s); stop early if the server has died.
ready=""
for _ in $(seq 1 60); do
  kill -0 "$server_pid" 2>/dev/null || die "the gateway exited during startup"
  if "$py" - "http://127.0.0.1:$ops_port/readyz" <<'EOF' 2>/dev/null; then
import sys, urllib.request
# No proxies: the ops listener is local.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=1) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
    ready=yes
    break
  fi
  sleep 0.5
done
[[ -n "$ready" ]] || die "the gateway was not ready on 127.0.0.1:$ops_port within 30 s"
log "gateway ready on 127.0.0.1:$port (ops $ops_port)"

status=0
"$py" "$here/partner_client.py" \
  "$ALLIANCE_HOME/bundles/P-RST-001" "https://127.0.0.1:$port" "$ALLIANCE_HOME/bundles/P-CIN-001" \
  || status=$?
exit "$status"

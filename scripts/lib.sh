# Shared by the scripts: find the alliance-gateway binary.
# Order (contract section 13): $ALLIANCE_BIN, else target/release/alliance-gateway (built if
# missing and cargo is here), else the one on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

alliance_bin() {
  if [[ -n "${ALLIANCE_BIN:-}" ]]; then
    printf '%s\n' "$ALLIANCE_BIN"
  elif [[ -x "$ROOT/target/release/alliance-gateway" ]]; then
    printf '%s\n' "$ROOT/target/release/alliance-gateway"
  elif command -v cargo >/dev/null 2>&1 && [[ -f "$ROOT/Cargo.toml" ]]; then
    echo "building alliance-gateway (release) once; this takes a few minutes" >&2
    (cd "$ROOT" && cargo build --release --locked --quiet --bin alliance-gateway) >&2
    printf '%s\n' "$ROOT/target/release/alliance-gateway"
  elif command -v alliance-gateway >/dev/null 2>&1; then
    command -v alliance-gateway
  else
    echo "error: no alliance-gateway binary: set ALLIANCE_BIN or install Rust" >&2
    exit 1
  fi
}

# run_cli "USAGE LINE" SUBCOMMAND... -- "$@": prints the script's own usage line before the
# command's --help, and otherwise runs the command with the script's arguments.
run_cli() {
  local usage="$1"; shift
  local cmd=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do cmd+=("$1"); shift; done
  shift || true
  local a
  for a in "$@"; do
    if [[ "$a" == "-h" || "$a" == "--help" ]]; then
      printf 'Usage: %s\n  (runs: alliance-gateway %s)\n\n' "$usage" "${cmd[*]}"
      break
    fi
  done
  exec "$(alliance_bin)" "${cmd[@]}" "$@"
}

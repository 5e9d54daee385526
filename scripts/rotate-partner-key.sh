#!/usr/bin/env bash
# Rotate a partner's signing key to <CODE>/k<N+1>; the old key verifies until the overlap ends (default 24 h).
# Usage: scripts/rotate-partner-key.sh CODE [--public-key FILE] [--overlap-hours N | --overlap-minutes N | --now]
# Honours ALLIANCE_HOME, ALLIANCE_DATABASE_URL and the other ALLIANCE_* variables (README).
source "$(dirname "$0")/lib.sh"
run_cli "scripts/rotate-partner-key.sh CODE [--public-key FILE] [--overlap-hours N | --overlap-minutes N | --now]" partner rotate-key -- "$@"

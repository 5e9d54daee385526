#!/usr/bin/env bash
# Remove a finance user: certificates revoked, keys retired, at once. Safe to re-run.
# Usage: scripts/remove-finance-user.sh NAME
# Honours ALLIANCE_HOME, ALLIANCE_DATABASE_URL and the other ALLIANCE_* variables (README).
source "$(dirname "$0")/lib.sh"
run_cli "scripts/remove-finance-user.sh NAME" finance remove -- "$@"

#!/usr/bin/env bash
# Reactivate a suspended partner. Safe to re-run.
# Usage: scripts/reactivate-partner.sh CODE
# Honours ALLIANCE_HOME, ALLIANCE_DATABASE_URL and the other ALLIANCE_* variables (README).
source "$(dirname "$0")/lib.sh"
run_cli "scripts/reactivate-partner.sh CODE" partner reactivate -- "$@"

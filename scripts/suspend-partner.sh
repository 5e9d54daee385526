#!/usr/bin/env bash
# Suspend a partner: its next request gets 403 partner-suspended. Safe to re-run.
# Usage: scripts/suspend-partner.sh CODE [--reason TEXT]
# Honours ALLIANCE_HOME, ALLIANCE_DATABASE_URL and the other ALLIANCE_* variables (README).
source "$(dirname "$0")/lib.sh"
run_cli "scripts/suspend-partner.sh CODE [--reason TEXT]" partner suspend -- "$@"

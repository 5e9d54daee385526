#!/usr/bin/env bash
# Import members from CSV (card_no,tier,status,birth_month,opening_points,phone).
# Usage: scripts/import-members.sh FILE.csv [--report FILE]   exit 0 all, 3 some rejected, 2 unusable
# Honours ALLIANCE_* variables (see README "Configuration").
source "$(dirname "$0")/lib.sh"
run_cli "scripts/import-members.sh FILE.csv [--report FILE]" import-members -- "$@"

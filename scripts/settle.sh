#!/usr/bin/env bash
# Close and settle business days by hand (the nightly job's code path): every open day up to
# DATE (default yesterday), oldest first. A day that has not ended is refused.
# Usage: scripts/settle.sh [YYYY-MM-DD]
# Honours ALLIANCE_HOME, ALLIANCE_DATABASE_URL and the other ALLIANCE_* variables (README).
source "$(dirname "$0")/lib.sh"
run_cli "scripts/settle.sh [YYYY-MM-DD]" settle -- "$@"

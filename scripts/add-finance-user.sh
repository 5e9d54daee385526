#!/usr/bin/env bash
# Create a finance user's bundle (certificate, key, PKCS#12, signing key). Password: ALLIANCE_P12_PASSWORD, else generated and printed once.
# Usage: scripts/add-finance-user.sh NAME
# Honours ALLIANCE_HOME, ALLIANCE_DATABASE_URL and the other ALLIANCE_* variables (README).
source "$(dirname "$0")/lib.sh"
run_cli "scripts/add-finance-user.sh NAME" finance add -- "$@"

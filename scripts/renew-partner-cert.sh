#!/usr/bin/env bash
# Issue a new client certificate for a partner; the old one stays valid until it expires or is revoked.
# Usage: scripts/renew-partner-cert.sh CODE [--csr FILE]
# Honours ALLIANCE_HOME, ALLIANCE_DATABASE_URL and the other ALLIANCE_* variables (README).
source "$(dirname "$0")/lib.sh"
run_cli "scripts/renew-partner-cert.sh CODE [--csr FILE]" partner renew-cert -- "$@"

#!/usr/bin/env bash
# Revoke one certificate (403 on the next request) and write a new signed certs/crl.pem.
# Usage: scripts/revoke-cert.sh SERIAL_HEX [--reason TEXT]
# Honours ALLIANCE_HOME, ALLIANCE_DATABASE_URL and the other ALLIANCE_* variables (README).
source "$(dirname "$0")/lib.sh"
run_cli "scripts/revoke-cert.sh SERIAL_HEX [--reason TEXT]" cert revoke -- "$@"

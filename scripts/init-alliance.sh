#!/usr/bin/env bash
# Create the alliance: CA, server certificate, gateway signing key, member-data keys, database.
# Usage: scripts/init-alliance.sh [--name NAME] [--force]
# Honours ALLIANCE_* variables (see README "Configuration").
source "$(dirname "$0")/lib.sh"
run_cli "scripts/init-alliance.sh [--name NAME] [--force]" init -- "$@"

#!/usr/bin/env bash
# Onboard a partner from its spec and write its bundle to $ALLIANCE_HOME/bundles/<CODE>/.
# Usage: scripts/onboard-partner.sh partner-specs/<CODE>.toml [--public-key FILE | --csr FILE]
# Honours ALLIANCE_* variables (see README "Configuration").
source "$(dirname "$0")/lib.sh"
run_cli "scripts/onboard-partner.sh SPEC.toml [--public-key FILE | --csr FILE]" onboard-partner -- "$@"

#!/usr/bin/env bash
# Onboard a partner from its spec and write its bundle to $ALLIANCE_HOME/bundles/<CODE>/.
# Usage: scripts/onboard-partner.sh partner-specs/<CODE>.toml [--public-key FILE | --csr FILE]
# Honours ALLIANCE_* variables (see README "Configuration").
source "$(dirname "$0")/lib.sh"
exec "$(alliance_bin)" onboard-partner "$@"

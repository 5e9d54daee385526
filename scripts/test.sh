#!/usr/bin/env bash
# Runs every test: unit tests (RFC 9421 Appendix B vectors among them), the end-to-end suite
# (a real gateway on 127.0.0.1 over real mTLS with real signatures) and doc tests.
# The suite uses a SQLite file per test; set ALLIANCE_TEST_DATABASE_URL=postgres://user:pass@host/db
# (a role allowed to CREATE DATABASE) to run it against PostgreSQL, one fresh database per test.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^[^#]/p' "$0" | sed -n 's/^# \{0,1\}//p'
  exit 0
fi
cd "$(dirname "$0")/.."
cargo test --locked --all-targets "$@"
cargo test --locked --doc

#!/usr/bin/env bash
# Replays a sale's SQL on PostgreSQL with pgbench, one sale per transaction (as the gateway
# books today) against batches of 4 and 8 sales per transaction (one prelude and one booking
# statement per batch), interleaved with pgbench -b tpcb-like. No gateway runs: this measures
# what PostgreSQL alone spends per sale. See README.md.
# usage: benches/pg-replay/run.sh postgres://user:pass@host/db [seconds per run] [rounds]
set -euo pipefail
DB=${1:?usage: run.sh postgres://… [seconds] [rounds]}
seconds=${2:-10}
rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
BIN=$(alliance_bin)
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
export ALLIANCE_HOME=$home ALLIANCE_DATABASE_URL=$DB
PGOPTIONS='-c client_min_messages=warning' psql -q "$DB" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public'
"$BIN" init >/dev/null
"$BIN" onboard-partner "$ROOT/partner-specs/P-RST-001.toml" >/dev/null
"$BIN" import-members "$ROOT/examples/data/members.csv" >/dev/null
# 60,000 members with cards 7700000000…7700059999; the scripts take member id = 7 + n.
{ echo "card_no,tier,status,birth_month,opening_points,phone"
  awk 'BEGIN { for (i = 0; i < 60000; i++) printf "77%08d,gold,active,,5000,\n", i }'
} >"$home/members.csv"
"$BIN" import-members "$home/members.csv" >/dev/null
first=$(psql -At "$DB" -c "SELECT min(id) FROM members WHERE card_no LIKE '77%'")
[[ "$first" == 7 ]] || { echo "error: expected the first bench member to get id 7, got $first" >&2; exit 1; }
psql -q "$DB" -f "$here/functions.sql" 2>&1 | grep -v NOTICE || true
pgbench -i -s 8 -q "$DB" >/dev/null 2>&1
tps() { pgbench -n "$@" -T "$seconds" "$DB" 2>/dev/null | awk '/^tps/ { print int($3) }'; }
for _ in $(seq 1 "$rounds"); do
  t=$(tps -b tpcb-like -c 8 -j 2)
  s=$(tps -f "$here/single.sql" -c 8 -j 2)
  b8=$(tps -f "$here/batch8.sql" -c 4 -j 2)
  b4=$(tps -f "$here/batch4.sql" -c 8 -j 2)
  awk -v t="$t" -v s="$s" -v b8="$b8" -v b4="$b4" 'BEGIN {
    printf "{\"tpcb_like_tps\": %d, \"single_sales_per_s\": %d, \"batch8_sales_per_s\": %d, \"batch4_sales_per_s\": %d, \"single_over_tpcb\": %.2f, \"batch8_over_tpcb\": %.2f, \"batch4_over_tpcb\": %.2f}\n",
      t, s, b8 * 8, b4 * 4, s / t, b8 * 8 / t, b4 * 4 / t }'
done

#!/usr/bin/env bash
# Runs the README's quickstart in a temporary directory and makes the first call it prints,
# with the curl + openssl reference client. Used by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
home=$(mktemp -d)
export ALLIANCE_HOME=$home ALLIANCE_LISTEN=127.0.0.1:${SMOKE_PORT:-18643} ALLIANCE_OPS_LISTEN=127.0.0.1:${SMOKE_OPS_PORT:-19643}
log=$home/quickstart.log
scripts/quickstart.sh >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$home"' EXIT
for _ in $(seq 1 120); do
  curl -fsS "http://$ALLIANCE_OPS_LISTEN/readyz" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "FAIL: quickstart exited" >&2; exit 1; }
  sleep 0.5
done
out=$(GATEWAY_URL=https://localhost:${ALLIANCE_LISTEN##*:} scripts/partner-call.sh "$home/bundles/P-RST-001" POST /v1/members/verify '{"card_no":"8800123456"}')
echo "$out" | head -n 1
echo "$out" | grep -q '^HTTP/1.1 200' || { echo "$out"; cat "$log"; echo "FAIL: first call did not succeed" >&2; exit 1; }
echo "$out" | grep -q '"tier":"gold"' || { echo "$out"; echo "FAIL: unexpected body" >&2; exit 1; }
echo "$out" | grep -qi '^signature-input: sig=("@status"' || { echo "FAIL: response is not signed" >&2; exit 1; }
# The redemption flow the quickstart prints: the mall's app gets a token, the till redeems.
url=https://localhost:${ALLIANCE_LISTEN##*:}
tok=$(GATEWAY_URL=$url scripts/partner-call.sh "$home/bundles/MALL" POST /v1/member-tokens '{"card_no":"8800123456"}')
token=$(echo "$tok" | grep -o '"member_token":"[0-9]*"' | cut -d'"' -f4)
[[ -n "$token" ]] || { echo "$tok"; echo "FAIL: no member token" >&2; exit 1; }
sale='{"partner_txn_id":"SMOKE-1","card_no":"8800123456","store_id":"store-1","occurred_at":"'$(date -u +%Y-%m-%dT%H:%M:%SZ)'","gross_fen":10000,"discount_fen":1200,"redeem_points":100,"member_token":"'$token'"}'
rec=$(GATEWAY_URL=$url scripts/partner-call.sh "$home/bundles/P-RST-001" POST /v1/transactions "$sale" smoke-attempt-1)
echo "$rec" | grep -q '^HTTP/1.1 201' || { echo "$rec"; echo "FAIL: the redemption was not recorded" >&2; exit 1; }
echo "$rec" | grep -q '"paid_fen":8700' || { echo "$rec"; echo "FAIL: unexpected receipt" >&2; exit 1; }
again=$(GATEWAY_URL=$url scripts/partner-call.sh "$home/bundles/P-RST-001" POST /v1/transactions "$sale" smoke-attempt-1)
[[ "$(echo "$again" | tail -n 1)" == "$(echo "$rec" | tail -n 1)" ]] || { echo "FAIL: a retry did not replay the receipt" >&2; exit 1; }
echo "redemption with a member token: ok"
# Stop it the way an operator would, and check it goes quietly.
kill -TERM $pid
wait $pid || { echo "FAIL: serve did not exit cleanly on SIGTERM" >&2; exit 1; }
echo "quickstart smoke: ok"

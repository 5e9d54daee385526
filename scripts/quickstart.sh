#!/usr/bin/env bash
# From a fresh clone to a gateway serving on SQLite: initialises an alliance in ./demo (or
# $ALLIANCE_HOME), onboards the sample partners in partner-specs/, imports the sample members
# and serves. Safe to run again: an existing alliance is reused, never overwritten.
source "$(dirname "$0")/lib.sh"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^[^#]/p' "$0" | sed -n 's/^# \{0,1\}//p'
  exit 0
fi
export ALLIANCE_HOME=${ALLIANCE_HOME:-$ROOT/demo}
BIN=$(alliance_bin)

if [[ -f "$ALLIANCE_HOME/certs/ca.pem" ]]; then
  echo "reusing the alliance in $ALLIANCE_HOME"
else
  "$BIN" init --name "会员特权通 Demo"
fi
for spec in "$ROOT"/partner-specs/*.toml; do
  "$BIN" onboard-partner "$spec"
done
status=0
"$BIN" import-members "$ROOT/examples/data/members.csv" || status=$?
if [[ $status -ne 0 && $status -ne 3 ]]; then
  exit "$status"
fi

listen=${ALLIANCE_LISTEN:-0.0.0.0:8443}
port=${listen##*:}
rel_home=${ALLIANCE_HOME#"$PWD"/}
cat <<MSG

The gateway is starting on https://localhost:$port (ops: http://${ALLIANCE_OPS_LISTEN:-127.0.0.1:9090}).
Partner bundles are in $ALLIANCE_HOME/bundles/. Make a first signed call from another terminal:

  GATEWAY_URL=https://localhost:$port scripts/partner-call.sh $rel_home/bundles/P-RST-001 POST /v1/members/verify '{"card_no":"8800123456"}'

A redemption: the mall's member app (partner MALL, a token issuer) gets a one-time token for
the member, and the restaurant's till sends it with a sale that spends 100 points:

  GATEWAY_URL=https://localhost:$port scripts/partner-call.sh $rel_home/bundles/MALL POST /v1/member-tokens '{"card_no":"8800123456"}'
  GATEWAY_URL=https://localhost:$port scripts/partner-call.sh $rel_home/bundles/P-RST-001 POST /v1/transactions \
    '{"partner_txn_id":"POS1-0001","card_no":"8800123456","store_id":"store-1","occurred_at":"'"\$(date -u +%Y-%m-%dT%H:%M:%SZ)"'","gross_fen":10000,"discount_fen":1200,"redeem_points":100,"member_token":"<the token>"}' \
    pos1-0001-attempt

Stop with Ctrl-C (SIGTERM also shuts down gracefully).
MSG
exec "$BIN" serve

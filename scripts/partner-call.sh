#!/usr/bin/env bash
# A reference partner client written with curl and openssl only: signs one request under the
# alliance-sig-v1 profile (RFC 9421, Ed25519) and sends it over mutual TLS.
#
# Usage: scripts/partner-call.sh BUNDLE_DIR METHOD PATH[?QUERY] [JSON_BODY] [IDEMPOTENCY_KEY]
#   scripts/partner-call.sh demo/bundles/P-RST-001 POST /v1/members/verify '{"card_no":"8800123456"}'
#   scripts/partner-call.sh demo/bundles/P-RST-001 GET /v1/keys
# The gateway URL comes from the bundle's partner.json (override with GATEWAY_URL).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^[^#]/p' "$0" | sed -n 's/^# \{0,1\}//p'
  exit 0
fi
if [[ $# -lt 3 ]]; then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
bundle=$1 method=$2 target=$3 body=${4:-} idem=${5:-}
for f in ca.pem client.pem client.key signing.key partner.json; do
  [[ -f "$bundle/$f" ]] || { echo "error: $bundle/$f is missing" >&2; exit 2; }
done
json_field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" "$bundle/partner.json" | head -n1; }
key_id=$(json_field key_id)
url=${GATEWAY_URL:-$(json_field gateway_url)}

path=${target%%\?*}
if [[ "$target" == *\?* ]]; then query="?${target#*\?}"; else query="?"; fi
created=$(date +%s)
nonce=$(openssl rand -hex 16)

components='"@method" "@path" "@query"'
base="\"@method\": $method
\"@path\": $path
\"@query\": $query"
headers=()
if [[ -n "$body" ]]; then
  digest="sha-256=:$(printf '%s' "$body" | openssl dgst -sha256 -binary | openssl base64 -A):"
  components+=' "content-type" "content-digest"'
  base+="
\"content-type\": application/json
\"content-digest\": $digest"
  headers+=(-H "Content-Type: application/json" -H "Content-Digest: $digest" --data-binary "$body")
fi
if [[ -n "$idem" ]]; then
  components+=' "idempotency-key"'
  base+="
\"idempotency-key\": $idem"
  headers+=(-H "Idempotency-Key: $idem")
fi
params="($components);created=$created;keyid=\"$key_id\";nonce=\"$nonce\";alg=\"ed25519\""
base+="
\"@signature-params\": $params"

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
printf '%s' "$base" > "$tmp"
signature=$(openssl pkeyutl -sign -inkey "$bundle/signing.key" -rawin -in "$tmp" | openssl base64 -A)

curl -sS --show-error -D - -X "$method" \
  --cacert "$bundle/ca.pem" --cert "$bundle/client.pem" --key "$bundle/client.key" \
  -H "Signature-Input: sig=$params" -H "Signature: sig=:$signature:" \
  "${headers[@]}" "$url$target"
echo

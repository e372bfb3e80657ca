#!/usr/bin/env bash
# The API contract: schemathesis (pinned, in a venv under target/) against a `hyyve serve`
# on embedded defaults, bounded examples per operation; any failure fails. The operations
# that can revoke or demote the key in use run last, on a key of their own.
# Usage: tests/contract/schemathesis.sh [path to the hyyve binary]
set -euo pipefail
cd "$(dirname "$0")/../.."
hyyve="${1:-target/debug/hyyve}"
examples="${SCHEMATHESIS_EXAMPLES:-20}"
seed="${SCHEMATHESIS_SEED:-1}"
venv=target/contract-venv
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi

data="$(mktemp -d)"
log="$data/serve.log"
port=$((20000 + RANDOM % 20000))
# Embedded defaults (SQLite under the temp data dir) whatever DATABASE_URL says: a shared
# database already set up answers no first start. CONTRACT_DATABASE_URL names a fresh
# database (e.g. an empty PostgreSQL schema) to check instead.
env -u DATABASE_URL -u HYYVE_DATABASE_URL ${CONTRACT_DATABASE_URL:+DATABASE_URL="$CONTRACT_DATABASE_URL"} \
  "$hyyve" --data-dir "$data/data" serve --listen "127.0.0.1:$port" > "$log" 2>&1 &
server=$!
# On failure the server's log says what a 5xx was.
trap 'status=$?; kill $server 2>/dev/null; [ $status -ne 0 ] && grep -E "ERROR|panicked" "$log" | tail -20; rm -rf "$data"' EXIT
# A first start may build the first-party plugins: allow it minutes, then say why.
for _ in $(seq 1 1500); do
  grep -q "^hyyve API on" "$log" && break
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
grep -q "^hyyve API on" "$log" || { echo "hyyve serve did not start in 5 min:"; cat "$log"; exit 1; }
url="http://127.0.0.1:$port"
HYYVE_KEY="$(grep -o 'hyyve_sk_[0-9a-f]*' "$log" | head -1)"
[ -n "$HYYVE_KEY" ] || { echo "hyyve serve printed no owner key (not a fresh database?):"; cat "$log"; exit 1; }
second="$(curl -sS --fail-with-body -X POST "$url/v1/keys" -H "authorization: Bearer $HYYVE_KEY" \
  -H 'content-type: application/json' -d '{"name": "contract", "role": "owner"}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')"

revoking='^/v1/(keys|members)/\{id\}$'
run() {
  "$venv/bin/st" --config-file tests/contract/schemathesis.toml run "$url/openapi.json" \
    --max-examples "$examples" --seed "$seed" --no-color "$@"
}
export HYYVE_KEY
run --exclude-path-regex "$revoking"
HYYVE_KEY="$second" run --include-path-regex "$revoking"

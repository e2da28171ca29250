#!/usr/bin/env bash
# The API as a contract: schemathesis (from PyPI) generates requests for every operation of a
# fresh daemon's /openapi.json and runs every check against the answers (status codes, content
# types, schemas, acceptance of valid and rejection of invalid data, auth, stateful links).
# Passes only with 0 failures and 0 errors; prints the operations and cases it ran.
#
#   tests/api-contract/run.sh            (FAAS_CONTRACT_SECONDS=180 by default;
#                                         FAAS_CONTRACT_PATHS=REGEX tests only the paths it matches)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../scripts/lib.sh
. "$root/scripts/lib.sh"

seconds=${FAAS_CONTRACT_SECONDS:-180}
st=$(faas_schemathesis)

cargo build -q --locked -p faas-platform --manifest-path "$root/Cargo.toml"
binary="$root/target/debug/faas-platform"

work=$(mktemp -d)
daemon=""
network="faas-contract-$$"
cleanup() {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  docker network rm "$network" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

read -r api_port router_port < <(python3 -c 'import socket
ss=[socket.socket() for _ in range(2)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(*[s.getsockname()[1] for s in ss])')
api="http://127.0.0.1:$api_port"
"$binary" serve --data-dir "$work/data" --listen "127.0.0.1:$api_port" \
  --router "127.0.0.1:$router_port" --network "$network" >"$work/daemon.log" 2>&1 &
daemon=$!
deadline=$(( $(date +%s) + 60 ))
until curl -fsS "$api/_info" >/dev/null 2>&1; do
  if ! kill -0 "$daemon" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
    echo "the daemon did not answer; its log:" >&2; cat "$work/daemon.log" >&2; exit 1
  fi
  sleep 0.2
done
token=$(cat "$work/data/admin-token")
curl -fsS -X POST "$api/v1/services" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"name": "contract", "owner": "contract@example.com"}' >/dev/null

curl -fsS "$api/openapi.json" -o "$work/openapi.json"

set +e
(cd "$here" && FAAS_CONTRACT_OPENAPI="$work/openapi.json" SCHEMATHESIS_HOOKS="$here/hooks.py" \
  "$st" run "$api/openapi.json" --checks all \
  -H "Authorization: Bearer $token" --request-timeout 5 --max-time "$seconds" \
  --seed "${FAAS_CONTRACT_SEED:-20261201}" --no-color \
  ${FAAS_CONTRACT_PATHS:+--include-path-regex "$FAAS_CONTRACT_PATHS"}) >"$work/st.log" 2>&1
status=$?
set -e

operations=$(sed -n 's/^ *Tested: *\([0-9]*\).*/\1/p' "$work/st.log" | tail -1 || true)
cases=$(sed -n 's/^ *\([0-9]*\) generated.*/\1/p' "$work/st.log" | tail -1 || true)
# The closing line: "=== 3 warnings in 150.03s ===", or with failures and errors before "in".
summary=$(grep -E '^=+ .* in [0-9.]+s =+$' "$work/st.log" | tail -1 || true)
if [ "$status" -ne 0 ] || [ -z "$summary" ] || printf '%s' "$summary" | grep -qE 'failure|error'; then
  cat "$work/st.log"
  echo "api contract: ${operations:-?} operations, ${cases:-?} cases; schemathesis exited $status"
  echo "0 passed, 1 failed"
  exit 1
fi
if grep -q 'ERROR' "$work/daemon.log"; then
  echo "the daemon logged errors (a 5xx says nothing internal to the client; its log does):" >&2
  grep 'ERROR' "$work/daemon.log" | head -20 >&2
  echo "0 passed, 1 failed"
  exit 1
fi
sed -n '/^=* SUMMARY/,$p' "$work/st.log"
echo "api contract: ${operations:-?} operations, ${cases:-?} cases, 0 failures, 0 errors, no server error logged"
echo "1 passed, 0 failed"

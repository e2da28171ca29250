#!/usr/bin/env bash
# The dashboard in a real browser: Debian's chromium driven by playwright-core (from the npm
# registry, its lockfile committed; no browser is downloaded) against a fresh daemon on the real
# Docker Engine. node's own test runner runs dashboard.test.mjs and prints its summary.
#
#   tests/dashboard/run.sh                      (FAAS_SCREENSHOTS=docs/dashboard keeps the shots)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

command -v chromium >/dev/null || { echo "chromium is missing: run scripts/setup-test-env.sh" >&2; exit 1; }
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund >/dev/null)
fi

cargo build -q --locked -p faas-platform --manifest-path "$root/Cargo.toml"
binary="$root/target/debug/faas-platform"

work=$(mktemp -d)
daemon=""
network="faas-dashboard-$$"
cleanup() {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  if [ -f "$work/data/platform.db" ]; then
    id=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select value from meta where key=\"platform_id\"").fetchone()[0])' "$work/data/platform.db" 2>/dev/null || true)
    if [ -n "$id" ]; then
      docker ps -aq --filter "label=io.faas.platform=$id" | xargs -r docker rm -f >/dev/null 2>&1 || true
    fi
  fi
  docker network rm "$network" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

read -r api_port router_port < <(python3 -c 'import socket
ss=[socket.socket() for _ in range(2)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(*[s.getsockname()[1] for s in ss])')
api="http://127.0.0.1:$api_port"
FAAS_PLATFORM_PROBLEM_WINDOW=8s "$binary" serve --data-dir "$work/data" --listen "127.0.0.1:$api_port" \
  --router "127.0.0.1:$router_port" --network "$network" --meter-interval 2s >"$work/daemon.log" 2>&1 &
daemon=$!
deadline=$(( $(date +%s) + 60 ))
until curl -fsS "$api/_info" >/dev/null 2>&1; do
  if ! kill -0 "$daemon" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
    echo "the daemon did not answer; its log:" >&2; cat "$work/daemon.log" >&2; exit 1
  fi
  sleep 0.2
done

set +e
(cd "$here" && FAAS_API="$api" FAAS_ROUTER_PORT="$router_port" FAAS_ADMIN_TOKEN="$(cat "$work/data/admin-token")" \
  FAAS_SCREENSHOTS="${FAAS_SCREENSHOTS:+$root/$FAAS_SCREENSHOTS}" \
  node --test --test-reporter=spec dashboard.test.mjs)
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "== the daemon's log (last 80 lines)" >&2
  tail -n 80 "$work/daemon.log" >&2
fi
exit "$status"

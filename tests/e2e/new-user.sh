#!/usr/bin/env bash
# End to end, as a new user on a fresh machine: install with ./install.sh, scaffold a service,
# validate it, build it with the real Docker Engine, run it, and call it. Then the same for the
# static template, and a compile check of the rust-http template. Prints "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
export HOME="$work/home"
mkdir -p "$HOME"
export CARGO_HOME=${CARGO_HOME:-/root/.cargo}
export RUSTUP_HOME=${RUSTUP_HOME:-/root/.rustup}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
export NO_COLOR=1
tag="faas-e2e-$$"
containers=()
passed=0
failed=0

cleanup() {
  for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1; done
  docker image rm -f "$tag-demo" "$tag-site" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAILED: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }

# Poll a URL until it answers 200, within a deadline in seconds.
wait_200() {
  local url=$1 deadline=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ] && return 0
    sleep 0.2
  done
  return 1
}

# Runs image $1 as container $2 and prints its published host port. Called in $(…), a
# subshell, so the caller records the container for cleanup.
run_container() {
  docker run -d --name "$2" -p 127.0.0.1::8080 "$1" >/dev/null || return 1
  docker port "$2" 8080/tcp | head -n1 | sed 's/.*://'
}

echo "-- ./install.sh --prefix $work/bin --yes"
if "$root/install.sh" --prefix "$work/bin" --yes >"$work/install.log" 2>&1; then ok "install.sh"; else fail "install.sh"; cat "$work/install.log"; fi
check "faas is installed" test -x "$work/bin/faas"
check "faas-platform is installed" test -x "$work/bin/faas-platform"
check "install.sh is idempotent" sh -c "'$root/install.sh' --prefix '$work/bin' --yes 2>&1 | grep -q 'is up to date'"
export PATH="$work/bin:$PATH"

mkdir -p "$work/projects" && cd "$work/projects" || exit 1
echo "-- faas service create demo --template python-function --no-input --owner me@example.com"
check "service create" faas service create demo --template python-function --no-input --owner me@example.com
cd demo || exit 1
check "service validate" faas service validate
check "app.toml names the schema" grep -q '^#:schema ' app.toml

echo "-- docker build"
if docker build -q -t "$tag-demo" . >"$work/build.log" 2>&1; then ok "docker build of the scaffold"; else fail "docker build"; cat "$work/build.log"; fi
containers+=("$tag-demo")
port=$(run_container "$tag-demo" "$tag-demo")
check "container started" test -n "$port"
check "/_info answers 200" wait_200 "http://127.0.0.1:$port/_info" 30

body=$(curl -s -X POST -H 'Content-Type: application/json' -d '{"a": 2, "b": 3}' "http://127.0.0.1:$port/functions/add")
check "add returns 5 (got $body)" test "$body" = "5"
body=$(curl -s -X POST -d '{"start": 1, "ops": [["add", 2], ["multiply", 3]]}' "http://127.0.0.1:$port/functions/evaluate")
check "evaluate returns 9 (got $body)" test "$body" = "9"
status=$(curl -s -o "$work/bad.json" -w '%{http_code}' -X POST -d '{not json' "http://127.0.0.1:$port/functions/add")
check "bad JSON gives 400 (got $status)" test "$status" = 400
check "the 400 body is a JSON error" python3 -c "import json,sys; e=json.load(open('$work/bad.json'))['error']; sys.exit(0 if e['code']=='invalid_json' and e['request_id'] else 1)"
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"a": 1, "b": 0}' "http://127.0.0.1:$port/functions/divide")
check "divide by zero gives 400 (got $status)" test "$status" = 400
check "the container logs JSON lines with request ids" sh -c "docker logs '$tag-demo' 2>&1 | grep -q '\"request_id\"'"

echo "-- faas launch: the README's main job"
export FAAS_LOCAL_LISTEN="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export FAAS_LOCAL_ROUTER="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cd "$work/projects" || exit 1
url=$(faas launch calc --no-input --owner me@example.com 2>"$work/launch.log")
if [ -n "$url" ]; then ok "faas launch printed $url"; else fail "faas launch"; cat "$work/launch.log"; fi
body=$(curl -s -X POST -d '{"a": 2, "b": 3}' "$url/functions/add")
check "the launched service answers through the router (got $body)" test "$body" = "5"
platform_id=$(curl -s "http://$FAAS_LOCAL_LISTEN/_info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

echo "-- a database: faas postgresql add, deploy, connect"
cd "$work/projects/calc" || exit 1
check "postgresql add" faas postgresql add
if faas service deploy -e prod --yes >"$work/deploy-db.log" 2>&1; then ok "deploy with a database"; else fail "deploy with a database"; cat "$work/deploy-db.log"; fi
check "status shows the database ready" sh -c "faas service status | grep -q 'database main (postgresql, managed): ready'"
answer=$(faas service db connect main -- -tAc 'SELECT current_user LIKE $$f_calc_prod_main_%$$' 2>"$work/connect.log")
check "db connect opens psql as the service's own login (got $answer)" test "$answer" = "t"
body=$(curl -s -X POST -d '{"a": 2, "b": 3}' "$url/functions/add")
check "the service still answers after the deploy (got $body)" test "$body" = "5"

faas platform stop >/dev/null 2>&1
ids=$(docker ps -aq --filter "label=io.faas.platform=$platform_id")
[ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
docker rm -fv "faas-${platform_id:0:12}-postgresql" >/dev/null 2>&1
docker volume rm -f "faas-${platform_id:0:12}-postgresql" >/dev/null 2>&1

echo "-- static template"
cd "$work/projects" || exit 1
check "service create (static)" faas service create site --template static --no-input --owner me@example.com
cd site || exit 1
if docker build -q -t "$tag-site" . >"$work/build-site.log" 2>&1; then ok "docker build (static)"; else fail "docker build (static)"; cat "$work/build-site.log"; fi
containers+=("$tag-site")
port=$(run_container "$tag-site" "$tag-site")
check "static /_info answers 200" wait_200 "http://127.0.0.1:$port/_info" 30
check "static index names the site" sh -c "curl -s http://127.0.0.1:$port/ | grep -q '<h1>site</h1>'"

echo "-- rust-http template compiles"
cd "$work/projects" || exit 1
check "service create (rust-http)" faas service create rusty --template rust-http --no-input --owner me@example.com
if (cd rusty && CARGO_TARGET_DIR="$root/target/e2e-rust-http" cargo check -q >"$work/rust.log" 2>&1); then ok "rust-http cargo check"; else fail "rust-http cargo check"; cat "$work/rust.log"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

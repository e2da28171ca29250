#!/usr/bin/env bash
# Seeds faas-bench/nginx: nginx answering 200 on port 8080 with one worker, the trivial backend
# the router benchmark puts behind the router, behind host nginx, and calls directly. Built from
# the same minimal Debian root scripts/setup-test-env.sh makes; reused when already present.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
image=faas-bench/nginx:latest
docker image inspect "$image" >/dev/null 2>&1 && exit 0
"$root/scripts/setup-test-env.sh"
cache=${FAAS_SEED_CACHE:-/var/cache/faas-seed}
dir="$cache/bench-nginx"
if [ ! -x "$dir/usr/sbin/nginx" ]; then
  rm -rf "$dir"
  cp -a "$cache/bookworm-minbase" "$dir"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  chroot "$dir" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*'
fi
cat >"$dir/etc/nginx/bench.conf" <<'CONF'
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  server {
    listen 8080;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
CONF
tar -C "$dir" -c . | docker import -c 'CMD ["nginx", "-g", "daemon off;", "-c", "/etc/nginx/bench.conf"]' - "$image" >/dev/null
faas_say "seeded $image"

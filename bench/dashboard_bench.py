#!/usr/bin/env python3
"""Dashboard benchmarks (issue: the dashboard). Each figure is printed next to a baseline
measured in the same run; nothing is asserted.

1. Server time of the overview with 50 deployed services and a month of metrics (hour points
   for 30 days and minute points for the 3 days kept, per service: about 250,000 points), median
   and p95 of N, against GET /_info. Target: under 50 ms.
2. The overview ready in Debian's chromium (load event), median of N, against the sign-in page.
   Target: under 500 ms.
3. A problem's delay from the event (a container's death that makes a crash loop) to an open
   page (live update). Target: under 2 s.

    python3 bench/dashboard_bench.py [--quick]     (needs scripts/setup-test-env.sh)
"""

import argparse
import json
import os
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import ROOT, OWNER, Platform, busybox_manifest  # noqa: E402

IMAGE = "busybox:stable"
SIZE = '[size]\ncpu = 0.05\nmemory = "64Mi"\n'
CRASH = (
    'name = "{name}"\nowner = "' + OWNER + '"\n[run]\nport = 8080\n'
    'command = ["sh", "-c", "if [ -e /tmp/booted ]; then echo fatal; exit 3; fi; touch /tmp/booted; '
    'mkdir -p /tmp/www && echo ok > /tmp/www/_info && httpd -p 8080 -h /tmp/www; sleep 3; exit 1"]\n'
    '[health]\npath = "/_info"\ninterval = "500ms"\n' + SIZE
)
BUCKETS = 16


def build():
    subprocess.run(["cargo", "build", "--release", "-q", "--locked", "-p", "faas-platform"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "faas-platform")


def seed_month(db_path, services):
    """A month of points for every service's current release, as the recorder would keep them."""
    db = sqlite3.connect(db_path)
    rows = db.execute(
        "SELECT service, env, current_release FROM environments WHERE current_release IS NOT NULL"
    ).fetchall()
    assert len(rows) == services, rows
    now = int(time.time())
    points = []
    for service, env, release in rows:
        for res, count in ((3600, 30 * 24), (60, 3 * 24 * 60)):
            top = now - now % res
            for i in range(count):
                at = top - i * res
                requests = 50 + (i * 7919) % 400
                errors = requests // 100
                buckets = [0] * BUCKETS
                buckets[2], buckets[4], buckets[6] = requests // 2, requests // 3, requests - requests // 2 - requests // 3
                blob = struct.pack("<16Q", *buckets)
                points.append((service, env, release, res, at, requests, errors, blob,
                               res * 10_000_000, res * 1_000_000_000, 0.05, 20 << 20, 64 << 20))
    db.executemany(
        "INSERT OR REPLACE INTO metric_points (service, env, release_id, res, at, requests, errors, buckets,"
        " cpu_ns, cpu_wall_ns, cpu_limit, mem_bytes, mem_limit) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", points)
    db.commit()
    db.close()
    return len(points)


def session(p):
    req = urllib.request.Request(f"http://127.0.0.1:{p.api_port}/dashboard/login", method="POST",
                                 data=f"token={p.token}".encode())
    req.add_header("Content-Type", "application/x-www-form-urlencoded")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(req)
    except urllib.error.HTTPError as e:
        return e.headers["Set-Cookie"].split(";")[0]
    sys.exit("signing in did not answer a redirect")


def timed(p, path, cookie, rounds):
    samples = []
    for _ in range(rounds):
        req = urllib.request.Request(f"http://127.0.0.1:{p.api_port}{path}")
        if cookie:
            req.add_header("Cookie", cookie)
        start = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        samples.append((time.perf_counter() - start) * 1000)
    return samples, body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    services = 50
    rounds = 15 if args.quick else 50
    crashers = 2 if args.quick else 3
    binary = build()
    with tempfile.TemporaryDirectory() as work:
        p = Platform(binary, work)
        try:
            for i in range(services):
                name = f"svc-{i:02d}"
                p.create_service(name)
                d = p.wait(name, p.deploy(name, busybox_manifest(name, "v1", 1) + SIZE, IMAGE))
                if d["state"] != "succeeded":
                    sys.exit(f"{name}: {d['state']} {d.get('reason')}")
        finally:
            p.stop()
        n = seed_month(os.path.join(p.data, "platform.db"), services)
        print(f"seeded {services} services, {n} metric points (30 days hourly, 3 days by the minute)")
        p = Platform(binary, work)
        try:
            cookie = session(p)
            timed(p, "/dashboard", cookie, 3)  # warm: the month's cost per tenant is read once a minute
            base, _ = timed(p, "/_info", None, rounds)
            over, body = timed(p, "/dashboard", cookie, rounds)
            page, _ = timed(p, "/dashboard/services/svc-07?span=30d", cookie, rounds)
            assert body.count(b'class="service"') == services, "the overview lists every service"
            q = lambda xs, f: statistics.quantiles(xs, n=20)[18] if f == "p95" else statistics.median(xs)
            print(f"server time, {rounds} requests each (median / p95):")
            print(f"  GET /_info (baseline)            {q(base, 'm'):7.2f} / {q(base, 'p95'):7.2f} ms")
            print(f"  GET /dashboard (50 services)     {q(over, 'm'):7.2f} / {q(over, 'p95'):7.2f} ms"
                  f"   ratio {q(over, 'm') / q(base, 'm'):.1f}x   target < 50 ms")
            print(f"  a service page, 30 days          {q(page, 'm'):7.2f} / {q(page, 'p95'):7.2f} ms")

            names = [f"crash-{i}" for i in range(crashers)]
            for name in names:
                p.create_service(name)
            env = {**os.environ, "FAAS_API": f"http://127.0.0.1:{p.api_port}", "FAAS_TOKEN": p.token,
                   "ROUNDS": str(10 if args.quick else 20), "CRASHERS": ",".join(names)}
            node = subprocess.Popen(["node", os.path.join(ROOT, "bench", "dashboard_browser.mjs")],
                                    env=env, stdout=subprocess.PIPE, text=True)
            result = None
            for line in node.stdout:
                msg = json.loads(line)
                if "deploy" in msg:
                    name = msg["deploy"]
                    p.wait(name, p.deploy(name, CRASH.format(name=name), IMAGE))
                else:
                    result = msg
            if node.wait() != 0 or result is None:
                sys.exit("the browser half failed")
            print(f"in chromium ({result['overview_rows']} rows), load event, median of {env['ROUNDS']}:")
            print(f"  sign-in page (baseline)          {result['login_ready_ms']:7.1f} ms")
            print(f"  overview                         {result['overview_ready_ms']:7.1f} ms (max "
                  f"{result['overview_ready_max_ms']:.1f})   ratio "
                  f"{result['overview_ready_ms'] / result['login_ready_ms']:.1f}x   target < 500 ms")
            delays = result["live_delays_ms"]
            print(f"live update, death to crash loop on the open page: {', '.join(f'{d} ms' for d in delays)}"
                  f"   (median {statistics.median(delays):.0f} ms, target < 2000 ms)")
        finally:
            p.stop()
            subprocess.run(f"docker ps -aq --filter label=io.faas.platform={p.id} | xargs -r docker rm -f",
                           shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()

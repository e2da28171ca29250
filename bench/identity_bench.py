#!/usr/bin/env python3
"""The router's cost of X-Source and tracing (issue: services calling services). Prints figures
next to a baseline measured in the same run; asserts nothing.

Two daemons side by side, each with the same trivial nginx service (faas-bench/nginx, seeded by
bench/seed-nginx-image.sh, as the router benchmark uses): one as it runs by default
(callers identified for X-Source, a traceparent taken or started, a span recorded per request),
one with FAAS_PLATFORM_TRACING=off (neither). wrk through each router, alternating, 3 rounds;
the medians of requests/s and p99. Target: under 5 % of throughput.

    python3 bench/identity_bench.py [--quick]     (needs wrk: apt-get install wrk)
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import OWNER, ROOT, Platform, wrk  # noqa: E402

IMAGE = "faas-bench/nginx:latest"
MANIFEST = f'''name = "plain"
owner = "{OWNER}"
[run]
port = 8080
[health]
path = "/"
[scale]
replicas = 1
'''


def build():
    subprocess.run(["cargo", "build", "--release", "-q", "--locked", "-p", "faas-platform"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "faas-platform")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seconds = 4 if args.quick else 8
    rounds = 1 if args.quick else 3
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        sys.exit("wrk is missing: apt-get install wrk")
    subprocess.run(["bash", os.path.join(ROOT, "bench", "seed-nginx-image.sh")], check=True)
    binary = build()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        on = Platform(binary, a)
        off = Platform(binary, b, env={"FAAS_PLATFORM_TRACING": "off"})
        try:
            for p in (on, off):
                p.create_service("plain")
                d = p.wait("plain", p.deploy("plain", MANIFEST, IMAGE))
                if d["state"] != "succeeded":
                    sys.exit(f"deploy: {d['state']} {d.get('reason')}")
            runs = {"on": [], "off": []}
            for _ in range(rounds):
                for name, p in (("off", off), ("on", on)):
                    runs[name].append(wrk(f"http://127.0.0.1:{p.router_port}/", host="plain.localhost", seconds=seconds))
            med = {k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50", "p99")} for k, v in runs.items()}
            errors = sum(r["non2xx"] for v in runs.values() for r in v)
            print(f"router, wrk -t2 -c32 {seconds}s, nginx backend (1 worker), median of {rounds} rounds:")
            print(f"  off (no X-Source, no tracing)   {med['off']['rps']:9.0f} req/s   p50 {med['off']['p50']:6.2f} ms   p99 {med['off']['p99']:6.2f} ms")
            print(f"  on  (X-Source + a span each)    {med['on']['rps']:9.0f} req/s   p50 {med['on']['p50']:6.2f} ms   p99 {med['on']['p99']:6.2f} ms")
            cost = 1 - med["on"]["rps"] / med["off"]["rps"]
            print(f"  throughput cost {cost * 100:+.1f} %   p99 ratio {med['on']['p99'] / med['off']['p99']:.2f}x   "
                  f"non-2xx {errors}   target < 5 %")
        finally:
            for p in (on, off):
                p.stop()
                subprocess.run(f"docker ps -aq --filter label=io.faas.platform={p.id} | xargs -r docker rm -f",
                               shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Canary and blue-green benchmarks (issue: canary and blue-green). Each prints its figures next
to a baseline measured in the same run, and asserts nothing.

1. Failed requests across 10 blue-green switches and across 10 canary promotions (steps 10/50/100,
   judged by the router's figures) at about 500 requests/s, against the same load with no
   deploy. Target: 0.
2. Time of a blue-green switch-back (a rollback within keep_previous) from the API call to the
   first request answered by the previous release, against a rollback that must start its
   containers (the rolling strategy) measured the same way. Target: < 50 ms.

    python3 bench/strategies_bench.py [--quick]
"""

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import ROOT, Load, Platform, busybox_manifest  # noqa: E402

IMAGE = "busybox:stable"


def with_deploy(manifest, table):
    return manifest + table


def bluegreen(name, version, keep="10m"):
    return with_deploy(busybox_manifest(name, version, 2),
                       f'[deploy]\nstrategy = "bluegreen"\n[deploy.bluegreen]\nkeep_previous = "{keep}"\n')


def canary(name, version):
    return with_deploy(busybox_manifest(name, version, 2),
                       '[deploy]\nstrategy = "canary"\n[deploy.canary]\nsteps = [10, 50, 100]\n'
                       'interval = "1s"\nmin_requests = 30\nmax_error_rate = 0.01\n')


def deploy_ok(p, service, manifest):
    d = p.wait(service, p.deploy(service, manifest, IMAGE))
    if d["state"] != "succeeded":
        sys.exit(f"a deploy of {service} ended {d['state']}: {d.get('reason')}")
    return d


def report(title, rows, failed):
    print(f"\n== {title}")
    for name, l in rows:
        total = l.ok + len(l.failed)
        print(f"{name:30} {total:7d} requests in {l.elapsed:5.1f} s = {total / l.elapsed:5.0f} req/s, "
              f"failed {len(l.failed)}")
    if failed:
        print("failures:", failed[:10])
    print(f"target 0 failed: {'met' if not failed else 'missed'}")


def switches_under_load(p, count):
    p.create_service("bgload")
    deploy_ok(p, "bgload", bluegreen("bgload", "v0"))
    with Load(p.router_port, "bgload.localhost") as baseline:
        time.sleep(5)
    with Load(p.router_port, "bgload.localhost") as load:
        for i in range(1, count + 1):
            deploy_ok(p, "bgload", bluegreen("bgload", f"v{i}"))
    report(f"failed requests across {count} blue-green switches (2 replicas, keep_previous 10m) at ~500 req/s",
           [("no deploy (baseline)", baseline), (f"{count} blue-green switches", load)], load.failed)


def promotions_under_load(p, count):
    p.create_service("cyload")
    deploy_ok(p, "cyload", canary("cyload", "v0"))
    with Load(p.router_port, "cyload.localhost") as baseline:
        time.sleep(5)
    passed = 0
    with Load(p.router_port, "cyload.localhost") as load:
        for i in range(1, count + 1):
            d = deploy_ok(p, "cyload", canary("cyload", f"v{i}"))
            passed += sum(1 for s in d["steps"] if s["kind"] == "canary-passed")
    report(f"failed requests across {count} canary promotions (10/50/100, 1 s per step) at ~500 req/s "
           f"({passed} steps judged and passed)",
           [("no deploy (baseline)", baseline), (f"{count} canary promotions", load)], load.failed)


def first_answer(port, host, expect, timeout=60):
    """Seconds until `host` answers `expect`, polling on one keep-alive connection."""
    start = time.perf_counter()
    conn = None
    while time.perf_counter() - start < timeout:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/", headers={"Host": host})
            r = conn.getresponse()
            body = r.read().decode().strip()
            if r.status == 200 and body == expect:
                return time.perf_counter() - start
        except (OSError, http.client.HTTPException):
            conn = None
    sys.exit(f"{host} never answered {expect}")


def rollback_time(p, service, expect):
    """From the rollback call to the first answer of the release rolled back to."""
    start = time.perf_counter()
    d = p.call("POST", f"/v1/services/{service}/rollback", {"env": "prod"})
    if "id" not in d:
        sys.exit(f"rollback refused: {d}")
    first_answer(p.router_port, f"{service}.localhost", expect)
    total = time.perf_counter() - start
    done = p.wait(service, d["id"])
    if done["state"] != "succeeded":
        sys.exit(f"the rollback ended {done['state']}: {done.get('reason')}")
    return total, done


def switch_back(p, rounds):
    p.create_service("back")
    deploy_ok(p, "back", bluegreen("back", "v0"))
    warm, took = [], []
    # Each round: a new release switched in, then a rollback to v0, the set kept warm.
    for i in range(1, rounds + 1):
        deploy_ok(p, "back", bluegreen("back", f"v{i}"))
        t, done = rollback_time(p, "back", "v0")
        warm.append(t)
        started = sum(1 for s in done["steps"] if s["kind"] == "instance-starting")
        if started:
            sys.exit(f"a switch-back started {started} containers")
        took.extend(s["message"] for s in done["steps"] if s["kind"] == "switched")
    # Baseline: the same rollback when nothing is warm, so the containers must start (rolling).
    p.create_service("cold")
    deploy_ok(p, "cold", busybox_manifest("cold", "v0", 2))
    cold = []
    for i in range(1, 4):
        deploy_ok(p, "cold", busybox_manifest("cold", f"v{i}", 2))
        t, _ = rollback_time(p, "cold", "v0")
        cold.append(t)
    m, b = statistics.median(warm), statistics.median(cold)
    print(f"\n== blue-green switch-back: rollback call to the first request the previous release answers ({rounds} rounds)")
    print(f"switch back to the warm set      median {m * 1000:7.1f} ms   (min {min(warm) * 1000:.1f}, max {max(warm) * 1000:.1f})")
    print(f"rolling rollback (cold start)    median {b * 1000:7.1f} ms   (baseline, 3 rounds)")
    print(f"ratio {m / b:.3f}x the baseline; target < 50 ms: {'met' if m < 0.05 else 'missed'}")
    print(f"the router's own switch, as the step reports it: {took[-1]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "faas-platform"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    n = 3 if args.quick else 10
    with tempfile.TemporaryDirectory() as work:
        p = Platform(os.path.join(target, "release", "faas-platform"), work)
        try:
            switches_under_load(p, n)
            promotions_under_load(p, n)
            switch_back(p, n)
        finally:
            p.stop()


if __name__ == "__main__":
    main()

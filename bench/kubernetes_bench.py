#!/usr/bin/env python3
"""Kubernetes runtime benchmarks (issue: the Kubernetes runtime). Each prints its figures next to
a baseline measured in the same run, and asserts nothing. It needs the test cluster
(scripts/setup-kubernetes.sh start).

1. Deploy to first request served by the new release (busybox, 1 replica), median of N, on the
   Kubernetes runtime against the same on the Docker runtime.
2. Failed requests across 5 rolling and 5 blue-green deploys (2 replicas) at about 300
   requests/s on Kubernetes, against the same load with no deploy. Target: 0.

    python3 bench/kubernetes_bench.py [--quick]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import ROOT, Load, Platform, answers, busybox_manifest  # noqa: E402

IMAGE = "busybox:stable"
KUBECONFIG = os.environ.get("FAAS_TEST_KUBECONFIG", "/var/lib/faas-test/k8s/kubeconfig")
# The test node has 2 CPUs: each instance asks for a twentieth of one (on both runtimes).
SIZE = '[size]\ncpu = 0.05\nmemory = "64Mi"\n'


def manifest(name, version, replicas=1, deploy=""):
    return busybox_manifest(name, version, replicas) + deploy + SIZE


def deploy_ok(p, service, text):
    d = p.wait(service, p.deploy(service, text, IMAGE))
    if d["state"] != "succeeded":
        sys.exit(f"a deploy of {service} ended {d['state']}: {d.get('reason')}")
    return d


def first_request(p, rounds):
    p.create_service("latency")
    deploy_ok(p, "latency", manifest("latency", "v0"))
    samples = []
    for i in range(1, rounds + 1):
        start = time.perf_counter()
        dep = p.deploy("latency", manifest("latency", f"v{i}"), IMAGE)
        if not answers(p.router_port, "latency.localhost", f"v{i}", timeout=60):
            sys.exit(f"v{i} never answered")
        samples.append(time.perf_counter() - start)
        p.wait("latency", dep)
    return samples


def under_load(p, rolling, bluegreen, rate):
    p.create_service("kload")
    bg = '[deploy]\nstrategy = "bluegreen"\n[deploy.bluegreen]\nkeep_previous = "1s"\n'
    deploy_ok(p, "kload", manifest("kload", "v0", 2))
    with Load(p.router_port, "kload.localhost", rate=rate) as baseline:
        time.sleep(5)
    with Load(p.router_port, "kload.localhost", rate=rate) as load:
        for i in range(1, rolling + 1):
            deploy_ok(p, "kload", manifest("kload", f"r{i}", 2))
        for i in range(1, bluegreen + 1):
            deploy_ok(p, "kload", manifest("kload", f"b{i}", 2, bg))
    print(f"\n== failed requests across {rolling} rolling and {bluegreen} blue-green deploys "
          f"(2 replicas) at ~{rate} req/s on Kubernetes")
    for name, l in [("no deploy (baseline)", baseline), (f"{rolling + bluegreen} deploys", load)]:
        total = l.ok + len(l.failed)
        print(f"{name:24} {total:7d} requests in {l.elapsed:5.1f} s = {total / l.elapsed:5.0f} req/s, "
              f"failed {len(l.failed)}")
    if load.failed:
        print("failures:", load.failed[:10])
    print(f"target 0 failed: {'met' if not load.failed else 'missed'}")


def on(binary, env, fn):
    with tempfile.TemporaryDirectory() as work:
        p = Platform(binary, work, env)
        try:
            return fn(p)
        finally:
            p.stop()
            if env:
                subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "delete", "namespace",
                                f"faas-{p.id}", "--wait=false"], capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    args = ap.parse_args()
    if not os.path.exists(KUBECONFIG):
        sys.exit(f"no test cluster at {KUBECONFIG}: run scripts/setup-kubernetes.sh start")
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "faas-platform"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "faas-platform")
    kube = {"FAAS_PLATFORM_RUNTIME": "kubernetes", "FAAS_PLATFORM_KUBECONFIG": KUBECONFIG}
    rounds = 5 if args.quick else 10

    docker = on(binary, None, lambda p: first_request(p, rounds))
    k8s = on(binary, kube, lambda p: first_request(p, rounds))
    m, b = statistics.median(k8s), statistics.median(docker)
    print(f"\n== deploy to first request served by the new release (busybox, 1 replica, {rounds} deploys)")
    print(f"Kubernetes runtime   median {m * 1000:7.0f} ms   (min {min(k8s) * 1000:.0f}, max {max(k8s) * 1000:.0f})")
    print(f"Docker runtime       median {b * 1000:7.0f} ms   (min {min(docker) * 1000:.0f}, max {max(docker) * 1000:.0f}; baseline)")
    print(f"ratio {m / b:.2f}x the Docker runtime")

    on(binary, kube, lambda p: under_load(p, 5, 5, 300))


if __name__ == "__main__":
    main()

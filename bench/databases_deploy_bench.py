#!/usr/bin/env python3
"""Databases in deployments (issue: databases). Each figure next to a baseline measured in the
same run; asserts nothing.

1. A managed server from nothing to ready, per engine: the first deploy that declares a database
   of it on a fresh platform (no server container, no volume), from the request to the end of its
   `database-ready` step. Target: < 10 s. Baseline: `docker run` of the same image until its
   port accepts connections.
2. A deploy that adds a new PostgreSQL database on a running server, request to succeeded,
   against the same deploy (a new release, same image) adding none, alternating, median of N.

    python3 bench/databases_deploy_bench.py [--runs N]
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import ROOT, Platform, busybox_manifest  # noqa: E402

IMAGES = {"postgresql": ("postgres:15", 5432, ["-e", "POSTGRES_PASSWORD=bench"]),
          "redis": ("redis:7", 6379, []),
          "rabbitmq": ("rabbitmq:3-management", 5672, ["-e", "RABBITMQ_DEFAULT_USER=b", "-e", "RABBITMQ_DEFAULT_PASS=b"])}


def step_time(p, service, dep, kind):
    """Seconds from the deployment's creation to its first step of `kind`."""
    d = p.call("GET", f"/v1/services/{service}/deployments/{dep}")
    from datetime import datetime
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()  # noqa: E731
    start = parse(d["created_at"])
    for s in d["steps"]:
        if s["kind"] == kind:
            return parse(s["at"]) - start
    sys.exit(f"no {kind} step in {d}")


def docker_run_ready(engine):
    image, port, env = IMAGES[engine]
    name = f"faas-bench-{engine}-{os.getpid()}"
    t = time.monotonic()
    subprocess.run(["docker", "run", "-d", "--name", name, *env, image], check=True, capture_output=True)
    ip = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
                        capture_output=True, text=True).stdout.strip()
    while True:
        try:
            with socket.create_connection((ip, port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    elapsed = time.monotonic() - t
    subprocess.run(["docker", "rm", "-fv", name], capture_output=True)
    return elapsed


def db_manifest(name, version, dbs):
    m = busybox_manifest(name, version, 1)
    for db, engine in dbs:
        m += f'\n[databases.{db}]\nengine = "{engine}"\n'
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "faas-platform"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target/release/faas-platform")

    print("databases deploy bench")
    print("1. a managed server from nothing to ready (first deploy that needs it)")
    for engine in ("postgresql", "redis", "rabbitmq"):
        with tempfile.TemporaryDirectory() as work:
            p = Platform(binary, work)
            try:
                p.create_service("first")
                dep = p.deploy("first", db_manifest("first", "1", [("d", engine)]), "busybox:stable")
                d = p.wait("first", dep)
                if d["state"] != "succeeded":
                    sys.exit(f"deploy failed: {d}")
                ready = step_time(p, "first", dep, "database-ready")
                total = step_time(p, "first", dep, "succeeded")
            finally:
                p.stop()
                name = f"faas-{p.id[:12]}-{engine}"
                subprocess.run(["docker", "rm", "-fv", name], capture_output=True)
                subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True)
        base = docker_run_ready(engine)
        print(f"  {engine}: database ready {ready:.2f} s after the request (deploy {total:.2f} s; "
              f"target < 10 s); baseline docker run to its port open {base:.2f} s ({ready / base:.2f}x)")

    print(f"2. a deploy adding a PostgreSQL database on a running server vs the same deploy adding none ({args.runs} each)")
    with tempfile.TemporaryDirectory() as work:
        p = Platform(binary, work)
        try:
            p.create_service("grow")
            p.create_service("same")
            p.wait("grow", p.deploy("grow", db_manifest("grow", "0", [("base", "postgresql")]), "busybox:stable"))
            p.wait("same", p.deploy("same", db_manifest("same", "0", []), "busybox:stable"))
            adding, plain = [], []
            for i in range(1, args.runs + 1):
                dbs = [("base", "postgresql")] + [(f"db{j}", "postgresql") for j in range(1, i + 1)]
                t = time.monotonic()
                d = p.wait("grow", p.deploy("grow", db_manifest("grow", str(i), dbs), "busybox:stable"))
                adding.append(time.monotonic() - t)
                assert d["state"] == "succeeded", d
                t = time.monotonic()
                d = p.wait("same", p.deploy("same", db_manifest("same", str(i), []), "busybox:stable"))
                plain.append(time.monotonic() - t)
                assert d["state"] == "succeeded", d
            a, b = statistics.median(adding), statistics.median(plain)
            print(f"  with a new database: median {a * 1000:.0f} ms; without: median {b * 1000:.0f} ms ({a / b:.2f}x)")
        finally:
            p.stop()
            name = f"faas-{p.id[:12]}-postgresql"
            subprocess.run(["docker", "rm", "-fv", name], capture_output=True)
            subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True)


if __name__ == "__main__":
    main()

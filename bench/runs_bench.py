#!/usr/bin/env python3
"""One-off runs (issue: runs and cron). Figures next to a baseline measured in the same run;
asserts nothing.

1. Function run of a trivial image (busybox `true`), median of N:
   - request to container running (POST /v1/functions/run answers once it runs) against
     `docker run -d` of the same image and command;
   - request to result (the run recorded as over) against `docker run --rm`.
   Target: at most 1.3x the plain run.
2. Cron firing skew over 20 ticks of a `*/2 * * * * *` entry: from each tick's time to the tick
   recorded, and to its container started. Target: under 1 s.

    python3 bench/runs_bench.py [--runs N] [--ticks N]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import ROOT, Platform, busybox_manifest  # noqa: E402


def secs(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def docker_time(args):
    t = time.monotonic()
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()
    return time.monotonic() - t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--ticks", type=int, default=20)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "faas-platform"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target/release/faas-platform")
    print("runs bench")
    with tempfile.TemporaryDirectory() as work:
        p = Platform(binary, work)
        try:
            running, result, base_running, base_result = [], [], [], []
            for _ in range(args.runs):
                t = time.monotonic()
                run = p.call("POST", "/v1/functions/run",
                             {"image_name": "busybox:stable", "command": ["sleep", "1"]})
                running.append(time.monotonic() - t)
                if run.get("state") != "running":
                    sys.exit(f"run refused: {run}")
                p.call("POST", f"/v1/functions/runs/{run['id']}/cancel", {})
                dt, cid = docker_time(["run", "-d", "busybox:stable", "sleep", "1"])
                base_running.append(dt)
                subprocess.run(["docker", "rm", "-f", cid], capture_output=True)

                t = time.monotonic()
                run = p.call("POST", "/v1/functions/run", {"image_name": "busybox:stable", "command": ["true"]})
                while run["state"] in ("pending", "running"):
                    time.sleep(0.005)
                    run = p.call("GET", f"/v1/functions/runs/{run['id']}")
                result.append(time.monotonic() - t)
                dt, _ = docker_time(["run", "--rm", "busybox:stable", "true"])
                base_result.append(dt)
            a, b = statistics.median(running), statistics.median(base_running)
            print(f"1. request to running: median {a * 1000:.0f} ms; docker run -d {b * 1000:.0f} ms ({a / b:.2f}x; target <= 1.3x)")
            a, b = statistics.median(result), statistics.median(base_result)
            print(f"   request to result: median {a * 1000:.0f} ms; docker run --rm {b * 1000:.0f} ms ({a / b:.2f}x; target <= 1.3x)")

            p.create_service("clock")
            manifest = busybox_manifest("clock", "1", 1) + (
                '\n[[cron]]\nname = "tick"\nschedule = "*/2 * * * * *"\ncommand = ["true"]\n')
            p.wait("clock", p.deploy("clock", manifest, "busybox:stable"))
            deadline = time.time() + args.ticks * 2 + 30
            while time.time() < deadline:
                h = p.call("GET", f"/v1/services/clock/cron/tick/history?env=prod&limit={args.ticks + 5}")
                done = [r for r in h if r.get("started_at")]
                if len(done) >= args.ticks:
                    break
                time.sleep(0.5)
            done = done[:args.ticks]
            recorded = [secs(r["created_at"]) - secs(r["tick"]) for r in done]
            started = [secs(r["started_at"]) - secs(r["tick"]) for r in done]
            print(f"2. cron skew over {len(done)} ticks: tick to recorded median {statistics.median(recorded) * 1000:.0f} ms, "
                  f"max {max(recorded) * 1000:.0f} ms; tick to container started median {statistics.median(started) * 1000:.0f} ms, "
                  f"max {max(started) * 1000:.0f} ms (target < 1 s)")
        finally:
            p.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The meter's own cost (issue 12): the CPU of the daemon, and of the Docker Engine that answers
its stats calls, with 50 instances metered every second, against the same daemon with metering
off, in the same run. Prints the figures and asserts nothing.

    cargo build --release -p faas-platform && python3 bench/meter_cost.py [--instances 50] [--seconds 30]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import ROOT, Platform, busybox_manifest  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def dockerd_pid():
    out = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def measure(binary, interval, instances, seconds):
    os.environ["FAAS_PLATFORM_METER_INTERVAL"] = interval
    with tempfile.TemporaryDirectory() as work:
        p = Platform(binary, work)
        try:
            p.create_service("metered")
            d = p.wait("metered", p.deploy("metered", busybox_manifest("metered", "1", instances), "busybox:stable"),
                       timeout=600)
            if d["state"] != "succeeded":
                sys.exit(f"the deployment of {instances} instances did not succeed: {d}")
            time.sleep(3)  # the deployment's own work settles before the window opens
            engine = dockerd_pid()
            d0, e0, t0 = cpu_seconds(p.proc.pid), engine and cpu_seconds(engine), time.monotonic()
            time.sleep(seconds)
            d1, e1, t1 = cpu_seconds(p.proc.pid), engine and cpu_seconds(engine), time.monotonic()
            wall = t1 - t0
            return (d1 - d0) / wall, (e1 - e0) / wall if engine else None
        finally:
            p.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=30)
    args = ap.parse_args()
    binary = os.path.join(ROOT, "target/release/faas-platform")
    if not os.path.exists(binary):
        sys.exit("build it first: cargo build --release -p faas-platform")
    off = measure(binary, "off", args.instances, args.seconds)
    on = measure(binary, "1s", args.instances, args.seconds)
    print(f"meter cost, {args.instances} instances over {args.seconds} s:")
    print(f"  daemon CPU, metering off: {off[0] * 100:.2f}% of a core")
    print(f"  daemon CPU, metered every 1 s: {on[0] * 100:.2f}% of a core "
          f"(+{(on[0] - off[0]) * 100:.2f} points, {on[0] / max(off[0], 1e-9):.1f}x)")
    if off[1] is not None:
        print(f"  Docker Engine CPU answering: off {off[1] * 100:.2f}%, on {on[1] * 100:.2f}% "
              f"(+{(on[1] - off[1]) * 100:.2f} points)")
    per_read = (on[0] - off[0]) / args.instances * 1000
    print(f"  the daemon's CPU per instance read: {per_read:.2f} ms")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""CLI developer-loop benchmarks (issue: the developer loop), against a local platform started
by the CLI in a scratch HOME. Figures next to baselines measured in the same run; asserts
nothing.

1. `faas service status` round trip: median, against the same API call made by curl (the floor
   a CLI could reach) and `faas --version` (process start). Target < 20 ms.
2. `faas service deploy` of an unchanged service with a prebuilt image: median time to success,
   against `faas service status`. Target <= 2 s.

    python3 bench/cli_loop.py [--runs N]
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(argv, env, cwd, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        r = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append((time.perf_counter() - start) * 1000)
        if r.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed: {r.stderr.decode()}")
    return statistics.median(samples)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "faas-cli", "-p", "faas-platform"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    faas = os.path.join(target, "release", "faas")
    with tempfile.TemporaryDirectory() as home:
        api, router = free_port(), free_port()
        env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": f"{home}/.config", "XDG_DATA_HOME": f"{home}/.local/share",
               "FAAS_LOCAL_LISTEN": f"127.0.0.1:{api}", "FAAS_LOCAL_ROUTER": f"127.0.0.1:{router}",
               "FAAS_PLATFORM_NETWORK": "faas-bench", "NO_COLOR": "1"}
        env.pop("FAAS_TOKEN", None)
        env.pop("FAAS_CONTEXT", None)
        work = os.path.join(home, "work")
        os.makedirs(work)
        subprocess.run([faas, "service", "create", "bench", "--template", "static", "--no-input", "--owner", "b@example.com"],
                       env=env, cwd=work, check=True, capture_output=True)
        svc = os.path.join(work, "bench")
        # A prebuilt image: busybox serving a page, no build step.
        with open(os.path.join(svc, "app.toml"), "a") as f:
            f.write('\n')
        manifest = open(os.path.join(svc, "app.toml")).read().replace(
            '[run]\nport = 8080',
            '[run]\nport = 8080\ncommand = ["sh", "-c", "mkdir -p /tmp/w && echo ok > /tmp/w/_info && exec httpd -f -p 8080 -h /tmp/w"]')
        open(os.path.join(svc, "app.toml"), "w").write(manifest)
        deploy = [faas, "service", "deploy", "-e", "prod", "--image", "busybox:stable", "--yes"]
        r = subprocess.run(deploy, env=env, cwd=svc, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"first deploy failed:\n{r.stderr}")
        try:
            token = open(os.path.join(home, ".local/share/faas/platform/admin-token")).read().strip()
            curl = ["curl", "-sf", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}", f"http://127.0.0.1:{api}/v1/services/bench"]
            version = timed([faas, "--version"], env, svc, args.runs)
            floor = timed(curl, env, svc, args.runs) if shutil.which("curl") else float("nan")
            status = timed([faas, "service", "status"], env, svc, args.runs)
            unchanged = timed(deploy, env, svc, max(5, args.runs // 3))
        finally:
            ident = subprocess.run(["curl", "-s", f"http://127.0.0.1:{api}/_info"], capture_output=True, text=True).stdout
            subprocess.run([faas, "platform", "stop"], env=env, capture_output=True)
            import json
            try:
                pid = json.loads(ident)["id"]
                ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.faas.platform={pid}"], capture_output=True, text=True).stdout.split()
                if ids:
                    subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
            except (ValueError, KeyError):
                pass
    print(f"== CLI against the local platform (median of {args.runs} runs)")
    print(f"{'command':44} {'ms':>8} {'ratio':>8}")
    print(f"{'faas --version (process start)':44} {version:8.2f}")
    print(f"{'curl GET /v1/services/bench (floor)':44} {floor:8.2f}")
    print(f"{'faas service status':44} {status:8.2f} {status / floor:7.2f}x curl")
    print(f"{'faas service deploy (unchanged, prebuilt)':44} {unchanged:8.1f} {unchanged / status:7.1f}x status")
    print(f"status < 20 ms: {'met' if status < 20 else 'missed'}; unchanged deploy <= 2000 ms: {'met' if unchanged <= 2000 else 'missed'}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""CLI start-up benchmark: `faas --version` and `faas service validate` on a 200-line app.toml.

Medians over repeated runs, next to baselines measured in the same run: `true` (the cost of
starting any process here) and `git --version` (a small native CLI). Prints the figures and the
ratios; the issue's target is under 10 ms each. It asserts nothing: a benchmark, not a test.

    python3 bench/cli_start.py [--runs N] [--faas PATH]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def manifest_200_lines():
    lines = [
        "#:schema https://raw.githubusercontent.com/faas-dev/faas/main/schemas/app.schema.json",
        'name = "pricing"', 'kind = "business"', 'owner = "team@example.com"',
        'description = "Prices orders"', "",
        "[build]", 'dockerfile = "Dockerfile"', 'context = "."', "",
        "[build.args]",
    ]
    lines += [f'ARG_{i} = "value-{i}"' for i in range(20)]
    lines += ["", "[run]", "port = 8080", "", "[run.env]"]
    lines += [f'VAR_{i} = "value-{i}"' for i in range(40)]
    lines += ["", "[health]", 'path = "/_info"', 'interval = "1s"', 'timeout = "1s"', 'grace = "30s"',
              "", "[size]", "cpu = 0.5", 'memory = "256Mi"', "", "[scale]", "replicas = 2", "",
              "[deploy]", 'strategy = "canary"', "[deploy.canary]", "steps = [10, 50, 100]",
              'interval = "30s"', "max_error_rate = 0.01", 'max_p99 = "500ms"', ""]
    for db, engine in [("main", "postgresql"), ("cache", "redis"), ("queue", "rabbitmq")]:
        lines += [f"[databases.{db}]", f'engine = "{engine}"', ""]
    for i in range(8):
        lines += ["[[dependencies]]", f'service = "dep-{i}"', ""]
    for i in range(10):
        lines += ["[[cron]]", f'name = "job-{i}"', f'schedule = "{i} 3 * * *"',
                  f'command = ["python3", "-m", "app.job{i}"]', ""]
    for env in ["prod", "staging", "qa"]:
        lines += [f"[environments.{env}]", "scale = { replicas = 3 }", 'size = { memory = "1Gi" }', ""]
    while len(lines) < 200:
        lines.append(f"# padding comment {len(lines)}")
    return "\n".join(lines[:200]) + "\n"


def median_ms(argv, runs, cwd=None):
    for _ in range(5):  # warm the page cache
        subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        samples.append((time.perf_counter() - start) * 1000)
        if result.returncode != 0:
            sys.exit(f"{' '.join(argv)} exited {result.returncode}")
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--faas", default=None, help="the faas binary (default: build target/release/faas)")
    args = parser.parse_args()

    faas = args.faas
    if faas is None:
        subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "faas-cli"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        faas = os.path.join(target, "release", "faas")

    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(work, "app.toml"), "w") as f:
            f.write(manifest_200_lines())
        check = subprocess.run([faas, "service", "validate"], cwd=work, capture_output=True, text=True)
        if check.returncode != 0:
            sys.exit(f"the 200-line manifest does not validate:\n{check.stderr}")

        true_bin = shutil.which("true") or "/bin/true"
        rows = [
            ("true (process start)", median_ms([true_bin], args.runs)),
            ("git --version", median_ms(["git", "--version"], args.runs)),
            ("faas --version", median_ms([faas, "--version"], args.runs)),
            ("faas service validate (200 lines)", median_ms([faas, "service", "validate"], args.runs, cwd=work)),
        ]
    base, git = rows[0][1], rows[1][1]
    print(f"CLI start-up, median of {args.runs} runs each")
    print(f"{'command':38} {'median ms':>10} {'× true':>8} {'× git':>7}")
    for name, ms in rows:
        print(f"{name:38} {ms:10.2f} {ms / base:8.2f} {ms / git:7.2f}")
    for name, ms in rows[2:]:
        verdict = "meets" if ms < 10 else "misses"
        print(f"{name}: {ms:.2f} ms {verdict} the 10 ms target")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Platform benchmarks (issue: the platform). Each prints its figures next to a baseline measured
in the same run, and asserts nothing.

1. Router overhead: wrk through the router, direct to the container, and through nginx (a
   keep-alive upstream, configured the same) to a trivial nginx backend in a container.
   Targets: router >= 0.6x direct, >= 1.0x nginx.
2. Deploy to first request served by the new release (busybox, 1 replica), median of N, against
   the baseline of `docker run` of the same container until it answers. Target: <= 1.5 s.
3. Failed requests during 10 consecutive rolling deploys at about 500 requests/s, against the
   same load with no deploy. Target: 0.

    python3 bench/platform_bench.py [--quick]
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OWNER = "bench@example.com"
BUSYBOX_CMD = ('["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/_info && echo $VERSION > '
               '/tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Platform:
    def __init__(self, binary, workdir, env=None):
        self.api_port, self.router_port = free_port(), free_port()
        self.data = os.path.join(workdir, "data")
        self.log = open(os.path.join(workdir, "daemon.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.api_port}",
             "--router", f"127.0.0.1:{self.router_port}", "--network", "faas-bench"],
            stdout=subprocess.DEVNULL, stderr=self.log,
            env={**os.environ, "FAAS_LOG": "warn", **(env or {})})
        deadline = time.time() + 30
        while True:
            try:
                info = self.call("GET", "/_info", auth=False)
                if info["docker"]["available"]:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("the platform did not start; see its log")
            time.sleep(0.05)
        self.token = open(os.path.join(self.data, "admin-token")).read().strip()
        self.id = info["id"]

    def call(self, method, path, body=None, auth=True):
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", method=method)
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, data, timeout=30) as r:
                text = r.read()
        except urllib.error.HTTPError as e:
            text = e.read()
        return json.loads(text) if text else None

    def create_service(self, name):
        self.call("POST", "/v1/services", {"name": name, "owner": OWNER})

    def deploy(self, service, manifest, image):
        d = self.call("POST", f"/v1/services/{service}/deployments",
                      {"env": "prod", "image": image, "manifest": manifest})
        if "id" not in d:
            sys.exit(f"deploy refused: {d}")
        return d["id"]

    def wait(self, service, dep_id, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            d = self.call("GET", f"/v1/services/{service}/deployments/{dep_id}")
            if d["state"] in ("succeeded", "failed", "rolled_back"):
                return d
            time.sleep(0.02)
        sys.exit(f"deployment {dep_id} did not end")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.faas.platform={self.id}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def busybox_manifest(name, version, replicas):
    return f'''name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = {BUSYBOX_CMD}
env = {{ VERSION = "{version}" }}
[health]
path = "/_info"
interval = "500ms"
[scale]
replicas = {replicas}
'''


def wrk(url, host=None, seconds=8, connections=32):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if host:
        cmd[1:1] = ["-H", f"Host: {host}"]
    subprocess.run(cmd[:-3] + ["-d2s", "--latency", url], capture_output=True)  # warm-up
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": pct(50), "p99": pct(99), "non2xx": int(errors.group(1)) if errors else 0}


def router_overhead(p, work, seconds):
    p.create_service("overhead")
    manifest = f'''name = "overhead"
owner = "{OWNER}"
[run]
port = 8080
[health]
path = "/"
[scale]
replicas = 1
'''
    d = p.wait("overhead", p.deploy("overhead", manifest, "faas-bench/nginx:latest"))
    assert d["state"] == "succeeded", d
    instance = p.call("GET", "/v1/services/overhead")["environments"][0]["instances"][0]
    published = instance["address"]
    # The router reaches instances at their address on the bridge network; nginx and the direct
    # run use that same address, so all three paths end at the same socket.
    address = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", instance["container"]],
        capture_output=True, text=True).stdout.strip() + ":8080"
    nginx_port = free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes auto;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream backend {{ server {address}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{nginx_port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Request-Id $request_id;
    }}
  }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-c", conf, "-p", work], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    # Three interleaved rounds of each path, the median of each: on a small shared machine one
    # run alone swings by tens of percent.
    runs = {"direct": [], "published": [], "router": [], "nginx": []}
    try:
        for _ in range(3):
            runs["direct"].append(wrk(f"http://{address}/", seconds=seconds))
            runs["router"].append(wrk(f"http://127.0.0.1:{p.router_port}/", host="overhead.localhost", seconds=seconds))
            runs["nginx"].append(wrk(f"http://127.0.0.1:{nginx_port}/", seconds=seconds))
        runs["published"].append(wrk(f"http://{published}/", seconds=seconds))
    finally:
        nginx.terminate()
        nginx.wait(10)
    def median(rs):
        return {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    direct, router, via_nginx = median(runs["direct"]), median(runs["router"]), median(runs["nginx"])
    published_port = median(runs["published"])
    print("\n== router overhead (wrk -t2 -c32, trivial nginx backend in a container, 1 worker; median of 3 rounds)")
    print(f"container {address}; the published port {published} goes through Docker's userland proxy")
    print(f"{'path':22} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in [("direct to container", direct), ("through faas router", router), ("through nginx", via_nginx),
                    ("(published port)", published_port)]:
        print(f"{name:22} {r['rps']:10.0f} {r['p50']:8.3f} {r['p99']:8.3f} {r['non2xx']:8d}")
    print("router req/s per round:", ", ".join(f"{r['rps']:.0f}" for r in runs["router"]),
          "| nginx:", ", ".join(f"{r['rps']:.0f}" for r in runs["nginx"]),
          "| direct:", ", ".join(f"{r['rps']:.0f}" for r in runs["direct"]))
    print(f"router / direct = {router['rps'] / direct['rps']:.2f}x   (target >= 0.6x)")
    print(f"router / nginx  = {router['rps'] / via_nginx['rps']:.2f}x   (target >= 1.0x)")


def answers(port, host, expect, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/", headers={"Host": host})
            r = c.getresponse()
            body = r.read().decode()
            c.close()
            if r.status == 200 and body.strip() == expect:
                return True
        except OSError:
            pass
        time.sleep(0.005)
    return False


def deploy_latency(p, rounds):
    p.create_service("latency")
    p.wait("latency", p.deploy("latency", busybox_manifest("latency", "v0", 1), "busybox:stable"))
    samples = []
    for i in range(1, rounds + 1):
        start = time.perf_counter()
        p.deploy("latency", busybox_manifest("latency", f"v{i}", 1), "busybox:stable")
        if not answers(p.router_port, "latency.localhost", f"v{i}"):
            sys.exit(f"v{i} never answered")
        samples.append(time.perf_counter() - start)
        p.wait("latency", p.call("GET", "/v1/services/latency/deployments")[0]["id"])
    baseline = []
    for i in range(5):
        port = free_port()
        start = time.perf_counter()
        cid = subprocess.run(["docker", "run", "-d", "-p", f"127.0.0.1:{port}:8080", "-e", f"VERSION=b{i}",
                              "busybox:stable", "sh", "-c", json.loads(BUSYBOX_CMD)[2]],
                             capture_output=True, text=True).stdout.strip()
        ok = answers(port, "x", f"b{i}")
        baseline.append(time.perf_counter() - start)
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        if not ok:
            sys.exit("the baseline container never answered")
    m, b = statistics.median(samples), statistics.median(baseline)
    print(f"\n== deploy to first request served by the new release (busybox, 1 replica, {rounds} deploys)")
    print(f"faas deploy (rolling)         median {m * 1000:7.0f} ms   (min {min(samples) * 1000:.0f}, max {max(samples) * 1000:.0f})")
    print(f"docker run until it answers   median {b * 1000:7.0f} ms   (baseline)")
    print(f"ratio {m / b:.2f}x the baseline; target <= 1500 ms: {'met' if m <= 1.5 else 'missed'}")


class Load:
    """~rate requests/s through the router from `threads` keep-alive connections."""

    def __init__(self, port, host, rate=500, threads=4):
        self.port, self.host = port, host
        self.interval = threads / rate
        self.stop = threading.Event()
        self.ok = 0
        self.failed = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self):
        conn = None
        next_at = time.perf_counter()
        while not self.stop.is_set():
            next_at += self.interval
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/", headers={"Host": self.host})
                r = conn.getresponse()
                r.read()
                with self.lock:
                    if r.status == 200:
                        self.ok += 1
                    else:
                        self.failed.append(r.status)
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.failed.append(repr(e))
                conn = None
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    def __enter__(self):
        self.started = time.perf_counter()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()
        self.elapsed = time.perf_counter() - self.started


def rolling_under_load(p, deploys):
    p.create_service("rolling")
    p.wait("rolling", p.deploy("rolling", busybox_manifest("rolling", "v0", 2), "busybox:stable"))
    with Load(p.router_port, "rolling.localhost") as baseline:
        time.sleep(5)
    with Load(p.router_port, "rolling.localhost") as load:
        for i in range(1, deploys + 1):
            d = p.wait("rolling", p.deploy("rolling", busybox_manifest("rolling", f"v{i}", 2), "busybox:stable"))
            if d["state"] != "succeeded":
                sys.exit(f"deploy v{i} ended {d['state']}: {d.get('reason')}")
    print(f"\n== failed requests during {deploys} consecutive rolling deploys (2 replicas) at ~500 req/s")
    for name, l in [("no deploy (baseline)", baseline), (f"{deploys} rolling deploys", load)]:
        total = l.ok + len(l.failed)
        print(f"{name:24} {total:7d} requests in {l.elapsed:5.1f} s = {total / l.elapsed:5.0f} req/s, failed {len(l.failed)}")
    if load.failed:
        print("failures:", load.failed[:10])
    print(f"target 0 failed: {'met' if not load.failed else 'missed'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install wrk nginx-light")
    subprocess.run([os.path.join(ROOT, "bench", "seed-nginx-image.sh")], check=True)
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "faas-platform"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    with tempfile.TemporaryDirectory() as work:
        p = Platform(os.path.join(target, "release", "faas-platform"), work)
        try:
            router_overhead(p, work, 4 if args.quick else 10)
            deploy_latency(p, 5 if args.quick else 10)
            rolling_under_load(p, 3 if args.quick else 10)
        finally:
            p.stop()


if __name__ == "__main__":
    main()

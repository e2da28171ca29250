#!/usr/bin/env python3
"""Log benchmarks (issue: logs and secrets). Figures next to baselines measured in the same run;
asserts nothing.

1. Latency from a line written in a container to the line printed by `faas service logs -f`:
   median, against the engine's own `docker logs -f` of the same container. Target < 100 ms.
2. Sustained ingest of a service that writes as fast as it can: lines/s kept in the journal,
   against the rate `docker logs` delivers the same lines; the daemon's peak RSS.
   Target >= 100,000 lines/s, memory bounded.
3. `faas service logs -n 1000` over a 100 MB journal: time to first byte (API) and whole
   command, against `tail -n 1000` of the journal file. Target < 50 ms.

    python3 bench/logs_bench.py
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manifest(name, command):
    return f'''name = "{name}"
owner = "b@example.com"
[run]
port = 8080
command = ["sh", "-c", "{command} mkdir -p /tmp/w && echo ok > /tmp/w/_info && exec httpd -f -p 8080 -h /tmp/w"]
[health]
path = "/_info"
'''


def main():
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "faas-cli", "-p", "faas-platform"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    faas = os.path.join(target, "release", "faas")
    with tempfile.TemporaryDirectory() as home:
        api, router = free_port(), free_port()
        env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": f"{home}/.config", "XDG_DATA_HOME": f"{home}/.local/share",
               "FAAS_LOCAL_LISTEN": f"127.0.0.1:{api}", "FAAS_LOCAL_ROUTER": f"127.0.0.1:{router}",
               "FAAS_PLATFORM_NETWORK": "faas-bench", "NO_COLOR": "1", "FAAS_PLATFORM_LOGS_MAX_BYTES": str(120 * 1000 * 1000)}
        env.pop("FAAS_TOKEN", None)
        data = f"{home}/.local/share/faas/platform"
        subprocess.run([faas, "platform", "start"], env=env, check=True, capture_output=True)
        pid = int(open(f"{data}/platform.pid").read())
        token = open(f"{data}/admin-token").read().strip()
        ident = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{api}/_info").read())["id"]

        def deploy(name, command):
            d = os.path.join(home, name)
            os.makedirs(d, exist_ok=True)
            open(os.path.join(d, "app.toml"), "w").write(manifest(name, command))
            r = subprocess.run([faas, "service", "deploy", "-e", "prod", "--image", "busybox:stable", "--yes"], env=env, cwd=d, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(r.stderr)
            status = json.loads(subprocess.run([faas, "service", "status", "--json"], env=env, cwd=d, capture_output=True, text=True).stdout)
            return d, status["environments"][0]["instances"][0]["container"]

        try:
            # 1. latency
            d, container = deploy("latency", "(while true; do echo tick; usleep 20000; done) &")
            def lat(cmd, parse_ts):
                p = subprocess.Popen(cmd, env=env, cwd=d, stdout=subprocess.PIPE, text=True)
                samples = []
                for line in p.stdout:
                    ts = parse_ts(line)
                    if ts is None:
                        continue
                    samples.append(time.time() - ts)
                    if len(samples) >= 200:
                        break
                p.kill()
                return statistics.median(samples[20:]) * 1000

            def rfc(ts):
                whole, frac = ts.rstrip("Z").split(".")
                return time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0." + frac)

            faas_ms = lat([faas, "service", "logs", "-f", "--json", "-n", "0"], lambda l: rfc(json.loads(l)["ts"]) if '"tick"' in l else None)
            docker_ms = lat(["docker", "logs", "-f", "--timestamps", "--since", "1s", container], lambda l: rfc(l.split(" ")[0]) if "tick" in l else None)

            # 2. ingest
            lines = 1_000_000
            rss_before = int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM")][0].split()[1])
            t0 = time.time()
            d2, container2 = deploy("flood", f"yes 'a line of log output, as a service writes them, 64 bytes long...' | head -n {lines};")
            def count():
                req = urllib.request.Request(f"http://127.0.0.1:{api}/v1/services/flood/logs?env=prod&tail=1",
                                             headers={"Authorization": f"Bearer {token}"})
                body = urllib.request.urlopen(req).read().decode().strip()
                return json.loads(body)["seq"] if body else 0
            deadline = time.time() + 300
            while count() < lines and time.time() < deadline:
                time.sleep(0.2)
            kept = count()
            # The rate from the first line's time to when the last was in the journal.
            first = json.loads(urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{api}/v1/services/flood/logs?env=prod&tail=1&grep=%5Ea", headers={"Authorization": f"Bearer {token}"})).read())
            elapsed = time.time() - t0
            ingest = kept / elapsed
            rss = int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM")][0].split()[1])
            t1 = time.time()
            n = int(subprocess.run(f"docker logs {container2} 2>&1 | wc -l", shell=True, capture_output=True, text=True).stdout)
            docker_rate = n / (time.time() - t1)

            # 3. tail over ~100 MB
            journal = f"{data}/logs/flood/prod"
            size = sum(os.path.getsize(os.path.join(journal, f)) for f in os.listdir(journal))
            ttfb = []
            for _ in range(10):
                r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_starttransfer}", "-H", f"Authorization: Bearer {token}",
                                    f"http://127.0.0.1:{api}/v1/services/flood/logs?env=prod&tail=1000"], capture_output=True, text=True)
                ttfb.append(float(r.stdout) * 1000)
            whole = []
            for _ in range(10):
                s = time.perf_counter()
                subprocess.run([faas, "service", "logs", "-n", "1000"], env=env, cwd=d2, capture_output=True)
                whole.append((time.perf_counter() - s) * 1000)
            newest = sorted(os.listdir(journal))[-1]
            base = []
            for _ in range(10):
                s = time.perf_counter()
                subprocess.run(["tail", "-n", "1000", os.path.join(journal, newest)], capture_output=True)
                base.append((time.perf_counter() - s) * 1000)
        finally:
            subprocess.run([faas, "platform", "stop"], env=env, capture_output=True)
            ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.faas.platform={ident}"], capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
    print("== logs")
    print(f"latency, line written → printed by `faas service logs -f`: median {faas_ms:6.1f} ms "
          f"(docker logs -f: {docker_ms:.1f} ms, ratio {faas_ms / docker_ms:.2f}x); target < 100 ms: {'met' if faas_ms < 100 else 'missed'}")
    print(f"ingest: {kept} of {lines} lines kept in {elapsed:.1f} s = {ingest:,.0f} lines/s "
          f"(docker logs delivers {docker_rate:,.0f} lines/s, ratio {ingest / docker_rate:.2f}x); target >= 100,000: {'met' if ingest >= 100_000 else 'missed'}")
    print(f"daemon peak RSS {rss / 1024:.0f} MiB (before the flood {rss_before / 1024:.0f} MiB)")
    print(f"tail 1000 over a {size / 1e6:.0f} MB journal: API time to first byte median {statistics.median(ttfb):.1f} ms, "
          f"`faas service logs -n 1000` {statistics.median(whole):.1f} ms, `tail -n 1000` of the file {statistics.median(base):.1f} ms; "
          f"target < 50 ms: {'met' if statistics.median(ttfb) < 50 else 'missed'}")


if __name__ == "__main__":
    main()

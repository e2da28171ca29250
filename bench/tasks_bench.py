#!/usr/bin/env python3
"""Task chains (issue: task chains). Figures next to baselines measured in the same run;
asserts nothing.

1. A chain of 40 no-op steps, end to end (POST /v1/tasks to the run recorded as succeeded, by
   the run's own timestamps, and as the client sees it), median of N:
   - in-process (`faas.echo`), against 40 sequential durable API writes (heartbeats);
   - over RabbitMQ with the python-action helper's worker, against 40 sequential round trips
     through the same broker (publish with confirms, consume, reply) by pika alone.
   Targets: under 1 s in-process, under 3 s over RabbitMQ (published: Hatchet 1.2 s, Temporal
   3.0 s on the same 40-task chain).
2. Throughput of independent one-step tasks over RabbitMQ (two workers), submitted by 8
   clients, against the same tasks in-process.

    python3 bench/tasks_bench.py [--chains N] [--tasks N]

Needs the test RabbitMQ (scripts/setup-test-env.sh) and Debian's python3-pika.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import ROOT, Platform, free_port  # noqa: E402

AMQP = os.environ.get("FAAS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:55672/%2f")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
WORKER = os.path.join(ROOT, "platform-api/tests/fixtures/task_worker.py")


def secs(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def chain(action, n):
    out = ['name = "chain"']
    for i in range(n):
        source = '"$input"' if i == 0 else f'"$steps.s{i - 1}"'
        out.append(f'[[steps]]\nname = "s{i}"\naction = "{action}"\ninput = {source}\ntimeout = "30s"')
    return "\n".join(out) + "\n"


def run_and_wait(p, definition, data=None):
    t = time.monotonic()
    run = p.call("POST", "/v1/tasks", {"definition": definition, "input": data or {"x": 1}})
    if "id" not in run:
        sys.exit(f"task refused: {run}")
    while True:
        run = p.call("GET", f"/v1/tasks/{run['id']}?wait=60")
        if run["state"] not in ("pending", "running"):
            break
    wall = time.monotonic() - t
    if run["state"] != "succeeded":
        sys.exit(f"task {run['id']} {run['state']}: {run.get('error')}")
    launcher = p.call("GET", f"/v1/tasks/{run['parent']}")
    return wall, secs(run["finished_at"]) - secs(launcher["created_at"])


def start_worker(p, work, name, prefix):
    log = open(os.path.join(work, f"{name}.log"), "w")
    env = {**os.environ, "FAAS_URL": f"http://127.0.0.1:{p.api_port}", "FAAS_TOKEN": p.token,
           "FAAS_WORKER": name, "FAAS_ACTION_TRANSPORT": "rabbitmq", "FAAS_AMQP_URL": AMQP,
           "FAAS_TEST_ACTIONS": "noop", "FAAS_TEST_NAME_PREFIX": prefix, "PORT": str(free_port()),
           "FAAS_ACTION_INTERVAL_MS": "1000"}
    return subprocess.Popen([PYTHON, WORKER], env=env, stdout=log, stderr=log)


def wait_available(p, name):
    deadline = time.time() + 30
    while time.time() < deadline:
        if any(a["name"] == name and a["state"] == "available" for a in p.call("GET", "/v1/actions")):
            return
        time.sleep(0.05)
    sys.exit(f"action {name} never available")


def heartbeat_baseline(p, n):
    t = time.monotonic()
    for i in range(n):
        p.call("POST", "/v1/actions/heartbeat",
               {"name": "baseline", "version": "1", "worker": f"b{i % 4}", "transport": "http",
                "address": "http://127.0.0.1:9/", "interval_ms": 60000})
    return time.monotonic() - t


def broker_baseline(n):
    """n sequential round trips through the broker by pika alone: publish (confirmed) to a
    durable queue, an echo consumer on another connection replies (confirmed) to a reply queue."""
    import pika
    q, reply = f"bench.{uuid.uuid4().hex[:8]}", f"bench.reply.{uuid.uuid4().hex[:8]}"
    ready = threading.Event()

    def echo():
        c = pika.BlockingConnection(pika.URLParameters(AMQP))
        ch = c.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True)
        ch.basic_qos(prefetch_count=1)

        def on(chx, method, props, body):
            chx.basic_publish("", reply, body, pika.BasicProperties(delivery_mode=2))
            chx.basic_ack(method.delivery_tag)
            if body == b"stop":
                chx.stop_consuming()

        ch.basic_consume(q, on)
        ready.set()
        ch.start_consuming()
        c.close()

    c = pika.BlockingConnection(pika.URLParameters(AMQP))
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare(reply, durable=True)
    ch.queue_declare(q, durable=True)
    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    ready.wait()
    t = time.monotonic()
    for i in range(n):
        ch.basic_publish("", q, json.dumps({"i": i}).encode(), pika.BasicProperties(delivery_mode=2))
        while True:
            method, _, _ = ch.basic_get(reply, auto_ack=True)
            if method:
                break
    took = time.monotonic() - t
    ch.basic_publish("", q, b"stop")
    thread.join(10)
    ch.queue_delete(q)
    ch.queue_delete(reply)
    c.close()
    return took


def throughput(p, definition, n, clients=8):
    ids, lock = [], threading.Lock()
    t = time.monotonic()

    def submit(count):
        for _ in range(count):
            run = p.call("POST", "/v1/tasks", {"definition": definition, "input": {"x": 1}})
            with lock:
                ids.append(run["id"])

    threads = [threading.Thread(target=submit, args=(n // clients,)) for _ in range(clients)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    for run_id in ids:
        while True:
            run = p.call("GET", f"/v1/tasks/{run_id}?wait=60")
            if run["state"] not in ("pending", "running"):
                break
        if run["state"] != "succeeded":
            sys.exit(f"task {run_id} {run['state']}: {run.get('error')}")
    return len(ids) / (time.monotonic() - t)


def main():
    try:
        import pika  # noqa: F401
    except ImportError:
        if sys.executable != PYTHON:
            os.execv(PYTHON, [PYTHON, *sys.argv])
        sys.exit("the broker baseline needs pika: apt install python3-pika")
    ap = argparse.ArgumentParser()
    ap.add_argument("--chains", type=int, default=7)
    ap.add_argument("--tasks", type=int, default=400)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "faas-platform"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target/release/faas-platform")
    os.environ["FAAS_PLATFORM_TASKS_AMQP_URL"] = AMQP
    print("tasks bench")
    with tempfile.TemporaryDirectory() as work:
        p = Platform(binary, work)
        workers = []
        try:
            prefix = f"b{uuid.uuid4().hex[:6]}-"
            noop = f"{prefix}noop"
            workers = [start_worker(p, work, f"w{i}", prefix) for i in range(2)]
            wait_available(p, noop)
            run_and_wait(p, chain("faas.echo", 40))  # warm

            inproc = [run_and_wait(p, chain("faas.echo", 40)) for _ in range(args.chains)]
            base_in = statistics.median(heartbeat_baseline(p, 40) for _ in range(args.chains))
            rabbit = [run_and_wait(p, chain(noop, 40)) for _ in range(args.chains)]
            base_mq = statistics.median(broker_baseline(40) for _ in range(args.chains))
            for name, runs, base, target in (("in-process", inproc, base_in, 1.0),
                                             ("RabbitMQ", rabbit, base_mq, 3.0)):
                server = statistics.median(r[1] for r in runs)
                wall = statistics.median(r[0] for r in runs)
                what = "40 durable API writes" if name == "in-process" else "40 broker round trips (pika)"
                print(f"  40-step chain {name:<10}: {server * 1000:7.1f} ms by the run's timestamps, "
                      f"{wall * 1000:7.1f} ms as the client saw it; {what} {base * 1000:7.1f} ms "
                      f"({server / base:.2f}x); target < {target:.0f} s "
                      f"({'met' if server < target else 'MISSED'}); Hatchet 1200 ms, Temporal 3000 ms")

            one_mq = f'name = "one"\n[[steps]]\nname = "s"\naction = "{noop}"\ninput = "$input"\n'
            one_in = 'name = "one"\n[[steps]]\nname = "s"\naction = "faas.echo"\ninput = "$input"\n'
            mq_rate = throughput(p, one_mq, args.tasks)
            in_rate = throughput(p, one_in, args.tasks)
            print(f"  one-step tasks over RabbitMQ (2 workers, 8 clients): {mq_rate:6.1f} tasks/s; "
                  f"in-process {in_rate:6.1f} tasks/s ({mq_rate / in_rate:.2f}x)")
        finally:
            for w in workers:
                w.kill()
                w.wait()
            p.stop()


if __name__ == "__main__":
    main()

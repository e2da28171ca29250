"""faas actions: a plain Python function becomes an action that task chains launch.

    from faas_action import action, serve

    @action(input_schema={"type": "object", "required": ["a", "b"]},
            output_schema={"type": "object", "properties": {"sum": {"type": "number"}}})
    def add(input, ctx):
        return {"sum": input["a"] + input["b"]}

    serve()

What the helper does for the function:
- it registers the action by heartbeat (POST /v1/actions/heartbeat every FAAS_ACTION_INTERVAL_MS),
  with its name, version, schemas, transport and address; the platform never registers it;
- it takes launches over HTTP (the platform POSTs them; the helper answers 202 and posts the
  result back, retrying while the platform is away; or, with FAAS_ACTION_REPLY=answer, answers
  with the result itself) or over RabbitMQ (one durable queue per
  action, prefetch 1; a launch is claimed before it runs, its result published with confirms to
  the launch's reply_to, and the launch acknowledged only after that);
- it hands the function the launch's idempotency key (`ctx.key`): every attempt of one step
  carries the same key, and the helper runs the function once per key (a launch delivered
  again gets the result of the first run), so the effect happens once. With
  FAAS_ACTION_DONE_FILE the keys done survive a restart of the worker.

The function returns a JSON value (the output) or raises (the attempt fails; the step's retry
policy decides what comes next).

Environment: FAAS_URL (the platform API, default http://127.0.0.1:7700), FAAS_TOKEN (required),
FAAS_ACTION_TRANSPORT (`http` or `rabbitmq`, default http), PORT (http, default 8080),
FAAS_ACTION_URL (where the platform reaches this worker, default http://127.0.0.1:$PORT),
FAAS_ACTION_REPLY (http: `callback`, the default, or `answer`), FAAS_AMQP_URL (rabbitmq),
FAAS_ACTION_QUEUE_PREFIX (default `faas.action.`), FAAS_WORKER (this
worker's id, default host-pid), FAAS_ACTION_INTERVAL_MS (default 2000), FAAS_ACTION_DONE_FILE.
The rabbitmq transport needs the `pika` package (add it to requirements.txt).
"""

import http.server
import inspect
import json
import os
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

__all__ = ["action", "serve", "Context", "Worker"]

_ACTIONS = []


class Context:
    """What a function learns of its launch besides the input."""

    def __init__(self, launch):
        self.key = launch["key"]
        self.run = launch["run"]
        self.step = launch["step"]
        self.attempt = launch["attempt"]
        self.launch = launch["id"]
        self.deadline = launch.get("deadline")


class Action:
    def __init__(self, name, func, version, input_schema, output_schema):
        self.name = name
        self.func = func
        self.version = version
        self.input_schema = input_schema if input_schema is not None else {}
        self.output_schema = output_schema if output_schema is not None else {}
        self.takes_context = len(inspect.signature(func).parameters) >= 2

    def call(self, launch):
        if self.takes_context:
            return self.func(launch["input"], Context(launch))
        return self.func(launch["input"])


def action(name=None, version="1.0.0", input_schema=None, output_schema=None):
    """Declares a function an action (its name defaults to the function's, `_` as `-`)."""

    def wrap(func):
        _ACTIONS.append(Action(name or func.__name__.replace("_", "-"), func, version,
                               input_schema, output_schema))
        return func

    return wrap


def log(msg, **fields):
    record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "msg": msg}
    record.update(fields)
    sys.stdout.write(json.dumps(record, default=str) + "\n")
    sys.stdout.flush()


class Platform:
    """The few calls a worker makes to the platform API."""

    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self.token = token

    def post(self, path, body, timeout=10):
        """(status, parsed body); status 0 when the platform does not answer."""
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": "Bearer " + self.token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"null")
            except ValueError:
                return e.code, None
        except (OSError, ValueError) as e:
            return 0, {"detail": str(e)}


class Worker:
    """Beats for its actions and runs their launches, once per idempotency key."""

    def __init__(self, actions, platform, transport="http", worker=None, interval_ms=2000,
                 port=8080, public_url=None, amqp_url=None, queue_prefix="faas.action.",
                 done_file=None, reply="callback"):
        self.actions = {a.name: a for a in actions}
        self.platform = platform
        self.transport = transport
        self.worker = worker or f"{socket.gethostname()}-{os.getpid()}"
        self.interval = interval_ms / 1000
        self.interval_ms = interval_ms
        self.port = port
        self.public_url = (public_url or f"http://127.0.0.1:{port}").rstrip("/")
        self.amqp_url = amqp_url
        self.queue_prefix = queue_prefix
        self.done_file = done_file
        self.reply = reply
        self.done = {}
        self.running = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        if done_file and os.path.exists(done_file):
            with open(done_file) as f:
                for line in f:
                    if line.strip():
                        entry = json.loads(line)
                        self.done[entry["key"]] = entry["result"]

    def address(self, name):
        if self.transport == "rabbitmq":
            return self.queue_prefix + name
        return f"{self.public_url}/actions/{name}"

    # -- registration ------------------------------------------------------------------------

    def beat_once(self):
        for a in self.actions.values():
            status, body = self.platform.post("/v1/actions/heartbeat", {
                "name": a.name, "version": a.version, "worker": self.worker,
                "input_schema": a.input_schema, "output_schema": a.output_schema,
                "transport": self.transport, "address": self.address(a.name),
                "interval_ms": self.interval_ms,
            })
            if status != 200:
                log("heartbeat refused" if status else "the platform does not answer",
                    action=a.name, status=status, detail=(body or {}).get("detail"))

    def beat_forever(self):
        while not self.stopping.is_set():
            self.beat_once()
            self.stopping.wait(self.interval)

    # -- running a launch, once per key ----------------------------------------------------------

    def run(self, launch):
        """The result of a launch: {"output": …} or {"error": "…"}; a key done before gives the
        same result without running the function again."""
        key = launch["key"]
        while True:
            with self.lock:
                if key in self.done:
                    return self.done[key]
                waiting = self.running.get(key)
                if waiting is None:
                    self.running[key] = threading.Event()
                    break
            waiting.wait()
        a = self.actions.get(launch["action"])
        try:
            if a is None:
                raise LookupError(f"this worker has no action {launch['action']!r}")
            result = {"output": a.call(launch)}
            with self.lock:
                self.done[key] = result
                if self.done_file:
                    with open(self.done_file, "a") as f:
                        f.write(json.dumps({"key": key, "result": result}) + "\n")
        except Exception as e:  # the attempt fails; the platform's retry policy decides
            log("the action failed", launch=launch["id"], error=repr(e), trace=traceback.format_exc())
            result = {"error": f"{type(e).__name__}: {e}"}
        finally:
            with self.lock:
                self.running.pop(key).set()
        return result

    def until_deadline(self, what, call):
        """Calls `call` until it returns a status other than 0 (the platform is away), backing off."""
        wait = 0.1
        while not self.stopping.is_set():
            status, body = call()
            if status:
                return status, body
            log(f"the platform does not answer; {what} again in {wait:.1f}s")
            time.sleep(wait)
            wait = min(wait * 2, 2.0)
        return 0, None

    # -- HTTP ------------------------------------------------------------------------------------

    def serve_http(self):
        worker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/_info":
                    self.reply(200, {"status": "ok", "worker": worker.worker,
                                     "actions": sorted(worker.actions)})
                else:
                    self.reply(404, {"detail": "no such path"})

            def do_POST(self):
                name = self.path.removeprefix("/actions/")
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    launch = json.loads(self.rfile.read(length))
                except ValueError:
                    return self.reply(400, {"detail": "the body is not a launch"})
                if name not in worker.actions or launch.get("action") != name:
                    return self.reply(404, {"detail": f"no action {name!r} here"})
                if worker.reply == "answer":
                    # Short actions: the result is the answer itself.
                    return self.reply(200, worker.run(launch))
                self.reply(202, {"worker": worker.worker})
                threading.Thread(target=worker.run_and_post, args=(launch,), daemon=True).start()

        server = http.server.ThreadingHTTPServer(("0.0.0.0", self.port), Handler)
        server.daemon_threads = True
        log("serving launches over HTTP", port=self.port, worker=self.worker,
            actions=sorted(self.actions))
        server.serve_forever()

    def run_and_post(self, launch):
        result = self.run(launch)
        body = dict(result, token=launch["token"], worker=self.worker)
        status, answer = self.until_deadline(
            "posting the result", lambda: self.platform.post(
                f"/v1/actions/launches/{launch['id']}/result", body))
        if status not in (200, 404, 409):
            log("the result was refused", launch=launch["id"], status=status,
                detail=(answer or {}).get("detail"))

    # -- RabbitMQ --------------------------------------------------------------------------------

    def serve_rabbitmq(self):
        try:
            import pika
        except ImportError:
            sys.exit("the rabbitmq transport needs the pika package: add `pika` to requirements.txt")
        params = pika.URLParameters(self.amqp_url)
        while not self.stopping.is_set():
            try:
                connection = pika.BlockingConnection(params)
                channel = connection.channel()
                channel.confirm_delivery()
                channel.basic_qos(prefetch_count=1)
                for name in self.actions:
                    queue = self.address(name)
                    channel.queue_declare(queue=queue, durable=True)
                    channel.basic_consume(queue=queue, on_message_callback=self.on_message(connection))
                log("consuming launches over RabbitMQ", worker=self.worker,
                    queues=[self.address(n) for n in self.actions])
                channel.start_consuming()
            except pika.exceptions.AMQPError as e:
                log("the broker connection ended; connecting again", error=repr(e))
                time.sleep(0.5)

    def on_message(self, connection):
        import pika

        def handle(channel, method, properties, body):
            try:
                launch = json.loads(body)
            except ValueError:
                log("a message that is not a launch; dropped")
                return channel.basic_ack(method.delivery_tag)
            status, answer = self.until_deadline("claiming the launch", lambda: self.platform.post(
                f"/v1/actions/launches/{launch['id']}/claim", {"worker": self.worker}))
            if status != 200:
                # Taken by another worker, superseded or over: the platform decides, not us.
                log("the launch is not ours to run; dropped", launch=launch["id"], status=status,
                    detail=(answer or {}).get("detail"))
                return channel.basic_ack(method.delivery_tag)
            box = {}
            thread = threading.Thread(target=lambda: box.update(result=self.run(launch)), daemon=True)
            thread.start()
            while thread.is_alive():
                connection.sleep(0.05)  # keeps the connection's heartbeats going
            result = dict(box["result"], launch=launch["id"], token=launch["token"], worker=self.worker)
            channel.basic_publish(
                exchange="", routing_key=launch.get("reply_to") or properties.reply_to,
                body=json.dumps(result),
                properties=pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                                correlation_id=launch["id"]))
            channel.basic_ack(method.delivery_tag)

        return handle


def serve(actions=None):
    """Runs the declared actions (or `actions`) from the environment's settings: beats in the
    background, and takes launches until the process ends."""
    env = os.environ.get
    token = env("FAAS_TOKEN")
    if not token:
        sys.exit("set FAAS_TOKEN to a token of the platform (faas auth token create)")
    worker = Worker(
        actions if actions is not None else list(_ACTIONS),
        Platform(env("FAAS_URL", "http://127.0.0.1:7700"), token),
        transport=env("FAAS_ACTION_TRANSPORT", "http"),
        worker=env("FAAS_WORKER"),
        interval_ms=int(env("FAAS_ACTION_INTERVAL_MS", "2000")),
        port=int(env("PORT", "8080")),
        public_url=env("FAAS_ACTION_URL"),
        amqp_url=env("FAAS_AMQP_URL"),
        queue_prefix=env("FAAS_ACTION_QUEUE_PREFIX", "faas.action."),
        done_file=env("FAAS_ACTION_DONE_FILE"),
        reply=env("FAAS_ACTION_REPLY", "callback"),
    )
    if not worker.actions:
        sys.exit("no actions: declare functions with @action")
    if worker.reply not in ("callback", "answer"):
        sys.exit(f"FAAS_ACTION_REPLY is {worker.reply!r}: give callback or answer")
    if worker.transport not in ("http", "rabbitmq"):
        sys.exit(f"FAAS_ACTION_TRANSPORT is {worker.transport!r}: give http or rabbitmq")
    if worker.transport == "rabbitmq" and not worker.amqp_url:
        sys.exit("the rabbitmq transport needs FAAS_AMQP_URL (amqp://USER:PASSWORD@HOST:PORT/VHOST)")
    worker.beat_once()
    threading.Thread(target=worker.beat_forever, daemon=True).start()
    if worker.transport == "rabbitmq":
        # The health check still answers over HTTP.
        threading.Thread(target=worker.serve_http, daemon=True).start()
        worker.serve_rabbitmq()
    else:
        worker.serve_http()

"""The HTTP server: HTTP/1.1 with keep-alive over asyncio streams, one endpoint per function.

Routes
  GET  /_info                 health and what is served (200 while the process is up)
  GET  /_metrics              per-function calls, errors and latencies (Prometheus text)
  GET  /functions             the functions and their parameters
  POST /functions/<name>      call <name> with the JSON body as keyword arguments
"""

import asyncio
import contextvars
import importlib
import inspect
import json
import logging
import os
import re
import signal
import sys
import time
import traceback
import uuid

from .errors import BadRequest, HTTPError

MAX_HEADER_BYTES = 64 * 1024
REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    503: "Service Unavailable",
}
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
# Upper bounds of the latency buckets, in seconds: the platform router's own.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


# The trace of the request being served (W3C traceparent), for the calls it makes.
TRACEPARENT = contextvars.ContextVar("traceparent", default=None)
_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def traceparent():
    """The traceparent of the request being served: pass it on as the `traceparent` header of
    the calls it makes (the generated clients do), so the platform joins them in one trace."""
    return TRACEPARENT.get()


def trace_id_of(header):
    """The trace id of a traceparent header, or None."""
    m = _TRACEPARENT_RE.match((header or "").strip())
    return m.group(1) if m else None


class FunctionMetrics:
    """Calls per function and status class, and a latency histogram per function."""

    def __init__(self):
        self.calls = {}      # (function, status) -> count
        self.buckets = {}    # function -> [count per bucket, +Inf last]
        self.sums = {}       # function -> seconds

    def observe(self, function, status, seconds):
        key = (function, str(status))
        self.calls[key] = self.calls.get(key, 0) + 1
        counts = self.buckets.setdefault(function, [0] * (len(BUCKETS) + 1))
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
        self.sums[function] = self.sums.get(function, 0.0) + seconds

    def render(self):
        out = ["# HELP faas_function_calls_total Calls of each function, by status.",
               "# TYPE faas_function_calls_total counter"]
        for (function, status), n in sorted(self.calls.items()):
            out.append(f'faas_function_calls_total{{function="{function}",status="{status}"}} {n}')
        out += ["# HELP faas_function_duration_seconds Time to answer a call.",
                "# TYPE faas_function_duration_seconds histogram"]
        for function, counts in sorted(self.buckets.items()):
            cumulative = 0
            for bound, n in zip(BUCKETS + ("+Inf",), counts):
                cumulative += n
                out.append(f'faas_function_duration_seconds_bucket{{function="{function}",le="{bound}"}} {cumulative}')
            out.append(f'faas_function_duration_seconds_sum{{function="{function}"}} {self.sums[function]}')
            out.append(f'faas_function_duration_seconds_count{{function="{function}"}} {cumulative}')
        return "\n".join(out) + "\n"


def where_raised(tb):
    """`file:line in function` of the innermost frame of a traceback."""
    frames = traceback.extract_tb(tb)
    if not frames:
        return "unknown"
    last = frames[-1]
    return f"{os.path.relpath(last.filename) if os.path.isabs(last.filename) else last.filename}:{last.lineno} in {last.name}"


class JsonLog:
    """Structured logs: one JSON object per line on stdout."""

    def __init__(self, stream=None, level=None):
        self.stream = stream or sys.stdout
        self.level = LEVELS.get((level or os.environ.get("LOG_LEVEL", "info")).lower(), 20)

    def log(self, level, msg, **fields):
        if LEVELS[level] < self.level:
            return
        record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z",
                  "level": level, "msg": msg}
        record.update(fields)
        self.stream.write(json.dumps(record, default=str) + "\n")
        self.stream.flush()

    def info(self, msg, **fields):
        self.log("info", msg, **fields)

    def error(self, msg, **fields):
        self.log("error", msg, **fields)


def snake_case(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def discover(module):
    """The functions a module serves: its public functions, and its public classes with a
    ``handle`` method (created once, served under their name in snake_case)."""
    handlers = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            handlers[name] = obj
        elif inspect.isclass(obj) and callable(getattr(obj, "handle", None)) and not issubclass(obj, BaseException):
            handlers[snake_case(name)] = obj().handle
    return handlers


_SIMPLE_TYPES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
                 list: "an array", dict: "an object"}


def _check_type(name, value, annotation):
    if annotation is inspect.Parameter.empty or annotation not in _SIMPLE_TYPES:
        return
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        bool: isinstance(value, bool),
    }.get(annotation, isinstance(value, annotation))
    if not ok:
        raise BadRequest(f"argument '{name}' must be {_SIMPLE_TYPES[annotation]}, got {json.dumps(value)[:60]}",
                         code="invalid_argument")


def bind_arguments(fn, payload):
    """Binds a JSON payload to fn's parameters: an object gives keyword arguments, any other
    value is the single argument of a one-parameter function."""
    sig = inspect.signature(fn)
    try:
        if isinstance(payload, dict):
            bound = sig.bind(**payload)
        else:
            bound = sig.bind(payload)
    except TypeError as e:
        raise BadRequest(f"bad arguments: {e}", code="invalid_arguments") from None
    for name, value in bound.arguments.items():
        param = sig.parameters[name]
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        _check_type(name, value, param.annotation)
    return bound


def describe(handlers):
    out = []
    for name, fn in sorted(handlers.items()):
        params = []
        for p in inspect.signature(fn).parameters.values():
            entry = {"name": p.name, "required": p.default is inspect.Parameter.empty}
            if p.annotation in _SIMPLE_TYPES:
                entry["type"] = p.annotation.__name__
            params.append(entry)
        out.append({"name": name, "path": f"/functions/{name}", "doc": (inspect.getdoc(fn) or "").split("\n")[0],
                    "params": params})
    return out


class Text:
    """A plain-text answer (the metrics)."""
    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text


class Request:
    __slots__ = ("method", "path", "version", "headers", "body", "request_id")


class Runtime:
    def __init__(self, handlers, log=None, max_body=None, service=None):
        self.handlers = handlers
        self.log = log or JsonLog()
        self.max_body = int(max_body or os.environ.get("FAAS_MAX_BODY", 1024 * 1024))
        self.service = service or os.environ.get("FAAS_SERVICE", "")
        self.started = time.time()
        self.metrics = FunctionMetrics()
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    # --- connection handling -------------------------------------------------------------------
    async def handle_connection(self, reader, writer):
        try:
            while True:
                request = await self.read_request(reader, writer)
                if request is None:
                    break
                keep_alive = await self.respond(request, writer)
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            try:
                writer.close()
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def read_request(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            await self.send_error(writer, 431, "header_too_large", "request headers are too large", "-", False)
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            await self.send_error(writer, 400, "bad_request_line", "malformed request line", "-", False)
            return None
        req = Request()
        req.method, target, req.version = parts
        req.path = target.split("?", 1)[0]
        req.headers = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            req.headers[name.strip().lower()] = value.strip()
        req.request_id = req.headers.get("x-request-id") or uuid.uuid4().hex
        if "chunked" in req.headers.get("transfer-encoding", "").lower():
            await self.send_error(writer, 411, "length_required", "send the body with a Content-Length", req.request_id, False)
            return None
        try:
            length = int(req.headers.get("content-length", "0"))
        except ValueError:
            await self.send_error(writer, 400, "bad_content_length", "Content-Length is not a number", req.request_id, False)
            return None
        if length > self.max_body:
            await self.send_error(writer, 413, "body_too_large", f"the body is over {self.max_body} bytes", req.request_id, False)
            return None
        req.body = await reader.readexactly(length) if length else b""
        return req

    def wants_keep_alive(self, req):
        connection = req.headers.get("connection", "").lower()
        if req.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"

    async def respond(self, req, writer):
        start = time.perf_counter()
        trace_id = trace_id_of(req.headers.get("traceparent"))
        TRACEPARENT.set(req.headers.get("traceparent") if trace_id else None)
        self.in_flight += 1
        self.idle.clear()
        try:
            status, body = await self.route(req)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()
        keep_alive = self.wants_keep_alive(req)
        # Logged before the answer is sent, so the line exists by the time the caller has it.
        self.log.info("request", request_id=req.request_id, trace_id=trace_id, method=req.method, path=req.path, status=status,
                      duration_ms=round((time.perf_counter() - start) * 1000, 3))
        await self.write(writer, status, body, req.request_id, keep_alive)
        return keep_alive

    async def write(self, writer, status, body, request_id, keep_alive):
        if isinstance(body, Text):
            data, content_type = body.text.encode(), "text/plain; version=0.0.4"
        else:
            data, content_type = json.dumps(body, default=str).encode() + b"\n", "application/json"
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
                f"X-Request-Id: {request_id}\r\n"
                f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
        writer.write(head.encode("latin-1") + data)
        await writer.drain()

    async def send_error(self, writer, status, code, message, request_id, keep_alive):
        await self.write(writer, status, error_body(code, message, request_id), request_id, keep_alive)
        self.log.info("request refused", request_id=request_id, status=status, code=code)

    # --- routing -------------------------------------------------------------------------------
    async def route(self, req):
        if req.path == "/_info":
            if req.method not in ("GET", "HEAD"):
                return 405, error_body("method_not_allowed", "use GET", req.request_id)
            return 200, {"status": "ok", "service": self.service, "functions": sorted(self.handlers),
                         "uptime_s": round(time.time() - self.started, 3)}
        if req.path == "/_metrics":
            return 200, Text(self.metrics.render())
        if req.path in ("/functions", "/functions/"):
            return 200, {"functions": describe(self.handlers)}
        if req.path.startswith("/functions/"):
            name = req.path[len("/functions/"):]
            fn = self.handlers.get(name)
            if fn is None:
                return 404, error_body("unknown_function", f"no function named '{name}'; GET /functions lists them",
                                       req.request_id)
            if req.method != "POST":
                return 405, error_body("method_not_allowed", f"call /functions/{name} with POST", req.request_id)
            start = time.perf_counter()
            status, body = await self.call(name, fn, req)
            self.metrics.observe(name, status, time.perf_counter() - start)
            return status, body
        return 404, error_body("not_found", f"nothing at {req.path}; functions are at /functions/<name>",
                               req.request_id)

    async def call(self, name, fn, req):
        content_type = req.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        # curl -d sends application/x-www-form-urlencoded: the body is still read as JSON, so
        # that the simplest call works. Types that cannot be JSON are refused.
        if req.body and not is_json_compatible(content_type):
            return 415, error_body("unsupported_media_type", "send a JSON body (Content-Type: application/json)",
                                   req.request_id)
        try:
            payload = json.loads(req.body) if req.body.strip() else {}
        except (ValueError, UnicodeDecodeError) as e:
            return 400, error_body("invalid_json", f"the body is not valid JSON: {e}", req.request_id)
        try:
            bound = bind_arguments(fn, payload)
            if inspect.iscoroutinefunction(fn):
                result = await fn(*bound.args, **bound.kwargs)
            else:
                loop = asyncio.get_running_loop()
                context = contextvars.copy_context()
                result = await loop.run_in_executor(None, lambda: context.run(fn, *bound.args, **bound.kwargs))
            json.dumps(result)
            return 200, result
        except HTTPError as e:
            if e.status >= 500:
                self.log.error("function failed", request_id=req.request_id, function=name,
                               traceback=traceback.format_exc())
            return e.status, error_body(e.code, e.message, req.request_id)
        except Exception as e:  # noqa: BLE001 - any failure of user code is a 500
            self.log.error("function raised", request_id=req.request_id, trace_id=trace_id_of(TRACEPARENT.get()), function=name,
                           error=f"{type(e).__name__}: {e}", error_type=type(e).__name__,
                           location=where_raised(e.__traceback__), traceback=traceback.format_exc())
            return 500, error_body("internal", "the function failed; its log has the details", req.request_id)


def is_json_compatible(content_type):
    return (content_type in ("", "application/json", "text/json", "text/plain", "application/x-www-form-urlencoded")
            or content_type.endswith("+json"))


def error_body(code, message, request_id):
    return {"error": {"code": code, "message": message, "request_id": request_id}}


async def serve(module_name="app.functions", host="0.0.0.0", port=8080, ready=None, stop=None, log=None):
    """Serves the module's functions until SIGTERM/SIGINT (or ``stop`` is set), then stops
    accepting, lets in-flight requests finish (10 s at most) and returns."""
    log = log or JsonLog()
    module = importlib.import_module(module_name)
    runtime = Runtime(discover(module), log=log)
    server = await asyncio.start_server(runtime.handle_connection, host, port, limit=MAX_HEADER_BYTES)
    bound_port = server.sockets[0].getsockname()[1]
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    log.info("listening", host=host, port=bound_port, module=module_name, functions=sorted(runtime.handlers))
    if ready is not None:
        ready(bound_port)
    async with server:
        await stop.wait()
        server.close()
        try:
            await asyncio.wait_for(runtime.idle.wait(), timeout=10)
        except asyncio.TimeoutError:
            log.error("stopping with requests still in flight", in_flight=runtime.in_flight)
    log.info("stopped")

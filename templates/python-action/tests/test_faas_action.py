"""The helper against a stand-in for the platform API (a local HTTP server that records what
workers send): beats, HTTP launches answered 202 with the result posted back, one run per
idempotency key, failures reported as errors."""

import http.server
import json
import os
import socket
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import faas_action  # noqa: E402


class FakePlatform(http.server.ThreadingHTTPServer):
    def __init__(self):
        self.posts = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(inner):
                body = json.loads(inner.rfile.read(int(inner.headers["Content-Length"])))
                self.posts.append((inner.path, body, inner.headers.get("Authorization")))
                data = b'{"ok": true}'
                inner.send_response(200)
                inner.send_header("Content-Length", str(len(data)))
                inner.end_headers()
                inner.wfile.write(data)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, predicate, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [p for p in self.posts if predicate(p)]
            if found:
                return found
            time.sleep(0.01)
        raise AssertionError(f"nothing matched in {self.posts}")


def launch(key, text="a b c", action="count", attempt=1):
    return {"id": f"run.step.{attempt}", "key": key, "run": "run", "step": "step", "attempt": attempt,
            "action": action, "input": {"text": text}, "deadline": "2030-01-01T00:00:00Z",
            "token": "tok"}


class HelperTest(unittest.TestCase):
    def setUp(self):
        self.platform = FakePlatform()
        self.calls = []

        def count(input, ctx):
            self.calls.append(ctx.key)
            if input["text"] == "boom":
                raise ValueError("boom")
            return {"words": len(input["text"].split())}

        self.action = faas_action.Action("count", count, "1.0.0",
                                         {"type": "object"}, {"type": "object"})

    def tearDown(self):
        self.platform.shutdown()

    def worker(self, **kw):
        return faas_action.Worker([self.action], faas_action.Platform(self.platform.url(), "secret"), **kw)

    def post_launch(self, worker_kw, body):
        """Serves HTTP launches with a worker on a free port and POSTs one: (status, body)."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        w = self.worker(port=port, **worker_kw)
        threading.Thread(target=w.serve_http, daemon=True).start()
        data = json.dumps(body).encode()
        deadline = time.time() + 5
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/actions/count", data=data,
                                                 method="POST")
                with urllib.request.urlopen(request, timeout=5) as r:
                    return r.status, json.loads(r.read())
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.02)

    def test_a_beat_says_what_the_action_is(self):
        self.worker(worker="w1", port=9999, interval_ms=500).beat_once()
        path, body, auth = self.platform.posts[0]
        self.assertEqual(path, "/v1/actions/heartbeat")
        self.assertEqual(auth, "Bearer secret")
        self.assertEqual(body["name"], "count")
        self.assertEqual(body["worker"], "w1")
        self.assertEqual(body["transport"], "http")
        self.assertEqual(body["address"], "http://127.0.0.1:9999/actions/count")
        self.assertEqual(body["interval_ms"], 500)

    def test_one_run_per_key(self):
        w = self.worker()
        first = w.run(launch("k1"))
        again = w.run(launch("k1", attempt=2))
        other = w.run(launch("k2", text="x"))
        self.assertEqual(first, {"output": {"words": 3}})
        self.assertEqual(again, first)
        self.assertEqual(other, {"output": {"words": 1}})
        self.assertEqual(self.calls, ["k1", "k2"])

    def test_keys_done_survive_a_restart_with_a_done_file(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "done.jsonl")
            self.worker(done_file=path).run(launch("k1"))
            self.assertEqual(self.worker(done_file=path).run(launch("k1")), {"output": {"words": 3}})
            self.assertEqual(self.calls, ["k1"])

    def test_a_failure_is_an_error_and_is_not_remembered(self):
        w = self.worker()
        self.assertEqual(w.run(launch("k", text="boom")), {"error": "ValueError: boom"})
        w.run(launch("k", text="boom"))
        self.assertEqual(len(self.calls), 2)

    def test_an_http_launch_is_answered_202_and_its_result_posted(self):
        status, _ = self.post_launch({"worker": "w9"}, launch("k7"))
        self.assertEqual(status, 202)
        posted = self.platform.wait_for(lambda p: p[0].endswith("/result"))
        path, result, _ = posted[0]
        self.assertEqual(path, "/v1/actions/launches/run.step.1/result")
        self.assertEqual(result, {"output": {"words": 3}, "token": "tok", "worker": "w9"})

    def test_with_reply_answer_the_result_is_the_answer(self):
        status, body = self.post_launch({"reply": "answer"}, launch("k8", text="one two"))
        self.assertEqual(status, 200)
        self.assertEqual(body, {"output": {"words": 2}})
        self.assertFalse([p for p in self.platform.posts if p[0].endswith("/result")])


if __name__ == "__main__":
    unittest.main()

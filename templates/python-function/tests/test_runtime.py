"""Tests of the runtime over real HTTP: endpoints, error mapping, health and logs."""

import asyncio
import http.client
import io
import json
import threading
import unittest

from faas_runtime.server import JsonLog, serve


class RunningServer:
    """Runs the runtime on an ephemeral loopback port in a thread."""

    def __init__(self, module="tests.sample_functions"):
        self.module = module
        self.logs = io.StringIO()
        self.port = None

    def __enter__(self):
        ready = threading.Event()
        self.loop = asyncio.new_event_loop()

        def run():
            asyncio.set_event_loop(self.loop)
            self.stop = asyncio.Event()

            def on_ready(port):
                self.port = port
                ready.set()

            self.loop.run_until_complete(
                serve(self.module, "127.0.0.1", 0, ready=on_ready, stop=self.stop, log=JsonLog(stream=self.logs))
            )

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("the runtime did not start within 10 s")
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)

    def request(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        payload = json.loads(resp.read())
        if own:
            conn.close()
        return resp, payload

    def log_records(self):
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.strip()]


class RuntimeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = RunningServer().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def test_function_returns_its_result_as_json(self):
        resp, body = self.server.request("POST", "/functions/add", {"a": 2, "b": 3.5})
        self.assertEqual(resp.status, 200)
        self.assertEqual(body, 5.5)
        self.assertEqual(resp.getheader("Content-Type"), "application/json")

    def test_default_arguments_apply(self):
        _, body = self.server.request("POST", "/functions/greet", {"name": "ada"})
        self.assertEqual(body, "hello, ada")

    def test_a_non_object_body_is_the_single_argument(self):
        _, body = self.server.request("POST", "/functions/echo", [1, 2, 3])
        self.assertEqual(body, [1, 2, 3])

    def test_async_functions_are_awaited(self):
        _, body = self.server.request("POST", "/functions/slow_double", {"x": 21})
        self.assertEqual(body, 42)

    def test_classes_with_handle_keep_their_state(self):
        _, first = self.server.request("POST", "/functions/counter", {"step": 2})
        _, second = self.server.request("POST", "/functions/counter", {})
        self.assertEqual(second, first + 1)

    def test_invalid_json_is_a_400_with_a_json_error(self):
        resp, body = self.server.request("POST", "/functions/add", b"{not json")
        self.assertEqual(resp.status, 400)
        self.assertEqual(body["error"]["code"], "invalid_json")
        self.assertTrue(body["error"]["request_id"])

    def test_curl_default_content_type_is_read_as_json(self):
        resp, body = self.server.request("POST", "/functions/add", {"a": 1, "b": 2},
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(resp.status, 200)
        self.assertEqual(body, 3)

    def test_a_body_that_cannot_be_json_is_a_415(self):
        resp, body = self.server.request("POST", "/functions/add", b"--x--",
                                         headers={"Content-Type": "multipart/form-data; boundary=x"})
        self.assertEqual(resp.status, 415)
        self.assertEqual(body["error"]["code"], "unsupported_media_type")

    def test_missing_argument_is_a_400(self):
        resp, body = self.server.request("POST", "/functions/add", {"a": 1})
        self.assertEqual(resp.status, 400)
        self.assertEqual(body["error"]["code"], "invalid_arguments")
        self.assertIn("'b'", body["error"]["message"])

    def test_unexpected_argument_is_a_400(self):
        resp, body = self.server.request("POST", "/functions/add", {"a": 1, "b": 2, "c": 3})
        self.assertEqual(resp.status, 400)
        self.assertIn("'c'", body["error"]["message"])

    def test_wrong_type_is_a_400(self):
        resp, body = self.server.request("POST", "/functions/add", {"a": "one", "b": 2})
        self.assertEqual(resp.status, 400)
        self.assertEqual(body["error"]["code"], "invalid_argument")
        self.assertIn("'a' must be a number", body["error"]["message"])

    def test_bad_request_raised_by_the_function_is_a_400(self):
        resp, body = self.server.request("POST", "/functions/refuse", {"reason": "no thanks"})
        self.assertEqual(resp.status, 400)
        self.assertEqual(body["error"]["message"], "no thanks")

    def test_exception_is_a_500_without_the_traceback_but_logged(self):
        resp, body = self.server.request("POST", "/functions/explode", {}, headers={"X-Request-Id": "req-explode"})
        self.assertEqual(resp.status, 500)
        self.assertEqual(body["error"]["code"], "internal")
        self.assertNotIn("do-not-leak", json.dumps(body))
        self.assertNotIn("Traceback", json.dumps(body))
        errors = [r for r in self.server.log_records() if r.get("request_id") == "req-explode" and r["level"] == "error"]
        self.assertEqual(len(errors), 1)
        self.assertIn("Traceback", errors[0]["traceback"])
        self.assertIn("do-not-leak", errors[0]["traceback"])
        # Grouped by the platform by type and place.
        self.assertEqual(errors[0]["function"], "explode")
        self.assertRegex(errors[0]["error_type"], r"^[A-Za-z]+Error$")
        self.assertRegex(errors[0]["location"], r"sample_functions\.py:\d+ in explode$")

    def test_the_trace_id_is_logged_and_passed_to_the_function(self):
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        resp, body = self.server.request("POST", "/functions/add", {"a": 1, "b": 2},
                                         headers={"traceparent": tp, "X-Request-Id": "req-traced"})
        self.assertEqual(resp.status, 200)
        line = [r for r in self.server.log_records() if r.get("request_id") == "req-traced"][0]
        self.assertEqual(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736")
        resp, body = self.server.request("POST", "/functions/whose_trace", {}, headers={"traceparent": tp})
        self.assertEqual(body, tp)
        resp, body = self.server.request("POST", "/functions/whose_trace", {}, headers={"traceparent": "bogus"})
        self.assertIsNone(body)

    def test_metrics_count_calls_and_latencies_per_function(self):
        self.server.request("POST", "/functions/add", {"a": 1, "b": 2})
        self.server.request("POST", "/functions/add", {"a": 1, "b": 2})
        self.server.request("POST", "/functions/explode", {})
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        conn.request("GET", "/_metrics")
        resp = conn.getresponse()
        text = resp.read().decode()
        conn.close()
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.getheader("Content-Type").startswith("text/plain"))
        calls = {}
        for line in text.splitlines():
            if line.startswith("faas_function_calls_total{"):
                labels, value = line.split("} ")
                calls[labels.split("{", 1)[1]] = int(value)
        self.assertGreaterEqual(calls['function="add",status="200"'], 2)
        self.assertGreaterEqual(calls['function="explode",status="500"'], 1)
        self.assertIn('faas_function_duration_seconds_bucket{function="add",le="+Inf"}', text)

    def test_unserializable_result_is_a_500(self):
        resp, _ = self.server.request("POST", "/functions/unserializable", {})
        self.assertEqual(resp.status, 500)

    def test_unknown_function_is_a_404(self):
        resp, body = self.server.request("POST", "/functions/nope", {})
        self.assertEqual(resp.status, 404)
        self.assertEqual(body["error"]["code"], "unknown_function")

    def test_private_functions_are_not_served(self):
        resp, _ = self.server.request("POST", "/functions/_private", {})
        self.assertEqual(resp.status, 404)

    def test_get_on_a_function_is_a_405(self):
        resp, _ = self.server.request("GET", "/functions/add")
        self.assertEqual(resp.status, 405)

    def test_info_answers_200_and_lists_functions(self):
        resp, body = self.server.request("GET", "/_info")
        self.assertEqual(resp.status, 200)
        self.assertEqual(body["status"], "ok")
        self.assertIn("add", body["functions"])
        self.assertIn("counter", body["functions"])
        self.assertNotIn("_private", body["functions"])

    def test_functions_listing_describes_parameters(self):
        _, body = self.server.request("GET", "/functions")
        add = next(f for f in body["functions"] if f["name"] == "add")
        self.assertEqual([p["name"] for p in add["params"]], ["a", "b"])
        self.assertEqual(add["params"][0]["type"], "float")

    def test_request_id_is_echoed_and_logged(self):
        resp, _ = self.server.request("POST", "/functions/add", {"a": 1, "b": 1}, headers={"X-Request-Id": "abc-123"})
        self.assertEqual(resp.getheader("X-Request-Id"), "abc-123")
        records = [r for r in self.server.log_records() if r.get("request_id") == "abc-123"]
        self.assertEqual(records[-1]["status"], 200)
        self.assertEqual(records[-1]["path"], "/functions/add")
        self.assertIn("duration_ms", records[-1])

    def test_a_request_id_is_generated_when_absent(self):
        resp, _ = self.server.request("GET", "/_info")
        self.assertTrue(resp.getheader("X-Request-Id"))

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        for i in range(5):
            _, body = self.server.request("POST", "/functions/add", {"a": i, "b": 1}, conn=conn)
            self.assertEqual(body, i + 1)
        conn.close()

    def test_body_over_the_limit_is_a_413(self):
        big = b'{"value": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        conn.putrequest("POST", "/functions/echo")
        conn.putheader("Content-Length", str(len(big)))
        conn.endheaders()
        resp = conn.getresponse()
        self.assertEqual(resp.status, 413)
        conn.close()


class CalculatorTemplateTest(unittest.TestCase):
    """The scaffolded calculator functions behave as their docs say."""

    def test_calculator(self):
        with RunningServer("app.functions") as server:
            self.assertEqual(server.request("POST", "/functions/add", {"a": 1, "b": 2})[1], 3)
            self.assertEqual(server.request("POST", "/functions/divide", {"a": 9, "b": 3})[1], 3)
            resp, body = server.request("POST", "/functions/divide", {"a": 1, "b": 0})
            self.assertEqual(resp.status, 400)
            self.assertIn("zero", body["error"]["message"])
            _, body = server.request("POST", "/functions/evaluate", {"start": 1, "ops": [["add", 2], ["multiply", 3]]})
            self.assertEqual(body, 9)


if __name__ == "__main__":
    unittest.main()

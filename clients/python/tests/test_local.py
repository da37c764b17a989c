"""tako_client's logic that needs no tako: retries against a local stub
(for what a real server cannot be made to answer on demand), the event
parser, webhook verification and the SDK's program generation."""

import base64
import dataclasses
import hashlib
import hmac
import http.server
import io
import socket
import threading
import time
import unittest
from typing import Any, Callable, List, Optional, Tuple

import tako_client
from tako_client import APIError, Client, TakoVM, TransportError, WebhookError, verify_webhook
from tako_client.client import _read_events
from tako_client.errors import parse_retry_after
from tako_client.models import parse_time

# A handler answers one request: (status, headers, body).
Answer = Tuple[int, List[Tuple[str, str]], bytes]


class Stub:
    """A local HTTP server that answers with the answers given, in order
    (the last one repeated), and records each request's method, path and
    headers."""

    def __init__(self, answers: List[Answer]) -> None:
        self.answers = answers
        self.seen: List[Tuple[str, str, Any]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                stub.seen.append((self.command, self.path, self.headers))
                status, headers, body = stub.answers[min(len(stub.seen), len(stub.answers)) - 1]
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


JSON = [("Content-Type", "application/json")]


def busy(retry_after: Optional[str] = "0") -> Answer:
    headers = JSON + [("X-Correlation-ID", "corr-1")]
    if retry_after is not None:
        headers.append(("Retry-After", retry_after))
    return 503, headers, b'{"detail": "busy", "correlation_id": "corr-body"}'


class RetryTest(unittest.TestCase):
    def stub(self, answers: List[Answer]) -> Stub:
        s = Stub(answers)
        self.addCleanup(s.close)
        return s

    def client(self, url: str, **kw: Any) -> Tuple[Client, List[float]]:
        c = Client(url, api_key="k" * 20, **kw)
        sleeps: List[float] = []
        c._sleep = sleeps.append  # record the waits instead of waiting
        c._backoff = 0.01
        return c, sleeps

    def test_submit_with_key_retried_on_503_and_429(self) -> None:
        ok = (200, JSON, b'{"job_id": "j1", "status": "queued"}')
        s = self.stub([busy("2"), (429, JSON + [("Retry-After", "1")], b'{"detail": "slow down"}'), ok])
        c, sleeps = self.client(s.url)
        job = c.submit("print(1)", idempotency_key="key-12345678")
        self.assertEqual(job.job_id, "j1")
        self.assertEqual(len(s.seen), 3)
        self.assertEqual(sleeps, [2.0, 1.0], "Retry-After honoured")
        self.assertEqual(s.seen[0][2]["X-API-Key"], "k" * 20)

    def test_no_retry_where_unsafe(self) -> None:
        s = self.stub([busy()])
        c, _ = self.client(s.url)
        for call in (
            lambda: c.submit("print(1)"),
            lambda: c.execute("print(1)"),
            lambda: c.cancel("j"),
            lambda: c.rerun("j"),
            lambda: c.fork("j", "print(1)"),
        ):
            before = len(s.seen)
            with self.assertRaises(APIError) as cm:
                call()
            self.assertEqual(len(s.seen) - before, 1)
            self.assertEqual(cm.exception.status, 503)
            self.assertEqual(cm.exception.detail, "busy")
            self.assertEqual(cm.exception.correlation_id, "corr-1")
            self.assertEqual(cm.exception.retry_after, 0.0)

    def test_retries_are_bounded(self) -> None:
        s = self.stub([busy(None)])
        c, sleeps = self.client(s.url, retries=2)
        with self.assertRaises(APIError):
            c.job("j")
        self.assertEqual(len(s.seen), 3)
        self.assertEqual(len(sleeps), 2)
        # A Retry-After longer than the client waits is the caller's.
        s2 = self.stub([busy("3600")])
        c2, sleeps2 = self.client(s2.url)
        with self.assertRaises(APIError) as cm:
            c2.job("j")
        self.assertEqual(cm.exception.retry_after, 3600.0)
        self.assertEqual(len(s2.seen), 1)

    def test_other_errors_not_retried(self) -> None:
        s = self.stub([(404, JSON, b'{"detail": "Job not found", "correlation_id": "c9"}')])
        c, _ = self.client(s.url)
        with self.assertRaises(APIError) as cm:
            c.job("j")
        self.assertEqual((cm.exception.status, cm.exception.detail, cm.exception.correlation_id), (404, "Job not found", "c9"))
        self.assertEqual(len(s.seen), 1)
        s2 = self.stub([(500, [("Content-Type", "text/plain")], b"")])
        c2, _ = self.client(s2.url)
        with self.assertRaises(APIError) as cm:
            c2.health()
        self.assertEqual(cm.exception.detail, "Internal Server Error")

    def test_connection_refused_retried_even_for_execute(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # nothing listens once closed
        c, sleeps = self.client(f"http://127.0.0.1:{port}", retries=2)
        with self.assertRaises(TransportError):
            c.execute("print(1)")
        self.assertEqual(len(sleeps), 2)

    def test_wait_resumes_on_408_until_its_own_timeout(self) -> None:
        done = (200, JSON, b'{"job_id": "j", "status": "succeeded", "success": true, "stdout": "x"}')
        s = self.stub([(408, JSON, b'{"detail": "Timeout waiting for job"}')] * 2 + [done])
        c, _ = self.client(s.url)
        res = c.wait("j", timeout=120)
        self.assertEqual(res.stdout, "x")
        self.assertEqual(len(s.seen), 3)
        self.assertTrue(s.seen[0][1].startswith("/jobs/j/result?wait=true&timeout=120"), s.seen[0][1])

    def test_stream_reconnects_with_last_event_id(self) -> None:
        sse = [("Content-Type", "text/event-stream")]
        first = b'id: 1\nevent: queued\ndata: {"job_id": "j"}\n\n: ping\n\nid: 2\nevent: stdout\ndata: {"data": "a\\n"}\n\nid: 3\nevent: std'
        second = b'id: 3\nevent: stdout\ndata: {"data": "b\\n"}\n\nid: 4\nevent: done\ndata: {"job_id": "j", "status": "succeeded"}\n\n'
        s = self.stub([(200, sse, first), (200, sse, second)])
        c, _ = self.client(s.url)
        evs = list(c.stream("j"))
        self.assertEqual([e.type for e in evs], ["queued", "stdout", "stdout", "done"])
        self.assertEqual("".join(e.text for e in evs), "a\nb\n")
        self.assertEqual(evs[-1].status, "succeeded")
        self.assertEqual(s.seen[1][2]["Last-Event-ID"], "2")
        self.assertIsNone(s.seen[0][2]["Last-Event-ID"])

    def test_stream_gives_up_without_progress(self) -> None:
        s = self.stub([(200, [("Content-Type", "text/event-stream")], b": ping\n\n")])
        c, _ = self.client(s.url, retries=2)
        with self.assertRaises(TransportError):
            list(c.stream("j"))
        self.assertEqual(len(s.seen), 3)

    def test_artifact_not_modified(self) -> None:
        s = self.stub([(304, [("ETag", '"abc"')], b"")])
        c, _ = self.client(s.url)
        dl = c.artifact("j", "a b.txt", etag='"abc"')
        self.assertTrue(dl.not_modified)
        self.assertEqual(dl.etag, '"abc"')
        self.assertEqual(s.seen[0][1], "/jobs/j/artifacts/a%20b.txt")
        self.assertEqual(s.seen[0][2]["If-None-Match"], '"abc"')


class ParseTest(unittest.TestCase):
    def test_events(self) -> None:
        raw = (
            b"retry: 1000\r\nid: 7\r\nevent: result\r\ndata: {\"job_id\": \"j\", \"status\": \"failed\",\r\n"
            b"data:  \"error\": {\"type\": \"runtime_error\", \"message\": \"boom\"}}\r\n\r\n"
            b"event: error\ndata: {\"type\": \"runtime_error\", \"message\": \"boom\"}\n\n"
            b"data: plain\n\n"
        )
        evs = list(_read_events(io.BytesIO(raw)))
        self.assertEqual([(e.id, e.type) for e in evs], [("7", "result"), ("7", "error"), ("7", "message")])
        assert evs[0].result is not None and evs[0].result.error is not None
        self.assertEqual(evs[0].result.error.message, "boom")
        self.assertEqual(evs[1].error, tako_client.ExecError("runtime_error", "boom"))
        self.assertEqual(evs[2].data, "plain")

    def test_times_and_retry_after(self) -> None:
        t = parse_time("2026-12-01T03:21:34.123456789Z")
        assert t is not None
        self.assertEqual((t.year, t.microsecond, t.utcoffset().total_seconds()), (2026, 123456, 0))  # type: ignore[union-attr]
        self.assertIsNone(parse_time(None))
        self.assertEqual(parse_retry_after("5"), 5.0)
        self.assertIsNone(parse_retry_after(""))
        self.assertIsNone(parse_retry_after("soon"))
        self.assertEqual(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0.0)


SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def sign(secret: str, msg_id: str, ts: str, body: bytes) -> str:
    key = base64.b64decode(secret[len("whsec_"):])
    return "v1," + base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()


class WebhookTest(unittest.TestCase):
    def headers(self, ts: Optional[int] = None, sig: Optional[str] = None, body: bytes = b'{"a":1}') -> "dict[str, str]":
        ts_s = str(int(time.time()) if ts is None else ts)
        return {
            "Webhook-Id": "job-1",
            "Webhook-Timestamp": ts_s,
            "Webhook-Signature": sig if sig is not None else "v1a,xyz " + sign(SECRET, "job-1", ts_s, body),
        }

    def test_genuine(self) -> None:
        self.assertIsNone(verify_webhook(SECRET, self.headers(), b'{"a":1}'))
        # Lower-case names, as an HTTP/2 server gives them.
        lower = {k.lower(): v for k, v in self.headers().items()}
        self.assertIsNone(verify_webhook(SECRET, lower, b'{"a":1}'))
        # A signature under an older secret, during a rotation.
        other = "whsec_" + base64.b64encode(b"another key").decode()
        h = self.headers()
        h["Webhook-Signature"] = sign(other, "job-1", h["Webhook-Timestamp"], b'{"a":1}') + " " + h["Webhook-Signature"]
        self.assertIsNone(verify_webhook(SECRET, h, b'{"a":1}'))

    def test_refused(self) -> None:
        now = int(time.time())
        cases: List[Tuple[str, Callable[[], None]]] = [
            ("body", lambda: verify_webhook(SECRET, self.headers(), b'{"a":2}')),
            ("no v1 signature", lambda: verify_webhook(SECRET, self.headers(sig="v1,AAAA"), b'{"a":1}')),
            ("from now", lambda: verify_webhook(SECRET, self.headers(ts=now - 600), b'{"a":1}')),
            ("from now", lambda: verify_webhook(SECRET, self.headers(ts=now + 600), b'{"a":1}')),
            ("whsec_", lambda: verify_webhook("nope", self.headers(), b'{"a":1}')),
            ("base64", lambda: verify_webhook("whsec_!!!", self.headers(), b'{"a":1}')),
            ("webhook-id", lambda: verify_webhook(SECRET, {"webhook-timestamp": "1"}, b"")),
            ("unix seconds", lambda: verify_webhook(SECRET, dict(self.headers(), **{"Webhook-Timestamp": "x"}), b"")),
        ]
        for want, call in cases:
            with self.subTest(want=want):
                with self.assertRaises(WebhookError) as cm:
                    call()
                self.assertIsInstance(cm.exception, ValueError)
                self.assertNotIn(SECRET[6:], str(cm.exception))


class ProgramTest(unittest.TestCase):
    def test_program_made_by_the_original_rules(self) -> None:
        # Dataclasses made at run time have no source: the definition is
        # made from their fields.
        In = dataclasses.make_dataclass("In", [("x", int), ("name", str, dataclasses.field(default="n"))])
        Out = dataclasses.make_dataclass("Out", [("y", int)])

        def f(input: In) -> Out:  # type: ignore[valid-type]
            return Out(y=input.x * 2)

        code = TakoVM()._program(f, In, Out)
        self.assertTrue(code.startswith("from dataclasses import dataclass, asdict\nimport json\n"), code)
        self.assertIn("# Input dataclass definition\n@dataclass\nclass In:\n    x: int\n    name: str = 'n'\n", code)
        self.assertIn("# Output dataclass definition\n@dataclass\nclass Out:\n    y: int\n", code)
        self.assertIn("# User function\ndef f(input: In) -> Out:", code)
        self.assertIn("input_obj = In(**input_dict)", code)
        self.assertIn("result = f(input_obj)", code)
        self.assertTrue(code.endswith("_execute()"))
        compile(code, "main.py", "exec")  # valid Python

    def test_validation(self) -> None:
        @dataclasses.dataclass
        class A:
            a: int

        def no_return(x: A):  # type: ignore[no-untyped-def]
            return x

        def not_dc(x: int) -> A:
            return A(x)

        def no_param() -> A:
            return A(1)

        c = TakoVM()
        for func, value in ((no_return, A(1)), (not_dc, A(1)), (no_param, A(1)), (no_param, 1)):
            with self.subTest(func=func.__name__):
                with self.assertRaises(tako_client.ValidationError):
                    c.send(func, value)
        # send_raw takes the value's type when there is no parameter.
        self.assertEqual(c._types(no_param, A(1), strict=False), (A, A))


if __name__ == "__main__":
    unittest.main()

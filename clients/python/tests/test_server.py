"""tako_client against a real tako server, with real Docker and PostgreSQL.

The server is TAKO_URL, with the API key TAKO_API_KEY; clients/python_test.go
starts one and runs this suite. Without TAKO_URL every test here fails.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
from unittest import mock
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import tako_client
from tako_client import APIError, Client, TakoVM

# Generous bounds: a loaded 2-core machine starts containers slowly.
WAIT = 180.0


def server() -> "tuple[str, str]":
    url = os.environ.get("TAKO_URL", "")
    if not url:
        raise AssertionError("TAKO_URL (and TAKO_API_KEY) must name a running tako server: see clients/python_test.go")
    return url, os.environ.get("TAKO_API_KEY", "")


def unique(prefix: str) -> str:
    """An idempotency key no earlier run used."""
    return f"{prefix}-{uuid.uuid4().hex}"


class CountingClient(Client):
    """A Client that counts its requests by path."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.counts: Dict[str, int] = {}
        self._lock = threading.Lock()

    def _open(self, method: str, path: str, **kw: Any) -> Any:
        with self._lock:
            self.counts[path] = self.counts.get(path, 0) + 1
        return super()._open(method, path, **kw)


class ServerTest(unittest.TestCase):
    url = ""
    key = ""
    c: CountingClient

    @classmethod
    def setUpClass(cls) -> None:
        cls.url, cls.key = server()
        cls.c = CountingClient(cls.url, api_key=cls.key)

    def test_health_and_job_types(self) -> None:
        h = self.c.health()
        self.assertIn(h.status, ("healthy", "degraded"))
        self.assertTrue(h.docker_available, h)
        self.assertTrue(h.database_available, h)
        self.assertTrue(h.version)
        self.assertIsNotNone(h.checked_at)
        types = self.c.job_types()
        names = [t.name for t in types]
        self.assertIn("default", names)
        default = next(t for t in types if t.name == "default")
        self.assertGreater(default.timeout, 0)
        self.assertTrue(default.memory_limit)

    def test_execute(self) -> None:
        res = self.c.execute(
            "import json\nd = json.load(open('/input/data.json'))\nprint(d['a'] + 1)\n"
            "json.dump({'n': d['a'] * 2}, open('/output/result.json', 'w'))",
            input_data={"a": 1},
        )
        self.assertTrue(res.success, res)
        self.assertEqual(res.stdout, "2\n")
        self.assertEqual(res.output, {"n": 2})
        self.assertEqual(res.exit_code, 0)
        self.assertEqual(res.status, "succeeded")
        self.assertTrue(res.job_id)
        self.assertIsNone(res.error)

    def test_execute_failing_program_is_a_result(self) -> None:
        res = self.c.execute("import sys\nprint('oops', file=sys.stderr)\nsys.exit(3)", timeout=20)
        self.assertFalse(res.success)
        self.assertEqual(res.exit_code, 3)
        self.assertEqual(res.stderr, "oops\n")
        self.assertEqual(res.status, "failed")
        self.assertIsNotNone(res.error)
        res = self.c.execute("1/0")
        self.assertFalse(res.success)
        self.assertIn("ZeroDivisionError", res.stderr)

    def test_api_errors(self) -> None:
        with self.assertRaises(APIError) as cm:
            self.c.job("no-such-job")
        self.assertEqual(cm.exception.status, 404)
        self.assertEqual(cm.exception.detail, "Job not found")
        self.assertTrue(cm.exception.correlation_id)
        self.assertIn("404", str(cm.exception))

        with self.assertRaises(APIError) as cm:
            self.c.execute("print(1)", timeout=100000)
        self.assertEqual(cm.exception.status, 422)
        self.assertIn("timeout", cm.exception.detail)
        self.assertTrue(cm.exception.correlation_id)

        with self.assertRaises(APIError) as cm:
            self.c.submit("print(1)", idempotency_key="short")
        self.assertEqual(cm.exception.status, 422)
        self.assertIn("idempotency_key", cm.exception.detail)

        with self.assertRaises(APIError) as cm:
            Client(self.url, api_key="not-the-key-0123456789").job("x")
        self.assertEqual(cm.exception.status, 401)

    def test_submit_job_wait_artifact_rerun_fork(self) -> None:
        code = (
            "import json\nd = json.load(open('/input/data.json'))\n"
            "open('/output/a.txt', 'w').write('hello ' + d['who'])\nprint('made')"
        )
        key = unique("py-artifact")
        first = self.c.submit(code, input_data={"who": "tako"}, idempotency_key=key)
        again = self.c.submit(code, input_data={"who": "tako"}, idempotency_key=key)
        self.assertTrue(first.job_id)
        self.assertEqual(again.job_id, first.job_id, "same idempotency key, same job")
        with self.assertRaises(APIError) as cm:
            self.c.submit("print('other')", input_data={"who": "tako"}, idempotency_key=key)
        self.assertEqual(cm.exception.status, 409)

        st = self.c.job(first.job_id)
        self.assertEqual(st.job_id, first.job_id)
        self.assertIsNotNone(st.created_at)
        self.assertIn(st.status, ("queued", "running", "succeeded"))

        res = self.c.wait(first.job_id, timeout=WAIT)
        self.assertTrue(res.success, res)
        self.assertEqual(res.stdout, "made\n")
        self.assertEqual([a.name for a in res.artifacts], ["a.txt"])
        self.assertIsNotNone(res.finished_at)
        self.assertEqual(res.idempotency_key, key)
        self.assertTrue(self.c.job(first.job_id).terminal)

        dl = self.c.artifact(first.job_id, "a.txt")
        self.assertFalse(dl.not_modified)
        self.assertEqual(dl.content, b"hello tako")
        self.assertEqual(dl.etag, '"' + res.artifacts[0].sha256 + '"')
        same = self.c.artifact(first.job_id, "a.txt", etag=dl.etag)
        self.assertTrue(same.not_modified)
        self.assertIsNone(same.content)
        self.assertIsNone(same.body)
        self.assertEqual(same.etag, dl.etag)
        changed = self.c.artifact(first.job_id, "a.txt", etag='"0000"')
        self.assertFalse(changed.not_modified)
        self.assertEqual(changed.content, b"hello tako")
        with self.c.artifact(first.job_id, "a.txt", stream=True) as streamed:
            self.assertIsNotNone(streamed.body)
            assert streamed.body is not None
            self.assertEqual(streamed.body.read(), b"hello tako")
        with self.assertRaises(APIError) as cm:
            self.c.artifact(first.job_id, "missing.txt")
        self.assertEqual(cm.exception.status, 404)

        rerun = self.c.rerun(first.job_id)
        self.assertNotEqual(rerun.job_id, first.job_id)
        self.assertEqual(rerun.parent_id, first.job_id)
        self.assertEqual(rerun.relationship, "rerun")
        fork = self.c.fork(first.job_id, "import json\nprint('fork of', json.load(open('/input/data.json'))['who'])")
        self.assertEqual(fork.relationship, "fork")
        for job_id, want in ((rerun.job_id, "made\n"), (fork.job_id, "fork of tako\n")):
            r = self.c.wait(job_id, timeout=WAIT)
            self.assertEqual(r.stdout, want)
            self.assertEqual(r.parent_id, first.job_id)

    def test_wait_past_the_wait_cap(self) -> None:
        job = self.c.submit("import time\ntime.sleep(4)\nprint('late')")
        short = CountingClient(self.url, api_key=self.key)
        # The server's cap is 300 s a request (hard-coded, api/query.go):
        # as if it were 1 s, wait must ask again and again.
        short._wait_cap = 1.0
        res = short.wait(job.job_id, timeout=WAIT)
        self.assertEqual(res.stdout, "late\n")
        polls = short.counts.get(f"/jobs/{job.job_id}/result", 0)
        self.assertGreaterEqual(polls, 3, "polls")

        # The caller's own timeout that runs out is the server's 408.
        job = self.c.submit("import time\ntime.sleep(30)", timeout=30)
        started = time.monotonic()
        with self.assertRaises(APIError) as cm:
            self.c.wait(job.job_id, timeout=1.5)
        self.assertEqual(cm.exception.status, 408)
        self.assertLess(time.monotonic() - started, 60)
        status = self.c.cancel(job.job_id)
        self.assertEqual(status, "cancelled")

    def test_stream_resumes(self) -> None:
        job = self.c.submit("import time\nfor i in range(4):\n    print('line', i)\n    time.sleep(0.7)")
        out: List[str] = []
        types: List[str] = []
        last = ""
        events = self.c.stream(job.job_id)
        for ev in events:
            types.append(ev.type)
            last = ev.id
            if ev.type == tako_client.EVENT_STDOUT:
                out.append(ev.text)
                break  # leave, as a dropped connection
        events.close()
        final = ""
        result: Optional[tako_client.Execution] = None
        for ev in self.c.stream(job.job_id, last_event_id=last):
            types.append(ev.type)
            if ev.type == tako_client.EVENT_STDOUT:
                out.append(ev.text)
            elif ev.type == tako_client.EVENT_RESULT:
                result = ev.result
            elif ev.type == tako_client.EVENT_DONE:
                final = ev.status
        self.assertEqual("".join(out), "line 0\nline 1\nline 2\nline 3\n", types)
        self.assertEqual(final, "succeeded")
        self.assertEqual(types[0], "queued")
        self.assertEqual(types[-1], "done")
        self.assertIsNotNone(result)
        assert result is not None
        self.assertTrue(result.success)

        # Replayed from the record after the end, from the start.
        replay = [ev.type for ev in self.c.stream(job.job_id)]
        self.assertEqual(replay[0], "queued")
        self.assertEqual(replay[-1], "done")

        with self.assertRaises(APIError) as cm:
            next(iter(self.c.stream("no-such-job")))
        self.assertEqual(cm.exception.status, 404)

    def test_cancel(self) -> None:
        job = self.c.submit("import time\nprint('started', flush=True)\ntime.sleep(60)", timeout=30)
        for ev in self.c.stream(job.job_id):
            if ev.type == tako_client.EVENT_STDOUT:
                break  # it runs
        self.assertEqual(self.c.cancel(job.job_id), "cancelled")
        res = self.c.wait(job.job_id, timeout=WAIT)
        self.assertEqual(res.status, "cancelled")
        self.assertFalse(res.success)
        with self.assertRaises(APIError) as cm:
            self.c.cancel(job.job_id)
        self.assertEqual(cm.exception.status, 404)

    def test_executions_pages(self) -> None:
        want = [self.c.submit(f"print({i})").job_id for i in range(5)]
        for job_id in want:
            self.c.wait(job_id, timeout=WAIT)
        before = self.c.counts.get("/executions", 0)
        seen: List[str] = []
        for e in self.c.executions(status="succeeded", page_size=2):
            self.assertNotIn(e.job_id, seen)
            self.assertEqual(e.status, "succeeded")
            seen.append(e.job_id)
        pages = self.c.counts.get("/executions", 0) - before
        self.assertEqual(seen[:5], list(reversed(want)), "newest first")
        self.assertGreaterEqual(pages, (len(seen) + 1) // 2)
        # Stopping early fetches no more.
        before = self.c.counts.get("/executions", 0)
        it = self.c.executions(page_size=2)
        self.assertEqual(len([next(it), next(it)]), 2)
        it.close()
        self.assertEqual(self.c.counts.get("/executions", 0) - before, 1)
        with self.assertRaises(APIError) as cm:
            list(self.c.executions(status="nonsense"))
        self.assertEqual(cm.exception.status, 422)


class LosingProxy:
    """A proxy to the real server that loses the server's first answer and
    says 503 with Retry-After instead, as a load balancer might: the job
    exists, the client does not know it."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.lost: List[bytes] = []
        self.requests = 0
        self.lose_next = True
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
                req = urllib.request.Request(proxy.target + self.path, data=body, method="POST", headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=60) as resp:
                        status, answer = resp.status, resp.read()
                except urllib.error.HTTPError as e:
                    status, answer = e.code, e.read()
                proxy.requests += 1
                if proxy.lose_next:
                    proxy.lose_next = False
                    proxy.lost.append(answer)
                    self.send_response(503)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"detail": "upstream unavailable"}')
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RetryTest(unittest.TestCase):
    def test_submit_retried_on_503_with_an_idempotency_key(self) -> None:
        url, key = server()
        proxy = LosingProxy(url)
        self.addCleanup(proxy.close)
        c = Client(proxy.url, api_key=key)
        started = time.monotonic()
        job = c.submit("print('once')", idempotency_key=unique("py-retry-503"))
        self.assertGreaterEqual(time.monotonic() - started, 0.9, "Retry-After: 1 is honoured")
        self.assertEqual(proxy.requests, 2)
        self.assertEqual(json.loads(proxy.lost[0])["job_id"], job.job_id, "the retry finds the same job")

        # Without a key the 503 is the caller's to handle: no retry.
        proxy.lose_next = True
        proxy.requests = 0
        with self.assertRaises(APIError) as cm:
            c.submit("print('once')")
        self.assertEqual(cm.exception.status, 503)
        self.assertEqual(cm.exception.retry_after, 1.0)
        self.assertEqual(proxy.requests, 1)
        # Nor is execute retried: the server may have run it.
        proxy.lose_next = True
        proxy.requests = 0
        with self.assertRaises(APIError):
            c.execute("print('once')")
        self.assertEqual(proxy.requests, 1)


# The original SDK's example (tako_vm/sdk/client.py's docstring and its
# docs' quick start), as its users write it.
@dataclass
class InputStruct:
    args1: int
    args2: int


@dataclass
class OutputStruct:
    return1: int


def my_func(input: InputStruct) -> OutputStruct:
    print("adding", input.args1, input.args2)
    return OutputStruct(return1=input.args1 + input.args2)


def divide_by_zero(input: InputStruct) -> OutputStruct:
    return OutputStruct(return1=input.args1 // 0)


class TakoVMTest(unittest.TestCase):
    def setUp(self) -> None:
        self.url, self.key = server()

    def test_readme_example_through_the_module(self) -> None:
        import tako_client as tako_vm  # the only change to the original's code

        tako_vm.configure(self.url, api_key=self.key)
        result = tako_vm.send(my_func, InputStruct(1, 2))
        self.assertEqual(result, OutputStruct(return1=3))
        self.assertEqual(result.return1, 3)

    def test_send_and_send_raw(self) -> None:
        client = TakoVM(self.url, api_key=self.key)
        self.assertEqual(client.send(my_func, InputStruct(20, 22), timeout=20), OutputStruct(42))
        with self.assertRaises(tako_client.ExecutionError) as cm:
            client.send(divide_by_zero, InputStruct(1, 2))
        self.assertIn("ZeroDivisionError", str(cm.exception) + cm.exception.stderr)

        raw = client.send_raw(my_func, InputStruct(2, 3), job_type="default")
        self.assertTrue(raw.success)
        self.assertEqual(raw.output, OutputStruct(5))
        self.assertEqual(raw.stdout, "adding 2 3\n")
        self.assertGreater(raw.execution_time, 0)
        self.assertEqual(raw.job_type, "default")
        failed = client.send_raw(divide_by_zero, InputStruct(1, 2))
        self.assertFalse(failed.success)
        self.assertTrue(failed.error)
        self.assertIsNone(failed.output)

        with self.assertRaises(tako_client.ValidationError):
            client.send(my_func, {"args1": 1, "args2": 2})  # type: ignore[arg-type]

    def test_env_api_key_and_server_methods(self) -> None:
        with mock.patch.dict(os.environ, {"TAKO_API_KEY": self.key}):
            client = TakoVM(self.url)  # the original's signature
        h = client.health()
        self.assertIn(h["status"], ("healthy", "degraded"))
        names = [t["name"] for t in client.list_job_types()]
        self.assertIn("default", names)
        self.assertEqual(client.get_job_type("default")["name"], "default")
        with self.assertRaises(APIError) as cm:
            client.get_job_type("no-such-type")
        self.assertEqual(cm.exception.status, 404)

    def test_request_failure_is_a_failed_result(self) -> None:
        bad = TakoVM(self.url, api_key="not-the-key-0123456789")
        res = bad.send_raw(my_func, InputStruct(1, 2))
        self.assertFalse(res.success)
        self.assertIn("Request failed", str(res.error))
        with self.assertRaises(tako_client.ExecutionError):
            bad.send(my_func, InputStruct(1, 2))


if __name__ == "__main__":
    unittest.main()

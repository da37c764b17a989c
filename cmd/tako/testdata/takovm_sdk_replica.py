"""A replica of what Tako VM's Python SDK (tako_vm/sdk/client.py) sends and
expects, written for tako's tests: the same routes, bodies and headers, and
the same way of turning a typed function into a program. It is not the SDK's
code; it behaves as the SDK does, so that tako is held to it.

Usage: python3 takovm_sdk_replica.py BASE_URL
Prints one line per check and exits non-zero when any fails.
"""

import dataclasses
from dataclasses import dataclass
import inspect
import json
import sys
import textwrap
import typing

try:  # the SDK's HTTP client, when this machine has it
    import requests
except ImportError:  # the standard library, sending the same request
    requests = None
    import urllib.error
    import urllib.request


class HTTPError(Exception):
    """An answer with a 4xx or 5xx status, as raise_for_status raises it."""

    def __init__(self, status, body):
        super().__init__(f"{status}: {body[:200]}")
        self.status = status


def http(method, url, payload=None, timeout=10):
    """Sends one request as the SDK does and returns the decoded JSON."""
    if requests is not None:
        r = requests.request(method, url, json=payload, timeout=timeout)
        if r.status_code >= 400:
            raise HTTPError(r.status_code, r.text)
        return r.json()
    data, headers = None, {"Accept": "*/*"}
    if payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise HTTPError(e.code, e.read().decode(errors="replace")) from None


@dataclasses.dataclass
class Result:
    """The SDK's ExecutionResult."""

    success: bool
    output: typing.Any
    execution_time: float
    stdout: str
    stderr: str
    error: typing.Optional[typing.Any] = None
    job_type: typing.Optional[str] = None


class ExecutionFailed(Exception):
    """What the SDK's send raises when the program fails."""

    def __init__(self, message, stdout="", stderr=""):
        super().__init__(message)
        self.stdout, self.stderr = stdout, stderr


class Client:
    """The SDK's TakoVM client: send, send_raw, health and the job types."""

    def __init__(self, base_url, timeout=30):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _types(self, func):
        hints = typing.get_type_hints(func)
        out_cls = hints.pop("return")
        in_cls = next(iter(hints.values()))
        return in_cls, out_cls

    def _program(self, func, in_cls, out_cls):
        # The SDK sends the dataclasses' and the function's own source, then
        # a wrapper that reads /input/data.json, calls the function and
        # writes its dataclass to /output/result.json.
        parts = ["from dataclasses import dataclass, asdict", "import json"]
        for obj in (in_cls, out_cls, func):
            parts.append(textwrap.dedent(inspect.getsource(obj)))
        parts.append(textwrap.dedent(f"""
            def _execute():
                with open("/input/data.json") as f:
                    args = json.load(f)
                result = {func.__name__}({in_cls.__name__}(**args))
                with open("/output/result.json", "w") as f:
                    json.dump(asdict(result), f)

            _execute()
        """))
        return "\n\n".join(parts).strip()

    def _execute(self, code, input_dict, timeout, job_type):
        payload = {"code": code, "input_data": input_dict}
        if timeout is not None:
            payload["timeout"] = timeout
        if job_type is not None:
            payload["job_type"] = job_type
        data = http("POST", self.base_url + "/execute", payload, timeout=(timeout or self.timeout) + 10)
        return Result(
            success=data.get("success", False),
            output=data.get("output"),
            execution_time=data.get("execution_time", 0),
            stdout=data.get("stdout", ""),
            stderr=data.get("stderr", ""),
            error=data.get("error"),
            job_type=data.get("job_type"),
        )

    def send(self, func, input_data, timeout=None, job_type=None):
        in_cls, out_cls = self._types(func)
        res = self._execute(self._program(func, in_cls, out_cls), dataclasses.asdict(input_data), timeout, job_type)
        if not res.success:
            raise ExecutionFailed(str(res.error or "Execution failed"), res.stdout, res.stderr)
        return out_cls(**res.output)

    def send_raw(self, func, input_data, timeout=None, job_type=None):
        in_cls, out_cls = self._types(func)
        res = self._execute(self._program(func, in_cls, out_cls), dataclasses.asdict(input_data), timeout, job_type)
        if res.success and res.output:
            try:
                res.output = out_cls(**res.output)
            except (TypeError, ValueError, KeyError):
                pass
        return res

    def health(self):
        return http("GET", self.base_url + "/health")

    def list_job_types(self):
        return http("GET", self.base_url + "/job-types")

    def get_job_type(self, name):
        return http("GET", self.base_url + "/job-types/" + name)


# The SDK's own example, written as its users write it: the program the
# SDK generates imports dataclass under that name.
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


JOB_TYPE_FIELDS = {
    "name": str, "requirements": list, "python_version": (str, type(None)), "memory_limit": str,
    "cpu_limit": (int, float), "timeout": int, "session_enabled": bool, "gpu_enabled": bool,
    "gpu_vendor": (str, type(None)), "image_exists": bool,
}


def main():
    client = Client(sys.argv[1])
    failures = []

    def check(name, ok, detail=""):
        print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)))
        if not ok:
            failures.append(name)

    out = client.send(my_func, InputStruct(1, 2))
    check("send returns the output dataclass", out == OutputStruct(return1=3), out)

    try:
        client.send(divide_by_zero, InputStruct(1, 2))
        check("send raises when the program fails", False, "no exception")
    except ExecutionFailed as e:
        check("send raises when the program fails", "ZeroDivisionError" in str(e) + e.stderr, (str(e), e.stderr))

    raw = client.send_raw(my_func, InputStruct(20, 22), timeout=20, job_type="data")
    check("send_raw with a job type and timeout", raw.success and raw.output == OutputStruct(return1=42)
          and raw.stdout == "adding 20 22\n" and raw.execution_time > 0 and raw.job_type == "data", raw)

    failed = client.send_raw(divide_by_zero, InputStruct(1, 2))
    check("send_raw reports a failure", not failed.success and failed.error and failed.output is None, failed)

    h = client.health()
    check("health", h.get("status") in ("healthy", "degraded") and h.get("docker_available") is True
          and isinstance(h.get("version"), str) and isinstance(h.get("queue_stats"), dict), h)

    types = client.list_job_types()
    names = [t.get("name") for t in types] if isinstance(types, list) else []
    check("list_job_types", "default" in names and "data" in names, types)
    for t in types if isinstance(types, list) else []:
        bad = {k: t.get(k) for k, typ in JOB_TYPE_FIELDS.items() if not isinstance(t.get(k), typ)}
        check(f"job type {t.get('name')} has the SDK's fields", not bad, bad)

    one = client.get_job_type("default")
    check("get_job_type", one.get("name") == "default" and one.get("session_enabled") is False, one)
    try:
        client.get_job_type("no-such-type")
        check("get_job_type of an unknown one raises", False, "no exception")
    except HTTPError as e:
        check("get_job_type of an unknown one raises", e.status == 404, e)

    print(f"{'requests' if requests else 'urllib'}: {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

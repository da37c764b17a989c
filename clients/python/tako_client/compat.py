"""TakoVM: the surface of Tako VM's Python SDK (tako_vm.sdk), so that code
written for it runs against tako by changing only its import::

    import tako_client as tako_vm          # was: import tako_vm
    from tako_client import TakoVM         # was: from tako_vm import TakoVM

send turns a typed function into a program by the original's rules: the
program defines the input and output dataclasses (their source, or one
made from their fields when the source cannot be read) and the function,
then a wrapper that reads /input/data.json into the input dataclass, calls
the function and writes its result, as a dict, to /output/result.json. It
is sent as a plain POST /execute with code, input_data, and timeout and
job_type when given.

Beyond the original, TakoVM takes an api_key (or reads TAKO_API_KEY), for a
tako server that requires one.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import textwrap
import typing
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from .client import Client
from .errors import TakoError

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")

_DEFAULT_URL = "http://localhost:8000"


@dataclass
class ExecutionResult:
    """What send_raw returns, as the original SDK's ExecutionResult. error is
    the server's error as it sent it (tako: a dict with type and message)."""

    success: bool
    output: Any
    execution_time: float
    stdout: str
    stderr: str
    error: Optional[Any] = None
    job_type: Optional[str] = None


class TakoVMError(Exception):
    """The base of the original SDK's exceptions."""


class SDKExecutionError(TakoVMError):
    """send raises it when the program failed (or the request did), with the
    error as its message and the program's stdout and stderr."""

    def __init__(self, message: Any, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.stdout = stdout
        self.stderr = stderr


#: The original's name for SDKExecutionError.
ExecutionError = SDKExecutionError


class ValidationError(TakoVMError):
    """The function's types are not dataclasses, or the output does not fit
    the output dataclass."""


def _is_dataclass_type(t: Any) -> bool:
    return inspect.isclass(t) and dataclasses.is_dataclass(t)


class TakoVM:
    """A client with the original SDK's methods.

    Args:
        base_url: the server.
        timeout: the default execution timeout in seconds; the HTTP timeout
            of send is the execution's timeout (or this one) plus 10 s, as
            in the original.
        api_key: tako's API key (not in the original); None reads the
            TAKO_API_KEY environment variable, and sends none when unset.
    """

    def __init__(self, base_url: str = _DEFAULT_URL, timeout: int = 30, api_key: Optional[str] = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.default_timeout = timeout
        if api_key is None:
            api_key = os.environ.get("TAKO_API_KEY") or None
        # The original SDK does not retry; neither does this.
        self._client = Client(self.base_url, api_key=api_key, timeout=10, retries=0)

    # --- typed functions ---------------------------------------------------

    def send(
        self,
        func: Callable[[InputT], OutputT],
        input_data: InputT,
        timeout: Optional[int] = None,
        job_type: Optional[str] = None,
    ) -> OutputT:
        """Runs func(input_data) in a container and returns its output
        dataclass. Raises ValidationError when the types do not fit, and
        ExecutionError when the program (or the request) failed."""
        in_cls, out_cls = self._types(func, input_data, strict=True)
        res = self._run(self._program(func, in_cls, out_cls), input_data, timeout, job_type)
        if not res.success:
            raise ExecutionError(res.error or "Execution failed", stdout=res.stdout, stderr=res.stderr)
        try:
            return typing.cast(OutputT, out_cls(**res.output))
        except (TypeError, ValueError) as e:
            raise ValidationError(f"Failed to deserialize output to {out_cls.__name__}: {e}") from e

    def send_raw(
        self,
        func: Callable[[InputT], OutputT],
        input_data: InputT,
        timeout: Optional[int] = None,
        job_type: Optional[str] = None,
    ) -> ExecutionResult:
        """send, but returns the ExecutionResult instead of raising when the
        program or the request failed; its output is the output dataclass
        when it fits, else the dict the program wrote."""
        in_cls, out_cls = self._types(func, input_data, strict=False)
        res = self._run(self._program(func, in_cls, out_cls), input_data, timeout, job_type)
        if res.success and res.output:
            try:
                res.output = out_cls(**res.output)
            except (TypeError, ValueError, KeyError):
                pass  # kept as the dict
        return res

    def _types(self, func: Callable[..., Any], input_data: Any, strict: bool) -> Tuple[type, type]:
        """The function's input and output dataclasses, checked as the
        original checks them. send_raw (strict False) takes the input
        value's type when the function has no typed parameter."""
        if not dataclasses.is_dataclass(input_data) or isinstance(input_data, type):
            raise ValidationError(f"input_data must be a dataclass instance, got {type(input_data)}")
        hints = typing.get_type_hints(func)
        if "return" not in hints:
            raise ValidationError("Function must have a return type hint")
        out_t = hints["return"]
        params = [name for name in hints if name != "return"]
        if strict:
            if not _is_dataclass_type(out_t):
                raise ValidationError(f"Return type must be a dataclass, got {out_t}")
            if not params:
                raise ValidationError("Function must have at least one parameter")
            in_t = hints[params[0]]
        else:
            in_t = hints[params[0]] if params else type(input_data)
            if not _is_dataclass_type(out_t):
                raise ValidationError(f"Return type must be a dataclass, got {out_t}")
        if not _is_dataclass_type(in_t):
            raise ValidationError(f"Input parameter must be a dataclass type, got {in_t}")
        return in_t, out_t

    def _program(self, func: Callable[..., Any], in_cls: type, out_cls: type) -> str:
        """The program send runs, by the original's rules."""
        sections = [
            "from dataclasses import dataclass, asdict\nimport json",
            "# Input dataclass definition\n" + _class_source(in_cls),
            "# Output dataclass definition\n" + _class_source(out_cls),
            "# User function\n" + textwrap.dedent(inspect.getsource(func)),
            "# Execution wrapper\n" + _WRAPPER.format(input_cls=in_cls.__name__, func=func.__name__),
        ]
        return "\n\n".join(s.rstrip("\n") + "\n" for s in sections).strip()

    def _run(self, code: str, input_data: Any, timeout: Optional[int], job_type: Optional[str]) -> ExecutionResult:
        """POSTs the program; a request that failed is a failed result whose
        error says so, as in the original."""
        inputs: Dict[str, Any] = dataclasses.asdict(input_data)
        try:
            ex = self._client.execute(
                code,
                input_data=inputs,
                timeout=timeout,
                job_type=job_type,
                http_timeout=(timeout or self.default_timeout) + 10,
            )
        except TakoError as e:
            return ExecutionResult(False, None, 0, "", "", error=f"Request failed: {e}")
        d = ex.raw
        return ExecutionResult(
            success=bool(d.get("success", False)),
            output=d.get("output"),
            execution_time=d.get("execution_time", 0),
            stdout=d.get("stdout", ""),
            stderr=d.get("stderr", ""),
            error=d.get("error"),
            job_type=d.get("job_type"),
        )

    # --- the server --------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        """GET /health, as a dict. Raises APIError on an error status."""
        return typing.cast(Dict[str, Any], self._client._json("GET", "/health", timeout=10))

    def list_job_types(self) -> List[Dict[str, Any]]:
        """GET /job-types: the job types, as dicts."""
        return typing.cast(List[Dict[str, Any]], self._client._json("GET", "/job-types", timeout=10))

    def get_job_type(self, name: str) -> Dict[str, Any]:
        """GET /job-types/{name}, as a dict; an unknown one is a 404
        APIError."""
        path = "/job-types/" + urllib.parse.quote(name, safe="")
        return typing.cast(Dict[str, Any], self._client._json("GET", path, timeout=10))


# The wrapper that runs the function, by the original's rules.
_WRAPPER = '''def _execute():
    # Read input
    with open("/input/data.json") as f:
        input_dict = json.load(f)

    # Deserialize to input dataclass
    input_obj = {input_cls}(**input_dict)

    # Execute function
    result = {func}(input_obj)

    # Serialize output
    output_dict = asdict(result)

    # Write output
    with open("/output/result.json", "w") as f:
        json.dump(output_dict, f)

_execute()'''


def _class_source(cls: type) -> str:
    """A dataclass's own source, dedented; when it cannot be read (made at
    run time, in an interactive session), a definition from its fields:
    each field with its type's name, and its default when it has a plain
    one."""
    try:
        return textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        pass
    out = ["@dataclass", f"class {cls.__name__}:"]
    for f in dataclasses.fields(cls):
        type_name = getattr(f.type, "__name__", None) or str(f.type)
        line = f"    {f.name}: {type_name}"
        if f.default_factory is dataclasses.MISSING and f.default is not dataclasses.MISSING:
            line += f" = {f.default!r}"
        out.append(line)
    return "\n".join(out)


# The module-level client of configure and the functions below.
_default: Optional[TakoVM] = None


def configure(base_url: str = _DEFAULT_URL, timeout: int = 30, api_key: Optional[str] = None) -> None:
    """Sets the client the module-level send, send_raw, list_job_types and
    get_job_type use."""
    global _default
    _default = TakoVM(base_url=base_url, timeout=timeout, api_key=api_key)


def _client() -> TakoVM:
    global _default
    if _default is None:
        _default = TakoVM()
    return _default


def send(
    func: Callable[[InputT], OutputT],
    input_data: InputT,
    timeout: Optional[int] = None,
    job_type: Optional[str] = None,
) -> OutputT:
    """TakoVM.send on the configured client."""
    return _client().send(func, input_data, timeout, job_type)


def send_raw(
    func: Callable[[InputT], OutputT],
    input_data: InputT,
    timeout: Optional[int] = None,
    job_type: Optional[str] = None,
) -> ExecutionResult:
    """TakoVM.send_raw on the configured client."""
    return _client().send_raw(func, input_data, timeout, job_type)


def list_job_types() -> List[Dict[str, Any]]:
    """TakoVM.list_job_types on the configured client."""
    return _client().list_job_types()


def get_job_type(name: str) -> Dict[str, Any]:
    """TakoVM.get_job_type on the configured client."""
    return _client().get_job_type(name)

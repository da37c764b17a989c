"""Client: tako's whole HTTP API, synchronously, with the standard library.

A program that fails is a normal result (``Execution.success`` is False);
an exception is raised only when the request itself failed: APIError when
the server answered with an error status, TransportError when no answer
came.

Requests are retried only where that is safe, as tako's Go client does:
every GET, on connection errors and on 503 and 429 (honouring Retry-After);
submit only with an idempotency key; execute, cancel, rerun and fork only
when the connection could not be established, so the server cannot have
seen the request.
"""

from __future__ import annotations

import errno
import http.client
import json
import math
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

from .errors import APIError, TransportError, api_error_from
from .models import (
    EVENT_DONE,
    EVENT_ERROR,
    EVENT_RESULT,
    EVENT_STDERR,
    EVENT_STDOUT,
    ArtifactDownload,
    Event,
    ExecError,
    Execution,
    Health,
    JobStatus,
    JobType,
)

#: The header the server reads API keys from unless configured otherwise
#: (auth.header).
DEFAULT_API_KEY_HEADER = "X-API-Key"

#: How many times a request that may be retried is tried again.
DEFAULT_RETRIES = 3

#: The HTTP timeout, in seconds, of a request that does not wait by design.
DEFAULT_TIMEOUT = 30.0

# The longest long poll the server accepts (timeout=300).
_SERVER_WAIT_CAP = 300.0
# The longest wait between retries without Retry-After.
_MAX_BACKOFF = 5.0
# A longer Retry-After is not waited for: the caller decides.
_MAX_RETRY_AFTER = 30.0
# The server sends a ping every 15 s: a stream silent this long is dead.
_MIN_STREAM_IDLE = 40.0
# Bounds one event (a "result" carries the whole record).
_MAX_EVENT_BYTES = 32 << 20

# Retry policies.
_RETRY_DIAL = "dial"  # only when no connection was made
_RETRY_SAFE = "safe"  # also when the request may have reached the server


class _KeepErrors(urllib.request.HTTPErrorProcessor):
    """Hands every answer back as it is: the client reads error statuses
    itself, and 304 is a normal answer to If-None-Match."""

    def http_response(self, request: Any, response: Any) -> Any:
        return response

    https_response = http_response


def _not_connected(err: BaseException) -> bool:
    """Whether err means no connection to the server was made (a refused
    or failed dial, a name that did not resolve), so the server never saw
    the request."""
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        reason = err.reason
        if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
            return True
        if isinstance(reason, OSError) and reason.errno in (
            errno.ECONNREFUSED,
            errno.EHOSTUNREACH,
            errno.ENETUNREACH,
            errno.EADDRNOTAVAIL,
        ):
            return True
    return isinstance(err, (ConnectionRefusedError, socket.gaierror))


def _job_path(job_id: str, rest: str = "") -> str:
    return "/jobs/" + urllib.parse.quote(job_id, safe="") + rest


def _request_body(
    code: str,
    input_data: Optional[Mapping[str, Any]],
    job_type: Optional[str],
    timeout: Optional[int],
    startup_timeout: Optional[int],
    requirements: Optional[Sequence[str]],
    callback_url: Optional[str],
    network_allow: Optional[Sequence[str]],
    idempotency_key: Optional[str] = None,
) -> Dict[str, Any]:
    body: Dict[str, Any] = {"code": code}
    if input_data is not None:
        body["input_data"] = dict(input_data)
    if job_type:
        body["job_type"] = job_type
    if timeout is not None:
        body["timeout"] = timeout
    if startup_timeout is not None:
        body["startup_timeout"] = startup_timeout
    if requirements is not None:
        body["requirements"] = list(requirements)
    if callback_url:
        body["callback_url"] = callback_url
    if network_allow is not None:
        body["network"] = {"allow": list(network_allow)}
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    return body


class Client:
    """Calls one tako server. Safe to share between threads.

    Args:
        base_url: the server, such as "http://127.0.0.1:8000" (a path prefix
            is kept).
        api_key: sent with every request in api_key_header, when given.
        timeout: the HTTP timeout in seconds: how long to wait for a
            server's answer (socket connect and read). It is not the
            execution's timeout, which execute and submit take as their
            own ``timeout`` argument; None waits without limit. Calls that
            wait by design (execute, wait, stream) wait longer, as each
            says.
        retries: how many times a request that may be retried is tried
            again after its first attempt; 0 turns retries off.
        api_key_header: the header the key goes in, for a server whose
            auth.header is not X-API-Key.
    """

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        api_key_header: str = DEFAULT_API_KEY_HEADER,
    ) -> None:
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError(f"base url {base_url!r}: want http:// or https:// and a host")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if not api_key_header.strip():
            raise ValueError("api key header name is empty")
        self.base_url = urllib.parse.urlunsplit((u.scheme, u.netloc, u.path.rstrip("/"), "", ""))
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.api_key_header = api_key_header
        self._opener = urllib.request.build_opener(_KeepErrors())
        # Tests shorten these.
        self._backoff = 0.25  # first wait between retries without Retry-After
        self._max_retry_after = _MAX_RETRY_AFTER
        self._wait_cap = _SERVER_WAIT_CAP  # longest single long poll in wait
        self._sleep: Callable[[float], None] = time.sleep

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    # --- transport ---------------------------------------------------------

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Mapping[str, str]] = None,
        body: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        retry: str = _RETRY_SAFE,
        timeout: Optional[float] = -1.0,
    ) -> http.client.HTTPResponse:
        """Sends one API request, with the retries retry allows, and returns
        the response when its status is below 400 (the caller closes it).
        Any other status raises APIError; no answer raises TransportError.
        timeout -1 is the client's; None waits as long as the server takes."""
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode("utf-8")
        hdrs = {"Accept": "application/json", "User-Agent": "tako-client-python"}
        if headers:
            hdrs.update(headers)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        if self.api_key:
            hdrs[self.api_key_header] = self.api_key
        if timeout is not None and timeout < 0:
            timeout = self.timeout
        n = 0
        while True:
            req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
            err: BaseException
            try:
                resp = self._opener.open(req, timeout=timeout)
            except (OSError, http.client.HTTPException) as e:
                err = e
            else:
                if resp.status < 400:
                    return resp
                try:
                    raw = resp.read(64 << 10)
                except (OSError, http.client.HTTPException):
                    raw = b""
                finally:
                    resp.close()
                err = api_error_from(resp.status, resp.headers, raw)
            wait = self._retry_wait(retry, err, n)
            if wait is None:
                if isinstance(err, APIError):
                    raise err
                raise TransportError(f"{method} {path}: {err}") from err
            self._sleep(wait)
            n += 1

    def _retry_wait(self, policy: str, err: BaseException, n: int) -> Optional[float]:
        """How long to wait before retrying attempt n's error, or None when
        it may not be retried."""
        if n >= self.retries:
            return None
        backoff = min(self._backoff * (2 ** min(n, 16)), _MAX_BACKOFF)
        backoff = backoff / 2 + random.uniform(0, backoff / 2)  # spread clients out
        if isinstance(err, APIError):
            if policy != _RETRY_SAFE or err.status not in (429, 503):
                return None
            if err.retry_after is not None and err.retry_after > self._max_retry_after:
                return None  # the caller decides whether to wait that long
            if err.retry_after:
                return err.retry_after
            return backoff
        if _not_connected(err):
            return backoff
        if policy == _RETRY_SAFE:
            # Any other failure of a safe request is the transport's: a
            # connection that broke, a reset, a timeout.
            return backoff
        return None

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self._open(method, path, **kw)
        try:
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise TransportError(f"{method} {path}: read answer: {e}") from e
        finally:
            resp.close()
        try:
            return json.loads(raw)
        except ValueError as e:
            raise TransportError(f"{method} {path}: decode answer: {e}") from e

    # --- executions --------------------------------------------------------

    def execute(
        self,
        code: str,
        *,
        input_data: Optional[Mapping[str, Any]] = None,
        job_type: Optional[str] = None,
        timeout: Optional[int] = None,
        startup_timeout: Optional[int] = None,
        requirements: Optional[Sequence[str]] = None,
        callback_url: Optional[str] = None,
        network_allow: Optional[Sequence[str]] = None,
        http_timeout: Optional[float] = None,
    ) -> Execution:
        """Runs code and waits for its end (POST /execute).

        input_data becomes the program's /input/data.json; timeout is the
        execution's limit in whole seconds (None: the job type's);
        startup_timeout bounds the container's start (10 to 600 s);
        requirements are ad-hoc pip requirements; callback_url gets the
        result as a signed webhook; network_allow narrows the job type's
        egress allowlist.

        A program that failed is returned with success False. http_timeout
        bounds the wait for the answer in seconds; None (the default) waits
        as long as the server takes, which its own timeouts bound. It is
        retried only when no connection could be made: the server may
        otherwise have run it.
        """
        body = _request_body(code, input_data, job_type, timeout, startup_timeout, requirements, callback_url, network_allow)
        return Execution.from_json(self._json("POST", "/execute", body=body, retry=_RETRY_DIAL, timeout=http_timeout))

    def submit(
        self,
        code: str,
        *,
        input_data: Optional[Mapping[str, Any]] = None,
        job_type: Optional[str] = None,
        timeout: Optional[int] = None,
        startup_timeout: Optional[int] = None,
        requirements: Optional[Sequence[str]] = None,
        callback_url: Optional[str] = None,
        network_allow: Optional[Sequence[str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Execution:
        """Queues code (POST /execute/async) and returns the job, with its
        job_id and status; the arguments are execute's.

        With an idempotency_key (8 to 255 letters, digits, '_' and '-') a
        repeated submit returns the same job, so it is retried on connection
        errors, 503 and 429; without one it is retried only when no
        connection could be made.
        """
        body = _request_body(
            code, input_data, job_type, timeout, startup_timeout, requirements, callback_url, network_allow, idempotency_key
        )
        policy = _RETRY_SAFE if idempotency_key else _RETRY_DIAL
        return Execution.from_json(self._json("POST", "/execute/async", body=body, retry=policy))

    def job(self, job_id: str) -> JobStatus:
        """Returns where job job_id is (GET /jobs/{id})."""
        return JobStatus.from_json(self._json("GET", _job_path(job_id)))

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Execution:
        """Long-polls job job_id until it ends and returns its full record.

        It asks again each time the server's wait (at most 300 s a request)
        runs out, until timeout seconds have passed since the call (None:
        without end). When timeout runs out first, it raises the server's
        408 APIError.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            poll = self._wait_cap
            if deadline is not None:
                poll = min(poll, deadline - time.monotonic())
            # The server takes 1 to 300 seconds, fractions allowed.
            secs = max(math.ceil(poll * 1000) / 1000, 1.0)
            q = {"wait": "true", "timeout": f"{secs:g}"}
            try:
                d = self._json("GET", _job_path(job_id, "/result"), query=q, timeout=secs + (self.timeout or DEFAULT_TIMEOUT))
            except APIError as e:
                if e.status != 408:
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise
            else:
                ex = Execution.from_json(d)
                if ex.terminal:
                    return ex
                # Not ended yet (the server stopped waiting early): ask again.
            if deadline is not None and time.monotonic() >= deadline:
                raise APIError(408, "Timeout waiting for job")

    def cancel(self, job_id: str) -> str:
        """Cancels job job_id (POST /jobs/{id}/cancel) and returns its
        status after the cancel. A job that has already ended is a 404
        APIError, as one that does not exist."""
        d = self._json("POST", _job_path(job_id, "/cancel"), retry=_RETRY_DIAL)
        return str(d.get("status") or "")

    def rerun(self, job_id: str, *, job_type: Optional[str] = None, timeout: Optional[int] = None) -> Execution:
        """Queues the stored code and input of job job_id, which has ended,
        again (POST /jobs/{id}/rerun), optionally under another job type or
        execution timeout, and returns the new job."""
        body: Dict[str, Any] = {}
        if job_type:
            body["job_type"] = job_type
        if timeout is not None:
            body["timeout"] = timeout
        return Execution.from_json(self._json("POST", _job_path(job_id, "/rerun"), body=body, retry=_RETRY_DIAL))

    def fork(self, job_id: str, code: str, *, job_type: Optional[str] = None, timeout: Optional[int] = None) -> Execution:
        """Queues code with the stored input of job job_id (POST
        /jobs/{id}/fork) and returns the new job."""
        body: Dict[str, Any] = {"code": code}
        if job_type:
            body["job_type"] = job_type
        if timeout is not None:
            body["timeout"] = timeout
        return Execution.from_json(self._json("POST", _job_path(job_id, "/fork"), body=body, retry=_RETRY_DIAL))

    def artifact(self, job_id: str, name: str, *, etag: Optional[str] = None, stream: bool = False) -> ArtifactDownload:
        """Downloads the file name that job job_id left in /output (GET
        /jobs/{id}/artifacts/{name}).

        With etag (an ETag an earlier download returned) and the file
        unchanged, the answer is not_modified True and nothing is
        downloaded (If-None-Match, 304). Otherwise content holds the bytes,
        or, with stream=True, body is a file-like object the caller closes.
        An unknown job or file is a 404 APIError.
        """
        headers = {"Accept": "*/*"}
        if etag:
            headers["If-None-Match"] = etag
        resp = self._open("GET", _job_path(job_id, "/artifacts/" + urllib.parse.quote(name, safe="")), headers=headers)
        new_etag = resp.headers.get("ETag") or ""
        if resp.status == 304:
            resp.close()
            return ArtifactDownload(etag=new_etag or etag or "", not_modified=True)
        if stream:
            return ArtifactDownload(etag=new_etag, body=resp)
        try:
            content = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise TransportError(f"download artifact {name}: {e}") from e
        finally:
            resp.close()
        return ArtifactDownload(etag=new_etag, content=content)

    def executions(
        self,
        *,
        status: Optional[str] = None,
        job_type: Optional[str] = None,
        api_key: Optional[str] = None,
        page_size: Optional[int] = None,
    ) -> Iterator[Execution]:
        """Iterates over the history the caller may see, newest first (GET
        /executions), fetching page after page with the server's cursor,
        which is stable while new jobs arrive. Items are records without
        their artifacts. status, job_type and api_key (a key's name) filter;
        page_size (1 to 1000) is how many each request fetches, not a bound
        on the total. Stopping the iteration stops the fetching."""
        q: Dict[str, str] = {}
        if status:
            q["status"] = status
        if job_type:
            q["job_type"] = job_type
        if api_key:
            q["api_key"] = api_key
        if page_size:
            q["limit"] = str(page_size)
        while True:
            page = self._json("GET", "/executions", query=q)
            items = page.get("items") or []
            for item in items:
                yield Execution.from_json(item)
            cursor = page.get("next_cursor")
            if cursor is None or not items:
                return
            q["cursor"] = str(cursor)

    # --- live output -------------------------------------------------------

    def stream(self, job_id: str, last_event_id: Optional[str] = None) -> Iterator[Event]:
        """Follows job job_id's events (GET /jobs/{id}/events), from the
        start, or after last_event_id.

        The iteration ends after the "done" event. When the connection
        drops, or the server ends the stream early, it reconnects with
        Last-Event-ID, so no event is lost or repeated; it gives up after
        the client's retries fail in a row without an event, raising
        TransportError (APIError when the server refuses the stream).
        Closing the generator closes the connection.
        """
        last = last_event_id or ""
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last:
                headers["Last-Event-ID"] = last
            idle = max(self.timeout or 0, _MIN_STREAM_IDLE)
            resp = self._open("GET", _job_path(job_id, "/events"), headers=headers, timeout=idle)
            progressed = False
            err: Optional[BaseException] = None
            try:
                ctype = resp.headers.get("Content-Type") or ""
                if not ctype.startswith("text/event-stream"):
                    raise TransportError(f"stream job {job_id}: answer is {ctype!r}, not text/event-stream")
                for ev in _read_events(resp):
                    if ev.type == EVENT_ERROR and ev.error is not None and ev.error.type == "stream_error":
                        continue  # the stream broke off on the server's side; reconnect
                    progressed = True
                    last = ev.id or last
                    yield ev
                    if ev.type == EVENT_DONE:
                        return
            except (OSError, http.client.HTTPException, ValueError) as e:
                err = e
            finally:
                resp.close()
            if progressed:
                failures = 0
            else:
                failures += 1
                if failures > self.retries:
                    why = err if err is not None else "the stream ended before its done event"
                    raise TransportError(f"stream job {job_id}: {why}") from err

    # --- the server --------------------------------------------------------

    def health(self) -> Health:
        """Returns the server's health. A degraded server is a normal answer
        (status "degraded"), not an error."""
        return Health.from_json(self._json("GET", "/health"))

    def job_types(self) -> List[JobType]:
        """Returns the server's job types."""
        return [JobType.from_json(d) for d in self._json("GET", "/job-types")]


def _read_events(resp: Any) -> Iterator[Event]:
    """Parses text/event-stream from resp. Comments and retry fields are
    skipped; an event without data is not dispatched, as the SSE
    specification says; a cut-off event at the end is dropped."""
    ev_id, ev_type = "", ""
    data: List[str] = []
    size = 0
    has = False
    while True:
        raw = resp.readline(_MAX_EVENT_BYTES + 1)
        if not raw:
            return  # end of stream; an unfinished event is not dispatched
        if len(raw) > _MAX_EVENT_BYTES:
            raise ValueError(f"event line over {_MAX_EVENT_BYTES} bytes")
        if not raw.endswith(b"\n"):
            return  # a cut-off line
        line = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
        if line == "":
            if has:
                yield _decode_event(ev_id, ev_type or "message", "\n".join(data))
            ev_type, data, size, has = "", [], 0, False
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "":
            continue  # a comment, such as ": ping"
        if name == "id":
            ev_id = value
        elif name == "event":
            ev_type = value
        elif name == "data":
            has = True
            data.append(value)
            size += len(value) + 1
            if size > _MAX_EVENT_BYTES:
                raise ValueError(f"event over {_MAX_EVENT_BYTES} bytes")


def _decode_event(ev_id: str, ev_type: str, text: str) -> Event:
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = text
    ev = Event(id=ev_id, type=ev_type, data=data)
    if not isinstance(data, dict):
        return ev
    if ev_type in (EVENT_STDOUT, EVENT_STDERR):
        ev.text = str(data.get("data") or "")
    elif ev_type == EVENT_RESULT:
        ev.result = Execution.from_json(data)
    elif ev_type == EVENT_ERROR:
        ev.error = ExecError.from_json(data)
    elif ev_type == EVENT_DONE:
        ev.status = str(data.get("status") or "")
    return ev

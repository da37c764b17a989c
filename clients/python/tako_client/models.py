"""The values tako's API answers with, as dataclasses.

Each keeps the whole decoded JSON in ``raw``, so a field a newer server adds
is never lost. Timestamps are timezone-aware datetimes.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Dict, List, Optional

#: The statuses an execution ends in: it will not change again.
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "timeout", "oom", "cancelled"})

_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: Any) -> Optional[_dt.datetime]:
    """Parses an RFC 3339 timestamp as the server writes it (``Z`` and up
    to nanoseconds included), for Python 3.9's fromisoformat. None and
    unreadable values are None."""
    if not isinstance(value, str) or not value:
        return None
    s = value.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    s = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], s, count=1)
    try:
        return _dt.datetime.fromisoformat(s)
    except ValueError:
        return None


def is_terminal(status: str) -> bool:
    """Reports whether status is an end state."""
    return status in TERMINAL_STATUSES


@dataclass
class ExecError:
    """How a program failed, or why tako ended it: type is one of the
    server's error types ("runtime_error", "timeout", "oom", "cancelled",
    ...)."""

    type: str
    message: str

    @classmethod
    def from_json(cls, d: Any) -> Optional["ExecError"]:
        if not isinstance(d, dict):
            return None
        return cls(type=str(d.get("type") or ""), message=str(d.get("message") or ""))


@dataclass
class ArtifactInfo:
    """A file the program left in /output."""

    name: str
    sha256: str
    size_bytes: int
    content_type: str

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "ArtifactInfo":
        return cls(
            name=d.get("name", ""),
            sha256=d.get("sha256", ""),
            size_bytes=int(d.get("size_bytes") or 0),
            content_type=d.get("content_type", ""),
        )


@dataclass
class Execution:
    """An execution as execute, wait, the history and the "result" event
    return it; for submit, rerun and fork, the little the server says of a
    new job (job_id, status and, for the latter two, parent_id and
    relationship). success is False when the program failed."""

    job_id: str
    status: str
    success: bool = False
    output: Any = None
    stdout: str = ""
    stderr: str = ""
    exit_code: Optional[int] = None
    execution_time: float = 0.0
    job_type: str = ""
    error: Optional[ExecError] = None
    runtime: str = ""
    start: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    artifacts_truncated: bool = False
    timing: Dict[str, float] = field(default_factory=dict)
    created_at: Optional[_dt.datetime] = None
    started_at: Optional[_dt.datetime] = None
    finished_at: Optional[_dt.datetime] = None
    duration_ms: Optional[float] = None
    idempotency_key: Optional[str] = None
    attempt: int = 0
    node: str = ""
    image: str = ""
    requirements: List[str] = field(default_factory=list)
    parent_id: Optional[str] = None
    relationship: Optional[str] = None
    correlation_id: str = ""
    api_key: Optional[str] = None
    artifacts: List[ArtifactInfo] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        """Whether the execution has ended."""
        return is_terminal(self.status)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Execution":
        return cls(
            job_id=d.get("job_id") or d.get("execution_id") or "",
            status=d.get("status") or "",
            success=bool(d.get("success", False)),
            output=d.get("output"),
            stdout=d.get("stdout") or "",
            stderr=d.get("stderr") or "",
            exit_code=d.get("exit_code"),
            execution_time=float(d.get("execution_time") or 0),
            job_type=d.get("job_type") or "",
            error=ExecError.from_json(d.get("error")),
            runtime=d.get("runtime") or "",
            start=d.get("start") or "",
            stdout_truncated=bool(d.get("stdout_truncated", False)),
            stderr_truncated=bool(d.get("stderr_truncated", False)),
            artifacts_truncated=bool(d.get("artifacts_truncated", False)),
            timing=dict(d.get("timing") or {}),
            created_at=parse_time(d.get("created_at")),
            started_at=parse_time(d.get("started_at")),
            finished_at=parse_time(d.get("finished_at")),
            duration_ms=d.get("duration_ms"),
            idempotency_key=d.get("idempotency_key"),
            attempt=int(d.get("attempt") or 0),
            node=d.get("node") or "",
            image=d.get("image") or "",
            requirements=list(d.get("requirements") or []),
            parent_id=d.get("parent_id"),
            relationship=d.get("relationship"),
            correlation_id=d.get("correlation_id") or "",
            api_key=d.get("api_key"),
            artifacts=[ArtifactInfo.from_json(a) for a in d.get("artifacts") or []],
            raw=d,
        )


@dataclass
class JobStatus:
    """GET /jobs/{id}: where a job is, and what a running job has printed
    so far (stdout and stderr are None once it has ended)."""

    job_id: str
    status: str
    job_type: str = ""
    created_at: Optional[_dt.datetime] = None
    started_at: Optional[_dt.datetime] = None
    finished_at: Optional[_dt.datetime] = None
    duration_ms: Optional[float] = None
    queue_position: Optional[int] = None
    attempt: int = 0
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        """Whether the job has ended."""
        return is_terminal(self.status)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "JobStatus":
        return cls(
            job_id=d.get("job_id") or "",
            status=d.get("status") or "",
            job_type=d.get("job_type") or "",
            created_at=parse_time(d.get("created_at")),
            started_at=parse_time(d.get("started_at")),
            finished_at=parse_time(d.get("finished_at")),
            duration_ms=d.get("duration_ms"),
            queue_position=d.get("queue_position"),
            attempt=int(d.get("attempt") or 0),
            stdout=d.get("stdout"),
            stderr=d.get("stderr"),
            raw=d,
        )


@dataclass
class JobTypeAvailability:
    """Whether a job type can run on the server."""

    available: bool
    unavailable_reason: str = ""


@dataclass
class Health:
    """GET /health: whether the server and its dependencies work. status is
    "healthy" or "degraded", with problems saying why."""

    status: str
    role: str = ""
    node: str = ""
    version: str = ""
    checked_at: Optional[_dt.datetime] = None
    docker_available: bool = False
    gvisor_available: bool = False
    database_available: bool = False
    job_types: Dict[str, JobTypeAvailability] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Health":
        jts = {}
        for name, a in (d.get("job_types") or {}).items():
            if isinstance(a, dict):
                jts[name] = JobTypeAvailability(bool(a.get("available")), a.get("unavailable_reason") or "")
        return cls(
            status=d.get("status") or "",
            role=d.get("role") or "",
            node=d.get("node") or "",
            version=d.get("version") or "",
            checked_at=parse_time(d.get("checked_at")),
            docker_available=bool(d.get("docker_available")),
            gvisor_available=bool(d.get("gvisor_available")),
            database_available=bool(d.get("database_available")),
            job_types=jts,
            problems=list(d.get("problems") or []),
            raw=d,
        )


@dataclass
class JobType:
    """One job type of GET /job-types: what it runs in, its limits and
    whether it can run now. timeout is in seconds."""

    name: str
    image: str = ""
    image_exists: bool = False
    system_packages: List[str] = field(default_factory=list)
    requirements: List[str] = field(default_factory=list)
    preload: List[str] = field(default_factory=list)
    python_version: Optional[str] = None
    memory_limit: str = ""
    cpu_limit: float = 0.0
    timeout: int = 0
    network: str = ""
    network_allow: List[str] = field(default_factory=list)
    security_mode: str = ""
    runtime: str = ""
    available: bool = False
    unavailable_reason: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "JobType":
        return cls(
            name=d.get("name") or "",
            image=d.get("image") or "",
            image_exists=bool(d.get("image_exists")),
            system_packages=list(d.get("system_packages") or []),
            requirements=list(d.get("requirements") or []),
            preload=list(d.get("preload") or []),
            python_version=d.get("python_version"),
            memory_limit=d.get("memory_limit") or "",
            cpu_limit=float(d.get("cpu_limit") or 0),
            timeout=int(d.get("timeout") or 0),
            network=d.get("network") or "",
            network_allow=list(d.get("network_allow") or []),
            security_mode=d.get("security_mode") or "",
            runtime=d.get("runtime") or "",
            available=bool(d.get("available")),
            unavailable_reason=d.get("unavailable_reason") or "",
            raw=d,
        )


#: The event types of a job's stream, in the order they come.
EVENT_QUEUED = "queued"  # always first
EVENT_STARTED = "started"  # it got a container
EVENT_STDOUT = "stdout"  # output: text
EVENT_STDERR = "stderr"  # output: text
EVENT_TRUNCATED = "truncated"  # a stream reached its cap
EVENT_RESULT = "result"  # it ended: result
EVENT_ERROR = "error"  # it failed: error
EVENT_DONE = "done"  # always last: status


@dataclass
class Event:
    """One Server-Sent Event of a job's stream. data is its decoded JSON
    (the text when it is not JSON); the other fields are filled for the
    types they belong to."""

    id: str
    type: str
    data: Any = None
    text: str = ""  # stdout, stderr
    result: Optional[Execution] = None  # result
    error: Optional[ExecError] = None  # error
    status: str = ""  # done


@dataclass
class ArtifactDownload:
    """What Client.artifact returns.

    When not_modified is True (the etag passed is still the file's: 304),
    content and body are None. Otherwise content holds the file's bytes, or,
    with stream=True, body is a file-like object to read it from, which the
    caller closes (or uses the download as a context manager). etag is the
    file's ETag (its quoted SHA-256), to pass back later.
    """

    etag: str
    not_modified: bool = False
    content: Optional[bytes] = None
    body: Optional[BinaryIO] = None

    def close(self) -> None:
        """Closes body, if any."""
        if self.body is not None:
            self.body.close()

    def __enter__(self) -> "ArtifactDownload":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

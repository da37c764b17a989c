"""tako_client: a Python client for tako, the server that runs untrusted
Python jobs in Docker containers. Standard library only.

    from tako_client import Client

    c = Client("http://127.0.0.1:8000", api_key="...")
    res = c.execute("print(1 + 1)")
    print(res.stdout, res.success)  # a failing program is success False

Client covers the whole API; TakoVM and the module-level configure, send
and send_raw are the surface of Tako VM's SDK, so code written for it runs
with ``import tako_client as tako_vm``.
"""

from .client import DEFAULT_API_KEY_HEADER, DEFAULT_RETRIES, DEFAULT_TIMEOUT, Client
from .compat import (
    ExecutionError,
    ExecutionResult,
    SDKExecutionError,
    TakoVM,
    TakoVMError,
    ValidationError,
    configure,
    get_job_type,
    list_job_types,
    send,
    send_raw,
)
from .errors import APIError, TakoError, TransportError, WebhookError
from .models import (
    EVENT_DONE,
    EVENT_ERROR,
    EVENT_QUEUED,
    EVENT_RESULT,
    EVENT_STARTED,
    EVENT_STDERR,
    EVENT_STDOUT,
    EVENT_TRUNCATED,
    TERMINAL_STATUSES,
    ArtifactDownload,
    ArtifactInfo,
    Event,
    ExecError,
    Execution,
    Health,
    JobStatus,
    JobType,
    JobTypeAvailability,
)
from .webhook import WEBHOOK_TOLERANCE, verify_webhook

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "ArtifactDownload",
    "ArtifactInfo",
    "Client",
    "DEFAULT_API_KEY_HEADER",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "EVENT_DONE",
    "EVENT_ERROR",
    "EVENT_QUEUED",
    "EVENT_RESULT",
    "EVENT_STARTED",
    "EVENT_STDERR",
    "EVENT_STDOUT",
    "EVENT_TRUNCATED",
    "Event",
    "ExecError",
    "Execution",
    "ExecutionError",
    "ExecutionResult",
    "Health",
    "JobStatus",
    "JobType",
    "JobTypeAvailability",
    "SDKExecutionError",
    "TERMINAL_STATUSES",
    "TakoError",
    "TakoVM",
    "TakoVMError",
    "TransportError",
    "ValidationError",
    "WEBHOOK_TOLERANCE",
    "WebhookError",
    "configure",
    "get_job_type",
    "list_job_types",
    "send",
    "send_raw",
    "verify_webhook",
]

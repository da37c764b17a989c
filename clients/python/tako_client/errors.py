"""The errors of tako_client.

A program that fails is not an error: it is a normal result whose
``success`` is False. An exception means the request itself failed.
"""

from __future__ import annotations

import email.utils
import json
import time
from http import HTTPStatus
from typing import Mapping, Optional

# How much of an error answer is read.
_MAX_ERROR_BODY = 64 << 10


class TakoError(Exception):
    """The base of every exception tako_client raises."""


class APIError(TakoError):
    """The server answered with a status of 400 or more.

    Attributes:
        status: the HTTP status, such as 404 or 422.
        detail: the server's message ("Job not found"), or the status text
            when the answer had none. A structured detail is kept as JSON.
        correlation_id: the request's X-Correlation-ID, to find it in the
            server's logs ("" when the server sent none).
        retry_after: the server's Retry-After in seconds (503, 429), None
            when absent.
    """

    def __init__(self, status: int, detail: str, correlation_id: str = "", retry_after: Optional[float] = None) -> None:
        self.status = status
        self.detail = detail
        self.correlation_id = correlation_id
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        msg = f"tako: {self.status} {_status_text(self.status)}: {self.detail}"
        if self.correlation_id:
            msg += f" (correlation id {self.correlation_id})"
        return msg

    def __repr__(self) -> str:
        return (
            f"APIError(status={self.status!r}, detail={self.detail!r}, "
            f"correlation_id={self.correlation_id!r}, retry_after={self.retry_after!r})"
        )


class TransportError(TakoError):
    """The request did not get an answer: the connection could not be made,
    broke, or timed out (after the retries that were safe). The underlying
    exception is its ``__cause__``."""


class WebhookError(TakoError, ValueError):
    """verify_webhook refused a webhook; the message says which check failed
    and never contains the secret."""


def _status_text(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Reads a Retry-After header, delay seconds or an HTTP date, as seconds
    from now. Absent or unreadable is None; a date in the past is 0."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def api_error_from(status: int, headers: Mapping[str, str], body: bytes) -> APIError:
    """Builds the APIError of an error answer. The server's body is
    ``{"detail": ..., "correlation_id": ...}``; anything else is kept as
    text, and an empty body falls back to the status text."""
    correlation_id = headers.get("X-Correlation-ID") or ""
    retry_after = parse_retry_after(headers.get("Retry-After"))
    detail = ""
    raw = body[:_MAX_ERROR_BODY]
    parsed = None
    try:
        parsed = json.loads(raw.decode("utf-8", errors="replace")) if raw else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("detail") is not None:
        d = parsed["detail"]
        detail = d if isinstance(d, str) else json.dumps(d)
        if not correlation_id and isinstance(parsed.get("correlation_id"), str):
            correlation_id = parsed["correlation_id"]
    else:
        detail = raw.decode("utf-8", errors="replace").strip()
    if not detail:
        detail = _status_text(status)
    return APIError(status, detail, correlation_id, retry_after)

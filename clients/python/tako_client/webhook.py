"""Checking the webhooks tako sends (Standard Webhooks), as client/webhook.go
does."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any, Mapping, Optional

from .errors import WebhookError

#: How far, in seconds, a webhook's timestamp may be from the receiver's
#: clock before verify_webhook refuses it as a replay.
WEBHOOK_TOLERANCE = 300.0


def _header(headers: Any, name: str) -> str:
    """The first value of header name, looked up case-insensitively in a
    dict, an http.client.HTTPMessage or any mapping of str to str."""
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter(name)
        if value is None:
            value = getter(name.title())
        if value is not None:
            return value if isinstance(value, str) else str(value)
    items = headers.items() if hasattr(headers, "items") else headers
    for key, value in items:
        if str(key).lower() == name:
            return str(value)
    return ""


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: Optional[float] = None,
    tolerance: float = WEBHOOK_TOLERANCE,
) -> None:
    """Checks a webhook tako sent.

    headers must carry webhook-id, webhook-timestamp (within tolerance
    seconds of now) and a webhook-signature with a v1 HMAC-SHA256 of
    ``id.timestamp.body`` under secret, written ``whsec_`` + base64 as in
    tako's webhooks.secret. body is the raw request body (the job's result).

    Returns None when the webhook is genuine and raises WebhookError (a
    ValueError) saying which check failed otherwise.
    """
    if not secret.startswith("whsec_"):
        raise WebhookError("webhook secret must start with whsec_")
    try:
        key = base64.b64decode(secret[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise WebhookError("webhook secret: the part after whsec_ is not standard base64")
    msg_id = _header(headers, "webhook-id")
    ts = _header(headers, "webhook-timestamp")
    sigs = _header(headers, "webhook-signature")
    if not msg_id:
        raise WebhookError("missing webhook-id header")
    if not ts:
        raise WebhookError("missing webhook-timestamp header")
    if not sigs:
        raise WebhookError("missing webhook-signature header")
    try:
        unix = int(ts, 10)
    except ValueError:
        raise WebhookError(f"webhook-timestamp {ts!r} is not unix seconds") from None
    age = (time.time() if now is None else now) - unix
    if abs(age) > tolerance:
        raise WebhookError(f"webhook-timestamp is {round(age)}s from now, more than {round(tolerance)}s")
    want = hmac.new(key, f"{msg_id}.{ts}.".encode() + bytes(body), hashlib.sha256).digest()
    for field in sigs.split():
        version, sep, sig = field.partition(",")
        if not sep or version != "v1":
            continue  # another scheme
        try:
            got = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(got, want):
            return None
    raise WebhookError("no v1 signature in webhook-signature matches the secret")

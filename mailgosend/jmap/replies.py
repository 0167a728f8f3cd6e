# -*- test-case-name: tests.test_jmap_core -*-
"""The JSON reply shapes of the JMAP endpoint: a JSON body, and an RFC 7807 problem
document for a request-level error (RFC 8620 §3.6.1)."""

from __future__ import annotations

import json
from typing import Any

from mailgosend.jmap.errors import RequestError
from mailgosend.web.request import WebRequest

__all__ = ["json_reply", "problem"]


def json_reply(request: WebRequest, value: Any, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    return json.dumps(value, separators=(",", ":")).encode()


def problem(request: WebRequest, error: RequestError) -> bytes:
    """RFC 7807 problem details for a request-level error."""
    request.setResponseCode(error.status)
    request.setHeader(b"Content-Type", b"application/problem+json")
    request.setHeader(b"Cache-Control", b"no-store")
    return json.dumps(error.problem()).encode()

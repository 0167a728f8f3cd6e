# -*- test-case-name: tests.test_jmap_core -*-
"""JMAP errors (RFC 8620 §3.6): one exception per level, each carrying the RFC's type name.

- ``RequestError``: the whole request is refused, answered with an RFC 7807 problem document
  (§3.6.1: ``urn:ietf:params:jmap:error:notRequest``, ``limit``, ...) and an HTTP status.
- ``MethodError``: one method call fails; the response holds ``["error", {"type": ...}, id]``
  in its place (§3.6.2) and the other calls go on.
- ``SetError``: one object of a /set (or /copy, /import) is refused (§5.3); the others go on.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["RequestError", "MethodError", "SetError", "invalid_arguments",
           "invalid_properties"]

_PROBLEM = "urn:ietf:params:jmap:error:"


class RequestError(Exception):
    """A request-level error (RFC 8620 §3.6.1): ``kind`` is ``unknownCapability``,
    ``notJSON``, ``notRequest`` or ``limit`` (with ``limit`` naming the limit)."""

    def __init__(self, kind: str, detail: str, *, status: int = 400,
                 limit: Optional[str] = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status
        self.limit = limit

    def problem(self) -> dict[str, Any]:
        """The RFC 7807 problem details document."""
        doc: dict[str, Any] = {"type": _PROBLEM + self.kind, "status": self.status,
                               "detail": self.detail}
        if self.limit is not None:
            doc["limit"] = self.limit
        return doc


class _TypedError(Exception):
    """An error answered as a JSON object ``{"type": kind, "description": ...}`` plus the
    properties its type carries (RFC 8620 §3.6.2 and §5.3 share this shape)."""

    def __init__(self, kind: str, description: str = "", **extra: Any) -> None:
        super().__init__(description or kind)
        self.kind = kind
        self.description = description
        self.extra = extra

    def response(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.kind}
        if self.description:
            doc["description"] = self.description
        doc.update(self.extra)
        return doc


class MethodError(_TypedError):
    """A method-level error (RFC 8620 §3.6.2): ``kind`` is the RFC's type name
    (``invalidArguments``, ``stateMismatch``, ``cannotCalculateChanges``, ``tooLarge``,
    ``accountNotFound``, ``unknownMethod``, ``requestTooLarge``, ``anchorNotFound``,
    ``unsupportedSort``, ``unsupportedFilter``, ``fromAccountNotFound``, ...).
    ``description`` says in words what was wrong, naming the argument; ``extra`` adds
    properties some types carry (e.g. ``arguments`` for invalidArguments)."""


def invalid_arguments(argument: str, why: str) -> MethodError:
    """``invalidArguments`` naming the argument: the common case for bad input."""
    return MethodError("invalidArguments", f"{argument}: {why}", arguments=[argument])


class SetError(_TypedError):
    """One object refused by /set, /copy or /import (RFC 8620 §5.3, RFC 8621 §4.6):
    ``kind`` is ``notFound``, ``invalidProperties`` (with ``properties``), ``forbidden``,
    ``overQuota``, ``tooLarge``, ``stateMismatch``, ``alreadyExists`` (with
    ``existingId``), ``mailboxHasChild``, ``mailboxHasEmail``, ``tooManyKeywords``,
    ``tooManyMailboxes``, ``blobNotFound`` (with ``notFound``), ``invalidEmail``,
    ``forbiddenFrom``, ``forbiddenToSend``, ``noRecipients``, ``invalidRecipients``,
    ``cannotUnsend``, ..."""


def invalid_properties(prop: str, why: str) -> SetError:
    """``invalidProperties`` naming the property (RFC 8620 §5.3): one object's bad input."""
    return SetError("invalidProperties", f"{prop}: {why}", properties=[prop])

# -*- test-case-name: tests.test_jmap_core -*-
"""The method registry and what each method handler receives (RFC 8620 §3).

A data-type module (mailbox.py, email_get.py, ...) exposes ``METHODS``: a mapping from a
method name ("Email/get") to a ``Method`` (its capability and handler).  The API endpoint
(api.py) collects them, checks the request's ``using``, resolves result references (§3.7)
and calls ``handler(call, args)``; the handler returns the response arguments or raises
``MethodError``.  A handler that implies another response (Email/copy with
``onSuccessDestroyOriginal``, EmailSubmission/set with ``onSuccessUpdateEmail``) adds it
with ``call.also``; it is placed right after the handler's own response (§5.4).

Handlers reach mail only through ``call.mail`` (mail/service.py's ``UserMail``) and the
other services on ``call.context``; ``call.created`` maps creation ids of this request to
the ids made for them (§5.3 ``createdIds``), so "#draft" in a later call finds the draft.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Optional, Sequence, Type, TypeVar

from mailgosend.jmap.errors import MethodError, invalid_arguments

__all__ = ["CORE", "MAIL", "SUBMISSION", "VACATION", "Limits", "Call", "Method",
           "Handler", "argument", "account_of", "resolve_id"]

# RFC 8620 §2, RFC 8621 §1.3.
CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"


@dataclass(frozen=True)
class Limits:
    """The core capability's limits (RFC 8620 §2), as advertised in the session resource
    and enforced by the endpoint and the standard methods."""

    max_size_upload: int = 50_000_000
    max_concurrent_upload: int = 4
    max_size_request: int = 10_000_000
    max_concurrent_requests: int = 4
    max_calls_in_request: int = 64
    max_objects_in_get: int = 1000
    max_objects_in_set: int = 1000
    collation_algorithms: tuple[str, ...] = ("i;ascii-numeric", "i;ascii-casemap",
                                             "i;unicode-casemap")


@dataclass
class Call:
    """One method call being answered.

    ``mail`` is the signed-in user's ``UserMail``; ``account_id`` the JMAP id of that
    account (the only one a user can reach); ``context`` the endpoint's shared services
    (the mail service, submission, identities, vacation, blob store...); ``created`` the
    request's creation-id map, shared by all its calls; ``origin`` the token published
    with this request's changes on the change feed.
    """

    name: str
    call_id: str
    account_id: str
    mail: Any  # mailgosend.mail.UserMail
    context: Any
    limits: Limits
    created: dict[str, str] = field(default_factory=dict)
    using: frozenset[str] = frozenset()
    origin: Any = None
    implied: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def also(self, name: str, arguments: dict[str, Any]) -> None:
        """Add an implicit response after this call's own (RFC 8620 §5.4)."""
        self.implied.append((name, arguments))


Handler = Callable[[Call, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Method:
    """A method: the capability a request must be ``using`` for it, and its handler."""

    capability: str
    handler: Handler


_T = TypeVar("_T")
_MISSING: Any = object()


def argument(args: Mapping[str, Any], name: str, kind: Type[_T] | tuple[type, ...],
             default: Any = _MISSING, *, nullable: bool = False) -> Any:
    """``args[name]`` checked against ``kind``; missing means ``default``, or
    ``invalidArguments`` naming the argument when there is none.  JSON booleans are not
    numbers here (``True`` is not an ``int`` argument)."""
    if name not in args:
        if default is _MISSING:
            raise invalid_arguments(name, "is required")
        return default
    value = args[name]
    if value is None:
        if nullable:
            return None
        if default is not _MISSING and default is None:
            return None
        raise invalid_arguments(name, "must not be null")
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise invalid_arguments(name, f"must be {_describe(kinds)}, not a boolean")
    if not isinstance(value, kinds):
        raise invalid_arguments(name, f"must be {_describe(kinds)}")
    return value


def _describe(kinds: Sequence[type]) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", list: "a list",
             dict: "an object", float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def account_of(call: Call, args: Mapping[str, Any], name: str = "accountId") -> str:
    """The ``accountId`` argument, which must be the signed-in user's own account:
    ``accountNotFound`` otherwise (RFC 8620 §3.6.2), so nobody learns whether another
    user's account exists."""
    account = argument(args, name, str)
    if account != call.account_id:
        raise MethodError("accountNotFound", f"{name}: no such account")
    return account


def resolve_id(call: Call, value: str) -> Optional[str]:
    """An id argument that may name an object created earlier in this request as
    ``#creationId`` (RFC 8620 §5.3): the real id, or None when no such creation."""
    if value.startswith("#"):
        return call.created.get(value[1:])
    return value

# -*- test-case-name: tests.test_jmap_core -*-
"""The API request (RFC 8620 §3): parsing, request-level errors, method calls in order,
result references (§3.7) and creation ids (§3.3, §5.3).  No HTTP here (http.py is that).

``Dispatcher.run(body, ...)`` takes the request's bytes and returns the Response object;
a request-level problem raises ``RequestError`` (answered as RFC 7807 JSON by http.py).
A handler's ``MethodError`` becomes its ``["error", ...]`` response; any other exception
``serverFail``, logged with the method name and the exception's type only: arguments and
messages may carry mail content (COMMON.md: never log content).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from twisted.logger import Logger

from mailgosend.jmap.errors import MethodError, RequestError
from mailgosend.jmap.methods import Call, Limits, Method

__all__ = ["Dispatcher", "parse_request", "resolve_references", "evaluate_pointer"]

log = Logger()


def parse_request(body: bytes, limits: Limits, capabilities: Mapping[str, Any]
                  ) -> dict[str, Any]:
    """The Request object (§3.3), checked: RequestError for notJSON, notRequest,
    unknownCapability and the size and call-count limits."""
    if len(body) > limits.max_size_request:
        raise RequestError("limit", f"the request is larger than maxSizeRequest "
                                    f"({limits.max_size_request} octets)",
                           limit="maxSizeRequest")
    try:
        request = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RequestError("notJSON", "the request body is not JSON (I-JSON, RFC 7493)") \
            from None
    if not isinstance(request, dict):
        raise RequestError("notRequest", "the request is not a JSON object")
    using = request.get("using")
    if not isinstance(using, list) or not all(isinstance(u, str) for u in using):
        raise RequestError("notRequest", "using: must be a list of capability URNs")
    calls = request.get("methodCalls")
    if not isinstance(calls, list) or not all(_is_invocation(c) for c in calls):
        raise RequestError("notRequest", "methodCalls: must be a list of "
                                         "[name, arguments object, call id]")
    created = request.get("createdIds")
    if created is not None and (not isinstance(created, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in created.items())):
        raise RequestError("notRequest", "createdIds: must map creation ids to ids")
    unknown = [u for u in using if u not in capabilities]
    if unknown:
        raise RequestError("unknownCapability",
                           f"using: this server does not support {', '.join(unknown)}")
    if len(calls) > limits.max_calls_in_request:
        raise RequestError("limit", f"methodCalls: more than maxCallsInRequest "
                                    f"({limits.max_calls_in_request}) calls",
                           limit="maxCallsInRequest")
    return request


def _is_invocation(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and isinstance(value[1], dict) and isinstance(value[2], str))


class _PointerError(Exception):
    pass


def evaluate_pointer(value: Any, pointer: str) -> Any:
    """RFC 8620 §3.7: a JSON Pointer (RFC 6901) where ``*`` applied to an array maps the
    rest of the pointer over its items, flattening items that are arrays themselves."""
    if pointer == "":
        return value
    if not pointer.startswith("/"):
        raise _PointerError(pointer)
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]
    return _walk(value, tokens)


def _walk(value: Any, tokens: list[str]) -> Any:
    if not tokens:
        return value
    token, rest = tokens[0], tokens[1:]
    if isinstance(value, list):
        if token == "*":
            out: list[Any] = []
            for item in value:
                found = _walk(item, rest)
                if isinstance(found, list):
                    out.extend(found)
                else:
                    out.append(found)
            return out
        if not token.isdigit() or (len(token) > 1 and token[0] == "0") \
                or int(token) >= len(value):
            raise _PointerError(token)
        return _walk(value[int(token)], rest)
    if isinstance(value, dict) and token in value:
        return _walk(value[token], rest)
    raise _PointerError(token)


def resolve_references(args: dict[str, Any], responses: list[list[Any]]) -> dict[str, Any]:
    """The arguments with every ``#name`` ResultReference replaced by its value (§3.7);
    ``invalidResultReference`` when one does not resolve, ``invalidArguments`` when an
    argument is given both plain and by reference."""
    resolved: dict[str, Any] = {}
    for key, value in args.items():
        if not key.startswith("#"):
            resolved[key] = value
            continue
        name = key[1:]
        if name in args:
            raise MethodError("invalidArguments",
                              f"{name}: given both directly and as a result reference",
                              arguments=[name])
        if not (isinstance(value, dict) and isinstance(value.get("resultOf"), str)
                and isinstance(value.get("name"), str) and isinstance(value.get("path"), str)):
            raise MethodError("invalidResultReference",
                              f"{key}: a result reference needs resultOf, name and path")
        source = next((r for r in responses if r[2] == value["resultOf"]), None)
        if source is None or source[0] != value["name"]:
            raise MethodError("invalidResultReference",
                              f"{key}: no {value['name']} response for call "
                              f"{value['resultOf']!r} before this one")
        try:
            resolved[name] = evaluate_pointer(source[1], value["path"])
        except _PointerError:
            raise MethodError("invalidResultReference",
                              f"{key}: the path {value['path']!r} does not resolve") from None
    return resolved


class Dispatcher:
    """Runs the method calls of one request in order (RFC 8620 §3.3)."""

    def __init__(self, methods: Mapping[str, Method], capabilities: Mapping[str, Any],
                 limits: Limits) -> None:
        self.methods = dict(methods)
        self.capabilities = capabilities
        self.limits = limits

    async def run(self, body: bytes, *, account_id: str, mail: Any, context: Any,
                  origin: Any = None) -> dict[str, Any]:
        request = parse_request(body, self.limits, self.capabilities)
        using = frozenset(request["using"])
        created: dict[str, str] = dict(request.get("createdIds") or {})
        responses: list[list[Any]] = []
        for name, args, call_id in request["methodCalls"]:
            call = Call(name=name, call_id=call_id, account_id=account_id, mail=mail,
                        context=context, limits=self.limits, created=created, using=using,
                        origin=origin)
            responses.append(await self._one(call, args, responses))
            responses.extend([implied, arguments, call_id]
                             for implied, arguments in call.implied)
        answer: dict[str, Any] = {"methodResponses": responses,
                                  "sessionState": context.session_state}
        if "createdIds" in request:
            answer["createdIds"] = created
        return answer

    async def _one(self, call: Call, args: dict[str, Any],
                   responses: list[list[Any]]) -> list[Any]:
        method = self.methods.get(call.name)
        # RFC 8620 §3.6.2: a method of a capability not in "using" is unknown too.
        if method is None:
            return _error(MethodError("unknownMethod", f"{call.name}: no such method"),
                          call.call_id)
        if method.capability not in call.using:
            return _error(MethodError("unknownMethod", f"{call.name}: needs "
                                      f"{method.capability} in using"), call.call_id)
        try:
            resolved = resolve_references(args, responses)
            result = await method.handler(call, resolved)
        except MethodError as exc:
            return _error(exc, call.call_id)
        except Exception as exc:
            _log_failure(call.name, exc)
            return _error(MethodError("serverFail", "the server could not answer this "
                                                    "call; it has been logged"),
                          call.call_id)
        return [call.name, result, call.call_id]


def _error(exc: MethodError, call_id: str) -> list[Any]:
    return ["error", exc.response(), call_id]


def _log_failure(method: str, exc: Exception) -> None:
    """Where it failed, never what it was working on (messages, arguments)."""
    frame = exc.__traceback__
    where = "?"
    while frame is not None:
        where = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}"
        frame = frame.tb_next
    log.error("jmap: {method} failed with {kind} at {where}", method=method,
              kind=type(exc).__name__, where=where)

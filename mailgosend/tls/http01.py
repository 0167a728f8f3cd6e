"""HTTP_PORT (80): HTTP-01 challenge responses (RFC 8555 §8.3) and a redirect to HTTPS.

The tokens being validated live in a ChallengeStore that the ACME service fills from its
issuing thread; this resource, in the reactor, only reads it.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.web import resource, server

CHALLENGE_PATH = b".well-known"
_CHALLENGE_DIR = b"acme-challenge"


class ChallengeStore:
    """HTTP-01 tokens being validated: token → key authorization (RFC 8555 §8.3).  Written by
    the issuing thread, read by the reactor; single dict operations, atomic under the GIL."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}

    def add(self, token: str, key_authorization: str) -> None:
        self._tokens[token] = key_authorization

    def remove(self, token: str) -> None:
        self._tokens.pop(token, None)

    def get(self, token: str) -> Optional[str]:
        return self._tokens.get(token)


class HTTPPort(resource.Resource):
    """Port 80: ``/.well-known/acme-challenge/<token>`` from the ACME service's current
    challenges (RFC 8555 §8.3); every other request is sent to HTTPS on the web port with a
    301 to the same host and path."""

    isLeaf = True

    def __init__(self, challenges: Optional[ChallengeStore], web_port: int,
                 https: bool = True) -> None:
        super().__init__()
        self.challenges = challenges
        self.web_port = web_port
        self.https = https

    def render(self, request: Any) -> bytes:
        # One request per connection: validators and redirected browsers never come back on
        # it, and no idle connection outlives a stop.
        request.setHeader(b"connection", b"close")
        path = request.path or b"/"
        prefix = b"/" + CHALLENGE_PATH + b"/" + _CHALLENGE_DIR + b"/"
        if path.startswith(prefix):
            token = path[len(prefix):].decode("ascii", "replace")
            answer = self.challenges.get(token) if self.challenges is not None else None
            if answer is None or "/" in token:
                request.setResponseCode(404)
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                return b"no such challenge\n"
            request.setHeader(b"content-type", b"text/plain")
            return answer.encode("ascii")
        host = (request.getRequestHostname() or b"localhost").decode("ascii", "replace")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        scheme = "https" if self.https else "http"
        default = 443 if self.https else 80
        port = "" if self.web_port == default else f":{self.web_port}"
        location = f"{scheme}://{host}{port}".encode("ascii", "replace") + request.uri
        request.setResponseCode(301)
        request.setHeader(b"location", location)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"moved to " + location + b"\n"


def http_port_site(challenges: Optional[ChallengeStore], web_port: int, https: bool) -> Any:
    return server.Site(HTTPPort(challenges, web_port, https))

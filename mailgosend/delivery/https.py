# -*- test-case-name: tests.test_mtasts -*-
"""A small HTTPS client for the delivery side (MTA-STS policy fetches, RFC 8461 §3.3, and
TLS-RPT report uploads, RFC 8460 §5.4): the host name is resolved through the configured DNS
resolver (in the worker pool, as MX lookups are), the certificate must verify for that name
against the system store plus an optional CA file, redirects are never followed, bodies
are size-limited and every request has a deadline on the injected clock."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Optional

from twisted.internet import defer
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.python.failure import Failure
from twisted.web.client import Agent, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from mailgosend.delivery.mx import host_addresses

__all__ = ["HTTPSClient", "HTTPSError", "HTTPSResponse"]


class HTTPSError(Exception):
    """The request did not give a usable answer; the message says why (for logs, reports)."""


@dataclass(frozen=True)
class HTTPSResponse:
    code: int
    content_type: str
    body: bytes


@implementer(IOpenSSLTrustRoot)
class _Trust:
    """The system's CA store plus ``ca_file`` (MTA_STS_CA_FILE)."""

    def __init__(self, ca_file: Optional[str]) -> None:
        self._ca_file = ca_file

    def _addCACertsToContext(self, context: Any) -> None:
        context.set_default_verify_paths()
        if self._ca_file:
            context.load_verify_locations(self._ca_file)


@implementer(IAgentEndpointFactory)
class _Endpoints:
    def __init__(self, reactor: Any, address: str, port: int, host: str,
                 ca_file: Optional[str], timeout: float) -> None:
        self._reactor, self._address, self._port = reactor, address, port
        self._host, self._ca_file, self._timeout = host, ca_file, timeout

    def endpointForURI(self, uri: Any) -> Any:
        kind = TCP6ClientEndpoint if isinstance(ipaddress.ip_address(self._address),
                                                ipaddress.IPv6Address) else TCP4ClientEndpoint
        tcp = kind(self._reactor, self._address, self._port, timeout=self._timeout)
        return wrapClientTLS(optionsForClientTLS(self._host, trustRoot=_Trust(self._ca_file)),
                             tcp)


class _Collect(Protocol):
    def __init__(self, limit: int, done: defer.Deferred[bytes]) -> None:
        self._limit, self._done, self._parts, self._size = limit, done, [], 0  # type: ignore[var-annotated]

    def dataReceived(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            if not self._done.called:
                self._done.errback(HTTPSError(f"body larger than {self._limit} bytes"))
            self.transport.stopProducing()  # type: ignore[union-attr]
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:
        if self._done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self._done.callback(b"".join(self._parts))
        else:
            self._done.errback(HTTPSError(f"body not received: {reason.getErrorMessage()}"))


class HTTPSClient:
    def __init__(self, *, reactor: Any, workers: Any, resolver: Any, ca_file: Optional[str],
                 port: int = 443, timeout: float = 60.0) -> None:
        self._reactor = reactor
        self._workers = workers
        self._resolver = resolver
        self._ca_file = ca_file
        self._port = port
        self._timeout = timeout

    async def request(self, method: bytes, host: str, path: str, *, limit: int,
                      body: Optional[bytes] = None, content_type: Optional[str] = None,
                      port: Optional[int] = None) -> HTTPSResponse:
        """One request to https://host[:port]/path; HTTPSError when it fails.  A 3xx is
        returned as it is (never followed: RFC 8461 §3.3)."""
        addresses = await self._workers.run(host_addresses, host, resolver=self._resolver)
        if not addresses:
            raise HTTPSError(f"{host} has no address")
        use_port = port or self._port
        agent = Agent.usingEndpointFactory(
            self._reactor, _Endpoints(self._reactor, addresses[0], use_port, host,
                                      self._ca_file, self._timeout))
        headers = Headers({b"User-Agent": [b"mailgosend"]})
        producer = None
        if body is not None:
            from twisted.web.client import FileBodyProducer
            from io import BytesIO

            producer = FileBodyProducer(BytesIO(body))
            headers.addRawHeader(b"Content-Type", (content_type or "").encode())
        suffix = "" if use_port == 443 else f":{use_port}"
        url = f"https://{host}{suffix}{path}".encode("ascii")
        attempt = agent.request(method, url, headers, producer)
        attempt.addTimeout(self._timeout, self._reactor)
        try:
            response = await attempt
            done: defer.Deferred[bytes] = defer.Deferred()
            response.deliverBody(_Collect(limit, done))
            done.addTimeout(self._timeout, self._reactor)
            data = await done
        except HTTPSError:
            raise
        except Exception as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise HTTPSError(f"https://{host}{path}: {text}") from None
        kind = (response.headers.getRawHeaders(b"content-type") or [b""])[0]
        return HTTPSResponse(response.code, kind.decode("latin-1"), data)

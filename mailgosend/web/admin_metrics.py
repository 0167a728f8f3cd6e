# -*- test-case-name: tests.test_admin_dash_metrics -*-
"""``/metrics`` (Prometheus text format) and ``/readyz`` on the admin port (issue 14
item 12); ``/healthz`` is web/health.py.

``/metrics`` is not behind the panel's sign-in (a scraper has no browser session) but
behind METRICS_ALLOW (client addresses or networks, loopback by default; the address is
the one bans use, behind TRUSTED_PROXIES the real client) or METRICS_TOKEN (``Authorization:
Bearer <token>``).  Both are read at each request, so a change on the settings page
applies at once.  The numbers are counters.py's; the queue gauges are re-read first.

``/readyz`` answers 200 when the database answers and every configured listener is
bound; 503 with the failing part otherwise (for load balancers: "send traffic here?"),
where /healthz only says the process is alive.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.logger import Logger
from twisted.web import resource, server

from mailgosend.auth.bruteforce import parse_networks

log = Logger()


def _answer(request: Any, status: int, body: bytes, content_type: bytes) -> None:
    if request.finished or request._disconnected:
        return
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Cache-Control", b"no-store")
    request.write(body)
    request.finish()


class MetricsResource(resource.Resource):
    isLeaf = True

    def __init__(self, counters: Any, config: Callable[[], Any]) -> None:
        super().__init__()
        self._counters = counters
        self._config = config

    def allowed(self, request: Any) -> bool:
        config = self._config()
        token = config["METRICS_TOKEN"]
        given = request.getHeader("authorization") or ""
        if token and given.startswith("Bearer ") and hmac.compare_digest(
                given[len("Bearer "):].strip().encode(), token.encode()):
            return True
        try:
            address = ipaddress.ip_address(request.client_ip)
        except ValueError:
            return False
        return any(address in network for network in parse_networks(config["METRICS_ALLOW"]))

    def render_GET(self, request: Any) -> Any:
        if not self.allowed(request):
            log.info("web: /metrics refused to {ip} (not in METRICS_ALLOW, no METRICS_TOKEN)",
                     ip=request.client_ip)
            request.setResponseCode(403)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return (b"Forbidden: this address is not in METRICS_ALLOW and no valid "
                    b"METRICS_TOKEN was given.\n")

        def send(_: Any) -> None:
            _answer(request, 200, generate_latest(self._counters.registry),
                    CONTENT_TYPE_LATEST.encode())

        def failed(failure: Any) -> None:
            log.warn("metrics: queue gauges not refreshed: {error}",
                     error=failure.getErrorMessage())
            send(None)
        self._counters.refresh_gauges().addCallbacks(send, failed)
        return server.NOT_DONE_YET


class ReadyResource(resource.Resource):
    isLeaf = True

    def __init__(self, runner: Any, listeners: Callable[[], list[tuple[str, bool]]]) -> None:
        super().__init__()
        self._runner = runner
        self._listeners = listeners

    def render_GET(self, request: Any) -> Any:
        down = [name for name, up in self._listeners() if not up]

        def answer(database: str) -> None:
            ok = database == "ok" and not down
            body = {"status": "ok" if ok else "error", "database": database,
                    "listeners": "ok" if not down else "down: " + ", ".join(down)}
            _answer(request, 200 if ok else 503, json.dumps(body).encode() + b"\n",
                    b"application/json")

        def failed(failure: Any) -> None:
            log.warn("readiness: database did not answer: {error}",
                     error=failure.getErrorMessage())
            answer("unavailable")
        self._runner.ping().addCallbacks(lambda _: answer("ok"), failed)
        return server.NOT_DONE_YET

    def render_HEAD(self, request: Any) -> Any:
        return self.render_GET(request)

"""``/healthz`` on the admin port (routed by web/account.py): is the process up and is
the database answering?

For load balancers and monitoring (Kubernetes probes, Uptime Kuma, Nagios):
200 with {"status": "ok"} or 503 with the failing part; no secrets, no counts.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.logger import Logger
from twisted.web import resource, server

from mailgosend import __version__
from mailgosend.db.runner import DatabaseRunner

log = Logger()


class HealthResource(resource.Resource):
    isLeaf = True

    def __init__(self, runner: DatabaseRunner) -> None:
        super().__init__()
        self._runner = runner

    def render_GET(self, request: server.Request) -> Any:
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")

        def answer(status: int, body: dict[str, str]) -> None:
            if request.finished or request._disconnected:
                return
            request.setResponseCode(status)
            request.write(json.dumps(body).encode() + b"\n")
            request.finish()

        def failed(failure: Any) -> None:
            log.warn("health check: database did not answer: {error}",
                     error=failure.getErrorMessage())
            answer(503, {"status": "error", "database": "unavailable"})

        d = self._runner.ping()
        d.addCallbacks(lambda _: answer(200, {"status": "ok", "database": "ok",
                                              "version": __version__}), failed)
        return server.NOT_DONE_YET

    def render_HEAD(self, request: server.Request) -> Any:
        return self.render_GET(request)

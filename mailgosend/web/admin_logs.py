# -*- test-case-name: tests.test_admin_dash_logs -*-
"""The admin panel's Logs page (issue 14 item 10):

  GET /admin/logs?level=&q=&n=     the last N lines of the server log (logring.py) at a
                                   level or above, containing a text
  GET /admin/logs/stream?level=&q= the live tail: server-sent events (one ``data:`` JSON
                                   line per log line, ``id:`` its sequence number, so a
                                   reconnecting EventSource resumes with Last-Event-ID;
                                   a comment every HEARTBEAT seconds keeps proxies open)

static/js/admin-logs.js appends the streamed lines to the table.  The lines are those of
the log file (same level, same redaction of secrets).
"""

from __future__ import annotations

import json
from typing import Any

from klein import Klein
from twisted.web import resource, server

from mailgosend.admin import Actor
from mailgosend.logring import LEVELS, LogLine, LogRing
from mailgosend.web.admin_guard import AdminGroup, admin_page, install_error_pages
from mailgosend.web.forms import form_field
from mailgosend.web.request import WebRequest

HEARTBEAT = 15.0
DEFAULT_LINES = 200
MAX_LINES = 2000


def _filters(request: WebRequest) -> tuple[str, str]:
    level = form_field(request, "level")
    return (level if level in LEVELS else "info"), form_field(request, "q").strip()[:200]


class LogStream(resource.Resource):
    """One live tail: subscribed to the ring until the browser goes away."""

    isLeaf = True

    def __init__(self, ring: LogRing, clock: Any, level: str, text: str) -> None:
        super().__init__()
        self._ring = ring
        self._clock = clock
        self._level = level
        self._text = text

    def render_GET(self, request: Any) -> Any:
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Accel-Buffering", b"no")   # nginx: do not buffer the stream
        last = request.getHeader("last-event-id") or ""
        after = int(last) if last.isdigit() else 0

        def send(line: LogLine) -> None:
            if line.matches(self._level, self._text):
                request.write(b"id: %d\ndata: %s\n\n" % (
                    line.seq, json.dumps(line.as_dict()).encode()))

        def beat() -> None:
            request.write(b": keep-alive\n\n")
            state["timer"] = self._clock.callLater(HEARTBEAT, beat)

        def gone(_: Any) -> None:
            self._ring.subscribers.discard(send)
            if state["timer"].active():
                state["timer"].cancel()

        def end() -> None:   # server shutdown (WebChannel.server_shutting_down)
            if not request.finished and not request._disconnected:
                request.finish()

        request.end_stream = end
        request.write(b"retry: 3000\n\n")
        if after:
            for line in self._ring.lines(self._level, self._text, MAX_LINES, after=after):
                send(line)
        self._ring.subscribers.add(send)
        state = {"timer": self._clock.callLater(HEARTBEAT, beat)}
        request.notifyFinish().addBoth(gone)
        return server.NOT_DONE_YET


class LogsPages(AdminGroup):
    app = Klein()

    @property
    def ring(self) -> LogRing:
        return self.panel.components["log_ring"]  # type: ignore[no-any-return]

    @app.route("/admin/logs", methods=["GET", "HEAD"])
    @admin_page()
    def logs(self, request: WebRequest, actor: Actor) -> Any:
        level, text = _filters(request)
        wanted = form_field(request, "n")
        count = min(int(wanted), MAX_LINES) if wanted.isdigit() and int(wanted) > 0 \
            else DEFAULT_LINES
        lines = self.ring.lines(level, text, count)
        return self.render(request, "admin/logs.html", actor, lines=lines, level=level,
                           query=text, count=count, levels=LEVELS,
                           last_seq=lines[-1].seq if lines else 0)

    @app.route("/admin/logs/stream", methods=["GET"])
    @admin_page()
    def stream(self, request: WebRequest, actor: Actor) -> Any:
        level, text = _filters(request)
        return LogStream(self.ring, self.panel.clock, level, text)


install_error_pages(LogsPages.app)

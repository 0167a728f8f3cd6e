"""The Logs page and its live tail (web/admin_logs.py, logring.py): the last lines with a
level and text filter, server-sent events that carry new lines as they are logged (read by
a real HTTP client), resuming after Last-Event-ID, secrets redacted as in the log file."""

from __future__ import annotations

import json
import uuid
from typing import Any

from twisted.internet import defer, reactor, task, threads
from twisted.logger import Logger

from tests.test_admin_dash_pages import AdminTestCase

log = Logger(namespace="mailgosend.tests.logs")


class LogsPageTests(AdminTestCase):
    @defer.inlineCallbacks
    def test_level_and_text_filters(self) -> Any:
        marker = uuid.uuid4().hex
        log.info("routine {marker} info line", marker=marker)
        log.warn("worrying {marker} warn line", marker=marker)
        log.debug("debug {marker} line below LOG_LEVEL", marker=marker)
        web = yield self.admin_client()
        page = yield web.get(f"/admin/logs?q={marker}")
        self.assertIn("routine", page.text)
        self.assertIn("worrying", page.text)
        self.assertNotIn("below LOG_LEVEL", page.text)
        page = yield web.get(f"/admin/logs?q={marker}&level=warn")
        self.assertNotIn("routine", page.text)
        self.assertIn("worrying", page.text)
        self.assertIn("mailgosend.tests.logs", page.text)
        page = yield web.get(f"/admin/logs?q={marker}&n=1")
        self.assertNotIn("routine", page.text)
        page = yield web.get("/admin/logs?q=no-such-text-anywhere")
        self.assertIn("No log line matches.", page.text)

    @defer.inlineCallbacks
    def test_secrets_are_redacted_as_in_the_log_file(self) -> Any:
        secret = self.server.config["SESSION_SECRET"].hex()
        log.error("a careless line with {value}", value=secret)
        web = yield self.admin_client()
        page = yield web.get("/admin/logs?q=careless")
        self.assertIn("a careless line with [redacted]", page.text)
        self.assertNotIn(secret, page.text)

    @defer.inlineCallbacks
    def test_the_live_tail_streams_new_lines(self) -> Any:
        web = yield self.admin_client()
        marker = uuid.uuid4().hex

        def tail() -> list[dict[str, Any]]:
            answer = web.http.get(f"{web.base}/admin/logs/stream?level=info&q={marker}",
                                  stream=True, timeout=20)
            assert answer.status_code == 200, answer.status_code
            assert answer.headers["Content-Type"].startswith("text/event-stream")
            got = []
            ids = []
            with answer:
                for raw in answer.iter_lines():
                    line = raw.decode()
                    if line.startswith("retry:"):   # subscribed: now log
                        reactor.callFromThread(log.info, "not for this tail")
                        reactor.callFromThread(log.info, "first {m}", m=marker)
                        reactor.callFromThread(log.info, "second {m}", m=marker)
                    elif line.startswith("id: "):
                        ids.append(int(line[4:]))
                    elif line.startswith("data: "):
                        got.append(json.loads(line[6:]))
                        if len(got) == 2:
                            break
            # Reconnecting with Last-Event-ID gets what came after that line.
            again = web.http.get(f"{web.base}/admin/logs/stream?level=info&q={marker}",
                                 stream=True, timeout=20,
                                 headers={"Last-Event-ID": str(ids[0])})
            with again:
                for raw in again.iter_lines():
                    if raw.startswith(b"data: "):
                        got.append(json.loads(raw[6:]))
                        break
            return got

        got = yield threads.deferToThread(tail)
        self.assertEqual([g["text"] for g in got],
                         [f"first {marker}", f"second {marker}", f"second {marker}"])
        self.assertEqual(got[0]["level"], "info")
        ring = self.server.root.components["log_ring"]
        for _ in range(100):   # the server sees both connections close, and unsubscribes
            if not ring.subscribers:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(ring.subscribers, set())


class LiveTailShutdownTests(AdminTestCase):
    @defer.inlineCallbacks
    def test_server_shutdown_ends_an_open_live_tail(self) -> Any:
        """A stream never ends by itself: the admin port's drain ends it, so stopping the
        server does not wait SHUTDOWN_GRACE_SECONDS for an open Logs page."""
        import threading

        web = yield self.admin_client()
        opened = threading.Event()

        def tail() -> bool:
            answer = web.http.get(f"{web.base}/admin/logs/stream", stream=True, timeout=20)
            with answer:
                for raw in answer.iter_lines():
                    if raw.startswith(b"retry:"):
                        opened.set()
            return True     # the server ended the response

        ended = threads.deferToThread(tail)
        yield threads.deferToThread(opened.wait, 20)
        site = self.server.root.components["admin_site"]
        for channel in site.open_connections():
            channel.server_shutting_down()
        finished = yield ended
        self.assertTrue(finished)
        self.assertEqual(self.server.root.components["log_ring"].subscribers, set())

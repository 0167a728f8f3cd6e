# -*- test-case-name: tests.test_admin_queue -*-
"""The outbound queue and the delivery log in the admin panel (issue 14 items 5 and 6), full
administrators only:

  GET  /admin/queue?status=&sender=&domain=&age=    queued messages, filtered (age in hours)
  GET  /admin/queue/<id>                            one message: recipients, every attempt
  POST /admin/queue/<id>/retry|hold|release|delete
  POST /admin/queue/bulk                            action= retry|hold|release|delete over
                                                    every message the filter fields match
                                                    (e.g. all from one compromised sender)
  GET  /admin/deliveries?status=&domain=&address=&since=&until=&after=
                                                    the delivery log, newest first, a page
                                                    at a time by keyset cursor (no OFFSET)

The operations are store/queue.py's, as for ``mailgosend queue``; held recipients are never
claimed by the delivery worker until released.  Every change is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Optional

from klein import Klein
from twisted.internet import defer

from mailgosend.admin import Actor
from mailgosend.store import queue as queue_store
from mailgosend.store.accounts import AccountError
from mailgosend.web.admin_guard import admin_action, admin_page
from mailgosend.web.admin_ops import (
    PAGE_SIZE,
    OpsGroup,
    field_error,
    install_ops_error_pages,
    parse_when,
)
from mailgosend.web.request import WebRequest

STATUSES = ("queued", "delivering", queue_store.HELD)
LOG_STATUSES = ("delivered", "deferred", "failed", "expired", "deleted")
ACTIONS = ("retry", "hold", "release", "delete")
NOTICES = {"retry": "{n} recipient(s) due now.", "hold": "{n} recipient(s) held.",
           "release": "{n} recipient(s) released.", "delete": "{n} message(s) deleted."}


def _do(conn: Any, action: str, ids: list[int], now: datetime) -> int:
    """One queue action over messages; returns the count the notice shows."""
    if action == "retry":
        return sum(queue_store.retry_now(conn, i, now) for i in ids)
    if action in ("hold", "release"):
        return queue_store.set_held(conn, ids, action == "hold", now)
    for i in ids:
        queue_store.delete_entry(conn, i, now, "deleted by an administrator (admin panel)")
    return len(ids)


class QueuePages(OpsGroup):
    app = Klein()

    def _filter(self, request: WebRequest) -> tuple[queue_store.QueueFilter, dict[str, str]]:
        form = {name: self.field(request, name) for name in ("status", "sender", "domain", "age")}
        if form["status"] and form["status"] not in STATUSES:
            raise AccountError(f"status: choose one of {', '.join(STATUSES)}", "status")
        older = None
        if form["age"]:
            try:
                hours = float(form["age"])
            except ValueError:
                raise AccountError(f"age: {form['age']!r} is not a number of hours",
                                   "age") from None
            if hours < 0:
                raise AccountError("age: must not be negative", "age")
            older = self.panel.now() - timedelta(hours=hours)
        # "<>" is the null reverse-path (bounces); empty is any sender.
        sender = "" if form["sender"] == "<>" else form["sender"].strip("<>") or None
        which = queue_store.QueueFilter(status=form["status"], domain=form["domain"].lower(),
                                        sender=sender, older_than=older)
        return which, form

    @app.route("/admin/queue", methods=["GET", "HEAD"])
    @admin_page()
    @defer.inlineCallbacks
    def queue(self, request: WebRequest, actor: Actor) -> Any:
        error: dict[str, str] = {}
        try:
            which, form = self._filter(request)
        except AccountError as exc:
            error, which = field_error(exc), queue_store.QueueFilter()
            form = {name: self.field(request, name) for name in ("status", "sender", "domain",
                                                                 "age")}
            request.setResponseCode(400)
        entries = yield self.runner.read(queue_store.list_entries, 500, which)
        done = self.field(request, "done")
        notice = NOTICES[done].format(n=self.field(request, "n")) if done in NOTICES else ""
        return self.render(request, "admin/queue.html", actor, entries=entries, form=form,
                           statuses=STATUSES, error=error, notice=notice)

    @app.route("/admin/queue/<int:queue_id>", methods=["GET", "HEAD"])
    @admin_page()
    @defer.inlineCallbacks
    def entry(self, request: WebRequest, actor: Actor, queue_id: int) -> Any:
        entry, attempts = yield self.runner.read(queue_store.get_entry, queue_id)
        return self.render(request, "admin/queue_entry.html", actor, entry=entry,
                           attempts=attempts)

    @app.route("/admin/queue/<int:queue_id>/<any(retry,hold,release,delete):action>",
               methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def act(self, request: WebRequest, actor: Actor, queue_id: int, action: str) -> Any:
        yield self.runner.read(queue_store.get_entry, queue_id)     # 404 when gone
        count = yield self.change(request, actor, f"queue.{action}", str(queue_id), _do,
                                  action, [queue_id], self.panel.now())
        if action in ("retry", "release"):
            self.wake_delivery()
        where = "/admin/queue" if action == "delete" else f"/admin/queue/{queue_id}"
        return self.back(request, f"{where}?done={action}&n={count}" if action == "delete"
                         else where)

    @app.route("/admin/queue/bulk", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def bulk(self, request: WebRequest, actor: Actor) -> Any:
        action = self.field(request, "action")
        try:
            if action not in ACTIONS:
                raise AccountError(f"action: choose one of {', '.join(ACTIONS)}", "action")
            which, form = self._filter(request)
            if not any(form.values()):
                raise AccountError("choose a sender, a status, a domain or an age first: a "
                                   "bulk action never covers the whole queue by accident",
                                   "sender")
        except AccountError as exc:
            request.setResponseCode(400)
            entries = yield self.runner.read(queue_store.list_entries, 500)
            return self.render(request, "admin/queue.html", actor, entries=entries,
                               form={n: self.field(request, n)
                                     for n in ("status", "sender", "domain", "age")},
                               statuses=STATUSES, error=field_error(exc), notice="")
        now = self.panel.now()

        def job(conn: Any) -> int:
            return _do(conn, action, queue_store.matching_ids(conn, which), now)
        described = ", ".join(f"{k}={v}" for k, v in form.items() if v)
        count = yield self.change(request, actor, f"queue.bulk_{action}", described, job)
        if action in ("retry", "release"):
            self.wake_delivery()
        return self.back(request, f"/admin/queue?done={action}&n={count}")

    # --- the delivery log ----------------------------------------------------------------

    @app.route("/admin/deliveries", methods=["GET", "HEAD"])
    @admin_page()
    @defer.inlineCallbacks
    def deliveries(self, request: WebRequest, actor: Actor) -> Any:
        form = {n: self.field(request, n) for n in ("status", "domain", "address", "since",
                                                    "until")}
        error: dict[str, str] = {}
        after: Optional[tuple[datetime, int]] = None
        try:
            if form["status"] and form["status"] not in LOG_STATUSES:
                raise AccountError(f"status: choose one of {', '.join(LOG_STATUSES)}",
                                   "status")
            which = queue_store.LogFilter(status=form["status"],
                                          domain=form["domain"].lower(),
                                          address=form["address"],
                                          since=parse_when(form["since"], "since"),
                                          until=parse_when(form["until"], "until"))
            after = self._cursor(self.field(request, "after"))
        except AccountError as exc:
            error, which = field_error(exc), queue_store.LogFilter()
            request.setResponseCode(400)
        rows = yield self.runner.read(queue_store.search_log, which, PAGE_SIZE + 1, after)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        next_cursor = (f"{rows[-1].attempted_at.isoformat()}~{rows[-1].id}"
                       if more and rows else "")
        return self.render(request, "admin/deliveries.html", actor, rows=rows, form=form,
                           statuses=LOG_STATUSES, error=error, next_cursor=next_cursor)

    @staticmethod
    def _cursor(text: str) -> Optional[tuple[datetime, int]]:
        if not text:
            return None
        when, _, ident = text.rpartition("~")
        try:
            return datetime.fromisoformat(when), int(ident)
        except ValueError:
            raise AccountError("after: not a page cursor of this log", "after") from None


install_ops_error_pages(QueuePages.app)

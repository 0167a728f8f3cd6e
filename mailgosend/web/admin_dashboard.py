# -*- test-case-name: tests.test_admin_dash_pages -*-
"""The admin panel's dashboard (issue 14 item 1):

  GET /admin                  the page: queue, destinations, connections, storage,
                              certificates, security events as tables; two charts drawn
                              by static/js/admin-dashboard.js (uPlot, vendored); a domain
                              administrator is sent on to /admin/users
  GET /admin/api/dashboard    the same numbers as JSON, with the chart series

Messages received/sent/bounced/rejected come from counters.py's hourly buckets (per hour
for the last 24 hours, per day for 30 days): a few hundred rows read by index, never a scan
of the message or delivery tables.  Queue depth and storage are the cached gauges, connections
and certificates are read from the running listeners.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from klein import Klein
from twisted.internet import defer

from mailgosend.admin import Actor
from mailgosend.counters import MESSAGE_SERIES, hour_of
from mailgosend.store import security as security_store
from mailgosend.web.admin_guard import AdminGroup, admin_page, install_error_pages
from mailgosend.web.replies import see_other
from mailgosend.web.request import WebRequest

SERIES_NAMES = {"messages_received": "received", "messages_sent": "sent",
                "messages_bounced": "bounced", "messages_rejected": "rejected"}
DESTINATION_DAYS = 7
CERT_WARN_DAYS = 21
GAUGE_MAX_AGE = 5.0   # seconds a dashboard view may reuse the queue/storage reading


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


class DashboardPages(AdminGroup):
    app = Klein()

    @property
    def counters(self) -> Any:
        return self.panel.components["counters"]

    @defer.inlineCallbacks
    def data(self) -> Any:
        """Everything the dashboard shows, as plain JSON-ready data."""
        now = self.panel.now()
        this_hour = hour_of(now)
        day_start = this_hour.replace(hour=0)
        first_day = day_start - timedelta(days=29)
        since = min(first_day, this_hour - timedelta(hours=23))
        found = yield self.counters.recent_history(MESSAGE_SERIES, since, group="hour")
        hours = [this_hour - timedelta(hours=23 - i) for i in range(24)]
        days = [first_day + timedelta(days=i) for i in range(30)]
        hourly: dict[str, list[int]] = {short: [0] * 24 for short in SERIES_NAMES.values()}
        daily: dict[str, list[int]] = {short: [0] * 30 for short in SERIES_NAMES.values()}
        index_hour = {h: i for i, h in enumerate(hours)}
        for (hour, name, _label), value in found.items():
            short = SERIES_NAMES[name]
            if hour in index_hour:
                hourly[short][index_hour[hour]] += value
            day = (hour.replace(hour=0) - first_day).days
            if 0 <= day < 30:
                daily[short][day] += value
        destinations = yield self._destinations(now)
        gauges = yield self.counters.refresh_gauges(max_age=GAUGE_MAX_AGE)
        events = yield self.panel.runner.read(security_store.recent_events, 10)
        oldest = gauges.oldest
        certificates = []
        for cert in self.counters.certificates():
            left = (cert["not_after"] - now).total_seconds() / 86400
            certificates.append({
                "service": cert["service"], "name": cert["name"], "issuer": cert["issuer"],
                "not_after": cert["not_after"].strftime("%Y-%m-%d %H:%M UTC"),
                "days_left": int(left), "warn": left < CERT_WARN_DAYS})
        return {
            "now": now.isoformat(),
            "hourly": {"t": [int(h.timestamp()) for h in hours], **hourly},
            "daily": {"t": [int(d.timestamp()) for d in days], **daily},
            "totals_24h": {k: sum(v) for k, v in hourly.items()},
            "queue": {"messages": gauges.queued_messages,
                      "pending_recipients": gauges.pending_recipients,
                      "oldest": oldest.strftime("%Y-%m-%d %H:%M UTC") if oldest else None,
                      "oldest_age": _duration((now - oldest).total_seconds())
                      if oldest else None},
            "destinations": destinations,
            "connections": dict(sorted(self.counters.active_connections().items())),
            "storage": [{"domain": d, "bytes": b, "shown": _size(b)}
                        for d, b in gauges.storage_by_domain],
            "certificates": certificates,
            "security": [{"when": e.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                          "kind": e.kind, "ip": e.ip or "", "user": e.username or "",
                          "service": e.service or "", "detail": e.detail}
                         for e in events],
        }

    @defer.inlineCallbacks
    def _destinations(self, now: datetime) -> Any:
        since = hour_of(now) - timedelta(days=DESTINATION_DAYS)
        found = yield self.counters.recent_history(
            ("delivery_domain_ok", "delivery_domain_not_ok"), since, group="label")
        per: dict[str, list[int]] = {}
        for (_hour, name, domain), value in found.items():
            per.setdefault(domain, [0, 0])[0 if name == "delivery_domain_ok" else 1] += value
        busiest = sorted(per.items(), key=lambda item: (-sum(item[1]), item[0]))[:20]
        return [{"domain": d, "delivered": ok, "not_delivered": bad,
                 "rate": round(100.0 * ok / (ok + bad), 1) if ok + bad else None}
                for d, (ok, bad) in busiest]

    @app.route("/admin", methods=["GET", "HEAD"])
    @app.route("/admin/", methods=["GET", "HEAD"])
    @admin_page(full=False)
    @defer.inlineCallbacks
    def dashboard(self, request: WebRequest, actor: Actor) -> Any:
        if not actor.full:
            # The dashboard is server-wide, for full administrators; /admin is also the
            # panel's entry (the landing page's link), so a domain administrator starts
            # at the users of their domains instead of a 403.
            return see_other(request, "/admin/users")
        data = yield self.data()
        return self.render(request, "admin/dashboard.html", actor, data=data,
                           destination_days=DESTINATION_DAYS)

    @app.route("/admin/api/dashboard", methods=["GET"])
    @admin_page()
    @defer.inlineCallbacks
    def dashboard_data(self, request: WebRequest, actor: Actor) -> Any:
        data = yield self.data()
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(data).encode()


install_error_pages(DashboardPages.app)

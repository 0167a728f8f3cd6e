# -*- test-case-name: tests.test_admin_dash_audit -*-
"""The admin panel's audit log (issue 14 item 11):

  GET /admin/audit?actor=&action=&q=&since=&until=&before=

Every administrative action recorded by ``mailgosend.audit.record`` (who, what, target,
when, from where), newest first, 50 a page, paged by cursor (``before``: the last id shown,
so a page never shifts while new entries arrive).  Filters: the acting account (part of
the address), the action (a prefix: ``user.`` for every user action), a text in the
target or detail, a date range (UTC days, ``until`` inclusive).  A domain administrator
sees only the entries about their domains.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Optional
from urllib.parse import urlencode

from klein import Klein
from twisted.internet import defer

from mailgosend import audit
from mailgosend.admin import Actor
from mailgosend.web.admin_guard import AdminGroup, admin_page, install_error_pages
from mailgosend.web.forms import form_field, when_text
from mailgosend.web.request import WebRequest

PAGE = 50


def _day(text: str) -> Optional[datetime]:
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


class AuditPages(AdminGroup):
    app = Klein()

    @app.route("/admin/audit", methods=["GET", "HEAD"])
    @admin_page(full=False)
    @defer.inlineCallbacks
    def audit_log(self, request: WebRequest, actor: Actor) -> Any:
        fields = {name: form_field(request, name).strip()[:200]
                  for name in ("actor", "action", "q", "since", "until", "before")}
        errors = []
        since, until = _day(fields["since"]), _day(fields["until"])
        for name, parsed in (("since", since), ("until", until)):
            if fields[name] and parsed is None:
                errors.append(f"The date “{fields[name]}” ({name}) is not a date like "
                              "2026-12-05.")
        query = audit.AuditQuery(
            actor=fields["actor"], action=fields["action"], text=fields["q"], since=since,
            until=until + timedelta(days=1) if until else None,
            domains=None if actor.full else actor.domains,
            before=int(fields["before"]) if fields["before"].isdigit() else None,
            limit=PAGE + 1)
        entries = yield self.panel.runner.read(audit.search, query)
        more = len(entries) > PAGE
        entries = entries[:PAGE]
        older = ""
        if more:
            kept = {k: v for k, v in fields.items() if v and k != "before"}
            older = "/admin/audit?" + urlencode({**kept, "before": entries[-1].id})
        if errors:
            request.setResponseCode(400)
        return self.render(request, "admin/audit.html", actor, fields=fields, errors=errors,
                           older=older,
                           entries=[{"when": when_text(e.at), "actor": e.actor,
                                     "action": e.action, "target": e.target,
                                     "detail": e.detail, "ip": e.ip} for e in entries])


install_error_pages(AuditPages.app)

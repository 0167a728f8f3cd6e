# -*- test-case-name: tests.test_admin_security -*-
"""Bans, login attempts and security events in the admin panel (issue 14 item 7), full
administrators only:

  GET  /admin/security?ip=&username=&kind=&result=   bans in force; login attempts and
                                                     security events, newest first, filtered
  POST /admin/security/unban        kind=ip|account, target=...: lift a ban at once
  POST /admin/security/ban          ip=, hours=, reason=: ban an address by hand

The bans are store/security.py's (the ones every listener honours); the node's ban cache
(auth/bans.py) learns a change at once, other nodes at their next reload.  Changes are
audited and also written as security events, as the brute-force policy's own are.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Optional

from klein import Klein
from twisted.internet import defer

from mailgosend.admin import Actor
from mailgosend.store import security as security_store
from mailgosend.store.accounts import AccountError
from mailgosend.web.admin_guard import admin_action, admin_page
from mailgosend.web.admin_ops import (
    OpsGroup,
    field_error,
    install_ops_error_pages,
    parse_hours,
)
from mailgosend.web.request import WebRequest

LIST_SIZE = 100
NOTICES = {"unban": "Ban lifted.", "ban": "Address banned."}


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise AccountError(f"ip: {text!r} is not an IP address", "ip") from None


class SecurityPages(OpsGroup):
    app = Klein()

    @defer.inlineCallbacks
    def _page(self, request: WebRequest, actor: Actor, *,
              error: Optional[dict[str, str]] = None,
              form: Optional[dict[str, str]] = None) -> Any:
        filters = {n: self.field(request, n) for n in ("ip", "username", "kind", "result")}
        now = self.panel.now()
        success = {"success": True, "failure": False}.get(filters["result"])
        # Keyset cursors of the two lists ("Older attempts", "Older events").
        cursors = {n: int(v) if v.isdigit() else None
                   for n in ("attempts_before", "events_before")
                   for v in [self.field(request, n)]}

        def read(conn: Any) -> dict[str, Any]:
            return {
                "bans": security_store.list_bans(conn, now),
                "attempts": security_store.list_attempts(
                    conn, ip=filters["ip"], username=filters["username"], success=success,
                    before_id=cursors["attempts_before"], limit=LIST_SIZE),
                "events": security_store.list_events(
                    conn, kind=filters["kind"], ip=filters["ip"],
                    username=filters["username"], before_id=cursors["events_before"],
                    limit=LIST_SIZE)}
        data = yield self.runner.read(read)
        if error:
            request.setResponseCode(400)
        return self.render(request, "admin/security.html", actor, filters=filters,
                           page_size=LIST_SIZE,
                           error=error or {}, form=form or {},
                           notice=NOTICES.get(self.field(request, "done"), ""), **data)

    @app.route("/admin/security", methods=["GET", "HEAD"])
    @admin_page()
    def security(self, request: WebRequest, actor: Actor) -> Any:
        return self._page(request, actor)

    def _bans(self) -> Any:
        return self.panel.components.get("bans")

    @app.route("/admin/security/unban", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def unban(self, request: WebRequest, actor: Actor) -> Any:
        kind, target = self.field(request, "kind"), self.field(request, "target")
        try:
            if kind not in ("ip", "account"):
                raise AccountError("kind: choose ip or account", "kind")
            if kind == "ip":
                target = _ip(target)
            unban = security_store.unban_ip if kind == "ip" else security_store.unban_account

            def lift(conn: Any, who: str, now: Any) -> int:
                removed = unban(conn, who, now)
                if not removed:      # raised inside the job: nothing is audited
                    raise AccountError(f"{who} is not banned", "target")
                return removed
            yield self.change(request, actor, f"ban.remove_{kind}", target, lift, target,
                              self.panel.now())
        except AccountError as exc:
            page = yield self._page(request, actor, error=field_error(exc))
            return page
        cache = self._bans()
        if kind == "ip" and cache is not None:
            cache.forget(target)
        return self.back(request, "/admin/security?done=unban")

    @app.route("/admin/security/ban", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def ban(self, request: WebRequest, actor: Actor) -> Any:
        form = {n: self.field(request, n) for n in ("ip", "hours", "reason")}
        try:
            ip = _ip(form["ip"])
            until = self.panel.now() + parse_hours(form["hours"] or "24", "hours")
            reason = " ".join(form["reason"].split()) or "banned by an administrator"
            if len(reason) > 200 or not reason.isprintable():
                raise AccountError("reason: at most 200 printable characters", "reason")
            yield self.change(request, actor, "ban.add", ip, security_store.ban_ip, ip, until,
                              reason, self.panel.now(), detail=f"until {until.isoformat()}")
        except AccountError as exc:
            page = yield self._page(request, actor, error=field_error(exc), form=form)
            return page
        cache = self._bans()
        if cache is not None:
            cache.note(ip, until)
        return self.back(request, "/admin/security?done=ban")


install_ops_error_pages(SecurityPages.app)

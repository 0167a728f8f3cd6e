# -*- test-case-name: tests.test_admin_dash_tls -*-
"""The admin panel's TLS page (issue 14 item 9):

  GET  /admin/tls                 the certificates in use per service and name (from the
                                  running TLS contexts: tls/inventory.py), expiry, issuer;
                                  the upload form; ACME's status when it runs
  POST /admin/tls/upload          a certificate chain and its key (PEM files): checked by
                                  tls/upload.py (key matches, chain order, names cover
                                  HOSTNAME, validity), installed over TLS_CERT/TLS_KEY and
                                  every TLS context reloaded as on SIGHUP
                                  (ServerControl.install_certificate); audited as tls.upload
  POST /admin/tls/acme/renew      "Renew now", when the ACME service is wired

The ACME hook (tls/acme.py is another change): ``components["acme_status"]()`` (or
``components["acme"].status()``) gives one dict per ACME certificate (``names`` or
``name``, ``not_after``, ``last_success``, ``last_error``, ``next_check``; missing keys are
left blank), shown in an "ACME" table; when ``components["acme"]`` has ``renew_now()``, a
"Renew now" button calls it.  Without either the page says nothing about ACME.
"""

from __future__ import annotations

from typing import Any, Optional

from klein import Klein
from twisted.internet import defer
from werkzeug.exceptions import NotFound

from mailgosend import audit
from mailgosend.admin import Actor
from mailgosend.tls.inventory import certificates_in_use
from mailgosend.tls.upload import UploadError
from mailgosend.web.admin_guard import AdminGroup, admin_action, admin_page, install_error_pages
from mailgosend.web.forms import form_args, form_field
from mailgosend.web.replies import see_other
from mailgosend.web.request import WebRequest

NOTICES = {"uploaded": "The certificate was installed and every TLS listener reloaded it.",
           "renewing": "ACME renewal started; its status is below."}


def _upload(request: WebRequest, name: str) -> bytes:
    values = form_args(request).get(name.encode(), [])
    return values[0] if values else b""


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if hasattr(value, "strftime") else str(value or "")


def _acme_rows(components: Any) -> Optional[list[dict[str, str]]]:
    """ACME's status as table rows, or None when no ACME service runs."""
    status = components.get("acme_status")
    acme = components.get("acme")
    if status is not None:
        entries = status()
    elif hasattr(acme, "status"):
        entries = acme.status()
    else:
        return None
    rows = []
    for entry in entries:
        names = entry.get("names") or entry.get("served_names") or entry.get("name") or ""
        error = entry.get("last_error") or ""
        rows.append({
            "name": names if isinstance(names, str) else ", ".join(names),
            "state": "failing" if error else str(entry.get("state") or "ok"),
            "expires": _when(entry.get("not_after")),
            "last_success": _when(entry.get("last_success")),
            "detail": str(error or entry.get("detail") or (
                f"next check {_when(entry['next_check'])}" if entry.get("next_check")
                else ""))})
    return rows


class TLSPages(AdminGroup):
    app = Klein()

    @property
    def control(self) -> Any:
        return self.panel.components["control"]

    def _page(self, request: WebRequest, actor: Actor, error: str = "",
              error_field: str = "", notice: str = "") -> bytes:
        now = self.panel.now()
        rows = [{**c.as_dict(), "days_left": int((c.not_after - now).total_seconds() // 86400),
                 "expires": c.not_after.strftime("%Y-%m-%d %H:%M UTC")}
                for c in certificates_in_use(self.panel.components)]
        acme = _acme_rows(self.panel.components)
        renewer = self.panel.components.get("acme")
        config = self.control.config
        return self.render(request, "admin/tls.html", actor, certificates=rows,
                           mode=config["TLS_MODE"], hostname=config["HOSTNAME"],
                           cert_path=config["TLS_CERT"], key_path=config["TLS_KEY"],
                           acme=acme, can_renew=hasattr(renewer, "renew_now"),
                           error=error, error_field=error_field, notice=notice)

    @app.route("/admin/tls", methods=["GET", "HEAD"])
    @admin_page()
    def tls(self, request: WebRequest, actor: Actor) -> Any:
        return self._page(request, actor, notice=NOTICES.get(form_field(request, "done"), ""))

    @app.route("/admin/tls/upload", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def upload(self, request: WebRequest, actor: Actor) -> Any:
        try:
            checked = yield self.control.install_certificate(
                _upload(request, "certificate"), _upload(request, "key"))
        except UploadError as exc:
            request.setResponseCode(400)
            return self._page(request, actor, error=str(exc), error_field=exc.field)
        yield self.panel.runner.write(
            audit.record, actor=actor.email, action="tls.upload",
            target=", ".join(checked.names), ip=request.client_ip, at=self.panel.now(),
            detail=f"issuer {checked.issuer}, expires {checked.not_after:%Y-%m-%d}")
        return see_other(request, "/admin/tls?done=uploaded")

    @app.route("/admin/tls/acme/renew", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def renew(self, request: WebRequest, actor: Actor) -> Any:
        acme: Any = self.panel.components.get("acme")
        if not hasattr(acme, "renew_now"):
            raise NotFound()
        yield self.panel.runner.write(
            audit.record, actor=actor.email, action="tls.acme_renew", target="acme",
            ip=request.client_ip, at=self.panel.now())
        acme.renew_now()   # runs on; its status shows progress
        return see_other(request, "/admin/tls?done=renewing")


install_error_pages(TLSPages.app)

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

The ACME hook: the ACME service (tls/acme.py, another change) registers itself as
``components["acme"]`` with ``status() -> list[dict]`` (keys: name, state, not_after
(datetime or None), detail) and ``renew_now() -> Deferred``; this page shows both when the
component exists and says nothing about ACME otherwise.
"""

from __future__ import annotations

from typing import Any

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
        acme = self.panel.components.get("acme")
        config = self.control.config
        return self.render(request, "admin/tls.html", actor, certificates=rows,
                           mode=config["TLS_MODE"], hostname=config["HOSTNAME"],
                           cert_path=config["TLS_CERT"], key_path=config["TLS_KEY"],
                           acme=acme.status() if acme is not None else None,
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
        acme = self.panel.components.get("acme")
        if acme is None:
            raise NotFound()
        yield self.panel.runner.write(
            audit.record, actor=actor.email, action="tls.acme_renew", target="acme",
            ip=request.client_ip, at=self.panel.now())
        acme.renew_now()   # runs on; its status shows progress
        return see_other(request, "/admin/tls?done=renewing")


install_error_pages(TLSPages.app)

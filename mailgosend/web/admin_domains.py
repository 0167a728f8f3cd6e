# -*- test-case-name: tests.test_admin_domains -*-
"""Domains in the admin panel (issue 14 item 2), full administrators only:

  GET  /admin/domains                          the domains, with users/aliases counts; add form
  POST /admin/domains                          add (IDNA: stored as A-labels, domains.py)
  GET  /admin/domains/<d>                      one domain: state, DKIM keys and their TXT
                                               records, every DNS record to publish
                                               (dnsrecords.py), its domain administrators
  POST /admin/domains/<d>/enable|disable
  GET  /admin/domains/<d>/remove               what removing would delete (users, aliases,
                                               messages, DKIM keys), and the confirmation
  POST /admin/domains/<d>/remove               remove, with everything listed
  POST /admin/domains/<d>/dkim                 generate a key (rsa2048 / ed25519); pending
                                               when one of its algorithm already signs
  POST /admin/domains/<d>/dkim/<sel>/activate  rotation: sign with the pending key
  GET  /admin/domains/<d>/check                the live DNS check (doctor.py, as
                                               ``mailgosend doctor``), in a thread
  POST /admin/domains/<d>/admins[/remove]      per-domain administrators (email)

The operations are AccountAdmin's and store/dkimkeys.py's, as for the CLI; every change is
recorded in the audit log in its transaction (web/admin_ops.py).
"""

from __future__ import annotations

from typing import Any, Optional

from klein import Klein
from twisted.internet import defer, threads

from mailgosend import doctor
from mailgosend.admin import Actor
from mailgosend.dnsrecords import domain_records
from mailgosend.store import dkimkeys
from mailgosend.store.accounts import AccountError
from mailgosend.web.admin_guard import admin_action, admin_page
from mailgosend.web.admin_ops import OpsGroup, field_error, install_ops_error_pages
from mailgosend.web.request import WebRequest

NOTICES = {
    "added": "Domain added.", "enabled": "Domain enabled.", "disabled": "Domain disabled.",
    "removed": "Domain removed.", "dkim": "DKIM key generated.",
    "activated": "The new DKIM key signs from now on.", "admin": "Domain administrator added.",
    "unadmin": "Domain administrator removed.",
}


class DomainPages(OpsGroup):
    app = Klein()

    def __init__(self, panel: Any) -> None:
        super().__init__(panel)
        self._resolver: Any = None

    # --- list and add ------------------------------------------------------------------

    @defer.inlineCallbacks
    def _list(self, request: WebRequest, actor: Actor, *, error: Optional[dict[str, str]] = None,
              name: str = "") -> Any:
        rows = yield self.runner.read(self.admin.list_domains)
        return self.render(request, "admin/domains.html", actor, domains=rows,
                           error=error or {}, name=name,
                           notice=NOTICES.get(self.field(request, "done"), ""))

    @app.route("/admin/domains", methods=["GET", "HEAD"])
    @admin_page()
    def domains(self, request: WebRequest, actor: Actor) -> Any:
        return self._list(request, actor)

    @app.route("/admin/domains", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def add(self, request: WebRequest, actor: Actor) -> Any:
        name = self.field(request, "domain")
        try:
            added = yield self.change(request, actor, "domain.add", name,
                                      self.admin.add_domain, name, self.panel.now(),
                                      detail=lambda a: a.postmaster)
        except AccountError as exc:
            request.setResponseCode(400)
            page = yield self._list(request, actor, error=field_error(exc), name=name)
            return page
        return self.back(request, f"/admin/domains/{added.domain.name}?done=added")

    # --- one domain --------------------------------------------------------------------

    def _read_domain(self, conn: Any, name: str) -> dict[str, Any]:
        canonical = self.admin.get_domain(conn, name).name      # or UnknownDomain: 404
        domain = next(d for d in self.admin.list_domains(conn) if d.name == canonical)
        keys = dkimkeys.list_keys(conn, domain.name)
        return {"domain": domain,
                "keys": [{"key": k, "state": dkimkeys.key_state(k, keys),
                          "zone": dkimkeys.zone_file_record(k.record_name, k.txt_value)}
                         for k in keys],
                "records": domain_records(conn, domain.name, self.panel.config),
                "admins": self.admin.domain_admins(conn, domain.name)}

    @defer.inlineCallbacks
    def _domain_page(self, request: WebRequest, actor: Actor, name: str, *,
                     error: Optional[dict[str, str]] = None) -> Any:
        try:
            data = yield self.runner.read(self._read_domain, name)
        except AccountError:
            request.setResponseCode(404)
            return self.panel.pages.render(request, "error.html", request.web_session,
                                           title="Page not found",
                                           message=f"There is no domain {name}.")
        if error:
            request.setResponseCode(400)
        return self.render(request, "admin/domain.html", actor, error=error or {},
                           notice=NOTICES.get(self.field(request, "done"), ""),
                           algorithms=tuple(dkimkeys.ALGORITHMS), **data)

    @app.route("/admin/domains/<name>", methods=["GET", "HEAD"])
    @admin_page()
    def domain(self, request: WebRequest, actor: Actor, name: str) -> Any:
        return self._domain_page(request, actor, name)

    @app.route("/admin/domains/<name>/<any(enable,disable):state>", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def set_enabled(self, request: WebRequest, actor: Actor, name: str, state: str) -> Any:
        try:
            domain = yield self.change(request, actor, f"domain.{state}", name,
                                       self.admin.set_domain_enabled, name, state == "enable")
        except AccountError as exc:
            page = yield self._domain_page(request, actor, name, error=field_error(exc))
            return page
        return self.back(request, f"/admin/domains/{domain.name}?done={state}d")

    @app.route("/admin/domains/<name>/remove", methods=["GET", "HEAD"])
    @admin_page()
    @defer.inlineCallbacks
    def remove_page(self, request: WebRequest, actor: Actor, name: str) -> Any:
        contents = yield self.runner.read(self.admin.domain_contents, name)
        return self.render(request, "admin/domain_remove.html", actor, contents=contents)

    @app.route("/admin/domains/<name>/remove", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def remove(self, request: WebRequest, actor: Actor, name: str) -> Any:
        if self.field(request, "confirm") != "yes":
            return self.back(request, f"/admin/domains/{name}/remove")
        contents = yield self.runner.read(self.admin.domain_contents, name)
        summary = (f"{len(contents.users)} user(s), {contents.aliases} alias(es), "
                   f"{contents.messages} message(s), {contents.dkim_keys} DKIM key(s)")
        yield self.change(request, actor, "domain.remove", contents.domain.name,
                          self.admin.remove_domain, contents.domain.name, with_users=True,
                          detail=summary)
        return self.back(request, "/admin/domains?done=removed")

    # --- DKIM ----------------------------------------------------------------------------

    @app.route("/admin/domains/<name>/dkim", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def generate(self, request: WebRequest, actor: Actor, name: str) -> Any:
        algo = self.field(request, "algo") or "rsa2048"
        selector = self.field(request, "selector") or None
        try:
            if selector is not None:
                dkimkeys.validate_selector(selector)
            if algo not in dkimkeys.ALGORITHMS:
                raise AccountError(f"unknown algorithm {algo!r}: choose "
                                   f"{' or '.join(dkimkeys.ALGORITHMS)}", "algo")
            yield self.runner.read(self.admin.get_domain, name)   # a domain of ours?
            # RSA key generation is CPU-bound: a worker, not the reactor or the DB writer.
            material = yield self.panel.workers.run(dkimkeys.new_key_material, algo)
            key = yield self.change(
                request, actor, "dkim.generate", name, dkimkeys.generate_key,
                self.panel.components["keyring"], name, algo, selector,
                now=self.panel.now(), material=material, domain=name,
                detail=lambda k: f"{k.algorithm} {k.selector} "
                                 f"{'active' if k.active else 'pending'}")
        except AccountError as exc:
            page = yield self._domain_page(request, actor, name, error=field_error(exc))
            return page
        return self.back(request, f"/admin/domains/{key.domain}?done=dkim#dkim")

    @app.route("/admin/domains/<name>/dkim/<selector>/activate", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def activate(self, request: WebRequest, actor: Actor, name: str, selector: str) -> Any:
        try:
            key, _retired = yield self.change(request, actor, "dkim.activate",
                                              f"{selector}._domainkey.{name}",
                                              dkimkeys.activate_key, name, selector,
                                              domain=name)
        except AccountError as exc:
            page = yield self._domain_page(request, actor, name, error=field_error(exc))
            return page
        return self.back(request, f"/admin/domains/{key.domain}?done=activated#dkim")

    # --- domain administrators -----------------------------------------------------------

    @app.route("/admin/domains/<name>/admins", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def add_admin(self, request: WebRequest, actor: Actor, name: str) -> Any:
        email = self.field(request, "email")
        try:
            yield self.change(request, actor, "domain_admin.add", email,
                              self.admin.add_domain_admin, email, name, self.panel.now(),
                              domain=name)
        except AccountError as exc:
            page = yield self._domain_page(request, actor, name, error=field_error(exc))
            return page
        return self.back(request, f"/admin/domains/{name}?done=admin#admins")

    @app.route("/admin/domains/<name>/admins/remove", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def remove_admin(self, request: WebRequest, actor: Actor, name: str) -> Any:
        email = self.field(request, "email")
        try:
            yield self.change(request, actor, "domain_admin.remove", email,
                              self.admin.remove_domain_admin, email, name, domain=name)
        except AccountError as exc:
            page = yield self._domain_page(request, actor, name, error=field_error(exc))
            return page
        return self.back(request, f"/admin/domains/{name}?done=unadmin#admins")

    # --- the live DNS check --------------------------------------------------------------

    def resolver(self) -> Any:
        if self._resolver is None:
            from mailgosend.mailauth.resolver import make_resolver

            config = self.panel.config
            self._resolver = make_resolver(config["DNS_PRIMARY"], config["DNS_SECONDARY"])
        return self._resolver

    @app.route("/admin/domains/<name>/check", methods=["GET", "HEAD"])
    @admin_page()
    @defer.inlineCallbacks
    def check(self, request: WebRequest, actor: Actor, name: str) -> Any:
        config = self.panel.config
        inputs = yield self.runner.read(doctor.domain_inputs, name, config)
        # dnspython and a TCP connect block: the reactor's thread pool, never its thread.
        report = yield threads.deferToThread(
            doctor.run_checks, self.resolver(), doctor.DoctorSettings.from_config(config),
            [inputs])
        return self.render(request, "admin/domain_check.html", actor, domain=inputs.domain,
                           findings=report.domains[inputs.domain], server=report.server,
                           failures=report.count(doctor.FAIL),
                           warnings=report.count(doctor.WARN))


install_ops_error_pages(DomainPages.app)

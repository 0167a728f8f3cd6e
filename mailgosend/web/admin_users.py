# -*- test-case-name: tests.test_admin_users -*-
"""Users and aliases in the admin panel (issue 14 items 3 and 4):

  GET  /admin/users?domain=&q=&after=          users by address, per domain, searched,
                                               a page at a time (keyset on the address)
  POST /admin/users                            create (password set, or random and shown once)
  GET  /admin/users/<email>                    one user: display name, quota and usage,
                                               state, password, MFA, admin, app passwords
  POST /admin/users/<email>/profile|quota|enable|disable|password|mfa-reset|admin
  POST /admin/users/<email>/app-passwords/revoke
  GET  /admin/users/<email>/delete             what deleting removes; the confirmation
  POST /admin/users/<email>/delete
  GET  /admin/aliases?domain=                  aliases and catch-alls of a domain; add form
  POST /admin/aliases, /admin/aliases/remove

Domain administrators (``Actor.full`` false) may use these routes for the users and aliases
of their own domains only: every route checks the domain of its target with
``actor.require`` (403 otherwise), and lists show only their domains.  Making a user an
administrator is for full administrators.  The rules are AccountAdmin's, as in the CLI.
"""

from __future__ import annotations

from typing import Any, Optional

from klein import Klein
from twisted.internet import defer

from mailgosend.admin import Actor
from mailgosend.config import parse_size
from mailgosend.store.accounts import AccountError
from mailgosend.store.addresses import AddressError, normalize_domain, parse_alias_source
from mailgosend.web.admin_guard import admin_action, admin_page
from mailgosend.web.admin_ops import PAGE_SIZE, OpsGroup, field_error, install_ops_error_pages
from mailgosend.web.request import WebRequest

NOTICES = {
    "created": "User created.", "profile": "Display name saved.", "quota": "Quota saved.",
    "enabled": "User enabled.", "disabled": "User disabled.",
    "password": "Password changed; the user's web sessions were ended.",
    "mfa": "Two-factor authentication turned off.", "admin": "Administrator rights changed.",
    "revoked": "App password revoked.", "deleted": "User deleted with all of their mail.",
    "alias": "Alias added.", "unalias": "Alias removed.",
}


def _domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


def _require_address(actor: Actor, email: str) -> None:
    """Refuse (403) an address outside the actor's domains before anything is looked up,
    so a domain administrator cannot even learn whether another domain's user exists."""
    if actor.full:
        return
    try:
        domain = normalize_domain(_domain_of(email))
    except AddressError:
        domain = _domain_of(email)
    actor.require(domain)


def _canonical_domain(text: str) -> str:
    try:
        return normalize_domain(text)
    except AddressError as exc:
        raise AccountError(str(exc), "domain") from None


class UserPages(OpsGroup):
    app = Klein()

    # --- the list, and creating a user ---------------------------------------------------

    def _scope(self, actor: Actor, domain: str) -> Optional[list[str]]:
        """The domains a list covers: the one asked for (if allowed), else all the actor's."""
        if domain:
            actor.require(domain)
            return [domain]
        return None if actor.full else sorted(actor.domains)

    @defer.inlineCallbacks
    def _users(self, request: WebRequest, actor: Actor, *, error: Optional[dict[str, str]] = None,
               form: Optional[dict[str, str]] = None, created: Optional[dict[str, str]] = None
               ) -> Any:
        domain = _canonical_domain(self.field(request, "domain")) \
            if self.field(request, "domain") else ""
        text = self.field(request, "q")
        after = self.field(request, "after") or None
        scope = self._scope(actor, domain)
        rows = yield self.runner.read(self.admin.search_users, scope, text, after,
                                      PAGE_SIZE + 1)
        domains = yield self.runner.read(self.admin.list_domains)
        if not actor.full:
            domains = [d for d in domains if actor.may_manage(d.name)]
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        if error:
            request.setResponseCode(400)
        return self.render(request, "admin/users.html", actor, users=rows, domains=domains,
                           domain=domain, q=text, after=after,
                           next_after=rows[-1].email if more else "",
                           error=error or {}, form=form or {}, created=created,
                           notice=NOTICES.get(self.field(request, "done"), ""))

    @app.route("/admin/users", methods=["GET", "HEAD"])
    @admin_page(full=False)
    def users(self, request: WebRequest, actor: Actor) -> Any:
        return self._users(request, actor)

    @app.route("/admin/users", methods=["POST"])
    @admin_action(full=False)
    @defer.inlineCallbacks
    def create(self, request: WebRequest, actor: Actor) -> Any:
        email = self.field(request, "email")
        password = self.field(request, "password")
        form = {"email": email, "quota": self.field(request, "quota")}
        try:
            _require_address(actor, email)
            address = yield self.runner.read(self.admin.check_new_user, email)
            actor.require(_domain_of(address))
            quota = self._quota(form["quota"]) if form["quota"] else None
            shown = ""
            if not password:
                password = shown = self.admin.random_password()
            self.admin.check_password(password, address)
            password_hash = yield self.panel.workers.run(self.admin.hash_password, password)
            user = yield self.change(request, actor, "user.add", address, self.admin.add_user,
                                     address, password_hash, self.panel.now(), quota=quota,
                                     domain=_domain_of(address))
        except AccountError as exc:
            page = yield self._users(request, actor, error=field_error(exc), form=form)
            return page
        if shown:
            # Shown once, on this page, never stored or logged.
            page = yield self._users(request, actor, created={"email": user.email,
                                                              "password": shown})
            return page
        return self.back(request, f"/admin/users/{user.email}?done=created")

    @staticmethod
    def _quota(text: str) -> int:
        try:
            return parse_size(text)
        except ValueError as exc:
            raise AccountError(f"quota: {exc} (e.g. 2G, 500M, or 0 for unlimited)",
                               "quota") from None

    # --- one user ------------------------------------------------------------------------

    def _read_user(self, conn: Any, email: str) -> dict[str, Any]:
        # The caller has checked the address's domain (_require_address).
        user = self.admin.get_user(conn, email)
        return {"user": user, "display_name": self.admin.display_name(conn, user.email),
                "app_passwords": self.admin.list_app_passwords(conn, user.email),
                "aliases": self.admin.aliases_of(conn, user.email)}

    @defer.inlineCallbacks
    def _user_page(self, request: WebRequest, actor: Actor, email: str, *,
                   error: Optional[dict[str, str]] = None, password: str = "") -> Any:
        _require_address(actor, email)
        data = yield self.runner.read(self._read_user, email)
        actor.require(data["user"].domain)
        if error:
            request.setResponseCode(400)
        return self.render(request, "admin/user.html", actor, error=error or {},
                           new_password=password,
                           notice=NOTICES.get(self.field(request, "done"), ""), **data)

    @defer.inlineCallbacks
    def _target(self, actor: Actor, email: str) -> Any:
        """The user an action is about, once the actor may manage its domain."""
        _require_address(actor, email)
        user = yield self.runner.read(self.admin.get_user, email)
        actor.require(user.domain)
        return user

    @app.route("/admin/users/<email>", methods=["GET", "HEAD"])
    @admin_page(full=False)
    def user(self, request: WebRequest, actor: Actor, email: str) -> Any:
        return self._user_page(request, actor, email)

    @defer.inlineCallbacks
    def _act(self, request: WebRequest, actor: Actor, email: str, action: str, done: str,
             operation: Any, *args: Any, detail: str = "") -> Any:
        user = yield self._target(actor, email)
        try:
            yield self.change(request, actor, action, user.email, operation, user.email, *args,
                              domain=user.domain, detail=detail)
        except AccountError as exc:
            page = yield self._user_page(request, actor, user.email, error=field_error(exc))
            return page
        return self.back(request, f"/admin/users/{user.email}?done={done}")

    @app.route("/admin/users/<email>/profile", methods=["POST"])
    @admin_action(full=False)
    def profile(self, request: WebRequest, actor: Actor, email: str) -> Any:
        moved: set[int] = set()  # whose JMAP identities were renamed (admin.py announce)
        done = self._act(request, actor, email, "user.display_name", "profile",
                         self.admin.set_display_name, self.field(request, "display_name"),
                         moved)

        def announce(page: Any) -> Any:
            self.admin.announce(moved)
            return page
        return done.addCallback(announce)

    @app.route("/admin/users/<email>/quota", methods=["POST"])
    @admin_action(full=False)
    @defer.inlineCallbacks
    def quota(self, request: WebRequest, actor: Actor, email: str) -> Any:
        text = self.field(request, "quota")
        try:
            size = self._quota(text)
        except AccountError as exc:
            yield self._target(actor, email)
            page = yield self._user_page(request, actor, email, error=field_error(exc))
            return page
        page = yield self._act(request, actor, email, "user.quota", "quota",
                               self.admin.set_quota, size, detail=f"{size} bytes")
        return page

    @app.route("/admin/users/<email>/<any(enable,disable):state>", methods=["POST"])
    @admin_action(full=False)
    def set_enabled(self, request: WebRequest, actor: Actor, email: str, state: str) -> Any:
        return self._act(request, actor, email, f"user.{state}", f"{state}d",
                         self.admin.set_user_enabled, state == "enable")

    @app.route("/admin/users/<email>/mfa-reset", methods=["POST"])
    @admin_action(full=False)
    def mfa_reset(self, request: WebRequest, actor: Actor, email: str) -> Any:
        return self._act(request, actor, email, "user.mfa_reset", "mfa", self.admin.reset_mfa)

    @app.route("/admin/users/<email>/admin", methods=["POST"])
    @admin_action(full=True)
    def make_admin(self, request: WebRequest, actor: Actor, email: str) -> Any:
        on = self.field(request, "admin") == "yes"
        return self._act(request, actor, email, "user.admin" if on else "user.unadmin",
                         "admin", self.admin.set_user_admin, on)

    @app.route("/admin/users/<email>/password", methods=["POST"])
    @admin_action(full=False)
    @defer.inlineCallbacks
    def password(self, request: WebRequest, actor: Actor, email: str) -> Any:
        user = yield self._target(actor, email)
        password = self.field(request, "password")
        shown = ""
        if self.field(request, "mode") == "random" or not password:
            password = shown = self.admin.random_password()
        try:
            self.admin.check_password(password, user.email)
        except AccountError as exc:
            page = yield self._user_page(request, actor, user.email, error=field_error(exc))
            return page
        password_hash = yield self.panel.workers.run(self.admin.hash_password, password)
        yield self.change(request, actor, "user.password", user.email,
                          self.admin.change_password, user.email, password_hash,
                          self.panel.now(), domain=user.domain,
                          detail="random" if shown else "set")
        if shown:
            page = yield self._user_page(request, actor, user.email, password=shown)
            return page
        return self.back(request, f"/admin/users/{user.email}?done=password")

    @app.route("/admin/users/<email>/app-passwords/revoke", methods=["POST"])
    @admin_action(full=False)
    def revoke(self, request: WebRequest, actor: Actor, email: str) -> Any:
        name = self.field(request, "name")
        return self._act(request, actor, email, "user.app_password_revoke", "revoked",
                         self.admin.revoke_app_password, name, detail=name)

    @app.route("/admin/users/<email>/delete", methods=["GET", "HEAD"])
    @admin_page(full=False)
    @defer.inlineCallbacks
    def delete_page(self, request: WebRequest, actor: Actor, email: str) -> Any:
        user = yield self._target(actor, email)
        return self.render(request, "admin/user_delete.html", actor, user=user)

    @app.route("/admin/users/<email>/delete", methods=["POST"])
    @admin_action(full=False)
    @defer.inlineCallbacks
    def delete(self, request: WebRequest, actor: Actor, email: str) -> Any:
        user = yield self._target(actor, email)
        if self.field(request, "confirm") != "yes":
            return self.back(request, f"/admin/users/{user.email}/delete")
        if user.id == actor.user_id:
            page = yield self._user_page(request, actor, user.email, error={
                "field": "", "error": "You cannot delete your own account here."})
            return page
        yield self.change(request, actor, "user.delete", user.email, self.admin.delete_user,
                          user.email, domain=user.domain,
                          detail=f"{user.used_bytes} bytes of mail")
        return self.back(request, f"/admin/users?domain={user.domain}&done=deleted")

    # --- aliases and catch-alls ----------------------------------------------------------

    @defer.inlineCallbacks
    def _aliases(self, request: WebRequest, actor: Actor, *,
                 error: Optional[dict[str, str]] = None,
                 form: Optional[dict[str, str]] = None) -> Any:
        domains = yield self.runner.read(self.admin.list_domains)
        domains = [d for d in domains if actor.may_manage(d.name)]
        asked = self.field(request, "domain") or (form or {}).get("domain", "")
        domain = _canonical_domain(asked) if asked else (domains[0].name if domains else "")
        rows = []
        if domain:
            actor.require(domain)
            rows = yield self.runner.read(self.admin.list_aliases, domain)
        if error:
            request.setResponseCode(400)
        return self.render(request, "admin/aliases.html", actor, aliases=rows, domain=domain,
                           domains=domains, error=error or {}, form=form or {},
                           notice=NOTICES.get(self.field(request, "done"), ""))

    @app.route("/admin/aliases", methods=["GET", "HEAD"])
    @admin_page(full=False)
    def aliases(self, request: WebRequest, actor: Actor) -> Any:
        return self._aliases(request, actor)

    @staticmethod
    def _source_domain(source: str) -> str:
        try:
            return parse_alias_source(source)[1]
        except AddressError as exc:
            raise AccountError(str(exc), "source") from None

    @app.route("/admin/aliases", methods=["POST"])
    @admin_action(full=False)
    @defer.inlineCallbacks
    def add_alias(self, request: WebRequest, actor: Actor) -> Any:
        source, destination = self.field(request, "source"), self.field(request, "destination")
        form = {"source": source, "destination": destination}
        try:
            domain = self._source_domain(source)
            form["domain"] = domain
            actor.require(domain)
            moved: set[int] = set()
            yield self.change(request, actor, "alias.add", source, self.admin.add_alias, source,
                              destination, self.panel.now(), moved, domain=domain,
                              detail=f"-> {destination}")
            self.admin.announce(moved)
        except AccountError as exc:
            page = yield self._aliases(request, actor, error=field_error(exc), form=form)
            return page
        return self.back(request, f"/admin/aliases?domain={domain}&done=alias")

    @app.route("/admin/aliases/remove", methods=["POST"])
    @admin_action(full=False)
    @defer.inlineCallbacks
    def remove_alias(self, request: WebRequest, actor: Actor) -> Any:
        source, destination = self.field(request, "source"), self.field(request, "destination")
        try:
            domain = self._source_domain(source)
            actor.require(domain)
            moved: set[int] = set()
            yield self.change(request, actor, "alias.remove", source, self.admin.remove_alias,
                              source, destination or None, moved, domain=domain,
                              detail=f"-> {destination}" if destination else "all")
            self.admin.announce(moved)
        except AccountError as exc:
            page = yield self._aliases(request, actor, error=field_error(exc),
                                       form={"domain": ""})
            return page
        return self.back(request, f"/admin/aliases?domain={domain}&done=unalias")


install_ops_error_pages(UserPages.app)

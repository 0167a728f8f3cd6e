# -*- test-case-name: tests.test_admin_dash_settings -*-
"""The admin panel's settings page (issue 14 item 8):

  GET  /admin/settings          every configuration key by section, with its documentation
                                from the key table (config_keys.py), its value in the file,
                                and whether a change applies at once or at the next restart
  GET  /admin/settings/<KEY>    the form for one key that is not a secret
  POST /admin/settings/<KEY>    save it: checked as at start-up and written into
                                app_config.conf by config.edit_file (comments and order
                                kept); applied live for config_keys.LIVE_KEYS
                                (ServerControl.save_settings); audited as settings.edit

A refused value answers 400 with the reason naming the key, and the file is not touched.
Secrets (ENCRYPTION_KEY, SESSION_SECRET, RELAY_PASSWORD, METRICS_TOKEN) are never shown
or edited here; a key set by a MAILGO_ variable is shown as such and not editable.
"""

from __future__ import annotations

from typing import Any, Optional

from klein import Klein
from twisted.internet import defer
from werkzeug.exceptions import NotFound

from mailgosend import audit
from mailgosend import config_keys as K
from mailgosend.admin import Actor
from mailgosend.config import ConfigError, editable, environment_overrides, file_values
from mailgosend.web.admin_guard import (
    AdminGroup,
    AdminPanel,
    admin_action,
    admin_page,
    install_error_pages,
)
from mailgosend.web.forms import form_field
from mailgosend.web.replies import see_other
from mailgosend.web.request import WebRequest

APPLIES_NOW = "Applies at once"
NEEDS_RESTART = "Needs a restart"


def _choices(key: K.Key) -> tuple[str, ...]:
    if key.kind == K.BOOL:
        return ("true", "false")
    if key.kind == K.CHOICE:
        return key.choices
    if key.kind == K.LOGLEVEL:
        return ("debug", "info", "warn", "error", "critical")
    return ()


class SettingsPages(AdminGroup):
    app = Klein()

    def __init__(self, panel: AdminPanel) -> None:
        super().__init__(panel)
        # Keys saved since this process started that wait for a restart.
        self.restart_pending: set[str] = set()

    @property
    def control(self) -> Any:
        return self.panel.components["control"]

    def _key(self, name: str) -> K.Key:
        key = K.BY_NAME.get(name)
        if key is None:
            raise NotFound()
        return key

    @defer.inlineCallbacks
    def _file(self) -> Any:
        values = yield self.panel.workers.run(file_values, self.control.config.path)
        return values

    @app.route("/admin/settings", methods=["GET", "HEAD"])
    @admin_page()
    @defer.inlineCallbacks
    def settings(self, request: WebRequest, actor: Actor) -> Any:
        in_file = yield self._file()
        overridden = environment_overrides(self.control.config)
        query = form_field(request, "q").strip().lower()
        sections = []
        for section, title in K.SECTIONS:
            rows = []
            for key in K.KEYS:
                if key.section != section:
                    continue
                if query and query not in key.name.lower() and query not in key.doc.lower():
                    continue
                secret = key.name in K.SECRET_KEYS
                rows.append({
                    "name": key.name, "doc": key.doc, "pending": key.pending,
                    "default": "generated" if key.generate else (key.default or "(empty)"),
                    "value": "(hidden)" if secret else in_file.get(key.name, None),
                    "env": overridden.get(key.name, ""),
                    "editable": editable(key.name) and key.name not in overridden,
                    "live": key.name in K.LIVE_KEYS,
                    "restart_pending": key.name in self.restart_pending})
            if rows:
                sections.append({"title": title, "id": section, "rows": rows})
        saved = form_field(request, "saved")
        notice = ""
        if saved in K.BY_NAME:
            notice = (f"{saved} saved. " + ("It applies at once." if saved in K.LIVE_KEYS
                                            else "It takes effect when the server restarts."))
        return self.render(request, "admin/settings.html", actor, sections=sections,
                           notice=notice, query=query, path_shown=self.control.config.path,
                           applies_now=APPLIES_NOW, needs_restart=NEEDS_RESTART,
                           restart_pending=sorted(self.restart_pending))

    @defer.inlineCallbacks
    def _edit_page(self, request: WebRequest, actor: Actor, key: K.Key,
                   value: Optional[str] = None, error: str = "") -> Any:
        if value is None:
            in_file = yield self._file()
            value = in_file.get(key.name, key.default)
        return self.render(request, "admin/setting_edit.html", actor, key=key, value=value,
                           error=error, choices=_choices(key), live=key.name in K.LIVE_KEYS,
                           applies_now=APPLIES_NOW, needs_restart=NEEDS_RESTART)

    def _refusal(self, request: WebRequest, key: K.Key) -> Optional[str]:
        env = environment_overrides(self.control.config).get(key.name)
        if env:
            return f"{key.name} is set by the environment variable {env}; change it there."
        if not editable(key.name):
            return f"{key.name} is a secret: change it in {self.control.config.path}."
        return None

    @app.route("/admin/settings/<name>", methods=["GET", "HEAD"])
    @admin_page()
    @defer.inlineCallbacks
    def edit_page(self, request: WebRequest, actor: Actor, name: str) -> Any:
        key = self._key(name)
        refusal = self._refusal(request, key)
        if refusal:
            return self.refuse(request, actor, refusal)
        page = yield self._edit_page(request, actor, key)
        return page

    @app.route("/admin/settings/<name>", methods=["POST"])
    @admin_action()
    @defer.inlineCallbacks
    def save(self, request: WebRequest, actor: Actor, name: str) -> Any:
        key = self._key(name)
        refusal = self._refusal(request, key)
        if refusal:
            return self.refuse(request, actor, refusal)
        value = form_field(request, "value").strip()
        before = yield self._file()
        try:
            yield self.control.save_settings({key.name: value})
        except ConfigError as exc:
            request.setResponseCode(400)
            page = yield self._edit_page(request, actor, key, value,
                                         error="; ".join(exc.problems))
            return page
        if key.name not in K.LIVE_KEYS:
            self.restart_pending.add(key.name)
        old = before.get(key.name, "(default)")
        yield self.panel.runner.write(
            audit.record, actor=actor.email, action="settings.edit", target=key.name,
            ip=request.client_ip, at=self.panel.now(), detail=f"{old} -> {value}")
        return see_other(request, f"/admin/settings?saved={key.name}#{key.name}")


install_error_pages(SettingsPages.app)

"""The settings page (web/admin_settings.py) and the one writer of app_config.conf
(config.edit_file): every key with its documentation, a live key edited that applies
without a restart, a restart key saved and said so, malformed values refused with the key
named and the file byte-for-byte unchanged, comments and order kept, secrets and keys set
by the environment not editable, the audit entry of each change."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend import config_keys as K
from mailgosend.config import ConfigError, edit_file, load
from mailgosend.db.runner import run_sync
from mailgosend.store import audit as audit_store
from tests.support.web import csrf_from
from tests.test_admin_dash_pages import ADMIN, AdminTestCase


class EditFileTests(unittest.TestCase):
    """config.edit_file on a file a person edited: their comments, spelling and order stay."""

    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "app_config.conf")
        os.makedirs(os.path.dirname(self.path))
        load(self.path, profile="local", environ={})   # generate a complete file
        with open(self.path, encoding="utf-8") as handle:
            text = handle.read()
        # A person's own comment, and an alias spelling (QUEUE_RETRY_MIN for QUEUE_RETRY_MINS).
        text = text.replace("\nMAX_RECIPIENTS = ", "\n# our ISP allows 50\nMAX_RECIPIENTS = ")
        text = text.replace("\nQUEUE_RETRY_MINS = ", "\nQUEUE_RETRY_MIN = ")
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write(text)
        self.config = load(self.path, environ={})

    def read(self) -> str:
        with open(self.path, encoding="utf-8") as handle:
            return handle.read()

    def test_only_the_changed_lines_change(self) -> None:
        before = self.read().splitlines()
        new = edit_file(self.config, {"MAX_RECIPIENTS": "50", "QUEUE_RETRY_MINS": "1,2"})
        after = self.read().splitlines()
        self.assertEqual(len(before), len(after))
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        self.assertEqual([b for _, b in changed],
                         ["MAX_RECIPIENTS = 50", "QUEUE_RETRY_MIN = 1,2"])
        self.assertIn("# our ISP allows 50", after)
        self.assertEqual((new["MAX_RECIPIENTS"], new["QUEUE_RETRY_MINS"]), (50, (1, 2)))
        self.assertEqual(load(self.path, environ={})["MAX_RECIPIENTS"], 50)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)

    def test_a_malformed_value_names_the_key_and_changes_nothing(self) -> None:
        before = self.read()
        with self.assertRaises(ConfigError) as caught:
            edit_file(self.config, {"MAX_RECIPIENTS": "lots"})
        self.assertIn("MAX_RECIPIENTS = 'lots': must be a whole number", str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            edit_file(self.config, {"METRICS_ALLOW": "10.0.0.0/8, not-a-network"})
        self.assertIn("METRICS_ALLOW: 'not-a-network' is not an IP address or network",
                      str(caught.exception))
        self.assertEqual(self.read(), before)
        self.assertEqual(sorted(os.listdir(os.path.dirname(self.path))), ["app_config.conf"])

    def test_secrets_unknown_keys_and_environment_keys_are_refused(self) -> None:
        before = self.read()
        for changes in ({"ENCRYPTION_KEY": "00" * 32}, {"NO_SUCH_KEY": "1"},
                        {"MAX_RECIPIENTS": "5\nTLS_MODE = off"}):
            with self.assertRaises(ConfigError):
                edit_file(self.config, changes)
        overridden = load(self.path, environ={"MAILGO_MAX_RECIPIENTS": "7"})
        with self.assertRaises(ConfigError) as caught:
            edit_file(overridden, {"MAX_RECIPIENTS": "9"})
        self.assertIn("MAILGO_MAX_RECIPIENTS", str(caught.exception))
        self.assertEqual(self.read(), before)

    def test_a_key_missing_from_the_file_is_appended_with_its_documentation(self) -> None:
        text = self.read().replace("\nMAX_RECIPIENTS = 100\n", "\n")
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write(text)
        edit_file(self.config, {"MAX_RECIPIENTS": "60"})
        self.assertTrue(self.read().startswith(text))
        self.assertTrue(self.read().endswith("MAX_RECIPIENTS = 60\n"))
        self.assertIn("# " + K.BY_NAME["MAX_RECIPIENTS"].doc[:40], self.read()[len(text):])


class SettingsPageTests(AdminTestCase):
    def file_text(self) -> str:
        with open(self.server.config.path, encoding="utf-8") as handle:
            return handle.read()

    @defer.inlineCallbacks
    def save(self, web: Any, name: str, value: str) -> Any:
        page = yield web.get(f"/admin/settings/{name}")
        self.assertEqual(page.status_code, 200, page.text)
        answer = yield web.post(f"/admin/settings/{name}",
                                {"csrf_token": csrf_from(page.text), "value": value})
        return answer

    @defer.inlineCallbacks
    def test_every_key_is_listed_with_its_documentation_and_secrets_hidden(self) -> Any:
        web = yield self.admin_client()
        page = yield web.get("/admin/settings")
        self.assertEqual(page.status_code, 200)
        for key in K.KEYS:
            self.assertIn(f'id="{key.name}"', page.text)
        self.assertIn("Applies at once", page.text)
        self.assertIn("Needs a restart", page.text)
        self.assertNotIn(self.server.config["ENCRYPTION_KEY"].hex(), page.text)
        self.assertNotIn(self.server.config["SESSION_SECRET"].hex(), page.text)
        # Keys the test server sets through MAILGO_ variables are said so, not editable.
        self.assertIn("MAILGO_TLS_MODE", page.text)
        self.assertNotIn('href="/admin/settings/TLS_MODE"', page.text)
        self.assertIn('href="/admin/settings/MAX_RECIPIENTS"', page.text)
        found = yield web.get("/admin/settings?q=prometheus")
        self.assertIn('id="METRICS_ALLOW"', found.text)
        self.assertNotIn('id="SMTP_PORT"', found.text)

    @defer.inlineCallbacks
    def test_a_live_setting_applies_without_a_restart(self) -> Any:
        web = yield self.admin_client()
        scraper = self.client(admin=True)
        answer = yield scraper.get("/metrics")
        self.assertEqual(answer.status_code, 200)
        answer = yield self.save(web, "METRICS_ALLOW", "192.0.2.0/24")
        self.assertEqual((answer.status_code, answer.headers["Location"]),
                         (303, "/admin/settings?saved=METRICS_ALLOW#METRICS_ALLOW"))
        self.assertIn("\nMETRICS_ALLOW = 192.0.2.0/24\n", self.file_text())
        answer = yield scraper.get("/metrics")
        self.assertEqual(answer.status_code, 403)
        page = yield web.get("/admin/settings?saved=METRICS_ALLOW")
        self.assertIn("METRICS_ALLOW saved. It applies at once.", page.text)
        entries = run_sync(self.server.engine, audit_store.search, audit_store.AuditQuery(),
                           write=False)
        self.assertEqual([(e.actor, e.action, e.target, e.ip) for e in entries],
                         [(ADMIN, "settings.edit", "METRICS_ALLOW", "127.0.0.1")])
        self.assertTrue(entries[0].detail.endswith("-> 192.0.2.0/24"))

    @defer.inlineCallbacks
    def test_a_restart_setting_is_saved_and_said_to_wait(self) -> Any:
        web = yield self.admin_client()
        limits = self.server.root.getServiceNamed("listeners").getServiceNamed("smtp")
        before = limits.factory.limits.max_recipients
        answer = yield self.save(web, "MAX_RECIPIENTS", "42")
        self.assertEqual(answer.status_code, 303)
        self.assertIn("\nMAX_RECIPIENTS = 42\n", self.file_text())
        page = yield web.get("/admin/settings?saved=MAX_RECIPIENTS")
        self.assertIn("MAX_RECIPIENTS saved. It takes effect when the server restarts.",
                      page.text)
        self.assertIn("Saved, waiting for a restart: MAX_RECIPIENTS.", page.text)
        self.assertEqual(limits.factory.limits.max_recipients, before)

    @defer.inlineCallbacks
    def test_a_malformed_value_is_refused_with_the_key_named_and_nothing_changes(self) -> Any:
        web = yield self.admin_client()
        before = self.file_text()
        answer = yield self.save(web, "WEB_RATE_PER_MIN", "fast")
        self.assertEqual(answer.status_code, 400)
        self.assertIn("WEB_RATE_PER_MIN = &#39;fast&#39;: must be a whole number", answer.text)
        self.assertIn('role="alert"', answer.text)
        self.assertIn('value="fast"', answer.text)
        answer = yield self.save(web, "WEB_RATE_PER_MIN", "0")
        self.assertEqual(answer.status_code, 400)
        self.assertIn("must be a number from 1 to 100000", answer.text)
        self.assertEqual(self.file_text(), before)
        entries = run_sync(self.server.engine, audit_store.search, audit_store.AuditQuery(),
                           write=False)
        self.assertEqual(entries, [])

    @defer.inlineCallbacks
    def test_secrets_and_environment_keys_cannot_be_edited(self) -> Any:
        web = yield self.admin_client()
        before = self.file_text()
        for name in ("ENCRYPTION_KEY", "METRICS_TOKEN", "TLS_MODE"):
            page = yield web.get(f"/admin/settings/{name}")
            self.assertEqual(page.status_code, 403, name)
            home = yield web.get("/admin/settings")
            answer = yield web.post(f"/admin/settings/{name}",
                                    {"csrf_token": csrf_from(home.text), "value": "x"})
            self.assertEqual(answer.status_code, 403, name)
        answer = yield web.get("/admin/settings/NO_SUCH_KEY")
        self.assertEqual(answer.status_code, 404)
        self.assertEqual(self.file_text(), before)

    @defer.inlineCallbacks
    def test_a_post_without_the_csrf_token_changes_nothing(self) -> Any:
        web = yield self.admin_client()
        before = self.file_text()
        answer = yield web.post("/admin/settings/MAX_RECIPIENTS", {"value": "3"})
        self.assertEqual(answer.status_code, 403)
        self.assertEqual(self.file_text(), before)


class LiveKeysTests(AdminTestCase):
    """What "applies at once" means for each group of LIVE_KEYS, and that a restart key
    saved in the same server reaches no component."""

    @defer.inlineCallbacks
    def test_live_keys_reach_their_components_restart_keys_do_not(self) -> Any:
        control = self.server.root.components["control"]
        components = self.server.root.components
        yield control.save_settings({"SPAM_THRESHOLD": "7.5", "WEB_RATE_PER_MIN": "33",
                                     "BRUTE_WINDOW_MIN": "4", "MAX_RECIPIENTS": "42"})
        self.assertEqual(components["receive_pipeline"]._settings.spam_threshold, 7.5)
        self.assertEqual(components["web_site"].web_limiter.capacity, 33.0)
        self.assertEqual(components["security"].policy.window.total_seconds(), 240)
        self.assertEqual(self.server.root.config["SPAM_THRESHOLD"], 7.5)
        # MAX_RECIPIENTS is in the file, not in the running configuration.
        self.assertEqual(self.server.root.config["MAX_RECIPIENTS"],
                         self.server.config["MAX_RECIPIENTS"])
        with open(self.server.config.path, encoding="utf-8") as handle:
            self.assertIn("\nMAX_RECIPIENTS = 42\n", handle.read())

    def test_log_level_applies_to_the_log_file_observer(self) -> None:
        import io

        from twisted.logger import Logger

        from mailgosend.log import make_observer

        stream = io.StringIO()
        observer = make_observer(self.server.config, stream)
        log = Logger(observer=observer, namespace="test")
        log.debug("hidden debug line")
        observer.apply_config(self.server.config.replace(LOG_LEVEL="debug"))
        log.debug("shown debug line")
        self.assertNotIn("hidden debug line", stream.getvalue())
        self.assertIn("shown debug line", stream.getvalue())

"""The admin panel's shell (web/admin_guard.py) over HTTP: every page of admin-dash for a
signed-in administrator, the redirect to sign in, a 403 for a signed-in non-administrator
whose rights were removed, the navigation; and the pages' content (dashboard, settings,
TLS, logs, audit)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from tests.support.mailserver import PASSWORD
from tests.support.web import AdminServerTestCase, csrf_from

ADMIN = "root@example.com"
ALICE = "alice@example.com"
PAGES = ("/admin", "/admin/settings", "/admin/tls", "/admin/logs", "/admin/audit")


class AdminTestCase(AdminServerTestCase):
    """The admin panel's tests: root@example.com is an administrator."""


class ShellTests(AdminTestCase):
    PAGES = ("/admin", "/admin/", "/admin/api/dashboard") + PAGES[1:] + (
        "/admin/settings/MAX_RECIPIENTS", "/admin/logs/stream")

    @defer.inlineCallbacks
    def test_anonymous_goes_to_sign_in(self) -> Any:
        web = self.client(admin=True)
        for path in self.PAGES:
            answer = yield web.get(path)
            self.assertEqual((path, answer.status_code, answer.headers.get("Location")),
                             (path, 303, "/login"))

    @defer.inlineCallbacks
    def test_every_page_has_the_navigation(self) -> Any:
        web = yield self.admin_client()
        for path in PAGES:
            answer = yield web.get(path)
            self.assertEqual(answer.status_code, 200, path)
            for label in ("Dashboard", "Domains", "Users", "Queue", "Delivery log",
                          "Security", "Settings", "TLS", "Logs", "Audit"):
                self.assertIn(f">{label}</a>", answer.text)
            self.assertIn('aria-current="page"', answer.text)

    @defer.inlineCallbacks
    def test_a_demoted_admin_is_refused_at_the_next_request(self) -> Any:
        web = yield self.admin_client()
        run_sync(self.server.engine, accounts.set_user_admin, ADMIN, False, write=True)
        for path in self.PAGES:
            answer = yield web.get(path)
            self.assertEqual(answer.status_code, 403, path)
            self.assertIn("may not use this page", answer.text)

    @defer.inlineCallbacks
    def test_a_user_cannot_sign_in_to_the_admin_port(self) -> Any:
        web = self.client(admin=True)
        answer = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual(answer.status_code, 403)
        answer = yield web.get("/admin")
        self.assertEqual(answer.headers.get("Location"), "/login")

    @defer.inlineCallbacks
    def test_unknown_admin_path_is_the_sites_404(self) -> Any:
        web = yield self.admin_client()
        answer = yield web.get("/admin/no-such-page")
        self.assertEqual(answer.status_code, 404)
        self.assertIn("Page not found", answer.text)


class DashboardTests(AdminTestCase):
    @defer.inlineCallbacks
    def test_the_dashboard_shows_the_servers_numbers(self) -> Any:
        web = yield self.admin_client()
        counters = self.server.root.components["counters"]
        counters.add("messages_received", "inbound", n=3)
        counters.add("messages_rejected", "policy")
        yield counters.flush()           # one part from the database,
        counters.add("messages_received", "submission")   # one still in memory
        yield counters.refresh_gauges()   # views reuse a reading up to 5 s old
        data = (yield web.get("/admin/api/dashboard")).json()
        self.assertEqual(data["totals_24h"], {"received": 4, "sent": 0, "bounced": 0,
                                              "rejected": 1})
        self.assertEqual((len(data["hourly"]["t"]), len(data["daily"]["t"])), (24, 30))
        self.assertEqual(data["hourly"]["received"][-1], 4)
        self.assertEqual(data["daily"]["received"][-1], 4)
        self.assertEqual(data["queue"]["messages"], 0)
        self.assertEqual([s["domain"] for s in data["storage"]], ["example.com"])
        self.assertIn("smtp", data["connections"])
        self.assertEqual({c["service"] for c in data["certificates"]}, {"SMTP", "IMAP", "POP3"})
        # A failed admin-port sign-in is a security event on the dashboard.
        yield self.client(admin=True).sign_in(ALICE, PASSWORD)
        page = yield web.get("/admin")
        self.assertIn("login_refused_not_admin", page.text)
        self.assertIn('id="chart-hourly"', page.text)
        self.assertIn("/static/vendor/uplot/uPlot.esm.js?v=", page.text)
        self.assertNotIn("<script>", page.text)
        self.assertIn("mx.mailgo.test", page.text)


class DomainAdminHookTests(AdminTestCase):
    """The hook admin-ops fills (AccountAdmin.rights giving a domain administrator's Actor):
    such a user signs in on the admin port, reaches only ``admin_page(full=False)`` routes,
    and the audit page shows them their domains' entries only."""

    def setUp(self):  # type: ignore[no-untyped-def]
        from mailgosend.admin import Actor

        d = super().setUp()

        def as_domain_admin(_: Any) -> None:
            admin = self.server.root.components["admin_site"].admin_panel.admin
            full_rights = admin.rights

            def rights(conn: Any, user_id: int) -> Any:
                user = accounts.find_user_by_id(conn, user_id)
                if user is not None and user.email == ALICE:
                    return Actor(user.id, user.email, False, frozenset({"example.net"}))
                return full_rights(conn, user_id)
            admin.rights = rights
        return d.addCallback(as_domain_admin)

    @defer.inlineCallbacks
    def test_a_domain_admin_reaches_only_their_pages(self) -> Any:
        from mailgosend import audit
        from datetime import datetime, timezone

        def entries(conn: Any) -> None:
            for domain in ("example.net", "example.com", None):
                audit.record(conn, actor=ADMIN, action="user.add", target=f"x@{domain}",
                             ip="192.0.2.9", at=datetime.now(timezone.utc), domain=domain)
        run_sync(self.server.engine, entries, write=True)
        web = self.client(admin=True)
        answer = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual(answer.status_code, 303)
        for path in ("/admin/settings", "/admin/tls", "/admin/logs",
                     "/admin/api/dashboard", "/admin/settings/MAX_RECIPIENTS", "/metrics"):
            answer = yield web.get(path)
            self.assertEqual(answer.status_code, 403 if path != "/metrics" else 200, path)
        page = yield web.get("/admin/audit")
        self.assertEqual(page.status_code, 200)
        self.assertIn("x@example.net", page.text)
        self.assertNotIn(">Dashboard</a>", page.text)
        self.assertNotIn("x@example.com", page.text)
        self.assertNotIn("x@None", page.text)
        self.assertIn(">Users</a>", page.text)
        self.assertNotIn(">Settings</a>", page.text)
        self.assertIn("(domain administrator)", page.text)
        with open(self.server.config.path, encoding="utf-8") as handle:
            before = handle.read()
        for path in ("/admin/settings/MAX_RECIPIENTS", "/admin/tls/upload"):
            answer = yield web.post(path, {"csrf_token": csrf_from(page.text), "value": "3"})
            self.assertEqual(answer.status_code, 403, path)
        with open(self.server.config.path, encoding="utf-8") as handle:
            self.assertEqual(handle.read(), before)

    @defer.inlineCallbacks
    def test_the_panel_link_takes_a_domain_admin_to_their_users(self) -> Any:
        # Regression: the landing page's one link, "Open the administration panel" (/admin),
        # answered a domain administrator with a 403 (the dashboard is for full
        # administrators), a dead end.  /admin now sends them to their users.
        web = self.client(admin=True)
        answer = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual(answer.status_code, 303)
        home = yield web.get("/")
        self.assertIn('href="/admin"', home.text)
        for path in ("/admin", "/admin/"):
            answer = yield web.get(path)
            self.assertEqual((answer.status_code, answer.headers.get("Location")),
                             (303, "/admin/users"), path)
        answer = yield web.get("/admin", allow_redirects=True)
        self.assertEqual(answer.status_code, 200)
        self.assertIn("<h1", answer.text)
        self.assertIn(">Users</h1>", answer.text)
        admin = yield self.admin_client()
        answer = yield admin.get("/admin")
        self.assertEqual(answer.status_code, 200)       # the dashboard, for a full admin

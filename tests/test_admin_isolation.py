"""Per-domain administrators (issue 14 item 4): a domain admin of other.example tries EVERY
route of the admin panel (found by walking the panel's router and each page group's URL
map, so a route added later is covered too) on example.com's users, aliases and everything
else, and gets 403 or 404 for each, with nothing changed; their own domain they manage."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer

from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from mailgosend.store import queue as queue_store
from mailgosend.web.admin_guard import AdminRouter
from tests.support.adminpanel import ALICE, OpsTestCase, submit
from tests.support.mailserver import PASSWORD
from tests.support.queueing import queue_raw
from tests.support.web import csrf_from

DOMAIN_ADMIN = "dora@other.example"
BOB = "bob@other.example"
# What each route argument stands for: always something of example.com, or global.
ARGUMENTS = {"name": "example.com", "email": ALICE, "selector": "sel", "queue_id": "{qid}"}
# Lists a domain admin may open (their own domains only): asked about example.com instead.
SCOPED_QUERY = {"/admin/users": "?domain=example.com", "/admin/aliases": "?domain=example.com"}
# Forms of the domain-admin routes that name their target in a field, not the path.
TARGET_FIELDS = {"/admin/users": {"email": "eve@example.com", "password": "x-Strong-pass-1234"},
                 "/admin/aliases": {"source": "sales@example.com", "destination": ALICE},
                 "/admin/aliases/remove": {"source": "info@example.com"}}


def admin_routes(site: Any) -> list[tuple[str, str]]:
    """(method, rule) of every route of every page group of the admin panel."""
    router = site.mounted[b"admin"]
    assert isinstance(router, AdminRouter)
    found = set()
    for group in [router.default, *router.groups.values()]:
        for rule in group._app.url_map.iter_rules():
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                found.add((method, rule.rule))
    return sorted(found)


def concrete(rule: str, qid: int) -> str:
    def fill(match: re.Match[str]) -> str:
        converter, _, name = match.group(1).rpartition(":")
        if converter.startswith("any("):
            return converter[4:-1].split(",")[0]
        return ARGUMENTS.get(name, "x").format(qid=qid)
    return re.sub(r"<([^>]+)>", fill, rule)


class DomainAdminIsolationTests(OpsTestCase):
    settings = {"ADMIN_RATE_PER_MIN": "1000"}      # one client tries every route at once

    def state(self) -> Any:
        def read(conn: Any) -> Any:
            return (accounts.list_domains(conn), accounts.list_users(conn),
                    accounts.list_aliases(conn),
                    [(e.message.id, [r.status for r in e.recipients])
                     for e in queue_store.list_entries(conn)])
        return run_sync(self.server.engine, read, write=False)

    @defer.inlineCallbacks
    def dora(self) -> Any:
        self.server.add_domain("other.example")
        self.server.add_user(DOMAIN_ADMIN)
        self.server.add_user(BOB)
        self.server.add_alias("info@example.com", ALICE)
        self.write(accounts.add_domain_admin, DOMAIN_ADMIN, "other.example",
                   self.server.now())
        web = self.client(admin=True)
        answer = yield web.sign_in(DOMAIN_ADMIN, PASSWORD)
        self.assertEqual(answer.status_code, 303)
        return web

    @defer.inlineCallbacks
    def test_every_admin_route_refuses_another_domain(self) -> Any:
        parts = self.server.root.components
        qid = queue_raw(self.server.engine, parts["blob_store"], parts["keyring"],
                        ALICE, ["x@far.test"], b"Subject: x\r\n\r\nx\r\n", self.server.now())
        # An audited change on example.com, which dora must not see in the audit log.
        admin = yield self.admin_client()
        yield submit(admin, f"/admin/users/{ALICE}", f"/admin/users/{ALICE}/quota",
                     {"quota": "5M"})
        web = yield self.dora()
        before = self.state()
        token = csrf_from((yield web.get("/admin/users")).text)
        routes = admin_routes(parts["admin_site"])
        self.assertGreater(len(routes), 30)
        tried = []
        for method, rule in routes:
            path = concrete(rule, qid)
            if method == "GET":
                path += SCOPED_QUERY.get(rule, "")
                if rule == "/admin/audit":
                    page = yield web.get(path)       # open to domain admins: their domains only
                    self.assertEqual(page.status_code, 200)
                    self.assertNotIn("user.quota", page.text)
                    self.assertNotIn(ALICE, page.text)
                    continue
                if rule in ("/admin", "/admin/"):
                    # The panel's entry sends a domain admin on to their own users' list.
                    answer = yield web.get(path)
                    self.assertEqual((answer.status_code, answer.headers.get("Location")),
                                     (303, "/admin/users"))
                    continue
                answer = yield web.get(path)
            else:
                data = {"csrf_token": token, "confirm": "yes", **TARGET_FIELDS.get(rule, {})}
                answer = yield web.post(path, data)
            tried.append((method, path, answer.status_code))
            self.assertIn(answer.status_code, (403, 404), (method, path, answer.text[-800:]))
        self.assertEqual(self.state(), before)
        self.assertIn(("POST", f"/admin/users/{ALICE}/delete", 403), tried)
        # Whether another domain's user exists is not told either: 403, not 404 or
        # "already exists".
        for path in ("/admin/users/nobody@example.com", "/admin/users/nobody@example.com/delete"):
            self.assertEqual((yield web.get(path)).status_code, 403, path)
        answer = yield web.post("/admin/users", {"csrf_token": token, "email": ALICE,
                                                 "password": "x-Strong-pass-1234"})
        self.assertEqual(answer.status_code, 403)
        self.assertNotIn("already", answer.text)
        self.assertIn(("POST", f"/admin/queue/{qid}/retry", 403), tried)

    @defer.inlineCallbacks
    def test_a_domain_admin_manages_their_own_domain(self) -> Any:
        web = yield self.dora()
        page = yield web.get("/admin/users")
        self.assertEqual(page.status_code, 200)
        self.assertIn(BOB, page.text)
        self.assertNotIn(ALICE, page.text)
        self.assertNotIn('href="/admin/queue"', page.text)       # not in their navigation
        self.assertIn('href="/admin/users"', page.text)
        answer = yield submit(web, "/admin/users", "/admin/users",
                              {"email": "carl@other.example", "password": "x-Strong-pass-1234"})
        self.assertEqual(answer.status_code, 303)
        answer = yield submit(web, f"/admin/users/{BOB}", f"/admin/users/{BOB}/quota",
                              {"quota": "1M"})
        self.assertEqual(answer.status_code, 303)
        self.assertEqual(self.read(accounts.get_user, BOB).quota_bytes, 1024 * 1024)
        answer = yield submit(web, "/admin/aliases", "/admin/aliases",
                              {"source": "@other.example", "destination": BOB})
        self.assertEqual(answer.status_code, 303)
        # Making an administrator is for full administrators only.
        answer = yield submit(web, f"/admin/users/{BOB}", f"/admin/users/{BOB}/admin",
                              {"admin": "yes"})
        self.assertEqual(answer.status_code, 403)
        self.assertFalse(self.read(accounts.get_user, BOB).is_admin)

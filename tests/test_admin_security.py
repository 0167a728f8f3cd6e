"""The security page of the admin panel (web/admin_security.py): bans in force (earned by
failed IMAP logins through imaplib), unban, a manual ban with expiry that the IMAP listener
honours at once, login attempts and security events with filters, bad input refused."""

from __future__ import annotations

import imaplib
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet import defer, threads

from mailgosend import audit
from mailgosend.store import security as security_store
from tests.support.adminpanel import ALICE, OpsTestCase, submit


class SecurityPageTests(OpsTestCase):
    # The admin port stays reachable from the banned loopback address (BAN_SCOPE).
    settings = {"BRUTE_MAX_TRIES": "3", "BAN_SCOPE": "imap"}

    def imap_login(self, password: str) -> Any:
        def run() -> str:
            try:
                with imaplib.IMAP4("127.0.0.1", self.server.ports["IMAP"], timeout=10) as imap:
                    imap.starttls(ssl_context=self.server.client_tls())
                    imap.login(ALICE, password)
                return "ok"
            except (imaplib.IMAP4.error, OSError, EOFError) as exc:
                return f"{type(exc).__name__}: {exc}"
        return threads.deferToThread(run)

    def bans(self) -> list[security_store.Ban]:
        return self.read(security_store.list_bans, datetime.now(timezone.utc))

    @defer.inlineCallbacks
    def test_a_ban_earned_over_imap_is_shown_and_lifted(self) -> Any:
        web = yield self.admin_client()     # before the ban: logins from it are refused
        for _ in range(4):
            yield self.imap_login("wrong password")
        self.assertIn("127.0.0.1", [b.target for b in self.bans() if b.kind == "ip"])
        page = yield web.get("/admin/security")
        self.assertIn('aria-label="Unban 127.0.0.1"', page.text)
        self.assertIn("login_failed", page.text)
        page = yield web.get("/admin/security?result=failure&username=" + ALICE)
        self.assertIn(f"{ALICE} · imap · failed", page.text)
        answer = yield submit(web, "/admin/security", "/admin/security/unban",
                              {"kind": "ip", "target": "127.0.0.1"})
        self.assertEqual(answer.headers["Location"], "/admin/security?done=unban")
        self.assertNotIn("127.0.0.1", [b.target for b in self.bans() if b.kind == "ip"])
        (entry,) = self.read(audit.search, audit.AuditQuery(action="ban.remove_ip"))
        self.assertEqual(entry.target, "127.0.0.1")

    @defer.inlineCallbacks
    def test_ban_by_hand_with_expiry_closes_imap_at_once(self) -> Any:
        web = yield self.admin_client()
        answered = yield self.imap_login("wrong")
        self.assertIn("AUTHENTICATIONFAILED", answered)                # not banned yet
        answer = yield submit(web, "/admin/security", "/admin/security/ban",
                              {"ip": "127.0.0.1", "hours": "2", "reason": "abuse"})
        self.assertEqual(answer.status_code, 303)
        (ban,) = [b for b in self.bans() if b.kind == "ip"]
        self.assertEqual(ban.reason, "abuse")
        left = ban.expires_at - datetime.now(timezone.utc)
        self.assertTrue(timedelta(hours=1, minutes=59) < left <= timedelta(hours=2), left)
        # The node's ban cache learnt it: the IMAP listener closes the connection at once.
        refused = yield self.imap_login("wrong")
        self.assertNotIn("AUTHENTICATIONFAILED", refused)
        self.assertTrue(refused.startswith(("abort", "error", "ConnectionResetError")), refused)
        events = self.read(security_store.list_events, kind="ip_banned")
        self.assertIn("by an administrator", events[0].detail)

    @defer.inlineCallbacks
    def test_bad_input_is_refused_and_changes_nothing(self) -> Any:
        web = yield self.admin_client()
        for data, field in (({"ip": "not-an-ip", "hours": "1"}, "ip"),
                            ({"ip": "192.0.2.1", "hours": "forever"}, "hours"),
                            ({"ip": "192.0.2.1", "hours": "-1"}, "hours")):
            answer = yield submit(web, "/admin/security", "/admin/security/ban", data)
            self.assertEqual(answer.status_code, 400, data)
            self.assertIn(f'id="{field}-error"', answer.text)
        answer = yield submit(web, "/admin/security", "/admin/security/unban",
                              {"kind": "ip", "target": "192.0.2.9"})
        self.assertEqual(answer.status_code, 400)
        self.assertIn("192.0.2.9 is not banned", answer.text)
        self.assertEqual(self.bans(), [])
        self.assertEqual([e for e in self.read(audit.search, audit.AuditQuery())
                          if e.action.startswith("ban.")], [])

    @defer.inlineCallbacks
    def test_login_attempts_page_by_cursor(self) -> Any:
        now = datetime.now(timezone.utc)

        def record(conn: Any) -> None:
            for n in range(150):
                security_store.record_attempt(conn, now, f"198.51.100.{n}", "x@example.com",
                                              "imap", False)
        self.write(record)
        web = yield self.admin_client()
        page = yield web.get("/admin/security?username=x@example.com")
        first = re.findall(r"198\.51\.100\.(\d+)</span> · x@example.com", page.text)
        self.assertEqual(first, [str(n) for n in range(149, 49, -1)])
        older = re.search(r'href="([^"]*attempts_before=\d+)"', page.text).group(1)
        page = yield web.get(older.replace("&amp;", "&"))
        rest = re.findall(r"198\.51\.100\.(\d+)</span> · x@example.com", page.text)
        self.assertEqual(rest, [str(n) for n in range(49, -1, -1)])
        self.assertNotIn("attempts_before=", page.text)

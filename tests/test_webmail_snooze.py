"""Snooze and templates in the webmail page (static/js/webmail/snooze.js, templates.js), in
Chromium, with IMAP on the other side.

Snooze: one message from the reader's "Snooze" menu (Later today), two selected ones with
the date-time picker; they leave the inbox list, IMAP sees them in \\Snoozed; the server's
clock (tests/support/shiftclock.py) moves past their time and they come back, unread,
into the open page by push.  Templates: "Save as template" in the compose form stores the
subject and body in the Templates folder (seen over IMAP); a template APPENDed by an IMAP
client is offered too; choosing one fills the empty subject and inserts the body."""

from __future__ import annotations

import imaplib
import re
import time
from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer, reactor, threads

from tests.support.mailserver import PASSWORD
from tests.support.shiftclock import ShiftedReactor
from tests.support.web import WebServerTestCase
from tests.test_web_browser import ALICE
from tests.test_webmail_browser import WebmailBrowserTestCase, expect

# The picker's value for a moment ``minutes`` from now, in the browser's local time.
LOCAL_VALUE = ("(minutes) => { const d = new Date(Date.now() + minutes * 60000);"
               " const p = (n) => String(n).padStart(2, '0');"
               " return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T`"
               " + `${p(d.getHours())}:${p(d.getMinutes())}`; }")


def plain(subject: str, body: str = "Hello.") -> bytes:
    return (f"From: Carol <carol@elsewhere.example>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            "Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


class SnoozeBrowserTestCase(WebmailBrowserTestCase):
    def setUp(self):  # type: ignore[no-untyped-def]
        self.clock = ShiftedReactor()
        # The clock moves hours on: the sign-in must outlive that.
        self.settings = {**self.settings, "clock": self.clock,
                         "SESSION_IDLE_TIMEOUT": "86400"}
        return super().setUp()

    def imap(self) -> imaplib.IMAP4:
        """Thread side: alice over IMAP (STARTTLS)."""
        client = imaplib.IMAP4("127.0.0.1", self.server.ports["IMAP"])
        client.starttls(self.server.client_tls())
        client.login(ALICE, PASSWORD)
        return client


class SnoozePageTests(SnoozeBrowserTestCase):
    @defer.inlineCallbacks
    def test_snooze_from_the_page_then_it_comes_back_live(self) -> Any:
        yield self.store([plain("Dentist reminder"), plain("Invoice 7"), plain("Invoice 8")],
                         start=datetime(2026, 12, 1, tzinfo=timezone.utc), flags=("\\Seen",))

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.open_mail(browser, errors)
            listbox = page.get_by_role("listbox", name="Message list")
            folders = page.get_by_role("navigation", name="Folders")
            expect(listbox.get_by_role("option")).to_have_count(3, timeout=10000)
            # 1. The open message, from the reader's menu.
            listbox.get_by_role("option", name=re.compile("Dentist reminder")).click()
            expect(page.get_by_role("heading", name="Dentist reminder")).to_be_visible()
            page.get_by_role("button", name="Snooze", exact=True).click()
            menu = page.get_by_role("menu", name="Snooze until")
            menu.get_by_role("menuitem", name=re.compile("Later today")).click()
            expect(page.get_by_role("status").filter(has_text="Snoozed until")).to_be_visible(
                timeout=10000)
            expect(listbox.get_by_role("option")).to_have_count(2, timeout=10000)
            expect(page.get_by_text("Select a message to read it.")).to_be_visible()
            # 2. Two selected messages, with the date-time picker (an hour from now).
            listbox.get_by_role("option", name=re.compile("Invoice 7")).click()
            listbox.get_by_role("option", name=re.compile("Invoice 8")).click(
                modifiers=["Control"])
            page.get_by_role("button", name="Snooze selected").click()
            menu = page.get_by_role("menu", name="Snooze until")
            menu.get_by_role("menuitem", name="Pick a date and time…").click()
            menu.get_by_label("Snooze until").fill(page.evaluate(LOCAL_VALUE, 60))
            menu.get_by_role("button", name="Snooze until then").click()
            expect(listbox.get_by_role("option")).to_have_count(0, timeout=10000)
            expect(folders.get_by_role("button", name=re.compile("Snoozed"))).to_be_visible(
                timeout=10000)
            # IMAP sees the same: a \Snoozed mailbox holding the three, INBOX empty.
            imap = self.imap()
            try:
                listed = imap.list()[1]
                self.assertTrue(any(b"\\Snoozed" in line and b"Snoozed" in line
                                    for line in listed), listed)
                self.assertEqual(imap.select("Snoozed")[1], [b"3"])
                self.assertEqual(imap.select("INBOX")[1], [b"0"])
            finally:
                imap.logout()
            # In the Snoozed folder the reader says when it wakes.
            folders.get_by_role("button", name=re.compile("Snoozed")).click()
            listbox.get_by_role("option", name=re.compile("Dentist reminder")).click()
            expect(page.get_by_text(re.compile("^Wakes "))).to_be_visible(
                timeout=10000)
            expect(page.get_by_role("button", name="Unsnooze")).to_be_visible()
            folders.get_by_role("button", name=re.compile("Inbox")).click()
            expect(listbox.get_by_role("option")).to_have_count(0)
            # The server's clock passes their times: all three come back, unread, by push.
            threads.blockingCallFromThread(reactor, self.clock.advance, 3 * 3600 + 120)
            for subject in ("Dentist reminder", "Invoice 7", "Invoice 8"):
                expect(listbox.get_by_role("option", name=re.compile(
                    f"{subject}, unread"))).to_be_visible(timeout=15000)
            expect(folders.get_by_label("3 unread")).to_be_attached(timeout=5000)
            imap = self.imap()
            try:
                deadline = time.monotonic() + 5
                while imap.select("Snoozed")[1] != [b"0"]:
                    assert time.monotonic() < deadline, "Snoozed never emptied over IMAP"
                    time.sleep(0.1)
                imap.select("INBOX")
                self.assertEqual(imap.search(None, "UNSEEN")[1], [b"1 2 3"])
            finally:
                imap.logout()

        yield self.in_browser(scenario)


class TemplatesPageTests(SnoozeBrowserTestCase):
    @defer.inlineCallbacks
    def test_save_as_template_then_insert_one_including_an_imap_one(self) -> Any:
        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.open_mail(browser, errors)
            page.get_by_role("button", name="New message").click()
            form = page.get_by_role("dialog", name="New message")
            expect(form).to_be_visible(timeout=10000)
            form.get_by_label("Subject").fill("Thanks for your order")
            editor = form.get_by_role("textbox", name="Message body")
            editor.click()
            editor.press("Control+Home")
            editor.type("We ship tomorrow.")
            form.get_by_role("button", name="Save as template").click()
            expect(form.get_by_role("status").filter(has_text="Saved as template")
                   ).to_be_visible(timeout=10000)
            imap = self.imap()
            try:
                self.assertEqual(imap.select("Templates")[1], [b"1"])
                header = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1]
                self.assertIn(b"Thanks for your order", header)
                # Another client (Thunderbird) keeps a template there too.
                imap.append("Templates", "(\\Seen)", None,
                            plain("Out of office", "Back on Monday."))
            finally:
                imap.logout()
            form.get_by_role("button", name="Discard").click()
            expect(form).to_have_count(0, timeout=10000)
            # A new message: both templates offered; one fills the subject and the body.
            page.get_by_role("button", name="New message").click()
            form = page.get_by_role("dialog", name="New message")
            expect(form).to_be_visible(timeout=10000)
            form.get_by_role("button", name="Templates").click()
            menu = form.get_by_role("menu", name="Templates")
            expect(menu.get_by_role("menuitem")).to_have_count(2, timeout=10000)
            menu.get_by_role("menuitem", name="Thanks for your order").click()
            expect(form.get_by_label("Subject")).to_have_value("Thanks for your order")
            expect(form.get_by_role("textbox", name="Message body")).to_contain_text(
                "We ship tomorrow.")
            # With a subject already written, a template only adds its body.
            form.get_by_role("button", name="Templates").click()
            menu.get_by_role("menuitem", name="Out of office").click()
            expect(form.get_by_label("Subject")).to_have_value("Thanks for your order")
            expect(form.get_by_role("textbox", name="Message body")).to_contain_text(
                "Back on Monday.")

        yield self.in_browser(scenario)


class SnoozeRoutesTests(WebServerTestCase):
    """POST /mail/snooze and /mail/unsnooze, GET /mail/snoozed without a browser: CSRF,
    errors naming the field, another user's message not found."""

    users = (ALICE, "bob@example.com")

    @defer.inlineCallbacks
    def deliver(self, email: str, subject: str) -> Any:
        user = yield self.server.root.components["mail"].open_account(email)
        inbox = yield user.get_mailbox("INBOX")
        delivered = yield user.append(inbox.id, plain(subject), [], None)
        return f"M{delivered.email_id}"

    @defer.inlineCallbacks
    def test_snooze_routes(self) -> Any:
        mine = yield self.deliver(ALICE, "Mine")
        bobs = yield self.deliver("bob@example.com", "Bob's")
        client = self.client()
        yield client.sign_in(ALICE, PASSWORD)
        page = yield client.get("/mail")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        until = datetime.fromtimestamp(self.server.reactor.seconds() + 3600, timezone.utc)
        form = [("emailId", mine), ("until", until.isoformat())]
        refused = yield client.post("/mail/snooze", form)          # no CSRF token
        self.assertEqual(refused.status_code, 403)
        form.append(("csrf_token", token))
        for bad, field in (([("emailId", "nonsense")], "emailId:"),
                           ([("emailId", mine), ("until", "tomorrow")], "until:"),
                           ([("emailId", mine), ("until", "2026-12-06T08:00:00")], "until:"),
                           ([("emailId", mine), ("until", "2000-01-01T08:00:00Z")], "until:"),
                           ([("until", until.isoformat())], "emailIds:")):
            reply = yield client.post("/mail/snooze", bad + [("csrf_token", token)])
            self.assertEqual(reply.status_code, 400, bad)
            self.assertIn(field, reply.json()["error"])
        reply = yield client.post("/mail/snooze", form + [("emailId", bobs)])
        self.assertEqual(reply.status_code, 200)
        self.assertEqual((reply.json()["done"], reply.json()["notFound"]), ([mine], [bobs]))
        listed = yield client.get("/mail/snoozed")
        self.assertEqual(listed.json()["snoozed"], [{"emailId": mine,
                                                     "until": until.isoformat()}])
        self.assertEqual(len(self.server.stored("bob@example.com")), 1)   # untouched
        back = yield client.post("/mail/unsnooze", [("emailId", mine), ("csrf_token", token)])
        self.assertEqual(back.json()["done"], [mine])
        self.assertEqual(len(self.server.stored(ALICE)), 1)
        anonymous = yield self.client().get("/mail/snoozed")
        self.assertEqual(anonymous.status_code, 404)

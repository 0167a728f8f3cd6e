"""Writing mail in the webmail (issue 13 item 3) in a real browser (Playwright with Debian's
Chromium), with real clients on the other side.

alice@alpha.test writes on alpha's web port; bob@beta.test reads on beta over IMAP, so what
he gets went through alpha's queue and carries alpha's DKIM signature (checked by beta and
by Perl's Mail::DKIM); carol@alpha.test is a local recipient.  alpha runs on a reactor whose
clock the test moves (tests/support/shiftclock.py) for send later and undo send.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import os
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import func, select
from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.db.schema import uploads
from mailgosend.jmap import compose
from mailgosend.store import accounts
from mailgosend.store.mimeinfo import analyse
from mailgosend.web.webmail_quote import quote_html
from tests.support.dkimcheck import verify_with_perl
from tests.support.mailserver import PASSWORD
from tests.support.net import free_ports
from tests.support.shiftclock import ShiftedReactor
from tests.support.twoservers import ALPHA_IP, TwoServers
from tests.support.web import CHROMIUM, WebServerTestCase
from tests.test_webmail_body import WebmailRoutesTests, html_message
from tests.test_web_browser import SIGN_IN_MS, BrowserTestCase

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the [test] extra installs it
    sync_playwright = None
    expect = None

ALICE = "alice@alpha.test"
BOB = "bob@beta.test"
CAROL = "carol@alpha.test"
UNDO_SECONDS = 30


def poll(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """In the browser thread: ``check()`` until truthy (it may read the database)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def imap_messages(server: Any, user: str, mailbox: str = "INBOX") -> list[bytes]:
    """Every message of ``mailbox`` as an IMAP client reads it (BODY.PEEK[])."""
    imap = imaplib.IMAP4(server.bind, server.ports["IMAP"])
    try:
        imap.starttls(server.client_tls())
        imap.login(user, PASSWORD)
        status, _ = imap.select(f'"{mailbox}"', readonly=True)
        assert status == "OK", mailbox
        _, data = imap.search(None, "ALL")
        out = []
        for number in data[0].split():
            _, fetched = imap.fetch(number, "(BODY.PEEK[])")
            # a draft replaced between SEARCH and FETCH answers nothing (no tuple)
            out.extend(item[1] for item in fetched if isinstance(item, tuple))
        return out
    finally:
        imap.logout()


def parsed(raw: bytes) -> Any:
    return email.message_from_bytes(raw, policy=email.policy.default)


def body(message: Any, kind: str) -> str:
    """The text of the message's text/``kind`` body, with LF line ends."""
    return str(message.get_body((kind,)).get_content()).replace("\r\n", "\n")


class ComposeForwardTests(unittest.TestCase):
    """The server side of "forward as attachment": a message/rfc822 part by blobId."""

    def test_message_part_carries_the_original_byte_for_byte(self) -> None:
        original = ("From: Dan <dan@elsewhere.example>\r\nSubject: caf\u00e9\r\n"
                    "Message-ID: <o@elsewhere.example>\r\n\r\n8-bit \u00e9 body\r\n"
                    ".\r\n--=_not-a-boundary\r\n").encode()
        raw = compose.build({"from": [{"email": "a@example.com"}], "subject": "Fwd: caf\u00e9",
                             "textBody": [{"partId": "1"}], "bodyValues": {"1": {"value": "FYI"}},
                             "attachments": [{"blobId": "G1", "type": "message/rfc822",
                                              "name": "caf\u00e9.eml"}]},
                            {"G1": original}, datetime(2026, 12, 5, tzinfo=timezone.utc),
                            "example.com")
        message = parsed(raw)
        [part] = [p for p in message.walk() if p.get_content_type() == "message/rfc822"]
        self.assertEqual(part["Content-Transfer-Encoding"], "8bit")
        self.assertEqual(part.get_filename(), "caf\u00e9.eml")
        self.assertIn(b"\r\n\r\n" + original + b"\r\n--", raw)
        with self.assertRaises(compose.Invalid) as caught:
            compose.build({"attachments": [{"blobId": "G1", "type": "message/rfc822"}]},
                          {"G1": b"not a message"}, datetime(2026, 12, 5, tzinfo=timezone.utc),
                          "example.com")
        self.assertEqual(caught.exception.prop, "attachments")


class QuoteTests(unittest.TestCase):
    """/mail/quote's cleaning: the page never parses the original's HTML itself."""

    def test_quote_keeps_structure_and_drops_what_could_run_or_fetch(self) -> None:
        raw = (b"From: m@elsewhere.example\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
               b"Content-Type: text/plain\r\n\r\nplain <version>\r\n--b\r\n"
               b"Content-Type: text/html; charset=iso-8859-1\r\n"
               b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
               b"<p style=3D\"color:red\" onclick=3D\"x()\">Caf=E9 <b>bold</b></p>"
               b"<img src=3D\"http://t.example/p.png\"><script>x()</script>"
               b"<style>p{background:url(http://t.example/b.png)}</style>"
               b"<a href=3D\"javascript:x()\">bad</a><a href=3D\"https://ok.example/\">ok</a>"
               b"\r\n--b--\r\n")
        quoted = quote_html(analyse(raw), raw)
        self.assertIn("<p>Caf\u00e9 <b>bold</b></p>", quoted)
        self.assertIn('<a href="https://ok.example/" rel="noopener noreferrer">ok</a>', quoted)
        for gone in ("style", "onclick", "img", "script", "javascript", "t.example"):
            self.assertNotIn(gone, quoted)
        text = b"From: m@elsewhere.example\r\n\r\n1 < 2\r\n\r\nend\r\n"
        self.assertEqual(quote_html(analyse(text), text),
                         "<div>1 &lt; 2</div><div><br></div><div>end</div><div><br></div>")


class QuoteRouteTests(WebServerTestCase):
    users = ("alice@example.com", "bob@example.com")
    deliver = WebmailRoutesTests.deliver
    signed_in = WebmailRoutesTests.signed_in

    @defer.inlineCallbacks
    def test_own_message_quoted_another_users_not_found(self) -> Any:
        mine = yield self.deliver("alice@example.com", html_message(
            "Q", '<p onclick="x()">Quote me</p>'))
        bobs = yield self.deliver("bob@example.com", html_message("Secret", "<p>secret</p>"))
        client = yield self.signed_in("alice@example.com")
        reply = yield client.get(f"/mail/quote/{mine}")
        self.assertEqual(reply.status_code, 200)
        self.assertEqual(reply.json()["html"].strip(), "<p>Quote me</p>")
        for path in (f"/mail/quote/{bobs}", "/mail/quote/M999999", "/mail/quote/nonsense"):
            reply = yield client.get(path)
            self.assertEqual(reply.status_code, 404, path)
            self.assertNotIn("secret", reply.text)
        reply = yield self.client().get(f"/mail/quote/{mine}")
        self.assertEqual(reply.status_code, 404)


class ComposeBrowserTestCase(unittest.TestCase):
    """alpha (web port on, alice and carol) and beta (bob), alpha on a movable clock."""

    timeout = 600
    alpha_settings: dict[str, Any] = {}
    in_browser = BrowserTestCase.in_browser
    watch = staticmethod(BrowserTestCase.watch)
    sign_in = BrowserTestCase.sign_in

    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        if sync_playwright is None or not os.path.exists(CHROMIUM):
            raise unittest.SkipTest("needs playwright and /usr/bin/chromium")
        self.clock = ShiftedReactor()
        [web] = free_ports(1, ALPHA_IP)
        self.servers = TwoServers(self.mktemp(), alpha_clock=self.clock, alpha_settings={
            "WEB_PORT": str(web), **self.alpha_settings})
        self.addCleanup(self.servers.stop)
        yield self.servers.start()
        self.alpha, self.beta = self.servers.alpha, self.servers.beta
        self.alpha.add_user(CAROL)
        self.servers.publish_dkim(self.alpha, "alpha.test", "rsa2048")
        self.web_base = f"http://{ALPHA_IP}:{web}"

    def open_mail(self, browser: Any, errors: list[str]) -> Any:
        context = browser.new_context(timezone_id="UTC")
        page = self.watch(context.new_page(), errors)
        self.sign_in(page, self.web_base, ALICE, PASSWORD)
        expect(page.get_by_role("heading", name="Your account")).to_be_visible(
            timeout=SIGN_IN_MS)
        page.goto(self.web_base + "/mail")
        expect(page.locator("html[data-ready='1']")).to_have_count(1, timeout=15000)
        return page

    def store(self, raw: bytes) -> None:
        """A message put into alice's INBOX through the store (from the browser thread)."""
        async def put() -> None:
            user = await self.alpha.root.components["mail"].open_account(ALICE)
            inbox = await user.get_mailbox("INBOX")
            await user.append_all(inbox.id, [(raw, [], self.alpha.now())])
        threads.blockingCallFromThread(reactor, lambda: defer.Deferred.fromCoroutine(put()))

    @staticmethod
    def dialog(page: Any, name: str) -> Any:
        found = page.get_by_role("dialog", name=name)
        expect(found).to_be_visible(timeout=10000)
        return found

    @staticmethod
    def write(form: Any, to: str = "", cc: str = "", subject: str = "",
              body: str = "") -> None:
        if to:
            form.get_by_label("To", exact=True).fill(to)
        if cc:
            form.get_by_label("Cc", exact=True).fill(cc)
        if subject:
            form.get_by_label("Subject").fill(subject)
        if body:
            editor = form.get_by_role("textbox", name="Message body")
            editor.click()
            editor.press("Control+Home")
            editor.type(body)

    def uploads(self) -> int:
        return int(run_sync(self.alpha.engine, lambda c: c.execute(
            select(func.count()).select_from(uploads)).scalar_one(), write=False))


class WriteAndSendTests(ComposeBrowserTestCase):
    @defer.inlineCallbacks
    def test_compose_reply_forward_and_send_later(self) -> Any:
        original = (f"From: Bob <{BOB}>\r\nTo: Alice <{ALICE}>\r\nCc: {CAROL}\r\n"
                    "Subject: Picnic on Sunday\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n"
                    "Message-ID: <picnic-2@beta.test>\r\nIn-Reply-To: <picnic-1@beta.test>\r\n"
                    "References: <picnic-1@beta.test>\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                    "Shall we bring the big basket?\r\n").encode()
        tmp = self.mktemp()
        os.makedirs(tmp)
        small = os.path.join(tmp, "notes.bin")
        payload = os.urandom(1024)
        with open(small, "wb") as handle:
            handle.write(payload)
        found: dict[str, Any] = {}

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.open_mail(browser, errors)
            # --- 1. a new message: refused recipients shown in words first
            page.get_by_role("button", name="New message").click()
            form = self.dialog(page, "New message")
            expect(form.get_by_label("From")).to_contain_text(ALICE)
            self.write(form, to="not an address", subject="Hello from the webmail")
            form.get_by_role("button", name="Send", exact=True).click()
            expect(form.get_by_role("alert")).to_contain_text("“not an address” is not an "
                                                              "email address")
            form.get_by_label("To", exact=True).fill("nobody@alpha.test")
            form.get_by_role("button", name="Send", exact=True).click()
            expect(form.get_by_role("alert")).to_contain_text("nobody@alpha.test",
                                                              timeout=10000)
            form.get_by_label("To", exact=True).fill(f"Bob <{BOB}>")
            self.write(form, cc=CAROL, body="Hi Bob, see the notes.")
            editor = form.get_by_role("textbox", name="Message body")
            editor.press("Enter")
            editor.press("Control+b")
            editor.type("Important")
            form.get_by_label("Attach files").set_input_files(small)
            expect(form.locator("li[data-uploaded='1']")).to_have_count(1, timeout=10000)
            form.get_by_role("button", name="Send", exact=True).click()
            expect(form).to_be_hidden(timeout=10000)
            expect(page.get_by_role("status", name="Sending")).to_contain_text("Message sent")
            [received] = poll(lambda: imap_messages(self.beta, BOB))
            found["sent"] = received
            message = parsed(received)
            self.assertEqual(message["From"], ALICE)
            self.assertEqual(message["To"], f"Bob <{BOB}>")
            self.assertEqual(message["Cc"], CAROL)
            self.assertEqual(message["Subject"], "Hello from the webmail")
            self.assertRegex(message["Message-ID"], r"^<[^<>@]+@[^<>]+>$")
            self.assertIsNone(message["Bcc"])
            kinds = [p.get_content_type() for p in message.walk()]
            self.assertEqual(kinds[:4], ["multipart/mixed", "multipart/alternative",
                                         "text/plain", "text/html"], kinds)
            text = body(message, "plain")
            html = body(message, "html")
            self.assertIn("Hi Bob, see the notes.\nImportant", text)
            self.assertRegex(html, r"<b>Important</b>")
            [attached] = list(message.iter_attachments())
            self.assertEqual(attached.get_filename(), "notes.bin")
            self.assertEqual(attached.get_content(), payload)
            [local] = poll(lambda: imap_messages(self.alpha, CAROL))
            self.assertEqual(parsed(local)["Message-ID"], message["Message-ID"])
            sent = poll(lambda: imap_messages(self.alpha, ALICE, "Sent"))
            self.assertEqual(len(sent), 1)
            self.assertEqual(imap_messages(self.alpha, ALICE, "Drafts"), [])

            # --- 2. reply, reply all, forward inline and as an attachment
            self.store(original)
            page.get_by_role("option", name=re.compile("Picnic on Sunday")).click()
            expect(page.get_by_role("heading", name="Picnic on Sunday")).to_be_visible()
            page.get_by_role("button", name="Reply", exact=True).click()
            form = self.dialog(page, "Reply")
            expect(form.get_by_label("To", exact=True)).to_have_value(f"Bob <{BOB}>")
            expect(form.get_by_label("Subject")).to_have_value("Re: Picnic on Sunday")
            expect(form.get_by_role("textbox", name="Message body")).to_contain_text(
                "Bob wrote:")
            self.write(form, body="Yes, the big one.")
            form.get_by_role("button", name="Send", exact=True).click()
            expect(form).to_be_hidden(timeout=10000)
            reply = parsed(poll(lambda: [m for m in imap_messages(self.beta, BOB)
                                         if b"Re: Picnic" in m])[0])
            self.assertEqual(reply["In-Reply-To"], "<picnic-2@beta.test>")
            self.assertEqual(reply["References"], "<picnic-1@beta.test> <picnic-2@beta.test>")
            text = body(reply, "plain")
            self.assertRegex(text, r"Yes, the big one\.\n(.|\n)*On .+, Bob wrote:\n> Shall we "
                                   r"bring the big basket\?")

            page.get_by_role("button", name="Reply all").click()
            form = self.dialog(page, "Reply to all")
            expect(form.get_by_label("Cc", exact=True)).to_have_value(CAROL)
            self.write(form, body="Count me in.")
            form.get_by_role("textbox", name="Message body").press("Control+Enter")  # send
            expect(form).to_be_hidden(timeout=10000)
            everyone = parsed(poll(lambda: [m for m in imap_messages(self.alpha, CAROL)
                                            if b"Count me in" in m])[0])
            self.assertEqual(everyone["To"], f"Bob <{BOB}>")
            self.assertEqual(everyone["Cc"], CAROL)
            self.assertEqual(everyone["In-Reply-To"], "<picnic-2@beta.test>")

            page.get_by_role("button", name="Forward", exact=True).click()
            form = self.dialog(page, "Forward")
            expect(form.get_by_label("Subject")).to_have_value("Fwd: Picnic on Sunday")
            self.write(form, to=CAROL, body="For you.")
            form.get_by_role("button", name="Send", exact=True).click()
            expect(form).to_be_hidden(timeout=10000)
            inline = parsed(poll(lambda: [m for m in imap_messages(self.alpha, CAROL)
                                          if b"For you" in m])[0])
            self.assertEqual(inline["Subject"], "Fwd: Picnic on Sunday")
            self.assertEqual(inline["References"], "<picnic-1@beta.test> <picnic-2@beta.test>")
            self.assertIn("Shall we bring the big basket?",
                          body(inline, "plain"))

            page.get_by_role("button", name="Forward as attachment").click()
            form = self.dialog(page, "Forward as attachment")
            self.write(form, to=CAROL, body="Attached.")
            form.get_by_role("button", name="Send", exact=True).click()
            expect(form).to_be_hidden(timeout=10000)
            attached_raw = poll(lambda: [m for m in imap_messages(self.alpha, CAROL)
                                         if b"Attached." in m])[0]
            self.assertIn(b"Content-Type: message/rfc822", attached_raw)
            self.assertIn(b"\r\n\r\n" + original + b"\r\n--", attached_raw)

            # --- 3. send later: held until its time on alpha's clock
            when = (self.alpha.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
            page.get_by_role("button", name="New message").click()
            form = self.dialog(page, "New message")
            form.get_by_role("button", name="Plain text").click()
            expect(form.get_by_role("button", name="Plain text")).to_have_attribute(
                "aria-pressed", "true")
            expect(form.get_by_role("button", name="Bold")).to_be_hidden()
            self.write(form, to=BOB, subject="Tomorrow's reminder", body="Don't forget.")
            form.get_by_role("button", name="Send later").click()
            form.get_by_label("Send at").fill(when.strftime("%Y-%m-%dT%H:%M"))
            form.get_by_role("button", name="Schedule send").click()
            expect(form).to_be_hidden(timeout=10000)
            expect(page.get_by_role("status", name="Sending")).to_contain_text("Scheduled for")
            # a second one, canceled from its toast: back in Drafts, never sent
            page.get_by_role("button", name="New message").click()
            form = self.dialog(page, "New message")
            self.write(form, to=BOB, subject="Never mind", body="Canceled.")
            form.get_by_role("button", name="Send later").click()
            form.get_by_label("Send at").fill(when.strftime("%Y-%m-%dT%H:%M"))
            form.get_by_role("button", name="Schedule send").click()
            expect(form).to_be_hidden(timeout=10000)
            toast = page.get_by_role("status", name="Sending")
            toast.get_by_role("button", name="Cancel sending").click()
            expect(toast).to_contain_text("Sending canceled")
            form = self.dialog(page, "Draft")
            expect(form.get_by_label("Subject")).to_have_value("Never mind")
            form.get_by_role("button", name="Close").click()
            expect(form).to_be_hidden()
            drafts = imap_messages(self.alpha, ALICE, "Drafts")
            self.assertEqual(len(drafts), 1)
            self.assertIn(b"Subject: Never mind", drafts[0])
            time.sleep(1.0)
            self.assertFalse([m for m in imap_messages(self.beta, BOB) if b"reminder" in m])
            threads.blockingCallFromThread(reactor, self.clock.advance, 3600 + 5)
            later = parsed(poll(lambda: [m for m in imap_messages(self.beta, BOB)
                                         if b"reminder" in m])[0])
            self.assertEqual(later["Subject"], "Tomorrow's reminder")
            self.assertEqual(later.get_content_type(), "text/plain")  # plain-text mode
            self.assertIn("Don't forget.", body(later, "plain"))
            time.sleep(2.0)
            self.assertFalse([m for m in imap_messages(self.beta, BOB) if b"Never mind" in m])

            # --- quoting hostile HTML: no script, no style attribute (a CSP report), no
            # image fetched, in the editor of the page's own origin
            outside: list[str] = []
            page.on("request", lambda r: outside.append(r.url)
                    if not r.url.startswith(self.web_base) else None)
            page.on("console", lambda m: outside.append(m.text) if "XSS" in m.text else None)
            self.store((f"From: Mallory <{BOB}>\r\nTo: {ALICE}\r\nSubject: Hostile news\r\n"
                        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
                        '<p style="color:red" onclick="console.log(\'XSS\')">Hostile body</p>'
                        '<img src="http://127.0.0.9/pixel.png"><script>console.log("XSS")'
                        '</script><a href="javascript:console.log(\'XSS\')">link</a>'
                        '<style>p { background: url(http://127.0.0.9/bg.png) }</style>\r\n'
                        ).encode())
            page.get_by_role("option", name=re.compile("Hostile news")).click()
            # Reply answers the message the reader shows: wait until it shows this one (a
            # click on Reply while the previous one is still shown replied to that one).
            expect(page.get_by_role("heading", name="Hostile news")).to_be_visible()
            page.get_by_role("button", name="Reply", exact=True).click()
            form = self.dialog(page, "Reply")
            editor = form.get_by_role("textbox", name="Message body")
            expect(editor).to_contain_text("Hostile body")
            leftovers = editor.evaluate("""e => [...e.querySelectorAll('*')].flatMap(n =>
                [n.tagName === 'SCRIPT' || n.tagName === 'IMG' || n.tagName === 'STYLE'
                 ? n.tagName : null, ...[...n.attributes].filter(a => /^on|^style$/i.test(
                 a.name) || /javascript:/i.test(a.value)).map(a => a.name)]).filter(Boolean)""")
            self.assertEqual(leftovers, [])
            form.get_by_role("button", name="Discard").click()
            expect(form).to_be_hidden()
            page.wait_for_timeout(500)
            self.assertEqual(outside, [])

        yield self.in_browser(scenario)
        # The DKIM signature alpha's queue put on what bob got verifies (beta checked it
        # too: its Authentication-Results).
        received = found["sent"]
        self.assertIn("dkim=pass header.d=alpha.test",
                      " ".join(parsed(received).get_all("Authentication-Results", [])))
        signed = received[received.index(b"DKIM-Signature"):]
        verdicts, _ = yield verify_with_perl(signed, self.servers.dns.port)
        self.assertEqual({v[3]: v[0] for v in verdicts}["rsa-sha256"], "pass", verdicts)


class DraftsAttachmentsSignaturesUndoTests(ComposeBrowserTestCase):
    alpha_settings = {"SUBMISSION_UNDO_SECONDS": str(UNDO_SECONDS), "MAX_MESSAGE_SIZE": "30M"}

    def drafts(self) -> list[bytes]:
        return imap_messages(self.alpha, ALICE, "Drafts")

    @defer.inlineCallbacks
    def test_signatures_drafts_attachments_and_undo_send(self) -> Any:
        self.alpha.add_alias("ally@alpha.test", ALICE)
        limit = int(self.alpha.config["MAX_MESSAGE_SIZE"])
        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        big = os.path.join(tmp, "big.bin")
        big_data = os.urandom(20_000_000)
        with open(big, "wb") as handle:
            handle.write(big_data)
        too_big = os.path.join(tmp, "too-big.bin")
        with open(too_big, "wb") as handle:
            handle.truncate(limit + 1)

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.open_mail(browser, errors)
            # --- signatures per identity (Identity/set), inserted and swapped with From
            page.get_by_role("button", name="New message").click()
            form = self.dialog(page, "New message")
            editor = form.get_by_role("textbox", name="Message body")
            form.get_by_role("button", name="Signatures").click()
            settings = self.dialog(page, "Signatures")
            settings.get_by_label("Identity").select_option(label=ALICE)
            settings.get_by_label("Text signature").fill("Alice\nAlpha team")
            settings.get_by_label("HTML signature").fill("<div>Alice <b>of Alpha</b></div>")
            settings.get_by_role("button", name="Save signature").click()
            expect(settings).to_be_hidden()
            expect(editor).to_contain_text("Alice of Alpha")   # the open form follows
            form.get_by_role("button", name="Signatures").click()
            settings = self.dialog(page, "Signatures")
            settings.get_by_label("Identity").select_option(label="ally@alpha.test")
            settings.get_by_label("Text signature").fill("Ally here")
            settings.get_by_role("button", name="Save signature").click()
            expect(settings).to_be_hidden()
            form.get_by_label("From").select_option(label=ALICE)
            expect(editor).to_contain_text("Alice of Alpha")
            form.get_by_label("From").select_option(label="ally@alpha.test")
            expect(editor).to_contain_text("Ally here")
            expect(editor).not_to_contain_text("Alice of Alpha")
            form.get_by_label("From").select_option(label=ALICE)
            expect(editor).to_contain_text("Alice of Alpha")
            expect(editor).not_to_contain_text("Ally here")

            # --- drafts saved by themselves, one version at a time, seen over IMAP
            self.write(form, to=BOB, subject="Holiday plans", body="First version.")
            poll(lambda: [m for m in self.drafts() if b"First version." in m])
            self.write(form, body="Second version. ")
            stored = poll(lambda: [m for m in self.drafts() if b"Second version." in m])
            poll(lambda: len(self.drafts()) == 1)  # the version before it is gone
            self.assertIn(b"Subject: Holiday plans", stored[0])

            # --- attachments: the file chooser (20 MB), drag and drop, and one too large
            before = self.uploads()
            with page.expect_file_chooser() as chooser:
                form.get_by_role("button", name="Attach files").click()
            chooser.value.set_files(too_big)
            expect(form.get_by_role("alert")).to_contain_text("larger than", timeout=10000)
            self.assertEqual(self.uploads(), before)
            # over the account's quota: the server's refusal (413 overQuota), in words
            run_sync(self.alpha.engine, accounts.set_quota, ALICE, 5_000_000, write=True)
            with page.expect_file_chooser() as chooser:
                form.get_by_role("button", name="Attach files").click()
            chooser.value.set_files(big)
            expect(form.get_by_role("alert")).to_contain_text(
                "“big.bin” was refused", timeout=60000)
            expect(form.get_by_role("alert")).to_contain_text("quota")
            self.assertEqual(self.uploads(), before)
            run_sync(self.alpha.engine, accounts.set_quota, ALICE, 0, write=True)
            # the progress bar follows the upload (XMLHttpRequest upload progress)
            form.evaluate("""form => { window.progressSeen = [];
                new MutationObserver((changes) => { for (const c of changes) {
                    if (c.target.tagName === 'PROGRESS') window.progressSeen.push(
                        c.target.getAttribute('aria-label') + ' ' + c.target.value); } })
                .observe(form, {attributes: true, attributeFilter: ['value'],
                                subtree: true}); }""")
            with page.expect_file_chooser() as chooser:
                form.get_by_role("button", name="Attach files").click()
            chooser.value.set_files(big)
            form.evaluate("""form => {
                const data = new DataTransfer();
                data.items.add(new File(["dropped bytes\\n"], "dropped.txt",
                                        {type: "text/plain"}));
                form.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true,
                                                          cancelable: true}));
            }""")
            expect(form.locator("li[data-uploaded='1']")).to_have_count(2, timeout=120000)
            self.assertEqual(self.uploads(), before + 2)
            seen = page.evaluate("window.progressSeen")
            self.assertIn("Uploading big.bin 100", seen)
            form.get_by_role("button", name="Close").click()
            expect(form).to_be_hidden(timeout=60000)
            poll(lambda: [m for m in self.drafts() if b"big.bin" in m], timeout=60)

            # --- the draft reopened from the Drafts folder
            page.get_by_role("navigation", name="Folders").get_by_role(
                "button", name=re.compile("^Drafts")).click()
            page.get_by_role("option", name=re.compile("Holiday plans")).click()
            expect(page.get_by_role("heading", name="Holiday plans")).to_be_visible()
            page.get_by_role("button", name="Edit draft").click()
            form = self.dialog(page, "Draft")
            expect(form.get_by_label("Subject")).to_have_value("Holiday plans")
            expect(form.get_by_label("To", exact=True)).to_have_value(BOB)
            expect(form.get_by_role("textbox", name="Message body")).to_contain_text(
                "Second version.")
            expect(form.get_by_role("list", name="Attachments").get_by_role(
                "listitem")).to_have_count(2)
            # edited twice: each version names the attachments of the one before it
            self.write(form, body="Third. ")
            poll(lambda: [m for m in self.drafts() if b"Third." in m], timeout=60)
            self.write(form, body="Fourth. ")
            poll(lambda: [m for m in self.drafts() if b"Fourth." in m], timeout=60)
            expect(form.get_by_role("alert")).to_be_hidden()

            # --- undo send: held for SUBMISSION_UNDO_SECONDS, canceled, back in Drafts
            form.get_by_role("button", name="Send", exact=True).click()
            expect(form).to_be_hidden(timeout=60000)
            toast = page.get_by_role("status", name="Sending")
            toast.get_by_role("button", name="Undo").click()
            expect(toast).to_contain_text("Sending undone")
            form = self.dialog(page, "Draft")
            expect(form.get_by_label("Subject")).to_have_value("Holiday plans")
            threads.blockingCallFromThread(reactor, self.clock.advance, UNDO_SECONDS + 5)
            time.sleep(2.0)
            self.assertEqual(imap_messages(self.beta, BOB), [])
            self.assertEqual(len(self.drafts()), 1)

            # --- sent for real this time: bob gets both attachments byte for byte
            form.get_by_role("button", name="Send", exact=True).click()
            expect(form).to_be_hidden(timeout=60000)
            expect(toast.get_by_role("button", name="Undo")).to_be_visible()
            threads.blockingCallFromThread(reactor, self.clock.advance, UNDO_SECONDS + 5)
            expect(toast).to_contain_text("Message sent", timeout=15000)
            [received] = poll(lambda: imap_messages(self.beta, BOB), timeout=120)
            message = parsed(received)
            self.assertEqual(message["Subject"], "Holiday plans")
            files = {p.get_filename(): p.get_content() for p in message.iter_attachments()}
            self.assertEqual(files["big.bin"], big_data)
            self.assertEqual(files["dropped.txt"].replace("\r\n", "\n"), "dropped bytes\n")
            self.assertIn("Alice <b>of Alpha</b>", body(message, "html"))
            self.assertIn("\n-- \nAlice of Alpha\n", body(message, "plain"))
            poll(lambda: not self.drafts())

        yield self.in_browser(scenario)

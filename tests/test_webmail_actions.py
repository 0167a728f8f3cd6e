"""Webmail actions and search (issue 13 items 4 and 5; static/js/webmail/actions.js and
search.js) in a real browser, with imaplib on the other side: delete to Trash and undo,
archive, move by menu and by drag-and-drop, bulk keywords, mark as spam / not spam training
the user's Bayes filter, delete for good and empty Trash, keyboard shortcuts with their help
dialog, and a search that finds what IMAP SEARCH finds for every criterion.

The JMAP half of "mark as spam" is also checked without a browser: an Email/set move teaches
the spam filter exactly what an IMAP MOVE does (mail/filing.py, UserMail.copy)."""

from __future__ import annotations

import imaplib
import json
import os
import re
import shutil
import subprocess
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any, Callable

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.spam import bayes
from mailgosend.spam.interfaces import MessageRef
from mailgosend.store import bayes as stats
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import message
from tests.support.jmapcall import JMAPCallFixture
from tests.support.mailserver import PASSWORD
from tests.test_web_browser import ALICE
from tests.test_webmail_browser import WebmailBrowserTestCase, expect

WAIT_MS = 10000
SEARCH_JS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "static", "js", "webmail", "search.js")


class QuerySyntaxTests(unittest.TestCase):
    """search.js's query syntax, run in Node: the box's text -> criteria -> JMAP filter, and
    back to the same text."""

    CASES = [
        ("from:alice subject:report has:attachment",
         {"from": "alice", "subject": "report", "attachment": True},
         {"from": "alice", "subject": "report", "hasAttachment": True, "inMailbox": "B1"}),
        ('to:bob subject:"team report" turnip soup',
         {"to": "bob", "subject": "team report", "text": "turnip soup"},
         {"to": "bob", "subject": "team report", "text": "turnip soup", "inMailbox": "B1"}),
        ("body:turnip after:2026-01-06 before:2026-01-21 in:all",
         {"after": "2026-01-06", "before": "2026-01-21", "body": "turnip", "all": True},
         {"after": "2026-01-06T00:00:00Z", "before": "2026-01-21T00:00:00Z", "body": "turnip"}),
        # Not dates, not a known key: plain words.
        ("after:yesterday colour:red", {"text": "after:yesterday colour:red"},
         {"text": "after:yesterday colour:red", "inMailbox": "B1"}),
        ("   ", {}, None),
    ]

    def test_query_syntax_table(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise unittest.SkipTest("needs node")
        script = (f"const m = await import({json.dumps(SEARCH_JS)});"
                  "const cases = JSON.parse(process.argv[1]);"
                  "console.log(JSON.stringify(cases.map((q) => { const c = m.parseQuery(q);"
                  " return [c, m.toFilter(c, 'B1'), m.formatQuery(c)]; })));")
        out = subprocess.run([node, "--no-warnings", "--input-type=module", "-e", script,
                              json.dumps([q for q, _, _ in self.CASES])],
                             capture_output=True, text=True, timeout=60, check=True)
        results = json.loads(out.stdout)
        for (query, criteria, jmap), (got, got_filter, text) in zip(self.CASES, results):
            self.assertEqual({k: v for k, v in got.items() if v}, criteria, query)
            self.assertEqual(got_filter, jmap, query)
            self.assertEqual(text, " ".join(query.split()), query)


class JMAPSetForTheActionsTests(SQLiteDatabaseMixin, JMAPCallFixture, unittest.TestCase):
    """Email/set as the actions use it: mailboxIds goes through UserMail.copy(move=True), the
    IMAP MOVE path, so it trains the spam filter alike; bulk changes are grouped."""

    def call(self, name: str, **args: Any) -> Any:
        return defer.Deferred.fromCoroutine(self.jmap(name, {"accountId": self.account(),
                                                             **args}))

    @defer.inlineCallbacks
    def test_moves_into_and_out_of_junk_teach_what_imap_moves_teach(self) -> Any:
        mail = yield defer.Deferred.fromCoroutine(self.mail_of(self.alice.email))
        found, _ = yield mail.mailboxes_and_subscriptions()
        boxes = {box.name: box for box in found}
        inbox = boxes["INBOX"]
        delivered = yield mail.append(inbox.id, message("cheap pills"), [], None)
        email_id = f"M{delivered.email_id}"
        junk, trash = f"B{boxes['Spam'].id}", f"B{boxes['Trash'].id}"
        # Into Junk as a whole mailboxIds (what the page sends): "spam".
        _, result, _ = yield self.call("Email/set", update={email_id: {"mailboxIds": {junk: True}}})
        self.assertEqual(result["updated"], {email_id: None})
        [row] = self.rows("Spam")
        self.assertEqual(self.trainer.lessons, [(self.alice.id, MessageRef(
            self.alice.id, boxes["Spam"].id, row.uid, delivered.blob_id), True)])
        # Back to the Inbox as a patch of paths: "ham".
        _, result, _ = yield self.call("Email/set", update={email_id: {
            f"mailboxIds/{junk}": None, f"mailboxIds/B{inbox.id}": True}})
        self.assertEqual(result["updated"], {email_id: None})
        [row] = self.rows("INBOX")
        self.assertEqual(self.trainer.lessons[1:], [(self.alice.id, MessageRef(
            self.alice.id, inbox.id, row.uid, delivered.blob_id), False)])
        # Junk -> Trash teaches nothing (deleting spam is no verdict), as over IMAP.
        yield self.call("Email/set", update={email_id: {"mailboxIds": {junk: True}}})
        yield self.call("Email/set", update={email_id: {"mailboxIds": {trash: True}}})
        self.assertEqual([lesson[2] for lesson in self.trainer.lessons], [True, False, True])

    @defer.inlineCallbacks
    def test_patches_of_different_keywords_at_once_both_stay(self) -> Any:
        """"Mark as read" and "Flag" clicked in quick succession: two Email/set calls in
        flight together.  A keyword path is an add or a remove, never a rewrite of every
        flag from a copy read before the other call wrote (a lost update)."""
        mail = yield defer.Deferred.fromCoroutine(self.mail_of(self.alice.email))
        inbox = yield mail.get_mailbox("INBOX")
        delivered = yield mail.append_all(inbox.id, [(message(f"race {i}"), ["$Label"], None)
                                                     for i in range(20)])
        ids = [f"M{d.email_id}" for d in delivered]
        yield defer.gatherResults([
            self.call("Email/set", update={i: {"keywords/$seen": True} for i in ids}),
            self.call("Email/set", update={i: {"keywords/$flagged": True} for i in ids}),
            self.call("Email/set", update={i: {"keywords/$label": None} for i in ids}),
        ])
        self.assertEqual({tuple(sorted(row.flags)) for row in self.rows("INBOX")},
                         {("\\Flagged", "\\Seen")})

    @defer.inlineCallbacks
    def test_a_bulk_set_is_one_store_and_one_move_per_mailbox(self) -> Any:
        """The page's bulk actions on hundreds of rows: a few transactions, not two each."""
        mail = yield defer.Deferred.fromCoroutine(self.mail_of(self.alice.email))
        found, _ = yield mail.mailboxes_and_subscriptions()
        boxes = {box.name: box for box in found}
        delivered = yield mail.append_all(boxes["INBOX"].id, [
            (message(f"bulk {i}"), [], None) for i in range(3)])
        ids = [f"M{d.email_id}" for d in delivered]
        calls: list[tuple[str, int]] = []
        for name in ("set_flags", "copy", "expunge"):
            def counted(*args: Any, _name: str = name, _real: Any = getattr(mail, name),
                        **kwargs: Any) -> Any:
                calls.append((_name, len(args[1])))  # (mailbox, uids, ...)
                return _real(*args, **kwargs)
            setattr(mail, name, counted)
        archive = f"B{boxes['Archive'].id}"
        _, result, _ = yield self.call("Email/set", update={
            i: {"mailboxIds": {archive: True}, "keywords/$seen": True} for i in ids})
        self.assertEqual(set(result["updated"]), set(ids))
        self.assertEqual(calls, [("set_flags", 3), ("copy", 3)])
        self.assertEqual([row.flags for row in self.rows("Archive")], [("\\Seen",)] * 3)
        self.assertEqual(self.rows("INBOX"), [])
        del calls[:]
        _, result, _ = yield self.call("Email/set", destroy=ids + ["M0"])
        self.assertEqual((result["destroyed"], list(result["notDestroyed"])), (ids, ["M0"]))
        self.assertEqual(calls, [("set_flags", 3), ("expunge", 3)])
        self.assertEqual(self.rows("Archive"), [])


def mime(subject: str, *, sender: str = "Carol <carol@elsewhere.example>",
         to: str = ALICE, body: str = "Hello.", attachment: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Sat, 05 Dec 2026 10:00:00 +0000"
    msg.set_content(body)
    if attachment:
        msg.add_attachment(b"%PDF-1.4 figures", maintype="application", subtype="pdf",
                           filename="figures.pdf")
    return bytes(msg)


class IMAP:
    """A blocking IMAP client of alice's (for the scenario's thread)."""

    def __init__(self, port: int, tls: Any) -> None:
        self.client = imaplib.IMAP4("127.0.0.1", port)
        self.client.starttls(tls)
        self.client.login(ALICE, PASSWORD)

    def subjects(self, mailbox: str, *criteria: str) -> set[str]:
        typ, _ = self.client.select(mailbox, readonly=True)
        assert typ == "OK", mailbox
        _, data = self.client.uid("SEARCH", *(criteria or ("ALL",)))
        uids = data[0].split()
        if not uids:
            return set()
        _, fetched = self.client.uid("FETCH", b",".join(uids).decode(),
                                     "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return {part[1].decode().split(":", 1)[1].strip() for part in fetched
                if isinstance(part, tuple)}

    def flags(self, mailbox: str) -> dict[str, str]:
        """subject -> the FLAGS of each message."""
        self.client.select(mailbox, readonly=True)
        _, fetched = self.client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = {}
        for part in fetched:
            if isinstance(part, tuple):
                out[part[1].decode().split(":", 1)[1].strip()] = part[0].decode()
        return out

    def until(self, check: Callable[[], bool], what: str, seconds: float = 10) -> None:
        """Poll over IMAP until ``check()`` (the page's JMAP call may still be on its way)."""
        deadline = time.monotonic() + seconds
        while not check():
            assert time.monotonic() < deadline, what
            time.sleep(0.1)

    def close(self) -> None:
        self.client.logout()


class WebmailActionsTests(WebmailBrowserTestCase):
    @defer.inlineCallbacks
    def put(self, mailbox: str, messages: list[tuple[bytes, datetime]],
            flags: tuple[str, ...] = ()) -> Any:
        user = yield self.mail.open_account(ALICE)
        box = yield user.get_mailbox(mailbox)
        yield user.append_all(box.id, [(raw, list(flags), date) for raw, date in messages])
        return user

    def imap(self) -> IMAP:
        return IMAP(self.server.ports["IMAP"], self.server.client_tls())

    @defer.inlineCallbacks
    def test_delete_undo_archive_move_drag_spam_and_empty_trash(self) -> Any:
        spam_raw = mime("Spam me", sender="Pills <pills@spam.example>",
                        body="cheap pills discount pharmacy now")
        day = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
        user = yield self.put("INBOX", [(mime(s), day) for s in (
            "Delete me", "Archive me", "Move me", "Drag me", "Bulk one", "Bulk two",
            "Gone for good")] + [(spam_raw, day)])
        engine, user_id = self.server.engine, user.user.id
        tokens = bayes.hash_tokens(bayes.user_key(self.mail.keyring, user.user.uuid),
                                   bayes.tokenize(spam_raw))

        def counts() -> set[tuple[int, int]]:
            return set(run_sync(engine, stats.token_counts, user_id, tokens,
                                write=False).values())

        def scenario(browser: Any, errors: list[str]) -> None:
            imap = self.imap()
            try:
                imap.client.create("Projects")
                page = self.open_mail(browser, errors)
                folders = page.get_by_role("navigation", name="Folders")
                listbox = page.get_by_role("listbox", name="Message list")
                toast = page.locator("#action-toast")

                def row(subject: str) -> Any:
                    return listbox.get_by_role("option", name=re.compile(f", {subject}"))

                def there(mailbox: str, subject: str) -> None:
                    imap.until(lambda: subject in imap.subjects(mailbox),
                               f"{subject!r} never reached {mailbox} over IMAP")

                def folder(name: str) -> Any:
                    return folders.get_by_role("button", name=re.compile(f"^{name}"))

                # Delete: to Trash, seen over IMAP; Undo brings it back.
                reader = page.get_by_role("article")
                row("Delete me").click()
                expect(page.get_by_role("heading", name="Delete me")).to_be_visible()
                reader.get_by_role("button", name="Delete", exact=True).click()
                expect(toast).to_have_attribute("role", "status")
                expect(toast).to_contain_text("Moved 1 message to Trash.")
                there("Trash", "Delete me")
                self.assertNotIn("Delete me", imap.subjects("INBOX"))
                expect(row("Delete me")).to_have_count(0, timeout=WAIT_MS)
                toast.get_by_role("button", name="Undo").click()
                there("INBOX", "Delete me")
                self.assertEqual(imap.subjects("Trash"), set())
                expect(row("Delete me")).to_be_visible(timeout=WAIT_MS)
                # Archive.
                reader = page.get_by_role("article")
                row("Archive me").click()
                expect(page.get_by_role("heading", name="Archive me")).to_be_visible()
                reader.get_by_role("button", name="Archive", exact=True).click()
                there("Archive", "Archive me")
                # Move by the menu.
                row("Move me").click()
                expect(page.get_by_role("heading", name="Move me")).to_be_visible()
                reader.get_by_role("button", name="Move to…").click()
                menu = page.get_by_role("menu", name="Move to folder")
                menu.get_by_role("menuitem", name="Projects").click()
                there("Projects", "Move me")
                # Move by dragging a row onto a folder.
                row("Drag me").drag_to(folder("Projects"))
                there("Projects", "Drag me")
                expect(row("Drag me")).to_have_count(0, timeout=WAIT_MS)
                # A multi-selection: bulk read, flag, then move with the bar's menu.
                row("Bulk one").click()
                row("Bulk two").click(modifiers=["Control"])
                bar = page.locator("#selection-bar")
                expect(bar).to_contain_text("2 selected")
                bar.get_by_role("button", name="Mark as read").click()
                bar.get_by_role("button", name="Flag", exact=True).click()
                imap.until(lambda: all("\\Seen" in f and "\\Flagged" in f for s, f in
                                       imap.flags("INBOX").items() if s.startswith("Bulk")),
                           "bulk flags never reached IMAP")
                bar.get_by_role("button", name="Move to…").click()
                bar.get_by_role("menuitem", name="Projects").click()
                there("Projects", "Bulk one")
                there("Projects", "Bulk two")
                # Mark as spam: lands in Junk over IMAP and trains alice's Bayes filter.
                self.assertEqual(counts(), set())
                row("Spam me").click()
                expect(page.get_by_role("heading", name="Spam me")).to_be_visible()
                reader.get_by_role("button", name="Spam", exact=True).click()
                there("Spam", "Spam me")
                imap.until(lambda: counts() == {(0, 1)}, "never trained as spam")
                # Not spam (from the Junk folder): back to the Inbox, retrained as ham.
                folder("Spam").click()
                row("Spam me").click()
                expect(page.get_by_role("heading", name="Spam me")).to_be_visible()
                reader.get_by_role("button", name="Not spam").click()
                there("INBOX", "Spam me")
                imap.until(lambda: counts() == {(1, 0)}, "never retrained as ham")
                totals = run_sync(engine, stats.totals, user_id, write=False)
                self.assertEqual((totals.ham_messages, totals.spam_messages), (1, 0))
                # In Trash, Delete asks, then deletes for good; Empty Trash asks, then empties.
                folder("Inbox").click()
                for subject in ("Delete me", "Gone for good"):
                    row(subject).click()
                    expect(page.get_by_role("heading", name=subject)).to_be_visible()
                    reader.get_by_role("button", name="Delete", exact=True).click()
                    there("Trash", subject)
                folder("Trash").click()
                row("Gone for good").click()
                expect(page.get_by_role("heading", name="Gone for good")).to_be_visible()
                reader.get_by_role("button", name="Delete", exact=True).click()
                question = page.get_by_role("alertdialog", name="Delete 1 message for good?")
                expect(question).to_be_visible()
                question.get_by_role("button", name="Cancel").click()
                expect(question).to_be_hidden()
                self.assertEqual(imap.subjects("Trash"), {"Delete me", "Gone for good"})
                reader.get_by_role("button", name="Delete", exact=True).click()
                question.get_by_role("button", name="Delete for good").click()
                imap.until(lambda: imap.subjects("Trash") == {"Delete me"},
                           "not deleted for good")
                page.get_by_role("button", name="Empty Trash").click()
                question = page.get_by_role("alertdialog", name="Empty Trash?")
                question.get_by_role("button", name="Empty Trash").click()
                imap.until(lambda: imap.subjects("Trash") == set(), "Trash never emptied")
                expect(listbox.get_by_role("option")).to_have_count(0, timeout=WAIT_MS)
                expect(toast).to_contain_text("Trash emptied: 1 message deleted for good.")
                self.assertEqual(imap.subjects("Projects"),
                                 {"Move me", "Drag me", "Bulk one", "Bulk two"})
                self.assertEqual(imap.subjects("INBOX"), {"Spam me"})
                # A move by an IMAP client keeps the Email id (an update, not a destroy):
                # the row still leaves the page's folder, by push.
                folder("Inbox").click()
                expect(row("Spam me")).to_be_visible()
                imap.client.select("INBOX")
                self.assertEqual(imap.client.uid("MOVE", "1:*", "Projects")[0], "OK")
                expect(row("Spam me")).to_have_count(0, timeout=WAIT_MS)
            finally:
                imap.close()

        yield self.in_browser(scenario)

    @defer.inlineCallbacks
    def test_keyboard_shortcuts_and_their_help(self) -> Any:
        # Oldest first: the newest-first list shows Key 4, Key 3, Key 2, Key 1.
        yield self.store([mime(f"Key {i}") for i in range(1, 5)])

        def scenario(browser: Any, errors: list[str]) -> None:
            imap = self.imap()
            try:
                page = self.open_mail(browser, errors)
                listbox = page.get_by_role("listbox", name="Message list")
                heading = page.locator("#subject")
                listbox.get_by_role("option", name=re.compile("Key 4")).click()
                expect(heading).to_have_text("Key 4")
                # Focus outside the list: j/k open the next and previous message.
                heading.click()
                page.keyboard.press("j")
                expect(heading).to_have_text("Key 3")
                page.keyboard.press("j")
                expect(heading).to_have_text("Key 2")
                page.keyboard.press("k")
                expect(heading).to_have_text("Key 3")
                # r/a/f/c open the compose module's form for the open message (or a new one).
                for key, title, subject in (("r", "Reply", "Re: Key 3"),
                                            ("a", "Reply to all", "Re: Key 3"),
                                            ("f", "Forward", "Fwd: Key 3"),
                                            ("c", "New message", "")):
                    page.keyboard.press(key)
                    form = page.get_by_role("dialog", name=title, exact=True)
                    expect(form).to_be_visible()
                    expect(form.get_by_label("Subject")).to_have_value(subject)
                    # Typing in the form is no shortcut (e would archive).
                    form.get_by_label("Subject").press("e")
                    form.get_by_role("button", name="Close").click()
                    expect(form).to_have_count(0)
                    heading.click()
                self.assertEqual(imap.subjects("Archive"), set())
                # e archives the open message; # deletes one.
                page.keyboard.press("e")
                imap.until(lambda: imap.subjects("Archive") == {"Key 3"}, "e did not archive")
                expect(page.locator("#action-toast")).to_contain_text("Archived 1 message.")
                listbox.get_by_role("option", name=re.compile("Key 2")).click()
                expect(heading).to_have_text("Key 2")
                heading.click()
                page.keyboard.press("#")
                imap.until(lambda: imap.subjects("Trash") == {"Key 2"}, "# did not delete")
                # z undoes it (while the toast offers Undo).
                expect(page.get_by_role("status").filter(has_text="Moved 1 message to Trash.")
                       ).to_be_visible()
                page.keyboard.press("z")
                imap.until(lambda: imap.subjects("Trash") == set(), "z did not undo")
                # / goes to the search box; typing there is no shortcut.
                page.keyboard.press("/")
                search = page.get_by_role("searchbox", name="Search mail")
                expect(search).to_be_focused()
                page.keyboard.type("e#")
                expect(search).to_have_value("e#")
                page.wait_for_timeout(300)
                self.assertEqual(imap.subjects("INBOX"), {"Key 1", "Key 2", "Key 4"})
                # ? shows the help, an accessible dialog closed by Escape.
                search.press("Escape")
                page.locator("#folder-title").click()
                page.keyboard.press("?")
                help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
                expect(help_dialog).to_be_visible()
                expect(help_dialog).to_contain_text("Archive")
                page.keyboard.press("Escape")
                expect(help_dialog).to_be_hidden()
                # s flags the open message, Shift+U marks it unread (read when opened above).
                listbox.get_by_role("option", name=re.compile("Key 4")).click()
                expect(heading).to_have_text("Key 4")
                heading.click()
                page.keyboard.press("s")
                imap.until(lambda: "\\Flagged" in imap.flags("INBOX")["Key 4"], "s: no flag")
                expect(page.locator("#flag-toggle")).to_have_text("Unflag")
                page.keyboard.press("Shift+U")
                imap.until(lambda: "\\Seen" not in imap.flags("INBOX")["Key 4"],
                           "Shift+U: still read")
            finally:
                imap.close()

        yield self.in_browser(scenario)

    @defer.inlineCallbacks
    def test_search_finds_what_imap_search_finds(self) -> Any:
        def at(day: int, month: int = 1, year: int = 2026) -> datetime:
            return datetime(year, month, day, 12, tzinfo=timezone.utc)

        yield self.put("INBOX", [
            (mime("Quarterly report", sender="Alice Smith <alice.smith@corp.example>",
                  to="Bob <bob@example.com>", body="the turnip harvest figures",
                  attachment=True), at(5)),
            (mime("Lunch plans", sender="Carol <carol@elsewhere.example>",
                  body="pizza at noon"), at(10)),
            (mime("Draft of the review", sender="Dave <dave@elsewhere.example>",
                  to="Team <team@example.com>", body="turnip soup recipe",
                  attachment=True), at(20)),
            (mime("Weekend", sender="Erin <erin@elsewhere.example>", body="hiking"), at(25)),
        ])
        yield self.put("Archive", [
            (mime("Old report", sender="Alice Smith <alice.smith@corp.example>",
                  body="last year's turnip figures"), at(1, 12, 2025)),
        ])

        def scenario(browser: Any, errors: list[str]) -> None:
            imap = self.imap()
            try:
                page = self.open_mail(browser, errors)
                listbox = page.get_by_role("listbox", name="Message list")
                search = page.get_by_role("search", name="Search mail")
                box = search.get_by_role("searchbox", name="Search mail")
                expect(listbox.get_by_role("option")).to_have_count(4)

                def shown() -> set[str]:
                    labels = listbox.get_by_role("option").evaluate_all(
                        "rows => rows.map(r => r.getAttribute('aria-label'))")
                    return {label.split(", ")[1] for label in labels}

                def same(expected: set[str], what: str) -> None:
                    self.assertTrue(expected, what)  # a criterion that finds something
                    expect(listbox.get_by_role("option")).to_have_count(len(expected),
                                                                        timeout=WAIT_MS)
                    self.assertEqual(shown(), expected, what)

                def typed(query: str) -> None:
                    box.fill(query)
                    box.press("Enter")

                def advanced(**fields: Any) -> None:
                    toggle = search.get_by_role("button", name="Advanced")
                    if toggle.get_attribute("aria-expanded") != "true":
                        toggle.click()
                    panel = search.get_by_role("group", name="Advanced search")
                    panel.get_by_role("button", name="Reset").click()
                    for label, value in fields.items():
                        if label == "Has attachment":
                            panel.get_by_label(label).check()
                        elif label == "scope":
                            panel.get_by_label(value).check()
                        else:
                            panel.get_by_label(label, exact=True).fill(value)
                    panel.get_by_role("button", name="Find messages").click()

                inbox = lambda *c: imap.subjects("INBOX", *c)  # noqa: E731
                # Each criterion, by the advanced panel and by the query syntax.
                advanced(From="alice")
                same(inbox("FROM", "alice"), "from")
                expect(page.locator("#folder-title")).to_have_text("Search: Inbox")
                expect(box).to_have_value("from:alice")
                typed("to:bob")
                same(inbox("TO", "bob"), "to")
                advanced(Subject="report")
                same(inbox("SUBJECT", "report"), "subject")
                typed("body:turnip")
                same(inbox("BODY", "turnip"), "body")
                advanced(**{"Received after": "2026-01-06", "Received before": "2026-01-21"})
                same(inbox("SINCE", "6-Jan-2026", "BEFORE", "21-Jan-2026"), "date range")
                expect(box).to_have_value("after:2026-01-06 before:2026-01-21")
                typed("has:attachment")
                # IMAP has no attachment key: these messages' attachments are exactly their
                # multipart/mixed bodies.
                same(inbox("HEADER", "Content-Type", "multipart/mixed"), "has attachment")
                typed("from:alice body:turnip in:all")
                everywhere = set()
                for mailbox in ("INBOX", "Archive", "Sent", "Drafts", "Spam", "Trash"):
                    everywhere |= imap.subjects(mailbox, "FROM", "alice", "BODY", "turnip")
                self.assertEqual(everywhere, {"Quarterly report", "Old report"})
                same(everywhere, "all folders")
                expect(page.locator("#folder-title")).to_have_text("Search: all folders")
                # A result opens as usual; clearing the search returns to the folder.
                listbox.get_by_role("option", name=re.compile("Old report")).click()
                expect(page.get_by_role("heading", name="Old report")).to_be_visible()
                search.get_by_role("button", name="Clear search").click()
                expect(page.locator("#folder-title")).to_have_text("Inbox")
                expect(box).to_have_value("")
                same(inbox("ALL"), "the folder again")
            finally:
                imap.close()

        yield self.in_browser(scenario)

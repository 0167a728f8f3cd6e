"""The admin panel's operations pages in a real browser (Playwright with Debian's Chromium;
controls found by role and accessible name, no CSP violation): an administrator adds a
domain, generates a DKIM key and sees its TXT record, creates a user with a password shown
once, retries and deletes queued messages, and unbans an IP address."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from twisted.internet import defer

from mailgosend.store import accounts, dkimkeys
from mailgosend.store import queue as queue_store
from mailgosend.store import security as security_store
from tests.support.mailserver import PASSWORD
from tests.support.queueing import queue_raw
from tests.test_web_browser import ADMIN, BrowserTestCase

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the [test] extra installs it
    expect = None


class OperationsBrowserTests(BrowserTestCase):
    settings = {"ADMIN_RATE_PER_MIN": "1000"}

    def read(self, fn: Any, *args: Any) -> Any:
        from mailgosend.db.runner import run_sync
        return run_sync(self.server.engine, fn, *args, write=False)

    @defer.inlineCallbacks
    def test_domain_dkim_user_queue_and_unban(self) -> Any:
        base = self.admin_base
        parts = self.server.root.components
        now = self.server.now()
        retried, deleted = (queue_raw(self.server.engine, parts["blob_store"], parts["keyring"],
                                      "alice@example.com", [rcpt], b"Subject: x\r\n\r\nx\r\n", now)
                            for rcpt in ("slow@far.test", "wrong@far.test"))
        from mailgosend.db.runner import run_sync
        run_sync(self.server.engine, lambda c: c.execute(
            queue_store.queue_recipients.update().values(
                next_attempt_at=now + timedelta(hours=3))).rowcount, write=True)
        run_sync(self.server.engine, security_store.ban_ip, "192.0.2.77",
                 now + timedelta(hours=1), "test", now, write=True)

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(
                viewport={"width": 1280, "height": 900},
                permissions=["clipboard-read", "clipboard-write"]), errors)
            self.sign_in(page, base, ADMIN, PASSWORD)
            page.goto(base + "/admin/domains")
            nav = page.get_by_role("navigation", name="Administration")

            # A domain, then its DKIM key and the record to publish.
            page.get_by_role("textbox", name="Domain name").fill("shop.example")
            page.get_by_role("button", name="Add domain").click()
            expect(page.get_by_role("heading", name="shop.example")).to_be_visible()
            expect(page.get_by_role("status").filter(has_text="Domain added.")).to_be_visible()
            page.get_by_role("combobox", name="Algorithm").select_option("ed25519")
            page.get_by_role("button", name="Generate DKIM key").click()
            expect(page.get_by_role("status").filter(has_text="DKIM key generated.")
                   ).to_be_visible()
            record = page.get_by_role("textbox", name="TXT record to publish")
            expect(record).to_contain_text("._domainkey.shop.example. IN TXT")
            expect(record).to_contain_text("k=ed25519")
            # Copy it (static/js/admin-copy.js): the clipboard holds the zone-file record.
            page.get_by_role("button", name=re.compile(r"^Copy record of ")).click()
            expect(page.get_by_role("status").filter(has_text="Copied the record of")
                   ).to_have_count(1)
            copied = page.evaluate("navigator.clipboard.readText()")
            assert copied == record.input_value(), copied

            # A user of the new domain, with a random password shown once.
            nav.get_by_role("link", name="Users").click()
            page.get_by_role("textbox", name="Email address").fill("clerk@shop.example")
            page.get_by_role("button", name="Create user").click()
            password = page.get_by_label("New password").inner_text()
            assert re.fullmatch(r"[a-z2-9]{5}(-[a-z2-9]{5}){3}", password), password

            # The queue: retry one message, delete the other.
            nav.get_by_role("link", name="Queue").click()
            page.get_by_role("button", name=f"Retry message {retried}").click()
            expect(page.get_by_role("heading", name=f"Queued message {retried}")).to_be_visible()
            nav.get_by_role("link", name="Queue").click()
            page.get_by_role("button", name=f"Delete message {deleted}").click()
            expect(page.get_by_role("status")).to_have_text("1 message(s) deleted.")
            expect(page.get_by_role("link", name=f"Message {deleted}")).to_have_count(0)
            expect(page.get_by_role("link", name=f"Message {retried}")).to_have_count(1)

            # Security: lift a ban.
            nav.get_by_role("link", name="Security").click()
            page.get_by_role("button", name="Unban 192.0.2.77").click()
            expect(page.get_by_role("status")).to_have_text("Ban lifted.")
            expect(page.get_by_role("button", name="Unban 192.0.2.77")).to_have_count(0)

        yield self.in_browser(scenario)
        self.assertTrue(self.read(accounts.is_local_domain, "shop.example"))
        (key,) = self.read(dkimkeys.list_keys, "shop.example")
        self.assertEqual(key.algorithm, "ed25519-sha256")
        self.assertEqual(self.read(accounts.get_user, "clerk@shop.example").domain,
                         "shop.example")
        entries = {e.message.id: e for e in self.read(queue_store.list_entries)}
        self.assertEqual(list(entries), [retried])
        self.assertLess(entries[retried].recipients[0].next_attempt_at,
                        now + timedelta(hours=1))           # due now, not in 3 hours
        self.assertEqual(self.read(security_store.active_ip_bans, self.server.now()), {})

"""Issue 14's whole journey in a real browser (Playwright with Debian's Chromium; controls found
by role and accessible name, no CSP violation), joining up what the other browser tests show
one piece at a time:

1. a full administrator signs in on the admin port with TOTP, adds a domain, creates a user
   in it with a password the administrator chooses, and makes another user (bob) the
   administrator of a second domain (example.com);
2. in another browser context the new user signs in to webmail on the web port (/login, then
   /mail); a message sent with smtplib appears in the open inbox without a reload and is read;
3. in a third context bob signs in on the admin port, follows the panel link to the users of
   his own domain only; the first domain's user is not listed, and opening that user's page
   or that domain's page directly is refused (403)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from twisted.internet import defer

from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from tests.support.mailserver import PASSWORD
from tests.test_web_browser import ADMIN, ALICE, SIGN_IN_MS
from tests.test_web_mfa import enable_mfa
from tests.test_webmail_browser import BOB, WebmailBrowserTestCase, send_smtp

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the [test] extra installs it
    expect = None

DOMAIN = "shop.example"
CLERK = f"clerk@{DOMAIN}"
CLERK_PASSWORD = "Counter-Ledger-Window-42"


class AdminJourneyBrowserTests(WebmailBrowserTestCase):
    settings = {"ADMIN_RATE_PER_MIN": "1000"}

    @defer.inlineCallbacks
    def test_admin_with_totp_sets_up_a_user_who_reads_mail_and_a_domain_admin(self) -> Any:
        admin_base = self.admin_base
        smtp_port = self.server.ports["SMTP"]
        codes = enable_mfa(self.server, ADMIN)

        def full_admin(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(viewport={"width": 1280, "height": 900}), errors)
            self.sign_in(page, admin_base, ADMIN, PASSWORD, totp=codes.next)
            page.get_by_role("link", name="Open the administration panel").click()
            expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
            nav = page.get_by_role("navigation", name="Administration")

            # The first domain.
            nav.get_by_role("link", name="Domains").click()
            page.get_by_role("textbox", name="Domain name").fill(DOMAIN)
            page.get_by_role("button", name="Add domain").click()
            expect(page.get_by_role("heading", name=DOMAIN)).to_be_visible()
            expect(page.get_by_role("status").filter(has_text="Domain added.")).to_be_visible()

            # Its user, with the password the administrator chose (none shown back).
            nav.get_by_role("link", name="Users").click()
            page.get_by_role("textbox", name="Email address").fill(CLERK)
            page.get_by_label("Password").fill(CLERK_PASSWORD)
            page.get_by_role("button", name="Create user").click()
            expect(page.get_by_role("heading", name=CLERK)).to_be_visible(timeout=SIGN_IN_MS)
            expect(page.get_by_role("status").filter(has_text="User created.")).to_be_visible()
            expect(page.get_by_text(CLERK_PASSWORD)).to_have_count(0)

            # Bob administers the second domain, example.com.
            nav.get_by_role("link", name="Domains").click()
            page.get_by_role("link", name="example.com", exact=True).click()
            expect(page.get_by_role("heading", name="example.com")).to_be_visible()
            page.get_by_role("textbox", name="User's address").fill(BOB)
            page.get_by_role("button", name="Add domain administrator").click()
            expect(page.get_by_role("status").filter(has_text="Domain administrator added.")
                   ).to_be_visible()
            expect(page.get_by_role("button", name=f"Remove domain administrator {BOB}")
                   ).to_be_visible()

        def new_user_reads_mail(browser: Any, errors: list[str]) -> None:
            page = self.open_mail(browser, errors, CLERK, CLERK_PASSWORD)
            expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
            send_smtp(smtp_port, "Welcome to the shop", "Your first shift is on Monday.",
                      to=CLERK)
            row = page.get_by_role("option", name=re.compile(
                "Carol, Welcome to the shop, unread"))
            expect(row).to_be_visible(timeout=15000)
            row.click()
            expect(page.get_by_role("heading", name="Welcome to the shop")).to_be_visible()
            body = page.frame_locator("iframe[title='Message body']")
            expect(body.get_by_text("Your first shift is on Monday.")).to_be_visible()
            expect(page.get_by_role("option", name=re.compile("unread"))).to_have_count(0)

        def domain_admin(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(viewport={"width": 1280, "height": 900}), errors)
            self.sign_in(page, admin_base, BOB, PASSWORD)
            page.get_by_role("link", name="Open the administration panel").click()
            expect(page.get_by_role("heading", name="Users")).to_be_visible()
            nav = page.get_by_role("navigation", name="Administration")
            expect(nav.get_by_role("link", name="Domains")).to_have_count(0)
            accounts_list = page.get_by_role("region", name="Accounts")
            for email in (ALICE, BOB, ADMIN):
                expect(accounts_list.get_by_role("link", name=email, exact=True)
                       ).to_be_visible()
            expect(accounts_list.get_by_role("link", name=CLERK)).to_have_count(0)
            expect(page.get_by_role("combobox", name="Domain").get_by_role("option")
                   ).to_have_text(["All my domains", "example.com"])
            # Typing the other domain's addresses in: refused, nothing learnt.
            for path in (f"/admin/users/{quote(CLERK)}", f"/admin/domains/{DOMAIN}",
                         f"/admin/users?domain={DOMAIN}"):
                answer = page.goto(admin_base + path)
                assert answer is not None and answer.status == 403, (path, answer)
                expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
                expect(page.get_by_text(CLERK)).to_have_count(0)

        def journey(browser: Any, errors: list[str]) -> None:
            # One browser; each person in a context of their own (browser.new_page).
            full_admin(browser, errors)
            new_user_reads_mail(browser, errors)
            domain_admin(browser, errors)

        yield self.in_browser(journey)
        engine = self.server.engine
        self.assertEqual(run_sync(engine, accounts.get_user, CLERK, write=False).domain, DOMAIN)
        self.assertEqual(run_sync(engine, accounts.domain_admins_of, "example.com",
                                  write=False), [BOB])

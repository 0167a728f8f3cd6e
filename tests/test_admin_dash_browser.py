"""The admin panel in a real browser (Playwright with Debian's Chromium; controls found by
role and accessible name): an administrator with TOTP signs in on the admin port, sees the
dashboard's charts drawn (uPlot from the vendored module, no CSP violation), edits a setting
that applies without a restart and gets a malformed value refused; the Logs page's live
tail shows a line logged after it was opened.

With MAILGO_SCREENSHOTS=<directory> the scenario also saves the README's screenshots there
(docs/screenshots/)."""

from __future__ import annotations

import os
import uuid
from typing import Any

from twisted.internet import defer, reactor
from twisted.logger import Logger

from tests.support.mailserver import PASSWORD
from tests.test_web_browser import ADMIN, BrowserTestCase
from tests.test_web_mfa import enable_mfa

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the [test] extra installs it
    expect = None

log = Logger(namespace="mailgosend.tests.browser")
SHOTS = os.environ.get("MAILGO_SCREENSHOTS", "")


def shoot(page: Any, name: str) -> None:
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"))


class AdminPanelBrowserTests(BrowserTestCase):
    @defer.inlineCallbacks
    def test_sign_in_with_totp_see_the_charts_and_edit_a_setting(self) -> Any:
        base = self.admin_base
        codes = enable_mfa(self.server, ADMIN)
        counters = self.server.root.components["counters"]
        for name, label, n in (("messages_received", "inbound", 12), ("messages_sent", "", 7),
                               ("messages_rejected", "policy", 3),
                               ("messages_bounced", "", 1)):
            counters.add(name, *([label] if label else []), n=n)
        marker = uuid.uuid4().hex

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(viewport={"width": 1280, "height": 860}), errors)
            page.goto(base + "/admin")
            expect(page).to_have_url(base + "/login")
            page.get_by_role("textbox", name="Email").fill(ADMIN)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
            page.get_by_role("textbox", name="Authentication code").fill(codes.next())
            shoot(page, "admin-sign-in-totp")
            page.get_by_role("button", name="Verify").click()
            page.get_by_role("link", name="Open the administration panel").click()

            # The dashboard: numbers and both charts drawn from /admin/api/dashboard.
            expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
            nav = page.get_by_role("navigation", name="Administration")
            expect(nav.get_by_role("link", name="Dashboard")).to_have_attribute(
                "aria-current", "page")
            for chart in ("#chart-hourly", "#chart-daily"):
                expect(page.locator(chart)).to_have_attribute("data-rendered", "true")
                expect(page.locator(f"{chart} canvas")).to_have_count(1)
            legend = page.locator("#chart-hourly .u-legend")
            expect(legend).to_contain_text("Received")
            expect(legend).to_contain_text("Rejected")
            expect(page.get_by_role("img", name="Chart: messages received, sent, bounced and "
                                    "rejected per hour over the last 24 hours")).to_be_visible()
            shoot(page, "admin-dashboard")

            # A setting that applies at once, after a malformed value is refused.
            nav.get_by_role("link", name="Settings").click()
            expect(page.get_by_role("heading", name="Settings")).to_be_visible()
            shoot(page, "admin-settings")
            page.get_by_role("link", name="Edit METRICS_ALLOW").click()
            field = page.get_by_role("textbox", name="METRICS_ALLOW")
            field.fill("192.0.2.0/24, a-network")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_role("alert")).to_contain_text(
                "METRICS_ALLOW: 'a-network' is not an IP address or network")
            field.fill("192.0.2.0/24")
            shoot(page, "admin-setting-edit")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_role("status")).to_have_text(
                "METRICS_ALLOW saved. It applies at once.")

            nav.get_by_role("link", name="TLS").click()
            expect(page.get_by_role("heading", name="TLS certificates")).to_be_visible()
            shoot(page, "admin-tls")

            # The live tail.
            nav.get_by_role("link", name="Logs").click()
            page.get_by_role("searchbox", name="Text").fill(marker)
            page.get_by_role("button", name="Show").click()
            expect(page.get_by_text("No log line matches.")).to_be_visible()
            page.get_by_role("checkbox", name="Live tail").check()
            expect(page.get_by_role("status")).to_have_text(
                "Live tail on: new lines appear below.")
            reactor.callFromThread(log.warn, "a line for the live tail {m}", m=marker)
            expect(page.get_by_role("cell", name=f"a line for the live tail {marker}")) \
                .to_be_visible()
            page.get_by_role("checkbox", name="Live tail").uncheck()

            nav.get_by_role("link", name="Audit").click()
            expect(page.get_by_role("cell", name="settings.edit")).to_be_visible()
            shoot(page, "admin-audit")

        yield self.in_browser(scenario)
        answer = yield self.client(admin=True).get("/metrics")
        self.assertEqual(answer.status_code, 403)   # METRICS_ALLOW applied, no restart

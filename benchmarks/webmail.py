#!/usr/bin/env python3
"""The webmail in Chromium on a big inbox (issue 13): figures only, no pass/fail.

Starts a whole server in this process (tests/support/mailserver.py: SQLite in a temporary
directory, plain HTTP on loopback), stores --messages small HTML messages in one user's INBOX
through the store (the local delivery path, in batches of 500), signs in with Playwright and
Debian's Chromium, then times, --runs times each, end to end in the browser:

  first render   GET /mail until the first message row is in the page (session, folders,
                 Email/query window + Email/get, push opened); the first, cold one (the
                 server builds the user's list index) is printed apart
  open message   a click on a row until the sanitised body is shown in its frame
  scroll middle  the list scrolled to position N/2 until that row is shown (one window
                 fetched by position)

and prints p50/p95 in ms, and the server process's peak RSS (it shares the process with this
script's reactor, not with Chromium).

  PYTHONPATH=. python3 benchmarks/webmail.py [--messages 20000] [--runs 15]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet import defer, task, threads

sys.path.insert(0, ".")
from tests.support.mailserver import PASSWORD, MailServer  # noqa: E402
from tests.support.net import free_ports  # noqa: E402
from tests.support.web import CHROMIUM  # noqa: E402

USER = "alice@example.com"


def message(i: int) -> bytes:
    return (f"From: Sender {i % 97} <s{i % 97}@elsewhere.example>\r\nTo: {USER}\r\n"
            f"Subject: Message {i:06d}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n"
            f"<p style=\"color:#333\">Body of message {i}, with a "
            f"<a href=\"https://example.org/{i}\">link</a>.</p>\r\n").encode()


def figures(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    print(f"{name:<15} p50 {statistics.median(ordered) * 1000:7.1f} ms   "
          f"p95 {p95 * 1000:7.1f} ms   (n={len(ordered)})")


def browse(base: str, count: int, runs: int) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(base + "/login")
        page.get_by_role("textbox", name="Email").fill(USER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(base + "/")
        listbox = page.get_by_role("listbox", name="Message list")
        first, opened, middle = [], [], []
        for run in range(runs):
            start = time.perf_counter()
            page.goto(base + "/mail")
            listbox.locator("[role=option][data-id^=M]").first.wait_for()
            first.append(time.perf_counter() - start)
            row = listbox.locator("[role=option][data-id^=M]").nth(run % 5 + 1)
            name = row.get_attribute("aria-label") or ""
            start = time.perf_counter()
            row.click()
            subject = name.split(", ")[1]
            page.frame_locator("iframe[title='Message body']").get_by_text(
                "Body of message", exact=False).wait_for()
            expect(page.get_by_role("heading", name=subject, exact=True)).to_be_visible()
            opened.append(time.perf_counter() - start)
            position = count // 2 + run * 7
            wanted = f"Message {count - 1 - position:06d}"
            start = time.perf_counter()
            listbox.evaluate(f"e => {{ e.scrollTop = {position} * 64; }}")
            listbox.locator(f"[role=option][aria-label*='{wanted}']").wait_for()
            middle.append(time.perf_counter() - start)
        browser.close()
    print(f"first render, cold (the user's list index is built): {first[0] * 1000:.0f} ms")
    figures("first render", first[1:] or first)
    figures("open message", opened)
    figures("scroll middle", middle)


@defer.inlineCallbacks
def main(reactor: Any, args: argparse.Namespace) -> Any:
    web, admin = free_ports(2)
    server = MailServer(tempfile.mkdtemp(prefix="webmail-bench-"),
                        ports={"WEB": web, "ADMIN": admin})
    yield server.start()
    try:
        server.add_domain("example.com")
        server.add_user(USER)
        mail = server.root.components["mail"]
        user = yield mail.open_account(USER)
        inbox = yield user.get_mailbox("INBOX")
        start = datetime(2025, 1, 1, tzinfo=timezone.utc)
        began = time.perf_counter()
        for first in range(0, args.messages, 500):
            batch = [(message(i), ["\\Seen"] if i % 4 else [], start + timedelta(minutes=i))
                     for i in range(first, min(args.messages, first + 500))]
            yield user.append_all(inbox.id, batch)
        print(f"stored {args.messages} messages in {time.perf_counter() - began:.1f} s")
        yield threads.deferToThread(browse, f"http://127.0.0.1:{web}", args.messages,
                                    args.runs)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"server peak RSS {rss:.0f} MB (this process)")
    finally:
        yield server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=15)
    task.react(main, [parser.parse_args()])

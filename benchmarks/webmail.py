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
  body search    a rare body word (one message in --search-messages, default 10,000, in a
                 folder of their own): the page's Email/query {inMailbox, body} with Email/get
                 of the list properties (one request, as the list asks for a window) until
                 the answer is in the page

and prints p50/p95 in ms, the time to fill the store, and the server process's RSS (now and
peak; it shares the process with this script's reactor, not with Chromium).  --requests
prints the JMAP/HTTP requests of one first render and one open with the browser's timings.

  PYTHONPATH=. python3 benchmarks/webmail.py [--messages 20000] [--runs 15] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
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


def search_message(i: int) -> bytes:
    # every 1000th one carries a rare word of its own (searched for once each)
    word = f" zq{i // 1000:03d}rare" if i % 1000 == 500 else ""
    return (f"From: Sender {i % 97} <s{i % 97}@elsewhere.example>\r\nTo: {USER}\r\n"
            f"Subject: Filed {i:06d}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Plain body of filed message {i}{word}, with a few more words.\r\n").encode()


def rss_now() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


SEARCH_JS = """async ([mailboxId, word, properties]) => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const session = window.benchSession ||
    (window.benchSession = await (await fetch("/.well-known/jmap")).json());
  const accountId = session.primaryAccounts["urn:ietf:params:jmap:mail"];
  const started = performance.now();
  const reply = await fetch(session.apiUrl, { method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ using: ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
      methodCalls: [
        ["Email/query", { accountId, filter: { inMailbox: mailboxId, body: word },
                          sort: [{ property: "receivedAt", isAscending: false }],
                          limit: 100, calculateTotal: true }, "q"],
        ["Email/get", { accountId, "#ids": { resultOf: "q", name: "Email/query", path: "/ids" },
                        properties }, "g"]] }) });
  const body = await reply.json();
  const got = body.methodResponses[1][1];
  return [performance.now() - started, got.list.map((e) => e.subject)];
}"""

LIST_PROPERTIES = ["id", "threadId", "mailboxIds", "keywords", "from", "subject",
                   "receivedAt", "size", "preview", "hasAttachment"]


def figures(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    print(f"{name:<15} p50 {statistics.median(ordered) * 1000:7.1f} ms   "
          f"p95 {p95 * 1000:7.1f} ms   (n={len(ordered)})")


def show_requests(label: str, requests: list[Any]) -> None:
    """Each request: when it started (ms after the first one), its wait for the first byte
    of the answer (the server's time, loopback) and when its answer was complete."""
    print(f"requests of {label}:")
    origin = min((r.timing["startTime"] for r in requests), default=0)
    for request in requests:
        timing = request.timing
        began = timing["startTime"] - origin
        waited = timing["responseStart"] - timing["requestStart"]
        path = "/" + request.url.split("//", 1)[-1].split("/", 1)[-1]
        body = request.post_data or ""
        names = ",".join(part.split('"')[0] for part in body.split('[["')[1:] +
                         body.split('],["')[1:]) if body.startswith('{"using"') else ""
        print(f"  at {began:6.0f} ms  {request.method:<4} {path[:44]:<44} {names[:60]:<60}"
              f" wait {waited:6.1f} ms  end {began + timing['responseEnd']:6.0f} ms")


# In the page: from the click (a real click event on the row) until the body's frame has
# loaded and the next frame is painted.  The frame is sandboxed without allow-same-origin, so
# its load event is what the page can see of it.
OPEN_JS = """async (id) => {
  const row = document.querySelector(`#list [role=option][data-id="${id}"]`);
  const frame = document.getElementById("body");
  const started = performance.now();
  const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
  row.click();
  await Promise.race([loaded, new Promise((_, fail) => setTimeout(
    () => fail(new Error("the body did not load in 20 s")), 20000))]);
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
  return performance.now() - started;
}"""

# In the page: from setting scrollTop until the wanted row is in the list, painted.
SCROLL_JS = """async ([top, wanted]) => {
  const list = document.getElementById("list");
  const started = performance.now();
  list.scrollTop = top;
  for (;;) {
    const found = [...list.querySelectorAll("[role=option]")].some(
      (row) => (row.getAttribute("aria-label") || "").includes(wanted));
    if (found) break;
    if (performance.now() - started > 20000) throw new Error(`no row ${wanted} after 20 s`);
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
  return performance.now() - started;
}"""

# In the page: when the first message row was added, from the start of the navigation.
FIRST_ROW_JS = """() => {
  const mark = performance.getEntriesByName("mail:first-rows")[0];
  return mark ? mark.startTime : null;
}"""


def signed_in_page(browser: Any, base: str, user: str = USER) -> Any:
    """A new page of ``browser`` signed in as ``user`` through /login (also used by
    benchmarks/webmail_push.py)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(base + "/login")
    page.get_by_role("textbox", name="Email").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")
    return page


def browse(base: str, count: int, runs: int, search_box: str, search_count: int,
           trace: bool) -> dict[str, list[float]]:
    from playwright.sync_api import expect, sync_playwright

    out: dict[str, list[float]] = {name: [] for name in (
        "first render", "first render*", "open message", "open message*", "scroll middle",
        "scroll middle*", "body search")}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = signed_in_page(browser, base)
        listbox = page.get_by_role("listbox", name="Message list")
        frame = page.frame_locator("iframe[title='Message body']")
        seen: list[Any] = []
        page.on("requestfinished", lambda request: seen.append(request))
        for run in range(runs):
            seen.clear()
            start = time.perf_counter()
            page.goto(base + "/mail")
            listbox.locator("[role=option][data-id^=M]").first.wait_for()
            out["first render"].append(time.perf_counter() - start)
            mark = page.evaluate(FIRST_ROW_JS)
            if mark is not None:
                out["first render*"].append(mark / 1000)
            if trace and run == runs - 1:
                show_requests("a first render", list(seen))
            page.wait_for_timeout(300)  # the page's push connection and modules settle
            # open, driven by Playwright (its actionability checks are in the time)
            row = listbox.locator("[role=option][data-id^=M]").nth(run % 5 + 1)
            name = row.get_attribute("aria-label") or ""
            seen.clear()
            start = time.perf_counter()
            row.click()
            frame.get_by_text("Body of message", exact=False).wait_for()
            expect(page.get_by_role("heading", name=name.split(", ")[1], exact=True)
                   ).to_be_visible()
            out["open message"].append(time.perf_counter() - start)
            if trace and run == runs - 1:
                page.wait_for_timeout(300)
                show_requests("an open", list(seen))
            # open, timed in the page, then checked
            row = listbox.locator("[role=option][data-id^=M]").nth(run % 5 + 7)
            name = row.get_attribute("aria-label") or ""
            out["open message*"].append(
                page.evaluate(OPEN_JS, row.get_attribute("data-id")) / 1000)
            expect(page.get_by_role("heading", name=name.split(", ")[1], exact=True)
                   ).to_be_visible()
            subject = name.split(", ")[1]
            frame.get_by_text(f"Body of message {int(subject.split()[-1])},",
                              exact=False).wait_for()
            # scroll to the middle, by Playwright, then in the page
            position = count // 2 + run * 7
            wanted = f"Message {count - 1 - position:06d}"
            start = time.perf_counter()
            listbox.evaluate(f"e => {{ e.scrollTop = {position} * 64; }}")
            listbox.locator(f"[role=option][aria-label*='{wanted}']").wait_for()
            out["scroll middle"].append(time.perf_counter() - start)
            position = count // 2 - count // 10 - run * 11
            wanted = f"Message {count - 1 - position:06d}"
            out["scroll middle*"].append(page.evaluate(SCROLL_JS, [position * 64, wanted]) / 1000)
            # a rare body word in the folder of search_count messages
            k = run % max(1, search_count // 1000)
            word = f"zq{k:03d}rare"
            start = time.perf_counter()
            _, subjects = page.evaluate(SEARCH_JS, [search_box, word, LIST_PROPERTIES])
            out["body search"].append(time.perf_counter() - start)
            assert subjects == [f"Filed {k * 1000 + 500:06d}"], (word, subjects)
        browser.close()
    print(f"first render, cold (the user's list index is built): "
          f"{out['first render'][0] * 1000:.0f} ms")
    print("(* = timed in the page: performance mark / from the click or scroll to the next "
          "painted frame;\n   the others from Playwright, its own round trips included)")
    for name, samples in out.items():
        if name.startswith("first render"):
            samples = samples[1:] or samples
        if samples:
            figures(name, samples)
    return out


@defer.inlineCallbacks
def fill(server: MailServer, args: argparse.Namespace) -> Any:
    """Store the messages (the local delivery path, 500 a transaction); the Filed box's id."""
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
    took = time.perf_counter() - began
    print(f"stored {args.messages} messages in {took:.1f} s "
          f"({args.messages / took:.0f} messages/s)")
    box = yield user.create_mailbox("Filed")
    began = time.perf_counter()
    for first in range(0, args.search_messages, 500):
        batch = [(search_message(i), ["\\Seen"], start + timedelta(minutes=i))
                 for i in range(first, min(args.search_messages, first + 500))]
        yield user.append_all(box.id, batch)
    print(f"stored {args.search_messages} messages in folder Filed in "
          f"{time.perf_counter() - began:.1f} s")
    return box.id


@defer.inlineCallbacks
def main(reactor: Any, args: argparse.Namespace) -> Any:
    web, admin = free_ports(2)
    directory = args.data or tempfile.mkdtemp(prefix="webmail-bench-")
    marker = os.path.join(directory, "filled.json")
    filled = None
    if os.path.exists(marker):
        with open(marker) as handle:
            filled = json.load(handle)
        if (filled["messages"], filled["search"]) != (args.messages, args.search_messages):
            raise SystemExit(f"{directory} holds {filled['messages']} + {filled['search']} "
                             "messages: use those counts or another --data directory")
    server = MailServer(directory, ports={"WEB": web, "ADMIN": admin})
    yield server.start()
    try:
        if filled is None:
            box_id = yield fill(server, args)
            if args.data:
                with open(marker, "w") as handle:
                    json.dump({"messages": args.messages, "search": args.search_messages,
                               "box": box_id}, handle)
        else:
            box_id = filled["box"]
            print(f"reusing the {args.messages} + {args.search_messages} messages stored in "
                  f"{directory}")
        search_box = f"B{box_id}"  # a JMAP Mailbox id (mailgosend/jmap/ids.py)
        before = rss_now()
        yield threads.deferToThread(browse, f"http://127.0.0.1:{web}", args.messages,
                                    args.runs, search_box, args.search_messages,
                                    args.requests)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"server RSS {before:.0f} MB before the runs, {rss_now():.0f} MB after them, "
              f"peak {peak:.0f} MB (this process)")
    finally:
        yield server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--search-messages", type=int, default=10000)
    parser.add_argument("--data", help="a directory to keep the filled store in and reuse "
                        "on later runs (same --messages and --search-messages)")
    parser.add_argument("--requests", action="store_true",
                        help="print the requests of one first render and one open")
    def run(reactor: Any, args: argparse.Namespace) -> Any:
        def failed(failure: Any) -> Any:
            failure.printTraceback(file=sys.stderr)
            return failure
        return main(reactor, args).addErrback(failed)

    try:
        task.react(run, [parser.parse_args()])
    finally:  # a thread left behind (Chromium's driver, a pool) must not keep us waiting
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

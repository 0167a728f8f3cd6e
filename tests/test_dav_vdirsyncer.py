"""Two-way sync with Debian's vdirsyncer (a real CalDAV and CardDAV client): discovery from
the server URL, then changes on both sides (new, modified, deleted) reach the other side,
for calendars and contacts."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from typing import Any

from twisted.internet import defer, threads

from tests.support.dav import PASSWORD, DavServerTestCase

VDIRSYNCER = shutil.which("vdirsyncer")
EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20261201T000000Z\r\nDTSTART:20270101T100000Z\r\nDTEND:20270101T110000Z\r\n"
         "SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nEND:VCARD\r\n"


class VdirsyncerTests(DavServerTestCase):
    if VDIRSYNCER is None:
        skip = "vdirsyncer is not installed (apt-get install vdirsyncer; scripts/run-tests does)"

    def configure(self) -> str:
        top = os.path.abspath(self.mktemp())
        os.makedirs(top)
        storages = []
        for pair, kind, ext in (("cal", "caldav", ".ics"), ("card", "carddav", ".vcf")):
            storages.append(f"""
[pair {pair}]
a = "{pair}_local"
b = "{pair}_remote"
collections = ["from b"]
conflict_resolution = "b wins"

[storage {pair}_local]
type = "filesystem"
path = "{top}/{pair}/"
fileext = "{ext}"

[storage {pair}_remote]
type = "{kind}"
url = "{self.web_base}/"
username = "alice@example.com"
password = "{PASSWORD}"
""")
        config = os.path.join(top, "config")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(f'[general]\nstatus_path = "{top}/status/"\n' + "".join(storages))
        self.top = top
        return config

    def vdirsyncer(self, config: str, *args: str) -> Any:
        def run() -> str:
            # Debian's Python, in a clean environment: nothing of our virtualenv or of
            # variables other tests set may leak into it.
            done = subprocess.run([VDIRSYNCER or "vdirsyncer", "-c", config, *args],
                                  input="y\n" * 10, capture_output=True, text=True,
                                  timeout=120, env={"PATH": "/usr/bin:/bin",
                                                    "HOME": self.top, "LANG": "C.UTF-8"})
            if done.returncode != 0:
                raise AssertionError(f"vdirsyncer {args}: {done.stdout}\n{done.stderr}")
            return done.stdout + done.stderr
        return threads.deferToThread(run)

    def local(self, pair: str, collection: str) -> dict[str, str]:
        found = {}
        for path in glob.glob(os.path.join(self.top, pair, collection, "*")):
            with open(path, encoding="utf-8") as handle:
                found[os.path.basename(path)] = handle.read()
        return found

    @defer.inlineCallbacks
    def test_two_way_sync(self) -> Any:
        cal = "/caldav/alice@example.com/calendar/"
        book = "/carddav/alice@example.com/contacts/"
        for path, body in ((cal + "server-1.ics", EVENT.format(uid="server-1",
                                                              summary="From the server")),
                           (book + "s1.vcf", CARD.format(uid="s1", name="Server Person")),
                           (book + "s2.vcf", CARD.format(uid="s2", name="Kept Person"))):
            answer = yield self.dav("PUT", path, body)
            self.assertEqual(answer.status_code, 201)
        config = self.configure()
        yield self.vdirsyncer(config, "discover")
        yield self.vdirsyncer(config, "sync")
        events = self.local("cal", "calendar")
        cards = self.local("card", "contacts")
        self.assertIn("From the server", "".join(events.values()))
        self.assertIn("Server Person", "".join(cards.values()))

        # local side: a new event and a new card, and the server's event changed
        with open(os.path.join(self.top, "cal", "calendar", "local-1.ics"), "w",
                  encoding="utf-8") as handle:
            handle.write(EVENT.format(uid="local-1", summary="From the laptop"))
        with open(os.path.join(self.top, "card", "contacts", "l1.vcf"), "w",
                  encoding="utf-8") as handle:
            handle.write(CARD.format(uid="l1", name="Laptop Person"))
        (server_file,) = [n for n, text in events.items() if "server-1" in text]
        with open(os.path.join(self.top, "cal", "calendar", server_file), "w",
                  encoding="utf-8") as handle:
            handle.write(EVENT.format(uid="server-1", summary="Edited on the laptop"))
        # server side: a card deleted and a new event
        (card_file,) = [n for n, text in cards.items() if "Server Person" in text]
        listed = yield self.dav("PROPFIND", book, "", Depth="1")
        self.assertIn("s1.vcf", listed.text)
        yield self.dav("DELETE", book + "s1.vcf")
        yield self.dav("PUT", cal + "server-2.ics", EVENT.format(uid="server-2",
                                                                summary="Second"))
        yield self.vdirsyncer(config, "sync")

        events = self.local("cal", "calendar")
        self.assertIn("Second", "".join(events.values()))
        self.assertFalse(os.path.exists(os.path.join(self.top, "card", "contacts", card_file)))
        report = yield self.dav("REPORT", cal,
                                '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:'
                                'xml:ns:caldav"><D:prop><C:calendar-data/></D:prop><C:filter>'
                                '<C:comp-filter name="VCALENDAR"/></C:filter>'
                                '</C:calendar-query>', Depth="1")
        self.assertIn("From the laptop", report.text)
        self.assertIn("Edited on the laptop", report.text)
        self.assertNotIn("From the server", report.text)
        cards_now = yield self.dav("REPORT", book,
                                   '<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:'
                                   'params:xml:ns:carddav"><D:prop><C:address-data/></D:prop>'
                                   '</C:addressbook-query>', Depth="1")
        self.assertIn("Laptop Person", cards_now.text)
        self.assertNotIn("Server Person", cards_now.text)

"""DAV discovery and mounting (RFC 6764, RFC 5397): /.well-known/caldav and /carddav on the
web port redirect to the DAV root while autoconfig's /.well-known routes keep working;
PROPFIND on / (web port and DAV_PORT) names the principal; OPTIONS announces the
compliance classes; the web port's pages are untouched; both ports reach the same data."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from tests.support.dav import DavServerTestCase

PRINCIPAL_QUERY = ('<propfind xmlns="DAV:"><prop><current-user-principal/></prop>'
                   '</propfind>')
EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:x\r\n"
         "DTSTAMP:20261201T000000Z\r\nDTSTART:20270101T100000Z\r\nSUMMARY:Both ports\r\n"
         "END:VEVENT\r\nEND:VCALENDAR\r\n")


class DiscoveryTests(DavServerTestCase):
    @defer.inlineCallbacks
    def test_well_known_redirects_and_autoconfig_still_served(self) -> Any:
        for method in ("GET", "PROPFIND"):
            for kind, where in (("caldav", "/caldav/"), ("carddav", "/carddav/")):
                answer = yield self.dav(method, f"/.well-known/{kind}", user=None)
                self.assertEqual(answer.status_code, 301)
                self.assertEqual(answer.headers["Location"], self.web_base + where)
                answer = yield self.dav(method, f"/.well-known/{kind}", user=None,
                                        base=self.dav_base)
                self.assertEqual(answer.status_code, 301)
                folder = "calendars" if kind == "caldav" else "contacts"
                self.assertEqual(answer.headers["Location"], f"{self.dav_base}/dav/{folder}/")
        config = yield self.dav("GET", "/.well-known/autoconfig/mail/config-v1.1.xml"
                                "?emailaddress=alice%40example.com", user=None)
        self.assertEqual(config.status_code, 200)
        self.assertIn("clientConfig", config.text)
        page = yield self.dav("GET", "/login", user=None)
        self.assertEqual(page.status_code, 200)
        self.assertIn("text/html", page.headers["Content-Type"])

    @defer.inlineCallbacks
    def test_root_propfind_on_both_ports(self) -> Any:
        for base, principal in ((self.web_base, "/caldav/alice@example.com/"),
                                (self.dav_base, "/dav/calendars/alice@example.com/")):
            for path in ("/", "/caldav/", "/carddav/", "/dav/"):
                if (base == self.dav_base) != path.startswith("/dav") and path != "/":
                    continue
                answer = yield self.dav("PROPFIND", path, PRINCIPAL_QUERY, base=base,
                                        Depth="0")
                self.assertEqual(answer.status_code, 207, f"{base}{path}")
                self.assertIn(f"<D:href>{principal}</D:href>", answer.text)
            unauthenticated = yield self.dav("PROPFIND", "/", PRINCIPAL_QUERY, base=base,
                                             user=None, Depth="0")
            self.assertEqual(unauthenticated.status_code, 401)

    @defer.inlineCallbacks
    def test_options(self) -> Any:
        answer = yield self.dav("OPTIONS", "/caldav/alice@example.com/calendar/", user=None)
        self.assertEqual(answer.status_code, 200)
        for word in ("1", "3", "calendar-access", "addressbook", "extended-mkcol"):
            self.assertIn(word, [w.strip() for w in answer.headers["DAV"].split(",")])
        self.assertIn("REPORT", answer.headers["Allow"])

    @defer.inlineCallbacks
    def test_both_ports_reach_the_same_data(self) -> Any:
        put = yield self.dav("PUT", "/dav/calendars/alice%40example.com/calendar/x.ics", EVENT,
                             base=self.dav_base)
        self.assertEqual(put.status_code, 201)
        got = yield self.dav("GET", "/caldav/alice@example.com/calendar/x.ics")
        self.assertEqual(got.status_code, 200)
        self.assertIn("Both ports", got.text)
        self.assertEqual(got.headers["ETag"], put.headers["ETag"])

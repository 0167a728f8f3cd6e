"""CardDAV (RFC 6352) through raw requests: the default address book made on first use,
vCard 3.0 and 4.0 with photos, addressbook-query text-matches over the decrypted cards
(FN, EMAIL, match types, negation, allof/anyof, limit), addressbook-multiget, a second
book beside the default, and no FN/EMAIL in the database in the clear."""

from __future__ import annotations

import base64
import re
from typing import Any

from twisted.internet import defer

from tests.support.dav import DavServerTestCase

HOME = "/carddav/alice@example.com/"
BOOK = HOME + "contacts/"
PHOTO = base64.b64encode(b"\xff\xd8\xff\xe0" + b"jpegdata" * 50).decode()
CARDS = {
    "ada.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ada\r\nFN:Ada Lovelace\r\n"
               "N:Lovelace;Ada;;;\r\nEMAIL;TYPE=INTERNET:ada@engine.example\r\n"
               f"PHOTO;ENCODING=b;TYPE=JPEG:{PHOTO}\r\nEND:VCARD\r\n",
    "grace.vcf": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:grace\r\nFN:Grace Hopper\r\n"
                 "EMAIL:grace@navy.example\r\nTEL:+1 555 0100\r\nEND:VCARD\r\n",
    "linus.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:linus\r\nFN:Linus Ängström\r\n"
                 "EMAIL:linus@kernel.example\r\nEND:VCARD\r\n",
}


def query(filters: str, test: str = "anyof", limit: str = "") -> str:
    return ('<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
            '<D:prop><D:getetag/><C:address-data/></D:prop>'
            f'<C:filter test="{test}">{filters}</C:filter>{limit}</C:addressbook-query>')


def match(prop: str, text: str, kind: str = "contains", negate: bool = False) -> str:
    neg = ' negate-condition="yes"' if negate else ""
    return (f'<C:prop-filter name="{prop}"><C:text-match match-type="{kind}"{neg}>{text}'
            '</C:text-match></C:prop-filter>')


class CardDAVTests(DavServerTestCase):
    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        yield super().setUp()
        for name, card in CARDS.items():
            answer = yield self.dav("PUT", BOOK + name, card.encode(),
                                    Content_Type="text/vcard; charset=utf-8")
            self.assertEqual(answer.status_code, 201, answer.text)

    @defer.inlineCallbacks
    def found(self, body: str) -> Any:
        answer = yield self.dav("REPORT", BOOK, body, Depth="1")
        self.assertEqual(answer.status_code, 207, answer.text)
        return sorted(re.findall(r"contacts/([a-z]+)\.vcf</D:href>", answer.text))

    @defer.inlineCallbacks
    def test_queries(self) -> Any:
        cases = [
            (query(match("FN", "lovelace")), ["ada"]),
            (query(match("EMAIL", "EXAMPLE")), ["ada", "grace", "linus"]),
            (query(match("FN", "grace", "starts-with")), ["grace"]),
            (query(match("EMAIL", "navy.example", "ends-with")), ["grace"]),
            (query(match("FN", "Grace Hopper", "equals")), ["grace"]),
            (query(match("FN", "ängström")), ["linus"]),       # i;unicode-casemap
            (query(match("FN", "ada", negate=True)), ["grace", "linus"]),
            (query(match("FN", "ada") + match("EMAIL", "kernel")), ["ada", "linus"]),
            (query(match("FN", "ada") + match("EMAIL", "kernel"), "allof"), []),
            (query('<C:prop-filter name="TEL"/>'), ["grace"]),
            (query('<C:prop-filter name="TEL"><C:is-not-defined/></C:prop-filter>'),
             ["ada", "linus"]),
            (query(match("EMAIL", "example"), limit="<C:limit><C:nresults>1</C:nresults>"
                   "</C:limit>"), None),
        ]
        for body, expected in cases:
            got = yield self.found(body)
            if expected is None:
                self.assertEqual(len(got), 1)
            else:
                self.assertEqual(got, expected, body)

    @defer.inlineCallbacks
    def test_multiget_photo_and_vcard4(self) -> Any:
        answer = yield self.dav(
            "REPORT", BOOK,
            '<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
            '<D:prop><D:getetag/><C:address-data/></D:prop>'
            f'<D:href>{BOOK}ada.vcf</D:href><D:href>{BOOK}grace.vcf</D:href>'
            f'<D:href>{BOOK}nobody.vcf</D:href></C:addressbook-multiget>', Depth="1")
        self.assertEqual(answer.status_code, 207)
        self.assertIn(PHOTO[:60], answer.text)
        self.assertIn("VERSION:4.0", answer.text)
        self.assertIn("HTTP/1.1 404", answer.text)
        got = yield self.dav("GET", BOOK + "ada.vcf")
        self.assertEqual(got.content, CARDS["ada.vcf"].encode())
        self.assertTrue(got.headers["Content-Type"].startswith("text/vcard"))

    @defer.inlineCallbacks
    def test_second_book_and_encryption(self) -> Any:
        made = yield self.dav("MKCOL", HOME + "family/",
                              '<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:'
                              'carddav"><D:set><D:prop><D:resourcetype><D:collection/>'
                              '<C:addressbook/></D:resourcetype><D:displayname>Family'
                              '</D:displayname></D:prop></D:set></D:mkcol>')
        self.assertEqual(made.status_code, 201)
        again = yield self.dav("MKCOL", HOME + "family/", "")
        self.assertEqual(again.status_code, 405)
        listed = yield self.dav("PROPFIND", HOME, '<D:propfind xmlns:D="DAV:"><D:prop>'
                                '<D:displayname/></D:prop></D:propfind>', Depth="1")
        self.assertIn("Family", listed.text)
        self.assertIn("Contacts", listed.text)
        # the raw file is really read: plain columns (the UID) are found in it
        self.assertIn(b"urn:uuid:grace", self.database_file_bytes())
        for stored in (self.table_bytes(), self.database_file_bytes()):
            for secret in (b"Lovelace", b"engine.example", b"Grace", b"navy", b"Family",
                           PHOTO[:40].encode()):
                self.assertNotIn(secret, stored)

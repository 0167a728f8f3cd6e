"""The webmail's contacts (issue #15 item 7): the JSON endpoints over the CardDAV data
(create, edit keeping a card's unknown properties, delete, photo, import/export .vcf, bad
input naming its field, CSRF, another user's ids), the same data seen by a CardDAV client's
sync-collection in both directions, compose autocomplete's suggestions (address book first,
then addresses used before), and the page in a real browser."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone
from typing import Any, Optional

import requests
from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend.dav.vcard import validate
from mailgosend.mail import contactcards as cards
from tests.support.dav import DavServerTestCase
from tests.support.mailserver import PASSWORD
from tests.support.web import WebClient
from tests.test_webmail_browser import WebmailBrowserTestCase, expect

ALICE = "alice@example.com"
BOB = "bob@example.com"
BOOK = "/carddav/alice@example.com/contacts/"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00"
       b"\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00"
       b"\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")
ADA: dict[str, Any] = {"name": "Ada Lovelace", "emails": [{"value": "ada@engine.example", "type": "work"}],
       "phones": [{"value": "+44 20 7946 0000", "type": "cell"}], "org": "Analytical Engines",
       "address": {"street": "12 St James's Square", "city": "London", "code": "SW1Y 4JH",
                   "country": "UK"},
       "note": "First programmer, notes on the engine", "birthday": "1815-12-10"}
SYNC = ('<sync-collection xmlns="DAV:"><sync-token>{}</sync-token><sync-level>1</sync-level>'
        '<prop><getetag/></prop></sync-collection>')
APPLE_CARD = ("BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iOS 18//EN\r\n"
              "UID:apple-1\r\nFN:Grace Hopper\r\nN:Hopper;Grace;;;\r\n"
              "item1.EMAIL;type=INTERNET;type=pref:grace@navy.example\r\n"
              "item1.X-ABLabel:_$!<Other>!$_\r\nCATEGORIES:Navy,Computing\r\n"
              "X-SOCIALPROFILE;type=twitter:x-apple:grace\r\n"
              "URL:https://navy.example/grace\r\nEND:VCARD\r\n")


class ContactsClient:
    """A signed-in browser-like client of /mail/api/contacts (JSON, X-CSRF-Token)."""

    def __init__(self, web: WebClient, token: str) -> None:
        self.web = web
        self.token = token

    def call(self, method: str, path: str, body: Any = None, *, raw: Optional[bytes] = None,
             content_type: str = "application/json", csrf: bool = True,
             timeout: int = 60) -> Any:
        headers = {"Origin": self.web.base}
        if csrf:
            headers["X-CSRF-Token"] = self.token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = content_type
        return threads.deferToThread(self.web.http.request, method, self.web.base + path,
                                     data=data, headers=headers, timeout=timeout,
                                     allow_redirects=False)


class ContactsServerTestCase(DavServerTestCase):
    @defer.inlineCallbacks
    def signed_in(self, email: str = ALICE) -> Any:
        web = self.client()
        answer = yield web.sign_in(email, PASSWORD)
        self.assertEqual(answer.status_code, 303)
        page = yield web.get("/mail/contacts")
        self.assertEqual(page.status_code, 200)
        found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert found is not None, "no csrf-token in the page"
        return ContactsClient(web, found.group(1))

    @defer.inlineCallbacks
    def listed(self, api: ContactsClient) -> Any:
        answer = yield api.call("GET", "/mail/api/contacts")
        self.assertEqual(answer.status_code, 200, answer.text)
        return answer.json()

    @defer.inlineCallbacks
    def dav_card(self, href: str) -> Any:
        answer = yield self.dav("GET", href)
        self.assertEqual(answer.status_code, 200, answer.text)
        validate(answer.content)      # what the DAV front end accepts on PUT
        return answer.text


class EndpointTests(ContactsServerTestCase):
    @defer.inlineCallbacks
    def test_create_edit_delete_and_refusals(self) -> Any:
        api = yield self.signed_in()
        dav = yield self.server.root.components["dav"].open_account(ALICE)
        used_before, _limit = yield defer.ensureDeferred(dav.quota())
        made = yield api.call("POST", "/mail/api/contacts", ADA)
        self.assertEqual(made.status_code, 201, made.text)
        ada = made.json()
        for key in ("name", "emails", "phones", "org", "address", "note", "birthday"):
            self.assertEqual(ada[key] if key != "address" else
                             {k: v for k, v in ada[key].items() if v}, ADA[key], key)
        listing = yield self.listed(api)
        self.assertEqual(listing["books"][0], {"name": "contacts", "displayName": "Contacts",
                                               "default": True})
        self.assertEqual([c["name"] for c in listing["contacts"]], ["Ada Lovelace"])
        got = yield api.call("GET", f"/mail/api/contacts/{ada['id']}")
        self.assertEqual(got.json()["etag"], ada["etag"])
        # counted in the quota like a card PUT over CardDAV
        card = yield self.dav_card(BOOK + ada["uid"].removeprefix("urn:uuid:") + ".vcf")
        used, _limit = yield defer.ensureDeferred(dav.quota())
        self.assertEqual(used - used_before, len(card.encode()))

        edited = dict(ADA, name="Ada King", phones=[],
                      emails=ADA["emails"] + [{"value": "ada@home.example", "type": "home"}],
                      etag=ada["etag"])
        answer = yield api.call("PUT", f"/mail/api/contacts/{ada['id']}", edited)
        self.assertEqual(answer.status_code, 200, answer.text)
        self.assertEqual(answer.json()["name"], "Ada King")
        self.assertEqual(answer.json()["phones"], [])
        card = yield self.dav_card(BOOK + ada["uid"].removeprefix("urn:uuid:") + ".vcf")
        self.assertIn("FN:Ada King", card)
        self.assertIn("ada@home.example", card)
        self.assertNotIn("TEL", card)
        # the old ETag no longer matches: refused, nothing changed
        stale = yield api.call("PUT", f"/mail/api/contacts/{ada['id']}",
                               dict(edited, name="Lost update"))
        self.assertEqual(stale.status_code, 412)
        self.assertEqual(stale.json()["field"], "etag")

        bad_cases = [
            ({"name": "", "emails": [], "org": ""}, "name"),
            (dict(ADA, emails=[{"value": "not an address", "type": "work"}]), "emails/0/value"),
            (dict(ADA, emails=[{"value": "a@b.example", "type": "pager"}]), "emails/0/type"),
            (dict(ADA, phones=[{"value": "call me <maybe>", "type": "cell"}]),
             "phones/0/value"),
            (dict(ADA, birthday="10/12/1815"), "birthday"),
            (dict(ADA, note=123), "note"),
            (dict(ADA, address={"planet": "Earth"}), "address/planet"),
            (dict(ADA, name="x" * 501), "name"),
            (["not", "an", "object"], "contact"),
        ]
        for body, field in bad_cases:
            answer = yield api.call("POST", "/mail/api/contacts", body)
            self.assertEqual(answer.status_code, 400, (field, answer.text))
            self.assertEqual(answer.json()["field"], field)
            self.assertTrue(answer.json()["error"].startswith(field + ":"))
        garbage = yield api.call("POST", "/mail/api/contacts", raw=b"{nope")
        self.assertEqual((garbage.status_code, garbage.json()["field"]), (400, "contact"))
        # without the CSRF token, or without a session: refused, JSON, nothing stored
        forged = yield api.call("POST", "/mail/api/contacts", ADA, csrf=False)
        self.assertEqual((forged.status_code, forged.json()["field"]), (403, "csrf"))
        anonymous = yield threads.deferToThread(
            requests.get, self.web_base + "/mail/api/contacts", timeout=30)
        self.assertEqual(anonymous.status_code, 401)
        page = yield threads.deferToThread(
            requests.get, self.web_base + "/mail/contacts", timeout=30,
            allow_redirects=False)
        self.assertEqual((page.status_code, page.headers["Location"]), (303, "/login"))
        listing = yield self.listed(api)
        self.assertEqual(len(listing["contacts"]), 1)

        deleted = yield api.call("DELETE", f"/mail/api/contacts/{ada['id']}")
        self.assertEqual(deleted.status_code, 200, deleted.text)
        again = yield api.call("DELETE", f"/mail/api/contacts/{ada['id']}")
        self.assertEqual(again.status_code, 404)
        listing = yield self.listed(api)
        self.assertEqual(listing["contacts"], [])
        used, _limit = yield defer.ensureDeferred(dav.quota())
        self.assertEqual(used, used_before)
        # stored sealed: no name, address or note in the clear
        for secret in (b"Lovelace", b"engine.example", b"Analytical", b"programmer"):
            self.assertNotIn(secret, self.table_bytes())

    @defer.inlineCallbacks
    def test_another_users_contact_is_404(self) -> Any:
        alice = yield self.signed_in()
        made = yield alice.call("POST", "/mail/api/contacts", ADA)
        ada = made.json()
        bob = yield self.signed_in(BOB)
        for method, path, body in [
                ("GET", f"/mail/api/contacts/{ada['id']}", None),
                ("PUT", f"/mail/api/contacts/{ada['id']}", ADA),
                ("DELETE", f"/mail/api/contacts/{ada['id']}", None),
                ("GET", f"/mail/api/contacts/{ada['id']}/photo", None),
                ("DELETE", f"/mail/api/contacts/{ada['id']}/photo", None),
                ("GET", f"/mail/api/contacts/{ada['id']}/vcf", None),
                ("GET", "/mail/api/contacts/not-an-id", None),
                ("GET", "/mail/api/contacts/" + base64.urlsafe_b64encode(
                    b"../../bob/x.vcf").decode(), None)]:
            answer = yield bob.call(method, path, body)
            self.assertEqual(answer.status_code, 404, (method, path, answer.text))
        photo = yield bob.call("PUT", f"/mail/api/contacts/{ada['id']}/photo", raw=PNG,
                               content_type="image/png")
        self.assertEqual(photo.status_code, 404)
        mine = yield self.listed(bob)
        self.assertEqual(mine["contacts"], [])
        still = yield alice.call("GET", f"/mail/api/contacts/{ada['id']}")
        self.assertEqual(still.json()["name"], "Ada Lovelace")

    @defer.inlineCallbacks
    def test_photo_round_trip(self) -> Any:
        api = yield self.signed_in()
        ada = (yield api.call("POST", "/mail/api/contacts", ADA)).json()
        self.assertFalse(ada["photo"])
        bad = yield api.call("PUT", f"/mail/api/contacts/{ada['id']}/photo",
                             raw=b"<svg onload=alert(1)>", content_type="image/png")
        self.assertEqual((bad.status_code, bad.json()["field"]), (400, "photo"))
        big = yield api.call("PUT", f"/mail/api/contacts/{ada['id']}/photo",
                             raw=PNG + b"\0" * cards.MAX_PHOTO, content_type="image/png")
        self.assertEqual((big.status_code, big.json()["field"]), (413, "photo"))
        saved = yield api.call("PUT", f"/mail/api/contacts/{ada['id']}/photo", raw=PNG,
                               content_type="image/png")
        self.assertEqual(saved.status_code, 200, saved.text)
        self.assertTrue(saved.json()["photo"])
        got = yield api.call("GET", f"/mail/api/contacts/{ada['id']}/photo")
        self.assertEqual(got.content, PNG)
        self.assertEqual(got.headers["Content-Type"], "image/png")
        self.assertIn("sandbox", got.headers["Content-Security-Policy"])
        # a CardDAV client gets it as vCard 3.0 PHOTO;ENCODING=b (RFC 2426 §3.1.4)
        card = yield self.dav_card(BOOK + ada["uid"].removeprefix("urn:uuid:") + ".vcf")
        self.assertIn("PHOTO;ENCODING=b;TYPE=PNG:" + base64.b64encode(PNG).decode(), card)
        removed = yield api.call("DELETE", f"/mail/api/contacts/{ada['id']}/photo")
        self.assertFalse(removed.json()["photo"])
        gone = yield api.call("GET", f"/mail/api/contacts/{ada['id']}/photo")
        self.assertEqual(gone.status_code, 404)

    @defer.inlineCallbacks
    def test_vcard4_photo_from_a_dav_client_survives_an_edit(self) -> Any:
        data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
        card = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:v4\r\nFN:Vera Four\r\n"
                f"EMAIL;TYPE=work;PREF=1:vera@four.example\r\nPHOTO:{data_uri}\r\n"
                "X-CUSTOM;X-PARAM=kept:custom value\r\nEND:VCARD\r\n")
        put = yield self.dav("PUT", BOOK + "v4.vcf", card, Content_Type="text/vcard")
        self.assertEqual(put.status_code, 201)
        api = yield self.signed_in()
        vera = (yield self.listed(api))["contacts"][0]
        self.assertTrue(vera["photo"])
        photo = yield api.call("GET", f"/mail/api/contacts/{vera['id']}/photo")
        self.assertEqual(photo.content, PNG)
        answer = yield api.call("PUT", f"/mail/api/contacts/{vera['id']}",
                                dict(name="Vera Five", emails=vera["emails"], org="Fours"))
        self.assertEqual(answer.status_code, 200, answer.text)
        text = yield self.dav_card(BOOK + "v4.vcf")
        self.assertIn(f"PHOTO:{data_uri}", text.replace("\r\n ", ""))
        self.assertIn("X-CUSTOM;X-PARAM=kept:custom value", text)
        self.assertIn("EMAIL;PREF=1;TYPE=work:vera@four.example", text)
        self.assertIn("FN:Vera Five", text)
        self.assertIn("VERSION:4.0", text)

    @defer.inlineCallbacks
    def test_edit_keeps_what_the_page_does_not_show(self) -> Any:
        put = yield self.dav("PUT", BOOK + "apple-1.vcf", APPLE_CARD,
                             Content_Type="text/vcard")
        self.assertEqual(put.status_code, 201)
        api = yield self.signed_in()
        grace = (yield self.listed(api))["contacts"][0]
        self.assertEqual(grace["emails"], [{"value": "grace@navy.example", "type": "other"}])
        answer = yield api.call("PUT", f"/mail/api/contacts/{grace['id']}",
                                dict(grace, name="Rear Admiral Grace Hopper",
                                     phones=[{"value": "+1 555 0100", "type": "work"}]))
        self.assertEqual(answer.status_code, 200, answer.text)
        text = yield self.dav_card(BOOK + "apple-1.vcf")
        for kept in ("item1.EMAIL;TYPE=INTERNET,pref:grace@navy.example",
                     "item1.X-ABLABEL:_$!<Other>!$_", "CATEGORIES:Navy,Computing",
                     "X-SOCIALPROFILE;TYPE=twitter:x-apple:grace",
                     "URL:https://navy.example/grace", "UID:apple-1",
                     "PRODID:-//Apple Inc.//iOS 18//EN"):
            self.assertIn(kept.lower(), text.lower())
        self.assertIn("FN:Rear Admiral Grace Hopper", text)
        self.assertIn("TEL;TYPE=WORK:+1 555 0100", text)

    @defer.inlineCallbacks
    def test_import_and_export(self) -> Any:
        api = yield self.signed_in()
        vcf = (APPLE_CARD +
               "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:imp-2\r\nFN:Linus Ängström\r\n"
               "EMAIL:linus@kernel.example\r\nEND:VCARD\r\n"
               # vCard 2.1 from an old phone: no UID, no FN
               "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Doe;Jane\r\nTEL;CELL:+15550100\r\n"
               "END:VCARD\r\n")
        answer = yield api.call("POST", "/mail/api/contacts/import", raw=vcf.encode(),
                                content_type="text/vcard")
        self.assertEqual(answer.status_code, 200, answer.text)
        self.assertEqual(answer.json(), {"added": 3, "updated": 0})
        listing = yield self.listed(api)
        self.assertEqual(sorted(c["name"] for c in listing["contacts"]),
                         ["Grace Hopper", "Jane Doe", "Linus Ängström"])
        # the same file again: the same UIDs are updated, not doubled
        again = yield api.call("POST", "/mail/api/contacts/import",
                               raw=APPLE_CARD.replace("FN:Grace Hopper", "FN:Grace B. Hopper")
                               .encode(), content_type="text/vcard")
        self.assertEqual(again.json(), {"added": 0, "updated": 1})
        listing = yield self.listed(api)
        self.assertEqual(len(listing["contacts"]), 3)
        self.assertIn("Grace B. Hopper", [c["name"] for c in listing["contacts"]])
        # bad files change nothing and say why
        for body, field in [(b"hello", "file"), (b"\xff\xfe\x00bad", "file"),
                            (b"BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:nameless\r\nEND:VCARD\r\n",
                             "file/cards/0"),
                            (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", "file"),
                            (b"", "file")]:
            bad = yield api.call("POST", "/mail/api/contacts/import", raw=body,
                                 content_type="text/vcard")
            self.assertEqual((bad.status_code, bad.json()["field"]), (400, field), body)
        listing = yield self.listed(api)
        self.assertEqual(len(listing["contacts"]), 3)

        everything = yield api.call("GET", "/mail/api/contacts.vcf")
        self.assertEqual(everything.status_code, 200)
        self.assertTrue(everything.headers["Content-Type"].startswith("text/vcard"))
        self.assertIn("attachment", everything.headers["Content-Disposition"])
        exported = list(cards.parse_many(everything.content))
        self.assertEqual(sorted(cards.contact_of(c).name for c in exported),
                         ["Grace B. Hopper", "Jane Doe", "Linus Ängström"])
        linus = next(c for c in listing["contacts"] if c["name"].startswith("Linus"))
        one = yield api.call("GET", f"/mail/api/contacts/{linus['id']}/vcf")
        self.assertEqual(one.text.count("BEGIN:VCARD"), 1)
        self.assertIn("linus@kernel.example", one.text)
        # the export imports into another account as the same contacts
        bob = yield self.signed_in(BOB)
        copied = yield bob.call("POST", "/mail/api/contacts/import", raw=everything.content,
                                content_type="text/vcard")
        self.assertEqual(copied.json(), {"added": 3, "updated": 0})


    @defer.inlineCallbacks
    def test_quota_refuses_a_contact_and_an_import_whole(self) -> Any:
        from mailgosend.db.runner import run_sync
        from mailgosend.store import accounts

        api = yield self.signed_in()
        dav = yield self.server.root.components["dav"].open_account(ALICE)
        used, _limit = yield defer.ensureDeferred(dav.quota())
        run_sync(self.server.engine, accounts.set_quota, ALICE, used + 1500, write=True)
        made = yield api.call("POST", "/mail/api/contacts", ADA)
        self.assertEqual(made.status_code, 201, made.text)
        big = yield api.call("POST", "/mail/api/contacts", dict(ADA, note="n" * 2000))
        self.assertEqual((big.status_code, big.json()["field"]), (507, "quota"))
        vcf = "".join(f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:q{i}\r\nFN:Quota {i}\r\n"
                      f"NOTE:{'n' * 100}\r\nEND:VCARD\r\n" for i in range(10))
        refused = yield api.call("POST", "/mail/api/contacts/import", raw=vcf.encode(),
                                 content_type="text/vcard")
        self.assertEqual((refused.status_code, refused.json()["field"]), (507, "quota"))
        listing = yield self.listed(api)
        self.assertEqual([c["name"] for c in listing["contacts"]], ["Ada Lovelace"])


class DavSyncTests(ContactsServerTestCase):
    @defer.inlineCallbacks
    def sync(self, token: str = "") -> Any:
        answer = yield self.dav("REPORT", BOOK, SYNC.format(token), Depth="1")
        self.assertEqual(answer.status_code, 207, answer.text)
        new_token = answer.text.split("<D:sync-token>")[1].split("<")[0]
        hrefs = re.findall(r"<D:href>([^<]+)</D:href>", answer.text)
        gone = re.findall(r"<D:href>([^<]+)</D:href>\s*<D:status>HTTP/1.1 404", answer.text)
        return new_token, hrefs, gone

    @defer.inlineCallbacks
    def test_page_and_dav_client_see_each_others_changes(self) -> Any:
        api = yield self.signed_in()
        yield self.listed(api)            # the default book exists
        token, hrefs, _gone = yield self.sync()
        self.assertEqual(hrefs, [])
        # made in the browser: the DAV client's next sync brings it, and only it
        ada = (yield api.call("POST", "/mail/api/contacts", ADA)).json()
        href = BOOK + ada["uid"].removeprefix("urn:uuid:") + ".vcf"
        token, hrefs, _gone = yield self.sync(token)
        self.assertEqual(hrefs, [href])
        text = yield self.dav_card(href)
        self.assertIn("EMAIL;TYPE=INTERNET,WORK:ada@engine.example", text)
        # edited in the browser: changed at the next sync
        yield api.call("PUT", f"/mail/api/contacts/{ada['id']}", dict(ADA, name="Ada King"))
        token, hrefs, _gone = yield self.sync(token)
        self.assertEqual(hrefs, [href])
        # made and changed by the DAV client: the page lists it at its next read
        put = yield self.dav("PUT", BOOK + "apple-1.vcf", APPLE_CARD,
                             Content_Type="text/vcard")
        self.assertEqual(put.status_code, 201)
        listing = yield self.listed(api)
        self.assertEqual([c["name"] for c in listing["contacts"]], ["Ada King", "Grace Hopper"])
        yield self.dav("PUT", BOOK + "apple-1.vcf",
                       APPLE_CARD.replace("FN:Grace Hopper", "FN:Amazing Grace"),
                       Content_Type="text/vcard")
        yield self.dav("DELETE", BOOK + "apple-1.vcf")
        put = yield self.dav("PUT", BOOK + "apple-2.vcf",
                             APPLE_CARD.replace("apple-1", "apple-2")
                             .replace("FN:Grace Hopper", "FN:Amazing Grace"),
                             Content_Type="text/vcard")
        listing = yield self.listed(api)
        self.assertEqual([c["name"] for c in listing["contacts"]],
                         ["Ada King", "Amazing Grace"])
        token, _hrefs, _gone = yield self.sync(token)
        # deleted in the browser: gone at the DAV client's next sync
        yield api.call("DELETE", f"/mail/api/contacts/{ada['id']}")
        token, hrefs, gone = yield self.sync(token)
        self.assertEqual(gone, [href])
        # a second book's contacts are listed after the default book's
        made = yield self.dav("MKCOL", "/carddav/alice@example.com/family/",
                              '<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:'
                              'carddav"><D:set><D:prop><D:resourcetype><D:collection/>'
                              '<C:addressbook/></D:resourcetype><D:displayname>Family'
                              '</D:displayname></D:prop></D:set></D:mkcol>')
        self.assertEqual(made.status_code, 201)
        yield self.dav("PUT", "/carddav/alice@example.com/family/aunt.vcf",
                       "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:aunt\r\nFN:Aaron Aunt\r\n"
                       "END:VCARD\r\n", Content_Type="text/vcard")
        listing = yield self.listed(api)
        self.assertEqual([(c["book"], c["name"]) for c in listing["contacts"]],
                         [("contacts", "Amazing Grace"), ("family", "Aaron Aunt")])
        self.assertEqual([b["displayName"] for b in listing["books"]], ["Contacts", "Family"])


class CacheTests(ContactsServerTestCase):
    @defer.inlineCallbacks
    def test_a_read_after_a_change_parses_only_the_changed_cards(self) -> Any:
        from mailgosend.mail import contacts as contacts_module
        from mailgosend.mail.dav import ObjectFacts

        dav = yield self.server.root.components["dav"].open_account(ALICE)
        book = yield defer.ensureDeferred(dav.collection("addressbook", "contacts"))
        for i in range(200):
            data = (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c{i}\r\nFN:Person {i:03}\r\n"
                    f"EMAIL:p{i}@example.net\r\nEND:VCARD\r\n").encode()
            yield defer.ensureDeferred(dav.put(book, f"c{i}.vcf", data,
                                               ObjectFacts(uid=f"c{i}", component="VCARD")))
        parsed: list[int] = []
        real = contacts_module._contact_of

        def counting(data: bytes) -> Any:
            parsed.append(1)
            return real(data)
        self.patch(contacts_module, "_contact_of", counting)
        api = yield self.signed_in()
        listing = yield self.listed(api)
        self.assertEqual(len(listing["contacts"]), 200)
        self.assertEqual(len(parsed), 200)
        # unchanged: nothing parsed; one card changed by DAV, one deleted: one parsed
        yield self.listed(api)
        self.assertEqual(len(parsed), 200)
        yield self.dav("PUT", BOOK + "c7.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c7\r\n"
                       "FN:Renamed Seven\r\nEND:VCARD\r\n", Content_Type="text/vcard")
        yield self.dav("DELETE", BOOK + "c8.vcf")
        listing = yield self.listed(api)
        self.assertEqual(len(parsed), 201)
        names = [c["name"] for c in listing["contacts"]]
        self.assertEqual(len(names), 199)
        self.assertIn("Renamed Seven", names)
        self.assertNotIn("Person 008", names)
        # the suggestions read the same cache
        answer = yield api.call("GET", "/mail/api/suggest?q=renamed")
        self.assertEqual([s["name"] for s in answer.json()["suggestions"]], [])  # no email
        answer = yield api.call("GET", "/mail/api/suggest?q=p19")
        self.assertEqual(answer.json()["suggestions"][0]["email"], "p19@example.net")
        self.assertEqual(len(parsed), 201)
        # the webmail's JSON is counted with the app API calls, not with sign-ins
        site = self.server.root.components["web_site"]
        self.assertIs(site.limiter_for(b"/mail/api/contacts"), site.limiter_for(b"/jmap/api"))


def message(sender: str, to: str, subject: str) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@x>\r\n\r\n"
            "Hello\r\n").encode()


class SuggestTests(ContactsServerTestCase):
    @defer.inlineCallbacks
    def store(self, box_name: str, raw: bytes, flags: tuple[str, ...] = ()) -> Any:
        mail = self.server.root.components["mail"]
        user = yield mail.open_account(ALICE)
        box = yield user.get_mailbox(box_name)
        yield user.append_all(box.id, [(raw, list(flags),
                                        datetime(2026, 12, 1, tzinfo=timezone.utc))])

    @defer.inlineCallbacks
    def suggested(self, api: ContactsClient, query: str) -> Any:
        answer = yield api.call("GET", "/mail/api/suggest?q=" + query)
        self.assertEqual(answer.status_code, 200, answer.text)
        return [(s["name"], s["email"], s["source"]) for s in answer.json()["suggestions"]]

    @defer.inlineCallbacks
    def test_address_book_first_then_addresses_used_before(self) -> Any:
        api = yield self.signed_in()
        yield api.call("POST", "/mail/api/contacts",
                       {"name": "Zelda Book", "emails": [
                           {"value": "zelda@book.example", "type": "home"},
                           {"value": "zz@work.example", "type": "work"}]})
        yield self.store("Sent", message(f"Alice <{ALICE}>",
                                         '"Zed, Recent" <zed@sent.example>, '
                                         "=?utf-8?q?Z=C3=BCrich_Office?= <office@zurich.example>",
                                         "sent"), ("\\Seen",))
        yield self.store("INBOX", message("Yara Reader <yara@read.example>", ALICE, "read"),
                         ("\\Seen",))
        yield self.store("INBOX", message("Zoe Unread <zoe@unread.example>", ALICE, "unread"))
        yield self.store("Spam", message("Zorro Spam <zorro@spam.example>", ALICE, "spam"),
                         ("\\Seen",))
        got = yield self.suggested(api, "z")
        self.assertEqual(got, [("Zelda Book", "zelda@book.example", "contacts"),
                               ("Zelda Book", "zz@work.example", "contacts"),
                               ("Zed, Recent", "zed@sent.example", "recent"),
                               ("Zürich Office", "office@zurich.example", "recent")])
        got = yield self.suggested(api, "WORK")
        self.assertEqual(got[0], ("Zelda Book", "zz@work.example", "contacts"))
        got = yield self.suggested(api, "yara")
        self.assertEqual(got, [("Yara Reader", "yara@read.example", "recent")])
        for nothing in ("zoe", "zorro", "alice", ""):
            got = yield self.suggested(api, nothing)
            self.assertEqual(got, [], nothing)
        # a new message read since: the list follows the account's state
        yield self.store("INBOX", message("Yannick New <yannick@read.example>", ALICE, "new"),
                         ("\\Seen",))
        got = yield self.suggested(api, "read.example")
        self.assertEqual({g[1] for g in got}, {"yara@read.example", "yannick@read.example"})
        bob = yield self.signed_in(BOB)
        got = yield self.suggested(bob, "z")
        self.assertEqual(got, [])
        long_query = yield api.call("GET", "/mail/api/suggest?q=" + "x" * 201)
        self.assertEqual(long_query.json()["field"], "q")


class AccessLogTests(unittest.TestCase):
    def test_what_autocomplete_was_asked_is_not_logged(self) -> None:
        from twisted.web.test.requesthelper import DummyRequest

        from mailgosend.web.site import access_log_line

        for path, kept in ((b"/mail/api/suggest", False), (b"/mail/api/contacts", True)):
            request: Any = DummyRequest([b""])
            request.method = b"GET"
            request.uri = path + b"?q=ada%40engine.example"
            request.path = path
            request.clientproto = b"HTTP/1.1"
            request.code = 200
            request.sentLength = 10
            line = access_log_line("[05/Dec/2026:10:00:00 +0000]", request)
            self.assertIn(path.decode(), line)
            self.assertEqual("ada" in line, kept, line)


class CardTests(unittest.TestCase):
    """contactcards alone: what a round trip through the page's fields keeps."""

    def test_round_trip_and_types(self) -> None:
        card = cards.new_card()
        cards.apply(card, cards.validate_fields(ADA))
        back = cards.contact_of(cards.parse(cards.serialize(card)))
        self.assertEqual(back.emails, ADA["emails"])
        self.assertEqual(back.phones, ADA["phones"])
        self.assertEqual(back.birthday, "1815-12-10")
        self.assertEqual(back.note, ADA["note"])
        validate(cards.serialize(card))

    def test_lines_stay_folded_and_a_vcard4_photo_uri_whole(self) -> None:
        # RFC 6350 §3.2: lines of at most 75 octets; the PHOTO data: URI is not cut at its
        # comma (vobject alone would) nor escaped
        uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
        card = cards.parse("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:u\r\nFN:F\r\n"
                           f"PHOTO:{uri}\r\nEND:VCARD\r\n")
        cards.apply(card, cards.validate_fields(dict(ADA, note="n" * 300)))
        text = cards.serialize(card).decode()
        self.assertIn(f"PHOTO:{uri}\r\n", text)
        self.assertLessEqual(max(len(line) for line in text.split("\r\n")
                                 if not line.startswith("PHOTO")), 75)
        self.assertEqual(cards.photo_of(cards.parse(text)), (PNG, "image/png"))

    def test_name_falls_back_to_email(self) -> None:
        clean = cards.validate_fields({"emails": [{"value": "x@y.example", "type": "home"}]})
        self.assertEqual(clean["name"], "x@y.example")

    def test_image_types(self) -> None:
        self.assertEqual(cards.image_type(PNG), "image/png")
        self.assertEqual(cards.image_type(b"\xff\xd8\xff\xe0"), "image/jpeg")
        self.assertEqual(cards.image_type(b"RIFF\0\0\0\0WEBPVP8 "), "image/webp")
        self.assertIsNone(cards.image_type(b"<svg/>"))


class ContactsBrowserTests(WebmailBrowserTestCase):
    @defer.inlineCallbacks
    def test_create_search_edit_photo_delete_import_export(self) -> Any:
        mail = self.server.root.components["mail"]
        user = yield mail.open_account(ALICE)
        sent = yield user.get_mailbox("Sent")
        yield user.append_all(sent.id, [(message(f"Alice <{ALICE}>",
                                                 "Charles Babbage <charles@engine.example>",
                                                 "engine"), ["\\Seen"],
                                         datetime(2026, 12, 1, tzinfo=timezone.utc))])
        photo = self.mktemp() + ".png"
        with open(photo, "wb") as handle:
            handle.write(PNG)
        vcf = self.mktemp() + ".vcf"
        with open(vcf, "wb") as handle:
            handle.write("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:imp-1\r\nFN:Linus Ängström\r\n"
                         "EMAIL:linus@kernel.example\r\nEND:VCARD\r\nBEGIN:VCARD\r\n"
                         "VERSION:4.0\r\nUID:imp-2\r\nFN:Margaret Hamilton\r\n"
                         "END:VCARD\r\n".encode())
        # a contact made by a CardDAV client shows in the page
        put = yield threads.deferToThread(
            requests.put, self.web_base + BOOK + "dora.vcf",
            data=b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:dora\r\nFN:Dora Dav\r\n"
                 b"EMAIL:dora@dav.example\r\nEND:VCARD\r\n",
            headers={"Content-Type": "text/vcard"}, auth=(ALICE, PASSWORD), timeout=60)
        self.assertEqual(put.status_code, 201)

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.open_mail(browser, errors)
            page.get_by_role("link", name="Contacts").click()
            expect(page.locator("html[data-ready='1']")).to_have_count(1, timeout=10000)
            expect(page.get_by_role("heading", name="Contacts")).to_be_visible()
            contacts = page.get_by_role("list", name="Contacts")
            expect(contacts.get_by_role("button", name=re.compile("Dora Dav"))).to_be_visible()
            # create
            page.get_by_role("button", name="New contact").click()
            page.get_by_label("Name", exact=True).fill("Ada Lovelace")
            email = page.get_by_role("combobox", name="Email 1", exact=True)
            email.fill("ada@engine.example")
            page.get_by_role("button", name="Add phone").click()
            page.get_by_role("textbox", name="Phone 1", exact=True).fill("+44 20 7946 0000")
            page.get_by_label("Phone 1 type").select_option("work")
            page.get_by_label("Organisation").fill("Analytical Engines")
            page.get_by_label("City").fill("London")
            page.get_by_label("Birthday").fill("1815-12-10")
            page.get_by_role("button", name="Save").click()
            expect(contacts.get_by_role("button", name=re.compile("Ada Lovelace"))
                   ).to_be_visible(timeout=10000)
            expect(page.get_by_role("status")).to_have_text("Saved Ada Lovelace.")
            # a bad address: the error names the field, which is marked invalid
            page.get_by_role("button", name="Add email").click()
            page.get_by_role("combobox", name="Email 2", exact=True).fill("not-an-address")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_role("alert")).to_contain_text("emails/1/value")
            expect(page.get_by_role("combobox", name="Email 2", exact=True)
                   ).to_have_attribute("aria-invalid", "true")
            page.get_by_role("button", name="Remove email 2").click()
            # autocomplete on an address field: an address used before (Sent mail)
            page.get_by_role("button", name="Add email").click()
            second = page.get_by_role("combobox", name="Email 2", exact=True)
            second.press_sequentially("charl", delay=30)
            listbox = page.get_by_role("listbox", name="Address suggestions")
            option = listbox.get_by_role("option", name="Charles Babbage <charles@engine.example>")
            expect(option).to_be_visible(timeout=10000)
            expect(second).to_have_attribute("aria-expanded", "true")
            second.press("ArrowDown")
            second.press("ArrowUp")
            expect(option).to_have_attribute("aria-selected", "true")
            second.press("Enter")
            expect(second).to_have_value("charles@engine.example")
            expect(listbox).to_be_hidden()
            page.get_by_role("button", name="Remove email 2").click()
            # edit
            page.get_by_label("Name", exact=True).fill("Ada King")
            page.get_by_role("button", name="Save").click()
            expect(contacts.get_by_role("button", name=re.compile("Ada King"))
                   ).to_be_visible(timeout=10000)
            expect(contacts.get_by_role("button", name=re.compile("Ada Lovelace"))
                   ).to_have_count(0)
            # photo
            page.get_by_label("Upload photo").set_input_files(photo)
            expect(page.get_by_role("status")).to_have_text("Photo saved.", timeout=10000)
            expect(page.locator("#avatar img")).to_have_count(1)
            expect(page.get_by_role("button", name="Remove photo")).to_be_visible()
            # a second contact, then search
            page.get_by_role("button", name="New contact").click()
            page.get_by_label("Name", exact=True).fill("Grace Hopper")
            page.get_by_role("combobox", name="Email 1", exact=True).fill("grace@navy.example")
            page.get_by_role("button", name="Save").click()
            expect(contacts.get_by_role("button")).to_have_count(3, timeout=10000)
            search = page.get_by_role("searchbox", name="Search contacts")
            search.fill("navy")
            expect(contacts.get_by_role("button")).to_have_count(1)
            expect(contacts.get_by_role("button", name=re.compile("Grace Hopper"))
                   ).to_be_visible()
            search.fill("KING")
            expect(contacts.get_by_role("button")).to_have_count(1)
            contacts.get_by_role("button", name=re.compile("Ada King")).click()
            expect(page.get_by_label("Organisation")).to_have_value("Analytical Engines")
            expect(page.get_by_label("Phone 1 type")).to_have_value("work")
            # delete, with a confirmation (Keep first, then Delete)
            page.get_by_role("button", name="Delete", exact=True).click()
            dialog = page.get_by_role("dialog", name="Delete this contact?")
            expect(dialog).to_be_visible()
            dialog.get_by_role("button", name="Keep").click()
            expect(dialog).to_be_hidden()
            search.fill("")
            expect(contacts.get_by_role("button")).to_have_count(3)
            page.get_by_role("button", name="Delete", exact=True).click()
            dialog.get_by_role("button", name="Delete contact").click()
            expect(contacts.get_by_role("button")).to_have_count(2, timeout=10000)
            expect(contacts.get_by_role("button", name=re.compile("Grace Hopper"))
                   ).to_be_visible()
            # import a .vcf of two cards, then export everything
            page.get_by_label("Import .vcf").set_input_files(vcf)
            expect(page.get_by_role("status")).to_have_text(
                "Imported 2 new and 0 updated contacts.", timeout=10000)
            expect(contacts.get_by_role("button")).to_have_count(4)
            expect(contacts.get_by_role("button", name=re.compile("Linus Ängström"))
                   ).to_be_visible()
            with page.expect_download() as download_info:
                page.get_by_role("link", name="Export all").click()
            download = download_info.value
            with open(download.path(), "rb") as handle:
                exported = handle.read()
            self.assertEqual(exported.count(b"BEGIN:VCARD"), 4)
            self.assertEqual(download.suggested_filename, "contacts.vcf")
            # a phone: one pane at a time, nothing wider than the screen
            page.set_viewport_size({"width": 375, "height": 700})
            expect(contacts).to_be_visible()
            self.assertLessEqual(page.evaluate("document.documentElement.scrollWidth"), 375)
            contacts.get_by_role("button", name=re.compile("Grace Hopper")).click()
            expect(page.get_by_label("Name", exact=True)).to_have_value("Grace Hopper")
            expect(contacts).to_be_hidden()
            self.assertLessEqual(page.evaluate("document.documentElement.scrollWidth"), 375)
            page.get_by_role("button", name="Cancel").click()
            expect(contacts).to_be_visible()
            # and the mail page links here from under the folders
            page.goto(self.web_base + "/mail")
            expect(page.locator("html[data-ready='1']")).to_have_count(1, timeout=10000)
            page.get_by_role("button", name="Folders").click()
            page.get_by_role("navigation", name="Folders").get_by_role(
                "link", name="Contacts").click()
            expect(page).to_have_url(self.web_base + "/mail/contacts")

        yield self.in_browser(scenario)
        dav = self.server.root.components["dav"]
        user_dav = yield dav.open_account(ALICE)
        book = yield defer.ensureDeferred(user_dav.collection("addressbook", "contacts"))
        items = yield defer.ensureDeferred(user_dav.items(book))
        names = sorted(cards.contact_of(cards.parse(i.data)).name for i in items)
        self.assertEqual(names, ["Dora Dav", "Grace Hopper", "Linus Ängström",
                                 "Margaret Hamilton"])

    @defer.inlineCallbacks
    def test_autocomplete_in_compose(self) -> Any:
        from mailgosend.mail.dav import ObjectFacts

        dav = yield self.server.root.components["dav"].open_account(ALICE)
        book = yield defer.ensureDeferred(dav.collection("addressbook", "contacts"))
        yield defer.ensureDeferred(dav.put(
            book, "ada.vcf", b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ada\r\nFN:Ada Lovelace\r\n"
            b"EMAIL:ada@engine.example\r\nEND:VCARD\r\n", ObjectFacts(uid="ada",
                                                                     component="VCARD")))
        mail = self.server.root.components["mail"]
        user = yield mail.open_account(ALICE)
        sent = yield user.get_mailbox("Sent")
        yield user.append_all(sent.id, [(message(f"Alice <{ALICE}>",
                                                 "Adam Smith <adam@sent.example>", "adam"),
                                         ["\\Seen"], datetime(2026, 12, 1, tzinfo=timezone.utc))])

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.open_mail(browser, errors)
            page.get_by_role("button", name="New message").click()
            form = page.get_by_role("dialog", name="New message")
            expect(form).to_be_visible(timeout=10000)
            to = form.get_by_role("combobox", name="To", exact=True)
            to.press_sequentially("ad", delay=30)
            listbox = form.get_by_role("listbox", name="Address suggestions")
            expect(listbox).to_be_visible(timeout=10000)
            options = listbox.get_by_role("option")
            # the address book first, then an address used before
            expect(options).to_have_text(["Ada Lovelace <ada@engine.example>",
                                          "Adam Smith <adam@sent.example>"])
            expect(to).to_have_attribute("aria-expanded", "true")
            expect(options.nth(0)).to_have_attribute("aria-selected", "true")
            to.press("ArrowDown")
            expect(options.nth(1)).to_have_attribute("aria-selected", "true")
            expect(to).to_have_attribute("aria-activedescendant",
                                         options.nth(1).get_attribute("id") or "?")
            to.press("Enter")
            expect(to).to_have_value("Adam Smith <adam@sent.example>, ")
            expect(listbox).to_be_hidden()
            expect(to).to_have_attribute("aria-expanded", "false")
            # a second address completes the part after the comma; picked with the mouse
            to.press_sequentially("lov", delay=30)
            listbox.get_by_role("option", name="Ada Lovelace <ada@engine.example>").click()
            expect(to).to_have_value("Adam Smith <adam@sent.example>, "
                                     "Ada Lovelace <ada@engine.example>, ")
            expect(to).to_be_focused()
            # Escape closes the suggestions, not the message
            cc = form.get_by_role("combobox", name="Cc", exact=True)
            cc.press_sequentially("ada", delay=30)
            expect(listbox).to_be_visible(timeout=10000)
            cc.press("Escape")
            expect(listbox).to_be_hidden()
            expect(form).to_be_visible()
            expect(cc).to_have_value("ada")

        yield self.in_browser(scenario)

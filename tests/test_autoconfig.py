"""Client autoconfiguration on the web port (web/autoconfig.py), against a whole server:
Thunderbird's config-v1.1.xml with every field Thunderbird reads, Outlook autodiscover for
the outlook/2006a schema and the mobilesync schema, the Apple .mobileconfig profile of the
signed-in user (parsed with plistlib), the per-domain host names, and the MTA-STS policy."""

from __future__ import annotations

import plistlib
from typing import Any
from xml.etree import ElementTree as ET

from twisted.internet import defer

from mailgosend.mtasts import parse_policy
from mailgosend.web.autoconfig import AD_MOBILESYNC, AD_OUTLOOK, AD_RESPONSE
from tests.support.mailserver import HOSTNAME, PASSWORD
from tests.support.web import WebServerTestCase

ALICE = "alice@example.com"
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
MOBILE_REQUEST_NS = \
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"


def autodiscover_request(email: str, schema: str = AD_OUTLOOK,
                         namespace: str = REQUEST_NS) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="{namespace}">'
            f"<Request><EMailAddress>{email}</EMailAddress>"
            f"<AcceptableResponseSchema>{schema}</AcceptableResponseSchema>"
            "</Request></Autodiscover>").encode()


def children(element: Any) -> dict[str, str]:
    return {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in element}


class AutoconfigTests(WebServerTestCase):
    users = (ALICE,)

    def ports(self) -> dict[str, int]:
        return self.server.ports

    @defer.inlineCallbacks
    def thunderbird(self, path: str, **kwargs: Any) -> Any:
        response = yield self.client().get(path, **kwargs)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertTrue(response.headers["Content-Type"].startswith("text/xml"))
        return ET.fromstring(response.content)

    def check_thunderbird(self, root: Any) -> None:
        # The format Thunderbird reads (comm-central mailnews/base/prefs/content/accountcreation
        # readFromXML): clientConfig version 1.1, one emailProvider with id, domain,
        # displayName, displayShortName; incomingServer type imap|pop3 and outgoingServer
        # type smtp, each with hostname, port, socketType (plain|SSL|STARTTLS),
        # authentication and username (%EMAILADDRESS% placeholder).
        self.assertEqual((root.tag, root.get("version")), ("clientConfig", "1.1"))
        (provider,) = root.findall("emailProvider")
        self.assertEqual(provider.get("id"), "example.com")
        self.assertEqual(provider.findtext("domain"), "example.com")
        self.assertTrue(provider.findtext("displayName"))
        self.assertTrue(provider.findtext("displayShortName"))
        servers = [(s.tag, s.get("type"), s.findtext("hostname"), int(s.findtext("port")),
                    s.findtext("socketType"), s.findtext("authentication"),
                    s.findtext("username"))
                   for s in provider if s.tag in ("incomingServer", "outgoingServer")]
        p = self.ports()
        user = "%EMAILADDRESS%"
        auth = "password-cleartext"
        self.assertEqual(servers, [
            ("incomingServer", "imap", HOSTNAME, p["IMAPS"], "SSL", auth, user),
            ("incomingServer", "imap", HOSTNAME, p["IMAP"], "STARTTLS", auth, user),
            ("incomingServer", "pop3", HOSTNAME, p["POP3S"], "SSL", auth, user),
            ("incomingServer", "pop3", HOSTNAME, p["POP3"], "STARTTLS", auth, user),
            ("outgoingServer", "smtp", HOSTNAME, p["SUBMIT"], "STARTTLS", auth, user),
            ("outgoingServer", "smtp", HOSTNAME, p["SMTPS"], "SSL", auth, user),
        ])
        for server in provider.iter("incomingServer"):
            self.assertIn(server.findtext("socketType"), ("plain", "SSL", "STARTTLS"))

    @defer.inlineCallbacks
    def test_thunderbird_well_known_with_the_address(self) -> None:
        root = yield self.thunderbird(
            "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40Example.COM")
        self.check_thunderbird(root)

    @defer.inlineCallbacks
    def test_thunderbird_on_the_autoconfig_host_name(self) -> None:
        root = yield self.thunderbird("/mail/config-v1.1.xml",
                                      headers={"Host": "autoconfig.example.com"})
        self.check_thunderbird(root)

    @defer.inlineCallbacks
    def test_thunderbird_unknown_domain_is_404(self) -> None:
        web = self.client()
        response = yield web.get("/mail/config-v1.1.xml?emailaddress=a%40elsewhere.test")
        self.assertEqual(response.status_code, 404)
        response = yield web.get("/mail/config-v1.1.xml",
                                 headers={"Host": "autoconfig.elsewhere.test"})
        self.assertEqual(response.status_code, 404)

    @defer.inlineCallbacks
    def test_per_domain_names_reach_only_the_public_paths(self) -> None:
        response = yield self.client().get("/login",
                                           headers={"Host": "autoconfig.example.com"})
        self.assertEqual(response.status_code, 421)

    @defer.inlineCallbacks
    def test_outlook_autodiscover(self) -> None:
        for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
            response = yield self.client().post(path, data=autodiscover_request(ALICE),
                                                origin=None,
                                                headers={"Content-Type": "text/xml"})
            self.assertEqual(response.status_code, 200, response.text)
            root = ET.fromstring(response.content)
            self.assertEqual(root.tag, f"{{{AD_RESPONSE}}}Autodiscover")
            account = root.find(f"{{{AD_OUTLOOK}}}Response/{{{AD_OUTLOOK}}}Account")
            self.assertIsNotNone(account)
            fields = children(account)
            self.assertEqual((fields["AccountType"], fields["Action"]), ("email", "settings"))
            protocols = {p["Type"]: p for p in
                         (children(e) for e in account.findall(f"{{{AD_OUTLOOK}}}Protocol"))}
            self.assertEqual(sorted(protocols), ["IMAP", "POP3", "SMTP"])
            imap, smtp = protocols["IMAP"], protocols["SMTP"]
            self.assertEqual((imap["Server"], int(imap["Port"]), imap["SSL"],
                              imap["Encryption"], imap["LoginName"], imap["SPA"],
                              imap["AuthRequired"], imap["DomainRequired"]),
                             (HOSTNAME, self.ports()["IMAPS"], "on", "SSL", ALICE, "off",
                              "on", "off"))
            self.assertEqual((int(smtp["Port"]), smtp["Encryption"]),
                             (self.ports()["SUBMIT"], "TLS"))

    @defer.inlineCallbacks
    def test_mobilesync_request_gets_a_provider_error_not_an_http_error(self) -> None:
        body = autodiscover_request(ALICE, AD_MOBILESYNC, MOBILE_REQUEST_NS)
        response = yield self.client().post("/autodiscover/autodiscover.xml", data=body,
                                            origin=None)
        self.assertEqual(response.status_code, 200, response.text)
        root = ET.fromstring(response.content)
        self.assertEqual(root.tag, f"{{{AD_RESPONSE}}}Autodiscover")
        error = root.find(f"{{{AD_RESPONSE}}}Response/{{{AD_RESPONSE}}}Error")
        self.assertIsNotNone(error)
        self.assertEqual(error.findtext(f"{{{AD_RESPONSE}}}ErrorCode"), "601")
        self.assertTrue(error.get("Time"))

    @defer.inlineCallbacks
    def test_autodiscover_bad_input(self) -> None:
        web = self.client()
        response = yield web.post("/autodiscover/autodiscover.xml", data=b"<not xml",
                                  origin=None)
        self.assertEqual(response.status_code, 400)
        self.assertIn(b"<ErrorCode>600</ErrorCode>", response.content)
        bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">'
                b'<!ENTITY b "&a;&a;&a;&a;">]><Autodiscover><Request>'
                b"<EMailAddress>&b;</EMailAddress></Request></Autodiscover>")
        response = yield web.post("/autodiscover/autodiscover.xml", data=bomb, origin=None)
        self.assertEqual(response.status_code, 400)
        response = yield web.post("/autodiscover/autodiscover.xml",
                                  data=autodiscover_request("a@elsewhere.test"), origin=None)
        self.assertIn(b"<ErrorCode>500</ErrorCode>", response.content)

    @defer.inlineCallbacks
    def test_apple_profile_of_the_signed_in_user(self) -> None:
        web = self.client()
        response = yield web.get("/settings/mail-profile.mobileconfig")
        self.assertEqual(response.status_code, 303)   # signed out: to the sign-in page
        yield web.sign_in(ALICE, PASSWORD)
        page = yield web.get("/settings")
        self.assertIn('href="/settings/mail-profile.mobileconfig"', page.text)
        response = yield web.get("/settings/mail-profile.mobileconfig")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.headers["Content-Type"], "application/x-apple-aspen-config")
        self.assertIn("attachment", response.headers["Content-Disposition"])
        self.assertNotIn(PASSWORD.encode(), response.content)
        profile = plistlib.loads(response.content)
        self.assertEqual(profile["PayloadType"], "Configuration")
        payloads = {p["PayloadType"]: p for p in profile["PayloadContent"]}
        self.assertEqual(sorted(payloads), ["com.apple.caldav.account",
                                            "com.apple.carddav.account",
                                            "com.apple.mail.managed"])
        mail = payloads["com.apple.mail.managed"]
        self.assertEqual((mail["EmailAccountType"], mail["EmailAddress"],
                          mail["IncomingMailServerHostName"],
                          mail["IncomingMailServerPortNumber"],
                          mail["IncomingMailServerUseSSL"], mail["IncomingMailServerUsername"],
                          mail["OutgoingMailServerPortNumber"],
                          mail["OutgoingMailServerUsername"]),
                         ("EmailTypeIMAP", ALICE, HOSTNAME, self.ports()["IMAPS"], True,
                          ALICE, self.ports()["SUBMIT"], ALICE))
        for kind, prefix, path in (("caldav", "CalDAV", "/caldav/"),
                                   ("carddav", "CardDAV", "/carddav/")):
            dav = payloads[f"com.apple.{kind}.account"]
            self.assertEqual((dav[f"{prefix}HostName"], dav[f"{prefix}PrincipalURL"],
                              dav[f"{prefix}Username"], dav[f"{prefix}Port"]),
                             (HOSTNAME, path, ALICE, self.settings["ports"]["WEB"]))
        for payload in [profile, *profile["PayloadContent"]]:
            self.assertFalse(any("Password" in key and key != 
                                 "OutgoingPasswordSameAsIncomingPassword"
                                 for key in payload))
        # Stable: the same UUIDs on a second download.
        again = plistlib.loads((yield web.get("/settings/mail-profile.mobileconfig")).content)
        self.assertEqual([p["PayloadUUID"] for p in again["PayloadContent"]],
                         [p["PayloadUUID"] for p in profile["PayloadContent"]])
        self.assertEqual(again["PayloadUUID"], profile["PayloadUUID"])

    @defer.inlineCallbacks
    def test_mta_sts_policy_on_the_mta_sts_host(self) -> None:
        web = self.client()
        response = yield web.get("/.well-known/mta-sts.txt",
                                 headers={"Host": "mta-sts.example.com"})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.headers["Content-Type"], "text/plain")
        policy = parse_policy(response.text)
        self.assertEqual((policy.mode, policy.mx), ("testing", (HOSTNAME,)))
        response = yield web.get("/.well-known/mta-sts.txt",
                                 headers={"Host": "mta-sts.elsewhere.test"})
        self.assertEqual(response.status_code, 404)
        response = yield web.get("/.well-known/mta-sts.txt")
        self.assertEqual(response.status_code, 404)

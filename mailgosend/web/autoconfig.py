# -*- test-case-name: tests.test_autoconfig -*-
"""Mail clients that configure themselves (DESIGN.md §1 web/autoconfig.py), and the MTA-STS
policy file, on the web port and on the ``autoconfig.``/``autodiscover.``/``mta-sts.`` names
of each local domain:

  GET  /.well-known/autoconfig/mail/config-v1.1.xml   Thunderbird (and K-9, Evolution...)
  GET  /mail/config-v1.1.xml?emailaddress=            the same, at the autoconfig.<domain> path
  POST /autodiscover/autodiscover.xml                 Outlook "POX" autodiscover; also
  POST /Autodiscover/Autodiscover.xml                 with the capitalised path Outlook uses
  GET  /.well-known/mta-sts.txt                       RFC 8461 §3.2, Host mta-sts.<domain>
  (/settings/mail-profile.mobileconfig, signed in: web/settings_pages.py, built here)

Everything served here is public (host names, ports, the policy) and only for local,
enabled domains; nothing depends on whether an address exists, so the answers do not reveal
accounts.  The per-domain host names reach these paths only (web/settings.py
PUBLIC_PATHS).  Which ports are offered is clientports.py's rule; plain-text ports are never
offered, since passwords are refused there.  Request XML is parsed with defusedxml.
"""

from __future__ import annotations

import plistlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from xml.etree import ElementTree as ET

from defusedxml import ElementTree as SafeET
from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from werkzeug.exceptions import HTTPException

from mailgosend.clientports import ClientPort, client_ports
from mailgosend.mtasts import Policy, own_policy
from mailgosend.web.forms import form_field

log = Logger()

__all__ = ["AutoconfigPages", "ClientSetup"]

AD_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
AD_OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
AD_MOBILESYNC = \
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
_MAX_AUTODISCOVER_BODY = 16 * 1024

# Thunderbird's socketType values (its config-v1.1.xml format).
_SOCKET_TYPE = {"ssl": "SSL", "starttls": "STARTTLS"}


@dataclass(frozen=True)
class ClientSetup:
    """What the setup answers say, read from the configuration once."""

    hostname: str
    ports: tuple[ClientPort, ...]
    web_port: int
    web_tls: bool
    policy: Policy

    @classmethod
    def from_config(cls, config: Any) -> "ClientSetup":
        return cls(hostname=config["HOSTNAME"], ports=client_ports(config),
                   web_port=config.listener("web").port, web_tls=config["WEB_TLS"],
                   policy=own_policy(config))

    def offered(self, protocol: str) -> list[ClientPort]:
        """The TLS ports of one protocol, the recommended first."""
        return [p for p in self.ports if p.protocol == protocol and p.active
                and p.security in _SOCKET_TYPE]

    # --- Thunderbird ----------------------------------------------------------------

    def thunderbird(self, domain: str) -> bytes:
        """Thunderbird's clientConfig 1.1 document for ``domain``."""
        root = ET.Element("clientConfig", version="1.1")
        provider = ET.SubElement(root, "emailProvider", id=domain)
        ET.SubElement(provider, "domain").text = domain
        ET.SubElement(provider, "displayName").text = f"{domain} mail"
        ET.SubElement(provider, "displayShortName").text = domain
        for protocol, element, kind in (("imap", "incomingServer", "imap"),
                                        ("pop3", "incomingServer", "pop3"),
                                        ("smtp", "outgoingServer", "smtp")):
            for port in self.offered(protocol):
                server = ET.SubElement(provider, element, type=kind)
                ET.SubElement(server, "hostname").text = self.hostname
                ET.SubElement(server, "port").text = str(port.port)
                ET.SubElement(server, "socketType").text = _SOCKET_TYPE[port.security]
                ET.SubElement(server, "authentication").text = "password-cleartext"
                ET.SubElement(server, "username").text = "%EMAILADDRESS%"
        return _xml(root)

    # --- Outlook ----------------------------------------------------------------------

    def outlook(self, email: str) -> bytes:
        """The POX answer in the outlook/responseschema/2006a schema: one Protocol per
        type (the recommended port), login name the full address."""
        root = ET.Element("Autodiscover", xmlns=AD_RESPONSE)
        response = ET.SubElement(root, "Response", xmlns=AD_OUTLOOK)
        account = ET.SubElement(response, "Account")
        ET.SubElement(account, "AccountType").text = "email"
        ET.SubElement(account, "Action").text = "settings"
        for protocol, kind in (("imap", "IMAP"), ("pop3", "POP3"), ("smtp", "SMTP")):
            offered = self.offered(protocol)
            if not offered:
                continue
            port = offered[0]
            entry = ET.SubElement(account, "Protocol")
            for name, value in (("Type", kind), ("Server", self.hostname),
                                ("Port", str(port.port)), ("DomainRequired", "off"),
                                ("LoginName", email), ("SPA", "off"), ("SSL", "on"),
                                # Encryption overrides SSL: SSL = implicit, TLS = STARTTLS.
                                ("Encryption", "SSL" if port.security == "ssl" else "TLS"),
                                ("AuthRequired", "on")):
                ET.SubElement(entry, name).text = value
            if kind == "SMTP":
                ET.SubElement(entry, "UsePOPAuth").text = "off"
                ET.SubElement(entry, "SMTPLast").text = "off"
        return _xml(root)

    @staticmethod
    def autodiscover_error(code: int, message: str, now: float) -> bytes:
        """The schema-independent error answer (MS-ASCMD §2.2.3.64, the POX Error element):
        600 invalid request, 601 no provider for the AcceptableResponseSchema, 500 unknown
        address."""
        root = ET.Element("Autodiscover", xmlns=AD_RESPONSE)
        response = ET.SubElement(root, "Response")
        when = datetime.fromtimestamp(now, timezone.utc).strftime("%H:%M:%S.%f")
        error = ET.SubElement(response, "Error", Time=when, Id="0")
        ET.SubElement(error, "ErrorCode").text = str(code)
        ET.SubElement(error, "Message").text = message
        ET.SubElement(error, "DebugData")
        return _xml(root)

    # --- Apple ------------------------------------------------------------------------

    def mobileconfig(self, email: str, display_name: str) -> bytes:
        """An unsigned configuration profile: the mail account (IMAP + SMTP) and CalDAV and
        CardDAV accounts on the web port.  UUIDs are stable per server, user and payload, so
        installing it again replaces the earlier profile instead of adding a copy.  No
        password: the device asks for it."""
        domain = email.rpartition("@")[2]
        reverse = ".".join(reversed(self.hostname.split(".")))

        def ident(kind: str) -> tuple[str, str]:
            stable = uuid.uuid5(uuid.NAMESPACE_URL,
                                f"mailgosend:{self.hostname}:{email}:{kind}")
            return f"{reverse}.mailgosend.{kind}.{stable}", str(stable).upper()

        payloads: list[dict[str, Any]] = []
        imap, smtp = self.offered("imap"), self.offered("smtp")
        if imap and smtp:
            identifier, payload_uuid = ident("mail")
            payloads.append({
                "PayloadType": "com.apple.mail.managed", "PayloadVersion": 1,
                "PayloadIdentifier": identifier, "PayloadUUID": payload_uuid,
                "PayloadDisplayName": f"Mail ({email})",
                "EmailAccountType": "EmailTypeIMAP", "EmailAccountDescription": email,
                "EmailAccountName": display_name or email, "EmailAddress": email,
                "IncomingMailServerHostName": self.hostname,
                "IncomingMailServerPortNumber": imap[0].port,
                "IncomingMailServerUseSSL": True,
                "IncomingMailServerUsername": email,
                "IncomingMailServerAuthentication": "EmailAuthPassword",
                "OutgoingMailServerHostName": self.hostname,
                "OutgoingMailServerPortNumber": smtp[0].port,
                "OutgoingMailServerUseSSL": True,
                "OutgoingMailServerUsername": email,
                "OutgoingMailServerAuthentication": "EmailAuthPassword",
                "OutgoingPasswordSameAsIncomingPassword": True,
            })
        for kind, prefix, path, what in (("caldav", "CalDAV", "/caldav/", "Calendars"),
                                         ("carddav", "CardDAV", "/carddav/", "Contacts")):
            identifier, payload_uuid = ident(kind)
            payloads.append({
                "PayloadType": f"com.apple.{kind}.account", "PayloadVersion": 1,
                "PayloadIdentifier": identifier, "PayloadUUID": payload_uuid,
                "PayloadDisplayName": f"{what} ({email})",
                f"{prefix}AccountDescription": f"{what} {email}",
                f"{prefix}HostName": self.hostname, f"{prefix}Port": self.web_port,
                f"{prefix}PrincipalURL": path, f"{prefix}UseSSL": self.web_tls,
                f"{prefix}Username": email,
            })
        identifier, profile_uuid = ident("profile")
        profile = {
            "PayloadType": "Configuration", "PayloadVersion": 1,
            "PayloadIdentifier": identifier, "PayloadUUID": profile_uuid,
            "PayloadDisplayName": f"{domain} mail, calendars and contacts",
            "PayloadDescription": f"Sets up {email} on {self.hostname}. You are asked for "
                                  "your password (or an app password) when installing.",
            "PayloadOrganization": domain, "PayloadRemovalDisallowed": False,
            "PayloadContent": payloads,
        }
        return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _text(element: Any, name: str) -> Optional[str]:
    """The text of the first descendant called ``name`` in any namespace."""
    for node in element.iter():
        if isinstance(node.tag, str) and node.tag.rsplit("}", 1)[-1] == name:
            return (node.text or "").strip()
    return None


class AutoconfigPages:
    """The public client-setup and MTA-STS routes.  ``serves_domain(conn, name)`` is
    AccountAdmin.serves_domain (canonical name of a local enabled domain, or None)."""

    app = Klein()

    def __init__(self, *, setup: ClientSetup, runner: Any,
                 serves_domain: Callable[[Any, str], Optional[str]], clock: Any,
                 pages: Any) -> None:
        self._pages = pages     # AccountPages: the site's error pages
        self.setup = setup
        self._runner = runner
        self._serves = serves_domain
        self._clock = clock

    def resource(self) -> Any:
        return self.app.resource()

    def _local(self, name: str) -> Any:
        return self._runner.read(self._serves, name)

    @staticmethod
    def _send(request: Any, body: bytes, content_type: bytes, code: int = 200) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", content_type)
        request.setHeader(b"Cache-Control", b"no-store" if code != 200 else b"max-age=3600")
        return body

    def _missing(self, request: Any, what: str) -> bytes:
        return self._send(request, f"{what}\n".encode(), b"text/plain; charset=utf-8", 404)

    # --- Thunderbird ----------------------------------------------------------------

    @app.route("/.well-known/autoconfig/mail/config-v1.1.xml", methods=["GET", "HEAD"])
    @app.route("/mail/config-v1.1.xml", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def thunderbird(self, request: Any) -> Any:
        address = form_field(request, "emailaddress")
        if "@" in address:
            wanted = address.rpartition("@")[2]
        else:
            host = request.host_name().lower()
            wanted = host[len("autoconfig."):] if host.startswith("autoconfig.") else ""
        domain = (yield self._local(wanted)) if wanted else None
        if domain is None:
            return self._missing(request, "No mail domain of this server: pass "
                                          "?emailaddress=you@your.domain")
        return self._send(request, self.setup.thunderbird(domain),
                          b"text/xml; charset=utf-8")

    # --- Outlook ----------------------------------------------------------------------

    @app.route("/autodiscover/autodiscover.xml", methods=["POST"])
    @app.route("/Autodiscover/Autodiscover.xml", methods=["POST"])
    @defer.inlineCallbacks
    def autodiscover(self, request: Any) -> Any:
        xml_type = b"text/xml; charset=utf-8"
        now = self._clock.seconds()
        request.content.seek(0)
        body = request.content.read(_MAX_AUTODISCOVER_BODY + 1)
        try:
            if len(body) > _MAX_AUTODISCOVER_BODY:
                raise ValueError("request too large")
            document = SafeET.fromstring(body)
        except Exception:   # defusedxml raises ParseError, DTDForbidden, EntitiesForbidden...
            return self._send(request, self.setup.autodiscover_error(
                600, "Invalid Request", now), xml_type, 400)
        email = _text(document, "EMailAddress") or ""
        schema = _text(document, "AcceptableResponseSchema") or AD_OUTLOOK
        if schema != AD_OUTLOOK:
            # MS-ASCMD §2.2.3.64: a schema we have no provider for (mobilesync: Exchange
            # ActiveSync, which we do not speak) gets ErrorCode 601, so the client goes on
            # to IMAP/SMTP setup instead of failing on an HTTP error.
            return self._send(request, self.setup.autodiscover_error(
                601, "Provider is not available", now), xml_type)
        domain = (yield self._local(email.rpartition("@")[2])) if "@" in email else None
        if domain is None:
            return self._send(request, self.setup.autodiscover_error(
                500, "The e-mail address cannot be found.", now), xml_type)
        return self._send(request, self.setup.outlook(email), xml_type)

    # --- MTA-STS ----------------------------------------------------------------------

    @app.route("/.well-known/mta-sts.txt", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def mta_sts(self, request: Any) -> Any:
        # RFC 8461 §3.3: served only at mta-sts.<Policy Domain>, as text/plain.
        host = request.host_name().lower().rstrip(".")
        domain = None
        if host.startswith("mta-sts."):
            domain = yield self._local(host[len("mta-sts."):])
        if domain is None:
            return self._missing(request, "No MTA-STS policy for this host name.")
        return self._send(request, self.setup.policy.text().encode(), b"text/plain")

    @app.handle_errors(HTTPException)  # type: ignore[arg-type]
    def http_error(self, request: Any, failure: Failure) -> Any:
        return self._pages.http_error(request, failure)

    @app.handle_errors(Exception)  # type: ignore[arg-type]
    def server_error(self, request: Any, failure: Failure) -> Any:
        return self._pages.server_error(request, failure)

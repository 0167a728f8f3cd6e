# -*- test-case-name: tests.test_dav_badinput -*-
"""XML in and out of the DAV server.

Requests are parsed with defusedxml: no DTDs, no entity declarations, no external references
(a billion-laughs body is refused before any expansion), and bodies above MAX_XML_SIZE are
refused before parsing.  Responses are built with ElementTree and fixed namespace prefixes
(some clients, old iOS among them, mishandle generated ``ns0:`` prefixes)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Iterable, Optional

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

__all__ = ["DAV", "CALDAV", "CARDDAV", "CS", "ICAL", "MAX_XML_SIZE", "BadXML", "parse",
           "el", "sub", "serialize", "multistatus", "response", "error_body"]

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"
ICAL = "http://apple.com/ns/ical/"
MAX_XML_SIZE = 1024 * 1024

for _prefix, _uri in (("D", DAV), ("C", CALDAV), ("CR", CARDDAV), ("CS", CS), ("ICAL", ICAL)):
    ET.register_namespace(_prefix, _uri)


class BadXML(ValueError):
    """Not well-formed, too large, or with DTDs/entities: 400."""


def parse(body: bytes) -> Optional[ET.Element]:
    """The request body's root element, or None when the body is empty."""
    if not body.strip():
        return None
    if len(body) > MAX_XML_SIZE:
        raise BadXML(f"the XML body is larger than {MAX_XML_SIZE} bytes")
    try:
        return SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except DefusedXmlException:
        raise BadXML("DTDs and entities are not accepted") from None
    except ET.ParseError as error:
        raise BadXML(f"the XML body is not well-formed: {error}") from None


def q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def el(tag: str, text: Optional[str] = None, children: Iterable[ET.Element] = ()
       ) -> ET.Element:
    node = ET.Element(tag)
    if text is not None:
        node.text = text
    node.extend(children)
    return node


def sub(parent: ET.Element, tag: str, text: Optional[str] = None) -> ET.Element:
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = text
    return node


def serialize(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8",
                                                                     xml_declaration=False)


def multistatus() -> ET.Element:
    return ET.Element(q(DAV, "multistatus"))


STATUS_TEXT = {200: "OK", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
               424: "Failed Dependency", 507: "Insufficient Storage"}


def status_line(code: int) -> str:
    return f"HTTP/1.1 {code} {STATUS_TEXT.get(code, '')}".rstrip()


def response(parent: ET.Element, href: str, found: Iterable[ET.Element] = (),
             missing: Iterable[ET.Element] = (), status: Optional[int] = None,
             others: Iterable[tuple[int, Iterable[ET.Element]]] = ()) -> ET.Element:
    """One DAV:response (RFC 4918 §14.24): propstats for found (200) and missing (404)
    properties, or a bare status."""
    node = sub(parent, q(DAV, "response"))
    sub(node, q(DAV, "href"), href)
    if status is not None:
        sub(node, q(DAV, "status"), status_line(status))
        return node
    for code, props in ((200, list(found)), (404, list(missing)),
                        *((c, list(p)) for c, p in others)):
        if not props:
            continue
        stat = sub(node, q(DAV, "propstat"))
        prop = sub(stat, q(DAV, "prop"))
        prop.extend(props)
        sub(stat, q(DAV, "status"), status_line(code))
    return node


def error_body(namespace: str, condition: str, description: str = "") -> bytes:
    """An RFC 4918 §16 precondition/postcondition error body."""
    root = ET.Element(q(DAV, "error"))
    sub(root, q(namespace, condition))
    if description:
        # RFC 4918 has no place for prose; sabre's s:message is what clients show.
        sub(root, q("http://sabredav.org/ns", "message"), description)
    return serialize(root)

# -*- test-case-name: tests.test_dav_badinput -*-
"""XML in and out of the DAV server.

Requests are parsed with defusedxml: no DTDs, no entity declarations, no external references
(a billion-laughs body is refused before any expansion), and bodies above MAX_XML_SIZE are
refused before parsing.  Responses are built with ElementTree and fixed namespace prefixes
(some clients, old iOS among them, mishandle generated ``ns0:`` prefixes)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Iterable, Optional, Union

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

__all__ = ["DAV", "CALDAV", "CARDDAV", "CS", "ICAL", "MAX_XML_SIZE", "BadXML", "parse",
           "el", "sub", "serialize", "multistatus", "response", "error_body", "Multistatus",
           "element_xml", "escape", "qname", "empty"]

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"
ICAL = "http://apple.com/ns/ical/"
MAX_XML_SIZE = 1024 * 1024

PREFIXES = {DAV: "D", CALDAV: "C", CARDDAV: "CR", CS: "CS", ICAL: "ICAL"}
for _uri, _prefix in PREFIXES.items():
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


# --- multistatus as text ----------------------------------------------------------------
# A 207 over thousands of members built as an ElementTree and serialized by it costs most
# of a PROPFIND or sync-collection (and tens of MB held at once); the members' responses
# are written as text instead, with the fixed prefixes declared once on the root.

_ROOT_OPEN = ('<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus' +
              "".join(f' xmlns:{p}="{u}"' for u, p in PREFIXES.items()) + ">")
_QNAMES: dict[str, tuple[str, str]] = {}


def escape(text: str) -> str:
    """Character data (as ElementTree escapes it)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _escape_attribute(text: str) -> str:
    return (escape(text).replace('"', "&quot;").replace("\r", "&#13;")
            .replace("\n", "&#10;").replace("\t", "&#09;"))


def qname(clark: str, extra: Optional[dict[str, str]] = None) -> tuple[str, str]:
    """(prefixed name, namespace declaration to put on the element or "") for a Clark
    name; namespaces other than ours get ``ns<n>`` prefixes declared where used."""
    known = _QNAMES.get(clark)
    if known is not None:
        return known
    if not clark.startswith("{"):
        return clark, ""
    uri, _, local = clark[1:].partition("}")
    prefix = "xml" if uri == "http://www.w3.org/XML/1998/namespace" else PREFIXES.get(uri)
    if prefix is not None:
        found = (f"{prefix}:{local}", "")
        if len(_QNAMES) < 4096:
            _QNAMES[clark] = found
        return found
    scope = extra if extra is not None else {}
    if uri in scope:
        return f"{scope[uri]}:{local}", ""
    prefix = f"ns{len(scope)}"
    scope[uri] = prefix
    return f"{prefix}:{local}", f' xmlns:{prefix}="{_escape_attribute(uri)}"'


def empty(clark: str) -> str:
    name, declaration = qname(clark)
    return f"<{name}{declaration} />"


def _write(node: ET.Element, out: list[str], scope: dict[str, str]) -> None:
    scope = dict(scope)
    name, declarations = qname(node.tag, scope)
    attributes = []
    for key, value in node.items():
        key_name, key_declaration = qname(key, scope)
        declarations += key_declaration
        attributes.append(f' {key_name}="{_escape_attribute(value)}"')
    out.append(f"<{name}{declarations}{''.join(attributes)}")
    if node.text is None and not len(node):
        out.append(" />")
    else:
        out.append(">")
        if node.text:
            out.append(escape(node.text))
        for child in node:
            _write(child, out, scope)
        out.append(f"</{name}>")
    if node.tail:
        out.append(escape(node.tail))


def element_xml(node: ET.Element) -> str:
    """One element as text inside our multistatus (our prefixes already declared)."""
    out: list[str] = []
    _write(node, out, {})
    return "".join(out)


Fragment = Union[str, ET.Element]


class Multistatus:
    """A 207 body written as text, one DAV:response at a time (RFC 4918 §14.16), and
    encoded in chunks as it grows: the body is never held as one string and its bytes
    besides."""

    _CHUNK = 512   # responses per encoded chunk

    def __init__(self) -> None:
        self._parts: list[str] = [_ROOT_OPEN]
        self._chunks: list[bytes] = []
        self._count = 0

    def response(self, href: str, found: Iterable[Fragment] = (),
                 missing: Iterable[str] = (), status: Optional[int] = None,
                 others: Iterable[tuple[int, Iterable[str]]] = (),
                 error: Optional[str] = None) -> None:
        """``found``: property elements or their text (200); ``missing``, ``others``:
        Clark names (404, or the code given); ``status``: a bare status, with ``error``
        the text of a DAV:error element's content."""
        out = self._parts
        out.append(f"<D:response><D:href>{escape(href)}</D:href>")
        if status is not None:
            out.append(f"<D:status>{status_line(status)}</D:status>")
            if error is not None:
                out.append(f"<D:error>{error}</D:error>")
            out.append("</D:response>")
            return
        groups: list[tuple[int, list[str]]] = [
            (200, [f if isinstance(f, str) else element_xml(f) for f in found]),
            (404, [empty(n) for n in missing])]
        groups += [(code, [empty(n) for n in names]) for code, names in others]
        for code, props in groups:
            if props:
                out.append("<D:propstat><D:prop>")
                out.extend(props)
                out.append(f"</D:prop><D:status>{status_line(code)}</D:status></D:propstat>")
        out.append("</D:response>")
        self._count += 1
        if self._count % self._CHUNK == 0:
            self._flush()

    def _flush(self) -> None:
        if self._parts:
            self._chunks.append("".join(self._parts).encode("utf-8"))
            self._parts = []

    def element(self, node: ET.Element) -> None:
        """A further child of the multistatus (DAV:sync-token)."""
        self._parts.append(element_xml(node))

    def chunks(self) -> list[bytes]:
        """The whole body, closed, as encoded chunks (written to the client one by one)."""
        self._parts.append("</D:multistatus>")
        self._flush()
        chunks, self._chunks = self._chunks, []
        return chunks

    def body(self) -> bytes:
        return b"".join(self.chunks())

# -*- test-case-name: tests.test_jmap_email_set -*-
"""An Email object of Email/set create (RFC 8621 §4.6) built into a MIME message.

``build(obj, blobs, now, domain)`` reads the creation object and returns the RFC 5322
bytes (CRLF, RFC 2047 encoded words for non-ASCII header text, RFC 2231 file names,
quoted-printable or base64 bodies where the content needs them, Date, Message-ID and
MIME-Version added when absent), or raises ``Invalid`` naming the property.  The body is
given either as ``bodyStructure`` or as ``textBody``/``htmlBody``/``attachments`` (§4.6:
not both), text parts by ``partId`` into ``bodyValues``, other parts by ``blobId``
(the caller fetched those bytes into ``blobs``).
"""

from __future__ import annotations

import email.policy
import email.utils
import secrets
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, Mapping, cast

__all__ = ["Invalid", "build", "blob_ids", "CREATE_PROPERTIES"]

_POLICY = email.policy.SMTP.clone(max_line_length=78, cte_type="7bit")  # 7-bit safe: QP/base64
_ADDRESS_PROPS = {"from": "From", "sender": "Sender", "to": "To", "cc": "Cc", "bcc": "Bcc",
                  "replyTo": "Reply-To"}
_ID_PROPS = {"messageId": "Message-ID", "inReplyTo": "In-Reply-To",
             "references": "References"}
CREATE_PROPERTIES = frozenset(
    {"mailboxIds", "keywords", "receivedAt", "headers", "subject", "sentAt", "bodyStructure",
     "bodyValues", "textBody", "htmlBody", "attachments"}
    | set(_ADDRESS_PROPS) | set(_ID_PROPS))
_PART_PROPS = frozenset({"partId", "blobId", "size", "headers", "name", "type", "charset",
                         "disposition", "cid", "language", "location", "subParts"})


class Invalid(ValueError):
    """invalidProperties for ``prop`` (a SetError the caller makes)."""

    def __init__(self, prop: str, why: str) -> None:
        super().__init__(f"{prop}: {why}")
        self.prop = prop


def _addresses(prop: str, value: Any) -> list[Address]:
    if not isinstance(value, list):
        raise Invalid(prop, "must be a list of EmailAddress objects")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("email"), str):
            raise Invalid(prop, "each address needs an email string")
        name = item.get("name")
        if name is not None and not isinstance(name, str):
            raise Invalid(prop, "an address name must be a string or null")
        try:
            out.append(Address(display_name=name or "", addr_spec=item["email"]))
        except (ValueError, IndexError, TypeError) as error:
            raise Invalid(prop, f"{item['email']!r} is not an email address") from error
        if "\r" in item["email"] or "\n" in item["email"] or "@" not in item["email"]:
            raise Invalid(prop, f"{item['email']!r} is not an email address")
    return out


def _ids(prop: str, value: Any) -> str:
    if not isinstance(value, list) or not all(
            isinstance(i, str) and i and not set(i) & set("<> \t\r\n") for i in value):
        raise Invalid(prop, "must be a list of message ids (without angle brackets)")
    return " ".join(f"<{i}>" for i in value)


def _date(prop: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise Invalid(prop, "must be a date string (RFC 3339)")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise Invalid(prop, "must be a date string (RFC 3339)") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _text(prop: str, value: Any) -> str:
    if not isinstance(value, str) or "\r" in value or "\n" in value:
        raise Invalid(prop, "must be a string on one line")
    return value


def _header_value(prop: str, form: str, value: Any) -> str:
    """A header property's value (§4.1.3 forms) as header text."""
    if form in ("Raw", "Text"):
        if not isinstance(value, str):
            raise Invalid(prop, "must be a string")
        if form == "Text":
            return _text(prop, value)
        return value.strip(" ")
    if form in ("Addresses",):
        return ", ".join(str(a) for a in _addresses(prop, value))
    if form == "MessageIds":
        return _ids(prop, value)
    if form == "Date":
        return email.utils.format_datetime(_date(prop, value))
    if form == "URLs":
        if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
            raise Invalid(prop, "must be a list of URLs")
        return ", ".join(f"<{u}>" for u in value)
    raise Invalid(prop, f"cannot be set as {form}")


def blob_ids(obj: Mapping[str, Any]) -> list[str]:
    """Every blobId the creation's body parts name (the caller fetches them)."""
    found: list[str] = []
    stack: list[Any] = []
    if isinstance(obj.get("bodyStructure"), dict):
        stack.append(obj["bodyStructure"])
    for prop in ("textBody", "htmlBody", "attachments"):
        if isinstance(obj.get(prop), list):
            stack.extend(obj[prop])
    while stack:
        part = stack.pop()
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("blobId"), str):
            found.append(part["blobId"])
        if isinstance(part.get("subParts"), list):
            stack.extend(part["subParts"])
    return found


class _Builder:
    def __init__(self, obj: Mapping[str, Any], blobs: Mapping[str, bytes]) -> None:
        self.values = obj.get("bodyValues") or {}
        if not isinstance(self.values, dict):
            raise Invalid("bodyValues", "must be an object")
        self.blobs = blobs
        self.used: set[str] = set()
        self.embeds: dict[str, bytes] = {}  # placeholder -> a message/rfc822 part's bytes

    def leaf(self, prop: str, part: Any) -> EmailMessage:
        if not isinstance(part, dict):
            raise Invalid(prop, "a body part must be an object")
        unknown = set(part) - _PART_PROPS
        if unknown and not all(k.startswith("header:") for k in unknown):
            raise Invalid(prop, f"unknown body part property {sorted(unknown)[0]!r}")
        kind = part.get("type")
        if kind is not None and (not isinstance(kind, str) or kind.count("/") != 1):
            raise Invalid(prop, "a part's type must be a media type like text/plain")
        out = EmailMessage(policy=_POLICY)
        if isinstance(part.get("subParts"), list):
            if kind is None or not kind.lower().startswith("multipart/"):
                raise Invalid(prop, "subParts need a multipart type")
            out["Content-Type"] = kind.lower()
            out.set_boundary(_boundary())
            out.set_payload(cast(Any, [self.leaf(prop, sub) for sub in part["subParts"]]))
            self._part_headers(prop, out, part)
            return out
        disposition = part.get("disposition")
        name = part.get("name")
        cid = part.get("cid")
        for key, value in (("disposition", disposition), ("name", name), ("cid", cid),
                           ("charset", part.get("charset")),
                           ("location", part.get("location"))):
            if value is not None and not isinstance(value, str):
                raise Invalid(prop, f"a part's {key} must be a string")
        has_id, has_blob = "partId" in part, "blobId" in part
        if has_id == has_blob:
            raise Invalid(prop, "a part needs either partId or blobId")
        extra: dict[str, Any] = {}
        if disposition:
            extra["disposition"] = disposition.lower()
        if name:
            extra["filename"] = name
            extra.setdefault("disposition", "attachment")
        if cid:
            extra["cid"] = f"<{cid.strip('<>')}>"
        if has_id:
            part_id = part["partId"]
            value = self.values.get(part_id) if isinstance(part_id, str) else None
            if not isinstance(value, dict) or not isinstance(value.get("value"), str):
                raise Invalid(prop, f"partId {part_id!r} has no bodyValues entry")
            if value.get("isTruncated") or value.get("isEncodingProblem"):
                raise Invalid("bodyValues", "isTruncated and isEncodingProblem must be false")
            kind = (kind or "text/plain").lower()
            main, sub = kind.split("/")
            if main != "text":
                raise Invalid(prop, "a part given by partId must be text/*")
            self.used.add(part_id)
            charset = part.get("charset") or "utf-8"
            text = value["value"].replace("\r\n", "\n")
            out.set_content(text, subtype=sub, charset=charset, **extra)
        else:
            blob_id = part["blobId"]
            data = self.blobs.get(blob_id) if isinstance(blob_id, str) else None
            if data is None:
                raise Invalid(prop, f"blobId {blob_id!r} not found")
            main, sub = (kind or "application/octet-stream").lower().split("/")
            if (main, sub) == ("message", "rfc822"):
                return self.embedded(prop, data, extra)
            if main == "text" and part.get("charset"):
                out.set_content(data, main, sub, cte="base64", **extra)
                out.set_param("charset", part["charset"])
            elif main in ("message", "multipart"):
                raise Invalid(prop, f"{kind} parts by blobId are not supported "
                                    "(message/rfc822 is)")
            else:
                out.set_content(data, main, sub, cte="base64", **extra)
        if part.get("language"):
            if not isinstance(part["language"], list):
                raise Invalid(prop, "a part's language must be a list")
            out["Content-Language"] = ", ".join(part["language"])
        if part.get("location"):
            out["Content-Location"] = part["location"]
        self._part_headers(prop, out, part)
        return out

    def embedded(self, prop: str, data: bytes, extra: dict[str, Any]) -> EmailMessage:
        """A message/rfc822 part carrying ``data`` byte for byte (a forward as attachment).
        RFC 2046 §5.2.1: no base64 or quoted-printable here, so 7bit or 8bit as the bytes
        are; the generator writes a placeholder that ``build`` swaps for the bytes."""
        if b"\n" not in data[:65536] or b":" not in data.split(b"\n", 1)[0]:
            raise Invalid(prop, "a message/rfc822 blob must be an RFC 5322 message")
        out = EmailMessage(policy=_POLICY)
        out["Content-Type"] = "message/rfc822"
        out["Content-Transfer-Encoding"] = "8bit" if any(b > 127 for b in data) else "7bit"
        disposition = extra.get("disposition") or "attachment"
        if extra.get("filename"):
            out.add_header("Content-Disposition", disposition, filename=extra["filename"])
        else:
            out["Content-Disposition"] = disposition
        if extra.get("cid"):
            out["Content-ID"] = extra["cid"]
        marker = "=_embedded_" + secrets.token_hex(16)
        self.embeds[marker] = data if data.endswith(b"\n") else data + b"\r\n"
        out.set_payload(marker + "\r\n")
        return out

    def _part_headers(self, prop: str, out: EmailMessage, part: Mapping[str, Any]) -> None:
        for key, value in part.items():
            if key.startswith("header:"):
                name, form = _header_key(prop, key)
                if name.lower().startswith("content-"):
                    raise Invalid(prop, f"{name} is set from the part's properties")
                out[name] = _header_value(prop, form, value)

    def alternatives(self, obj: Mapping[str, Any]) -> EmailMessage:
        """textBody/htmlBody/attachments (§4.6): alternative, related, mixed as needed."""
        text = obj.get("textBody") or []
        html = obj.get("htmlBody") or []
        attachments = obj.get("attachments") or []
        for prop, value in (("textBody", text), ("htmlBody", html),
                            ("attachments", attachments)):
            if not isinstance(value, list):
                raise Invalid(prop, "must be a list of body parts")
        if len(text) > 1 or len(html) > 1:
            raise Invalid("textBody" if len(text) > 1 else "htmlBody",
                          "at most one part (§4.6)")
        if text and (text[0].get("type") or "text/plain").lower() != "text/plain":
            raise Invalid("textBody", "the part must be text/plain")
        if html and (html[0].get("type") or "").lower() != "text/html":
            raise Invalid("htmlBody", "the part must be text/html (give its type)")
        bodies = ([self.leaf("textBody", text[0])] if text else []) + (
            [self.leaf("htmlBody", html[0])] if html else [])
        if not bodies:
            body = EmailMessage(policy=_POLICY)
            body.set_content("")
        elif len(bodies) == 1:
            body = bodies[0]
        else:
            body = _multipart("alternative", bodies)
        inline = [a for a in attachments if isinstance(a, dict) and a.get("cid")
                  and (a.get("disposition") or "inline").lower() == "inline"]
        others = [a for a in attachments if not any(a is i for i in inline)]
        if inline:
            body = _multipart("related", [body] + [self.leaf("attachments", a)
                                                   for a in inline])
        if others:
            body = _multipart("mixed", [body] + [self.leaf("attachments", a)
                                                 for a in others])
        return body


def _boundary() -> str:
    """A delimiter no body can contain by chance (RFC 2046 §5.1.1); "=_" never appears in
    quoted-printable or base64 text."""
    return "=_" + secrets.token_hex(16)


def _multipart(subtype: str, parts: list[EmailMessage]) -> EmailMessage:
    out = EmailMessage(policy=_POLICY)
    out["Content-Type"] = f"multipart/{subtype}"
    out.set_boundary(_boundary())
    out.set_payload(cast(Any, parts))
    return out


def _header_key(prop: str, key: str) -> tuple[str, str]:
    pieces = key.split(":")
    if len(pieces) not in (2, 3) or not pieces[1]:
        raise Invalid(prop if prop else key, f"bad header property {key!r}")
    form = "Raw"
    if len(pieces) == 3:
        if not pieces[2].startswith("as"):
            raise Invalid(key, ":all cannot be set; give the field once")
        form = pieces[2][2:]
    return pieces[1], form


def build(obj: Mapping[str, Any], blobs: Mapping[str, bytes], now: datetime,
          domain: str) -> bytes:
    """The message for a creation object; ``Invalid`` naming the property otherwise."""
    for key in obj:
        if key not in CREATE_PROPERTIES and not key.startswith("header:"):
            if key in ("id", "blobId", "threadId", "size", "preview", "hasAttachment"):
                raise Invalid(key, "is set by the server")
            raise Invalid(key, "unknown property")
    if "bodyStructure" in obj and any(k in obj for k in ("textBody", "htmlBody",
                                                           "attachments")):
        raise Invalid("bodyStructure", "give bodyStructure or textBody/htmlBody/"
                                       "attachments, not both")
    builder = _Builder(obj, blobs)
    if "bodyStructure" in obj:
        message = builder.leaf("bodyStructure", obj["bodyStructure"])
    else:
        message = builder.alternatives(obj)
    head: list[tuple[str, str]] = []
    for prop, name in _ADDRESS_PROPS.items():
        if obj.get(prop) is not None:
            head.append((name, ", ".join(str(a) for a in _addresses(prop, obj[prop]))))
    if obj.get("subject") is not None:
        head.append(("Subject", _text("subject", obj["subject"])))
    if obj.get("sentAt") is not None:
        head.append(("Date", email.utils.format_datetime(_date("sentAt", obj["sentAt"]))))
    for prop in ("messageId", "inReplyTo", "references"):
        if obj.get(prop) is not None:
            head.append((_ID_PROPS[prop], _ids(prop, obj[prop])))
    headers = obj.get("headers")
    if headers is not None:
        if not isinstance(headers, list) or not all(
                isinstance(h, dict) and isinstance(h.get("name"), str)
                and isinstance(h.get("value"), str) for h in headers):
            raise Invalid("headers", "must be a list of {name, value}")
        head.extend((h["name"], h["value"].strip(" ")) for h in headers)
    for key, value in obj.items():
        if key.startswith("header:"):
            name, form = _header_key(key, key)
            head.append((name, _header_value(key, form, value)))
    given = {name.lower() for name, _ in head}
    if "date" not in given:  # RFC 5322 §3.6: Date and (SHOULD) Message-ID
        head.append(("Date", email.utils.format_datetime(now)))
    if "message-id" not in given:
        head.append(("Message-ID", email.utils.make_msgid(domain=domain)))
    names = [name.lower() for name, _ in head]
    for name in ("date", "message-id", "from", "subject", "to", "cc", "sender", "bcc",
                 "reply-to", "in-reply-to", "references"):
        if names.count(name) > 1:
            raise Invalid(f"header:{name}", "given twice")
    if any(n.startswith("content-") or n == "mime-version" for n in names):
        raise Invalid("headers", "Content-* fields come from the body parts")
    unused = set(builder.values) - builder.used
    if unused:
        raise Invalid("bodyValues", f"no part uses {sorted(unused)[0]!r}")
    top = EmailMessage(policy=_POLICY)
    for name, value in head:
        if "\r" in value.replace("\r\n ", "").replace("\r\n\t", "") or "\n" in value.replace(
                "\r\n ", "").replace("\r\n\t", ""):
            raise Invalid(f"header:{name}", "must not contain line breaks")
        top[name] = value
    top["MIME-Version"] = "1.0"
    for name, value in message.items():
        if name.lower() != "mime-version":  # set_content adds one to a lone part
            top[name] = value
    top.set_payload(message.get_payload())
    if message.preamble is not None:
        top.preamble = message.preamble
    raw = top.as_bytes(policy=_POLICY)
    for marker, data in builder.embeds.items():
        raw = raw.replace(marker.encode("ascii") + b"\r\n", data, 1)
    return raw

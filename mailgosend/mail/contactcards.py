# -*- test-case-name: tests.test_webmail_contacts -*-
"""Contacts as the webmail edits them, over vCards (RFC 2426 vCard 3.0, RFC 6350 vCard 4.0),
parsed and written with vobject.

Pure functions over text: no reactor, no database.  ``Contact`` is the plain view the page
shows; ``apply`` edits a parsed card in place, so properties the page does not know (X-
properties, Apple's grouped labels, CATEGORIES, URLs, other clients' IMPP...) survive an edit
made in the browser.  Only the properties the page manages are replaced, and an email or
phone whose value did not change keeps its original line (group, PREF and other parameters).

vobject reads a vCard 4.0 ``PHOTO:data:image/png;base64,...`` as escaped text and cuts it at
the comma, so URI-valued media properties are protected before parsing and after writing
(``_protect``/``_unprotect``).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import vobject

__all__ = ["Contact", "ContactError", "EMAIL_TYPES", "PHONE_TYPES", "MAX_PHOTO",
           "parse", "parse_many", "contact_of", "apply", "new_card", "serialize",
           "photo_of", "set_photo", "image_type", "validate_fields"]

EMAIL_TYPES = ("home", "work", "other")
PHONE_TYPES = ("cell", "home", "work", "fax", "other")
MAX_PHOTO = 1024 * 1024
_MEDIA = ("PHOTO", "LOGO", "SOUND", "KEY")
_MEDIA_LINE = re.compile(r"^((?:[A-Za-z0-9-]+\.)?(?:PHOTO|LOGO|SOUND|KEY))([;:])",
                         re.IGNORECASE)
_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")
_LIMITS = {"name": 500, "org": 500, "note": 10_000, "value": 320, "address": 500}
_IMAGES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
           (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


class ContactError(ValueError):
    """Bad input; ``field`` names what was wrong, for the page to show beside it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class Contact:
    uid: str
    name: str
    emails: list[dict[str, str]] = field(default_factory=list)   # {"value", "type"}
    phones: list[dict[str, str]] = field(default_factory=list)
    org: str = ""
    address: dict[str, str] = field(default_factory=dict)   # street, city, region, code, country
    note: str = ""
    birthday: str = ""    # YYYY-MM-DD, or "" (partial dates are shown as written)
    photo: bool = False
    version: str = "3.0"

    def as_json(self) -> dict[str, Any]:
        return {"uid": self.uid, "name": self.name, "emails": self.emails,
                "phones": self.phones, "org": self.org, "address": self.address,
                "note": self.note, "birthday": self.birthday, "photo": self.photo,
                "version": self.version}


# --- parsing and writing ----------------------------------------------------------------------

def _unfold(text: str) -> list[str]:
    # RFC 6350 §3.2: a line break followed by one space or tab continues the line.
    return re.sub(r"\r?\n[ \t]", "", text).splitlines()


def _split_value(line: str) -> tuple[str, str]:
    """(name and parameters, value): the first colon outside a quoted parameter value."""
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[:i], line[i + 1:]
    return line, ""


def _protect(text: str) -> str:
    out = []
    for line in _unfold(text):
        head, value = _split_value(line)
        if _MEDIA_LINE.match(line) and ":" in value:    # a URI value (data:, http:)
            line = head + ":" + value.replace(",", "\\,").replace(";", "\\;")
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def _unprotect(text: str) -> str:
    """Undo ``_protect`` on vobject's output; every other line keeps vobject's folding."""
    out = []
    for raw in re.split(r"\r?\n(?![ \t])", text.rstrip("\r\n")):
        line = re.sub(r"\r?\n[ \t]", "", raw)
        head, value = _split_value(line)
        if _MEDIA_LINE.match(line) and ":" in value and "ENCODING=" not in head.upper():
            raw = head + ":" + value.replace("\\,", ",").replace("\\;", ";")
        out.append(raw)
    return "\r\n".join(out) + "\r\n"


def parse(data: bytes | str) -> Any:
    """One vCard (vobject component); ContactError("vcard") when it is not one."""
    cards = list(parse_many(data))
    if len(cards) != 1:
        raise ContactError("vcard", "one vCard was expected")
    return cards[0]


def parse_many(data: bytes | str) -> Iterator[Any]:
    """Every vCard of a .vcf file, in order."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise ContactError("file", "the file is not UTF-8 text") from None
    try:
        found = list(vobject.readComponents(_protect(text), ignoreUnreadable=False))
    except Exception as error:   # vobject raises ParseError, ValidateError and others
        raise ContactError("file", f"not a valid vCard file ({error})") from None
    for card in found:
        if card.name != "VCARD":
            raise ContactError("file", f"a {card.name} is not a vCard")
        yield card


def serialize(card: Any) -> bytes:
    return _unprotect(card.serialize()).encode("utf-8")


def _version(card: Any) -> str:
    return str(getattr(getattr(card, "version", None), "value", "3.0") or "3.0")


def _lines(card: Any, name: str) -> list[Any]:
    return list(card.contents.get(name, []))


def _text(card: Any, name: str) -> str:
    found = _lines(card, name)
    if not found:
        return ""
    value = found[0].value
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value if v)
    return str(value)


def _type_of(line: Any, known: Sequence[str]) -> str:
    types = [t.lower() for value in line.params.get("TYPE", []) for t in value.split(",")]
    for kind in types:
        if kind in known:
            return kind
        if kind == "mobile" and "cell" in known:
            return "cell"
    return "other"


def contact_of(card: Any) -> Contact:
    """What the page shows of a card."""
    address: dict[str, str] = {}
    adr = _lines(card, "adr")
    if adr and hasattr(adr[0].value, "street"):
        value = adr[0].value
        for key in ("street", "city", "region", "code", "country"):
            part = getattr(value, key, "")
            address[key] = ", ".join(part) if isinstance(part, list) else str(part or "")
    birthday = _text(card, "bday")
    match = _DATE.match(birthday[:10]) if birthday else None
    return Contact(
        uid=_text(card, "uid"), name=_text(card, "fn"),
        emails=[{"value": str(e.value), "type": _type_of(e, EMAIL_TYPES)}
                for e in _lines(card, "email") if str(e.value).strip()],
        phones=[{"value": str(t.value), "type": _type_of(t, PHONE_TYPES)}
                for t in _lines(card, "tel") if str(t.value).strip()],
        org=_text(card, "org"), address=address, note=_text(card, "note"),
        birthday="-".join(match.groups()) if match else birthday,
        photo=photo_of(card) is not None, version=_version(card))


def new_card(uid: Optional[str] = None) -> Any:
    """An empty vCard 3.0 (what Apple, Thunderbird and DAVx5 all read) with a fresh UID."""
    card = vobject.vCard()
    card.add("version").value = "3.0"
    card.add("uid").value = uid or f"urn:uuid:{_uuid4()}"
    card.add("prodid").value = "-//mailgosend//webmail contacts//EN"
    return card


def _uuid4() -> str:
    raw = bytearray(secrets.token_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --- the page's fields -------------------------------------------------------------------------

def _string(fields: dict[str, Any], name: str, limit: int) -> str:
    value = fields.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ContactError(name, "must be text")
    value = value.strip()
    if len(value) > limit:
        raise ContactError(name, f"at most {limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise ContactError(name, "control characters are not allowed")
    return value


def _entries(fields: dict[str, Any], name: str, types: Sequence[str]
             ) -> list[dict[str, str]]:
    value = fields.get(name, [])
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 50:
        raise ContactError(name, "must be a list of at most 50 entries")
    out = []
    for i, entry in enumerate(value):
        where = f"{name}/{i}"
        if not isinstance(entry, dict):
            raise ContactError(where, "must be an object with value and type")
        text = _string(entry, "value", _LIMITS["value"]) if "value" in entry else ""
        if "\n" in text:
            raise ContactError(f"{where}/value", "must be one line")
        kind = entry.get("type") or "other"
        if kind not in types:
            raise ContactError(f"{where}/type", f"one of {', '.join(types)}")
        if not text:
            continue    # an empty row of the form
        if name == "emails" and not re.fullmatch(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.?[^@\s<>,;\"]*",
                                                 text):
            raise ContactError(f"{where}/value", "not an email address")
        if name == "phones" and not re.fullmatch(r"[0-9+()./ #*pwxA-Za-z;,-]+", text):
            raise ContactError(f"{where}/value", "not a phone number")
        out.append({"value": text, "type": kind})
    return out


def validate_fields(fields: Any) -> dict[str, Any]:
    """The page's JSON, checked: ContactError naming the first bad field."""
    if not isinstance(fields, dict):
        raise ContactError("contact", "must be a JSON object")
    clean: dict[str, Any] = {
        "name": _string(fields, "name", _LIMITS["name"]).replace("\n", " "),
        "emails": _entries(fields, "emails", EMAIL_TYPES),
        "phones": _entries(fields, "phones", PHONE_TYPES),
        "org": _string(fields, "org", _LIMITS["org"]).replace("\n", " "),
        "note": _string(fields, "note", _LIMITS["note"]),
        "birthday": _string(fields, "birthday", 10),
    }
    address = fields.get("address") or {}
    if not isinstance(address, dict):
        raise ContactError("address", "must be an object")
    clean["address"] = {key: _string(address, key, _LIMITS["address"]).replace("\n", " ")
                        if key != "street" else _string(address, key, _LIMITS["address"])
                        for key in ("street", "city", "region", "code", "country")}
    for key in address:
        if key not in clean["address"]:
            raise ContactError(f"address/{key}", "unknown part of an address")
    if clean["birthday"] and not _DATE.fullmatch(clean["birthday"]):
        raise ContactError("birthday", "a date as YYYY-MM-DD")
    if not clean["name"]:
        first = clean["emails"][0]["value"] if clean["emails"] else clean["org"]
        if not first:
            raise ContactError("name", "a name, an email address or an organisation is "
                                       "needed")
        clean["name"] = first
    return clean


def _set_single(card: Any, name: str, value: Any) -> None:
    lines = _lines(card, name)
    if value in ("", None):
        for line in lines:
            card.remove(line)
        return
    if lines:
        lines[0].value = value
        for extra in lines[1:]:
            card.remove(extra)
    else:
        card.add(name).value = value


def _type_param(kind: str, version: str) -> str:
    # RFC 2426 §3.3.1 writes TYPE values upper case; RFC 6350 §5.6 lower case.
    return kind.upper() if version.startswith("3") else kind


def _set_entries(card: Any, name: str, entries: list[dict[str, str]],
                 types: Sequence[str]) -> None:
    """Replace the card's EMAIL or TEL lines; a line whose value is kept stays as it was
    (group, PREF, other parameters), its TYPE changed only when the type did."""
    version = _version(card)
    existing = _lines(card, name)
    kept: list[Any] = []
    for entry in entries:
        same = next((line for line in existing if line not in kept and
                     str(line.value).strip().lower() == entry["value"].lower()), None)
        if same is not None:
            kept.append(same)
            same.value = entry["value"]
            if _type_of(same, types) != entry["type"]:
                others = [t for value in same.params.get("TYPE", []) for t in value.split(",")
                          if t.lower() not in types and t.lower() != "mobile"]
                same.params["TYPE"] = others + ([_type_param(entry["type"], version)]
                                                if entry["type"] != "other" else [])
                if not same.params["TYPE"]:
                    del same.params["TYPE"]
            continue
        line = card.add(name)
        line.value = entry["value"]
        if name == "email" and version.startswith("3"):
            line.params["TYPE"] = ["INTERNET"]
        if entry["type"] != "other":
            line.params.setdefault("TYPE", []).append(_type_param(entry["type"], version))
        kept.append(line)
    for line in existing:
        if line not in kept:
            card.remove(line)


def apply(card: Any, fields: dict[str, Any]) -> Any:
    """Edit ``card`` in place with validated ``fields`` (``validate_fields``); the
    properties the page does not manage are left alone."""
    name = fields["name"]
    old_name = _text(card, "fn")
    _set_single(card, "fn", name)
    if not _lines(card, "n") or old_name != name:
        # N is required in vCard 3.0 (RFC 2426 §3.1.2): family name last word, a guess.
        words = name.split()
        family = words[-1] if len(words) > 1 else ""
        given = " ".join(words[:-1]) if len(words) > 1 else name
        for line in _lines(card, "n"):
            card.remove(line)
        card.add("n").value = vobject.vcard.Name(family=family, given=given)
    _set_entries(card, "email", fields["emails"], EMAIL_TYPES)
    _set_entries(card, "tel", fields["phones"], PHONE_TYPES)
    org = fields["org"]
    if org != _text(card, "org"):
        _set_single(card, "org", [org] if org else "")
    address = fields["address"]
    if any(address.values()):
        if contact_of(card).address != address:
            _set_single(card, "adr", vobject.vcard.Address(**address))
    else:
        _set_single(card, "adr", "")
    _set_single(card, "note", fields["note"])
    if fields["birthday"] != contact_of(card).birthday:
        _set_single(card, "bday", fields["birthday"])
    return card


# --- photos --------------------------------------------------------------------------------------

def image_type(data: bytes) -> Optional[str]:
    """The media type of an image by its first bytes (never by what the client claims)."""
    for magic, media in _IMAGES:
        if data.startswith(magic):
            return media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def photo_of(card: Any) -> Optional[tuple[bytes, str]]:
    """(image bytes, media type) of the card's first PHOTO held inline, else None (a photo
    by URL is never fetched)."""
    for line in _lines(card, "photo"):
        value = line.value
        if isinstance(value, bytes):
            data = value
        elif isinstance(value, str) and value.startswith("data:") and "," in value:
            meta, _, payload = value[5:].partition(",")
            if not meta.endswith(";base64"):
                continue
            try:
                data = base64.b64decode(payload, validate=False)
            except (binascii.Error, ValueError):
                continue
        else:
            continue
        media = image_type(data)
        if media is not None:
            return data, media
    return None


def set_photo(card: Any, data: Optional[bytes]) -> Any:
    """Replace the card's PHOTO (None removes it): vCard 3.0 as ENCODING=b (RFC 2426
    §3.1.4), vCard 4.0 as a data: URI (RFC 6350 §6.2.4)."""
    for line in _lines(card, "photo"):
        card.remove(line)
    if data is None:
        return card
    media = image_type(data)
    if media is None:
        raise ContactError("photo", "a JPEG, PNG, GIF or WebP image is needed")
    if len(data) > MAX_PHOTO:
        raise ContactError("photo", f"at most {MAX_PHOTO // 1024} KB")
    line = card.add("photo")
    if _version(card).startswith("3"):
        line.encoding_param = "b"
        line.type_param = media.split("/")[1].upper()
        line.value = data
    else:
        line.value = f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"
    return card

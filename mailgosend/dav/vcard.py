# -*- test-case-name: tests.test_dav_carddav -*-
"""vCards for CardDAV (RFC 6352): validation of what is PUT (vCard 3.0 and 4.0, parsed with
vobject) and the text-match of addressbook-query (§10.5)."""

from __future__ import annotations

import unicodedata
from typing import Any

import vobject

from mailgosend.mail.dav import ObjectFacts

__all__ = ["InvalidVCard", "validate", "text_match", "property_values"]

VERSIONS = ("3.0", "4.0")


class InvalidVCard(ValueError):
    """``condition``: the RFC 6352 §6.3.2.1 precondition (CARDDAV namespace)."""

    def __init__(self, message: str, condition: str = "valid-address-data") -> None:
        super().__init__(message)
        self.condition = condition


def _parse(data: bytes) -> Any:
    return vobject.readOne(data.decode("utf-8"), ignoreUnreadable=False)


def validate(data: bytes) -> ObjectFacts:
    try:
        card = _parse(data)
    except UnicodeDecodeError:
        raise InvalidVCard("the vCard is not UTF-8") from None
    except Exception as error:   # vobject raises ParseError and others
        raise InvalidVCard(f"not a valid vCard: {error}") from None
    if card.name != "VCARD":
        raise InvalidVCard("the object is not a VCARD")
    version = getattr(getattr(card, "version", None), "value", None)
    if version not in VERSIONS:
        raise InvalidVCard("the vCard needs VERSION 3.0 or 4.0", "supported-address-data")
    if "fn" not in card.contents:
        raise InvalidVCard("the vCard needs an FN property")
    uid = str(getattr(getattr(card, "uid", None), "value", "") or "").strip()
    if not uid or len(uid) > 255:
        raise InvalidVCard("the vCard needs a UID of at most 255 characters")
    return ObjectFacts(uid=uid, component="VCARD")


def _fold(text: str) -> str:
    """i;unicode-casemap (RFC 5051), close enough: NFKD and case folding."""
    return unicodedata.normalize("NFKD", text).casefold()


def property_values(data: bytes, name: str) -> list[str]:
    card = _parse(data)
    values = []
    for prop in card.contents.get(name.lower(), []):
        value = prop.value
        if isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        values.append(str(value))
    return values


def text_match(value: str, needle: str, match_type: str = "contains",
               collation: str = "i;unicode-casemap") -> bool:
    """RFC 6352 §10.5.4 (match types from RFC 6352, collations RFC 4790)."""
    if collation == "i;octet":
        haystack, wanted = value, needle
    else:
        haystack, wanted = _fold(value), _fold(needle)
    if match_type == "equals":
        return haystack == wanted
    if match_type == "starts-with":
        return haystack.startswith(wanted)
    if match_type == "ends-with":
        return haystack.endswith(wanted)
    return wanted in haystack

# -*- test-case-name: tests.test_imap_search_index -*-
"""Substring search through the blind index: IMAP SEARCH BODY and TEXT (RFC 3501 §6.4.4,
RFC 9051 §6.4.4), exact.

IMAP matches a *substring*, case-insensitively, anywhere: ``SEARCH BODY oo`` finds "foo".
The JMAP tokens (searchtext.py) are word *prefixes*, which cannot prove that a message lacks
a substring starting mid-word, and they are made from a different text (HTML without its
markup, attachments skipped, the first MAX_BODY_CHARS only).  So IMAP has tokens of its own,
made from exactly the text the scan compares with:

- the text IMAP reads: ``body_text`` (every text/* leaf, transfer- and charset-decoded,
  case-folded, joined by newlines; markup and attachments included) and ``header_lines``
  ("name: decoded value" of each top-level field, case-folded) for TEXT;
- its words are the runs of ``\\w`` characters; every 3-character substring (trigram) of
  every word is indexed, as HMAC(user's search key, tag + NUL + trigram) (tags "B" for the
  body, "H" for the header lines, apart from the JMAP tags), and a marker token says the
  message's IMAP tokens are complete.

Why this is exact: if a needle occurs in the text, each maximal run of word characters in
the needle lies inside one word of the text (its characters are consecutive there and are
all word characters), so each of its trigrams is a trigram of that word and is indexed.  A
message whose marker is present but which lacks one of them cannot match; every other
message (no marker: stored before, not yet backfilled, or too long to index) is a candidate.
Candidates are then matched by the scan itself, so the index only ever removes messages
that cannot match.  A needle without a 3-character word run (``BODY "a."``) cannot be looked
up: the scan reads every message, as before.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Optional

from sqlalchemy.engine import Connection

from mailgosend.mail.headers import decode_field, parse_header_block
from mailgosend.mail.searchtext import KEY_PURPOSE, token_hash
from mailgosend.mail.source import MessageSource
from mailgosend.mail.text import TextParts, decode_part, text_parts
from mailgosend.store import search as search_store
from mailgosend.store.mimeinfo import MessageInfo

__all__ = ["BODY", "HEADER", "MAX_INDEXED_CHARS", "body_text", "candidate_blobs",
           "Lookup", "header_lines", "imap_grams", "imap_tokens", "needle_tokens"]

BODY, HEADER = "B", "H"
GRAM = 3
# Text longer than this (decoded, per message) gets no marker: such a message is scanned.
MAX_INDEXED_CHARS = 4_000_000
_MARKER = ("M", "imap-substring-1")
_WORD = re.compile(r"\w+")


def body_text(parts: TextParts, read: Callable[[int, int], bytes], size: int) -> str:
    """What SEARCH BODY compares with (imap/search.py reads it through this function), from
    where the text is (``text_parts``) and ``read(start, end)`` of the plaintext."""
    return "\n".join(decode_part(read(start, min(end, size)), encoding, codec).casefold()
                     for start, end, encoding, codec in parts)


def header_lines(block: bytes) -> list[tuple[str, str]]:
    """(name, decoded case-folded value) per top-level field: TEXT compares the needle with
    "name: value" of each (imap/search.py reads them through this function)."""
    return [(name, decode_field(raw.partition(b":")[2])) for name, raw in parse_header_block(block)]


def _grams(texts: Iterable[str]) -> set[str]:
    grams: set[str] = set()
    for text in texts:
        for word in set(_WORD.findall(text)):
            grams.update(word[i:i + GRAM] for i in range(len(word) - GRAM + 1))
    return grams


# A message's trigrams: (body, header lines, whether the text was short enough to be
# complete); the same for every recipient, hashed under each one's key.
Grams = tuple[frozenset[str], frozenset[str], bool]


def imap_grams(info: MessageInfo, read: Callable[[int, int], bytes], size: int) -> Grams:
    """The trigrams of one message's IMAP text (worker or database thread)."""
    body = body_text(text_parts(info.root), read, size)
    root = info.root
    headers = [f"{name}: {value}" for name, value in
               header_lines(read(root.header_start, root.body_start))]
    return (frozenset(_grams([body])), frozenset(_grams(headers)),
            len(body) + sum(map(len, headers)) <= MAX_INDEXED_CHARS)


def imap_tokens(key: bytes, grams: Grams) -> set[bytes]:
    """The IMAP tokens of one message under one user's key (at delivery and in the
    backfill); without the marker when the text was too long to index."""
    body, headers, complete = grams
    tokens = {token_hash(key, BODY, gram) for gram in body}
    tokens.update(token_hash(key, HEADER, gram) for gram in headers)
    if complete:
        tokens.add(token_hash(key, *_MARKER))
    return tokens


def needle_tokens(key: bytes, tag: str, needle: str) -> list[bytes]:
    """The tokens a message whose ``tag`` text contains ``needle`` (case-folded) holds;
    empty when the needle has no word run of GRAM characters."""
    return sorted({token_hash(key, tag, gram) for gram in _grams([needle])})


# What the index says of one needle, for a whole SEARCH command: (the user's blobs whose
# IMAP tokens are complete, those of them that may contain the needle).  A blob's tokens never
# change once stored, so the answer stays sound for the rest of the command: a message indexed
# meanwhile is outside the first set and is read.
Lookup = tuple[frozenset[str], frozenset[str]]


def candidate_blobs(source: MessageSource, tags: tuple[str, ...], needle: str
                    ) -> Optional[Lookup]:
    """Database thread (a ``read_messages`` job): the index's answer for ``needle`` in the
    text of any of ``tags``; a message may contain it if its blob is not in the first set or
    is in the second.  None: the index cannot narrow this needle."""
    key = source.keyring.derive(KEY_PURPOSE, source.user.uuid)
    per_tag = [needle_tokens(key, tag, needle) for tag in tags]
    if not all(per_tag) or not isinstance(source.storage, Connection):
        return None
    conn, user_id = source.storage, source.user.id
    indexed = search_store.documents_with_all(conn, user_id, [token_hash(key, *_MARKER)])
    allowed: set[str] = set()
    for tokens in per_tag:
        allowed |= search_store.documents_with_all(conn, user_id, tokens) & indexed
    return frozenset(indexed), frozenset(allowed)

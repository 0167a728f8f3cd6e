# -*- test-case-name: tests.test_jmap_query_search -*-
"""Search text: what a message says, the words a search looks for, the keyed tokens of the
search index, and the exact match that confirms the index's candidates.

Semantics (RFC 8621 §4.4.1 leaves them to the server; these are Fastmail's, word prefixes):

- Text is read case-insensitively (Unicode case folding) as *words*: runs of letters, digits
  and underscores (``\\w``).  RFC 2047 words in headers are decoded first; text/html is read
  without its markup.
- A filter value is split at white space into terms, and every term must be present.  A term
  matches a word that *starts with* it: ``bus`` finds "buses" and "business", not "omnibus".
  A term with punctuation inside is a run of words that must follow each other, the last one
  again a prefix: ``alice@exa`` finds "alice@example.com".
- Text in double or single quotes is a phrase: its words, exactly and in order (``\\`` escapes
  a quote or backslash inside).
- ``from``/``to``/``cc``/``bcc`` look in the header as written (display names and addresses);
  ``subject`` in the decoded subject; ``body`` in the text parts (the first ``MAX_BODY_CHARS``
  characters); ``text`` in all of these.

The index: for every word of every field, HMAC-SHA256(user's "search" key, field tag + NUL +
the word's first L characters) cut to ``HASH_BYTES``, for each L in ``LEVELS`` the word is long
enough for.  A term word of length n is looked up by its prefix at the largest level <= n; a
word shorter than the first level cannot be looked up (the search then reads the candidates
the other conditions leave).  Because of the prefix levels and the truncated hash, the index
only ever proposes candidates: ``Document.matches`` decides, on the decrypted text.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

from mailgosend.mail.sortkeys import decode_words  # the one RFC 2047 decoder, SORT's too
from mailgosend.mail.text import decode_part, part_codec, text_leaves
from mailgosend.store.mimeinfo import MessageInfo

__all__ = ["FIELDS", "HASH_BYTES", "KEY_PURPOSE", "LEVELS", "MAX_BODY_CHARS", "Document",
           "Term", "document_tokens", "extract_document", "highlight", "lookup_tokens",
           "parse_terms", "token_hash"]

KEY_PURPOSE = "search"
LEVELS = (3, 6)
HASH_BYTES = 8
MAX_BODY_CHARS = 200_000
PREVIEW_OCTETS = 255  # RFC 8621 §5: a preview is at most 255 octets
# Field -> tag in the token; the order is the order ``text`` looks in.
FIELDS = {"subject": "s", "from": "f", "to": "t", "cc": "c", "bcc": "x", "body": "b"}

_WORD = re.compile(r"\w+")
_HTML_DROP = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>|<!--.*?-->")
_HTML_TAG = re.compile(r"(?s)<[^>]*>")
_WSP = re.compile(r"\s+")


@dataclass(frozen=True)
class Term:
    """Words that must follow each other; the last is a prefix unless ``phrase``."""

    words: tuple[str, ...]
    phrase: bool = False


def parse_terms(value: str) -> list[Term]:
    """The terms of a filter string (see the module docstring); punctuation-only pieces
    are dropped, so "!!" looks for nothing (and matches everything)."""
    terms: list[Term] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "\"'":
            quote, i, chars = ch, i + 1, []
            while i < n and value[i] != quote:
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(value[i])
                i += 1
            i += 1
            words = tuple(_WORD.findall("".join(chars).casefold()))
            if words:
                terms.append(Term(words, True))
            continue
        start = i
        while i < n and not value[i].isspace():
            i += 1
        words = tuple(_WORD.findall(value[start:i].casefold()))
        if words:
            terms.append(Term(words))
    return terms


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _follows(words: Sequence[str], term: Term) -> bool:
    want = term.words
    last = len(want) - 1
    first = want[0]
    single_prefix = last == 0 and not term.phrase
    for i, word in enumerate(words):
        if single_prefix:
            if word.startswith(first):
                return True
            continue
        if (word != first if last or term.phrase else not word.startswith(first)):
            continue
        if i + last >= len(words):
            return False
        if all(words[i + j] == want[j] for j in range(1, last)) and (
                words[i + last] == want[last] if term.phrase
                else words[i + last].startswith(want[last])):
            return True
    return False


@dataclass
class Document:
    """The searchable text of one message, field by field (original case, for snippets)."""

    texts: dict[str, str]
    _words: dict[str, list[str]] = field(default_factory=dict)

    def words(self, name: str) -> list[str]:
        found = self._words.get(name)
        if found is None:
            found = self._words[name] = words_of(self.texts.get(name, ""))
        return found

    def matches(self, fields: Iterable[str], terms: Sequence[Term]) -> bool:
        """Every term present in one of ``fields`` (the exact rule the index approximates)."""
        names = list(fields)
        return all(any(_follows(self.words(name), term) for name in names) for term in terms)


def _decoded(raw: Optional[str]) -> str:
    return decode_words(raw) if raw else ""


def extract_document(info: MessageInfo, read: Callable[[int, int], bytes]) -> Document:
    """What a message says, from its structure and ``read(start, end)`` of its plaintext."""
    env = info.envelope
    body: list[str] = []
    budget = MAX_BODY_CHARS
    for part in text_leaves(info.root):
        if budget <= 0:
            break
        if part.disposition == "attachment":
            continue
        # Encoded text is at most ~4/3 of what it decodes to: read only what can count.
        end = min(part.body_end, part.body_start + budget * 4 + 1024)
        text = decode_part(read(part.body_start, end), part.encoding, part_codec(part))
        if part.subtype == "html":
            text = html.unescape(_HTML_TAG.sub(" ", _HTML_DROP.sub(" ", text)))
        text = text[:budget]
        budget -= len(text)
        body.append(text)
    return Document({"subject": info.subject or _decoded(env.subject),
                     "from": _decoded(env.from_), "to": _decoded(env.to),
                     "cc": _decoded(env.cc), "bcc": _decoded(env.bcc),
                     "body": "\n".join(body)})


def token_hash(key: bytes, tag: str, prefix: str) -> bytes:
    return hmac.new(key, f"{tag}\x00{prefix}".encode("utf-8"),
                    hashlib.sha256).digest()[:HASH_BYTES]


def document_tokens(key: bytes, doc: Document) -> set[bytes]:
    """The index tokens of a document under one user's key."""
    tokens: set[bytes] = set()
    for name, tag in FIELDS.items():
        for word in set(doc.words(name)):
            for level in LEVELS:
                if len(word) >= level:
                    tokens.add(token_hash(key, tag, word[:level]))
    return tokens


def _level(word: str) -> Optional[int]:
    fitting = [level for level in LEVELS if level <= len(word)]
    return fitting[-1] if fitting else None


def lookup_tokens(key: bytes, fields: Sequence[str], term: Term) -> list[list[bytes]]:
    """For each indexable word of ``term``: the tokens any of which a document containing
    it in one of ``fields`` holds.  Empty: the term cannot be looked up."""
    wanted = []
    for word in term.words:
        level = _level(word)
        if level is not None:
            wanted.append([token_hash(key, FIELDS[name], word[:level]) for name in fields])
    return wanted


def highlight(text: str, terms: Sequence[Term], *, preview: bool = False) -> Optional[str]:
    """``text`` HTML-escaped with each word a term looks for in ``<mark>``; None when no
    term occurs.  ``preview``: only a window around the first match, at most
    PREVIEW_OCTETS octets with its markup (RFC 8621 §5)."""
    if not text or not terms:
        return None
    prefixes = {t.words[-1] for t in terms if not t.phrase}
    exact = {w for t in terms for w in (t.words if t.phrase else t.words[:-1])}
    spans = []
    for match in _WORD.finditer(text):
        word = match.group().casefold()
        if word in exact or any(word.startswith(p) for p in prefixes):
            spans.append((match.start(), match.end()))
    if not spans:
        return None
    start, end = 0, len(text)
    if preview:
        start = max(0, spans[0][0] - 40)
        while start > 0 and not text[start - 1].isspace() and spans[0][0] - start < 60:
            start -= 1
        end = min(len(text), start + PREVIEW_OCTETS)
        while True:  # RFC 8621 §5: at most 255 octets, markup and entities included
            result = _WSP.sub(" ", _marked(text, spans, start, end)).strip()
            if len(result.encode("utf-8")) <= PREVIEW_OCTETS or end <= start:
                return result
            end = max(start, end - max(1, (end - start) // 10))
    return _marked(text, spans, start, end)


def _marked(text: str, spans: list[tuple[int, int]], start: int, end: int) -> str:
    out, pos = [], start
    for s, e in spans:
        if s < start or e > end:
            continue
        out.append(html.escape(text[pos:s], quote=False))
        out.append("<mark>" + html.escape(text[s:e], quote=False) + "</mark>")
        pos = e
    out.append(html.escape(text[pos:end], quote=False))
    return "".join(out)

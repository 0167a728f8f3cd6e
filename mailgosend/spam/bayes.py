"""The per-user Bayesian classifier (DESIGN §6): tokenizer, keyed token hashes, Robinson/Fisher
chi-square combining, and the bounded points it adds to the spam score.

Method (as SpamBayes and SpamAssassin's Bayes): a token's spam probability is Robinson's
f(w) = (s*x + n*p(w)) / (s + n), where p(w) compares the token's spam and ham message
frequencies and n is how many messages contained it, so rare tokens stay near the prior x.
Only the ``MAX_DISCRIMINATORS`` tokens furthest from 0.5 take part; Fisher's method turns them
into a spamminess S and a hamminess H (chi-square, 2n degrees of freedom) and the result is
(1 + S - H) / 2 in [0, 1].  Below ``MIN_MESSAGES`` ham and spam trained, the classifier has
no opinion (None): early statistics are noise.

Privacy: a token is HMAC-SHA256(per-user key, token)[:8], the key being
``KeyRing.derive("bayes-token", user uuid)``, so the database never holds a word and one user's
hashes say nothing about another's.  The message digest of the "already learned" table uses
the same key with a separate prefix.  A changed ENCRYPTION_KEY derives new keys, which starts
every user's statistics afresh (old hashes no longer match anything).

Only the first ``MAX_SCAN`` bytes of a message are read, and at most ``MAX_TOKENS`` distinct
tokens counted: bounded work per message however large or hostile it is.

The pure part ends at ``bayes_hit``; ``BayesTrainer`` (the IMAP Junk hook) and
``user_probabilities`` (for the SMTP pipeline: one message's tokens, every trained recipient)
are the edge that reads blobs and statistics.

At delivery (smtp/pipeline/process.py) a recipient's points are added to the message's shared
score for that recipient only, as a ``BAYES_<percent>`` hit in that copy's X-Spam-Report.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import math
import re
from datetime import datetime, timezone
from email import message_from_bytes
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import DatabaseRunner
from mailgosend.db.schema import messages
from mailgosend.spam.interfaces import ISpamTrainer, MessageRef
from mailgosend.spam.rules import Hit
from mailgosend.store import bayes as stats
from mailgosend.store.accounts import User, find_user_by_id
from mailgosend.store.blobs import BlobNotFound, BlobStore
from mailgosend.store.messages import RawSource

__all__ = ["KEY_PURPOSE", "MAX_DISCRIMINATORS", "MAX_SCAN", "MAX_TOKENS", "MIN_MESSAGES",
           "BayesTrainer", "bayes_hit", "chi2q", "classify", "fisher_combine", "hash_tokens",
           "message_digest", "points", "spam_probability", "token_probability", "tokenize",
           "user_key", "user_probabilities"]

KEY_PURPOSE = "bayes-token"
MAX_SCAN = 64 * 1024
MAX_TOKENS = 2000
MIN_MESSAGES = 200
MAX_DISCRIMINATORS = 150
MIN_STRENGTH = 0.1       # |f(w) - 0.5| below this is no evidence (SpamBayes' default)
ROBINSON_S = 1.0         # strength of the prior, in messages
ROBINSON_X = 0.5         # the prior: an unknown token is neutral
SPAM_FROM, SPAM_FULL = 0.5, 0.99   # points rise from 0 to max_points between these
HAM_FROM, HAM_FULL = 0.2, 0.01     # and fall from 0 to -max_points/2 between these

_MAX_PARTS = 50
_MAX_ADDRESSES = 20
_MIN_WORD, _MAX_WORD = 3, 20
_DIGEST_PREFIX = b"\x00message\x00"  # tokens are text and never start with NUL
_URL = re.compile(r"(?i)\b(?:https?|ftp)://(?:[^\s/@\"'<>]*@)?([^\s/?#:\"'<>]+)"  # skip userinfo
                  r"|\bwww\.([^\s/?#:\"'<>]+)")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_NUMBER = re.compile(r"([$€£¥]?)\d[\d.,/-]*(%?)")
_EDGE_PUNCT = "\"'`()[]{}<>.,;:!?*_-=|/\\~^"
_HTML_DROP = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>|<!--.*?-->")
_HTML_TAG = re.compile(r"(?s)<[^>]*>")
_HTML_BREAK = re.compile(r"(?i)<(?:br|p|div|tr|li|td)\b")
_BODY_START = re.compile(rb"\r?\n\r?\n")


# --- tokenizer -------------------------------------------------------------------------------

def _header_text(value: Any) -> str:
    """A header (str, or compat32's Header for raw 8-bit) decoded from RFC 2047 words;
    undecodable input is kept as it came."""
    if not value:
        return ""
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, ValueError, LookupError, UnicodeError):
        return str(value)


def _words(text: str) -> Iterator[str]:
    """Lower-case words, numbers bucketed by size, over-long words reduced to their shape.

    A whitespace split with edge punctuation stripped, as SpamBayes does: inner characters
    stay, so "v1agra" and "s-e-x" are not folded into the words they hide.  Numbers are
    bucketed because "$1,000,000" matters as "a seven-digit sum", not as that sum.
    """
    for chunk in text.lower().split():
        if "://" in chunk or chunk.startswith("www."):
            continue  # URLs become domain tokens instead
        word = chunk.strip(_EDGE_PUNCT)
        number = _NUMBER.fullmatch(word)
        if number:
            digits = sum(ch.isdigit() for ch in word)
            yield f"num:{number.group(1)}{digits}{number.group(2)}"
        elif len(word) > _MAX_WORD:
            yield f"long:{word[0]}:{len(word) // 10 * 10}"
        elif len(word) >= _MIN_WORD:
            yield word


def _url_tokens(text: str) -> Iterator[str]:
    """A URL's host and its parent domains; IP-literal hosts as one telling token."""
    for match in _URL.finditer(text):
        host = (match.group(1) or "www." + match.group(2)).lower().rstrip(".")
        if _IPV4.fullmatch(host):
            yield "url:ip"
            continue
        labels = host.split(".")[-6:]
        for i in range(len(labels) - 1):
            yield "url:" + ".".join(labels[i:])
        yield "url-tld:" + labels[-1]


def _strip_html(text: str) -> str:
    text = _HTML_DROP.sub(" ", text)
    text = _HTML_BREAK.sub(" <", text)
    return html.unescape(_HTML_TAG.sub(" ", text))


def _address_tokens(message: Message) -> Iterator[str]:
    from_pairs = getaddresses([_header_text(v) for v in message.get_all("from", [])])
    for name, address in from_pairs[:_MAX_ADDRESSES]:
        address = address.lower()
        if "@" in address:
            yield "from:" + address
            yield "from-domain:" + address.rpartition("@")[2]
        for word in _words(name):
            yield "from-name:" + word
    to_pairs = getaddresses([_header_text(v) for field in ("to", "cc")
                             for v in message.get_all(field, [])])
    for _, address in to_pairs[:_MAX_ADDRESSES]:
        if "@" in address:
            yield "to-domain:" + address.lower().rpartition("@")[2]


def _parts(message: Message) -> Iterator[Message]:
    """Depth-first MIME leaves and containers, iteratively and at most ``_MAX_PARTS``."""
    stack, seen = [message], 0
    while stack and seen < _MAX_PARTS:
        part = stack.pop()
        seen += 1
        yield part
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(p for p in reversed(payload) if isinstance(p, Message))


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except (LookupError, ValueError):  # an unknown (or NUL-containing) charset name
        return payload.decode("latin-1")


def _body_tokens(message: Message) -> Iterator[str]:
    for part in _parts(message):
        ctype = part.get_content_type()
        yield "ctype:" + ctype
        charset = part.get_param("charset")
        if isinstance(charset, str):
            yield "charset:" + charset.lower()
        filename = part.get_filename()
        if filename and "." in filename:
            yield "attach-ext:" + filename.rpartition(".")[2].lower()[:10]
        if ctype in ("text/plain", "text/html") and not filename:
            text = _text_of(part)
            yield from _url_tokens(text)
            yield from _words(_strip_html(text) if ctype == "text/html" else text)


def _raw_tokens(raw: bytes) -> Iterator[str]:
    try:
        message = message_from_bytes(raw, policy=compat32)
        body: Iterable[str] = _body_tokens(message)
    except RecursionError:
        # MIME nested deep enough to exhaust the parser's recursion: headers plus raw text.
        message = BytesHeaderParser(policy=compat32).parsebytes(raw)
        text = _BODY_START.split(raw, 1)[-1].decode("utf-8", errors="replace")
        body = ["parse:failed", *_url_tokens(text), *_words(_strip_html(text))]
    for word in _words(_header_text(message.get("subject"))):
        yield "subject:" + word
    yield from _address_tokens(message)
    yield from body


def tokenize(raw: bytes | bytearray, *, max_tokens: int = MAX_TOKENS,
             max_scan: int = MAX_SCAN) -> list[str]:
    """The distinct tokens of a raw RFC 5322 message, headers first, in order of appearance.

    Headers: Subject words, From address/domain/display-name words, To/Cc domains; every MIME
    part's Content-Type and charset, attachment extensions; then the decoded text/plain and
    text/html bodies (HTML stripped) as words and URL domains.  Header tokens carry a prefix
    so "subject:free" and "free" are learned separately.  Only the first ``max_scan`` bytes
    are read and at most ``max_tokens`` tokens kept.
    """
    found: dict[str, None] = {}
    for token in _raw_tokens(bytes(raw[:max_scan])):
        found.setdefault(token, None)
        if len(found) >= max_tokens:
            break
    return list(found)


def user_key(keyring: KeyRing, user_uuid: str) -> bytes:
    """The per-user key of token hashes and message digests."""
    return keyring.derive(KEY_PURPOSE, user_uuid)


def hash_tokens(key: bytes, tokens: Iterable[str]) -> list[bytes]:
    """HMAC-SHA256(key, token)[:8] of each distinct token, in order.

    Eight bytes: for 10**6 distinct tokens of one user a collision between two of them has a
    probability near 3e-8, and a collision only merges two tokens' counts.
    """
    hashed: dict[bytes, None] = {}
    for token in tokens:
        digest = hmac.new(key, token.encode("utf-8"), hashlib.sha256).digest()
        hashed.setdefault(digest[:stats.TOKEN_SIZE], None)
    return list(hashed)


def message_digest(key: bytes, raw: bytes | bytearray, *, max_scan: int = MAX_SCAN) -> bytes:
    """Identifies a message for "already learned": copies of one message share it."""
    mac = hmac.new(key, _DIGEST_PREFIX + bytes(raw[:max_scan]), hashlib.sha256)
    return mac.digest()[:stats.DIGEST_SIZE]


# --- classifier ------------------------------------------------------------------------------

def token_probability(ham: int, spam: int, ham_messages: int, spam_messages: int, *,
                      strength: float = ROBINSON_S, prior: float = ROBINSON_X) -> float:
    """Robinson's f(w): the token's spam probability, pulled toward ``prior`` when rare.

    p(w) compares frequencies (the share of spam containing the token against the share of
    ham), so a user who trained ten times more spam than ham is not biased toward spam.
    """
    ham_ratio = min(ham / ham_messages, 1.0) if ham_messages > 0 else 0.0
    spam_ratio = min(spam / spam_messages, 1.0) if spam_messages > 0 else 0.0
    n = ham + spam
    if n <= 0 or ham_ratio + spam_ratio == 0:
        return prior
    p = spam_ratio / (ham_ratio + spam_ratio)
    return (strength * prior + n * p) / (strength + n)


def chi2q(x2: float, v: int) -> float:
    """P(chi-square with ``v`` (even) degrees of freedom >= x2), summed in log space so the
    large x2 of a strongly one-sided message neither underflows nor overflows."""
    if v <= 0 or v % 2:
        raise ValueError("degrees of freedom must be even and positive")
    m = x2 / 2.0
    if m <= 0:
        return 1.0
    log_m = math.log(m)
    log_term = -m
    logs = [log_term]
    for i in range(1, v // 2):
        log_term += log_m - math.log(i)
        logs.append(log_term)
    top = max(logs)
    return min(1.0, math.exp(top + math.log(sum(math.exp(t - top) for t in logs))))


def fisher_combine(probabilities: Iterable[float]) -> float:
    """Fisher's combining of token probabilities (each strictly inside (0, 1)) into one
    in [0, 1]; 0.5 when there is no evidence or it points both ways."""
    probs = list(probabilities)
    if not probs:
        return 0.5
    degrees = 2 * len(probs)
    spamminess = 1.0 - chi2q(-2.0 * sum(math.log1p(-p) for p in probs), degrees)
    hamminess = 1.0 - chi2q(-2.0 * sum(math.log(p) for p in probs), degrees)
    return min(1.0, max(0.0, (1.0 + spamminess - hamminess) / 2.0))


def classify(counts: Mapping[bytes, tuple[int, int]], ham_messages: int, spam_messages: int,
             *, min_messages: int = MIN_MESSAGES,
             max_discriminators: int = MAX_DISCRIMINATORS) -> Optional[float]:
    """The message's spam probability from its known tokens' ``(ham, spam)`` counts, or None
    while fewer than ``min_messages`` (at least 1) ham or spam messages are trained: with no
    ham at all every known token would look like spam.

    Tokens absent from ``counts`` were never seen: neutral, so they are simply left out.
    Ties in strength are broken by the probability, so the result never depends on order.
    """
    if min(ham_messages, spam_messages) < max(min_messages, 1):
        return None
    probs = (token_probability(h, s, ham_messages, spam_messages) for h, s in counts.values())
    clues = sorted((p for p in probs if abs(p - 0.5) >= MIN_STRENGTH),
                   key=lambda p: (-abs(p - 0.5), p))
    return fisher_combine(clues[:max_discriminators])


def points(probability: Optional[float], max_points: float = 3.0) -> float:
    """Spam points for a Bayes probability, within [-max_points/2, max_points].

    0 at or below 0.5 rising linearly to ``max_points`` at 0.99 and above: a full vote for
    spam only on near-certainty.  Below 0.2 falling to ``-max_points / 2`` at 0.01: confident
    ham earns some benefit of the doubt, but half as much, because "ham" words are what a
    spammer stuffs into a message to poison the filter.  Between 0.2 and 0.5 (unsure) and
    for None (untrained): 0.
    """
    if not (max_points >= 0 and math.isfinite(max_points)):
        raise ValueError("max_points must be a finite number >= 0")
    if probability is None:
        return 0.0
    if not 0.0 <= probability <= 1.0:  # also refuses NaN
        raise ValueError(f"a probability must be within [0, 1], got {probability!r}")
    if probability > SPAM_FROM:
        share = min(1.0, (probability - SPAM_FROM) / (SPAM_FULL - SPAM_FROM))
        return round(max_points * share, 2)
    if probability < HAM_FROM:
        share = min(1.0, (HAM_FROM - probability) / (HAM_FROM - HAM_FULL))
        return round(-max_points / 2 * share, 2)
    return 0.0


def bayes_hit(probability: Optional[float], max_points: float = 3.0) -> Optional[Hit]:
    """The rules-table entry of a recipient's Bayes verdict, or None without an opinion.

    Named like SpamAssassin's (``BAYES_00`` ... ``BAYES_99``, the probability in percent,
    rounded down) and worth ``points(probability, max_points)``, which may be 0 (unsure) or
    negative (ham): the report then still shows that the classifier was asked.
    """
    if probability is None:
        return None
    worth = points(probability, max_points)
    return Hit(f"BAYES_{min(99, int(probability * 100)):02d}", worth)


# --- the edge: statistics and messages from the database ------------------------------------

def _training_material(conn: Connection, keyring: KeyRing, blob_store: BlobStore,
                       ref: MessageRef) -> Optional[tuple[bytes, list[bytes]]]:
    """Digest and hashed tokens of a user's stored message, or None if it is gone.

    The blob is opened only if the user has a message row naming it, under the user's own
    key; the first ``MAX_SCAN`` bytes are read, never the whole blob.
    """
    user = find_user_by_id(conn, ref.user_id)
    owned = conn.execute(select(messages.c.id).where(
        messages.c.user_id == ref.user_id, messages.c.blob_id == ref.blob_id).limit(1)).first()
    if user is None or owned is None:
        return None
    try:
        with blob_store.open_blob(conn, keyring, user.uuid, ref.blob_id) as reader:
            raw = reader.read_range(0, MAX_SCAN)
    except BlobNotFound:
        return None
    key = user_key(keyring, user.uuid)
    return message_digest(key, raw), hash_tokens(key, tokenize(raw))


@implementer(ISpamTrainer)
class BayesTrainer:
    """Learns from the user's filing: a message moved into Junk is spam, out of it ham.

    Each message is learned at most once per class and retrained when it changes class
    (store/bayes.py ``train_message``).  Reading and tokenizing run in a database reader
    thread, counting in one write transaction; nothing runs on the reactor thread.
    """

    def __init__(self, runner: DatabaseRunner, keyring: KeyRing, blob_store: BlobStore,
                 clock: IReactorTime) -> None:
        self._runner, self._keyring = runner, keyring
        self._blob_store, self._clock = blob_store, clock

    def learn(self, user_id: int, message: MessageRef, is_spam: bool
              ) -> Deferred[Optional[stats.TrainOutcome]]:
        """Fires with the outcome, or None when the message vanished before it was read."""
        return Deferred.fromCoroutine(self._learn(user_id, message, is_spam))

    async def _learn(self, user_id: int, message: MessageRef, is_spam: bool
                     ) -> Optional[stats.TrainOutcome]:
        if message.user_id != user_id:
            raise ValueError(f"message of user {message.user_id} offered to user {user_id}")
        material = await self._runner.read(_training_material, self._keyring,
                                           self._blob_store, message)
        if material is None:
            return None
        digest, tokens = material
        now = datetime.fromtimestamp(self._clock.seconds(), timezone.utc)
        outcome: stats.TrainOutcome = await self._runner.write(
            stats.train_message, user_id, digest, tokens, is_spam, now)
        return outcome


def _probability(conn: Connection, keyring: KeyRing, user: User, source: RawSource,
                 min_messages: int) -> Optional[float]:
    trained = stats.totals(conn, user.id)
    if min(trained.ham_messages, trained.spam_messages) < max(min_messages, 1):
        return None  # before reading or tokenizing: most users never train enough
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source[:MAX_SCAN])
    else:
        with open(source, "rb") as f:
            raw = f.read(MAX_SCAN)
    tokens = hash_tokens(user_key(keyring, user.uuid), tokenize(raw))
    return classify(stats.token_counts(conn, user.id, tokens), trained.ham_messages,
                    trained.spam_messages, min_messages=min_messages)


async def spam_probability(runner: DatabaseRunner, keyring: KeyRing, user: User,
                           raw_message: RawSource, *, min_messages: int = MIN_MESSAGES
                           ) -> Optional[float]:
    """The recipient's Bayes verdict on an incoming message (bytes, or the path of its spool
    file), for ``points``; None while the user has not trained enough.  Reading the first
    ``MAX_SCAN`` bytes, tokenizing and the lookups run in one database reader job, off the
    reactor thread."""
    source = raw_message[:MAX_SCAN] if isinstance(raw_message, bytes) else raw_message
    result: Optional[float] = await runner.read(_probability, keyring, user, source,
                                                min_messages)
    return result


def _user_probabilities(conn: Connection, keyring: KeyRing, users: Sequence[User],
                        tokens: Sequence[str], min_messages: int) -> dict[int, float]:
    found: dict[int, float] = {}
    for user in users:
        trained = stats.totals(conn, user.id)
        if min(trained.ham_messages, trained.spam_messages) < max(min_messages, 1):
            continue
        hashed = hash_tokens(user_key(keyring, user.uuid), tokens)
        probability = classify(stats.token_counts(conn, user.id, hashed), trained.ham_messages,
                               trained.spam_messages, min_messages=min_messages)
        if probability is not None:
            found[user.id] = probability
    return found


async def user_probabilities(runner: DatabaseRunner, keyring: KeyRing, users: Sequence[User],
                             tokens: Sequence[str], *, min_messages: int = MIN_MESSAGES
                             ) -> dict[int, float]:
    """Each recipient's Bayes verdict on one message, from its ``tokenize`` tokens (made once,
    in the worker pool): ``{user id: probability}`` for the users trained enough.  Hashing
    under each user's key and the lookups run in one database reader job."""
    if not users or not tokens:
        return {}
    result: dict[int, float] = await runner.read(_user_probabilities, keyring, list(users),
                                                 list(tokens), min_messages)
    return result

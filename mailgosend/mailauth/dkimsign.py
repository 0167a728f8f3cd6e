"""DKIM signing of outbound mail (RFC 6376 §5; ed25519-sha256 per RFC 8463) with dkimpy.

``sign`` is pure: message bytes and decrypted keys in, DKIM-Signature fields out.  Choices:

- c=relaxed/relaxed (RFC 6376 §3.4.2, §3.4.4): survives the header refolding and trailing
  whitespace changes that relays make; "simple" buys nothing for outbound mail.
- h= lists the fields of RFC 6376 §5.4.1's recommendation (plus the MIME and List-* fields) that
  the message has, each as often as it appears, and From one extra time ("oversigning",
  §5.4.2): the extra entry signs the absence of a second From, so a From added in transit
  breaks the signature (§8.15).
- d= is the RFC5322.From domain, found exactly as our DMARC check finds it, so the signature
  is aligned with the author (RFC 7489 §3.1.1).  No l= (§8.2), no i= beyond dkimpy's default.
- One signature per key: rsa-sha256 and ed25519-sha256 when the domain has both (RFC 8463 §1:
  verifiers that do not know ed25519 ignore that one and use the RSA one).
- t= from the caller's clock, not the wall clock, so tests are deterministic.
- h= is written "from : to : ...": the field is folded at spaces, and only the FWS around
  h='s colons may carry a fold (§3.5); a fold inside a field name breaks the signature.

dkimpy holds the whole message in memory (and copies it while parsing): acceptable for
outbound mail, whose size MAX_MESSAGE_SIZE bounds, but it is why signing runs in the worker
pool and not on the reactor thread.

``DKIMSigner`` is the reactor-side part: key lookup through the DB runner (cached), signing in
the worker pool.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Callable, Optional, Protocol, TypeVar

import dkim  # type: ignore[import-untyped]
from dkim.canonicalization import CanonicalizationPolicy  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from mailgosend.crypto import KeyRing
from mailgosend.domains import DomainError, normalise_domain
from mailgosend.mailauth.dmarc import from_domain
from mailgosend.mailauth.headers import header_fields
from mailgosend.store import dkimkeys
from mailgosend.store.dkimkeys import SigningKey

__all__ = ["DKIMSigner", "DKIMSigningError", "SIGNED_FIELDS", "sign", "signed_field_names",
           "signing_domain"]

log = Logger()

# dkimpy's own logger: nothing of ours should reach it, but keep it from propagating.
_quiet = logging.getLogger("mailgosend.mailauth.dkimsign.lib")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False

_T = TypeVar("_T")

# RFC 6376 §5.4.1 recommended set, plus the MIME fields (a changed Content-Type could show
# another body part), RFC 8058's List-Unsubscribe-Post (which it requires to be signed) and
# Sender/Resent-Sender/Resent-Message-ID.  Trace and Bcc fields are excluded (§5.4).
SIGNED_FIELDS: tuple[bytes, ...] = (
    b"from", b"sender", b"reply-to", b"subject", b"date", b"message-id", b"to", b"cc",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"content-id",
    b"content-description", b"content-language", b"in-reply-to", b"references",
    b"resent-date", b"resent-from", b"resent-sender", b"resent-to", b"resent-cc",
    b"resent-message-id", b"list-id", b"list-help", b"list-unsubscribe",
    b"list-unsubscribe-post", b"list-subscribe", b"list-post", b"list-owner", b"list-archive",
)
# Listed once more than they occur (RFC 6376 §5.4.2): a later addition breaks the signature.
OVERSIGNED: tuple[bytes, ...] = (b"from",)
CANONICALIZATION = (b"relaxed", b"relaxed")
CACHE_SECONDS = 300.0


class DKIMSigningError(Exception):
    """dkimpy refused the message or a key; the message is not signed."""


def signing_domain(message_headers: bytes) -> Optional[str]:
    """The d= to sign with: the RFC5322.From domain (A-label, lower case), or None when there
    is no single From domain (no From, several, or unparseable: RFC 7489 §6.6.1 lets receivers
    reject such mail anyway).  Accepts a whole message or its header section."""
    author = from_domain(message_headers)
    return author.domain if author.status == "ok" else None


def signed_field_names(message: bytes) -> list[bytes]:
    """The h= list for this message: present fields of SIGNED_FIELDS in message order, each
    as often as it occurs, then each OVERSIGNED field one extra time."""
    present = [f.name.lower() for f in header_fields(message)
               if f.name.lower() in SIGNED_FIELDS]
    return present + [name for name in OVERSIGNED if name in present]


class _Signer(dkim.DKIM):  # type: ignore[misc]
    """dkimpy's ``DKIM.sign`` with t= from our clock: it reads ``time.time()`` itself, and
    patching the module would affect every thread."""

    def sign_at(self, key: SigningKey, include_headers: Sequence[bytes], timestamp: int) -> bytes:
        algorithm = key.algorithm.encode("ascii")
        self.signature_algorithm = algorithm
        if algorithm == b"rsa-sha256":
            pk = dkim.parse_pem_private_key(key.private_key)
        else:
            import nacl.encoding
            import nacl.signing

            pk = nacl.signing.SigningKey(key.private_key, encoder=nacl.encoding.Base64Encoder)
        policy = CanonicalizationPolicy.from_c_value(b"/".join(CANONICALIZATION))
        self.include_headers = tuple(include_headers)
        self.hasher = dkim.HASH_ALGORITHMS[algorithm]
        body_hash = self.hasher()
        body_hash.update(policy.canonicalize_body(self.body))
        domain = key.domain.encode("ascii")
        fields = [
            (b"v", b"1"),
            (b"a", algorithm),
            (b"c", policy.to_c_value()),
            (b"d", domain),
            (b"s", key.selector.encode("ascii")),
            (b"t", str(timestamp).encode("ascii")),            # RFC 6376 §3.5
            # " : ", as dkimpy's own sign() writes it: dkimpy folds the field at spaces
            # only and cuts a space-less run at column 72, inside a field name.  RFC 6376
            # §3.5 allows FWS around each ":" of h= (hdr-name *([FWS] ":" [FWS] hdr-name)),
            # so a fold there changes nothing for any verifier.
            (b"h", b" : ".join(include_headers)),
            (b"bh", base64.b64encode(body_hash.digest())),
            # Stand-in b= value that gen_header replaces with the signature; its length
            # makes b= fold onto a line of its own, as dkimpy's own sign() does.
            (b"b", b"0" * 60),
        ]
        value = self.gen_header(fields, self.include_headers, policy, b"DKIM-Signature", pk)
        return b"DKIM-Signature: " + value


def _timestamp(now: int | float | datetime) -> int:
    return int(now.timestamp()) if isinstance(now, datetime) else int(now)


def sign(message: bytes, keys: Sequence[SigningKey], now: int | float | datetime) -> bytes:
    """The DKIM-Signature field(s) for ``message``, CRLF-terminated, to prepend to it; b""
    without keys.  Every key must be of the message's From domain (checked: a signature of
    another domain does not help DMARC and would only leak which domains we host).

    Each signature is computed over the message without the others (RFC 8463 §1 dual
    signing): they are independent, and the order of prepending does not matter because no
    signature covers a DKIM-Signature field.
    """
    if not keys:
        return b""
    domain = signing_domain(message)
    for key in keys:
        if key.domain != domain:
            raise DKIMSigningError(f"key {key.selector}._domainkey.{key.domain} does not match "
                                   f"the From domain {domain or '(none)'}")
    names = signed_field_names(message)
    timestamp = _timestamp(now)
    try:
        # One parse for every key: dkimpy copies the whole message when it parses it.
        signer = _Signer(message, logger=_quiet, linesep=b"\r\n")
        signatures = [signer.sign_at(key, names, timestamp) for key in keys]
    except dkim.DKIMException as exc:
        # Only the class: dkimpy's texts may quote a header line of the message.
        raise DKIMSigningError(f"dkimpy refused the message ({type(exc).__name__})") from None
    return b"".join(signatures)


class _Workers(Protocol):
    def run(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> "Deferred[_T]": ...


class _Runner(Protocol):
    def read(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> "Deferred[_T]": ...


class _Clock(Protocol):
    def seconds(self) -> float: ...


class DKIMSigner:
    """Signs outbound messages for the queue worker.

    ``signature_for(message)`` -> Deferred[bytes]: the DKIM-Signature field(s) to prepend,
    or b"" when the From domain has no active key (or no usable From).  Keys are read through
    ``runner`` (``DatabaseRunner``), decrypted in its thread, and cached per domain for
    ``cache_seconds`` (absence too, so unsigned domains cost no query per message); call
    ``invalidate(domain)`` after changing keys in this process.  A key changed from the CLI,
    another process, is picked up when the cache entry expires.  Signing runs in ``workers``
    (``WorkerPool``): RSA and dkimpy's parsing must not run on the reactor thread.

    A message dkimpy cannot parse is sent unsigned (logged at warning, without content), as
    a signature is an addition, not a condition for delivery; database errors propagate, so
    the caller retries later.
    """

    def __init__(self, runner: _Runner, keyring: KeyRing, workers: _Workers, *,
                 clock: Optional[_Clock] = None, cache_seconds: float = CACHE_SECONDS) -> None:
        if clock is None:
            from twisted.internet import reactor as default_reactor

            clock = default_reactor  # type: ignore[assignment]
        self._runner = runner
        self._keyring = keyring
        self._workers = workers
        self._clock: _Clock = clock  # type: ignore[assignment]
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, list[SigningKey]]] = {}
        self._loading: dict[str, list[Deferred[list[SigningKey]]]] = {}
        self._domains: Optional[tuple[float, frozenset[str]]] = None

    def signs_anything(self) -> "Deferred[bool]":
        """Whether any domain has an active key (cached like the keys): when none has, the
        caller skips finding the From domain of each message."""
        now = self._clock.seconds()
        if self._domains is not None and self._domains[0] > now:
            return succeed(bool(self._domains[1]))

        def loaded(names: frozenset[str]) -> bool:
            self._domains = (self._clock.seconds() + self._cache_seconds, names)
            return bool(names)
        return self._runner.read(dkimkeys.signing_domains).addCallback(loaded)

    def invalidate(self, domain: Optional[str] = None) -> None:
        """Forget cached keys of ``domain`` (of every domain when None)."""
        self._domains = None
        if domain is None:
            self._cache.clear()
            return
        try:
            self._cache.pop(normalise_domain(domain), None)
        except DomainError:
            pass

    def keys_for(self, domain: str) -> "Deferred[list[SigningKey]]":
        """The domain's signing keys, from the cache or the database (one query at a time per
        domain: concurrent callers share it)."""
        now = self._clock.seconds()
        cached = self._cache.get(domain)
        if cached is not None and cached[0] > now:
            return succeed(cached[1])
        waiting: Deferred[list[SigningKey]] = Deferred()
        if domain in self._loading:
            self._loading[domain].append(waiting)
            return waiting
        self._loading[domain] = [waiting]

        def loaded(keys: list[SigningKey]) -> None:
            self._cache[domain] = (self._clock.seconds() + self._cache_seconds, keys)
            for d in self._loading.pop(domain):
                d.callback(keys)

        def failed(failure: Any) -> None:
            for d in self._loading.pop(domain):
                d.errback(failure)

        self._runner.read(dkimkeys.active_keys, self._keyring, domain).addCallbacks(
            loaded, failed)
        return waiting

    def signature_for(self, message: bytes) -> "Deferred[bytes]":
        """The field(s) to prepend to ``message`` (CRLF-terminated), or b"" if not signed."""
        domain = signing_domain(message)
        if domain is None:
            log.debug("DKIM: not signing, no single From domain")
            return succeed(b"")

        def got_keys(keys: list[SigningKey]) -> Any:
            if not keys:
                log.debug("DKIM: no active key for {domain}; not signing", domain=domain)
                return b""
            now = self._clock.seconds()
            return self._workers.run(sign, message, keys, now).addErrback(unsigned)

        def unsigned(failure: Any) -> bytes:
            failure.trap(DKIMSigningError)
            log.warn("DKIM: message from {domain} sent unsigned: {reason}", domain=domain,
                     reason=failure.getErrorMessage())
            return b""

        return self.keys_for(domain).addCallback(got_keys)

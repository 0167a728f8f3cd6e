"""Encryption at rest (DESIGN.md §4): AES-256-GCM under per-user, per-purpose keys.

Two envelope formats share one key hierarchy.

Version 1, for values that are read whole (DKIM keys, TOTP secrets, message structure)::

    0x01 | key id (4) | nonce (12) | ciphertext | tag (16)

Version 2, segmented streaming AEAD for message bodies and attachments, so a partial IMAP fetch
decrypts only the segments it touches. It follows the STREAM construction of Hoang, Reyhanitabar,
Rogaway and Vizár, "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance"
(CRYPTO 2015, §7)::

    0x02 | key id (4) | nonce prefix (7) | segment size (4, big-endian)
    segment 0 | segment 1 | ... | final segment

Each segment is AES-GCM over exactly `segment size` plaintext bytes (the final one: 0 to
`segment size`) plus a 16-byte tag, under nonce = prefix | counter (4, BE) | last flag (1). The
counter pins a segment to its position and the flag marks the end, so reordered, dropped or
truncated segments fail authentication; the plaintext size follows from the ciphertext length.
The segments' key is HKDF-Expand(purpose/owner key, info = b"mailgosend stream v1" | associated
data): a random 7-byte prefix alone would repeat (and GCM break) with probability n**2 / 2**57
over n blobs of one user, which a large mailbox makes real; with the context and prefix in the
key, a repeat needs the same row and the same prefix.

The key for (purpose, owner) is HKDF-SHA256 of a master key. The associated data is the header
plus the length-prefixed purpose, owner and a caller-chosen context naming the row (for example
b"messages:123"), so a ciphertext copied to another row or user does not open. The key id names
the master key, which lets ENCRYPTION_KEY rotate while old data stays readable.

Not here: the blind search index (§4) and blob storage.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import secrets
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

KEY_SIZE = 32
KEY_ID_SIZE = 4
TAG_SIZE = 16
DEFAULT_SEGMENT_SIZE = 64 * 1024
MIN_SEGMENT_SIZE = 1024
# Readers and writers hold one segment in memory.
MAX_SEGMENT_SIZE = 16 * 1024 * 1024

_SEALED_VERSION = 0x01
_SEGMENTED_VERSION = 0x02
_NONCE_SIZE = 12
_SEALED_HEADER_SIZE = 1 + KEY_ID_SIZE
_SEALED_OVERHEAD = _SEALED_HEADER_SIZE + _NONCE_SIZE + TAG_SIZE
_SEGMENTED_HEADER = struct.Struct(">B4s7sI")
_SEGMENT_NONCE = struct.Struct(">7sIB")
_MAX_SEGMENTS = 2**32  # the nonce counter is 32 bits
_LENGTH = struct.Struct(">I")
_HKDF_SALT = b"mailgosend/v1"
_KEY_ID_LABEL = b"mailgosend key id v1"
_STREAM_KEY_LABEL = b"mailgosend stream v1"
_DERIVED_CACHE_SIZE = 1024
_HEX_KEY = re.compile(r"[0-9a-fA-F]{%d}" % (2 * KEY_SIZE))


class DecryptionError(Exception):
    """A ciphertext did not open: wrong key, owner or context, tampering, truncation or an
    unknown format. Callers treat all of these alike, as data that must not be trusted."""


def parse_master_key(hex_text: str) -> bytes:
    """Turn the configured ENCRYPTION_KEY into key bytes.

    Runs at config validation so a bad key stops start-up with a clear reason; the messages never
    echo the value, which is a secret. A key of one repeated byte is refused because it is a
    dummy value left in a config file, not a generated key.
    """
    text = hex_text.strip()
    if len(text) != 2 * KEY_SIZE:
        raise ValueError(
            f"ENCRYPTION_KEY must be {2 * KEY_SIZE} hexadecimal characters ({KEY_SIZE} bytes), "
            f"got {len(text)} characters"
        )
    if not _HEX_KEY.fullmatch(text):
        raise ValueError("ENCRYPTION_KEY must contain only hexadecimal characters (0-9, a-f)")
    key = bytes.fromhex(text)
    if len(set(key)) == 1:
        raise ValueError(
            "ENCRYPTION_KEY is a dummy value (one repeated byte); generate a key with "
            "python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return key


def _checked_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
        raise ValueError(f"encryption keys must be {KEY_SIZE} bytes")
    return bytes(key)


def _compute_key_id(master_key: bytes) -> bytes:
    return hmac.new(master_key, _KEY_ID_LABEL, hashlib.sha256).digest()[:KEY_ID_SIZE]


def _associated_data(header: bytes, purpose: str, owner: str, context: bytes) -> bytes:
    # Length prefixes keep field boundaries unambiguous: ("ab", "c") must differ from ("a", "bc").
    fields = (purpose.encode("utf-8"), owner.encode("utf-8"), bytes(context))
    return header + b"".join(_LENGTH.pack(len(field)) + field for field in fields)


def _stream_cipher(owner_key: bytes, aad: bytes) -> AESGCM:
    info = _STREAM_KEY_LABEL + aad
    expand = HKDFExpand(algorithm=hashes.SHA256(), length=KEY_SIZE, info=info)
    return AESGCM(expand.derive(owner_key))


def _authentication_failed() -> DecryptionError:
    return DecryptionError(
        "ciphertext failed authentication (wrong key, owner or context, or modified data)"
    )


def _check_segment_size(segment_size: int) -> None:
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(
            f"segment size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE} bytes"
        )


class KeyRing:
    """The master key that seals new data, plus earlier master keys that may still open old data.

    Holds key material: it is passed explicitly to the services that need it and never logged.
    Derived keys are cached because derivation would otherwise run once per message.
    """

    def __init__(self, master_key: bytes, old_keys: Sequence[bytes] = ()) -> None:
        master = _checked_key(master_key)
        self._key_id = _compute_key_id(master)
        self._masters: dict[bytes, bytes] = {self._key_id: master}
        for old_key in old_keys:
            old = _checked_key(old_key)
            old_id = _compute_key_id(old)
            known = self._masters.setdefault(old_id, old)
            if not hmac.compare_digest(known, old):
                # Ambiguous: a ciphertext naming this id could belong to either key.
                raise ValueError(f"two configured encryption keys share key id {old_id.hex()}")
        self._derived: OrderedDict[tuple[bytes, str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()  # derivation runs in the thread pool as well

    def __repr__(self) -> str:
        return f"<KeyRing key id {self._key_id.hex()}, {len(self._masters) - 1} old key(s)>"

    @property
    def key_id(self) -> bytes:
        """Names the master key in every envelope it seals, so rotation can find the right key."""
        return self._key_id

    def key_id_hex(self) -> str:
        """The key id as stored beside the database, to detect a changed ENCRYPTION_KEY at start."""
        return self._key_id.hex()

    def knows_key_id(self, key_id: bytes) -> bool:
        """Whether data sealed under `key_id` can be opened with the configured keys."""
        return bytes(key_id) in self._masters

    def derive(self, purpose: str, owner: str, key_id: bytes | None = None) -> bytes:
        """The AES-256 key for one purpose of one owner, so a key leaked or misused for one
        user or purpose opens nothing else. `owner` is a user's uuid hex, or "" for system-wide
        secrets; `key_id` selects an old master key (default: the current one)."""
        if not purpose or "\x00" in purpose:
            # The NUL separates purpose from owner in the HKDF info; it must stay unambiguous.
            raise ValueError("purpose must be a non-empty string without NUL characters")
        selected = self._key_id if key_id is None else bytes(key_id)
        cache_key = (selected, purpose, owner)
        with self._lock:
            cached = self._derived.get(cache_key)
            if cached is not None:
                self._derived.move_to_end(cache_key)
                return cached
        master = self._masters.get(selected)
        if master is None:
            raise DecryptionError(
                f"ciphertext was sealed with unknown key id {selected.hex()} "
                "(is the previous ENCRYPTION_KEY missing from the old keys?)"
            )
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=KEY_SIZE,
            salt=_HKDF_SALT,
            info=purpose.encode("utf-8") + b"\x00" + owner.encode("utf-8"),
        ).derive(master)
        with self._lock:
            self._derived[cache_key] = derived
            if len(self._derived) > _DERIVED_CACHE_SIZE:
                self._derived.popitem(last=False)
        return derived

    def seal(self, plaintext: bytes, *, purpose: str, owner: str, context: bytes) -> bytes:
        """Encrypt a value that is always read whole (version 1 envelope).

        The nonce is random: NIST SP 800-38D §8.3 allows 2**32 such messages per key, far more
        than one user ever has of one purpose.
        """
        header = bytes([_SEALED_VERSION]) + self._key_id
        nonce = secrets.token_bytes(_NONCE_SIZE)
        aead = AESGCM(self.derive(purpose, owner))
        aad = _associated_data(header, purpose, owner, context)
        return header + nonce + aead.encrypt(nonce, plaintext, aad)

    def open(self, envelope: bytes, *, purpose: str, owner: str, context: bytes) -> bytes:
        """Decrypt a version 1 envelope sealed for the same purpose, owner and context."""
        envelope = bytes(envelope)
        if len(envelope) < _SEALED_OVERHEAD:
            raise DecryptionError("envelope is truncated")
        if envelope[0] != _SEALED_VERSION:
            raise DecryptionError(f"unsupported envelope version {envelope[0]}")
        header = envelope[:_SEALED_HEADER_SIZE]
        nonce = envelope[_SEALED_HEADER_SIZE : _SEALED_HEADER_SIZE + _NONCE_SIZE]
        aead = AESGCM(self.derive(purpose, owner, header[1:]))
        aad = _associated_data(header, purpose, owner, context)
        try:
            return aead.decrypt(nonce, envelope[_SEALED_HEADER_SIZE + _NONCE_SIZE :], aad)
        except InvalidTag:
            raise _authentication_failed() from None

    def seal_segmented(
        self,
        plaintext: bytes,
        *,
        purpose: str,
        owner: str,
        context: bytes,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> bytes:
        """Seal a blob already in memory as segments, so it can later be read by range."""
        sink = io.BytesIO()
        writer = SegmentedWriter(
            self, sink, purpose=purpose, owner=owner, context=context, segment_size=segment_size
        )
        writer.write(plaintext)
        writer.close()
        return sink.getvalue()

    def open_segmented(self, data: bytes, *, purpose: str, owner: str, context: bytes) -> bytes:
        """Decrypt a whole segmented blob; use SegmentedReader to avoid holding all of it."""
        reader = SegmentedReader(
            self, io.BytesIO(data), len(data), purpose=purpose, owner=owner, context=context
        )
        return b"".join(reader.iter_plaintext())


class SegmentedWriter:
    """Encrypts a stream into a sink segment by segment, holding at most one segment in memory.

    Call close() only once all data is written: it seals the final segment. Output of a writer
    abandoned on error lacks that segment and will not open, which is the point; discard it.
    The context must name the row the blob belongs to: with the random nonce prefix it selects
    the stream's key (see the module docstring).
    """

    def __init__(
        self,
        keyring: KeyRing,
        sink: BinaryIO,
        *,
        purpose: str,
        owner: str,
        context: bytes,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        _check_segment_size(segment_size)
        self._sink = sink
        self._segment_size = segment_size
        self._prefix = secrets.token_bytes(7)
        header = _SEGMENTED_HEADER.pack(
            _SEGMENTED_VERSION, keyring.key_id, self._prefix, segment_size
        )
        self._aad = _associated_data(header, purpose, owner, context)
        self._aead = _stream_cipher(keyring.derive(purpose, owner), self._aad)
        self._buffer = bytearray()
        self._counter = 0
        self._length = 0
        self._closed = False
        sink.write(header)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Add plaintext. A full buffered segment is written only once more data arrives,
        because until then it may turn out to be the final one."""
        if self._closed:
            raise ValueError("write to a closed SegmentedWriter")
        view = memoryview(data).cast("B")
        position = 0
        while position < len(view):
            if len(self._buffer) == self._segment_size:
                self._emit(last=False)
            take = min(self._segment_size - len(self._buffer), len(view) - position)
            self._buffer += view[position : position + take]
            position += take
        self._length += len(view)

    def close(self) -> int:
        """Seal the final segment and return the plaintext length; the sink stays open."""
        if self._closed:
            raise ValueError("SegmentedWriter is already closed")
        self._emit(last=True)
        self._closed = True
        return self._length

    def _emit(self, *, last: bool) -> None:
        if self._counter >= _MAX_SEGMENTS:
            raise ValueError("stream exceeds the 2**32 segments the nonce counter allows")
        nonce = _SEGMENT_NONCE.pack(self._prefix, self._counter, 1 if last else 0)
        self._sink.write(self._aead.encrypt(nonce, bytes(self._buffer), self._aad))
        self._buffer.clear()
        self._counter += 1


class SegmentedReader:
    """Random access to a segmented blob, decrypting only the segments a read touches.

    The final segment is decrypted when the reader is created: that authenticates the header
    and the length, so `size` is trustworthy and a stream truncated at a segment boundary is
    refused before any range is served. A read then costs the segments it touches (the final
    one is kept). `source` must be seekable; the blob starts at offset 0 and is `total_length`
    bytes long (default: up to the end of `source`). Not safe for concurrent use.
    """

    def __init__(
        self,
        keyring: KeyRing,
        source: BinaryIO,
        total_length: int | None = None,
        *,
        purpose: str,
        owner: str,
        context: bytes,
    ) -> None:
        self._source = source
        if total_length is None:
            total_length = source.seek(0, io.SEEK_END)
        header = self._read_at(0, min(_SEGMENTED_HEADER.size, max(total_length, 0)))
        if len(header) < _SEGMENTED_HEADER.size:
            raise DecryptionError("segmented blob is truncated")
        version, key_id, self._prefix, segment_size = _SEGMENTED_HEADER.unpack(header)
        self._segment_size: int = segment_size
        if version != _SEGMENTED_VERSION:
            raise DecryptionError(f"unsupported segmented blob version {version}")
        self._aad = _associated_data(header, purpose, owner, context)
        self._aead = _stream_cipher(keyring.derive(purpose, owner, key_id), self._aad)
        body = total_length - _SEGMENTED_HEADER.size
        stride = segment_size + TAG_SIZE
        count = max(1, -(-body // stride))
        final_length = body - (count - 1) * stride
        # The header and length are checked by authenticating the final segment below; only
        # a count the nonce counter cannot express must be refused before that.
        if count > _MAX_SEGMENTS:
            raise DecryptionError("segmented blob has more segments than the format allows")
        self._count = count
        self._final_length = final_length
        self._size: int = (count - 1) * segment_size + final_length - TAG_SIZE
        self._final_plaintext = self._decrypt_segment(count - 1)

    @property
    def size(self) -> int:
        """Plaintext length, authenticated (IMAP RFC822.SIZE must not lie)."""
        return self._size

    @property
    def segment_size(self) -> int:
        """The unit of decryption; callers align read-ahead to it to avoid decrypting twice."""
        return self._segment_size

    def read_range(self, offset: int, length: int) -> bytes:
        """Plaintext bytes [offset, offset + length), cut short at the end of the blob as an IMAP
        partial fetch is (RFC 3501 §6.4.5)."""
        return b"".join(self.iter_plaintext(offset, length))

    def iter_plaintext(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Yield the plaintext of [offset, offset + length) one segment at a time, so a large
        range can be streamed to a client without holding it whole."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        end = self._size if length is None else min(self._size, offset + length)
        if offset >= end:
            return
        size = self._segment_size
        for index in range(offset // size, (end - 1) // size + 1):
            if index == self._count - 1:
                plaintext = self._final_plaintext
            else:
                plaintext = self._decrypt_segment(index)
            start = index * size
            yield plaintext[max(offset - start, 0) : end - start]

    def _decrypt_segment(self, index: int) -> bytes:
        last = index == self._count - 1
        stride = self._segment_size + TAG_SIZE
        length = self._final_length if last else stride
        nonce = _SEGMENT_NONCE.pack(self._prefix, index, 1 if last else 0)
        # A short read (cut file) fails authentication like any other truncation.
        ciphertext = self._read_at(_SEGMENTED_HEADER.size + index * stride, length)
        try:
            return self._aead.decrypt(nonce, ciphertext, self._aad)
        except InvalidTag:
            raise _authentication_failed() from None

    def _read_at(self, offset: int, length: int) -> bytes:
        self._source.seek(offset)
        chunks = []
        remaining = length
        while remaining > 0:
            chunk = self._source.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

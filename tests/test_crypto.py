"""Tests for mailgosend.crypto: key hierarchy, sealed envelopes and segmented blobs."""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from twisted.trial.unittest import SynchronousTestCase

from mailgosend import crypto
from mailgosend.crypto import (
    DecryptionError,
    KeyRing,
    SegmentedReader,
    SegmentedWriter,
    parse_master_key,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
ALICE = "6f1c2a9e0b7d4c3f8a5e1d2c3b4a5968"
BOB = "0a9b8c7d6e5f40312233445566778899"
PURPOSE = "message"
CONTEXT = b"messages:123"
SEG = 1024  # smallest segment size, so multi-segment cases stay small
STRIDE = SEG + 16
HEADER = 16


def lp(field: bytes) -> bytes:
    return struct.pack(">I", len(field)) + field


def seal(ring: KeyRing, plaintext: bytes, owner: str = ALICE, context: bytes = CONTEXT) -> bytes:
    return ring.seal(plaintext, purpose=PURPOSE, owner=owner, context=context)


def open_(ring: KeyRing, envelope: bytes, owner: str = ALICE, context: bytes = CONTEXT) -> bytes:
    return ring.open(envelope, purpose=PURPOSE, owner=owner, context=context)


def seal_seg(
    ring: KeyRing, plaintext: bytes, owner: str = ALICE, context: bytes = CONTEXT
) -> bytes:
    return ring.seal_segmented(
        plaintext, purpose=PURPOSE, owner=owner, context=context, segment_size=SEG
    )


def open_seg(ring: KeyRing, blob: bytes, owner: str = ALICE, context: bytes = CONTEXT) -> bytes:
    return ring.open_segmented(blob, purpose=PURPOSE, owner=owner, context=context)


def reader(ring: KeyRing, source: io.BytesIO, length: int | None = None) -> SegmentedReader:
    return SegmentedReader(ring, source, length, purpose=PURPOSE, owner=ALICE, context=CONTEXT)


def segments(blob: bytes) -> list[bytes]:
    body = blob[HEADER:]
    return [body[i : i + STRIDE] for i in range(0, len(body), STRIDE)]


class CountingFile(io.BytesIO):
    """Counts the bytes handed out, to prove a range read touches only the segments it needs."""

    bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


class ParseMasterKeyTests(SynchronousTestCase):
    def test_hex_key_parses_to_32_bytes(self) -> None:
        self.assertEqual(parse_master_key(KEY_A.hex()), KEY_A)
        self.assertEqual(parse_master_key(KEY_A.hex().upper()), KEY_A)
        self.assertEqual(parse_master_key(f"  {KEY_A.hex()}\n"), KEY_A)

    def test_invalid_keys_are_refused_with_a_reason(self) -> None:
        good = KEY_A.hex()
        cases = [
            ("", "64 hexadecimal characters"),
            (good[:-1], "got 63 characters"),
            (good + "0", "got 65 characters"),
            (good[:-1] + "g", "only hexadecimal"),
            (good[:30] + " " + good[31:], "only hexadecimal"),
            ("00" * 32, "dummy value"),
            ("ab" * 32, "dummy value"),
        ]
        for text, reason in cases:
            with self.assertRaises(ValueError, msg=repr(text)) as caught:
                parse_master_key(text)
            self.assertIn(reason, str(caught.exception))

    def test_error_does_not_echo_the_key(self) -> None:
        secret = KEY_B.hex()[:-1] + "z"
        with self.assertRaises(ValueError) as caught:
            parse_master_key(secret)
        self.assertNotIn(secret[:16], str(caught.exception))


class KeyRingTests(SynchronousTestCase):
    def test_key_id_is_truncated_hmac_of_label(self) -> None:
        expected = hmac.new(KEY_A, b"mailgosend key id v1", hashlib.sha256).digest()[:4]
        ring = KeyRing(KEY_A)
        self.assertEqual(ring.key_id, expected)
        self.assertEqual(ring.key_id_hex(), expected.hex())

    def test_knows_current_and_old_key_ids_only(self) -> None:
        ring = KeyRing(KEY_B, old_keys=[KEY_A])
        self.assertTrue(ring.knows_key_id(KeyRing(KEY_A).key_id))
        self.assertTrue(ring.knows_key_id(KeyRing(KEY_B).key_id))
        self.assertFalse(ring.knows_key_id(KeyRing(bytes(32 * [7])).key_id))
        self.assertFalse(KeyRing(KEY_B).knows_key_id(KeyRing(KEY_A).key_id))

    def test_keys_must_be_32_bytes(self) -> None:
        self.assertRaises(ValueError, KeyRing, KEY_A[:31])
        self.assertRaises(ValueError, KeyRing, KEY_A, old_keys=[KEY_B + b"x"])

    def test_repr_shows_no_key_material(self) -> None:
        text = repr(KeyRing(KEY_A, old_keys=[KEY_B]))
        self.assertNotIn(KEY_A.hex()[:8], text)
        self.assertNotIn(KEY_B.hex()[:8], text)

    def test_derive_is_hkdf_sha256_of_purpose_and_owner(self) -> None:
        expected = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"mailgosend/v1",
            info=b"message\x00" + ALICE.encode(),
        ).derive(KEY_A)
        self.assertEqual(KeyRing(KEY_A).derive("message", ALICE), expected)

    def test_derived_keys_differ_by_purpose_owner_and_master(self) -> None:
        ring = KeyRing(KEY_B, old_keys=[KEY_A])
        keys = {
            ring.derive("message", ALICE),
            ring.derive("contact", ALICE),
            ring.derive("message", BOB),
            ring.derive("message", ""),
            ring.derive("message", ALICE, KeyRing(KEY_A).key_id),
        }
        self.assertEqual(len(keys), 5)

    def test_derived_keys_are_cached(self) -> None:
        ring = KeyRing(KEY_A)
        self.assertIs(ring.derive("message", ALICE), ring.derive("message", ALICE))

    def test_purpose_must_be_non_empty_without_nul(self) -> None:
        ring = KeyRing(KEY_A)
        self.assertRaises(ValueError, ring.derive, "", ALICE)
        self.assertRaises(ValueError, ring.derive, "mess\x00age", ALICE)

    def test_derive_with_unknown_key_id_fails(self) -> None:
        self.assertRaises(DecryptionError, KeyRing(KEY_A).derive, "message", ALICE, b"\x00" * 4)


class SealTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        ring = KeyRing(KEY_A)
        for size in (0, 1, 1000, 100_000):
            plaintext = os.urandom(size)
            self.assertEqual(open_(ring, seal(ring, plaintext)), plaintext)

    def test_envelope_matches_documented_format(self) -> None:
        ring = KeyRing(KEY_A)
        envelope = seal(ring, b"hello")
        self.assertEqual(envelope[0], 1)
        self.assertEqual(envelope[1:5], ring.key_id)
        self.assertEqual(len(envelope), 1 + 4 + 12 + 5 + 16)
        aad = envelope[:5] + lp(PURPOSE.encode()) + lp(ALICE.encode()) + lp(CONTEXT)
        aead = AESGCM(ring.derive(PURPOSE, ALICE))
        self.assertEqual(aead.decrypt(envelope[5:17], envelope[17:], aad), b"hello")

    def test_nonces_are_fresh(self) -> None:
        ring = KeyRing(KEY_A)
        self.assertNotEqual(seal(ring, b"same")[5:17], seal(ring, b"same")[5:17])

    def test_any_modified_byte_fails(self) -> None:
        ring = KeyRing(KEY_A)
        envelope = seal(ring, b"secret row")
        for position in range(len(envelope)):
            tampered = bytearray(envelope)
            tampered[position] ^= 0x01
            self.assertRaises(DecryptionError, open_, ring, bytes(tampered))

    def test_other_owner_context_or_purpose_fails(self) -> None:
        ring = KeyRing(KEY_A)
        envelope = seal(ring, b"alice's row")
        self.assertRaises(DecryptionError, open_, ring, envelope, owner=BOB)
        self.assertRaises(DecryptionError, open_, ring, envelope, context=b"messages:124")
        self.assertRaises(
            DecryptionError, ring.open, envelope, purpose="contact", owner=ALICE, context=CONTEXT
        )

    def test_wrong_master_key_fails(self) -> None:
        envelope = seal(KeyRing(KEY_A), b"data")
        self.assertRaises(DecryptionError, open_, KeyRing(KEY_B), envelope)

    def test_truncated_or_extended_envelopes_fail(self) -> None:
        ring = KeyRing(KEY_A)
        envelope = seal(ring, b"data")
        for bad in (b"", envelope[:20], envelope[:-1], envelope + b"\x00"):
            self.assertRaises(DecryptionError, open_, ring, bad)

    def test_other_versions_fail_naming_the_version(self) -> None:
        ring = KeyRing(KEY_A)
        for bad in (seal_seg(ring, b"data" * 10), b"\x09" + seal(ring, b"data")[1:]):
            with self.assertRaises(DecryptionError) as caught:
                open_(ring, bad)
            self.assertIn(f"version {bad[0]}", str(caught.exception))

    def test_error_message_has_no_key_material(self) -> None:
        ring = KeyRing(KEY_A)
        with self.assertRaises(DecryptionError) as caught:
            open_(ring, seal(ring, b"data"), owner=BOB)
        message = str(caught.exception)
        for secret in (KEY_A, ring.derive(PURPOSE, ALICE), ring.derive(PURPOSE, BOB)):
            self.assertNotIn(secret.hex()[:8], message)


class RotationTests(SynchronousTestCase):
    def test_old_key_opens_data_sealed_before_rotation(self) -> None:
        before = KeyRing(KEY_A)
        envelope, blob = seal(before, b"old row"), seal_seg(before, b"old blob" * 300)
        after = KeyRing(KEY_B, old_keys=[KEY_A])
        self.assertEqual(open_(after, envelope), b"old row")
        self.assertEqual(open_seg(after, blob), b"old blob" * 300)

    def test_new_seals_use_the_new_key(self) -> None:
        after = KeyRing(KEY_B, old_keys=[KEY_A])
        envelope, blob = seal(after, b"new row"), seal_seg(after, b"new blob")
        self.assertEqual(envelope[1:5], KeyRing(KEY_B).key_id)
        self.assertEqual(blob[1:5], KeyRing(KEY_B).key_id)
        self.assertEqual(open_(KeyRing(KEY_B), envelope), b"new row")
        self.assertRaises(DecryptionError, open_, KeyRing(KEY_A), envelope)

    def test_without_the_old_key_old_data_fails(self) -> None:
        envelope, blob = seal(KeyRing(KEY_A), b"old"), seal_seg(KeyRing(KEY_A), b"old")
        self.assertRaises(DecryptionError, open_, KeyRing(KEY_B), envelope)
        self.assertRaises(DecryptionError, open_seg, KeyRing(KEY_B), blob)


class SegmentedRoundTripTests(SynchronousTestCase):
    SIZES = (0, 1, SEG - 1, SEG, SEG + 1, 10 * SEG + 7)

    def test_round_trip_and_size_from_length(self) -> None:
        ring = KeyRing(KEY_A)
        for size in self.SIZES:
            plaintext = os.urandom(size)
            blob = seal_seg(ring, plaintext)
            count = max(1, -(-size // SEG))
            self.assertEqual(len(blob), HEADER + size + 16 * count, size)
            self.assertEqual(open_seg(ring, blob), plaintext, size)
            self.assertEqual(reader(ring, io.BytesIO(blob)).size, size)

    def test_writer_output_does_not_depend_on_write_sizes(self) -> None:
        ring = KeyRing(KEY_A)
        plaintext = os.urandom(5 * SEG + 3)
        sink = io.BytesIO()
        writer = SegmentedWriter(
            ring, sink, purpose=PURPOSE, owner=ALICE, context=CONTEXT, segment_size=SEG
        )
        position = 0
        for step in (0, 1, 7, SEG, 3 * SEG, 5000):
            writer.write(plaintext[position : position + step])
            position += step
        writer.write(plaintext[position:])
        self.assertEqual(writer.close(), len(plaintext))
        self.assertEqual(len(sink.getvalue()), HEADER + len(plaintext) + 6 * 16)
        self.assertEqual(open_seg(ring, sink.getvalue()), plaintext)
        self.assertRaises(ValueError, writer.write, b"more")
        self.assertRaises(ValueError, writer.close)

    def test_segments_match_documented_format(self) -> None:
        ring = KeyRing(KEY_A)
        blob = seal_seg(ring, b"a" * SEG + b"b" * 10)
        version, key_id, prefix, size = struct.unpack(">B4s7sI", blob[:HEADER])
        self.assertEqual((version, key_id, size), (2, ring.key_id, SEG))
        aad = blob[:HEADER] + lp(PURPOSE.encode()) + lp(ALICE.encode()) + lp(CONTEXT)
        stream_key = HKDFExpand(
            algorithm=hashes.SHA256(), length=32, info=b"mailgosend stream v1" + aad
        ).derive(ring.derive(PURPOSE, ALICE))
        aead = AESGCM(stream_key)
        first, final = segments(blob)
        self.assertEqual(aead.decrypt(prefix + b"\x00\x00\x00\x00\x00", first, aad), b"a" * SEG)
        self.assertEqual(aead.decrypt(prefix + b"\x00\x00\x00\x01\x01", final, aad), b"b" * 10)

    def test_a_repeated_nonce_prefix_in_another_row_uses_another_key(self) -> None:
        self.patch(crypto.secrets, "token_bytes", lambda size: b"\x07" * size)
        ring = KeyRing(KEY_A)
        row1 = seal_seg(ring, b"same plaintext", context=b"messages:1")
        row2 = seal_seg(ring, b"same plaintext", context=b"messages:2")
        self.assertEqual(row1[:HEADER], row2[:HEADER])
        # Under one key and nonce, GCM would give equal ciphertexts (only the tags would differ).
        self.assertNotEqual(row1[HEADER:-16], row2[HEADER:-16])

    def test_segment_size_limits(self) -> None:
        self.assertRaises(ValueError, KeyRing(KEY_A).seal_segmented, b"x", purpose=PURPOSE,
                          owner=ALICE, context=CONTEXT, segment_size=SEG - 1)

    def test_read_ranges(self) -> None:
        ring = KeyRing(KEY_A)
        plaintext = os.urandom(3 * SEG + 100)
        blob_reader = reader(ring, io.BytesIO(seal_seg(ring, plaintext)))
        cases = [(0, 0), (0, 1), (0, SEG), (SEG - 1, 2), (SEG, SEG), (10, 3 * SEG),
                 (3 * SEG, 100), (3 * SEG + 99, 50), (3 * SEG + 100, 10), (10**9, 5)]
        for offset, length in cases:
            self.assertEqual(blob_reader.read_range(offset, length),
                             plaintext[offset : offset + length], (offset, length))
        self.assertRaises(ValueError, blob_reader.read_range, -1, 5)
        self.assertRaises(ValueError, blob_reader.read_range, 0, -5)

    def test_iter_plaintext_yields_one_chunk_per_segment(self) -> None:
        ring = KeyRing(KEY_A)
        plaintext = os.urandom(3 * SEG + 5)
        chunks = list(reader(ring, io.BytesIO(seal_seg(ring, plaintext))).iter_plaintext())
        self.assertEqual([len(chunk) for chunk in chunks], [SEG, SEG, SEG, 5])
        self.assertEqual(b"".join(chunks), plaintext)

    def test_total_length_bounds_the_blob_in_a_larger_source(self) -> None:
        ring = KeyRing(KEY_A)
        blob = seal_seg(ring, b"bounded" * 400)
        source = io.BytesIO(blob + b"unrelated bytes after the blob")
        self.assertEqual(reader(ring, source, len(blob)).read_range(0, 7000), b"bounded" * 400)
        self.assertRaises(DecryptionError, reader, ring, source, None)


class SegmentedTamperingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ring = KeyRing(KEY_A)
        self.plaintext = os.urandom(2 * SEG + 300)
        self.blob = seal_seg(self.ring, self.plaintext)

    def assertFails(self, blob: bytes, owner: str = ALICE, context: bytes = CONTEXT) -> None:
        self.assertRaises(DecryptionError, open_seg, self.ring, blob, owner, context)

    def test_any_modified_byte_fails(self) -> None:
        for position in range(len(self.blob)):
            tampered = bytearray(self.blob)
            tampered[position] ^= 0x80
            self.assertFails(bytes(tampered))

    def test_other_owner_context_or_key_fails(self) -> None:
        self.assertFails(self.blob, owner=BOB)
        self.assertFails(self.blob, context=b"messages:124")
        self.assertRaises(DecryptionError, open_seg, KeyRing(KEY_B), self.blob)

    def test_truncation_at_a_segment_boundary_fails(self) -> None:
        for keep in (2, 1):
            cut = self.blob[: HEADER + keep * STRIDE]
            self.assertFails(cut)
            self.assertRaises(DecryptionError, reader, self.ring, io.BytesIO(cut))
        self.assertFails(self.blob[:HEADER])
        self.assertFails(self.blob[: HEADER - 1])

    def test_truncation_inside_a_segment_fails(self) -> None:
        for cut in (len(self.blob) - 1, len(self.blob) - 17, HEADER + STRIDE + 5, HEADER + 3):
            self.assertFails(self.blob[:cut])

    def test_trailing_bytes_fail(self) -> None:
        for extra in (b"\x00", b"\x00" * 16, b"\x00" * 17, segments(self.blob)[0]):
            self.assertFails(self.blob + extra)

    def test_dropped_segment_fails(self) -> None:
        first, second, final = segments(self.blob)
        self.assertFails(self.blob[:HEADER] + first + final)
        self.assertFails(self.blob[:HEADER] + second + final)

    def test_reordered_or_duplicated_segment_fails(self) -> None:
        first, second, final = segments(self.blob)
        for order in ((second, first, final), (first, first, final), (first, second, second)):
            self.assertFails(self.blob[:HEADER] + b"".join(order))

    def test_range_read_of_a_swapped_segment_fails(self) -> None:
        first, second, final = segments(self.blob)
        swapped = reader(self.ring, io.BytesIO(self.blob[:HEADER] + second + first + final))
        self.assertRaises(DecryptionError, swapped.read_range, SEG + 10, 10)

    def test_unknown_version_fails_naming_the_version(self) -> None:
        for bad in (b"\x03" + self.blob[1:], seal(self.ring, b"a version 1 envelope")):
            with self.assertRaises(DecryptionError) as caught:
                open_seg(self.ring, bad)
            self.assertIn(f"version {bad[0]}", str(caught.exception))

    def test_unknown_key_id_fails(self) -> None:
        self.assertFails(self.blob[:1] + b"\xff\xff\xff\xff" + self.blob[5:])

    def test_claimed_length_beyond_the_segment_counter_fails(self) -> None:
        too_long = HEADER + 2**32 * STRIDE + 1
        self.assertRaises(DecryptionError, reader, self.ring, io.BytesIO(self.blob), too_long)

    def test_forged_segment_size_fails(self) -> None:
        for size in (0, 512, 2**31):
            forged = self.blob[:12] + struct.pack(">I", size) + self.blob[HEADER:]
            self.assertFails(forged)


class LargeBlobRangeTests(SynchronousTestCase):
    def test_middle_range_decrypts_only_the_needed_segments(self) -> None:
        segment_size = 64 * 1024
        ring = KeyRing(KEY_A)
        plaintext = os.urandom(5_000_000)
        blob = ring.seal_segmented(
            plaintext, purpose=PURPOSE, owner=ALICE, context=CONTEXT, segment_size=segment_size
        )
        source = CountingFile(blob)
        blob_reader = reader(ring, source)
        offset, length = 2_500_000, 100_000  # spans segments 38 and 39 of 77
        middle = blob_reader.read_range(offset, length)
        self.assertEqual(middle, plaintext[offset : offset + length])
        stride = segment_size + 16
        final_segment = len(blob) - HEADER - 76 * stride
        # Header, the final segment (read once to authenticate the length), and the two touched.
        self.assertEqual(source.bytes_read, HEADER + final_segment + 2 * stride)
        self.assertEqual(blob_reader.size, len(plaintext))

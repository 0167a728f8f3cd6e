"""delivery.dsn: RFC 3464 reports built, then read back with the stdlib email package."""

from __future__ import annotations

import email
import re
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import Message
from typing import Any

from twisted.trial import unittest

from mailgosend.delivery.dsn import (
    DSNParseError,
    RecipientStatus,
    build_dsn,
    decode_address,
    parse_dsn,
    should_bounce,
)

ARRIVED = datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)
TRIED = datetime(2025, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))
NOW = datetime(2025, 3, 1, 10, 5, tzinfo=timezone.utc)
UNTIL = datetime(2025, 3, 6, 9, 30, tzinfo=timezone.utc)
LONG_REPLY = ("550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
              "550 5.1.1 double-checking the recipient's email address for typos or "
              "unnecessary spaces. https://support.example/answer/6596 x12 - gsmtp")
ORIGINAL = (b"From: Alice <alice@example.org>\r\n"
            b"To: bob@example.com\r\n"
            b"Subject: quarterly figures\r\n"
            b"Message-ID: <m1@example.org>\r\n"
            b"\r\n"
            b"THE SECRET BODY\r\n")

FAILED = RecipientStatus(recipient="bob@example.com", original_recipient="Bob@Example.com",
                         action="failed", status="5.1.1", remote_mta="mx.example.com",
                         diagnostic=LONG_REPLY, last_attempt=TRIED)
DELAYED = RecipientStatus(recipient="carol@example.net", original_recipient=None,
                          action="delayed", status="4.4.1", remote_mta=None,
                          diagnostic="451 4.4.1 Connection timed out", last_attempt=TRIED,
                          will_retry_until=UNTIL)


def make(**overrides: Any) -> bytes:
    args: dict[str, Any] = dict(
        reporting_mta="mail.example.org", original_envelope_id="QX-42", arrival_date=ARRIVED,
        original_sender="alice@example.org", recipients=[FAILED], original_headers=ORIGINAL,
        kind="failure", now=NOW, message_id_domain="example.org")
    args.update(overrides)
    return build_dsn(**args)


def stdlib(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=policy.default)


def status_blocks(raw: bytes) -> list[Message]:
    """The delivery-status part as the stdlib splits it: one Message per block."""
    parts = stdlib(raw).get_payload()
    assert isinstance(parts, list) and isinstance(parts[1], Message)
    blocks = parts[1].get_payload()
    assert isinstance(blocks, list)
    return [block for block in blocks if isinstance(block, Message)]


class StructureTests(unittest.TestCase):
    def test_multipart_report_with_three_parts(self):
        msg = stdlib(make())
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertEqual([p.get_content_type() for p in msg.get_payload()],
                         ["text/plain", "message/delivery-status", "text/rfc822-headers"])
        self.assertEqual(msg.defects, [])

    def test_top_level_header_fields(self):
        msg = stdlib(make())
        self.assertEqual(msg["From"], "Mail Delivery System <MAILER-DAEMON@mail.example.org>")
        self.assertEqual(msg["To"], "alice@example.org")
        self.assertEqual(msg["Subject"], "Undelivered Mail Returned to Sender")
        self.assertEqual(msg["Auto-Submitted"], "auto-replied")
        self.assertEqual(msg["MIME-Version"], "1.0")
        self.assertEqual(msg["Date"].datetime, NOW)
        self.assertRegex(msg["Message-ID"], r"^<[0-9a-f]{32}@example\.org>$")
        self.assertEqual((msg["In-Reply-To"], msg["References"]),
                         ("<m1@example.org>", "<m1@example.org>"))

    def test_message_ids_differ_between_reports(self):
        self.assertNotEqual(stdlib(make())["Message-ID"], stdlib(make())["Message-ID"])

    def test_no_in_reply_to_without_original_message_id(self):
        msg = stdlib(make(original_headers=b"Subject: x\r\n"))
        self.assertIsNone(msg["In-Reply-To"])

    def test_every_line_ends_in_crlf_and_fits(self):
        raw = make(recipients=[FAILED, DELAYED],
                   original_headers=ORIGINAL.replace(b"\r\n", b"\n"))
        self.assertNotRegex(raw, rb"[^\r]\n")
        self.assertNotRegex(raw, rb"\r[^\n]")
        self.assertTrue(raw.endswith(b"\r\n"))
        for line in raw.split(b"\r\n"):
            self.assertLessEqual(len(line), 78, line)

    def test_human_part_names_recipient_and_remote_reply(self):
        text = stdlib(make()).get_payload()[0].get_content()
        self.assertIn("<bob@example.com>: delivery failed", text)
        self.assertIn("mx.example.com said:", text)
        self.assertIn("550 5.1.1 double-checking", text)


class FieldTests(unittest.TestCase):
    def test_per_message_fields(self):
        block = status_blocks(make())[0]
        self.assertEqual(block["Reporting-MTA"], "dns; mail.example.org")
        self.assertEqual(block["Original-Envelope-Id"], "QX-42")
        self.assertEqual(block["Arrival-Date"], "Sat, 01 Mar 2025 09:30:00 +0000")

    def test_per_recipient_fields_of_a_failure(self):
        block = status_blocks(make())[1]
        self.assertEqual(block["Original-Recipient"], "rfc822;Bob@Example.com")
        self.assertEqual(block["Final-Recipient"], "rfc822;bob@example.com")
        self.assertEqual(block["Action"], "failed")
        self.assertEqual(block["Status"], "5.1.1")
        self.assertEqual(block["Remote-MTA"], "dns; mx.example.com")
        self.assertEqual(block["Last-Attempt-Date"], "Sat, 01 Mar 2025 10:00:00 +0100")
        self.assertIsNone(block["Will-Retry-Until"])

    def test_multi_line_reply_becomes_one_folded_diagnostic(self):
        block = status_blocks(make())[1]
        self.assertEqual(block["Diagnostic-Code"], "smtp; " + LONG_REPLY.replace("\n", " "))
        self.assertIn(b"Diagnostic-Code: smtp; 550-5.1.1", make())

    def test_optional_fields_are_left_out(self):
        raw = make(original_envelope_id=None, recipients=[RecipientStatus(
            "bob@example.com", None, "failed", "5.4.4", None, None, None)])
        per_message, recipient = status_blocks(raw)
        self.assertNotIn("Original-Envelope-Id", per_message)
        self.assertEqual(sorted(recipient.keys()), ["Action", "Final-Recipient", "Status"])

    def test_delay_notice(self):
        raw = make(recipients=[DELAYED], kind="delay")
        self.assertEqual(stdlib(raw)["Subject"], "Delayed Mail (still being retried)")
        block = status_blocks(raw)[1]
        self.assertEqual(block["Action"], "delayed")
        self.assertEqual(block["Status"], "4.4.1")
        self.assertEqual(block["Will-Retry-Until"], "Thu, 06 Mar 2025 09:30:00 +0000")
        self.assertIn("will keep trying", stdlib(raw).get_payload()[0].get_content())

    def test_success_report_delivered_and_relayed(self):
        # RFC 3461 NOTIFY=SUCCESS (issue 9 item 3): "delivered" here, "relayed" to a peer
        # without DSN (§5.2.2); a success report needs one of them.
        delivered = RecipientStatus(recipient="bob@example.com", original_recipient=None,
                                    action="delivered", status="2.0.0", remote_mta=None,
                                    diagnostic=None, last_attempt=TRIED)
        relayed = RecipientStatus(recipient="dan@example.net", original_recipient=None,
                                  action="relayed", status="2.0.0",
                                  remote_mta="mx.example.net", diagnostic="250 2.0.0 ok",
                                  last_attempt=TRIED)
        raw = make(recipients=[delivered, relayed], kind="success")
        self.assertEqual(stdlib(raw)["Subject"], "Successful Mail Delivery Report")
        blocks = status_blocks(raw)
        self.assertEqual([(b["Action"], b["Status"]) for b in blocks[1:]],
                         [("delivered", "2.0.0"), ("relayed", "2.0.0")])
        text = stdlib(raw).get_payload()[0].get_content()
        self.assertIn("<bob@example.com>: delivered to the mailbox", text)
        self.assertIn("<dan@example.net>: relayed to a server without delivery reports", text)
        self.assertNotIn(b"THE SECRET BODY", raw)
        with self.assertRaises(ValueError):
            make(recipients=[FAILED], kind="success")

    def test_one_block_per_recipient_in_order(self):
        blocks = status_blocks(make(recipients=[FAILED, DELAYED]))
        self.assertEqual([b["Final-Recipient"] for b in blocks[1:]],
                         ["rfc822;bob@example.com", "rfc822;carol@example.net"])

    def test_reply_text_cannot_inject_fields(self):
        evil = RecipientStatus("bob@example.com", "x@example.com\r\nAction: delivered",
                               "failed", "5.0.0", "mx.example.com\r\nX-Evil: 1",
                               "550 no\r\n\r\nFinal-Recipient: rfc822;eve@example.com", None)
        raw = make(original_envelope_id="id\r\nReporting-MTA: dns; evil", recipients=[evil])
        blocks = status_blocks(raw)
        self.assertEqual(len(blocks), 2)
        self.assertEqual(blocks[1].get_all("Action"), ["failed"])
        self.assertIsNone(blocks[1]["X-Evil"])
        self.assertEqual(blocks[0].get_all("Reporting-MTA"), ["dns; mail.example.org"])


class ReturnedHeadersTests(unittest.TestCase):
    def test_original_body_is_never_included(self):
        raw = make()
        self.assertNotIn(b"THE SECRET BODY", raw)
        part = stdlib(raw).get_payload()[2]
        self.assertEqual(part.get_payload(decode=True),
                         ORIGINAL.split(b"\r\n\r\n")[0])

    def test_body_cut_also_with_lf_line_ends(self):
        raw = make(original_headers=ORIGINAL.replace(b"\r\n", b"\n"))
        self.assertNotIn(b"THE SECRET BODY", raw)
        self.assertIn(b"Subject: quarterly figures\r\n", raw)

    def test_overlong_header_line_is_quoted_printable(self):
        long_header = b"X-Long: " + b"a" * 1200 + b"\r\n"
        raw = make(original_headers=long_header + ORIGINAL)
        part = stdlib(raw).get_payload()[2]
        self.assertEqual(part["Content-Transfer-Encoding"], "quoted-printable")
        self.assertEqual(part.get_payload(decode=True).split(b"\r\n")[0], long_header[:-2])
        self.assertTrue(raw.isascii())


class InternationalTests(unittest.TestCase):
    def test_non_ascii_recipient_for_ascii_sender_stays_7bit(self):
        recipient = RecipientStatus("jörg+news@bücher.example", "jörg@bücher.example",
                                    "failed", "5.1.1", "mx.xn--bcher-kva.example",
                                    "550 5.1.1 no such user", TRIED)
        raw = make(recipients=[recipient])
        self.assertTrue(raw.isascii())
        msg = stdlib(raw)
        self.assertEqual(msg.get_payload()[1].get_content_type(), "message/delivery-status")
        block = msg.get_payload()[1].get_payload()[1]
        self.assertEqual(block["Final-Recipient"],
                         "utf-8;j\\x{F6}rg\\x{2B}news@b\\x{FC}cher.example")
        self.assertEqual(decode_address(block["Final-Recipient"]),
                         ("utf-8", "jörg+news@bücher.example"))
        self.assertEqual(decode_address(block["Original-Recipient"]),
                         ("utf-8", "jörg@bücher.example"))
        self.assertIn("<jörg+news@bücher.example>", msg.get_payload()[0].get_content())

    def test_non_ascii_sender_gets_a_global_report(self):
        recipient = RecipientStatus("ünal@bücher.example", None, "failed", "5.1.1", None,
                                    "550 5.1.1 unknown", TRIED)
        original = "From: jörg@bücher.example\r\nSubject: grüße\r\n\r\nbody".encode()
        raw = make(original_sender="jörg@bücher.example", recipients=[recipient],
                   original_headers=original)
        self.assertIn("To: jörg@bücher.example\r\n".encode(), raw)
        msg = stdlib(raw)
        self.assertEqual([p.get_content_type() for p in msg.get_payload()],
                         ["text/plain", "message/global-delivery-status",
                          "message/global-headers"])
        parsed = parse_dsn(raw)
        self.assertEqual(parsed.status_type, "message/global-delivery-status")
        self.assertEqual(decode_address(parsed.recipients[0]["final-recipient"]),
                         ("utf-8", "ünal@bücher.example"))
        self.assertEqual(parsed.returned.decode(),
                         "From: jörg@bücher.example\r\nSubject: grüße")


class ParseTests(unittest.TestCase):
    def test_round_trip_field_by_field(self):
        parsed = parse_dsn(make(recipients=[FAILED, DELAYED]))
        self.assertEqual(parsed.report_type, "delivery-status")
        self.assertEqual(parsed.status_type, "message/delivery-status")
        self.assertEqual(dict(parsed.per_message), {
            "reporting-mta": "dns; mail.example.org", "original-envelope-id": "QX-42",
            "arrival-date": "Sat, 01 Mar 2025 09:30:00 +0000"})
        first, second = parsed.recipients
        self.assertEqual(first["diagnostic-code"], "smtp; " + LONG_REPLY.replace("\n", " "))
        self.assertEqual(first["original-recipient"], "rfc822;Bob@Example.com")
        self.assertEqual(second["will-retry-until"], "Thu, 06 Mar 2025 09:30:00 +0000")
        self.assertEqual(parsed.returned_type, "text/rfc822-headers")
        self.assertIn("<carol@example.net>: delivery delayed", parsed.human_text)

    def test_foreign_dsn_with_lf_and_encoded_report(self):
        raw = (b"From: MAILER-DAEMON@mx.example.com\n"
               b"Content-Type: multipart/report; report-type=delivery-status;\n"
               b'\tboundary="XX"\n\n'
               b"--XX\nContent-Type: text/plain\n\nSorry.\n"
               b"--XX\nContent-Type: message/delivery-status\n"
               b"Content-Transfer-Encoding: base64\n\n"
               b"UmVwb3J0aW5nLU1UQTogZG5zOyBteC5leGFtcGxlLmNvbQoKRmluYWwtUmVjaXBpZW50OiBy\n"
               b"ZmM4MjI7IGJvYkBleGFtcGxlLmNvbQpBY3Rpb246IGZhaWxlZApTdGF0dXM6IDUuMi4yCg==\n"
               b"--XX\nContent-Type: message/rfc822\n\nSubject: hi\n\nbody\n"
               b"--XX--\n")
        parsed = parse_dsn(raw)
        self.assertEqual(parsed.per_message, {"reporting-mta": "dns; mx.example.com"})
        self.assertEqual(parsed.recipients, ({"final-recipient": "rfc822; bob@example.com",
                                              "action": "failed", "status": "5.2.2"},))
        self.assertEqual(parsed.human_text.strip(), "Sorry.")
        self.assertEqual(parsed.returned_type, "message/rfc822")

    def test_not_a_report_is_refused(self):
        self.assertRaises(DSNParseError, parse_dsn, ORIGINAL)
        self.assertRaises(DSNParseError, parse_dsn,
                          b'Content-Type: multipart/report; boundary="b"\r\n\r\n--b--\r\n')

    def test_decode_address_table(self):
        cases = [("rfc822;a@example.com", ("rfc822", "a@example.com")),
                 ("RFC822; a@example.com", ("rfc822", "a@example.com")),
                 ("utf-8;j\\x{F6}rg@x.example", ("utf-8", "jörg@x.example")),
                 ("utf-8; \\x{1F600}@x.example", ("utf-8", "\U0001F600@x.example")),
                 ("a@example.com", ("", "a@example.com"))]
        for value, expected in cases:
            self.assertEqual(decode_address(value), expected, value)


class PolicyTests(unittest.TestCase):
    def test_should_bounce_table(self):
        cases = [("", False), ("<>", False), (" <> ", False),
                 ("MAILER-DAEMON@example.com", False), ("<mailer-daemon@example.com>", False),
                 ("MAILER-DAEMON", False), ('"mailer-daemon"@example.com', False),
                 ("alice@example.com", True), ("<alice@example.com>", True),
                 ("mailer-daemon-fan@example.com", True), ("jörg@bücher.example", True)]
        for sender, expected in cases:
            self.assertEqual(should_bounce(sender), expected, sender)

    def test_no_report_to_null_sender_or_mailer_daemon(self):
        for sender in ("", "<>", "MAILER-DAEMON@example.net"):
            self.assertRaises(ValueError, make, original_sender=sender)

    def test_kind_must_match_the_recipients(self):
        self.assertRaises(ValueError, make, kind="delay", recipients=[FAILED])
        self.assertRaises(ValueError, make, kind="failure", recipients=[DELAYED])
        self.assertRaises(ValueError, make, recipients=[])

    def test_recipient_status_is_validated(self):
        bad: list[dict[str, Any]] = [
            dict(action="bounced", status="5.1.1"),
            dict(action="failed", status="4.1.1"),
            dict(action="delayed", status="5.1.1"),
            dict(action="failed", status="5.1"),
            dict(action="failed", status="5.1.1\r\nX: y"),
            dict(action="failed", status="5.1.1", will_retry_until=UNTIL),
        ]
        for fields in bad:
            self.assertRaises(ValueError, RecipientStatus, "a@example.com", None,
                              remote_mta=None, diagnostic=None, last_attempt=None, **fields)

    def test_naive_dates_are_refused(self):
        self.assertRaises(ValueError, make, now=datetime(2025, 3, 1, 10, 0))


class BoundaryTests(unittest.TestCase):
    def test_boundary_does_not_occur_in_any_part(self):
        raw = make()
        boundary = stdlib(raw).get_boundary()
        self.assertEqual(len(re.findall(re.escape(boundary.encode()), raw)), 5)

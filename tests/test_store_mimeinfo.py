"""mimeinfo.analyse over real-world message shapes: part numbers, byte offsets, sizes, line
counts, envelope, snippet, attachments; JSON round trip; deep nesting without recursion."""

from __future__ import annotations

import mmap
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from mailgosend.store.mimeinfo import MAX_DEPTH, MessageInfo, NoSuchSection, Part, analyse


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def walk(part: Part) -> list[Part]:
    found, stack = [], [part]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(reversed(node.parts))
    return found


def numbered(info: MessageInfo) -> dict[str, Part]:
    """Parts by number; the top entity of an encapsulated multipart shares its parent's number,
    so the first (outer) part wins."""
    parts: dict[str, Part] = {}
    for part in walk(info.root):
        parts.setdefault(part.number, part)
    return parts


PLAIN = crlf("""\
Date: Sat, 21 Nov 2026 10:00:00 +0000
From: Alice Example <alice@example.com>
To: bob@example.com,
 carol@example.com
Subject: Lunch
Message-ID: <lunch@example.com>
In-Reply-To: <earlier@example.com>

Shall we   meet
at noon?
""")

ALTERNATIVE = crlf("""\
From: alice@example.com
Subject: alt
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt"

This is a preamble.
--alt
Content-Type: text/html; charset=utf-8

<html><head><style>p {color: red}</style></head><body><p>Hello &amp; welcome</p></body></html>
--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello =C3=A9t=C3=A9
second line
--alt--
epilogue
""")

MIXED = crlf("""\
From: alice@example.com
Subject: report
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: text/plain

See attached.
--outer
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64
Content-ID: <pdf@example.com>
Content-Description: the report

JVBERi0xLjQKJcfs
j6IKMSAwIG9iago=
--outer--
""")

FORWARD = crlf("""\
From: alice@example.com
Subject: Fwd: inner
Content-Type: multipart/mixed; boundary="f"

--f
Content-Type: text/plain

Forwarding.
--f
Content-Type: message/rfc822

From: dave@example.net
Subject: inner
To: alice@example.com
Content-Type: multipart/alternative; boundary="g"

--g
Content-Type: text/plain

inner text
--g
Content-Type: text/html

<p>inner</p>
--g--
--f
Content-Type: message/rfc822

Subject: simple inner

just text
--f--
""")


class StructureTests(SynchronousTestCase):
    def assertOffsetsConsistent(self, raw: bytes, info: MessageInfo) -> None:
        for part in walk(info.root):
            self.assertLessEqual(part.header_start, part.body_start)
            self.assertLessEqual(part.body_start, part.body_end)
            self.assertLessEqual(part.body_end, len(raw))
            self.assertEqual(part.size, len(raw[part.body_start:part.body_end]))

    def test_plain_message_is_part_one_with_raw_envelope(self) -> None:
        info = analyse(PLAIN)
        root = info.root
        self.assertEqual((root.number, root.content_type), ("1", "text/plain"))
        self.assertEqual(root.params, [("charset", "us-ascii")])  # RFC 2045 §5.2 default
        self.assertEqual(PLAIN[root.body_start:root.body_end], b"Shall we   meet\r\nat noon?\r\n")
        self.assertEqual(root.lines, 2)
        self.assertEqual(info.section_range("1"), info.section_range("TEXT"))
        self.assertEqual(info.section_range(""), (0, len(PLAIN)))
        start, end = info.section_range("HEADER")
        self.assertTrue(PLAIN[start:end].startswith(b"Date: "))
        self.assertTrue(PLAIN[start:end].endswith(b"<earlier@example.com>\r\n\r\n"))
        envelope = info.envelope
        self.assertEqual(envelope.to, "bob@example.com, carol@example.com")  # unfolded
        self.assertEqual(envelope.date, "Sat, 21 Nov 2026 10:00:00 +0000")
        self.assertEqual(envelope.message_id, "<lunch@example.com>")
        self.assertEqual(envelope.in_reply_to, "<earlier@example.com>")
        self.assertIsNone(envelope.sender)
        self.assertEqual((info.subject, info.from_name, info.from_address),
                         ("Lunch", "Alice Example", "alice@example.com"))
        self.assertEqual(info.snippet, "Shall we meet at noon?")
        self.assertFalse(info.has_attachments)
        self.assertRaises(NoSuchSection, info.find_part, "2")
        self.assertRaises(NoSuchSection, info.section_range, "1.1")

    def test_alternative_parts_have_exact_offsets_and_snippet_prefers_plain_text(self) -> None:
        info = analyse(ALTERNATIVE)
        self.assertOffsetsConsistent(ALTERNATIVE, info)
        parts = numbered(info)
        self.assertEqual(info.root.number, "")
        self.assertEqual(parts["1"].content_type, "text/html")
        self.assertEqual(parts["2"].content_type, "text/plain")
        self.assertEqual(ALTERNATIVE[slice(*info.section_range("2"))],
                         b"Hello =C3=A9t=C3=A9\r\nsecond line")  # delimiter's CRLF excluded
        self.assertEqual(ALTERNATIVE[slice(*info.section_range("2.MIME"))],
                         b"Content-Type: text/plain; charset=utf-8\r\n"
                         b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
        self.assertEqual((parts["2"].encoding, parts["2"].lines), ("quoted-printable", 2))
        self.assertEqual(parts["2"].params, [("charset", "utf-8")])
        self.assertEqual(info.snippet, "Hello été second line")
        self.assertTrue(ALTERNATIVE[slice(*info.section_range("TEXT"))].startswith(b"This is"))

    def test_html_only_snippet_drops_markup_styles_and_entities(self) -> None:
        raw = crlf("Content-Type: text/html\n\n<style>p{}</style><p>Hi &amp; <b>bye</b></p>\n")
        self.assertEqual(analyse(raw).snippet, "Hi & bye")

    def test_mixed_with_attachment_lists_it_with_decoded_size(self) -> None:
        info = analyse(MIXED)
        self.assertOffsetsConsistent(MIXED, info)
        pdf = info.find_part("2")
        self.assertEqual(MIXED[pdf.body_start:pdf.body_end],
                         b"JVBERi0xLjQKJcfs\r\nj6IKMSAwIG9iago=")
        self.assertEqual((pdf.encoding, pdf.id, pdf.description),
                         ("base64", "<pdf@example.com>", "the report"))
        self.assertEqual(pdf.disposition, "attachment")
        self.assertEqual(pdf.disposition_params, [("filename", "report.pdf")])
        self.assertIsNone(pdf.lines)
        self.assertTrue(info.has_attachments)
        [attachment] = info.attachments
        self.assertEqual((attachment.number, attachment.filename, attachment.content_type),
                         ("2", "report.pdf", "application/pdf"))
        self.assertEqual(attachment.size, 24)  # 32 base64 characters
        self.assertEqual(info.snippet, "See attached.")

    def test_nested_message_parts_header_text_and_envelope(self) -> None:
        info = analyse(FORWARD)
        self.assertOffsetsConsistent(FORWARD, info)
        forwarded = info.find_part("2")
        self.assertEqual(forwarded.content_type, "message/rfc822")
        assert forwarded.envelope is not None
        self.assertEqual((forwarded.envelope.subject, forwarded.envelope.from_),
                         ("inner", "dave@example.net"))
        self.assertTrue(FORWARD[slice(*info.section_range("2"))].startswith(b"From: dave"))
        header = FORWARD[slice(*info.section_range("2.HEADER"))]
        self.assertTrue(header.startswith(b"From: dave") and header.endswith(b'"g"\r\n\r\n'))
        self.assertTrue(FORWARD[slice(*info.section_range("2.TEXT"))].startswith(b"--g\r\n"))
        self.assertEqual(FORWARD[slice(*info.section_range("2.1"))], b"inner text")
        self.assertEqual(FORWARD[slice(*info.section_range("2.2"))], b"<p>inner</p>")
        self.assertEqual(info.find_part("2.2").number, "2.2")
        # 13 line breaks, and "--g--" ends the body without one (the CRLF is the delimiter's).
        self.assertEqual(forwarded.lines, 14)
        # A single-part encapsulated message: its body is 3.1.
        self.assertEqual(FORWARD[slice(*info.section_range("3.1"))], b"just text")
        self.assertEqual(info.find_part("3.1").number, "3.1")
        self.assertRaises(NoSuchSection, info.find_part, "3.2")
        self.assertRaises(NoSuchSection, info.section_range, "1.HEADER")
        self.assertEqual([a.number for a in info.attachments], ["2", "3"])
        self.assertEqual(info.snippet, "Forwarding.")

    def test_rfc2047_subject_and_from_decoded_for_display_only(self) -> None:
        raw = crlf("From: =?utf-8?q?J=C3=B6rg?= <j@example.de>\n"
                   "Subject: =?utf-8?B?R3LDvMOfZQ==?= =?iso-8859-1?q?_aus_K=F6ln?=\n\nx\n")
        info = analyse(raw)
        self.assertEqual(info.envelope.subject,
                         "=?utf-8?B?R3LDvMOfZQ==?= =?iso-8859-1?q?_aus_K=F6ln?=")
        self.assertEqual(info.subject, "Grüße aus Köln")
        self.assertEqual((info.from_name, info.from_address), ("Jörg", "j@example.de"))

    def test_eight_bit_header_survives_json_byte_for_byte(self) -> None:
        raw = b"Subject: caf\xe9 \xff\r\nFrom: \xc3\xa9mile <e@example.fr>\r\n\r\nbody\r\n"
        info = MessageInfo.from_json(analyse(raw).to_json())
        assert info.envelope.subject is not None
        self.assertEqual(info.envelope.subject.encode("utf-8", "surrogateescape"), b"caf\xe9 \xff")
        self.assertEqual(info.subject, "café ÿ")  # not UTF-8: read as cp1252
        self.assertEqual(info.from_name, "émile")

    def test_header_block_is_kept_byte_for_byte_through_json(self) -> None:
        raw = b"Subject: caf\xe9\r\nX-Fold: a\r\n b\r\n\r\nbody\r\n"
        info = MessageInfo.from_json(analyse(raw).to_json())
        self.assertEqual(info.header_bytes(), raw[:raw.index(b"\r\n\r\n") + 4])

    def test_huge_header_blocks_are_not_kept_and_old_structures_have_none(self) -> None:
        from mailgosend.store.mimeinfo import HEADER_KEEP_LIMIT
        raw = b"X-Big: " + b"x" * HEADER_KEEP_LIMIT + b"\r\n\r\nbody\r\n"
        self.assertIsNone(analyse(raw).header_bytes())
        doc = analyse(b"Subject: s\r\n\r\nb").to_json().replace(
            b',"header":"Subject: s\\r\\n\\r\\n"', b"")
        self.assertNotIn(b'"header"', doc)
        self.assertIsNone(MessageInfo.from_json(doc).header)

    def test_rfc2231_filename_continuations_and_charset(self) -> None:
        raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
                   "Content-Type: application/octet-stream;\n"
                   " name*0*=utf-8''%E2%82%AC%20rate;\n name*1=\"s.txt\"\n"
                   "Content-Disposition: attachment;\n filename*=UTF-8'en'%E2%82%AC%20rates.txt\n"
                   "\nabc\n--b--\n")
        part = analyse(raw).find_part("1")
        self.assertEqual(part.params, [("name*", "utf-8''%E2%82%AC%20rates.txt")])
        self.assertEqual(part.disposition_params, [("filename*", "UTF-8'en'%E2%82%AC%20rates.txt")])
        self.assertEqual(part.filename, "€ rates.txt")

    def test_rfc2047_encoded_attachment_name_is_decoded(self) -> None:
        raw = crlf('Content-Type: application/pdf; name="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="\n\nx\n')
        self.assertEqual(analyse(raw).attachments[0].filename, "résumé.pdf")

    def test_missing_final_boundary_runs_last_part_to_the_end(self) -> None:
        raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfirst\n--b\n\nlast line")
        info = analyse(raw)
        self.assertEqual(len(info.root.parts), 2)
        self.assertEqual(raw[slice(*info.section_range("2"))], b"last line")
        self.assertEqual(info.find_part("2").lines, 1)

    def test_bare_lf_message(self) -> None:
        raw = (b"Subject: lf\nContent-Type: multipart/mixed; boundary=x\n\n--x\n"
               b"Content-Type: text/plain\n\none\ntwo\n--x--\n")
        info = analyse(raw)
        self.assertEqual(info.envelope.subject, "lf")
        self.assertEqual(raw[slice(*info.section_range("1"))], b"one\ntwo")
        self.assertEqual(info.find_part("1").lines, 2)
        self.assertEqual(raw[slice(*info.section_range("1.MIME"))], b"Content-Type: text/plain\n\n")

    def test_no_headers_at_all_is_all_body(self) -> None:
        raw = b"just some text\r\nwithout a header\r\n"
        info = analyse(raw)
        self.assertEqual((info.root.header_start, info.root.body_start), (0, 0))
        self.assertEqual(info.section_range("TEXT"), (0, len(raw)))
        self.assertEqual(info.envelope.subject, None)
        self.assertEqual(info.snippet, "just some text without a header")

    def test_empty_message(self) -> None:
        info = analyse(b"")
        self.assertEqual((info.size, info.root.size, info.root.lines), (0, 0, 0))

    def test_multipart_without_boundary_is_read_as_text(self) -> None:
        info = analyse(crlf("Content-Type: multipart/mixed\n\n--x\nhello\n"))
        self.assertEqual((info.root.content_type, info.root.number), ("text/plain", "1"))
        self.assertEqual(info.root.parts, [])

    def test_longer_boundary_and_trailing_garbage_are_not_delimiters(self) -> None:
        raw = crlf("Content-Type: multipart/mixed; boundary=abc\n\n--abc  \n"
                   "Content-Type: multipart/alternative; boundary=abcd\n\n--abcd\n\nA\n"
                   "--abcdX is text\n--abcd--\n--abc--\n")
        info = analyse(raw)
        self.assertEqual(len(info.root.parts), 1)
        self.assertEqual(raw[slice(*info.section_range("1.1"))], b"A\r\n--abcdX is text")

    def test_digest_parts_default_to_message_rfc822(self) -> None:
        raw = crlf("Content-Type: multipart/digest; boundary=d\n\n"
                   "--d\n\nSubject: one\n\nbody\n--d--\n")
        part = analyse(raw).find_part("1")
        self.assertEqual(part.content_type, "message/rfc822")
        assert part.envelope is not None
        self.assertEqual(part.envelope.subject, "one")

    def test_section_names_are_case_insensitive_and_header_fields_give_the_header(self) -> None:
        info = analyse(FORWARD)
        self.assertEqual(info.section_range("header.fields"), info.section_range("HEADER"))
        self.assertEqual(info.section_range("2.header"), info.section_range("2.HEADER"))
        for bad in ("MIME", "0", "x", "1.0", "9", "1.TEXT"):
            self.assertRaises(NoSuchSection, info.section_range, bad)

    def test_json_round_trip_keeps_everything(self) -> None:
        for raw in (PLAIN, ALTERNATIVE, MIXED, FORWARD):
            info = analyse(raw)
            self.assertEqual(MessageInfo.from_json(info.to_json()), info)

    def test_mmap_input_gives_the_same_result_as_bytes(self) -> None:
        with tempfile.TemporaryFile() as f:
            f.write(FORWARD)
            f.flush()
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                self.assertEqual(analyse(mapped), analyse(FORWARD))

    def test_ten_thousand_nested_multiparts_are_capped_without_recursion(self) -> None:
        depth = 10_000
        raw = (b"Subject: deep\r\n"
               + b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
                          for i in range(depth))
               + b"Content-Type: text/plain\r\n\r\nbottom"
               + b"".join(b"\r\n--b%d--" % i for i in reversed(range(depth))) + b"\r\n")
        info = analyse(raw)
        node, levels = info.root, 0
        while node.parts:
            node, levels = node.parts[0], levels + 1
        self.assertEqual(levels, MAX_DEPTH)
        self.assertEqual(node.content_type, "application/octet-stream")
        self.assertEqual(info.find_part(".".join(["1"] * MAX_DEPTH)), node)
        self.assertEqual(MessageInfo.from_json(info.to_json()).root.parts[0].number, "1")

    def test_ten_thousand_nested_messages_are_capped_without_recursion(self) -> None:
        raw = b"Content-Type: message/rfc822\r\n\r\n" * 10_000 + b"body\r\n"
        info = analyse(raw)
        node, levels = info.root, 0
        while node.parts:
            node, levels = node.parts[0], levels + 1
        self.assertEqual(levels, MAX_DEPTH)
        self.assertEqual(node.content_type, "application/octet-stream")
        MessageInfo.from_json(info.to_json())

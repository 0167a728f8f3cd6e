"""The spam rules table, case by case (pure functions, no DNS)."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.trial import unittest

from mailgosend.spam.rules import facts_from, score_auth, score_dnsbl, score_headers
from mailgosend.store.mimeinfo import analyse
from mailgosend.spam.verdict import combine

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
GOOD = (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
        b"Date: Sun, 22 Nov 2026 11:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n"
        b"Subject: Lunch tomorrow\r\n\r\nHi Bob.\r\n")


def parse(raw: bytes):  # type: ignore[no-untyped-def]
    end = raw.find(b"\r\n\r\n")
    return facts_from(raw[:end + 4] if end >= 0 else raw, analyse(raw))


def variant(**headers: str) -> bytes:
    lines = GOOD.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    out = []
    for line in lines:
        name = line.split(":", 1)[0].replace("-", "_")
        if name in headers:
            if headers[name] is not None:
                out.append(f"{line.split(':', 1)[0]}: {headers.pop(name)}")
            else:
                headers.pop(name)
        else:
            out.append(line)
    out += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items() if v is not None]
    return ("\r\n".join(out) + "\r\n\r\nbody\r\n").encode()


class RulesTests(unittest.TestCase):
    def names(self, raw: bytes) -> set[str]:
        return {h.name for h in score_headers(parse(raw), NOW)}

    def test_clean_message_hits_nothing(self) -> None:
        self.assertEqual(self.names(GOOD), set())

    def test_rule_table(self) -> None:
        attachment = (b"From: a@example.com\r\nTo: b@example.org\r\nDate: Sun, 22 Nov 2026 "
                      b"11:00:00 +0000\r\nMessage-ID: <2@example.com>\r\nSubject: invoice\r\n"
                      b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                      b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
                      b"Content-Type: application/octet-stream\r\nContent-Disposition: "
                      b"attachment; filename=\"invoice.pdf.exe\"\r\n\r\nMZ\r\n--b--\r\n")
        html = variant(Content_Type="text/html")
        cases = [
            (variant(Date=None), {"MISSING_DATE"}),
            (variant(Date="Tue, 22 Nov 2039 11:00:00 +0000"), {"BAD_DATE"}),
            (variant(Date="yesterday-ish"), {"BAD_DATE"}),
            (variant(Message_ID=None), {"MISSING_MID"}),
            (variant(From=None), {"FROM_NOT_ONE"}),
            (variant(From="a@example.com, b@example.com"), {"FROM_NOT_ONE"}),
            (variant(From='"service@paypal.com" <x@evil.example>'), {"FROM_NAME_SPOOF"}),
            (variant(From="=?utf-8?q?service=40paypal=2Ecom?= <x@evil.example>"),
             {"FROM_NAME_SPOOF"}),
            (variant(Subject="=?utf-8?b?WU9VIEhBVkUgV09OIFRIRSBMT1RURVJZIFRPREFZ?="),
             {"SUBJ_ALL_CAPS"}),
            (variant(Subject="YOU HAVE WON THE LOTTERY TODAY"), {"SUBJ_ALL_CAPS"}),
            (variant(Subject="free money!!!"), {"SUBJ_EXCLAIM"}),
            (variant(Subject=""), {"EMPTY_SUBJECT"}),
            (html, {"HTML_ONLY"}),
            (attachment, {"RISKY_ATTACHMENT"}),
            (variant(Reply_To="collect@elsewhere.example"), {"REPLYTO_ELSEWHERE"}),
            (variant(To=", ".join(f"u{i}@example.org" for i in range(60))), {"MANY_RECIPIENTS"}),
        ]
        for raw, expected in cases:
            self.assertEqual(self.names(raw), expected, msg=raw[:120])

    def test_broken_message_never_raises(self) -> None:
        for raw in [b"", b"\xff\xfe garbage", b"From: \r\n\r\n", b"Subject: =?x?q?bad?=\r\n"]:
            score_headers(parse(raw), NOW)

    def test_auth_points(self) -> None:
        self.assertEqual([h.name for h in score_auth("fail", ["fail"], "fail")],
                         ["SPF_FAIL", "DKIM_FAIL", "DMARC_FAIL"])
        self.assertEqual(score_auth("pass", ["fail", "pass"], "pass"), [])
        self.assertEqual([h.name for h in score_auth("softfail", [], None)], ["SPF_SOFTFAIL"])

    def test_dnsbl_points_are_capped(self) -> None:
        hits = score_dnsbl(["a.example", "b.example", "c.example"])
        self.assertEqual(sum(h.points for h in hits), 8.0)

    def test_verdict_headers_and_threshold(self) -> None:
        verdict = combine(score_dnsbl(["zen.example"]) + score_auth("fail", [], None), 5.0)
        self.assertTrue(verdict.is_spam)
        headers = dict(verdict.headers())
        self.assertEqual(headers["X-Spam-Score"], "7.0")
        self.assertIn("DNSBL(zen.example)=4", headers["X-Spam-Report"])
        self.assertFalse(combine([], 5.0).is_spam)
        self.assertTrue(combine([], 5.0, forced="dmarc quarantine").is_spam)

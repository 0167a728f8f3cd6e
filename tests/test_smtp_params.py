"""mailgosend.smtp.params: MAIL/RCPT parameters (RFC 1870, 6152, 6531, 4954 §5)."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from mailgosend.smtp.params import MailParams, RcptParams, parse_mail_params, parse_rcpt_params, split_params
from mailgosend.smtp.replies import SMTPReply

LIMIT = 10_000


class MailParamsTests(TestCase):
    def test_accepted(self) -> None:
        cases = [
            ("", MailParams()),
            ("SIZE=0", MailParams(size=0)),
            ("size=10000", MailParams(size=10_000)),
            ("BODY=8BITMIME", MailParams(body="8BITMIME")),
            ("BODY=7bit", MailParams(body="7BIT")),
            ("SMTPUTF8", MailParams(smtputf8=True)),
            ("AUTH=<>", MailParams(auth="<>")),
            ("AUTH=user+40example.com", MailParams(auth="user+40example.com")),
            ("SIZE=5  BODY=8BITMIME SMTPUTF8", MailParams(size=5, body="8BITMIME", smtputf8=True)),
        ]
        for text, expected in cases:
            self.assertEqual(parse_mail_params(text, LIMIT), expected, text)

    def test_refused(self) -> None:
        cases = [
            ("SIZE=10001", 552, "5.3.4"),
            ("SIZE=", 501, "5.5.4"),
            ("SIZE", 501, "5.5.4"),
            ("SIZE=-1", 501, "5.5.4"),
            ("SIZE=1" + "0" * 20, 501, "5.5.4"),
            ("SIZE=１２", 501, "5.5.4"),  # full-width digits are not DIGIT
            ("BODY=BINARYMIME", 555, "5.5.4"),
            ("BODY", 555, "5.5.4"),
            ("SMTPUTF8=yes", 501, "5.5.4"),
            ("AUTH", 501, "5.5.4"),
            ("AUTH=a+zz", 501, "5.5.4"),
            ("RET=FULL", 555, "5.5.4"),
            ("ENVID=x", 555, "5.5.4"),
            ("SIZE=1 size=2", 555, "5.5.4"),
            ("-BAD=1", 501, "5.5.4"),
            ("X=a=b", 501, "5.5.4"),  # "=" is not in esmtp-value
        ]
        for text, code, status in cases:
            with self.assertRaises(SMTPReply, msg=text) as caught:
                parse_mail_params(text, LIMIT)
            self.assertEqual((caught.exception.code, caught.exception.status), (code, status), text)

    def test_allows_8bit(self) -> None:
        self.assertFalse(MailParams().allows_8bit)
        self.assertTrue(MailParams(body="8BITMIME").allows_8bit)
        self.assertTrue(MailParams(smtputf8=True).allows_8bit)


class RcptParamsTests(TestCase):
    def test_none_supported(self) -> None:
        self.assertEqual(parse_rcpt_params(""), RcptParams())
        for text in ("NOTIFY=NEVER", "ORCPT=rfc822;a@b.org"):
            with self.assertRaises(SMTPReply) as caught:
                parse_rcpt_params(text)
            self.assertEqual(caught.exception.code, 555)

    def test_split(self) -> None:
        self.assertEqual(split_params("A=1 b"), {"A": "1", "B": None})


class DSNParamsTests(TestCase):
    """RFC 3461 on submission (issue 9 item 3): RET/ENVID on MAIL, NOTIFY/ORCPT on RCPT."""

    def test_mail_accepted(self) -> None:
        cases = [
            ("RET=hdrs", MailParams(ret="HDRS")),
            ("RET=FULL ENVID=QQ314159", MailParams(ret="FULL", envid="QQ314159")),
            ("ENVID=a+2Bb+3Dc", MailParams(envid="a+b=c")),
        ]
        for text, expected in cases:
            self.assertEqual(parse_mail_params(text, LIMIT, dsn=True), expected, text)

    def test_mail_refused(self) -> None:
        for text in ("RET=ALL", "RET", "ENVID=", "ENVID=a+zz", "ENVID=" + "x" * 101):
            with self.assertRaises(SMTPReply, msg=text) as caught:
                parse_mail_params(text, LIMIT, dsn=True)
            self.assertEqual((caught.exception.code, caught.exception.status), (501, "5.5.4"))

    def test_rcpt_accepted(self) -> None:
        cases = [
            ("NOTIFY=NEVER", RcptParams(notify="NEVER")),
            ("notify=success,FAILURE", RcptParams(notify="SUCCESS,FAILURE")),
            ("NOTIFY=DELAY ORCPT=rfc822;bob+2Btag@example.org",
             RcptParams(notify="DELAY", orcpt="rfc822;bob+tag@example.org")),
            ("ORCPT=RFC822;a@b.org", RcptParams(orcpt="rfc822;a@b.org")),
        ]
        for text, expected in cases:
            self.assertEqual(parse_rcpt_params(text, dsn=True), expected, text)

    def test_rcpt_refused(self) -> None:
        for text in ("NOTIFY=NEVER,SUCCESS", "NOTIFY=SUCCESS,SUCCESS", "NOTIFY=ALWAYS",
                     "NOTIFY", "ORCPT=a@b.org", "ORCPT=rfc822;", "ORCPT=;a@b.org"):
            with self.assertRaises(SMTPReply, msg=text) as caught:
                parse_rcpt_params(text, dsn=True)
            self.assertEqual((caught.exception.code, caught.exception.status), (501, "5.5.4"))

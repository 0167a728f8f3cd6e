"""What the client will send (or refuse before sending) for an envelope and a peer's EHLO."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.delivery.envelope import (
    Envelope,
    Recipient,
    declared_limit,
    orcpt_parameter,
    plan_transaction,
    xtext,
)

FULL = {"SIZE": "1000", "8BITMIME": "", "SMTPUTF8": "", "DSN": "", "PIPELINING": ""}


def envelope(sender: str = "a@example.org", *rcpts: str, **kw: object) -> Envelope:
    recipients = tuple(Recipient(r) for r in (rcpts or ("b@example.net",)))
    return Envelope(sender, recipients, **kw)  # type: ignore[arg-type]


class MailCommandTests(unittest.TestCase):
    def test_table(self) -> None:
        cases = [
            (envelope(), {}, 10, "MAIL FROM:<a@example.org>"),
            (envelope(""), {}, 10, "MAIL FROM:<>"),
            (envelope(), {"SIZE": ""}, 10, "MAIL FROM:<a@example.org> SIZE=10"),
            (envelope(body_8bit=True), FULL, 10, "MAIL FROM:<a@example.org> SIZE=10 BODY=8BITMIME"),
            (envelope(body_8bit=True), {}, 10, "MAIL FROM:<a@example.org>"),
            (envelope(smtputf8=True), FULL, 10, "MAIL FROM:<a@example.org> SIZE=10 SMTPUTF8"),
            (envelope("a@example.org", "b\u00fc@example.net"), {"SMTPUTF8": ""}, 10,
             "MAIL FROM:<a@example.org> SMTPUTF8"),
            # RFC 6531 §3.4: not when nothing needs it
            (envelope(), {"SMTPUTF8": ""}, 10, "MAIL FROM:<a@example.org>"),
            (envelope(ret="hdrs", envid="id+1=x y"), {"DSN": ""}, 10,
             "MAIL FROM:<a@example.org> RET=HDRS ENVID=id+2B1+3Dx+20y"),
            # RFC 3461: never without the extension
            (envelope(ret="FULL", envid="x"), {}, 10, "MAIL FROM:<a@example.org>"),
        ]
        for env, ext, size, mail in cases:
            self.assertEqual(plan_transaction(env, ext, size).mail, mail, (env, ext))

    def test_8bit_without_8bitmime_is_noted(self) -> None:
        plan = plan_transaction(envelope(body_8bit=True), {}, 10)
        self.assertIn("8-bit message sent to a server without 8BITMIME", plan.notes)

    def test_invalid_ret_is_dropped_with_a_note(self) -> None:
        plan = plan_transaction(envelope(ret="EVERYTHING"), {"DSN": ""}, 10)
        self.assertEqual(plan.mail, "MAIL FROM:<a@example.org>")
        self.assertTrue(plan.notes)


class RcptCommandTests(unittest.TestCase):
    def test_dsn_parameters_only_when_offered(self) -> None:
        env = Envelope("a@example.org", (
            Recipient("b@example.net", notify="failure,delay", orcpt="rfc822;B+x@example.net"),
            Recipient("c@example.net", notify="NEVER"),
            Recipient("d@example.net", notify="NEVER,SUCCESS")))
        plan = plan_transaction(env, {"DSN": ""}, 10)
        self.assertEqual([line for _, line in plan.rcpts], [
            "RCPT TO:<b@example.net> NOTIFY=FAILURE,DELAY ORCPT=rfc822;B+2Bx@example.net",
            "RCPT TO:<c@example.net> NOTIFY=NEVER",
            "RCPT TO:<d@example.net>"])
        plan = plan_transaction(env, {}, 10)
        self.assertEqual([line for _, line in plan.rcpts][0], "RCPT TO:<b@example.net>")

    def test_orcpt_forms(self) -> None:
        self.assertEqual(orcpt_parameter("rfc822;a=b@x"), "rfc822;a+3Db@x")
        self.assertEqual(orcpt_parameter("utf-8;j\u00f6+1@x"), "utf-8;j\\x{F6}\\x{2B}1@x")
        self.assertEqual(orcpt_parameter("bare+1@x"), "rfc822;bare+2B1@x")
        self.assertEqual(orcpt_parameter("b\u00e4re@x"), "utf-8;b\\x{E4}re@x")
        self.assertEqual(orcpt_parameter('"a;b"@x'), 'rfc822;"a;b"@x')
        self.assertIsNone(orcpt_parameter("rfc822;"))
        self.assertEqual(xtext("a b+"), "a+20b+2B")


class RefusalTests(unittest.TestCase):
    def test_size_above_the_peer_limit_refuses_everything_before_sending(self) -> None:
        plan = plan_transaction(envelope("a@x", "b@y", "c@y"), {"SIZE": "100"}, 101)
        self.assertIsNone(plan.mail)
        self.assertEqual({str(r) for r in plan.refused.values()},
                         {"552 5.3.4 message size 101 exceeds the limit of 100 the receiving "
                          "server announced"})
        self.assertEqual(sorted(plan.refused), [0, 1])
        self.assertIsNotNone(plan_transaction(envelope(), {"SIZE": "100"}, 100).mail)
        self.assertIsNotNone(plan_transaction(envelope(), {"SIZE": "0"}, 10**9).mail)

    def test_declared_limit(self) -> None:
        for ext, limit in [({}, None), ({"SIZE": ""}, None), ({"SIZE": "0"}, None),
                           ({"SIZE": "52428800"}, 52428800), ({"SIZE": "lots"}, None)]:
            self.assertEqual(declared_limit(ext), limit, ext)

    def test_without_smtputf8(self) -> None:
        # RFC 6531 §3.5: 553 5.6.7 for a RCPT, 550 5.6.7 for MAIL, 554 5.6.9 for the message.
        plan = plan_transaction(envelope("a@x", "b@y", "j\u00f6@y"), {}, 10)
        self.assertEqual([i for i, _ in plan.rcpts], [0])
        self.assertEqual((plan.refused[1].code, plan.refused[1].enhanced), (553, "5.6.7"))
        self.assertTrue(plan.refused[1].local)
        plan = plan_transaction(envelope("\u00e4@x", "b@y"), {}, 10)
        self.assertEqual((plan.mail, plan.refused[0].code, plan.refused[0].enhanced),
                         (None, 550, "5.6.7"))
        plan = plan_transaction(envelope("a@x", "b@y", smtputf8=True), {}, 10)
        self.assertEqual((plan.mail, plan.refused[0].code, plan.refused[0].enhanced),
                         (None, 554, "5.6.9"))

    def test_addresses_that_could_inject_commands_are_refused(self) -> None:
        plan = plan_transaction(envelope("a@x", "b@y>\r\nRSET", "c@y"), {}, 10)
        self.assertEqual([line for _, line in plan.rcpts], ["RCPT TO:<c@y>"])
        self.assertEqual(plan.refused[0].code, 553)
        plan = plan_transaction(envelope("a@x>\r\nDATA", "c@y"), {}, 10)
        self.assertIsNone(plan.mail)

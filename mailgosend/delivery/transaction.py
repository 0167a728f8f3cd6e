"""One mail transaction over an open session (RFC 5321 §3.3, RFC 2920 §3.1).

:class:`Transactions` sends MAIL, RCPT and DATA -- pipelined in one write
when the peer offers PIPELINING, else one command at a time -- streams the
message, and maps every reply (or the loss of the session) to the
recipients.  It remembers whether a transaction was left open, so the next
one on the same connection starts with RSET only when needed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from mailgosend.delivery.bodystream import MessageSource, source_prefix
from mailgosend.delivery.clientprotocol import SessionLost, SMTPClientProtocol, Timeouts
from mailgosend.delivery.envelope import (
    Envelope,
    Plan,
    RecipientResult,
    TransactionResult,
    plan_transaction,
)
from mailgosend.delivery.reply import Reply, local_reply
from mailgosend.dotstuff import DotStuffer


class Transactions:
    """Runs transactions, one at a time, over one protocol."""

    def __init__(self, protocol: SMTPClientProtocol, timeouts: Timeouts) -> None:
        self._protocol = protocol
        self._timeouts = timeouts
        self._needs_rset = False

    async def run(self, envelope: Envelope, body: MessageSource, extensions: dict[str, str]
                  ) -> TransactionResult:
        """One transaction with a peer that announced ``extensions``; never fails for the peer."""
        prefix = source_prefix(body)
        plan = plan_transaction(envelope, extensions, envelope.size)
        replies = dict(plan.refused)
        lost: Reply | None = self._protocol.lost
        if lost is None and plan.mail is not None:
            try:
                if "PIPELINING" in extensions:
                    accepted, data_reply = await self._pipelined(plan, replies)
                else:
                    accepted, data_reply = await self._lockstep(plan, replies)
                if data_reply is not None and data_reply.code == 354:
                    final = await self._stream(body, prefix, bool(accepted))
                    replies.update((i, final) for i in accepted)
                elif data_reply is not None:
                    replies.update((i, data_reply) for i in accepted)
            except SessionLost as error:
                lost = error.reply
        results = []
        for index, recipient in enumerate(envelope.recipients):
            reply = replies.get(index) or lost
            assert reply is not None, "every recipient is answered unless the session is lost"
            results.append(RecipientResult(recipient, reply))
        return TransactionResult(tuple(results), session_lost=lost is not None, notes=plan.notes)

    async def _pipelined(self, plan: Plan, replies: dict[int, Reply]
                         ) -> tuple[list[int], Reply | None]:
        """RFC 2920 §3.1: [RSET,] MAIL, every RCPT and DATA in one write, replies in order."""
        t = self._timeouts
        group = ([("RSET", "RSET", t.rset)] if self._needs_rset else [])
        group += [(plan.mail or "", "MAIL", t.mail)]
        group += [(line, "RCPT", t.rcpt) for _, line in plan.rcpts]
        group += [("DATA", "DATA", t.data_init)]
        outcomes = await defer.DeferredList(self._protocol.commands(group), consumeErrors=True)
        got: list[Reply] = []
        failure: SessionLost | None = None
        for ok, value in outcomes:
            outcome: Any = value
            if not ok:
                outcome.trap(SessionLost)  # anything else is a bug: let it surface
                failure = outcome.value
                break
            got.append(outcome)
        answers = iter(got)

        def next_reply() -> Reply:
            reply = next(answers, None)
            if reply is None:
                assert failure is not None
                raise failure
            return reply

        if self._needs_rset:
            next_reply()
            self._needs_rset = False
        return self._interpret(plan, replies, next_reply)

    async def _lockstep(self, plan: Plan, replies: dict[int, Reply]
                        ) -> tuple[list[int], Reply | None]:
        command, t = self._protocol.command, self._timeouts
        if self._needs_rset:
            await command("RSET", "RSET", t.rset)
            self._needs_rset = False
        mail = await command(plan.mail or "", "MAIL", t.mail)
        if not _ok(mail):
            replies.update((i, mail) for i, _ in plan.rcpts)
            return [], None
        self._needs_rset = True
        accepted = []
        for index, line in plan.rcpts:
            reply = await command(line, "RCPT", t.rcpt)
            if _ok(reply):
                accepted.append(index)
            else:
                replies[index] = reply
        if not accepted:
            return [], None
        return accepted, await command("DATA", "DATA", t.data_init)

    def _interpret(self, plan: Plan, replies: dict[int, Reply], next_reply: Any
                   ) -> tuple[list[int], Reply]:
        """Pipelined replies to MAIL, RCPTs and DATA, consumed in order."""
        mail = next_reply()
        if _ok(mail):
            self._needs_rset = True
        accepted = []
        for index, _ in plan.rcpts:
            reply = next_reply()
            if not _ok(mail):
                replies[index] = mail  # RFC 2920 §3.1: RCPTs after a refused MAIL mean nothing
            elif _ok(reply):
                accepted.append(index)
            else:
                replies[index] = reply
        return accepted, next_reply()

    async def _stream(self, body: MessageSource, prefix: bytes, wanted: bool) -> Reply:
        """Send the message after a 354; returns the reply to the final dot.

        With no accepted recipient (a pipelined DATA that got 354 anyway) only
        the dot is sent, as RFC 2920 §3.1 asks.  A source that fails cannot be
        undone in DATA: the connection is cut so the peer drops the partial
        message (RFC 5321 §4.1.1.4), and the recipients stay temporary.
        """
        protocol, t = self._protocol, self._timeouts
        stuffer = DotStuffer()
        if not wanted:
            final = protocol.expect("end of data", t.data_done)
            protocol.write_data(stuffer.finish())
            self._needs_rset = False
            return await final
        protocol.start_data()
        try:
            protocol.write_data(stuffer.feed(prefix))
            while True:
                await protocol.drained(t.data_block)
                try:
                    chunk = await body.read_chunk()
                except Exception as error:
                    reply = local_reply(451, "4.3.0", "local error reading the message: "
                                                      f"{type(error).__name__}")
                    protocol.fail(reply)
                    raise SessionLost(reply)
                if protocol.lost is not None:
                    raise SessionLost(protocol.lost)
                if not chunk:
                    break
                protocol.write_data(stuffer.feed(chunk))
        finally:
            protocol.end_data()
        final = protocol.expect("end of data", t.data_done)
        protocol.write_data(stuffer.finish())
        self._needs_rset = False  # RFC 5321 §4.1.1.4: the end of data resets the transaction
        return await final


def _ok(reply: Reply) -> bool:
    return 200 <= reply.code < 300

"""The SMTP backend: who may connect, log in, send and receive.

Policy only; the protocol (protocol.py) and the receive pipeline
(pipeline/) do the rest.  Decisions, each with the reply it maps to:

- connect from a banned address → ``421 4.7.0`` (the ban is temporary), on the listeners
  in BAN_SCOPE (by default submission and smtps, not inbound port 25);
- AUTH through the shared Portal (brute-force rules included) → ``535 5.7.8``
  for bad credentials, ``454 4.7.0`` while the address or account is banned;
- submission: the envelope sender must be the user's own address, a
  sub-address or an alias of it → ``553 5.7.1`` otherwise (RFC 6409 §6.1);
- inbound: recipients must be in a local domain (``550 5.7.1`` relay denied)
  and exist (``550 5.1.1``); a mailbox that cannot take the declared size
  gets ``452 4.2.2`` (RFC 3463 §3.3);
- submission with HOLDFOR/HOLDUNTIL (send later): a local recipient → ``550 5.7.1`` (the
  hold is the outbound queue's; a local copy would arrive at once);
- inbound with greylisting on: an accepted recipient of an unknown
  (client, sender, recipient) triplet gets ``451 4.7.1`` (RFC 6647 §4.1),
  after the checks above, so refused recipients never create greylist state.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Union

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mailgosend.auth.bans import BanCache
from mailgosend.auth.checker import LoginBanned, refusal_text
from mailgosend.auth.credentials import ClientCredentials
from mailgosend.auth.portal import IUser
from mailgosend.db.runner import DatabaseRunner
from mailgosend.smtp.interfaces import IMessageSink, ISMTPBackend
from mailgosend.smtp.params import MailParams, RcptParams
from mailgosend.smtp.pipeline.delivery import Targets, canonical_recipient, mailbox_full
from mailgosend.smtp.pipeline.process import ReceivePipeline
from mailgosend.smtp.pipeline.spool import SpoolSink
from mailgosend.smtp.replies import SMTPReply
from mailgosend.smtp.session import SMTPSession
from mailgosend.spam.greylist import Action, Greylist
from mailgosend.store import accounts
from mailgosend.store.addresses import AddressError, parse_address
from mailgosend.store.quota import fits

log = Logger()

SUBMISSION = ("submission", "smtps")


def recipient_verdict(address: str, resolution: accounts.Resolution, size: int,
                      submission: bool) -> Union[SMTPReply, Targets]:
    """The refusal for one RCPT, or where its mail goes when it is accepted; pure, over
    what the store resolved the address to."""
    if not resolution.local_domain:
        if submission:
            return Targets((), (address,))
        return SMTPReply(550, "5.7.1", "Relay access denied")
    if not resolution.deliverable:
        return SMTPReply(550, "5.1.1", f"<{address}>: Recipient address rejected: "
                                       "User unknown in local recipient table")
    users = []
    for user in resolution.users:
        # Without SIZE= (RFC 1870) only a mailbox already full can be refused here: a message
        # has at least one octet.
        if not fits(user.used_bytes, user.quota_bytes, max(size, 1)):
            return mailbox_full(f"<{address}>: Mailbox full")
        users.append(user)
    return Targets(tuple(users), resolution.remote)


@implementer(ISMTPBackend)
class MailBackend:
    def __init__(self, *, runner: DatabaseRunner, portal: Any, bans: BanCache,
                 pipeline: ReceivePipeline, default_domain: str,
                 spool_dir: Optional[str] = None, greylist: Optional[Greylist] = None) -> None:
        self._runner = runner
        self._greylist = greylist
        self._portal = portal
        self._bans = bans
        self._pipeline = pipeline
        self._default_domain = default_domain
        self._spool_dir = spool_dir

    def connection_made(self, session: SMTPSession) -> "defer.Deferred[None]":
        scope = "smtp" if session.listener == "inbound" else "submission"
        if self._bans.refuses(session.peer_ip, scope):  # BAN_SCOPE (auth/bans.py)
            log.info("refused connection from banned {ip} on {listener}", ip=session.peer_ip,
                     listener=session.listener)
            return defer.fail(SMTPReply(421, "4.7.0", "Too many failed logins from your "
                                                      "address; try again later"))
        return defer.succeed(None)

    @defer.inlineCallbacks
    def authenticate(self, session: SMTPSession, username: str, password: str) -> Any:
        credentials = ClientCredentials(username, password, session.peer_ip, session.listener)
        try:
            _, user, _ = yield self._portal.login(credentials, None, IUser)
        except LoginBanned:
            raise SMTPReply(454, "4.7.0", "Too many failed logins; try again later") from None
        except UnauthorizedLogin as refused:
            raise SMTPReply(535, "5.7.8", refusal_text(
                refused, "Authentication credentials invalid")) from None
        return user.email

    @defer.inlineCallbacks
    def validate_sender(self, session: SMTPSession, address: str, params: MailParams) -> Any:
        if session.listener not in SUBMISSION:
            return None
        if not session.authenticated:
            raise SMTPReply(530, "5.7.0", "Authentication required")
        if not address:
            raise SMTPReply(553, "5.7.1", "The null sender is not allowed for submission")
        allowed = yield self._runner.read(accounts.may_send_as, session.authenticated, address)
        if not allowed:
            raise SMTPReply(553, "5.7.1", f"Sender address <{address}> is not owned by "
                                          f"{session.authenticated}")
        return None

    @defer.inlineCallbacks
    def validate_recipient(self, session: SMTPSession, address: str,
                           params: RcptParams) -> Any:
        address = canonical_recipient(address, self._default_domain)
        size = session.mail_params.size or 0
        try:
            addr = parse_address(address)
        except AddressError:
            raise SMTPReply(501, "5.1.3", "Bad recipient address syntax") from None
        resolution = yield self._runner.read(accounts.resolve_recipient, str(addr))
        result = recipient_verdict(address, resolution, size, session.listener in SUBMISSION)
        if isinstance(result, SMTPReply):
            raise result
        if result.local and session.mail_params.release_at is not None:
            # send later holds the queue's copy; a local copy would be filed at once, so
            # a held message is refused for local recipients rather than sent early
            raise SMTPReply(550, "5.7.1", f"<{address}>: a message held with HOLDFOR/"
                                          "HOLDUNTIL can only go to other servers; send it "
                                          "to this recipient without them")
        if self._greylist is not None:
            yield self._check_greylist(session, address)
        session.resolved[address] = result
        return None

    @defer.inlineCallbacks
    def _check_greylist(self, session: SMTPSession, address: str) -> Any:
        greylist = self._greylist
        assert greylist is not None
        if greylist.exemption(session.listener, session.authenticated, session.peer_ip):
            return None
        outcome = yield greylist.check(session.peer_ip, session.mail_from or "", address)
        if outcome.action is Action.DEFER:
            log.info("smtp {sid} recipient greylisted ({reason})", sid=session.session_id,
                     reason=outcome.reason)
            # RFC 6647 §4.1: a temporary failure at RCPT; 4.7.1 per RFC 3463 §3.8.
            raise SMTPReply(451, "4.7.1", "Greylisted: first attempts from new senders are "
                                          "deferred; please try again in "
                                          f"{max(1, round(outcome.retry_in))} seconds")
        return None

    def begin_message(self, session: SMTPSession) -> IMessageSink:
        # The copy is taken at the final dot: the protocol resets the session for the
        # next transaction while the pipeline is still working on this one.
        return SpoolSink(self._spool_dir,
                         lambda message: self._pipeline.process(copy.deepcopy(session), message))

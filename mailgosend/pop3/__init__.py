"""POP3 over the shared realm and the mail service (mailgosend/mail/).

Implements RFC 1939 (all commands except APOP, plus the optional TOP, UIDL and USER/PASS),
RFC 2449 (CAPA, PIPELINING, RESP-CODES), RFC 3206 (the SYS and AUTH response codes,
AUTH-RESP-CODE), RFC 2595 §4 (STLS) and RFC 5034 SASL with PLAIN (RFC 4616).

Not implemented, on purpose: APOP (RFC 1939 §7) and every challenge-response mechanism, because
passwords are stored as bcrypt hashes; LAST and RPOP (removed by RFC 1939); EXPIRE and
LOGIN-DELAY (no such policies exist); UTF8 and LANG (RFC 6856); the IMPLEMENTATION capability
(it would only tell attackers the version); the [IN-USE] maildrop lock (concurrent sessions are
safe, see :mod:`mailgosend.pop3.maildrop`).

The protocol is written on ``twisted.internet.protocol.Protocol`` rather than as a subclass of
``twisted.mail.pop3.POP3``: that class has no STLS, takes passwords in clear, answers a
re-login in TRANSACTION by switching mailbox, executes pipelined commands before a login has
finished, advertises "PIPELINE" (sic) and joke capabilities, turns a malformed argument into
an exception that drops the connection, mangles CRLF and misses dot-stuffing at 16 KiB chunk
boundaries in RETR, replies to QUIT before its update is done and never reports a failed
update, and never answers a RETR whose message cannot be read.  Keeping it would mean
overriding nearly every method while its ``do_<CMD>`` lookup still reached APOP, LAST and RPOP.

Modules: :mod:`~.factory` (listener, limits, ``build_pop3_factory``), :mod:`~.protocol`
(session, framing, dispatch), :mod:`~.authorization` and :mod:`~.transaction` (the commands),
:mod:`~.maildrop` (the maildrop over the mail service), :mod:`~.streaming` and
:mod:`~.multiline` (RETR/TOP), :mod:`~.framing`, :mod:`~.sasl`, :mod:`~.replies`.
"""

from mailgosend.pop3.factory import POP3Factory, POP3Limits, build_pop3_factory
from mailgosend.pop3.maildrop import IPOP3Maildrop

__all__ = ["IPOP3Maildrop", "POP3Factory", "POP3Limits", "build_pop3_factory"]

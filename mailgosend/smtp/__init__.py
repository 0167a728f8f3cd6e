"""mailgosend.smtp: the ESMTP server for inbound mail (25), submission (587) and SMTPS (465).

Implements RFC 5321 (commands, paths, reply ordering, limits and timeouts of §4.5.3),
RFC 3207 STARTTLS, RFC 4954 AUTH PLAIN/LOGIN (only under TLS, never on port 25), RFC 1870 SIZE,
RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 2034/3463 enhanced status codes and RFC 2920
PIPELINING, and on submission/smtps RFC 3461 DSN (NOTIFY, RET, ENVID, ORCPT go to the queue;
success reports for NOTIFY=SUCCESS). Not implemented: CHUNKING/BDAT (RFC 3030), BINARYMIME, DSN
on port 25, ETRN, VRFY (answered 252), EXPN, XCLIENT/XFORWARD.

The protocol knows nothing about users, domains, DNS, spam or storage: it asks an
``interfaces.ISMTPBackend`` and streams message data into an ``interfaces.IMessageSink``.

Modules: ``protocol`` (reply ordering, DATA, TLS, timeouts), ``framing`` (command lines),
``commands`` (command semantics), ``factory`` (limits, connection accounting), ``message`` and
``datareader`` (the DATA phase), ``address`` and ``params`` (MAIL/RCPT syntax), ``auth`` (SASL),
``replies`` (the wire form of every reply), ``session`` (what the backend sees),
``interfaces``; ``pipeline`` is the receive pipeline behind the backend interface.
"""

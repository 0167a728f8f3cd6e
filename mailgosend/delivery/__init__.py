"""Outbound delivery: where to send a domain's mail, and how to report failures.

Implemented:
- RFC 5321 §5.1 destination lookup: MX records by preference, equal
  preferences shuffled, implicit MX from A/AAAA when there is no MX, no usable
  host reported as an error; NXDOMAIN is permanent, SERVFAIL and timeouts are
  temporary.  MX targets that are aliases (RFC 2181 §10.3) or IP addresses are
  skipped.  RFC 7505 null MX gives ``556 5.1.10``.  IDN domains are looked up
  as A-labels (RFC 5890/5891, IDNA 2008 with UTS #46 mapping).  ``mx``.
- RFC 3464 delivery status notifications inside RFC 6522 multipart/report,
  with RFC 6533 for non-ASCII addresses, RFC 3834 Auto-Submitted, and the
  RFC 5321 §6.1 rule that bounces are never bounced.  Building and parsing.
  ``dsn``.

Not implemented here (the queue worker and SMTP client will come later):
MTA-STS (RFC 8461) and DANE (RFC 7672) policy, the RFC 5321 §5.1 rule that an
MX host must drop itself and less preferred hosts from the list (we are
never a backup MX), limits on how many hosts or addresses to try, RFC 3461
NOTIFY/RET handling (callers decide whether a DSN is wanted and pass only
headers), and DSNs for successful delivery.

Everything here is plain functions over plain data; ``mx`` blocks on DNS and
is meant to run in a thread pool, never in the reactor thread.
"""

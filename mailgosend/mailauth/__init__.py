"""Mail authentication of received messages: SPF, DKIM, DMARC, DNSBL, Authentication-Results.

Implemented:
- RFC 7208 SPF (via pyspf): check_host() for MAIL FROM, postmaster@HELO for a
  null reverse-path (§2.4) and the separate HELO check (§2.3).  ``spf``.
- RFC 6376 DKIM verification with rsa-sha256 and RFC 8463 ed25519-sha256 (via
  dkimpy + PyNaCl), one result per signature, RFC 8601 result names.  ``dkim``.
- RFC 7489 DMARC: record discovery with organizational-domain fallback on the
  current Public Suffix List (§6.6.3), relaxed/strict alignment (§3.1), p/sp,
  pct sampling (§6.6.4), RFC5322.From extraction (§6.6.1).  ``dmarc``.
- RFC 8601 Authentication-Results: building our field, removing forged ones
  that carry our authserv-id (§5), byte-exactly.  ``authresults``.
- RFC 5782 DNSBL queries (IPv4 and IPv6), operator error codes.  ``dnsbl``.
- One resolver from DNS_PRIMARY / DNS_SECONDARY for all of the above (DESIGN
  §6), including pyspf's process-wide hook.  ``resolver``.

Not implemented here: DKIM signing of outbound mail, ARC (RFC 8617), DMARC
aggregate/failure reports (rua/ruf are parsed but not sent), SPF's obsolete
type-99 records, iprev lookups (the result is only formatted).

Every check blocks (DNS, RSA): the receive pipeline runs them in its thread
pool with deferToThreadPool.  They are thread-safe and never touch the reactor.
"""

"""Outbound delivery: the queue worker, the SMTP client, destinations, and reports.

- ``worker``: claims due recipients from the database queue (store/queue.py), groups them by
  destination domain (or RELAY_HOST), and sends each domain's messages over a few reused
  connections; results per recipient, retries per QUEUE_RETRY_MINS, expiry, delay warnings.
- ``client`` (+ ``clientprotocol``, ``transaction``, ``envelope``, ``reply``,
  ``bodystream``, ``clienttls``): RFC 5321 client with STARTTLS (RFC 3207, opportunistic or
  required), PIPELINING (RFC 2920), SIZE (1870), 8BITMIME (6152), SMTPUTF8 (6531), DSN
  parameters (3461), AUTH PLAIN/LOGIN (4954) only under TLS, RFC 5321 §4.5.3.2 timeouts.
- ``mx``: RFC 5321 §5.1 destination lookup (preference order, equal preferences shuffled,
  implicit MX, RFC 7505 null MX → ``556 5.1.10``, IDN as A-labels); ``resolve_relay`` for
  the smarthost.
- ``dsn`` and ``bounces``: RFC 3464 reports in RFC 6522 multipart/report (RFC 6533 for
  non-ASCII addresses), committed in the same transaction as the failure they report, never
  for the null sender.
- ``policy``: the pure decisions (retry steps with jitter, expiry, MX rotation, NOTIFY).

Not implemented: MTA-STS (RFC 8461) and DANE (RFC 7672), CHUNKING/BDAT, 8-bit to 7-bit
downgrade, REQUIRETLS, DSNs for successful delivery (NOTIFY=SUCCESS), and the RFC 5321 §5.1
rule that an MX host drops itself and less preferred hosts (we are never a backup MX).

``mx`` blocks on DNS and runs in the worker pool, never in the reactor thread.
"""

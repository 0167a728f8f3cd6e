"""The receive pipeline, run after DATA and before the 250 (DESIGN.md §3, §6).

One module per step: spool (the message on disk while it streams in) →
checks (SPF, DKIM, DMARC, DNSBL, spam rules; blocking libraries, so in the
worker pool) → headers (Received, Authentication-Results, X-Spam-*) →
delivery (every local copy and queue row in one transaction) → reply.
"""

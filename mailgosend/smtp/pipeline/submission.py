"""What the submission server adds to a message its client left incomplete (RFC 6409 §8).

The rule lives in mail/submission.py (``missing_fields``), shared with JMAP EmailSubmission:
the fields go above the client's header section (under our Received line), before the
message is stored or queued, so the DKIM signature the queue worker adds later covers them.
"""

from __future__ import annotations

from mailgosend.mail.submission import missing_fields

__all__ = ["missing_fields"]

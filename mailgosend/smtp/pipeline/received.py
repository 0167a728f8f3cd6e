"""The Received: trace header (RFC 5321 §4.4) with TLS details (RFC 3848 protocol types)."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from typing import Optional

from mailgosend.smtp.session import SMTPSession


def with_protocol(session: SMTPSession) -> str:
    """ESMTP / ESMTPS / ESMTPA / ESMTPSA (RFC 3848), UTF8SMTP* when SMTPUTF8 (RFC 6531 §3.7.3)."""
    if not session.esmtp:
        return "SMTP"
    base = "UTF8SMTP" if session.mail_params.smtputf8 else "ESMTP"
    return base + ("S" if session.tls else "") + ("A" if session.authenticated else "")


def _clean(text: str) -> str:
    """Keep client-supplied text from breaking the header (no CR/LF, no parentheses games)."""
    return "".join(c if c.isprintable() and c not in "()" else "?" for c in text)[:255]


def received_header(session: SMTPSession, hostname: str, now: datetime,
                    recipient: Optional[str] = None, queue_id: str = "") -> str:
    """The header line, folded, without the trailing CRLF.

    ``for <recipient>`` is only given for single-recipient messages: naming one of
    several recipients in every copy would disclose Bcc recipients (RFC 5321 §7.2).
    """
    helo = _clean(session.helo or "unknown")
    ip = session.peer_ip
    literal = f"IPv6:{ip}" if ":" in ip else ip
    parts = [f"from {helo} ([{literal}])", f"by {hostname}"]
    proto = f"with {with_protocol(session)}"
    if session.tls and session.tls_summary:
        proto += f" ({_clean(session.tls_summary)})"
    parts.append(proto)
    if session.authenticated:
        # RFC 3848 §2 allows the authenticated identity; we show only that auth happened
        # (the login name is private to the sender).
        parts.append("(authenticated)")
    parts.append(f"id {queue_id or session.transaction_id or session.session_id}")
    if recipient:
        parts.append(f"for <{recipient}>")
    value = "\r\n\t".join(parts) + f";\r\n\t{format_datetime(now)}"
    return "Received: " + value

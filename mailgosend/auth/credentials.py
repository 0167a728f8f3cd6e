"""Credentials that carry where a login comes from.

twisted.cred's UsernamePassword knows nothing of the client address, but the
brute-force rules are per IP and per service.  Every protocol wraps what its
SASL/LOGIN code produced in ClientCredentials before calling Portal.login.
"""

from __future__ import annotations

import hmac

from twisted.cred.credentials import IUsernamePassword
from zope.interface import Attribute, implementer


class IClientCredentials(IUsernamePassword):
    client_ip = Attribute("The client's IP address as text.")
    service = Attribute("The protocol asking: smtp, submission, imap, pop3, web, dav.")


@implementer(IClientCredentials)
class ClientCredentials:
    def __init__(self, username: str, password: str, client_ip: str, service: str) -> None:
        self.username = username
        self.password = password
        self.client_ip = client_ip
        self.service = service

    def checkPassword(self, password: bytes | str) -> bool:  # type: ignore[override]
        given = password.encode() if isinstance(password, str) else password
        return hmac.compare_digest(self.password.encode(), given)

    def __repr__(self) -> str:  # never show the password, even in a traceback
        return (f"ClientCredentials(username={self.username!r}, client_ip={self.client_ip!r}, "
                f"service={self.service!r})")


def as_text(value: object) -> str:
    """SASL code in twisted.mail hands us bytes; everything here is text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)

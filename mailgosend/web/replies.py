# -*- test-case-name: tests.test_web_mfa -*-
"""Small reply shapes shared by the account sections (web/mfa_pages.py,
web/apppasswords_pages.py): a 303 to another page, and an AccountError's message as a
sentence for an alert."""

from __future__ import annotations

from mailgosend.web.request import WebRequest


def see_other(request: WebRequest, location: str) -> bytes:
    request.setResponseCode(303)
    request.setHeader(b"Location", location.encode())
    request.setHeader(b"Cache-Control", b"no-store")
    return b""


def sentence(exc: Exception) -> str:
    """``"the password is wrong"`` -> ``"The password is wrong."``"""
    text = str(exc.args[0]) if exc.args else str(exc)
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."
